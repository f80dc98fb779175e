//! `scripts/bench scale`: whether the saga costs the same once the work has
//! grown. The sustained saga rate and commit → view p99 at half of it are
//! measured on the stack as it is, then with 500,000 more completed orders in
//! the views and on the topics, and compared.
//!
//! Building that state through the saga would take hours at its rate, so the
//! bench writes it the way the pipeline would have: the six events of each
//! order (OrderPlaced, StockReserved, PaymentRequested, PaymentCaptured,
//! OrderConfirmed, StockCommitted), Avro-encoded through the registry with
//! the outbox's own encoder and produced to the event topics with the headers
//! Debezium's outbox router sets; their views folded by the view consumer's
//! own fold (`fold::changes`) and inserted. The consumers are stopped
//! meanwhile and their groups moved past those events (each group would
//! otherwise run saga steps for orders no database has). The orders use
//! products of their own (`SCALE-*`), so no real product's availability is
//! touched, and customers `scale-*`.
//!
//! The state is cached: it stays in the stack (its topics and views) and a
//! marker document (`bench_scale` in the views database) records how much was
//! built, how long it took and the figures measured before. A later run finds
//! it, builds only what is missing and compares with those figures (from the
//! run that built it, which it says).

use std::{collections::HashMap, sync::Arc, time::Instant};

use anyhow::{ensure, Context, Result};
use futures::StreamExt;
use mongodb::bson::{doc, Document};
use outflow_events::{
    inventory::{CommittedLine, ReservedLine, StockCommitted, StockReserved},
    order::{OrderConfirmed, OrderLine, OrderPlaced},
    payment::{PaymentCaptured, PaymentRequested},
    DomainEvent, Event, TimestampMillis,
};
use outflow_outbox::Outbox;
use outflow_stack_tests::{services, Stack};
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::{
    observer::Observer,
    report::{self, Row},
    saga::{self, Shop},
};

#[derive(clap::Args)]
pub struct Args {
    /// Completed orders the views and topics should hold beyond the stack's own.
    #[arg(long, default_value_t = 500_000)]
    orders: u64,
    /// Seconds of the closed loop at saturation, each side.
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// Seconds of the open loop at half that rate, each side.
    #[arg(long, default_value_t = 60)]
    half_seconds: u64,
    #[arg(long, default_value_t = 32)]
    customers: usize,
    #[arg(long, default_value = "bench/results")]
    results: std::path::PathBuf,
    /// Forget the cached state: measure before again and build the whole count
    /// on top of what the stack holds.
    #[arg(long)]
    fresh: bool,
}

/// The consumer services, stopped while the state is written.
const CONSUMERS: [(&str, u16); 5] =
    [("inventory-consumer", 7121), ("payments-consumer", 7122), ("orders-consumer", 7123), ("views-consumer", 7124), ("notifications-consumer", 7125)];
const MARKER: &str = "bench_scale";
/// Orders written per round (events produced, views inserted, marker moved).
const CHUNK: u64 = 5_000;
const SKUS: usize = 32;

/// One side of the comparison.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Side {
    pub measured_at: String,
    pub sagas_per_second: f64,
    pub commit_to_view_p99_ms: f64,
    pub commit_to_view_p50_ms: f64,
}

/// What the marker records.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Marker {
    built: u64,
    build_seconds: f64,
    /// Figures on the stack before the state was built.
    before: Option<Side>,
}

pub async fn run(args: Args) -> Result<()> {
    let stack = Stack::from_env();
    let views = stack.mongo().await?.database("outflow");
    let markers = views.collection::<Document>(MARKER);
    let mut marker: Marker = match markers.find_one(doc! { "_id": "state" }).await? {
        Some(found) if !args.fresh => mongodb::bson::from_document(found)?,
        _ => Marker::default(),
    };
    let before = match &marker.before {
        Some(before) => {
            println!("the figures before come from the run that built the state ({})", before.measured_at);
            before.clone()
        }
        None => {
            println!("before: the stack as it is");
            let before = measure(&stack, &args).await?;
            marker.before = Some(before.clone());
            before
        }
    };
    if marker.built < args.orders {
        println!("building {} completed orders in the views and on the topics", args.orders - marker.built);
        build(&stack, &views, &mut marker, args.orders).await?;
    }
    println!("after: with {} more orders (built in {:.0} s)", marker.built, marker.build_seconds);
    let after = measure(&stack, &args).await?;
    report(&args, &before, &after, &marker)
}

