//! The saga through the running stack: REST → PostgreSQL → Debezium → Kafka →
//! consumers → MongoDB, with the provider's settle delay set to 0.
//!
//! - [`max_rate`]: a closed loop of customers, each placing an order and
//!   waiting for its saga to end on Kafka before the next: the completed sagas
//!   per second at saturation, without an unbounded backlog;
//! - [`at_rate`]: an open loop at a fixed rate (half the maximum): POST →
//!   saga end, POST → view CONFIRMED and commit → view per event, read back
//!   from the views' timeline (`at` and `viewed_at`), plus the observer's
//!   commit → Kafka hops;
//! - [`SlotSampler`]: every replication slot's lag behind the WAL, once a second.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use mongodb::bson::{doc, Document};
use outflow_service::auth::{JwtKeys, Role};
use outflow_stack_tests::Stack;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use crate::{
    http1::Connection,
    live::LiveSampler,
    measure::{closed_loop, Latencies, Measurement, Percentiles},
    observer::{End, Observer},
};

pub const ORDERS_URL: &str = "127.0.0.1:7101";
const INVENTORY_URL: &str = "http://127.0.0.1:7102";
const SANDBOX_URL: &str = "http://127.0.0.1:7199";
const SAGA_DEADLINE: Duration = Duration::from_secs(60);

/// Products in the bench's shop: orders spread over them as a real shop's do,
/// so the saga is not one hot row's lock queue.
pub const PRODUCTS: usize = 32;

/// Order `n`'s lines: 1 to 3 distinct products (index, quantity).
pub fn lines(n: u64) -> Vec<(usize, i32)> {
    let count = 1 + (n % 3) as usize;
    (0..count).map(|j| (((n / 3) as usize * 7 + j * 11) % PRODUCTS, j as i32 + 1)).collect()
}

/// The bench's own customer and products in the live stack.
pub struct Shop {
    pub run_id: String,
    pub skus: Vec<String>,
    /// One bearer header per customer: orders are spread over them, as in a
    /// shop, so that no customer's rate limit is what the bench measures.
    customer_tokens: Arc<Vec<String>>,
    sandbox_before: serde_json::Value,
    http: reqwest::Client,
}

