//! The OpenAPI document of the notifications writer, served at
//! `/openapi.json` and checked in as `writers/notifications/openapi.json`
//! (a test keeps the two equal).

use outflow_service::openapi::{BearerAuth, WRITER_ERRORS};
use utoipa::OpenApi;

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Outflow notifications writer",
        description = "Customers' webhooks: every customer-visible event is POSTed to them once per event id, signed (Standard Webhooks), retried with capped backoff, and parked for an admin after the last attempt."
    ),
    paths(routes::register, routes::list, routes::delete, routes::dead_letters, routes::replay),
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
