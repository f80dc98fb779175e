use axum::{
    routing::{get, post},
    Router,
};
use outflow_service::app::{Application, Writer};
use utoipa::OpenApi;

use crate::{openapi::ApiDoc, routes, settings::Settings};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const WRITER: Writer = Writer { name: "inventory", migrator: &MIGRATOR, openapi: ApiDoc::openapi };

/// The inventory writer, migrated and bound, ready to run.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let routes = Router::new()
        .route("/v1/products", post(routes::create_product::create_product))
        .route("/v1/products/{sku}", get(routes::get_product::get_product))
        .route("/v1/products/{sku}/restock", post(routes::restock::restock));
    WRITER.build(&settings.service, (), routes).await
}
