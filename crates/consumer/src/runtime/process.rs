//! One record to its end: decoded through the registry, handed to the
//! handler, retried with capped exponential backoff on transient failures
//! (never skipped), or copied to the dead-letter topic. A retry waits on the
//! lane's [`Control`], so a revoke or shutdown interrupts it and the record is
//! left unstored, for the partition's next reader.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use rdkafka::{
    message::{Header, Headers, Message, OwnedHeaders, OwnedMessage},
    producer::{FutureProducer, FutureRecord},
};
use tracing::{warn, Instrument};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{lane::Control, ConsumerSettings, Handler, HandlerError, Outcome};
use crate::decode::{DecodeFailure, Decoder};

/// The longest wait between two attempts of one event: after a fault ends,
/// its partition resumes within this. At 10 s, a registry or database that
/// answered again after 3 s of trouble left partitions standing for up to
/// 10 s more (the scale-out test's limit is 5 s); during a long outage, an
/// attempt every 2 s per retrying lane costs the failing server nothing.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What every lane of the consumer shares.
pub(crate) struct Worker {
    /// Test failpoint (the `failpoints` feature, which release builds leave
    /// out): `OUTFLOW_FAILPOINT_KILL_AFTER_EFFECT=<EventType>` makes the
    /// process SIGKILL itself after that event's effect is durable and before
    /// its offset is stored, the window a crash test must cover.
    #[cfg(feature = "failpoints")]
    kill_after_effect: Option<String>,
    /// The dead-letter producer, made at the first dead letter: an idle
    /// rdkafka producer's polling thread costs about 1% of a core (its
    /// 100 ms poll spins out the last sub-millisecond of every wait).
    producer: std::sync::OnceLock<FutureProducer>,
    producer_config: rdkafka::ClientConfig,
    decoder: Decoder,
    handler: Handler,
    pub(crate) group: String,
}

impl Worker {
    pub(crate) fn new(settings: &ConsumerSettings, handler: Handler) -> anyhow::Result<Self> {
        let mut producer_config = settings.login.client_config(&settings.brokers);
        producer_config.set("enable.idempotence", "true").set("acks", "all");
        Ok(Worker {
            #[cfg(feature = "failpoints")]
            kill_after_effect: std::env::var("OUTFLOW_FAILPOINT_KILL_AFTER_EFFECT").ok().filter(|v| !v.is_empty()),
            producer: std::sync::OnceLock::new(),
            producer_config,
            decoder: Decoder::new(&settings.registry),
            handler,
            group: settings.group_id.clone(),
        })
    }
}

impl Worker {
    fn dead_letter_producer(&self) -> rdkafka::error::KafkaResult<&FutureProducer> {
        if let Some(producer) = self.producer.get() {
            return Ok(producer);
        }
        let producer: FutureProducer = self.producer_config.create()?;
        Ok(self.producer.get_or_init(|| producer))
    }
}

/// Handles one record in its own span; false when a revoke or shutdown
/// interrupted it (not finished: it must not be stored).
pub(crate) async fn handle(worker: &Worker, message: &OwnedMessage, control: &mut Control) -> bool {
    // Named at creation (the exporter takes the name then): the outbox
    // router's eventType header, before the record is decoded.
    let name = crate::decode::header(message, "eventType").unwrap_or_else(|| format!("consume {}", message.topic()));
    let span = tracing::info_span!(
        "event",
        otel.name = %format!("{} {name}", worker.group),
        otel.kind = "consumer",
        group = %worker.group,
        topic = message.topic(),
        partition = message.partition(),
        offset = message.offset(),
        event_id = tracing::field::Empty,
        event_type = tracing::field::Empty
    );
    // The span continues the trace of the step that wrote the event, so that
    // the handler's own event (TraceContext::child_of) names this span.
    let traceparent = crate::decode::header(message, "traceparent");
    let _ = span.set_parent(outflow_outbox::TraceContext::remote_context(traceparent.as_deref()));
    process(worker, message, control).instrument(span).await
}

