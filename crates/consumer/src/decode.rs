//! From a Kafka record to a typed event. Decoding goes through the schema
//! registry (Confluent framing: magic byte 0, 4-byte schema id, Avro body);
//! schemas are cached by id in the decoder.

use outflow_events::registry::SchemaLookup;
use outflow_events::DomainEvent;
use outflow_outbox::Registry;
use rdkafka::message::{Headers, Message, OwnedMessage};
use schema_registry_converter::{async_impl::avro::AvroDecoder, avro_common::DecodeResult};

/// A decoded event with where it came from.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub event: DomainEvent,
    pub event_id: uuid::Uuid,
    pub traceparent: Option<String>,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The expected ways a record can be unusable: each sends it to the dead-letter topic.
#[derive(Debug, thiserror::Error)]
pub enum Undecodable {
    #[error("the record has no value")]
    EmptyPayload,
    #[error("not Confluent-framed: magic byte {0:#04x}")]
    BadMagicByte(u8),
    #[error("the registry has no schema {0}")]
    UnknownSchemaId(u32),
    #[error("the body does not decode with schema {id}: {reason}")]
    UndecodableBody { id: u32, reason: String },
    #[error(transparent)]
    UnknownEvent(#[from] outflow_events::DecodeError),
    #[error("event id {0:?} is not a UUID")]
    BadEventId(String),
}

impl Undecodable {
    /// A short, stable name for headers and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Undecodable::EmptyPayload => "empty_payload",
            Undecodable::BadMagicByte(_) => "bad_magic_byte",
            Undecodable::UnknownSchemaId(_) => "unknown_schema_id",
            Undecodable::UndecodableBody { .. } => "undecodable_body",
            Undecodable::UnknownEvent(outflow_events::DecodeError::UnknownEventType(_)) => "unknown_event_type",
            Undecodable::UnknownEvent(_) => "event_shape_mismatch",
            Undecodable::BadEventId(_) => "bad_event_id",
        }
    }
}

/// Either the record is unusable for good, or the registry could not be asked
/// now (retry later: a registry outage must not send good events to the DLQ).
#[derive(Debug, thiserror::Error)]
pub enum DecodeFailure {
    #[error(transparent)]
    Undecodable(#[from] Undecodable),
    #[error("the schema registry is unavailable: {0}")]
    RegistryUnavailable(String),
}

pub struct Decoder {
    decoder: AvroDecoder,
    registry: Registry,
    http: reqwest::Client,
}

impl Decoder {
    pub fn new(registry: &Registry) -> Self {
        Decoder { decoder: AvroDecoder::new(registry.settings()), registry: registry.clone(), http: reqwest::Client::new() }
    }

    /// A failed decode, classified by what the registry says of the id; with
    /// the schema known, one more attempt tells a bad body from a lookup that
    /// failed a moment ago.
    async fn classify(&self, payload: &[u8], id: u32, failure: String) -> Result<DecodeResult, DecodeFailure> {
        match SchemaLookup::of(self.registry.get(&self.http, &SchemaLookup::url(&self.registry.url, id))).await {
            SchemaLookup::Unavailable(reason) => Err(DecodeFailure::RegistryUnavailable(format!("{reason} ({failure})"))),
            SchemaLookup::Unknown => Err(Undecodable::UnknownSchemaId(id).into()),
            SchemaLookup::Known => self.decoder.decode(Some(payload)).await.map_err(|e| {
                self.decoder.remove_errors_from_cache();
                let reason = format!("{} {}", e.error, e.cause.as_deref().unwrap_or_default());
                // The decoder's own call to the registry failed again (the
                // scale-out test saw a loaded registry drop it): an outage to
                // wait out, not a body that can never decode.
                if e.retriable {
                    DecodeFailure::RegistryUnavailable(reason)
                } else {
                    Undecodable::UndecodableBody { id, reason }.into()
                }
            }),
        }
    }

    pub async fn decode(&self, message: &OwnedMessage) -> Result<Delivery, DecodeFailure> {
        let payload = message.payload().filter(|p| !p.is_empty()).ok_or(Undecodable::EmptyPayload)?;
        if payload[0] != 0 || payload.len() < 5 {
            return Err(Undecodable::BadMagicByte(payload[0]).into());
        }
        let id = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
        let decoded = match self.decoder.decode(Some(payload)).await {
            Ok(decoded) => decoded,
            Err(e) => {
                // Failed lookups are cached by the decoder; the next attempt must ask again.
                self.decoder.remove_errors_from_cache();
                self.classify(payload, id, format!("{} {}", e.error, e.cause.as_deref().unwrap_or_default())).await?
            }
        };
        let name = decoded.name.map(|n| n.fullname(None)).unwrap_or_default();
        let event = DomainEvent::from_avro(&name, decoded.value).map_err(Undecodable::from)?;
        let event_id = uuid::Uuid::parse_str(event.event_id()).map_err(|_| Undecodable::BadEventId(event.event_id().to_owned()))?;
        Ok(Delivery {
            event,
            event_id,
            traceparent: header(message, "traceparent"),
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        })
    }
}

pub fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    let headers = message.headers()?;
    headers.iter().find(|h| h.key == name).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned())
}
