use axum::{
    routing::{get, post},
    Router,
};
use outflow_provider::ProviderClient;
use outflow_service::{
    app::{Application, Writer},
    edge::{self, RateLimit},
};
use utoipa::OpenApi;

use crate::{openapi::ApiDoc, routes, settings::Settings, state::Provider};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const WRITER: Writer = Writer { name: "payments", migrator: &MIGRATOR, openapi: ApiDoc::openapi };

/// The payments writer, migrated and bound, ready to run.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    // The provider calls without a customer: its address has a bucket instead.
    let webhook = Router::new().route("/v1/payments/notifications", post(routes::notification::notification));
    let webhook = edge::limit_clients(webhook, RateLimit::per_client(&settings.service.http.limits));
    let routes = Router::new().route("/v1/payments/{order_id}", get(routes::get_payment::get_payment)).merge(webhook);
    let provider =
        Provider { client: ProviderClient::new(&settings.provider_url, settings.provider_server_key.clone()), server_key: settings.provider_server_key };
    WRITER.build(&settings.service, provider, routes).await
}