/// The sustained rate (closed loop) and, at half of it, commit → view.
async fn measure(stack: &Stack, args: &Args) -> Result<Side> {
    saga::wait_drained(stack, std::time::Duration::from_secs(1800)).await?;
    let orders_db = PgPoolOptions::new().max_connections(2).connect(&stack.database_url("orders")).await?;
    let shop = Arc::new(Shop::open(stack, &orders_db).await?);
    let observer = Observer::start(stack).await?;
    let first = chrono::Utc::now().timestamp_millis() as u64 * 1_000_000;
    let saturated = saga::max_rate(&shop, &observer, args.customers, args.seconds, first).await;
    saga::wait_drained(stack, std::time::Duration::from_secs(1800)).await?;
    let mongo = stack.mongo().await?.database("outflow");
    let half = saga::at_rate(&shop, &observer, &mongo, (saturated.per_second / 2.0).max(1.0), args.half_seconds, first + 500_000_000_000, None).await?;
    observer.stop();
    shop.close().await?;
    Ok(Side {
        measured_at: chrono::Utc::now().to_rfc3339(),
        sagas_per_second: saturated.per_second,
        commit_to_view_p99_ms: half.commit_to_view_all.p99_ms,
        commit_to_view_p50_ms: half.commit_to_view_all.p50_ms,
    })
}

