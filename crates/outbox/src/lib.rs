//! # Layout
//!
//! The only path by which Outflow's services emit events:
//!
//! - [`Outbox::append`]: encode an event through the schema registry (Confluent
//!   framing; subject = topic + record name, so one topic carries several event
//!   types; schema ids cached per subject), insert it into the caller's `outbox`
//!   table inside the caller's transaction, and delete the row again in the same
//!   transaction (the WAL keeps the insert, which is all Debezium reads);
//! - [`Outbox::register_all`]: register every schema at start, so a service
//!   whose events the registry would refuse does not become ready;
//! - [`inbox`]: claiming a consumed event id in the step's own transaction;
//! - [`trace`]: the W3C trace context that travels in the outbox row (and so in
//!   the Kafka headers), so one order is one trace across services;
//! - [`new_event_id`], [`now_millis`]: UUIDv7 event ids and event timestamps;
//! - `sql/outbox.sql`: the outbox, heartbeat and inbox tables, which each write
//!   service links into its migrations.

pub mod inbox;
pub mod registry;
pub mod trace;

use outflow_events::{AggregateType, DomainEvent, Event};
use schema_registry_converter::{
    async_impl::avro::AvroEncoder,
    error::SRCError,
    schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema},
};
use sqlx::PgConnection;
use tracing::instrument;
use uuid::Uuid;

pub use registry::Registry;
pub use trace::TraceContext;

/// Why an event could not be appended.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("the schema registry refused or could not encode {event_type}: {source}")]
    Encode { event_type: &'static str, source: SRCError },
    #[error("writing the outbox row failed")]
    Database(#[from] sqlx::Error),
    #[error("event id {0} is not a UUID")]
    EventId(String),
}

/// Encodes events through the schema registry and appends them to an outbox.
pub struct Outbox {
    encoder: AvroEncoder,
}

impl Outbox {
    pub fn new(registry: &Registry) -> Self {
        Outbox { encoder: AvroEncoder::new(registry.settings()) }
    }

    /// An outbox whose schemas are registered (see [`Outbox::register_all`]):
    /// a saga step then encodes from the cache and never calls the registry
    /// while its transaction holds row locks.
    pub async fn registered(registry: &Registry) -> anyhow::Result<Self> {
        let outbox = Outbox::new(registry);
        outbox.register_all().await.map_err(|e| anyhow::anyhow!("registering the event schemas at {}: {e}", registry.url))?;
        Ok(outbox)
    }

    /// Registers the schema of every event type under its topic + record name
    /// subject. The registry's compatibility check applies: an incompatible
    /// schema fails here, at start, instead of at the first order.
    pub async fn register_all(&self) -> Result<(), OutboxError> {
        for (name, aggregate, schema) in DomainEvent::catalog() {
            let strategy = strategy(aggregate, name, schema);
            self.encoder
                .get_schema_and_id(&strategy.get_subject().map_err(|source| OutboxError::Encode { event_type: name, source })?, strategy)
                .await
                .map_err(|source| OutboxError::Encode { event_type: name, source })?;
        }
        Ok(())
    }

    /// Appends `event` to the outbox inside the caller's transaction.
    #[instrument(skip_all, fields(event_type = E::NAME, event_id = event.event_id(), aggregate_id = event.aggregate_id()), err)]
    pub async fn append<E: Event>(&self, tx: &mut PgConnection, event: &E, trace: &TraceContext) -> Result<(), OutboxError> {
        let payload = self.encode(event).await?;
        let id = Uuid::parse_str(event.event_id()).map_err(|_| OutboxError::EventId(event.event_id().to_owned()))?;
        sqlx::query("insert into outbox (id, aggregatetype, aggregateid, type, payload, traceparent) values ($1, $2, $3, $4, $5, $6)")
            .bind(id)
            .bind(E::AGGREGATE_TYPE.as_str())
            .bind(event.aggregate_id())
            .bind(E::NAME)
            .bind(&payload)
            .bind(trace.to_header())
            .execute(&mut *tx)
            .await?;
        sqlx::query("delete from outbox where id = $1").bind(id).execute(&mut *tx).await?;
        Ok(())
    }
}

impl Outbox {
    /// `event` as its outbox row's payload: Confluent-framed Avro under its
    /// topic + record name subject.
    pub async fn encode<E: Event>(&self, event: &E) -> Result<Vec<u8>, OutboxError> {
        let strategy = strategy(E::AGGREGATE_TYPE, E::NAME, E::SCHEMA);
        self.encoder.encode_struct(event, &strategy).await.map_err(|source| OutboxError::Encode { event_type: E::NAME, source })
    }
}

fn strategy(aggregate: AggregateType, name: &str, schema: &str) -> SubjectNameStrategy {
    SubjectNameStrategy::TopicRecordNameStrategyWithSchema(
        aggregate.topic(),
        SuppliedSchema::new(Some(format!("{}.{name}", outflow_events::NAMESPACE)), SchemaType::Avro, schema.to_owned()),
    )
}

/// A new event id: UUIDv7, so ids sort by creation time.
pub fn new_event_id() -> String {
    Uuid::now_v7().to_string()
}

/// Milliseconds since the Unix epoch, for `occurred_at`.
pub fn now_millis() -> outflow_events::TimestampMillis {
    outflow_events::TimestampMillis(chrono::Utc::now().timestamp_millis())
}
