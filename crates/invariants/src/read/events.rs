//! The three event topics, decoded with the schema registry (Confluent
//! framing, as `crates/consumer/src/decode.rs` decodes them) and kept as
//! an [`EventLog`]: per aggregate, each distinct event's type, id, version
//! and the one number a rule needs. Records whose key is out of scope are
//! counted but never decoded; poison (`poison-` keys) is skipped.

use std::time::Duration;

use anyhow::bail;
use outflow_events::{registry::SchemaLookup, AggregateType, DomainEvent};
use rdkafka::{message::OwnedMessage, Message};
use schema_registry_converter::async_impl::avro::AvroDecoder;

use super::{kafka::TopicReader, Keys};
use crate::{
    report::Offence,
    snapshot::{EventLog, Recorded},
    Sources,
};

pub async fn read(sources: &Sources, keys: &Keys, deadline: Duration) -> anyhow::Result<EventLog> {
    let decoder = AvroDecoder::new(sources.registry()?);
    let mut log = EventLog::default();
    for topic in AggregateType::ALL.map(AggregateType::topic) {
        let Some(mut reader) = TopicReader::open(&sources.kafka(), &topic, deadline)? else {
            continue;
        };
        while let Some(message) = reader.next(|m| keys.keeps(m.key())).await? {
            match decode(sources, &decoder, &message).await {
                Ok(event) => match recorded(&event) {
                    Some(recorded) => log.add(event.aggregate_id(), recorded),
                    None => log.undecodable.push(offence(&message, &format!("event id {:?} is not a UUID", event.event_id()))),
                },
                Err(Failure::Registry(reason)) => bail!("the schema registry at {} is not usable: {reason}", sources.settings.registry_url),
                Err(Failure::NotAnEvent(reason)) => log.undecodable.push(offence(&message, &reason)),
            }
        }
        log.records_read += reader.records_read;
    }
    Ok(log)
}

enum Failure {
    Registry(String),
    NotAnEvent(String),
}

async fn decode(sources: &Sources, decoder: &AvroDecoder, message: &OwnedMessage) -> Result<DomainEvent, Failure> {
    let payload = message.payload().filter(|p| p.len() > 5 && p[0] == 0).ok_or_else(|| Failure::NotAnEvent("not Confluent-framed Avro".into()))?;
    let decoded = match decoder.decode(Some(payload)).await {
        Ok(decoded) => decoded,
        Err(e) => {
            decoder.remove_errors_from_cache();
            let text = format!("{} {}", e.error, e.cause.as_deref().unwrap_or_default());
            let id = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
            match SchemaLookup::of(sources.registry_request(&SchemaLookup::url(&sources.settings.registry_url, id))).await {
                SchemaLookup::Unavailable(reason) => return Err(Failure::Registry(format!("{reason} ({text})"))),
                SchemaLookup::Unknown => return Err(Failure::NotAnEvent(format!("the registry has no schema {id}"))),
                // Known: one more attempt tells a bad body from a lookup that failed a moment ago.
                SchemaLookup::Known => {
                    decoder.decode(Some(payload)).await.map_err(|e| Failure::NotAnEvent(format!("{} {}", e.error, e.cause.as_deref().unwrap_or_default())))?
                }
            }
        }
    };
    let name = decoded.name.map(|n| n.fullname(None)).unwrap_or_default();
    DomainEvent::from_avro(&name, decoded.value).map_err(|e| Failure::NotAnEvent(e.to_string()))
}

fn offence(message: &OwnedMessage, reason: &str) -> Offence {
    let key = message.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_else(|| "(no key)".into());
    Offence::new(key, format!("{}/{}@{} is not an event: {reason}", message.topic(), message.partition(), message.offset()))
}

/// What the rules keep of an event; None when its id is not a UUID.
pub fn recorded(event: &DomainEvent) -> Option<Recorded> {
    use DomainEvent::*;
    let (version, amount) = match event {
        OrderPlaced(e) => (e.aggregate_version, e.total_minor),
        OrderConfirmed(e) => (e.aggregate_version, 0),
        OrderCancelled(e) => (e.aggregate_version, 0),
        OrderCompleted(e) => (e.aggregate_version, 0),
        OrderDeliveryFailed(e) => (e.aggregate_version, 0),
        StockReturned(e) => (e.aggregate_version, 0),
        ShipmentRequested(e) => (e.aggregate_version, 0),
        ShipmentDelivered(e) => (e.aggregate_version, 0),
        ShipmentFailed(e) => (e.aggregate_version, 0),
        StockReserved(e) => (e.aggregate_version, 0),
        StockRejected(e) => (e.aggregate_version, 0),
        StockReleased(e) => (e.aggregate_version, 0),
        StockCommitted(e) => (e.aggregate_version, 0),
        ProductCreated(e) => (e.aggregate_version, i64::from(e.on_hand)),
        StockAdjusted(e) => (e.aggregate_version, i64::from(e.delta)),
        PaymentRequested(e) => (e.aggregate_version, e.amount_minor),
        PaymentCaptured(e) => (e.aggregate_version, e.amount_minor),
        PaymentFailed(e) => (e.aggregate_version, 0),
        PaymentRefunded(e) => (e.aggregate_version, e.amount_minor),
    };
    let event_id = uuid::Uuid::parse_str(event.event_id()).ok()?;
    Some(Recorded { kind: event.name(), event_id, version, amount })
}
