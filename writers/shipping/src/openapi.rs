//! The OpenAPI document of the shipping writer, served at `/openapi.json` and
//! checked in as `writers/shipping/openapi.json` (a test keeps the two equal).

use outflow_service::openapi::{BearerAuth, WRITER_ERRORS};
use utoipa::OpenApi;

use crate::routes::{callback, get_shipment};

#[derive(OpenApi)]
#[openapi(
    info(title = "Outflow shipping writer", description = "Shipments and the carrier's callback; every change commits its outbox event in the same transaction."),
    paths(callback::callback, get_shipment::get_shipment),
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
}
