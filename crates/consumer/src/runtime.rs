//! The consumer group loop.
//!
//! A poll thread (a std thread of its own, see [`poll`]) reads the group's
//! records and hands each to its partition; a partition spreads its records
//! over lanes by key ([`lane`]), so one aggregate's events run one after the
//! other, in order, while other aggregates and other partitions overlap.
//!
//! An offset is stored (`enable.auto.offset.store=false`) only after the
//! handler returned, that is after its effect is durable (database commit or
//! MongoDB write), and never past a record still unfinished in another lane
//! ([`flow::InFlight`]); the auto-commit then commits stored offsets every
//! second. So a crash between the effect and the commit redelivers the event,
//! and the handler's idempotency makes the second delivery change nothing.
//!
//! Scale-out: a revoke ([`rebalance`]) stops the partition's lanes, lets the
//! attempts in flight finish, drops what is queued, stores and commits
//! synchronously, and only then lets the rebalance go on, so the new owner
//! starts after the last event this instance applied and never beside it.
//! A partition whose lanes are full or retrying is paused, not waited for
//! ([`flow::decide`]): the others keep flowing, and retries never hold up
//! the poll loop. Shutdown gives every partition up the same way.

mod flow;
mod lane;
pub(crate) mod partition;
mod poll;
mod process;
pub(crate) mod rebalance;

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use futures::future::BoxFuture;
use rdkafka::{consumer::Consumer, ClientConfig};
use tokio::sync::oneshot;
use tracing::info;

use crate::{
    context::{Kafka, RuntimeContext},
    decode::Delivery,
    topics,
};

#[derive(Clone, Debug)]
pub struct ConsumerSettings {
    pub brokers: String,
    pub group_id: String,
    pub topics: Vec<String>,
    pub registry: outflow_outbox::Registry,
    /// The group's own Kafka login (its principal is named after the group).
    pub login: outflow_service::settings::KafkaLogin,
}

/// What a handler did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Seen before (inbox row or version guard): nothing changed.
    Duplicate,
    /// Not for this consumer, or nothing to do in the current state.
    Skipped,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The database, MongoDB or a provider is unavailable: retry, never skip.
    #[error("transient: {0:#}")]
    Transient(#[from] anyhow::Error),
    /// The event can never be applied: it goes to the dead-letter topic.
    #[error("rejected: {0}")]
    Rejected(String),
}

pub type Handler = Arc<dyn Fn(Delivery) -> BoxFuture<'static, Result<Outcome, HandlerError>> + Send + Sync>;

/// A consumer's steps: one call per delivery, dispatching on the event type.
pub trait Dispatch: Send + Sync + 'static {
    fn dispatch(&self, delivery: Delivery) -> impl Future<Output = Result<Outcome, HandlerError>> + Send;
}

/// The runtime's handler for a consumer's steps.
pub fn handler<T: Dispatch>(steps: Arc<T>) -> Handler {
    Arc::new(move |delivery| {
        let steps = steps.clone();
        Box::pin(async move { steps.dispatch(delivery).await })
    })
}

/// Runs the consumer until `shutdown` completes; the in-flight events finish,
/// their offsets are committed, then it returns. One event at a time per partition.
pub async fn run(settings: ConsumerSettings, handler: Handler, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    run_with_lanes(settings, 1, handler, shutdown).await
}

/// [`run`] with up to `lanes` events in flight per partition: records are
/// spread over the lanes by key, so one aggregate's events still run one after
/// the other, in order, while different aggregates overlap. A partition's
/// offset is stored only up to the lowest event still in flight, so a crash
/// redelivers (never skips) whatever was not finished.
///
/// Works on either kind of tokio runtime: the lanes are tasks of the caller's
/// runtime, the polling is a thread of its own.
pub async fn run_with_lanes(settings: ConsumerSettings, lanes: usize, handler: Handler, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let lanes = lanes.max(1);
    let dead_letter_topics: Vec<String> = settings.topics.iter().map(|t| format!("{t}.dlq")).collect();
    topics::ensure(settings.login.client_config(&settings.brokers), &settings.topics, &dead_letter_topics).await?;
    let worker = Arc::new(process::Worker::new(&settings, handler)?);
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    tokio::pin!(shutdown);
    loop {
        let spawner = partition::Spawner { worker: worker.clone(), lanes, runtime: tokio::runtime::Handle::current() };
        let ended = start_polling(&settings, spawner, stop.0.clone())?;
        info!(group = %settings.group_id, topics = ?settings.topics, lanes, "consumer started");
        tokio::pin!(ended);
        let early = tokio::select! {
            _ = &mut shutdown => None,
            ended = &mut ended => Some(ended),
        };
        let ended = match early {
            Some(ended) => ended,
            None => {
                stop.0.store(true, Ordering::Relaxed);
                ended.await
            }
        };
        match ended.map_err(|_| anyhow::anyhow!("the poll thread of {} panicked", settings.group_id))?? {
            poll::Ended::Stuck(outside) if !stop.0.load(Ordering::Relaxed) => {
                tracing::warn!(group = %settings.group_id, ?outside, "out of the group too long: starting a fresh Kafka client");
                metrics::counter!("consumer_client_restarts_total", "group" => settings.group_id.clone()).increment(1);
            }
            _ => break,
        }
    }
    info!(group = %settings.group_id, "consumer stopped");
    Ok(())
}

/// A subscribed client, polled on a thread of its own; the receiver says how
/// the thread ended.
fn start_polling(
    settings: &ConsumerSettings,
    spawner: partition::Spawner,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<oneshot::Receiver<anyhow::Result<poll::Ended>>> {
    let consumer: Kafka = consumer_config(settings).create_with_context(RuntimeContext::new(settings.group_id.clone(), spawner))?;
    let topic_refs: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topic_refs)?;
    let (ended_tx, ended) = oneshot::channel();
    std::thread::Builder::new().name(format!("poll-{}", settings.group_id)).spawn(move || {
        let _ = ended_tx.send(poll::run(consumer, &stop));
    })?;
    Ok(ended)
}

/// Tells the poll thread to stop, also when the caller drops the future of
/// [`run_with_lanes`] before it returned (the thread would poll on forever).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn consumer_config(settings: &ConsumerSettings) -> ClientConfig {
    let mut config = settings.login.client_config(&settings.brokers);
    config
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        // Stored by the poll thread after the effect is durable, never by the client.
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // The broker answers a fetch as soon as a record arrives (fetch.min.bytes
        // is 1), so this bounds only how often an idle consumer asks again: at
        // 10 ms, the five consumers kept the broker at a fifth of a core when
        // nothing happened, with no gain in latency. 500 is Kafka's default;
        // a partition resumed after a pause may wait out one such fetch.
        .set("fetch.wait.max.ms", "500")
        .set("session.timeout.ms", "10000")
        // A member learns that its group rebalances (another member joined or
        // left) only from a heartbeat's answer: at the default 3 s, each
        // partition of the group stood still for up to 3 s at every scale-out
        // step, waiting for the members that had not heard yet.
        .set("heartbeat.interval.ms", "1000");
    config
}
