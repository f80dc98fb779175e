//! # Layout
//!
//! - `schemas/*.avsc`: the one source of truth for every event of the saga;
//! - [`Event`]: what every event type tells the outbox and the consumers (its
//!   record name, aggregate type, topic and schema);
//! - [`order`], [`inventory`], [`payment`], [`shipment`]: one struct per event, grouped by the
//!   aggregate type whose topic carries them; each is checked against its `.avsc`
//!   by this crate's tests (Parsing Canonical Form equality);
//! - [`DomainEvent`]: a decoded event of any type, for dispatch by consumers;
//! - [`registry`]: what the schema registry says of a schema id, by its status.

pub mod inventory;
pub mod order;
pub mod payment;
pub mod registry;
pub mod shipment;
pub mod sku;

use std::collections::HashSet;

use apache_avro::{
    schema::{Name, NamespaceRef},
    AvroSchemaComponent, Schema,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

pub const NAMESPACE: &str = "dev.outflow.events";

/// Milliseconds since the Unix epoch, as Avro's `timestamp-millis`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimestampMillis(pub i64);

impl AvroSchemaComponent for TimestampMillis {
    fn get_schema_in_ctxt(_: &mut HashSet<Name>, _: NamespaceRef) -> Schema {
        Schema::TimestampMillis
    }
}

/// The aggregate types; each has one topic, `outflow.<type>.events`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggregateType {
    Order,
    Inventory,
    Payment,
    Shipment,
}

impl AggregateType {
    pub const ALL: [AggregateType; 4] = [AggregateType::Order, AggregateType::Inventory, AggregateType::Payment, AggregateType::Shipment];

    /// The value of the outbox's `aggregatetype` column, which Debezium routes by.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateType::Order => "order",
            AggregateType::Inventory => "inventory",
            AggregateType::Payment => "payment",
            AggregateType::Shipment => "shipment",
        }
    }

    pub fn topic(self) -> String {
        format!("outflow.{}.events", self.as_str())
    }
}

/// An event of the saga, as one `.avsc` defines it.
pub trait Event: Serialize + DeserializeOwned + apache_avro::AvroSchema + Send + Sync {
    /// The record name, also the outbox `type` column and the `eventType` header.
    const NAME: &'static str;
    const AGGREGATE_TYPE: AggregateType;
    /// The `.avsc` text: what the outbox registers with the schema registry.
    const SCHEMA: &'static str;

    fn event_id(&self) -> &str;
    fn aggregate_id(&self) -> &str;
    fn aggregate_version(&self) -> i64;
    /// When it happened, in its transaction (milliseconds since the epoch).
    fn occurred_at(&self) -> i64;

    fn full_name() -> String {
        format!("{NAMESPACE}.{}", Self::NAME)
    }
}

macro_rules! events {
    ($aggregate:ident: $($name:ident),+ $(,)?) => {
        $(
            impl $crate::Event for $name {
                const NAME: &'static str = stringify!($name);
                const AGGREGATE_TYPE: $crate::AggregateType = $crate::AggregateType::$aggregate;
                const SCHEMA: &'static str =
                    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/", stringify!($name), ".avsc"));
                fn event_id(&self) -> &str { &self.event_id }
                fn aggregate_id(&self) -> &str { &self.aggregate_id }
                fn aggregate_version(&self) -> i64 { self.aggregate_version }
                fn occurred_at(&self) -> i64 { self.occurred_at.0 }
            }
        )+
    };
}
pub(crate) use events;

