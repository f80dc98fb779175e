//! The OpenAPI document of the payments writer, served at `/openapi.json` and
//! checked in as `writers/payments/openapi.json` (a test keeps the two equal).

use outflow_service::openapi::{BearerAuth, WRITER_ERRORS};
use utoipa::OpenApi;

use crate::routes::{get_payment, notification};

#[derive(OpenApi)]
#[openapi(
    info(title = "Outflow payments writer", description = "Payments and the provider webhook; every change commits its outbox event in the same transaction."),
    paths(notification::notification, get_payment::get_payment),
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
