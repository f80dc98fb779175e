//! Redelivery: every topic replayed from offset 0 into fresh instances of the
//! consumers (new consumer groups) changes nothing. For the saga consumers: no
//! row, payment, reservation or inbox entry, and not one event is applied a
//! second time; for the notifications consumer, no webhook delivery (nor a
//! notification in MongoDB, where each is keyed by its event id). For the view consumer, replaying into the live MongoDB views:
//! not one document of `order_views`, `customer_orders` or
//! `product_availability`.
//! Its own test binary, so that no other test writes while it compares; its
//! two tests take turns ([`ALONE`]) for the same reason.

mod shop;

use std::{
    collections::{BTreeMap, BTreeSet},
    hash::{Hash, Hasher},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use outflow_consumer::{ConsumerSettings, Handler, Outcome};
use outflow_outbox::Outbox;
use outflow_stack_tests::{lag, partitions, Stack};
use rdkafka::consumer::{BaseConsumer, Consumer};
use sqlx::PgPool;

/// Held by each test for its whole run: one test's traffic would break the
/// other's "nothing changed".
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Per database, its tables, or `table(columns)` for a table whose other
/// columns change on their own meanwhile (a delivery's status and attempts,
/// as the dispatcher works on the deliveries earlier tests left). Not
/// compared: the notifications consumer's `order_customers`, a lookup any
/// pass over the topics fills (a first replay on a stack whose history
/// predates it adds the older orders).
const TABLES: [(&str, &[&str]); 5] = [
    ("orders", &["orders", "order_items", "catalog", "processed_events"]),
    ("inventory", &["products", "reservations", "reservation_lines", "processed_events"]),
    ("payments", &["payments", "provider_notifications", "processed_events"]),
    ("shipping", &["shipments", "processed_events"]),
    ("notifications", &["deliveries(webhook_id, event_id, kind, order_id, body)"]),
];

async fn snapshot(pools: &[(String, PgPool)]) -> Vec<(String, String)> {
    let mut digests = Vec::new();
    for ((db, pool), (_, tables)) in pools.iter().zip(TABLES) {
        for table in tables {
            let rows = match table.split_once('(') {
                Some((name, columns)) => format!("(select {} from {name})", columns.trim_end_matches(')')),
                None => table.to_string(),
            };
            let digest: Option<String> = sqlx::query_scalar(&format!("select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {rows} t"))
                .fetch_one(pool)
                .await
                .unwrap();
            digests.push((format!("{db}.{table}"), digest.unwrap_or_default()));
        }
    }
    digests
}

fn records_in(stack: &Stack, topics: &[String]) -> u64 {
    let consumer: BaseConsumer = stack.kafka_config().create().unwrap();
    topics
        .iter()
        .flat_map(|topic| partitions(&consumer, topic).unwrap().into_iter().map(move |p| (topic.clone(), p)))
        .map(|(topic, p)| consumer.fetch_watermarks(&topic, p, Duration::from_secs(5)).map(|(low, high)| (high - low) as u64).unwrap_or(0))
        .sum()
}

/// True once `group` has committed every partition of `topics` up to its end
/// (events handled and dead letters alike).
fn caught_up(stack: &Stack, group: &str, topics: &[String]) -> bool {
    lag(stack, group, topics).is_ok_and(|behind| behind == 0)
}

/// How long a replay may go without handling a record before it counts as
/// stuck. The topics keep every event, so a replay's length grows with the
/// stack's history and no fixed deadline fits; progress does.
const STALL: Duration = Duration::from_secs(60);

struct Progress {
    seen: u64,
    at: tokio::time::Instant,
}

impl Progress {
    fn new() -> Self {
        Progress { seen: 0, at: tokio::time::Instant::now() }
    }

    /// Records how many records the replay has handled; false once that
    /// number has not grown for [`STALL`].
    fn still(&mut self, seen: u64) -> bool {
        if seen > self.seen {
            (self.seen, self.at) = (seen, tokio::time::Instant::now());
        }
        self.at.elapsed() < STALL
    }
}

struct Replay {
    seen: Arc<AtomicU64>,
    applied: Arc<AtomicU64>,
    handler: Handler,
}

fn counting(inner: Handler) -> Replay {
    let (seen, applied) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (s, a) = (seen.clone(), applied.clone());
    let handler: Handler = Arc::new(move |delivery| {
        let (inner, s, a) = (inner.clone(), s.clone(), a.clone());
        Box::pin(async move {
            let outcome = inner(delivery).await;
            s.fetch_add(1, Ordering::SeqCst);
            if matches!(outcome, Ok(Outcome::Applied)) {
                a.fetch_add(1, Ordering::SeqCst);
            }
            outcome
        })
    });
    Replay { seen, applied, handler }
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn replaying_every_topic_from_the_start_changes_nothing() {
    let _alone = ALONE.lock().await;
    let stack = Stack::from_env();
    // Traffic of its own, so there is something to replay even on a fresh
    // stack: a sale delivered, a sale whose delivery failed, a refusal.
    let shop = shop::Shop::new().await;
    let first = format!("replay-a-{}", uuid::Uuid::new_v4().simple());
    let webhook = unreachable_webhook(&shop, &first).await;
    let (sku, returned_sku) = (shop.product(1).await, shop.product(1).await);
    let (sold, refused) = (shop.place(&first, &[(&sku, 1)]).await, shop.place("replay-b", &[(&sku, 1)]).await);
    let returned = shop.place("replay-c", &[(&returned_sku, 1)]).await;
    for order in [&sold, &refused, &returned] {
        shop.force(order, "settle").await;
    }
    shop.ship(&sold, "deliver").await;
    shop.ship(&refused, "deliver").await;
    shop.ship(&returned, "fail").await;
    shop.wait_terminal(&sold, Duration::from_secs(60)).await;
    shop.wait_terminal(&refused, Duration::from_secs(60)).await;
    shop.wait_order(&returned, "DELIVERY_FAILED").await;
    shop.wait_payment(&returned, "REFUNDED").await;
    shop.wait_reservation(&returned, "RETURNED").await;
    let pools: Vec<(String, PgPool)> = TABLES
        .iter()
        .map(|(db, _)| (db.to_string(), sqlx::postgres::PgPoolOptions::new().max_connections(5).connect_lazy(&stack.database_url(db)).unwrap()))
        .collect();
    // Quiet first: the running consumers finish what earlier tests started
    // (every group caught up, and still so a second later).
    let sources = outflow_invariants::Sources::from_env().await.unwrap();
    outflow_invariants::wait_caught_up(&sources, Duration::from_secs(300)).await.unwrap();
    let before = snapshot(&pools).await;

    let pool = |i: usize| pools[i].1.clone();
    let registry = stack.registry();
    let provider = outflow_provider::ProviderClient::new("http://127.0.0.1:7199", secrecy::SecretString::from(stack.provider_server_key.clone()));
    let carrier = outflow_carrier::CarrierClient::new(shop::CARRIER, secrecy::SecretString::from(stack.carrier_key.clone()));
    let replays = vec![
        (
            outflow_inventory_consumer::topics(),
            counting(outflow_consumer::handler(Arc::new(outflow_inventory_consumer::Steps { pool: pool(1), outbox: Outbox::new(&registry) }))),
        ),
        (
            outflow_payments_consumer::topics(),
            counting(outflow_consumer::handler(Arc::new(outflow_payments_consumer::Steps { pool: pool(2), outbox: Outbox::new(&registry), provider }))),
        ),
        (
            outflow_orders_consumer::topics(),
            counting(outflow_consumer::handler(Arc::new(outflow_orders_consumer::Steps { pool: pool(0), outbox: Outbox::new(&registry) }))),
        ),
        (
            outflow_shipping_consumer::topics(),
            counting(outflow_consumer::handler(Arc::new(outflow_shipping_consumer::Steps { pool: pool(3), outbox: Outbox::new(&registry), carrier }))),
        ),
        (
            outflow_notifications_consumer::topics(),
            counting(outflow_consumer::handler(Arc::new(outflow_notifications_consumer::Notifications {
                db: stack.mongo().await.unwrap().database(VIEWS_DATABASE),
                pool: pool(4),
            }))),
        ),
    ];
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut running = Vec::new();
    let mut expected = Vec::new();
    let mut groups = Vec::new();
    for (topics, replay) in &replays {
        expected.push(records_in(&stack, topics));
        groups.push(format!("test-replay-{}", uuid::Uuid::new_v4()));
        let settings = ConsumerSettings {
            brokers: stack.kafka_brokers.clone(),
            group_id: groups.last().unwrap().clone(),
            topics: topics.clone(),
            registry: registry.clone(),
            login: stack.kafka_login(),
        };
        let mut stopping = stopping.clone();
        running.push(tokio::spawn(outflow_consumer::run(settings, replay.handler.clone(), async move {
            let _ = stopping.changed().await;
        })));
    }
    let mut moving = Progress::new();
    while !replays.iter().zip(&groups).all(|((topics, _), group)| caught_up(&stack, group, topics)) {
        let progress: Vec<_> = replays.iter().zip(&expected).map(|((_, r), want)| (r.seen.load(Ordering::SeqCst), *want)).collect();
        assert!(moving.still(progress.iter().map(|(seen, _)| seen).sum()), "replay stalled for {STALL:?} before it finished: {progress:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = stop.send(true);
    for consumer in running {
        consumer.await.unwrap().unwrap();
    }

    let applied: Vec<u64> = replays.iter().map(|(_, r)| r.applied.load(Ordering::SeqCst)).collect();
    let seen: Vec<u64> = replays.iter().map(|(_, r)| r.seen.load(Ordering::SeqCst)).collect();
    assert!(seen.iter().all(|n| *n > 0), "every consumer replayed events: {seen:?} of {expected:?}");
    assert_eq!(applied, vec![0, 0, 0, 0, 0], "a replayed event was applied again (replayed {expected:?})");
    let after = snapshot(&pools).await;
    let deleted = shop.http.delete(format!("http://127.0.0.1:7105/v1/webhooks/{webhook}")).bearer_auth(shop.customer(&first)).send().await.unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    assert_eq!(after, before, "the replay changed the databases");
}

/// A webhook for `customer` whose receiver is never there, so that the
/// replay has webhook deliveries to leave alone (they fail meanwhile, and
/// their status is not compared); its id.
async fn unreachable_webhook(shop: &shop::Shop, customer: &str) -> String {
    let hook = serde_json::json!({"url": "http://127.0.0.1:9/never-there"});
    let response = shop.http.post("http://127.0.0.1:7105/v1/webhooks").bearer_auth(shop.customer(customer)).json(&hook).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
    response.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// The MongoDB database the view consumer writes (its `views_database`).
const VIEWS_DATABASE: &str = "outflow";
const VIEWS: [&str; 3] = ["order_views", "customer_orders", "product_availability"];

/// Every document of the views as `(collection/_id, relaxed extended JSON)`,
/// sorted by collection and `_id`.
async fn view_documents(views: &mongodb::Database) -> Vec<(String, String)> {
    let mut documents = Vec::new();
    for name in VIEWS {
        // Sorted here: FerretDB v1 sorts in its own process, about five times
        // slower than it reads (72,000 order views: 186 s sorted, 40 s not).
        let found: Vec<Document> = views.collection::<Document>(name).find(doc! {}).await.unwrap().try_collect().await.unwrap();
        for document in found {
            let id = document.get("_id").map(ToString::to_string).unwrap_or_default();
            documents.push((format!("{name}/{id}"), Bson::Document(document).into_relaxed_extjson().to_string()));
        }
    }
    documents.sort();
    documents
}

/// A short digest of the view documents, for messages: how many, and a hash.
fn digest(documents: &[(String, String)]) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    documents.hash(&mut hasher);
    format!("{} documents, {:016x}", documents.len(), hasher.finish())
}

/// The high watermark of every partition of every event topic.
fn ends(stack: &Stack) -> Vec<(String, i32, i64)> {
    let consumer: BaseConsumer = stack.kafka_config().create().unwrap();
    outflow_views_consumer::topics()
        .into_iter()
        .flat_map(|topic| partitions(&consumer, &topic).unwrap().into_iter().map(move |p| (topic.clone(), p)))
        .map(|(topic, p)| {
            let high = consumer.fetch_watermarks(&topic, p, Duration::from_secs(5)).map_or(-1, |(_, high)| high);
            (topic, p, high)
        })
        .collect()
}

/// Waits until the stack is quiet: every consumer group that writes (the saga
/// consumers and the view consumer) has committed every partition up to its
/// end, and neither the topics nor the views changed since the previous look.
/// Returns the views and the topics' ends at that point.
async fn quiet_views(stack: &Stack, views: &mongodb::Database) -> (Vec<(String, String)>, Vec<(String, i32, i64)>) {
    let groups = [
        (outflow_inventory_consumer::GROUP, outflow_inventory_consumer::topics()),
        (outflow_payments_consumer::GROUP, outflow_payments_consumer::topics()),
        (outflow_orders_consumer::GROUP, outflow_orders_consumer::topics()),
        (outflow_shipping_consumer::GROUP, outflow_shipping_consumer::topics()),
        (outflow_views_consumer::GROUP, outflow_views_consumer::topics()),
    ];
    let started = tokio::time::Instant::now();
    // 120 s, and time for three more looks when the views are large.
    let mut until = started + Duration::from_secs(120);
    let mut last = None;
    loop {
        let looking = tokio::time::Instant::now();
        let now = (view_documents(views).await, ends(stack));
        if last.is_none() {
            until += looking.elapsed() * 3;
        }
        let behind: Vec<&str> = groups.iter().filter(|(group, topics)| !caught_up(stack, group, topics)).map(|(group, _)| *group).collect();
        if behind.is_empty() && last.as_ref() == Some(&now) {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "the stack did not become quiet within {:?}: groups behind {behind:?}, views {}",
            until - started,
            digest(&now.0)
        );
        last = Some(now);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The view consumer's fold, in-process, in a new consumer group, replays every
/// topic from offset 0 into the live views once the stack is quiet. Every
/// event is then older than or as old as what the views show: not one may be
/// applied, and every document of the three views must be byte for byte what
/// it was (a lost update the live consumer made would show up here as a
/// replayed event that applies).
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn replaying_every_topic_into_the_live_views_changes_nothing() {
    let _alone = ALONE.lock().await;
    let stack = Stack::from_env();
    // Traffic of its own, whatever ran before: a sale and a refusal.
    let shop = shop::Shop::new().await;
    let sku = shop.product(1).await;
    let (sold, refused) = (shop.place("view-replay-a", &[(&sku, 1)]).await, shop.place("view-replay-b", &[(&sku, 1)]).await);
    shop.force(&sold, "settle").await;
    shop.force(&refused, "settle").await;
    for order in [&sold, &refused] {
        let end = shop.wait_terminal(order, Duration::from_secs(60)).await;
        let reservation = if end["status"] == "CONFIRMED" { "COMMITTED" } else { "REJECTED" };
        shop.wait_reservation(order, reservation).await;
    }
    let views = stack.mongo().await.unwrap().database(VIEWS_DATABASE);
    let (before, topic_ends) = quiet_views(&stack, &views).await;
    assert!(before.iter().any(|(id, _)| id.contains(&sold)) && before.iter().any(|(id, _)| id.contains(&refused)), "the views do not show this test's orders");

    let topics = outflow_views_consumer::topics();
    let expected = records_in(&stack, &topics);
    let replay = counting(outflow_consumer::handler(Arc::new(outflow_views_consumer::Views { db: views.clone() })));
    let group = format!("test-view-replay-{}", uuid::Uuid::new_v4());
    let settings = ConsumerSettings {
        brokers: stack.kafka_brokers.clone(),
        group_id: group.clone(),
        topics: topics.clone(),
        registry: stack.registry(),
        login: stack.kafka_login(),
    };
    let (stop, mut stopping) = tokio::sync::watch::channel(false);
    // As many lanes as the view consumer runs with (consumers/views/src/main.rs).
    let running = tokio::spawn(outflow_consumer::runtime::run_with_lanes(settings, 8, replay.handler.clone(), async move {
        let _ = stopping.changed().await;
    }));
    let quiet = |stack: &Stack| {
        let now = ends(stack);
        let grown: Vec<_> = now.iter().zip(&topic_ends).filter(|(n, e)| n != e).map(|(n, e)| format!("{}[{}] {} -> {}", n.0, n.1, e.2, n.2)).collect();
        assert!(grown.is_empty(), "events were written during the replay (another test or a benchmark on the stack?), nothing can be compared: {grown:?}");
    };
    let mut moving = Progress::new();
    while !caught_up(&stack, &group, &topics) {
        quiet(&stack);
        let seen = replay.seen.load(Ordering::SeqCst);
        assert!(moving.still(seen), "the view replay stalled for {STALL:?} before the end of the topics: {seen} of {expected} records");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = stop.send(true);
    running.await.unwrap().unwrap();
    quiet(&stack);

    let (seen, applied) = (replay.seen.load(Ordering::SeqCst), replay.applied.load(Ordering::SeqCst));
    assert!(seen > 0, "the view replay handled no event (of {expected} records)");
    let after = view_documents(&views).await;
    let (was, is): (BTreeMap<_, _>, BTreeMap<_, _>) = (before.iter().cloned().collect(), after.iter().cloned().collect());
    let changed: Vec<&String> = was.keys().chain(is.keys()).collect::<BTreeSet<_>>().into_iter().filter(|id| was.get(*id) != is.get(*id)).take(10).collect();
    assert_eq!(applied, 0, "{applied} of {seen} replayed events were applied again; documents that changed: {changed:?}");
    assert!(before == after, "the replay changed the views: before {}, after {}; first changed documents: {changed:?}", digest(&before), digest(&after));
}