fn report(args: &Args, before: &Side, after: &Side, marker: &Marker) -> Result<()> {
    let p99_ratio = after.commit_to_view_p99_ms / before.commit_to_view_p99_ms;
    let rows = vec![
        Row::info("s", format!("state: {} more completed orders in the views and on the topics", marker.built), marker.built as f64, "orders"),
        Row::info("s", "  time it took to build (cached since)", marker.build_seconds, "s"),
        Row::info("s", format!("sustained sagas, {} customers, {} s, before /s", args.customers, args.seconds), before.sagas_per_second, "/s"),
        Row::against("s", "sustained sagas with the state /s", after.sagas_per_second, "/s", before.sagas_per_second, 0.8),
        Row::info("s", "half rate: commit → view p99, before", before.commit_to_view_p99_ms, "ms"),
        Row {
            ceiling: Some(before.commit_to_view_p99_ms),
            ratio: Some(p99_ratio),
            ..Row::judged("s", "half rate: commit → view p99 with the state", after.commit_to_view_p99_ms, "ms", "ratio <= 1.2", p99_ratio <= 1.2)
        },
        Row::info("s", "half rate: commit → view p50, before", before.commit_to_view_p50_ms, "ms"),
        Row::info("s", "half rate: commit → view p50 with the state", after.commit_to_view_p50_ms, "ms"),
    ];
    report::print(&rows);
    std::fs::create_dir_all(&args.results)?;
    let file = args.results.join(format!("bench-scale-{}.json", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")));
    std::fs::write(
        &file,
        serde_json::to_string_pretty(
            &serde_json::json!({ "rows": rows, "before": before, "after": after, "built": marker.built, "build_seconds": marker.build_seconds }),
        )?,
    )?;
    println!("results: {}", file.display());
    Ok(())
}

/// Stops the consumers, writes chunks until `target` orders are built, and
/// starts the consumers again whatever happened.
async fn build(stack: &Stack, views: &mongodb::Database, marker: &mut Marker, target: u64) -> Result<()> {
    saga::wait_drained(stack, std::time::Duration::from_secs(1800)).await?;
    for (name, _) in CONSUMERS {
        services::stop(name).await?;
    }
    let built = write_state(stack, views, marker, target).await;
    for (name, port) in CONSUMERS {
        services::start(name, port).await?;
    }
    built
}

async fn write_state(stack: &Stack, views: &mongodb::Database, marker: &mut Marker, target: u64) -> Result<()> {
    let outbox = Outbox::registered(&stack.registry()).await?;
    let producer: FutureProducer = stack.kafka_config().set("acks", "all").set("enable.idempotence", "true").set("linger.ms", "20").create()?;
    let ends = saga::groups(stack)?;
    ensure!(ends.iter().all(|g| g.lag == 0), "a consumer group has a backlog: {ends:?}");
    let mut shop = Synthetic::new();
    let mut products: HashMap<String, Document> = HashMap::new();
    let markers = views.collection::<Document>(MARKER);
    while marker.built < target {
        let count = CHUNK.min(target - marker.built);
        // Counted per chunk and saved with it, so that a run stopped
        // midway still records how long the part it built took.
        let started = Instant::now();
        let written = write_chunk(&outbox, &producer, views, &mut shop, &mut products, marker.built, count).await?;
        move_groups_to_end(stack, written)?;
        marker.built += count;
        marker.build_seconds += started.elapsed().as_secs_f64();
        let saved = mongodb::bson::to_document(&*marker)?;
        markers.replace_one(doc! { "_id": "state" }, saved).upsert(true).await?;
        if marker.built % 50_000 == 0 || marker.built == target {
            println!("  {} of {target} orders", marker.built);
        }
    }
    for (id, document) in products {
        views.collection::<Document>("product_availability").replace_one(doc! { "_id": &id }, document).upsert(true).await?;
    }
    Ok(())
}

/// One chunk of orders: their events produced, their views inserted; returns
/// how many records went to each topic.
async fn write_chunk(
    outbox: &Outbox,
    producer: &FutureProducer,
    views: &mongodb::Database,
    shop: &mut Synthetic,
    products: &mut HashMap<String, Document>,
    first: u64,
    count: u64,
) -> Result<HashMap<String, i64>> {
    let mut records = Vec::new();
    let mut deliveries = Vec::new();
    for k in first..first + count {
        for (record, event) in shop.order(outbox, k).await? {
            records.push(record);
            deliveries.push(event);
        }
    }
    let mut per_topic: HashMap<String, i64> = HashMap::new();
    for r in &records {
        *per_topic.entry(r.topic.clone()).or_default() += 1;
    }
    produce(producer, records).await?;
    insert_views(views, &deliveries, products).await?;
    Ok(per_topic)
}

/// What Debezium's outbox router would have written for one outbox row.
struct Record {
    topic: String,
    key: String,
    payload: Vec<u8>,
    id: String,
    name: &'static str,
}

async fn record<E: Event>(outbox: &Outbox, event: E, wrap: fn(E) -> DomainEvent) -> Result<(Record, outflow_consumer::Delivery)> {
    let payload = outbox.encode(&event).await?;
    let record = Record { topic: E::AGGREGATE_TYPE.topic(), key: event.aggregate_id().to_owned(), payload, id: event.event_id().to_owned(), name: E::NAME };
    let delivery = outflow_consumer::Delivery {
        event_id: Uuid::parse_str(event.event_id())?,
        event: wrap(event),
        traceparent: None,
        topic: record.topic.clone(),
        partition: 0,
        offset: 0,
    };
    Ok((record, delivery))
}

async fn produce(producer: &FutureProducer, records: Vec<Record>) -> Result<()> {
    let sends = futures::stream::iter(records)
        .map(|r| async move {
            let headers = OwnedHeaders::new().insert(Header { key: "id", value: Some(&r.id) }).insert(Header { key: "eventType", value: Some(r.name) });
            let record = FutureRecord::to(&r.topic).key(&r.key).payload(&r.payload).headers(headers);
            producer.send(record, std::time::Duration::from_secs(60)).await.map_err(|(e, _)| anyhow::anyhow!("producing to {}: {e}", r.topic))
        })
        .buffer_unordered(10_000);
    let results: Vec<Result<_>> = sends.collect().await;
    for result in results {
        result?;
    }
    Ok(())
}

/// Folds the chunk's events into documents as the view consumer would and
/// inserts the orders' documents; products are kept for the end.
async fn insert_views(views: &mongodb::Database, deliveries: &[outflow_consumer::Delivery], products: &mut HashMap<String, Document>) -> Result<()> {
    let mut documents: HashMap<(&'static str, String), Document> = HashMap::new();
    for delivery in deliveries {
        for (collection, id, change) in outflow_views_consumer::fold::changes(delivery) {
            let document = if collection == "product_availability" {
                products.entry(id.clone()).or_insert_with(|| doc! { "_id": &id, outflow_views_consumer::fold::REVISION: 1_i64 })
            } else {
                documents.entry((collection, id.clone())).or_insert_with(|| doc! { "_id": &id, outflow_views_consumer::fold::REVISION: 1_i64 })
            };
            change.apply_to(document);
        }
    }
    let mut per_collection: HashMap<&'static str, Vec<Document>> = HashMap::new();
    for ((collection, _), document) in documents {
        per_collection.entry(collection).or_default().push(document);
    }
    for (collection, documents) in per_collection {
        views.collection::<Document>(collection).insert_many(documents).ordered(false).await.with_context(|| format!("inserting into {collection}"))?;
    }
    Ok(())
}

/// Commits every group's offsets past the records just written, after
/// checking that nothing else was written to those topics meanwhile (those
/// records would be skipped).
fn move_groups_to_end(stack: &Stack, written: HashMap<String, i64>) -> Result<()> {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    let ends = saga::partition_ends(stack)?;
    for group in saga::GROUPS {
        let consumer: BaseConsumer = stack.kafka_config().set("group.id", group).create()?;
        let mut wanted = rdkafka::TopicPartitionList::new();
        for (topic, partition, _) in &ends {
            wanted.add_partition(topic, *partition);
        }
        let committed = consumer.committed_offsets(wanted, std::time::Duration::from_secs(10))?;
        let mut moved = rdkafka::TopicPartitionList::new();
        let mut skipped: HashMap<&str, i64> = HashMap::new();
        for (topic, partition, high) in &ends {
            if let Some(rdkafka::Offset::Offset(at)) = committed.find_partition(topic, *partition).map(|e| e.offset()) {
                *skipped.entry(topic.as_str()).or_default() += high - at;
                moved.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(*high))?;
            }
        }
        for (topic, count) in &skipped {
            let ours = written.get(*topic).copied().unwrap_or(0);
            ensure!(
                *count == ours,
                "{group}: {count} records on {topic} to skip but {ours} were written by the bench; something else wrote there meanwhile, so nothing was moved"
            );
        }
        consumer.commit(&moved, CommitMode::Sync).with_context(|| format!("moving {group} past the written records"))?;
    }
    Ok(())
}

/// The shop the synthetic orders come from: products `SCALE-<i>` with their
/// stock and version, moved as the inventory would.
struct Synthetic {
    on_hand: Vec<i32>,
    reserved: Vec<i32>,
    version: Vec<i64>,
    started: i64,
}

impl Synthetic {
    fn new() -> Self {
        // Versions from the clock: a later run's events come after an earlier one's.
        let started = chrono::Utc::now().timestamp_millis();
        Synthetic { on_hand: vec![1_000_000_000; SKUS], reserved: vec![0; SKUS], version: vec![started; SKUS], started }
    }

    /// Order `k`'s six events, in saga order.
    async fn order(&mut self, outbox: &Outbox, k: u64) -> Result<Vec<(Record, outflow_consumer::Delivery)>> {
        let at = TimestampMillis(self.started + k as i64);
        let (order_id, payment_id, customer) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string(), format!("scale-{}", k % 10_000));
        let skus: Vec<usize> = (0..=(k % 3) as usize).map(|i| (k as usize * 7 + i * 11) % SKUS).collect();
        let lines: Vec<OrderLine> = skus.iter().map(|&s| OrderLine { sku: format!("SCALE-{s}"), quantity: 1, unit_price_minor: 100 }).collect();
        let total = 100 * lines.len() as i64;
        let id = || Uuid::now_v7().to_string();
        let (o, c) = (order_id.clone(), customer.clone());
        let placed = OrderPlaced {
            event_id: id(),
            aggregate_id: o.clone(),
            aggregate_version: 1,
            occurred_at: at,
            customer_id: c.clone(),
            lines,
            total_minor: total,
            currency: "EUR".into(),
        };
        let reserved_lines = skus.iter().map(|&s| self.reserve(s)).collect();
        let reserved = StockReserved {
            event_id: id(),
            aggregate_id: o.clone(),
            aggregate_version: 1,
            occurred_at: at,
            order_id: o.clone(),
            customer_id: c.clone(),
            total_minor: total,
            currency: "EUR".into(),
            lines: reserved_lines,
        };
        let requested = PaymentRequested {
            event_id: id(),
            aggregate_id: payment_id.clone(),
            aggregate_version: 1,
            occurred_at: at,
            order_id: o.clone(),
            amount_minor: total,
            currency: "EUR".into(),
            provider_token: format!("scale-{k}"),
            redirect_url: format!("http://127.0.0.1:7199/pay/scale-{k}"),
        };
        let captured = PaymentCaptured {
            event_id: id(),
            aggregate_id: payment_id,
            aggregate_version: 2,
            occurred_at: at,
            order_id: o.clone(),
            transaction_id: format!("scale-{k}"),
            amount_minor: total,
        };
        let confirmed = OrderConfirmed { event_id: id(), aggregate_id: o.clone(), aggregate_version: 2, occurred_at: at, customer_id: c };
        let committed_lines = skus.iter().map(|&s| self.commit(s)).collect();
        let committed = StockCommitted { event_id: id(), aggregate_id: o.clone(), aggregate_version: 2, occurred_at: at, order_id: o, lines: committed_lines };
        Ok(vec![
            record(outbox, placed, DomainEvent::OrderPlaced).await?,
            record(outbox, reserved, DomainEvent::StockReserved).await?,
            record(outbox, requested, DomainEvent::PaymentRequested).await?,
            record(outbox, captured, DomainEvent::PaymentCaptured).await?,
            record(outbox, confirmed, DomainEvent::OrderConfirmed).await?,
            record(outbox, committed, DomainEvent::StockCommitted).await?,
        ])
    }

    fn reserve(&mut self, s: usize) -> ReservedLine {
        self.reserved[s] += 1;
        self.version[s] += 1;
        ReservedLine { sku: format!("SCALE-{s}"), quantity: 1, on_hand: self.on_hand[s], reserved: self.reserved[s], product_version: self.version[s] }
    }

    fn commit(&mut self, s: usize) -> CommittedLine {
        self.on_hand[s] -= 1;
        self.reserved[s] -= 1;
        self.version[s] += 1;
        CommittedLine { sku: format!("SCALE-{s}"), quantity: 1, on_hand: self.on_hand[s], reserved: self.reserved[s], product_version: self.version[s] }
    }
}