macro_rules! domain_event {
    ($($name:ident => $module:ident),+ $(,)?) => {
        /// Any decoded event, by its record name.
        #[derive(Clone, Debug, PartialEq)]
        pub enum DomainEvent {
            $($name($module::$name)),+
        }

        impl DomainEvent {
            /// Turns a registry-decoded Avro value into the event its record name names.
            pub fn from_avro(record_name: &str, value: apache_avro::types::Value) -> Result<Self, DecodeError> {
                match record_name.rsplit('.').next().unwrap_or(record_name) {
                    $(stringify!($name) => apache_avro::from_value(&value)
                        .map(DomainEvent::$name)
                        .map_err(|e| DecodeError::Shape(record_name.to_owned(), e.to_string())),)+
                    other => Err(DecodeError::UnknownEventType(other.to_owned())),
                }
            }

            pub fn name(&self) -> &'static str {
                match self { $(DomainEvent::$name(_) => stringify!($name)),+ }
            }

            pub fn event_id(&self) -> &str {
                match self { $(DomainEvent::$name(e) => Event::event_id(e)),+ }
            }

            pub fn aggregate_id(&self) -> &str {
                match self { $(DomainEvent::$name(e) => Event::aggregate_id(e)),+ }
            }

            /// When it happened (milliseconds since the epoch).
            pub fn occurred_at(&self) -> i64 {
                match self { $(DomainEvent::$name(e) => Event::occurred_at(e)),+ }
            }

            /// Every event type with its schema, for registration and the compatibility gate.
            pub fn catalog() -> Vec<(&'static str, AggregateType, &'static str)> {
                vec![$((stringify!($name), <$module::$name as Event>::AGGREGATE_TYPE, <$module::$name as Event>::SCHEMA)),+]
            }

            /// The schemas derived from the Rust types, to compare with the `.avsc` files.
            pub fn derived_schemas() -> Vec<(&'static str, Schema)> {
                vec![$((stringify!($name), <$module::$name as apache_avro::AvroSchema>::get_schema())),+]
            }
        }
    };
}

domain_event! {
    OrderPlaced => order, OrderConfirmed => order, OrderCancelled => order,
    OrderCompleted => order, OrderDeliveryFailed => order,
    StockReserved => inventory, StockRejected => inventory, StockReleased => inventory,
    StockCommitted => inventory, ProductCreated => inventory, StockAdjusted => inventory,
    StockReturned => inventory,
    PaymentRequested => payment, PaymentCaptured => payment, PaymentFailed => payment,
    PaymentRefunded => payment,
    ShipmentRequested => shipment, ShipmentDelivered => shipment, ShipmentFailed => shipment,
}

/// Why a registry-decoded value is not an event this crate knows.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("unknown event type {0}")]
    UnknownEventType(String),
    #[error("{0} does not match its Rust type: {1}")]
    Shape(String, String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rust_type_matches_its_avsc_file() {
        let catalog = DomainEvent::catalog();
        assert_eq!(catalog.len(), 19);
        for ((name, _, avsc), (derived_name, derived)) in catalog.into_iter().zip(DomainEvent::derived_schemas()) {
            assert_eq!(name, derived_name);
            let file = Schema::parse_str(avsc).unwrap_or_else(|e| panic!("{name}.avsc does not parse: {e}"));
            assert_eq!(file.canonical_form(), derived.canonical_form(), "{name}: the Rust type and schemas/{name}.avsc disagree");
        }
    }

    #[test]
    fn every_schema_file_is_in_the_catalog() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");
        let mut files: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".avsc").to_owned()).collect();
        files.sort();
        let mut names: Vec<String> = DomainEvent::catalog().iter().map(|(n, _, _)| n.to_string()).collect();
        names.sort();
        assert_eq!(files, names);
    }

    #[test]
    fn an_event_round_trips_through_its_schema() {
        let event = payment::PaymentFailed {
            event_id: "e".into(),
            aggregate_id: "o".into(),
            aggregate_version: 3,
            occurred_at: TimestampMillis(1_700_000_000_000),
            order_id: "o".into(),
            transaction_id: None,
            reason: "denied".into(),
        };
        let schema = Schema::parse_str(<payment::PaymentFailed as Event>::SCHEMA).unwrap();
        let value = apache_avro::to_value(&event).unwrap().resolve(&schema).unwrap();
        let back = DomainEvent::from_avro("dev.outflow.events.PaymentFailed", value).unwrap();
        assert_eq!(back, DomainEvent::PaymentFailed(event));
    }

    #[test]
    fn an_unknown_record_name_is_an_unknown_event_type() {
        let err = DomainEvent::from_avro("dev.outflow.events.Nope", apache_avro::types::Value::Null).unwrap_err();
        assert_eq!(err, DecodeError::UnknownEventType("Nope".into()));
    }
}
