//! Scale-out on the real broker: instances of the runtime in one consumer
//! group, started and stopped while records come faster than they are
//! handled (so every partition's lanes hold a queue when a revoke comes),
//! then one partition stuck in transient failures for 15 s. The handler journals every attempt, and the
//! test proves, per key: records handled in order, nothing skipped, and never
//! two attempts of one key at once, on one instance or across two; that the
//! stuck partition held up no other and was handled once its failures
//! stopped; and that every offset ended committed.
//!
//! Needs the stack (`scripts/up`): Kafka and the schema registry. The test
//! makes its own topic and deletes it (and its dead-letter topic and group)
//! at the end, whatever the outcome.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, LazyLock, Mutex, MutexGuard, PoisonError,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use outflow_consumer::{runtime::run_with_lanes, ConsumerSettings, Delivery, Handler, HandlerError, Outcome};
use outflow_events::{payment::PaymentFailed, DomainEvent, Event, TimestampMillis};
use outflow_outbox::Registry;
use outflow_service::settings::KafkaLogin;
use rdkafka::{
    admin::{AdminClient, AdminOptions},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    producer::{FutureProducer, FutureRecord},
    Offset, TopicPartitionList,
};
use schema_registry_converter::{
    async_impl::avro::AvroEncoder,
    schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema},
};
use tokio::{sync::watch, task::JoinHandle};

const PARTITIONS: i32 = 3;
const KEYS: usize = 30;
const LANES: usize = 4;
/// Phase 1: a burst of this many rounds (one record per key each) ...
const BURST: i64 = 60;
/// ... then this many, one every `PACE`.
const ROUNDS: i64 = 60;
const PACE: Duration = Duration::from_millis(100);
/// How long one attempt takes, in phase 1 and after.
const SLOW: Duration = Duration::from_millis(30);
const QUICK: Duration = Duration::from_millis(2);
const STUCK_FOR: Duration = Duration::from_secs(15);
/// Phase 2: rounds produced at once while partition 0 is stuck: a third of
/// them is more than its lanes take, which once stopped every partition.
const STUCK_ROUNDS: i64 = 100;

/// What the runtime's metrics showed: the most partitions paused at once
/// since the last look, and how many rebalances the instances went through.
struct Probe {
    paused: Arc<Peak>,
    rebalances: Arc<AtomicU64>,
}

static PROBE: LazyLock<Probe> = LazyLock::new(|| Probe { paused: Arc::default(), rebalances: Arc::default() });

#[derive(Default)]
struct Peak(AtomicU64);

impl Peak {
    fn take(&self) -> u64 {
        self.0.swap(0, Ordering::SeqCst)
    }
}

impl metrics::GaugeFn for Peak {
    fn increment(&self, _: f64) {}
    fn decrement(&self, _: f64) {}
    fn set(&self, value: f64) {
        self.0.fetch_max(value as u64, Ordering::SeqCst);
    }
}

struct ProbeRecorder;

impl metrics::Recorder for ProbeRecorder {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        match key.name() {
            "consumer_rebalances_total" => metrics::Counter::from_arc(PROBE.rebalances.clone()),
            _ => metrics::Counter::noop(),
        }
    }
    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        match key.name() {
            "consumer_paused_partitions" => metrics::Gauge::from_arc(PROBE.paused.clone()),
            _ => metrics::Gauge::noop(),
        }
    }
    fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

