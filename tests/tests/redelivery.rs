//! Redelivery: every topic replayed from offset 0 into fresh instances of the
//! saga consumers (new consumer groups) changes nothing: no row, payment,
//! reservation or inbox entry, and not one event is applied a second time.
//! Its own test binary, so that no other test writes while it compares.

mod shop;

use std::{sync::{atomic::{AtomicU64, Ordering}, Arc}, time::Duration};

use outflow_consumer::{ConsumerSettings, Handler, Outcome};
use outflow_outbox::Outbox;
use outflow_stack_tests::Stack;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sqlx::PgPool;

const TABLES: [(&str, &[&str]); 3] = [
    ("orders", &["orders", "order_items", "catalog", "processed_events"]),
    ("inventory", &["products", "reservations", "reservation_lines", "processed_events"]),
    ("payments", &["payments", "provider_notifications", "processed_events"]),
];

async fn snapshot(pools: &[(String, PgPool)]) -> Vec<(String, String)> {
    let mut digests = Vec::new();
    for ((db, pool), (_, tables)) in pools.iter().zip(TABLES) {
        for table in tables {
            let digest: Option<String> = sqlx::query_scalar(&format!("select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {table} t"))
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
        .flat_map(|topic| (0..3).map(move |p| (topic.clone(), p)))
        .map(|(topic, p)| consumer.fetch_watermarks(&topic, p, Duration::from_secs(5)).map(|(low, high)| (high - low) as u64).unwrap_or(0))
        .sum()
}

/// True once `group` has committed every partition of `topics` up to its end
/// (events handled and dead letters alike).
fn caught_up(stack: &Stack, group: &str, topics: &[String]) -> bool {
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = stack.kafka_config().set("group.id", group).create().unwrap();
    let mut list = TopicPartitionList::new();
    for topic in topics {
        for p in 0..3 {
            list.add_partition(topic, p);
        }
    }
    let Ok(committed) = consumer.committed_offsets(list, Duration::from_secs(5)) else { return false };
    committed.elements().iter().all(|e| {
        let (_, high) = consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(5)).unwrap_or((0, i64::MAX));
        match e.offset() {
            Offset::Offset(o) => o >= high,
            _ => high == 0,
        }
    })
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
    let stack = Stack::from_env();
    // Traffic of its own, so there is something to replay even on a fresh stack.
    let shop = shop::Shop::new().await;
    let sku = shop.product(1).await;
    let (sold, refused) = (shop.place("replay-a", &[(&sku, 1)]).await, shop.place("replay-b", &[(&sku, 1)]).await);
    shop.force(&sold, "settle").await;
    shop.force(&refused, "settle").await;
    shop.wait_terminal(&sold, Duration::from_secs(60)).await;
    shop.wait_terminal(&refused, Duration::from_secs(60)).await;
    let pools: Vec<(String, PgPool)> = TABLES
        .iter()
        .map(|(db, _)| (db.to_string(), sqlx::postgres::PgPoolOptions::new().max_connections(5).connect_lazy(&stack.database_url(db)).unwrap()))
        .collect();
    // Quiet first: the running consumers finish what earlier tests started.
    let mut before = snapshot(&pools).await;
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = snapshot(&pools).await;
        if now == before {
            break;
        }
        before = now;
    }

    let pool = |i: usize| pools[i].1.clone();
    let registry = stack.registry_url.clone();
    let provider = outflow_payments::provider::ProviderClient::new("http://127.0.0.1:7199", secrecy::SecretString::from(stack.provider_server_key.clone()));
    let replays = vec![
        (outflow_inventory_consumer::topics(), counting(outflow_consumer::handler(Arc::new(outflow_inventory_consumer::Steps { pool: pool(1), outbox: Outbox::new(&registry) })))),
        (outflow_payments_consumer::topics(), counting(outflow_consumer::handler(Arc::new(outflow_payments_consumer::Steps { pool: pool(2), outbox: Outbox::new(&registry), provider })))),
        (outflow_orders_consumer::topics(), counting(outflow_consumer::handler(Arc::new(outflow_orders_consumer::Steps { pool: pool(0), outbox: Outbox::new(&registry) })))),
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
            registry_url: registry.clone(),
        };
        let mut stopping = stopping.clone();
        running.push(tokio::spawn(outflow_consumer::run(settings, replay.handler.clone(), async move {
            let _ = stopping.changed().await;
        })));
    }
    let until = tokio::time::Instant::now() + Duration::from_secs(240);
    while !replays.iter().zip(&groups).all(|((topics, _), group)| caught_up(&stack, group, topics)) {
        let progress: Vec<_> = replays.iter().zip(&expected).map(|((_, r), want)| (r.seen.load(Ordering::SeqCst), *want)).collect();
        assert!(tokio::time::Instant::now() < until, "replay did not finish: {progress:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = stop.send(true);
    for consumer in running {
        consumer.await.unwrap().unwrap();
    }

    let applied: Vec<u64> = replays.iter().map(|(_, r)| r.applied.load(Ordering::SeqCst)).collect();
    let seen: Vec<u64> = replays.iter().map(|(_, r)| r.seen.load(Ordering::SeqCst)).collect();
    assert!(seen.iter().all(|n| *n > 0), "every consumer replayed events: {seen:?} of {expected:?}");
    assert_eq!(applied, vec![0, 0, 0], "a replayed event was applied again (replayed {expected:?})");
    assert_eq!(snapshot(&pools).await, before, "the replay changed the databases");
}