impl Shop {
    /// Creates products with stock for any run, waits until the orders side's
    /// catalog replica knows them, and sets the sandbox to settle at once.
    pub async fn open(stack: &Stack, orders_db: &PgPool) -> anyhow::Result<Shop> {
        let run_id = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
        let keys = JwtKeys::new(&SecretString::from(stack.jwt_secret.clone()));
        let admin = keys.mint("bench-admin", Role::Admin, 24 * 3600);
        let http = reqwest::Client::new();
        let skus: Vec<String> = (0..PRODUCTS).map(|i| format!("BENCH-{run_id}-{i:02}")).collect();
        for (i, sku) in skus.iter().enumerate() {
            let response = http
                .post(format!("{INVENTORY_URL}/v1/products"))
                .bearer_auth(&admin)
                .json(&json!({"sku": sku, "name": format!("Bench item {i}"), "price_minor": 100 * (i + 1), "currency": "EUR", "stock": 1_000_000}))
                .send()
                .await
                .context("creating bench products on the inventory writer (7102)")?;
            anyhow::ensure!(response.status().is_success(), "creating {sku}: {} {}", response.status(), response.text().await?);
        }
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let known: i64 = sqlx::query_scalar("select count(*) from catalog where sku = any($1)").bind(&skus).fetch_one(orders_db).await?;
            if known == skus.len() as i64 {
                break;
            }
            anyhow::ensure!(
                Instant::now() < until,
                "the orders catalog replica did not receive the bench products within 60 s: is the orders consumer running?"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let sandbox_before: serde_json::Value = http.get(format!("{SANDBOX_URL}/sandbox/behaviour")).send().await?.error_for_status()?.json().await?;
        http.put(format!("{SANDBOX_URL}/sandbox/behaviour")).json(&json!({"settle_delay_ms": 0, "failure_rate": 0.0})).send().await?.error_for_status()?;
        let customer_tokens = Arc::new(crate::write_path::customer_tokens(&keys, &format!("bench-{run_id}")));
        Ok(Shop { run_id, skus, customer_tokens, sandbox_before, http })
    }

    /// Puts the sandbox back as it was.
    pub async fn close(&self) -> anyhow::Result<()> {
        self.http.put(format!("{SANDBOX_URL}/sandbox/behaviour")).json(&self.sandbox_before).send().await?.error_for_status()?;
        Ok(())
    }

    /// Places an order of 1–3 lines; returns its id.
    /// The `authorization` header of the customer who places order `n`.
    pub fn authorization(&self, n: u64) -> &str {
        self.customer_tokens[(n % self.customer_tokens.len() as u64) as usize].as_str()
    }

    pub async fn place(&self, connection: &Connection, n: u64) -> anyhow::Result<String> {
        let items: Vec<_> = lines(n).into_iter().map(|(i, quantity)| json!({"sku": self.skus[i], "quantity": quantity})).collect();
        let request = hyper::Request::post("/v1/orders")
            .header("host", "127.0.0.1")
            .header("authorization", self.authorization(n))
            .header("content-type", "application/json")
            .header("idempotency-key", format!("{}-{n}", self.run_id))
            .body(http_body_util::Full::new(bytes::Bytes::from(serde_json::to_vec(&json!({"items": items}))?)))?;
        let (status, body) = connection.send(request).await?;
        anyhow::ensure!(status == 202, "POST /v1/orders: {status} {}", String::from_utf8_lossy(&body));
        let body: serde_json::Value = serde_json::from_slice(&body)?;
        Ok(body["order_id"].as_str().context("no order_id in the answer")?.to_owned())
    }
}

/// Completed sagas per second with `customers` customers in a closed loop.
pub async fn max_rate(shop: &Arc<Shop>, observer: &Observer, customers: usize, seconds: u64, first_n: u64) -> Measurement {
    let connections: Arc<Vec<Connection>> = Arc::new((0..customers).map(|_| Connection::new(ORDERS_URL)).collect());
    let (shop, observer) = (shop.clone(), observer.clone());
    closed_loop("sagas, closed loop", customers, seconds, move |n| {
        let (shop, observer, connections) = (shop.clone(), observer.clone(), connections.clone());
        async move {
            let worker = (n / 1_000_000_000) as usize;
            let order_id = shop.place(&connections[worker], first_n + n).await?;
            match observer.ended(&order_id, SAGA_DEADLINE).await? {
                End::Completed => Ok(()),
                End::Cancelled(reason) => anyhow::bail!("order {order_id} was cancelled: {reason}"),
            }
        }
    })
    .await
}

/// One order of the open loop whose saga completed.
#[derive(Clone, Debug)]
pub struct Placed {
    pub order_id: String,
    pub posted_at_ms: i64,
    pub saga_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct AtRate {
    pub offered_per_second: f64,
    pub seconds: f64,
    pub placed: usize,
    pub completed: usize,
    pub failed: usize,
    pub completed_per_second: f64,
    pub post_to_saga_end: Percentiles,
    pub post_to_view_confirmed: Percentiles,
    /// Per event type: commit → the view shows it.
    pub commit_to_view: Vec<(String, Percentiles)>,
    pub commit_to_view_all: Percentiles,
    /// Commit → the message on the order's stream, over the sampled orders' events.
    pub commit_to_sse: Percentiles,
    /// Sampled streams that did not show their order's confirmation.
    pub sse_failures: usize,
    /// Latency of POST → view CONFIRMED over the run: (second, p50, p99).
    #[serde(skip)]
    pub timeline: Vec<(f64, f64, f64)>,
}

/// Places orders at `rate` per second for `seconds` (open loop: a slow saga
/// never delays the next order), waits for every saga to end and then reads
/// the views' timestamps back.
pub async fn at_rate(
    shop: &Arc<Shop>,
    observer: &Observer,
    mongo: &mongodb::Database,
    rate: f64,
    seconds: u64,
    first_n: u64,
    live: Option<&LiveSampler>,
) -> anyhow::Result<AtRate> {
    let offered = offer(shop, observer, rate, seconds, first_n, live).await?;
    let (commit_to_sse, sse_failures) = match live {
        Some(live) => live.finish().await,
        None => Default::default(),
    };
    if let Some(first) = sse_failures.first() {
        eprintln!("{} of the sampled order streams failed; the first: {first}", sse_failures.len());
    }
    let views = read_views(mongo, &offered.placed).await?;
    let viewed = Viewed::of(&offered.placed, &views);
    let mut saga = Latencies::default();
    for p in &offered.placed {
        saga.record_ms(p.saga_ms);
    }
    let completed = offered.placed.len();
    Ok(AtRate {
        offered_per_second: rate,
        seconds: offered.seconds,
        placed: completed + offered.failed,
        completed,
        failed: offered.failed,
        completed_per_second: completed as f64 / offered.seconds,
        post_to_saga_end: Percentiles::of(&saga),
        post_to_view_confirmed: Percentiles::of(&viewed.to_confirmed),
        commit_to_view: viewed.per_type.iter().map(|(t, l)| (t.clone(), Percentiles::of(l))).collect(),
        commit_to_view_all: Percentiles::of(&viewed.all),
        commit_to_sse,
        sse_failures: sse_failures.len(),
        timeline: per_second(&viewed.confirmed_over_time),
    })
}

/// What the open loop placed: the orders whose sagas completed, in the order
/// they completed, and for how long orders were offered.
struct Offered {
    placed: Vec<Placed>,
    failed: usize,
    seconds: f64,
}

/// Every how many orders of the open loop one has its stream followed.
pub const LIVE_SAMPLE: u64 = 4;

async fn offer(shop: &Arc<Shop>, observer: &Observer, rate: f64, seconds: u64, first_n: u64, live: Option<&LiveSampler>) -> anyhow::Result<Offered> {
    let total = (rate * seconds as f64).round() as u64;
    let connections: Arc<Vec<Connection>> = Arc::new((0..32).map(|_| Connection::new(ORDERS_URL)).collect());
    let placed: Arc<Mutex<Vec<Placed>>> = Arc::default();
    let failed = Arc::new(AtomicU64::new(0));
    let bar = ProgressBar::new(total).with_style(ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} orders").unwrap().progress_chars("=> "));
    bar.set_message(format!("sagas at {rate:.0}/s"));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for k in 0..total {
        tokio::time::sleep_until((started + Duration::from_secs_f64(k as f64 / rate)).into()).await;
        let (shop, observer, connections, placed, failed, bar) =
            (shop.clone(), observer.clone(), connections.clone(), placed.clone(), failed.clone(), bar.clone());
        let live = live.filter(|_| k % LIVE_SAMPLE == 0).cloned();
        tasks.push(tokio::spawn(async move {
            let outcome = place_and_follow(&shop, &observer, &connections[(k % 32) as usize], first_n + k, live.as_ref()).await;
            bar.inc(1);
            match outcome {
                Ok(order) => placed.lock().unwrap().push(order),
                Err(e) => {
                    // The first failure says what goes wrong; the count says how often.
                    if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("{e:#}");
                    }
                }
            }
        }));
    }
    let seconds = started.elapsed().as_secs_f64();
    for task in tasks {
        task.await?;
    }
    bar.finish_and_clear();
    let placed = Arc::try_unwrap(placed).map_err(|_| anyhow::anyhow!("tasks still running"))?.into_inner().unwrap();
    Ok(Offered { placed, failed: failed.load(Ordering::Relaxed) as usize, seconds })
}

/// Places order `n` and waits for its saga to end; a cancelled saga is a failure.
async fn place_and_follow(shop: &Shop, observer: &Observer, connection: &Connection, n: u64, live: Option<&LiveSampler>) -> anyhow::Result<Placed> {
    let posted_at_ms = chrono::Utc::now().timestamp_millis();
    let t = Instant::now();
    let order_id = shop.place(connection, n).await?;
    if let Some(live) = live {
        live.follow(order_id.clone(), shop.authorization(n).to_owned());
    }
    let end = observer.ended(&order_id, SAGA_DEADLINE).await?;
    anyhow::ensure!(matches!(end, End::Completed), "order {order_id} was cancelled");
    Ok(Placed { order_id, posted_at_ms, saga_ms: t.elapsed().as_secs_f64() * 1000.0 })
}

/// What the views show of the placed orders.
struct Viewed {
    /// Commit → view, per event type (sorted) and over every event.
    per_type: BTreeMap<String, Latencies>,
    all: Latencies,
    /// POST → view CONFIRMED, and the same as (seconds into the run, ms).
    to_confirmed: Latencies,
    confirmed_over_time: Vec<(f64, f64)>,
}

impl Viewed {
    fn of(placed: &[Placed], views: &HashMap<String, Timeline>) -> Viewed {
        let mut viewed = Viewed { per_type: BTreeMap::new(), all: Latencies::default(), to_confirmed: Latencies::default(), confirmed_over_time: Vec::new() };
        for p in placed {
            let Some(entries) = views.get(&p.order_id) else { continue };
            for (event_type, at, viewed_at) in entries {
                let commit_to_view = (viewed_at - at) as f64;
                viewed.per_type.entry(event_type.clone()).or_default().record_ms(commit_to_view);
                viewed.all.record_ms(commit_to_view);
                if event_type == "OrderConfirmed" {
                    let latency = (viewed_at - p.posted_at_ms) as f64;
                    viewed.to_confirmed.record_ms(latency);
                    viewed.confirmed_over_time.push(((p.posted_at_ms - placed[0].posted_at_ms) as f64 / 1000.0, latency));
                }
            }
        }
        viewed
    }
}

/// (second, p50, p99) of the points that fall in each second.
fn per_second(points: &[(f64, f64)]) -> Vec<(f64, f64, f64)> {
    let mut buckets: Vec<Latencies> = Vec::new();
    for (t, v) in points {
        let i = *t as usize;
        if buckets.len() <= i {
            buckets.resize(i + 1, Latencies::default());
        }
        buckets[i].record_ms(*v);
    }
    buckets.into_iter().enumerate().filter(|(_, b)| b.count() > 0).map(|(i, b)| (i as f64, b.quantile_ms(0.5), b.quantile_ms(0.99))).collect()
}

/// An order view's timeline: (event type, committed at, viewed at) in ms.
type Timeline = Vec<(String, i64, i64)>;

/// Each order's timeline as the view shows it; waits (up to 60 s) until every
/// view shows CONFIRMED (or the end its shipment took it to since).
async fn read_views(mongo: &mongodb::Database, placed: &[Placed]) -> anyhow::Result<HashMap<String, Timeline>> {
    let orders = mongo.collection::<Document>("order_views");
    let until = Instant::now() + Duration::from_secs(60);
    // One order at a time by `_id`, 16 in flight: FerretDB v1 finds a
    // document by `_id` through its index but answers `$in` by reading the
    // whole collection, which takes minutes once it holds 500,000 orders.
    let reads = futures::stream::iter(placed.iter().map(|p| p.order_id.clone()))
        .map(|id| {
            let orders = orders.clone();
            async move {
                loop {
                    let document = orders.find_one(doc! { "_id": &id, "status": { "$in": ["CONFIRMED", "COMPLETED", "DELIVERY_FAILED"] } }).await?;
                    if document.is_some() || Instant::now() > until {
                        return anyhow::Ok(document.map(|d| (id, timeline(&d))));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        })
        .buffer_unordered(16);
    let found: Vec<Option<(String, Timeline)>> = reads.try_collect().await?;
    Ok(found.into_iter().flatten().collect())
}

/// An order view's timeline, read from its document.
fn timeline(document: &Document) -> Timeline {
    document
        .get_array("timeline")
        .map(|t| {
            t.iter()
                .filter_map(|e| e.as_document())
                .filter_map(|e| {
                    Some((
                        e.get_str("type").ok()?.to_owned(),
                        e.get_datetime("at").ok()?.timestamp_millis(),
                        e.get_datetime("viewed_at").ok()?.timestamp_millis(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Samples every replication slot's lag (WAL bytes not yet confirmed by its
/// connector) once a second until stopped.
pub struct SlotSampler {
    samples: Arc<Mutex<Vec<(f64, String, i64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SlotSampler {
    pub fn start(admin: PgPool) -> SlotSampler {
        let samples: Arc<Mutex<Vec<(f64, String, i64)>>> = Arc::default();
        let task = {
            let samples = samples.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                loop {
                    let rows: Vec<(String, i64)> = sqlx::query_as(
                        "select slot_name::text, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint
                         from pg_replication_slots where database in ('orders', 'inventory', 'payments')",
                    )
                    .fetch_all(&admin)
                    .await
                    .unwrap_or_default();
                    let t = started.elapsed().as_secs_f64();
                    samples.lock().unwrap().extend(rows.into_iter().map(|(slot, lag)| (t, slot, lag)));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        SlotSampler { samples, task }
    }

    /// Stops sampling; returns per slot (max lag, lag at the end, samples).
    pub fn finish(self) -> Vec<SlotLag> {
        self.task.abort();
        let samples = self.samples.lock().unwrap();
        let mut slots: HashMap<String, SlotLag> = HashMap::new();
        for (t, slot, lag) in samples.iter() {
            let s = slots.entry(slot.clone()).or_insert_with(|| SlotLag { slot: slot.clone(), ..Default::default() });
            s.max_bytes = s.max_bytes.max(*lag);
            s.last_bytes = *lag;
            s.series.push((*t, *lag));
        }
        let mut slots: Vec<SlotLag> = slots.into_values().map(SlotLag::summarize).collect();
        slots.sort_by(|a, b| a.slot.cmp(&b.slot));
        slots
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SlotLag {
    pub slot: String,
    pub max_bytes: i64,
    pub last_bytes: i64,
    /// Largest lag in the last third of the run: bounded means it does not grow.
    pub max_last_third_bytes: i64,
    pub max_first_third_bytes: i64,
    #[serde(skip)]
    pub series: Vec<(f64, i64)>,
}

impl SlotLag {
    pub fn summarize(mut self) -> SlotLag {
        let end = self.series.last().map_or(0.0, |s| s.0);
        self.max_first_third_bytes = self.series.iter().filter(|s| s.0 <= end / 3.0).map(|s| s.1).max().unwrap_or(0);
        self.max_last_third_bytes = self.series.iter().filter(|s| s.0 >= end * 2.0 / 3.0).map(|s| s.1).max().unwrap_or(0);
        self
    }
}

/// The consumer groups of the stack.
pub const GROUPS: [&str; 6] = ["outflow-inventory", "outflow-payments", "outflow-orders", "outflow-shipping", "outflow-views", "outflow-notifications"];

/// Each group's backlog: records on the event topics it reads that it has
/// not committed yet (a group has no offsets on a topic it does not read).
pub fn backlog(stack: &Stack) -> anyhow::Result<Vec<(String, i64)>> {
    Ok(groups(stack)?.into_iter().map(|g| (g.group, g.lag)).collect())
}

/// A consumer group's position on the topics it reads.
#[derive(Clone, Debug)]
pub struct GroupBacklog {
    pub group: String,
    /// Records written to its topics and not committed by it.
    pub lag: i64,
    /// Records ever written to its topics (the sum of their end offsets).
    pub written: i64,
}

/// Every partition of the event topics with its end offset.
pub fn partition_ends(stack: &Stack) -> anyhow::Result<Vec<(String, i32, i64)>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let probe: BaseConsumer = stack.kafka_config().create()?;
    let mut highs = Vec::new();
    for aggregate in outflow_events::AggregateType::ALL {
        let topic = aggregate.topic();
        let metadata = probe.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        for partition in 0..metadata.topics().first().map_or(0, |t| t.partitions().len()) as i32 {
            highs.push((topic.clone(), partition, probe.fetch_watermarks(&topic, partition, Duration::from_secs(10))?.1));
        }
    }
    Ok(highs)
}

/// Every group's backlog and how much its topics hold.
pub fn groups(stack: &Stack) -> anyhow::Result<Vec<GroupBacklog>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let highs = partition_ends(stack)?;
    let mut wanted = rdkafka::TopicPartitionList::new();
    for (topic, partition, _) in &highs {
        wanted.add_partition(topic, *partition);
    }
    let mut all = Vec::new();
    for group in GROUPS {
        let consumer: BaseConsumer = stack.kafka_config().set("group.id", group).create()?;
        let committed = consumer.committed_offsets(wanted.clone(), Duration::from_secs(10))?;
        let read: Vec<(i64, i64)> = highs
            .iter()
            .filter_map(|(topic, partition, high)| match committed.find_partition(topic, *partition).map(|e| e.offset()) {
                Some(rdkafka::Offset::Offset(o)) => Some(((high - o).max(0), *high)),
                _ => None,
            })
            .collect();
        all.push(GroupBacklog { group: group.to_owned(), lag: read.iter().map(|r| r.0).sum(), written: read.iter().map(|r| r.1).sum() });
    }
    Ok(all)
}

/// Waits until no group has a backlog; returns how long it took.
pub async fn wait_drained(stack: &Stack, deadline: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let lags = backlog(stack)?;
        if lags.iter().all(|(_, lag)| *lag == 0) {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(started.elapsed() < deadline, "consumer groups still behind after {deadline:?}: {lags:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