fn endpoints() -> (String, Registry, KafkaLogin) {
    let port = |name: &str, default: u16| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let brokers = std::env::var("OUTFLOW_KAFKA_BROKERS").unwrap_or_else(|_| format!("127.0.0.1:{}", port("OUTFLOW_KAFKA_PORT", 59092)));
    // The registry's login as the scripts give it: the environment, then infra/dev.env.
    let dev: HashMap<String, String> =
        dotenvy::from_path_iter(concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/dev.env")).map(|e| e.filter_map(Result::ok).collect()).unwrap_or_default();
    let var = |name: &str| std::env::var(name).ok().or_else(|| dev.get(name).cloned());
    let registry = Registry::new(
        format!("http://127.0.0.1:{}", port("OUTFLOW_REGISTRY_PORT", 58081)),
        var("OUTFLOW_REGISTRY_USER"),
        var("OUTFLOW_REGISTRY_PASSWORD").map(Into::into),
    );
    let login = KafkaLogin::new(var("OUTFLOW_KAFKA_ADMIN_USER").unwrap_or_default(), var("OUTFLOW_KAFKA_ADMIN_PASSWORD").unwrap_or_default());
    (brokers, registry, login)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the handlers saw, across every instance.
#[derive(Default)]
struct Journal {
    /// key -> (instance, sequence) of the attempt running now.
    running: HashMap<String, (usize, i64)>,
    /// key -> the lowest sequence not handled yet: all below it were, at least once.
    next: HashMap<String, i64>,
    handled: HashMap<usize, usize>,
    /// partition -> the instance of the last attempt on it.
    owner: HashMap<i32, usize>,
    duplicates: usize,
    violations: Vec<String>,
}

/// How the handlers behave now.
#[derive(Default, Clone, Copy)]
struct Behaviour {
    slow: bool,
    stuck: Option<(i32, Instant)>,
}

#[derive(Default)]
struct Lab {
    journal: Mutex<Journal>,
    behaviour: Mutex<Behaviour>,
}

impl Lab {
    fn handler(self: &Arc<Self>, instance: usize) -> Handler {
        let lab = self.clone();
        Arc::new(move |delivery| {
            let lab = lab.clone();
            Box::pin(async move { lab.handle(instance, delivery).await })
        })
    }

    async fn handle(&self, instance: usize, delivery: Delivery) -> Result<Outcome, HandlerError> {
        let DomainEvent::PaymentFailed(event) = &delivery.event else {
            return Err(HandlerError::Rejected(format!("unexpected {}", delivery.event.name())));
        };
        let behaviour = *lock(&self.behaviour);
        let failing = behaviour.stuck.is_some_and(|(partition, until)| partition == delivery.partition && Instant::now() < until);
        let work = if behaviour.slow { SLOW } else { QUICK };
        self.begin(instance, delivery.partition, &event.aggregate_id, event.aggregate_version);
        // The attempt's own duration, so that overlapping attempts would overlap.
        tokio::time::sleep(work).await;
        self.end(instance, &event.aggregate_id, event.aggregate_version, !failing);
        if failing {
            return Err(HandlerError::Transient(anyhow::anyhow!("partition {} is stuck", delivery.partition)));
        }
        Ok(Outcome::Applied)
    }

    fn begin(&self, instance: usize, partition: i32, key: &str, seq: i64) {
        let mut journal = lock(&self.journal);
        if let Some((other, running)) = journal.running.get(key).copied() {
            journal.violations.push(format!("{key}: #{seq} began on instance {instance} while #{running} ran on instance {other}"));
        }
        let next = journal.next.get(key).copied().unwrap_or(0);
        if seq > next {
            journal.violations.push(format!("{key}: #{seq} began on instance {instance} before #{next} was handled"));
        }
        journal.running.insert(key.to_owned(), (instance, seq));
        journal.owner.insert(partition, instance);
    }

    fn end(&self, instance: usize, key: &str, seq: i64, success: bool) {
        let mut journal = lock(&self.journal);
        journal.running.remove(key);
        if !success {
            return;
        }
        *journal.handled.entry(instance).or_default() += 1;
        let next = journal.next.entry(key.to_owned()).or_default();
        if seq == *next {
            *next += 1;
        } else if seq < *next {
            journal.duplicates += 1;
        }
    }

    fn handled_by(&self, instance: usize) -> usize {
        lock(&self.journal).handled.get(&instance).copied().unwrap_or(0)
    }

    /// Whether every key of `keys` was handled up to (excluding) `end`.
    fn done(&self, keys: &[String], end: i64) -> bool {
        let journal = lock(&self.journal);
        keys.iter().all(|key| journal.next.get(key).copied().unwrap_or(0) >= end)
    }

    /// Fails with the first ordering violations seen so far.
    fn in_order(&self) -> Result<()> {
        let journal = lock(&self.journal);
        let violations = &journal.violations;
        ensure!(violations.is_empty(), "{} ordering violations, first: {:?}", violations.len(), &violations[..violations.len().min(10)]);
        Ok(())
    }

    fn owner_of(&self, partition: i32) -> Option<usize> {
        lock(&self.journal).owner.get(&partition).copied()
    }
}

/// Produces rounds of records: in round n, record n of every key.
struct Source {
    topic: String,
    producer: FutureProducer,
    encoder: AvroEncoder,
    strategy: SubjectNameStrategy,
    keys: Vec<String>,
    rounds: i64,
    partition_of: HashMap<String, i32>,
}

impl Source {
    fn new(brokers: &str, login: &KafkaLogin, registry: &Registry, topic: &str) -> Result<Self> {
        let producer = login.client_config(brokers).set("enable.idempotence", "true").set("acks", "all").create()?;
        let strategy = SubjectNameStrategy::TopicRecordNameStrategyWithSchema(
            topic.to_owned(),
            SuppliedSchema::new(Some(PaymentFailed::full_name()), SchemaType::Avro, PaymentFailed::SCHEMA.to_owned()),
        );
        let run = uuid::Uuid::new_v4().simple().to_string();
        let keys = (0..KEYS).map(|i| format!("order-{}-{i}", &run[..8])).collect();
        let encoder = AvroEncoder::new(registry.settings());
        Ok(Source { topic: topic.to_owned(), producer, encoder, strategy, keys, rounds: 0, partition_of: HashMap::new() })
    }

    async fn round(&mut self) -> Result<()> {
        let seq = self.rounds;
        let mut payloads = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            let event = PaymentFailed {
                event_id: uuid::Uuid::now_v7().to_string(),
                aggregate_id: key.clone(),
                aggregate_version: seq,
                occurred_at: TimestampMillis(0),
                order_id: key.clone(),
                transaction_id: None,
                reason: "rebalance test".into(),
            };
            payloads.push(self.encoder.encode_struct(event, &self.strategy).await.context("encoding through the registry")?);
        }
        let sends = self
            .keys
            .iter()
            .zip(&payloads)
            .map(|(key, payload)| self.producer.send(FutureRecord::to(&self.topic).key(key.as_str()).payload(payload.as_slice()), Duration::from_secs(10)));
        for (key, sent) in self.keys.clone().into_iter().zip(futures::future::join_all(sends).await) {
            let delivery = sent.map_err(|(e, _)| e).context("producing")?;
            self.partition_of.insert(key, delivery.partition);
        }
        self.rounds += 1;
        Ok(())
    }

    /// Produces `rounds` rounds, one every `pace`, and gives itself back.
    async fn paced(mut self, rounds: i64, pace: Duration) -> Result<Self> {
        let mut ticks = tokio::time::interval(pace);
        for _ in 0..rounds {
            ticks.tick().await;
            self.round().await?;
        }
        Ok(self)
    }

    fn keys_on(&self, wanted: impl Fn(i32) -> bool) -> Vec<String> {
        self.keys.iter().filter(|key| self.partition_of.get(*key).is_some_and(|p| wanted(*p))).cloned().collect()
    }
}

struct Instance {
    id: usize,
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// The instances of one consumer group, in this process.
struct Group {
    settings: ConsumerSettings,
    lab: Arc<Lab>,
    running: Vec<Instance>,
    started: usize,
}

impl Group {
    fn start(&mut self) -> usize {
        let id = self.started;
        self.started += 1;
        let (stop, mut stopping) = watch::channel(false);
        let shutdown = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        let task = tokio::spawn(run_with_lanes(self.settings.clone(), LANES, self.lab.handler(id), shutdown));
        self.running.push(Instance { id, stop, task });
        eprintln!("instance {id} started");
        id
    }

    /// Stops an instance and waits for it: returns how long its shutdown took.
    async fn stop(&mut self, id: usize) -> Result<Duration> {
        let index = self.running.iter().position(|i| i.id == id).context("no such instance")?;
        let instance = self.running.remove(index);
        let started = Instant::now();
        let _ = instance.stop.send(true);
        tokio::time::timeout(Duration::from_secs(60), instance.task).await.context("an instance did not stop within 60 s")???;
        eprintln!("instance {id} stopped in {:?}", started.elapsed());
        Ok(started.elapsed())
    }

    async fn stop_all(&mut self) -> Result<()> {
        let ids: Vec<usize> = self.running.iter().map(|i| i.id).collect();
        for id in ids {
            self.stop(id).await?;
        }
        Ok(())
    }
}

/// Waits until `condition` holds, for at most `deadline`; returns how long it took.
async fn wait_for(what: &str, deadline: Duration, condition: impl Fn() -> bool) -> Result<Duration> {
    let started = Instant::now();
    while !condition() {
        if started.elapsed() > deadline {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("{what}: {:?}", started.elapsed());
    Ok(started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn revokes_hand_partitions_over_in_order_and_a_stuck_partition_blocks_no_other() -> Result<()> {
    // The only recorder of this test binary (one test): set once.
    let _ = metrics::set_global_recorder(ProbeRecorder);
    let (brokers, registry, login) = endpoints();
    let topic = format!("test.rebalance.{}", uuid::Uuid::new_v4().simple());
    let settings = ConsumerSettings {
        brokers: brokers.clone(),
        group_id: format!("test-rebalance-{}", uuid::Uuid::new_v4().simple()),
        topics: vec![topic.clone()],
        registry: registry.clone(),
        login: login.clone(),
    };
    outflow_consumer::topics::ensure(login.client_config(&brokers), &settings.topics, &[format!("{topic}.dlq")]).await?;
    let lab = Arc::new(Lab::default());
    let mut group = Group { settings: settings.clone(), lab: lab.clone(), running: Vec::new(), started: 0 };
    let outcome = match Source::new(&brokers, &login, &registry, &topic) {
        Ok(source) => scenario(&lab, &mut group, source).await,
        Err(e) => Err(e),
    };
    let stopped = group.stop_all().await;
    let cleaned = clean_up(&brokers, &login, &topic, &settings.group_id).await;
    outcome.and(stopped).and(cleaned)
}

async fn scenario(lab: &Arc<Lab>, group: &mut Group, mut source: Source) -> Result<()> {
    source.round().await?;
    let mut partitions: Vec<i32> = source.partition_of.values().copied().collect();
    partitions.sort_unstable();
    partitions.dedup();
    ensure!(partitions.len() == PARTITIONS as usize, "the keys did not spread over every partition: {partitions:?}");
    let source = rebalances_under_load(lab, group, source).await?;
    let source = stuck_partition(lab, group, source).await?;
    let remaining: Vec<usize> = group.running.iter().map(|i| i.id).collect();
    for id in remaining {
        group.stop(id).await?;
    }
    eprintln!("rebalances (assign + revoke): {}", PROBE.rebalances.load(Ordering::SeqCst));
    verdict(lab, &source)?;
    everything_committed(&group.settings, &source.topic)
}

/// Phase 1: a joins and finds a burst (more than the lanes take: partitions
/// are paused), b joins, a leaves, c joins, while records keep coming faster
/// than the lanes of a partition handle them.
async fn rebalances_under_load(lab: &Arc<Lab>, group: &mut Group, mut source: Source) -> Result<Source> {
    lock(&lab.behaviour).slow = true;
    // Produced before a starts, so that a fetches it at once.
    for _ in 0..BURST {
        source.round().await?;
    }
    let a = group.start();
    wait_for("instance a handles records", Duration::from_secs(60), || lab.handled_by(a) >= 10).await?;
    let producing = tokio::spawn(source.paced(ROUNDS, PACE));
    let b = group.start();
    wait_for("instance b takes partitions over", Duration::from_secs(60), || lab.handled_by(b) >= 20).await?;
    group.stop(a).await?;
    let before = lab.handled_by(b);
    wait_for("instance b goes on alone", Duration::from_secs(60), || lab.handled_by(b) >= before + 50).await?;
    let c = group.start();
    wait_for("instance c takes partitions over", Duration::from_secs(60), || lab.handled_by(c) >= 20).await?;
    let source = producing.await??;
    let (keys, end) = (source.keys.clone(), source.rounds);
    wait_for("every record of phase 1 handled", Duration::from_secs(150), || lab.done(&keys, end)).await?;
    lock(&lab.behaviour).slow = false;
    lab.in_order()?;
    ensure!(PROBE.paused.take() >= 1, "no partition was paused (their lanes never filled?)");
    Ok(source)
}

/// Phase 2: partition 0 fails transiently for 15 s while it gets far more
/// records than its lanes take. The others must go on within seconds, also
/// across a rebalance (the instance retrying it leaves: its retries must not
/// hold its shutdown), and partition 0 must be handled, in order and
/// complete, once its failures stop.
async fn stuck_partition(lab: &Arc<Lab>, group: &mut Group, mut source: Source) -> Result<Source> {
    const STUCK: i32 = 0;
    let until = Instant::now() + STUCK_FOR;
    lock(&lab.behaviour).stuck = Some((STUCK, until));
    // Who retries it is who attempted it last: not an instance of phase 1.
    lock(&lab.journal).owner.remove(&STUCK);
    let (others, stuck) = (source.keys_on(|p| p != STUCK), source.keys_on(|p| p == STUCK));
    others_go_on(lab, &mut source, &others, STUCK_ROUNDS, "while one is stuck").await?;
    ensure!(Instant::now() < until && !lab.done(&stuck, source.rounds), "the stuck partition was not stuck while the others went on");
    ensure!(PROBE.paused.take() >= 1, "the stuck partition was never paused");

    wait_for("an attempt on the stuck partition", Duration::from_secs(10), || lab.owner_of(STUCK).is_some()).await?;
    let retrying = lab.owner_of(STUCK).context("the stuck partition has no owner")?;
    let took = group.stop(retrying).await?;
    ensure!(took < Duration::from_secs(5), "the instance retrying the stuck partition took {took:?} to stop: its retries held the shutdown");
    others_go_on(lab, &mut source, &others, 10, "after the rebalance, one still stuck").await?;

    let (end, deadline) = (source.rounds, until.saturating_duration_since(Instant::now()) + Duration::from_secs(40));
    wait_for("the stuck partition, once its failures stopped", deadline, || lab.done(&stuck, end)).await?;
    ensure!(Instant::now() >= until, "the stuck partition was handled while it still failed");
    Ok(source)
}

/// Produces `rounds` rounds at once and waits (a few seconds at most) until
/// the keys `others` were handled to the end.
async fn others_go_on(lab: &Lab, source: &mut Source, others: &[String], rounds: i64, when: &str) -> Result<()> {
    for _ in 0..rounds {
        source.round().await?;
    }
    let end = source.rounds;
    wait_for(&format!("the other partitions, {when}"), Duration::from_secs(10), || lab.done(others, end)).await?;
    Ok(())
}

fn verdict(lab: &Lab, source: &Source) -> Result<()> {
    lab.in_order()?;
    let journal = lock(&lab.journal);
    eprintln!("handled per instance: {:?}; redelivered and handled again: {}", journal.handled, journal.duplicates);
    for key in &source.keys {
        let next = journal.next.get(key).copied().unwrap_or(0);
        ensure!(next == source.rounds, "{key}: handled up to #{next} of {}", source.rounds);
    }
    ensure!(journal.running.is_empty(), "attempts still running after every instance stopped: {:?}", journal.running);
    Ok(())
}

/// Every partition's committed offset is its end, and nothing was dead-lettered.
fn everything_committed(settings: &ConsumerSettings, topic: &str) -> Result<()> {
    let consumer: BaseConsumer = settings.login.client_config(&settings.brokers).set("group.id", &settings.group_id).create()?;
    let mut wanted = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        wanted.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(wanted, Duration::from_secs(10))?;
    for partition in 0..PARTITIONS {
        let (_, end) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
        let offset = committed.find_partition(topic, partition).map(|e| e.offset());
        ensure!(offset == Some(Offset::Offset(end)), "{topic}[{partition}]: committed {offset:?}, end {end}");
    }
    let (_, dead) = consumer.fetch_watermarks(&format!("{topic}.dlq"), 0, Duration::from_secs(10))?;
    ensure!(dead == 0, "{dead} records were dead-lettered");
    Ok(())
}

async fn clean_up(brokers: &str, login: &KafkaLogin, topic: &str, group: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = login.client_config(brokers).create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let dead_letters = format!("{topic}.dlq");
    for result in admin.delete_topics(&[topic, &dead_letters], &options).await? {
        result.map_err(|(topic, code)| anyhow::anyhow!("deleting {topic}: {code}"))?;
    }
    // The group is empty once every instance stopped; a leftover is harmless.
    let _ = admin.delete_groups(&[group], &options).await;
    Ok(())
}
