//! The OpenAPI document of the query service, served at `/openapi.json` and
//! checked in as `consumers/query/openapi.json` (a test keeps the two equal).
//! The views are MongoDB documents that fill in as the saga's events arrive:
//! the schemas name what every view has and allow the parts still to come.

use outflow_service::openapi::{BearerAuth, READER_ERRORS};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(title = "Outflow query service", description = "The read views in MongoDB, materialized from every event topic: orders, a customer's orders, product availability; and the same views live, as Server-Sent Events."),
    paths(crate::order, crate::customer_orders, crate::availability, crate::streams::order_events, crate::streams::availability_events),
    modifiers(&BearerAuth, &READER_ERRORS)
)]
pub struct ApiDoc;

/// An order's view: the order, its lines, the status timeline, and the
/// reservation, payment and shipment parts once their events arrived.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct OrderView {
    #[schema(format = "uuid")]
    order_id: String,
    customer_id: String,
    /// PENDING, CONFIRMED, CANCELLED, COMPLETED or DELIVERY_FAILED.
    status: Option<String>,
    /// Why the order ended unfulfilled (CANCELLED or DELIVERY_FAILED).
    cancel_reason: Option<String>,
    total_minor: Option<i64>,
    currency: Option<String>,
    lines: Option<Vec<serde_json::Value>>,
    /// Every event of the order: what happened, when, and when the view showed it.
    timeline: Option<Vec<serde_json::Value>>,
    reservation: Option<serde_json::Value>,
    payment: Option<serde_json::Value>,
    /// `{status: IN_TRANSIT | DELIVERED | FAILED, shipment_id, reason}` once the carrier took it.
    shipment: Option<serde_json::Value>,
}

/// One page of a customer's orders, newest first.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct CustomerOrders {
    customer_id: String,
    #[schema(minimum = 1)]
    page: u64,
    #[schema(minimum = 1, maximum = 100)]
    per_page: i64,
    /// The customer's orders in all.
    total: u64,
    orders: Vec<CustomerOrder>,
}

/// An order in its customer's list.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct CustomerOrder {
    #[schema(format = "uuid")]
    order_id: String,
    status: Option<String>,
    total_minor: Option<i64>,
    currency: Option<String>,
}

/// A product's stock as the views know it.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Availability {
    sku: String,
    on_hand: Option<i64>,
    reserved: Option<i64>,
    /// On hand minus reserved.
    available: Option<i64>,
}

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
        // The availability and its stream.
        assert_eq!(patterns.len(), 2, "{patterns:?}");
        assert!(patterns.iter().all(|p| p == outflow_events::sku::PATTERN), "{patterns:?}");
    }
}
