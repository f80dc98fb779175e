use axum::{
    routing::{get, post},
    Router,
};
use outflow_service::app::{Application, Writer};
use utoipa::OpenApi;

use crate::{openapi::ApiDoc, routes, settings::Settings};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const WRITER: Writer = Writer { name: "orders", migrator: &MIGRATOR, openapi: ApiDoc::openapi };

/// The orders writer, migrated and bound, ready to run.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let routes = Router::new()
        .route("/v1/orders", post(routes::place_order::place_order))
        .route("/v1/orders/{id}", get(routes::get_order::get_order))
        .route("/v1/orders/{id}/cancel", post(routes::cancel_order::cancel_order));
    WRITER.build(&settings.service, settings.orders, routes).await
}
