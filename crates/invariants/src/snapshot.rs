//! The rows, records and documents a check reads, as plain data: the rules
//! in [`crate::rules`] decide over these alone, so each can be tested
//! without a stack.

use std::collections::HashMap;

use uuid::Uuid;

use crate::report::Offence;

/// A quantity of one SKU, in an order or a reservation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Line {
    pub sku: String,
    pub quantity: i64,
}

#[derive(Clone, Debug)]
pub struct OrderRow {
    pub id: Uuid,
    pub status: String,
    pub cancel_reason: Option<String>,
    pub total_minor: i64,
    pub version: i64,
    /// Milliseconds since `created_at`, by the database's clock.
    pub age_ms: i64,
    /// Summed per SKU, sorted by SKU.
    pub items: Vec<Line>,
}

#[derive(Clone, Debug)]
pub struct PaymentRow {
    pub order_id: Uuid,
    pub status: String,
    pub amount_minor: i64,
    pub transaction_id: Option<String>,
    /// The provider reported a `settlement` or `capture` for this order.
    pub captured_at_provider: bool,
}

/// An order's shipment: REQUESTED, IN_TRANSIT, DELIVERED or FAILED.
#[derive(Clone, Debug)]
pub struct ShipmentRow {
    pub order_id: Uuid,
    pub status: String,
}

#[derive(Clone, Debug)]
pub struct ReservationRow {
    pub order_id: Uuid,
    pub status: String,
    /// Sorted by SKU.
    pub lines: Vec<Line>,
}

/// A product with what the reservation tables say about its SKU, read in
/// the same snapshot as the product row.
#[derive(Clone, Debug)]
pub struct ProductRow {
    pub sku: String,
    pub on_hand: i64,
    pub reserved: i64,
    /// Sum of the lines of RESERVED reservations.
    pub held: i64,
    /// Sum of the lines of COMMITTED reservations.
    pub sold: i64,
}

/// One distinct event of an aggregate, as the event topics carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The record name, e.g. `StockReserved`.
    pub kind: &'static str,
    pub event_id: Uuid,
    pub version: i64,
    /// What the rules need of the body: `on_hand` of ProductCreated, `delta`
    /// of StockAdjusted, `amount_minor` of the payment events, `total_minor`
    /// of OrderPlaced; 0 otherwise.
    pub amount: i64,
}

/// The events read from the topics, by aggregate id (an order id or a SKU).
/// A record seen twice with the same event id (at-least-once delivery by
/// Connect) is kept once.
#[derive(Clone, Debug, Default)]
pub struct EventLog {
    pub by_aggregate: HashMap<String, Vec<Recorded>>,
    /// Records of the event topics that are not events (not poison).
    pub undecodable: Vec<Offence>,
    pub records_read: u64,
    /// Records of the scope whose event id was already read: the same event
    /// on Kafka more than once (Connect's at-least-once delivery).
    pub redelivered: u64,
}

impl EventLog {
    pub fn add(&mut self, aggregate: &str, event: Recorded) {
        let events = match self.by_aggregate.get_mut(aggregate) {
            Some(events) => events,
            None => self.by_aggregate.entry(aggregate.to_owned()).or_default(),
        };
        if events.iter().any(|e| e.event_id == event.event_id && e.kind == event.kind) {
            self.redelivered += 1;
        } else {
            events.push(event);
        }
    }

    pub fn of(&self, aggregate: &str) -> &[Recorded] {
        self.by_aggregate.get(aggregate).map_or(&[], Vec::as_slice)
    }

    pub fn event_ids(&self) -> Vec<Uuid> {
        self.by_aggregate.values().flatten().map(|e| e.event_id).collect()
    }
}

/// The fields of an `order_views` document that the tables also hold.
#[derive(Clone, Debug, Default)]
pub struct OrderView {
    pub status: Option<String>,
    pub order_version: Option<i64>,
    pub payment_status: Option<String>,
    pub reservation_status: Option<String>,
    pub shipment_status: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct ProductView {
    pub on_hand: Option<i64>,
    pub reserved: Option<i64>,
    pub available: Option<i64>,
}

/// An event id that a consumer's inbox holds more than once.
#[derive(Clone, Debug)]
pub struct InboxDuplicate {
    pub database: &'static str,
    pub event_id: Uuid,
    pub rows: i64,
}

/// A record of a `.dlq` topic that is not deliberate poison.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub group: String,
    pub kind: String,
    pub reason: String,
}

/// Everything one check read, scoped.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub orders: Vec<OrderRow>,
    /// Order ids of the scope that the orders table does not have.
    pub missing_orders: Vec<Uuid>,
    pub payments: HashMap<Uuid, PaymentRow>,
    pub reservations: HashMap<Uuid, ReservationRow>,
    pub shipments: HashMap<Uuid, ShipmentRow>,
    pub products: Vec<ProductRow>,
    /// SKUs of the scope that the products table does not have.
    pub missing_skus: Vec<String>,
    pub events: EventLog,
    /// By order id.
    pub order_views: HashMap<String, OrderView>,
    /// The status in each order's `customer_orders` document, by order id.
    pub order_summaries: HashMap<String, String>,
    /// By SKU.
    pub product_views: HashMap<String, ProductView>,
    pub inbox_duplicates: Vec<InboxDuplicate>,
    pub dead_letters: Vec<DeadLetter>,
    pub dead_letters_read: u64,
}
