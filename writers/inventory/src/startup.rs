use axum::{
    routing::{get, post},
    Router,
};
use outflow_http::{
    app::{Application, ServiceBase},
    auth::{HasJwtKeys, JwtKeys},
};

use crate::{routes, settings::Settings};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone)]
pub struct AppState {
    pub base: ServiceBase,
}

impl HasJwtKeys for AppState {
    fn jwt_keys(&self) -> &JwtKeys {
        &self.base.jwt
    }
}

/// The inventory writer, migrated and bound, ready to run.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let base = ServiceBase::build(&settings.service, &MIGRATOR).await?;
    let pool = base.pool.clone();
    let api = Router::new()
        .route("/v1/products", post(routes::create_product::create_product))
        .route("/v1/products/{sku}", get(routes::get_product::get_product))
        .route("/v1/products/{sku}/restock", post(routes::restock::restock))
        .route("/openapi.json", get(crate::openapi::serve))
        .with_state(AppState { base });
    Application::bind(&settings.service, api, pool, "inventory").await
}
