use axum::{
    routing::{get, post},
    Router,
};
use outflow_http::{
    app::{Application, ServiceBase},
    auth::{HasJwtKeys, JwtKeys},
};
use secrecy::SecretString;

use crate::{provider::ProviderClient, routes, settings::Settings};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone)]
pub struct AppState {
    pub base: ServiceBase,
    pub provider_server_key: SecretString,
    pub provider: ProviderClient,
}

impl HasJwtKeys for AppState {
    fn jwt_keys(&self) -> &JwtKeys {
        &self.base.jwt
    }
}

/// The payments writer, migrated and bound, ready to run.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let base = ServiceBase::build(&settings.service, &MIGRATOR).await?;
    let pool = base.pool.clone();
    let api = Router::new()
        .route("/v1/payments/notifications", post(routes::notification::notification))
        .route("/v1/payments/{order_id}", get(routes::get_payment::get_payment))
        .route("/openapi.json", get(crate::openapi::serve))
        .with_state(AppState {
            base,
            provider: ProviderClient::new(&settings.provider_url, settings.provider_server_key.clone()),
            provider_server_key: settings.provider_server_key,
        });
    Application::bind(&settings.service, api, pool, "payments").await
}
