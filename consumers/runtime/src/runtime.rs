//! The consumer group loop.
//!
//! One task reads the group's records and hands each to the worker of its
//! partition; each worker handles its partition's events one after another
//! (order per aggregate is kept, since a key maps to one partition), and the
//! workers of different partitions run in parallel.
//!
//! An offset is stored (`enable.auto.offset.store=false`) only after the
//! handler returned, that is after its effect is durable (database commit or
//! MongoDB write); the auto-commit then commits stored offsets every second,
//! and shutdown commits them synchronously. So a crash between the effect and
//! the commit redelivers the event, and the handler's idempotency makes the
//! second delivery change nothing.

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::{Header, Headers, Message, OwnedHeaders, OwnedMessage},
    producer::{FutureProducer, FutureRecord},
    ClientConfig,
};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn, Instrument};

use crate::{context::LoggingContext, decode::{DecodeFailure, Decoder, Delivery}, topics};

#[derive(Clone, Debug)]
pub struct ConsumerSettings {
    pub brokers: String,
    pub group_id: String,
    pub topics: Vec<String>,
    pub registry_url: String,
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

const QUEUE_PER_PARTITION: usize = 512;
const MAX_BACKOFF: Duration = Duration::from_secs(10);

struct Worker {
    /// Test failpoint: `OUTFLOW_FAILPOINT_KILL_AFTER_EFFECT=<EventType>` makes the
    /// process SIGKILL itself after that event's effect is durable and before
    /// its offset is stored, the window a crash test must cover.
    kill_after_effect: Option<String>,
    consumer: Arc<StreamConsumer<LoggingContext>>,
    producer: FutureProducer,
    decoder: Decoder,
    handler: Handler,
    group: String,
    stopping: watch::Receiver<bool>,
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
pub async fn run_with_lanes(settings: ConsumerSettings, lanes: usize, handler: Handler, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let lanes = lanes.max(1);
    let dead_letter_topics: Vec<String> = settings.topics.iter().map(|t| format!("{t}.dlq")).collect();
    topics::ensure(&settings.brokers, &settings.topics, &dead_letter_topics).await?;
    let consumer: StreamConsumer<LoggingContext> = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        // Stored by the worker after the effect is durable, never by the client.
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // The broker answers a fetch as soon as a record arrives (fetch.min.bytes
        // is 1), so this bounds only how often an idle consumer asks again: at
        // 10 ms, the five consumers kept the broker at a fifth of a core when
        // nothing happened, with no gain in latency.
        .set("fetch.wait.max.ms", "100")
        .set("session.timeout.ms", "10000")
        .create_with_context(LoggingContext { group: settings.group_id.clone() })?;
    let topic_refs: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topic_refs)?;
    let consumer = Arc::new(consumer);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()?;
    let (stop, stopping) = watch::channel(false);
    let worker = Arc::new(Worker {
        kill_after_effect: std::env::var("OUTFLOW_FAILPOINT_KILL_AFTER_EFFECT").ok().filter(|v| !v.is_empty()),
        consumer: consumer.clone(),
        producer,
        decoder: Decoder::new(&settings.registry_url),
        handler,
        group: settings.group_id.clone(),
        stopping,
    });
    info!(group = %settings.group_id, topics = ?settings.topics, lanes, "consumer started");

    let mut queues: HashMap<(String, i32), mpsc::Sender<OwnedMessage>> = HashMap::new();
    let mut tasks = Vec::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            received = consumer.recv() => match received {
                Ok(message) => {
                    let message = message.detach();
                    let key = (message.topic().to_owned(), message.partition());
                    let queue = queues.entry(key.clone()).or_insert_with(|| {
                        let (tx, rx) = mpsc::channel(QUEUE_PER_PARTITION);
                        tasks.push(tokio::spawn(partition_worker(worker.clone(), rx, lanes)));
                        tx
                    });
                    if queue.send(message).await.is_err() {
                        error!(topic = %key.0, partition = key.1, "partition worker ended; stopping");
                        break;
                    }
                }
                Err(e) => warn!(group = %settings.group_id, error = %e, "consumer error"),
            },
        }
    }

    info!(group = %settings.group_id, "stopping: finishing in-flight events");
    let _ = stop.send(true);
    drop(queues);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    }
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing stored since the last commit is the common case here.
        info!(error = %e, "final commit");
    }
    info!(group = %settings.group_id, "consumer stopped");
    Ok(())
}

