//! The OpenAPI document of the orders writer, served at `/openapi.json` and
//! checked in as `writers/orders/openapi.json` (a test keeps the two equal).

use outflow_service::openapi::{BearerAuth, WRITER_ERRORS};
use utoipa::OpenApi;

use crate::routes::{cancel_order, get_order, place_order};

#[derive(OpenApi)]
#[openapi(
    info(title = "Outflow orders writer", description = "Places and cancels orders; every change commits its outbox event in the same transaction."),
    paths(place_order::place_order, get_order::get_order, cancel_order::cancel_order),
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
        assert_eq!(patterns.len(), 1, "{patterns:?}");
        assert!(patterns.iter().all(|p| p == outflow_events::sku::PATTERN), "{patterns:?}");
    }
}
