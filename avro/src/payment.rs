//! Events on `outflow.payment.events`, keyed by order id (one payment per order).

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use crate::events;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct PaymentRequested {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub order_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub provider_token: String,
    pub redirect_url: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct PaymentCaptured {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub order_id: String,
    pub transaction_id: String,
    pub amount_minor: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct PaymentFailed {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub order_id: String,
    pub transaction_id: Option<String>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "dev.outflow.events")]
pub struct PaymentRefunded {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub occurred_at: crate::TimestampMillis,
    pub order_id: String,
    pub amount_minor: i64,
    pub reason: String,
    /// "" in refunds written before the field was added.
    #[serde(default)]
    #[avro(default = "\"\"")]
    pub customer_id: String,
}

events!(Payment: PaymentRequested, PaymentCaptured, PaymentFailed, PaymentRefunded);