async fn process(worker: &Worker, message: &OwnedMessage, control: &mut Control) -> bool {
    let mut retries = Retries::new();
    let delivery = loop {
        if control.revoked() {
            return false;
        }
        match worker.decoder.decode(message).await {
            Ok(delivery) => break delivery,
            Err(DecodeFailure::Undecodable(reason)) => {
                return dead_letter(worker, message, reason.kind(), &reason.to_string(), control).await;
            }
            Err(DecodeFailure::RegistryUnavailable(e)) => {
                if !back_off(worker, &mut retries, &e, control).await {
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
    let mut retries = Retries::new();
    loop {
        // An attempt is one transaction: one that began runs to its end, but
        // none begins for a partition that is no longer ours.
        if control.revoked() {
            return false;
        }
        match (worker.handler)(delivery.clone()).await {
            Ok(outcome) => {
                record_outcome(worker, event_type, outcome, started);
                return true;
            }
            Err(HandlerError::Rejected(reason)) => return dead_letter(worker, message, "rejected", &reason, control).await,
            Err(HandlerError::Transient(e)) => {
                if !back_off(worker, &mut retries, &format!("{e:#}"), control).await {
                    return false;
                }
            }
        }
    }
}

fn record_outcome(worker: &Worker, event_type: &'static str, outcome: Outcome, started: std::time::Instant) {
    metrics::counter!("consumer_events_total", "group" => worker.group.clone(), "event_type" => event_type, "outcome" => outcome.as_str()).increment(1);
    metrics::histogram!("consumer_handle_seconds", "group" => worker.group.clone(), "event_type" => event_type).record(started.elapsed().as_secs_f64());
    tracing::debug!(outcome = outcome.as_str(), "handled");
    if outcome == Outcome::Duplicate {
        // Redeliveries follow crashes and rebalances; each one is logged with
        // its event id (the span's), so that an operator (or the crash tests)
        // can tell which event came twice.
        tracing::info!("{}", crate::REDELIVERED);
    }
    #[cfg(feature = "failpoints")]
    if outcome == Outcome::Applied && worker.kill_after_effect.as_deref() == Some(event_type) {
        tracing::error!("failpoint: killing the process after the effect, before the offset");
        // SAFETY: raising a signal on ourselves has no memory-safety preconditions.
        unsafe { libc::raise(libc::SIGKILL) };
    }
}

/// The retries of one event: 100 ms, 200 ms, ... capped at 2 s, never
/// giving up (an event is never skipped for a transient failure).
struct Retries {
    delays: ExponentialBackoff,
    attempt: u32,
}

impl Retries {
    fn new() -> Self {
        let delays = ExponentialBuilder::default().with_min_delay(Duration::from_millis(100)).with_max_delay(MAX_BACKOFF).without_max_times().build();
        Retries { delays, attempt: 0 }
    }
}

/// Waits out the next delay; false when the partition was revoked or the
/// consumer began stopping meanwhile.
async fn back_off(worker: &Worker, retries: &mut Retries, reason: &str, control: &mut Control) -> bool {
    let delay = retries.delays.next().unwrap_or(MAX_BACKOFF);
    retries.attempt += 1;
    warn!(attempt = retries.attempt, retry_in_ms = delay.as_millis() as u64, reason, "transient failure; retrying");
    metrics::counter!("consumer_retries_total", "group" => worker.group.clone()).increment(1);
    control.retry_after(delay).await
}

/// Copies the record to `<topic>.dlq` with why and where from; retried until
/// the broker has it, so a dead letter is never lost either.
async fn dead_letter(worker: &Worker, message: &OwnedMessage, kind: &str, reason: &str, control: &mut Control) -> bool {
    let topic = format!("{}.dlq", message.topic());
    let headers = dead_letter_headers(worker, message, kind, reason);
    warn!(kind, reason, dlq = %topic, "dead-lettering the record");
    let mut retries = Retries::new();
    loop {
        let mut record = FutureRecord::<[u8], [u8]>::to(&topic).headers(headers.clone());
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        let producer = match worker.dead_letter_producer() {
            Ok(producer) => producer,
            Err(e) => {
                if !back_off(worker, &mut retries, &format!("dead-letter producer: {e}"), control).await {
                    return false;
                }
                continue;
            }
        };
        match producer.send(record, Duration::from_secs(10)).await {
            Ok(_) => {
                metrics::counter!("consumer_dead_letters_total", "group" => worker.group.clone(), "topic" => message.topic().to_owned(), "kind" => kind.to_owned()).increment(1);
                return true;
            }
            Err((e, _)) => {
                if !back_off(worker, &mut retries, &format!("dead-letter produce failed: {e}"), control).await {
                    return false;
                }
            }
        }
    }
}

fn dead_letter_headers(worker: &Worker, message: &OwnedMessage, kind: &str, reason: &str) -> OwnedHeaders {
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
    headers
}
