//! The view consumer's apply rate against a raw batched-upsert ceiling on the
//! same MongoDB API server.
//!
//! - apply rate: the view consumer's own code (runtime with its lanes per
//!   partition + fold), in process,
//!   replays the event topics from offset 0 under a fresh group into a scratch
//!   database; events applied per second while it works;
//! - ceiling: the same number of order-view-sized documents upserted in
//!   batches of 100 (`update` with `upsert: true`, unordered), 4 batches in
//!   flight, into the same scratch database.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use mongodb::bson::{doc, Document};
use outflow_consumer::{ConsumerSettings, Handler};
use outflow_stack_tests::Stack;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct ViewsApply {
    pub events_applied: u64,
    pub apply_seconds: f64,
    pub apply_per_second: f64,
    pub ceiling_upserts: u64,
    pub ceiling_seconds: f64,
    pub ceiling_per_second: f64,
}

pub async fn measure(stack: &Stack, run_id: &str, max_seconds: u64) -> anyhow::Result<ViewsApply> {
    let client = stack.mongo().await?;
    let database = client.database(&format!("bench_views_{run_id}"));
    let applied = apply_rate(stack, &database, run_id, max_seconds).await?;
    // At least a thousand, so that a nearly empty replay still gives a rate.
    let ceiling_upserts = applied.events.max(1000);
    let ceiling_seconds = upsert_ceiling(&database, ceiling_upserts).await?;
    database.drop().await?;
    Ok(ViewsApply {
        events_applied: applied.events,
        apply_seconds: applied.seconds,
        apply_per_second: applied.events as f64 / applied.seconds.max(1e-9),
        ceiling_upserts,
        ceiling_seconds,
        ceiling_per_second: ceiling_upserts as f64 / ceiling_seconds,
    })
}

/// What the view consumer applied, and over how long: from the start of
/// its first event to the end of its last.
struct Applied {
    events: u64,
    seconds: f64,
}

/// The view consumer's runtime and fold, in process, replaying every topic
/// from offset 0 under a scratch group into `database`.
async fn apply_rate(stack: &Stack, database: &mongodb::Database, run_id: &str, max_seconds: u64) -> anyhow::Result<Applied> {
    let views = outflow_views_consumer::Views { db: database.clone() };
    views.prepare().await?;
    let applied = Arc::new(AtomicU64::new(0));
    let window: Arc<Mutex<Option<(Instant, Instant)>>> = Arc::default();
    let handler = counting(outflow_consumer::handler(Arc::new(views)), applied.clone(), window.clone());
    let settings = ConsumerSettings {
        brokers: stack.kafka_brokers.clone(),
        group_id: format!("outflow-bench-views-{run_id}"),
        topics: outflow_views_consumer::topics(),
        registry: stack.registry(),
        login: stack.kafka_login(),
    };
    let group = settings.group_id.clone();
    // As many lanes per partition as the view consumer has by default.
    outflow_consumer::runtime::run_with_lanes(settings, outflow_views_consumer::LANES, handler, caught_up(applied.clone(), max_seconds)).await?;
    // The scratch group goes, so that dashboards do not list it.
    let admin: rdkafka::admin::AdminClient<_> = stack.kafka_config().create()?;
    admin.delete_groups(&[group.as_str()], &rdkafka::admin::AdminOptions::new()).await?;
    let seconds = window.lock().unwrap().map_or(0.0, |(first, last)| (last - first).as_secs_f64());
    Ok(Applied { events: applied.load(Ordering::Relaxed), seconds })
}

/// `inner`, counting the events it handled and widening the window from the
/// first one's start to the last one's end.
fn counting(inner: Handler, applied: Arc<AtomicU64>, window: Arc<Mutex<Option<(Instant, Instant)>>>) -> Handler {
    Arc::new(move |delivery| -> BoxFuture<'static, _> {
        let (inner, applied, window) = (inner.clone(), applied.clone(), window.clone());
        Box::pin(async move {
            let start = Instant::now();
            let outcome = inner(delivery).await;
            applied.fetch_add(1, Ordering::Relaxed);
            let mut w = window.lock().unwrap();
            *w = Some((w.map_or(start, |(first, _)| first), Instant::now()));
            outcome
        })
    })
}

/// Ends once nothing was applied for 3 s (caught up), or after `max_seconds`.
async fn caught_up(applied: Arc<AtomicU64>, max_seconds: u64) {
    let started = Instant::now();
    let (mut last, mut idle_since) = (0, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = applied.load(Ordering::Relaxed);
        if now != last {
            (last, idle_since) = (now, Instant::now());
        }
        if (now > 0 && idle_since.elapsed() > Duration::from_secs(3)) || started.elapsed() > Duration::from_secs(max_seconds) {
            return;
        }
    }
}

/// `count` order-view-sized upserts in batches of 100, 4 batches in flight;
/// returns how long they took.
async fn upsert_ceiling(database: &mongodb::Database, count: u64) -> anyhow::Result<f64> {
    let collection = database.collection::<Document>("ceiling");
    let started = Instant::now();
    let queue = Arc::new(Mutex::new(upsert_batches(count)));
    let streams: Vec<_> = (0..4)
        .map(|_| {
            let (queue, database) = (queue.clone(), database.clone());
            tokio::spawn(async move {
                loop {
                    let Some(batch) = queue.lock().unwrap().pop() else { return Ok::<_, mongodb::error::Error>(()) };
                    database.run_command(doc! { "update": "ceiling", "updates": batch, "ordered": false }).await?;
                }
            })
        })
        .collect();
    for stream in streams {
        stream.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let written = collection.estimated_document_count().await?;
    anyhow::ensure!(written == count, "the ceiling wrote {written} documents, not {count}");
    Ok(seconds)
}

fn upsert_batches(count: u64) -> Vec<Vec<Document>> {
    (0..count)
        .map(|i| {
            doc! {
                "q": { "_id": format!("order-{i}") },
                "u": { "$set": { "customer_id": "bench", "status": "PENDING", "total_minor": 500, "currency": "EUR", "order_version": 1,
                                 "lines": [{ "sku": "BENCH-1", "quantity": 1, "unit_price_minor": 100 }, { "sku": "BENCH-2", "quantity": 2, "unit_price_minor": 200 }] } },
                "upsert": true,
            }
        })
        .collect::<Vec<_>>()
        .chunks(100)
        .map(<[Document]>::to_vec)
        .collect()
}
