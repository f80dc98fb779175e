//! # Layout
//!
//! The runtime every Outflow consumer runs on:
//!
//! - [`decode`]: a Kafka record to a [`Delivery`] (the event, its id, its
//!   trace context), through the schema registry with schemas cached by id;
//!   the expected failures ([`Undecodable`]) are what goes to a dead-letter topic;
//! - [`runtime`]: the consumer group loop: a poll thread of its own, lanes
//!   by key per partition (ordered per aggregate, parallel otherwise); retries
//!   with capped backoff for transient errors (never skipping an event, never
//!   holding up the poll: a partition in retries or full is paused); dead
//!   letters with their reason; the offset is stored only after the handler's
//!   effect is durable; a revoke lets the events in flight finish and commits
//!   before the partition moves on; graceful shutdown;
//! - [`topics`]: creates the event and dead-letter topics a consumer needs;
//! - [`context`]: the consumer's callbacks: rebalances (where a revoke ends
//!   the ownership of partitions) and commits;
//! - [`service`]: a consumer process: settings, `/healthz`, `/metrics`, the loop.
//!
//! A handler is an async function from a [`Delivery`] to `Result<Outcome,
//! HandlerError>`; it must be idempotent (inbox row or version guard in the
//! same write as its effect), because every event may be delivered again.

pub mod context;
pub mod decode;
pub mod runtime;
pub mod service;
pub mod topics;

pub use decode::{Delivery, Undecodable};
pub use runtime::{handler, run, ConsumerSettings, Dispatch, Handler, HandlerError, Outcome};

/// The log line of an event handled again and found already applied (inbox
/// row or version guard); the line's span carries the event's id and type.
pub const REDELIVERED: &str = "redelivered: seen before, nothing changed";

/// Database failures are transient (retry), except a broken integrity rule,
/// which retrying cannot fix (dead letter).
pub fn db(error: sqlx::Error) -> HandlerError {
    match &error {
        sqlx::Error::Database(e) if e.code().is_some_and(|c| c.starts_with("23")) => HandlerError::Rejected(format!("integrity: {e}")),
        _ => HandlerError::Transient(anyhow::Error::new(error).context("database")),
    }
}
