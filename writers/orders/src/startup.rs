use axum::{
    routing::{get, post},
    Router,
};
use outflow_http::{
    app::{Application, ServiceBase},
    auth::{HasJwtKeys, JwtKeys},
};

use crate::{
    routes,
    settings::{OrderLimits, Settings},
};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone)]
pub struct AppState {
    pub base: ServiceBase,
    pub limits: OrderLimits,
}

impl HasJwtKeys for AppState {
    fn jwt_keys(&self) -> &JwtKeys {
        &self.base.jwt
    }
}

/// The orders writer, migrated and bound, ready to run.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let base = ServiceBase::build(&settings.service, &MIGRATOR).await?;
    let pool = base.pool.clone();
    let api = Router::new()
        .route("/v1/orders", post(routes::place_order::place_order))
        .route("/v1/orders/{id}", get(routes::get_order::get_order))
        .route("/v1/orders/{id}/cancel", post(routes::cancel_order::cancel_order))
        .route("/openapi.json", get(crate::openapi::serve))
        .with_state(AppState { base, limits: settings.orders });
    Application::bind(&settings.service, api, pool, "orders").await
}