async fn partition_worker(worker: Arc<Worker>, mut queue: mpsc::Receiver<OwnedMessage>, lanes: usize) {
    if lanes == 1 {
        while let Some(message) = queue.recv().await {
            if *worker.stopping.borrow() || !handle(&worker, &message).await {
                return; // stopping (in the middle of retries): not stored, redelivered later
            }
            store(&worker, &message, message.offset());
        }
        return;
    }
    // Offsets handed to a lane and not finished yet, the highest handed out
    // and the highest stored: everything below the smallest in flight is done.
    let in_flight: Arc<std::sync::Mutex<InFlight>> = Arc::default();
    let mut senders = Vec::with_capacity(lanes);
    let mut lane_tasks = Vec::with_capacity(lanes);
    for _ in 0..lanes {
        let (tx, mut rx) = mpsc::channel::<OwnedMessage>(QUEUE_PER_PARTITION / lanes + 1);
        let (worker, in_flight) = (worker.clone(), in_flight.clone());
        lane_tasks.push(tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                if *worker.stopping.borrow() || !handle(&worker, &message).await {
                    return;
                }
                let mut state = in_flight.lock().expect("in-flight lock");
                state.offsets.remove(&message.offset());
                let done = state.offsets.first().map_or(state.highest, |lowest| lowest - 1);
                if done > state.stored {
                    state.stored = done;
                    store(&worker, &message, done);
                }
            }
        }));
        senders.push(tx);
    }
    while let Some(message) = queue.recv().await {
        let lane = message.key().map_or(0, |key| {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            key.hash(&mut hasher);
            hasher.finish() as usize % lanes
        });
        {
            let mut state = in_flight.lock().expect("in-flight lock");
            state.offsets.insert(message.offset());
            state.highest = state.highest.max(message.offset());
        }
        if senders[lane].send(message).await.is_err() {
            break; // that lane stopped: shutting down
        }
    }
    drop(senders);
    for task in lane_tasks {
        let _ = task.await;
    }
}

/// A partition's events between its lanes and its stored offset.
struct InFlight {
    offsets: std::collections::BTreeSet<i64>,
    highest: i64,
    stored: i64,
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight { offsets: Default::default(), highest: -1, stored: -1 }
    }
}

/// Handles one record in its own span; false when shutdown interrupted it.
async fn handle(worker: &Worker, message: &OwnedMessage) -> bool {
    let span = tracing::info_span!("event", topic = message.topic(), partition = message.partition(), offset = message.offset(), event_id = tracing::field::Empty, event_type = tracing::field::Empty);
    process(worker, message).instrument(span).await
}

/// Stores `offset` (everything up to it is done) for the next commit.
fn store(worker: &Worker, message: &OwnedMessage, offset: i64) {
    if let Err(e) = worker.consumer.store_offset(message.topic(), message.partition(), offset) {
        // The partition was revoked meanwhile: its new owner redelivers, harmlessly.
        warn!(error = %e, "offset not stored");
    }
}

