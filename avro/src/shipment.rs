//! Events on `outflow.shipment.events`, keyed by order id (one shipment per order).

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use crate::events;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct ShipmentRequested {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub order_id: String,
    pub customer_id: String,
    pub shipment_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct ShipmentDelivered {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub order_id: String,
    pub shipment_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct ShipmentFailed {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub order_id: String,
    pub shipment_id: String,
    pub reason: String,
}

events!(Shipment: ShipmentRequested, ShipmentDelivered, ShipmentFailed);
