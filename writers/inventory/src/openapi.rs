//! The OpenAPI document of the inventory writer, served at `/openapi.json` and
//! checked in as `writers/inventory/openapi.json` (a test keeps the two equal).

use outflow_service::openapi::{BearerAuth, WRITER_ERRORS};
use utoipa::OpenApi;

use crate::routes::{create_product, get_product, restock};

#[derive(OpenApi)]
#[openapi(
    info(title = "Outflow inventory writer", description = "Creates and restocks products; every change commits its outbox event in the same transaction."),
    paths(create_product::create_product, get_product::get_product, restock::restock),
    modifiers(&BearerAuth, &WRITER_ERRORS)
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    #[test]
    fn the_checked_in_openapi_document_is_current() {
        use utoipa::OpenApi;
        outflow_service::openapi::check_in(&super::ApiDoc::openapi(), concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"));
    }

    #[test]
    fn every_sku_pattern_is_the_one_rule() {
        use utoipa::OpenApi;
        let patterns = outflow_service::openapi::patterns_of(&super::ApiDoc::openapi(), "sku");
        assert_eq!(patterns.len(), 3, "{patterns:?}");
        assert!(patterns.iter().all(|p| p == outflow_events::sku::PATTERN), "{patterns:?}");
    }
}
