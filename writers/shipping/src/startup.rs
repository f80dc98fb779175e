use axum::{
    routing::{get, post},
    Router,
};
use outflow_carrier::CarrierClient;
use outflow_service::{
    app::{Application, Writer},
    edge::{self, RateLimit},
};
use utoipa::OpenApi;

use crate::{openapi::ApiDoc, routes, settings::Settings, state::Carrier};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const WRITER: Writer = Writer { name: "shipping", migrator: &MIGRATOR, openapi: ApiDoc::openapi };

/// The shipping writer, migrated and bound, ready to run.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    // The carrier calls without a customer: its address has a bucket instead.
    let callback = Router::new().route("/v1/shipments/callbacks", post(routes::callback::callback));
    let callback = edge::limit_clients(callback, RateLimit::per_client(&settings.service.http.limits));
    let routes = Router::new().route("/v1/shipments/{order_id}", get(routes::get_shipment::get_shipment)).merge(callback);
    let carrier = Carrier { client: CarrierClient::new(&settings.carrier_url, settings.carrier_key.clone()), key: settings.carrier_key };
    WRITER.build(&settings.service, carrier, routes).await
}
