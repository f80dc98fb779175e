//! Events on `outflow.order.events`, keyed by order id.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use crate::events;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct OrderLine {
    pub sku: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct OrderPlaced {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub customer_id: String,
    pub lines: Vec<OrderLine>,
    pub total_minor: i64,
    pub currency: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct OrderConfirmed {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub customer_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct OrderCancelled {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub customer_id: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct OrderCompleted {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub customer_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct OrderDeliveryFailed {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub customer_id: String,
    pub reason: String,
}

events!(Order: OrderPlaced, OrderConfirmed, OrderCancelled, OrderCompleted, OrderDeliveryFailed);