/// Handles one record to the end (applied, duplicate, skipped or dead-lettered);
/// false when shutdown interrupted its retries.
async fn process(worker: &Worker, message: &OwnedMessage) -> bool {
    let mut attempt = 0u32;
    let delivery = loop {
        match worker.decoder.decode(message).await {
            Ok(delivery) => break delivery,
            Err(DecodeFailure::Undecodable(reason)) => {
                return dead_letter(worker, message, reason.kind(), &reason.to_string()).await;
            }
            Err(DecodeFailure::RegistryUnavailable(e)) => {
                if !back_off(worker, &mut attempt, &e).await {
                    return false;
                }
            }
        }
    };
    let span = tracing::Span::current();
    span.record("event_id", tracing::field::display(delivery.event_id));
    span.record("event_type", delivery.event.name());
    let event_type = delivery.event.name();
    let started = std::time::Instant::now();
    let mut attempt = 0u32;
    loop {
        match (worker.handler)(delivery.clone()).await {
            Ok(outcome) => {
                metrics::counter!("consumer_events_total", "group" => worker.group.clone(), "event_type" => event_type, "outcome" => outcome.as_str()).increment(1);
                metrics::histogram!("consumer_handle_seconds", "group" => worker.group.clone(), "event_type" => event_type).record(started.elapsed().as_secs_f64());
                tracing::debug!(outcome = outcome.as_str(), "handled");
                if outcome == Outcome::Applied && worker.kill_after_effect.as_deref() == Some(event_type) {
                    error!("failpoint: killing the process after the effect, before the offset");
                    // SAFETY: raising a signal on ourselves has no memory-safety preconditions.
                    unsafe { libc::raise(libc::SIGKILL) };
                }
                return true;
            }
            Err(HandlerError::Rejected(reason)) => return dead_letter(worker, message, "rejected", &reason).await,
            Err(HandlerError::Transient(e)) => {
                if !back_off(worker, &mut attempt, &format!("{e:#}")).await {
                    return false;
                }
            }
        }
    }
}

/// Sleeps 100 ms, 200 ms, ... up to 10 s; false when shutdown began meanwhile.
async fn back_off(worker: &Worker, attempt: &mut u32, reason: &str) -> bool {
    let delay = (Duration::from_millis(100) * 2u32.saturating_pow((*attempt).min(10))).min(MAX_BACKOFF);
    *attempt += 1;
    warn!(attempt = *attempt, retry_in_ms = delay.as_millis() as u64, reason, "transient failure; retrying");
    metrics::counter!("consumer_retries_total", "group" => worker.group.clone()).increment(1);
    let mut stopping = worker.stopping.clone();
    tokio::select! {
        _ = tokio::time::sleep(delay) => !*stopping.borrow(),
        _ = stopping.changed() => false,
    }
}

/// Copies the record to `<topic>.dlq` with why and where from; retried until
/// the broker has it, so a dead letter is never lost either.
async fn dead_letter(worker: &Worker, message: &OwnedMessage, kind: &str, reason: &str) -> bool {
    let topic = format!("{}.dlq", message.topic());
    let (partition, offset) = (message.partition().to_string(), message.offset().to_string());
    let mut headers = OwnedHeaders::new();
    if let Some(original) = message.headers() {
        for h in original.iter() {
            headers = headers.insert(Header { key: h.key, value: h.value });
        }
    }
    for (key, value) in [
        ("dlq.reason", reason),
        ("dlq.kind", kind),
        ("dlq.source.topic", message.topic()),
        ("dlq.source.partition", partition.as_str()),
        ("dlq.source.offset", offset.as_str()),
        ("dlq.consumer.group", worker.group.as_str()),
    ] {
        headers = headers.insert(Header { key, value: Some(value) });
    }
    warn!(kind, reason, dlq = %topic, "dead-lettering the record");
    let mut attempt = 0u32;
    loop {
        let mut record = FutureRecord::<[u8], [u8]>::to(&topic).headers(headers.clone());
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        match worker.producer.send(record, Duration::from_secs(10)).await {
            Ok(_) => {
                metrics::counter!("consumer_dead_letters_total", "group" => worker.group.clone(), "topic" => message.topic().to_owned(), "kind" => kind.to_owned()).increment(1);
                return true;
            }
            Err((e, _)) => {
                if !back_off(worker, &mut attempt, &format!("dead-letter produce failed: {e}")).await {
                    return false;
                }
            }
        }
    }
}
