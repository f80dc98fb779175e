//! Events on `outflow.inventory.events`: product events keyed by SKU, reservation
//! events keyed by order id. Every line carries the product's stock and version
//! after the change, so a view of one product never moves back.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use crate::events;

macro_rules! stock_line {
    ($name:ident) => {
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
        #[avro(namespace = "dev.outflow.events")]
        pub struct $name {
            pub sku: String,
            pub quantity: i32,
            pub on_hand: i32,
            pub reserved: i32,
            pub product_version: i64,
        }
    };
}
stock_line!(ReservedLine);
stock_line!(ReleasedLine);
stock_line!(CommittedLine);
stock_line!(ReturnedLine);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct Shortage {
    pub sku: String,
    pub requested: i32,
    pub available: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct StockReserved {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub order_id: String,
    pub customer_id: String,
    pub total_minor: i64,
    pub currency: String,
    pub lines: Vec<ReservedLine>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct StockRejected {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub order_id: String,
    pub reason: String,
    pub shortages: Vec<Shortage>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct StockReleased {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub order_id: String,
    pub lines: Vec<ReleasedLine>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct StockCommitted {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub order_id: String,
    pub lines: Vec<CommittedLine>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct ProductCreated {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub sku: String,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub on_hand: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct StockAdjusted {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub sku: String,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub delta: i32,
    pub on_hand: i32,
    pub reserved: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct StockReturned {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub order_id: String,
    pub lines: Vec<ReturnedLine>,
}

events!(Inventory: StockReserved, StockRejected, StockReleased, StockCommitted, ProductCreated, StockAdjusted, StockReturned);
