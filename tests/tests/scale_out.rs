//! Scale-out: a second instance of every saga consumer and of the
//! notification consumer, in the same groups, while 2,000 orders arrive at a
//! steady rate (some out of stock, some denied, some cancelled by the customer
//! at random moments); the second instances are stopped and started during the
//! run, so every group rebalances again and again. Afterwards every order has
//! ended, the shared checker accepts every order and product of the run (one
//! effect per event, money and stock agree, views equal to the tables), and no
//! partition with work waiting stood still for longer than 5 s.
//!
//! The view consumer is not scaled: a second one refuses to start (see
//! tests/tests/views.rs and consumers/views/src/lease.rs).
//!
//! Its size is set by `OUTFLOW_SCALE_OUT_ORDERS` (default 2,000) and
//! `OUTFLOW_SCALE_OUT_RATE` (orders per second, default 20).

mod shop;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use outflow_invariants::{Options, Scope, Sources};
use outflow_stack_tests::{services::Instance, Stack};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    Offset, TopicPartitionList,
};
use shop::Shop;
use uuid::Uuid;

/// (component, its group, the topics it reads, the port of its second
/// instance: beside the 7121–7129 the first instances use)
const SCALED: [(&str, &str, &[&str], u16); 5] = [
    ("inventory-consumer", "outflow-inventory", &["outflow.order.events"], 7131),
    ("payments-consumer", "outflow-payments", &["outflow.inventory.events", "outflow.order.events"], 7132),
    ("orders-consumer", "outflow-orders", &["outflow.inventory.events", "outflow.payment.events", "outflow.shipment.events"], 7133),
    ("notifications-consumer", "outflow-notifications", &["outflow.order.events", "outflow.payment.events", "outflow.shipment.events"], 7134),
    ("shipping-consumer", "outflow-shipping", &["outflow.order.events"], 7135),
];
const STALL_LIMIT: Duration = Duration::from_secs(5);

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn two_instances_per_group_with_rebalances_keep_every_invariant() {
    let shop = Arc::new(Shop::new().await);
    let (orders, rate) = (setting("OUTFLOW_SCALE_OUT_ORDERS", 2000) as usize, setting("OUTFLOW_SCALE_OUT_RATE", 20));
    let skus = vec![shop.product(orders as i64).await, shop.product(orders as i64 / 4).await, shop.product(30).await];
    let mut seconds: Vec<Option<Instance>> = Vec::new();
    for (name, _, _, port) in SCALED {
        seconds.push(Some(start(name, port).await));
    }
    let (began, wall_began) = (tokio::time::Instant::now(), chrono::Utc::now());
    let done = Arc::new(AtomicBool::new(false));
    let stalls = tokio::spawn(watch_stalls(shop.stack.clone(), done.clone()));
    let traffic = tokio::spawn(place_orders(shop.clone(), skus.clone(), orders, rate));

    // What the stopped second instances printed, by component.
    let mut outputs = Vec::new();
    let (rebalances, timeline) = churn(&mut seconds, &traffic, began, &mut outputs).await;
    let placed = traffic.await.unwrap();
    assert!(rebalances >= 6, "only {rebalances} rebalances during the run: raise OUTFLOW_SCALE_OUT_ORDERS");
    for order in &placed {
        shop.wait_terminal(order, Duration::from_secs(180)).await;
    }
    for instance in seconds.iter_mut().flatten() {
        assert!(instance.exited().unwrap().is_none(), "the second {} died; its log:\n{}", instance.name, instance.tail());
        outputs.push((instance.name.clone(), instance.output()));
    }
    let sources = Sources::from_env().await.unwrap();
    outflow_invariants::wait_caught_up(&sources, Duration::from_secs(180)).await.unwrap();
    done.store(true, Ordering::Relaxed);
    let stalled = stalls.await.unwrap();
    let scope = Scope::Only { orders: placed.iter().map(|o| Uuid::parse_str(o).unwrap()).collect(), skus: skus.clone() };
    let report = outflow_invariants::check_until_held(&sources, &scope, &Options::from_env(), Duration::from_secs(60)).await.unwrap();
    let longest = stalled.values().map(|(length, _)| *length).max().unwrap_or_default();
    println!("scale-out: {} orders, {rebalances} rebalances, longest partition stall {longest:?}\n{report}", placed.len());
    report.ensure_held().unwrap_or_else(|e| panic!("{e:#}"));
    let over: Vec<_> = stalled
        .iter()
        .filter(|(_, (length, _))| *length > STALL_LIMIT)
        .map(|(key, (length, from))| {
            let at = from.saturating_duration_since(began);
            format!("{key}: {length:.1?} from {at:.1?}\n{}", log_excerpt(key, &outputs, wall_began + at, *length))
        })
        .collect();
    assert!(
        over.is_empty(),
        "partitions that stood still with work waiting for longer than {STALL_LIMIT:?}:\n{}\nthe second instances, from the start of the run: {timeline:#?}",
        over.join("\n")
    );
}

/// Stops or starts one group's second instance every few seconds until the
/// traffic ends: each is a rebalance of that group. Returns how many, and
/// what was done to which group when (to place a stall among them).
async fn churn(
    seconds: &mut [Option<Instance>],
    traffic: &tokio::task::JoinHandle<Vec<String>>,
    began: tokio::time::Instant,
    outputs: &mut Vec<(String, String)>,
) -> (usize, Vec<String>) {
    let mut timeline = Vec::new();
    let mut turn = 0;
    while !traffic.is_finished() {
        tokio::time::sleep(Duration::from_secs(6)).await;
        let index = turn % SCALED.len();
        let (name, _, _, port) = SCALED[index];
        let at = began.elapsed();
        let what = match seconds[index].take() {
            Some(running) => {
                let (status, output) = running.stop_with_output().await.unwrap();
                assert!(status.success(), "the second {name} stopped with {status}");
                outputs.push((name.to_owned(), output));
                "stop"
            }
            None => {
                seconds[index] = Some(start(name, port).await);
                "start"
            }
        };
        timeline.push(format!("{at:.1?} {what} {name} (took {:.1?})", began.elapsed() - at));
        turn += 1;
    }
    (turn, timeline)
}

/// What the instances of the stalled group (`group/topic/partition`) logged
/// about their partitions, and every warning, from 10 s before the stall
/// until its end: the first instance's log, and the second ones' `outputs`.
fn log_excerpt(stalled: &str, outputs: &[(String, String)], from: chrono::DateTime<chrono::Utc>, length: Duration) -> String {
    let Some((name, ..)) = SCALED.iter().find(|(_, group, ..)| stalled.starts_with(&format!("{group}/"))) else { return String::new() };
    let stamp = |at: chrono::DateTime<chrono::Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (first, last) = (stamp(from - chrono::TimeDelta::seconds(10)), stamp(from + chrono::TimeDelta::from_std(length).unwrap_or_default()));
    let own = std::fs::read_to_string(outflow_stack_tests::services::state().join(name).join(format!("{name}.log"))).unwrap_or_default();
    let seconds = outputs.iter().filter(|(component, _)| component == name).map(|(_, output)| output.as_str());
    let mut lines: Vec<String> = std::iter::once(("first", own.as_str()))
        .chain(seconds.map(|output| ("second", output)))
        .flat_map(|(which, output)| output.lines().map(move |line| (which, line)))
        .filter(|(_, line)| line.get(..first.len()).is_some_and(|at| at >= first.as_str() && at <= last.as_str()))
        .filter(|(_, line)| [" WARN ", " ERROR ", "revoke", "assigned", "stopping"].iter().any(|mark| line.contains(mark)))
        .map(|(which, line)| format!("  {which}: {}", line.chars().take(300).collect::<String>()))
        .collect();
    lines.sort_by(|a, b| a.split_once(": ").map(|x| x.1).cmp(&b.split_once(": ").map(|x| x.1)));
    lines.truncate(80);
    lines.join("\n")
}

async fn start(name: &str, port: u16) -> Instance {
    let mut instance = Instance::spawn(name, port).unwrap();
    instance.wait_healthy().await.unwrap();
    instance
}

/// `orders` orders at `rate` a second: about one in ten denied, one in ten
/// cancelled by its customer after a random moment, and the smaller products
/// run out part of the way.
async fn place_orders(shop: Arc<Shop>, skus: Vec<String>, orders: usize, rate: u64) -> Vec<String> {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let mut rng = StdRng::seed_from_u64(10);
    let mut placed = Vec::with_capacity(orders);
    let mut tasks = Vec::new();
    for i in 0..orders {
        tick.tick().await;
        let sku = skus[rng.random_range(0..skus.len())].clone();
        let (deny, cancel_after) = (rng.random_bool(0.1), rng.random_bool(0.1).then(|| Duration::from_millis(rng.random_range(0..400))));
        let customer = format!("scale-{}", i % 50);
        let order = shop.place(&customer, &[(&sku, 1)]).await;
        placed.push(order.clone());
        let shop = shop.clone();
        tasks.push(tokio::spawn(async move {
            shop.force(&order, if deny { "deny" } else { "settle" }).await;
            if let Some(after) = cancel_after {
                tokio::time::sleep(after).await;
                let response = shop.http.post(format!("{}/v1/orders/{order}/cancel", shop::ORDERS)).bearer_auth(shop.customer(&customer)).send().await.unwrap();
                assert!([200, 409].contains(&response.status().as_u16()), "cancel of {order}: {}", response.status());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    placed
}

/// Samples every scaled group's committed offsets twice a second until `done`;
/// returns, per (group, topic, partition), the longest time its committed
/// offset stood still while records were waiting behind it, and when that began.
async fn watch_stalls(stack: Stack, done: Arc<AtomicBool>) -> HashMap<String, (Duration, tokio::time::Instant)> {
    let mut since: HashMap<String, (i64, tokio::time::Instant)> = HashMap::new();
    let mut longest: HashMap<String, (Duration, tokio::time::Instant)> = HashMap::new();
    let consumers: Arc<Vec<BaseConsumer>> =
        Arc::new(SCALED.iter().map(|(_, group, _, _)| stack.kafka_config().set("group.id", *group).create().unwrap()).collect());
    while !done.load(Ordering::Relaxed) {
        // The admin calls block: off the runtime's threads, one group per
        // thread, each partition stamped when its group was read. Read one
        // after the other and stamped at the end, the five groups' 30
        // partitions made every stall look longer by the time the whole
        // look took.
        let looks = SCALED.iter().enumerate().map(|(i, (_, group, topics, _))| {
            let consumers = consumers.clone();
            tokio::task::spawn_blocking(move || {
                let read = positions(&consumers[i], group, topics);
                let at = tokio::time::Instant::now();
                read.into_iter().map(move |(key, committed, high)| (key, committed, high, at)).collect::<Vec<_>>()
            })
        });
        let sample: Vec<_> = futures::future::join_all(looks).await.into_iter().flat_map(Result::unwrap).collect();
        for (key, committed, high, now) in sample {
            let entry = since.entry(key.clone()).or_insert((committed, now));
            if committed != entry.0 || committed >= high {
                *entry = (committed, now);
            }
            let worst = longest.entry(key).or_insert((Duration::ZERO, now));
            if now - entry.1 > worst.0 {
                *worst = (now - entry.1, entry.1);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    longest
}

/// (group/topic/partition, committed offset, high watermark) of every partition.
fn positions(consumer: &BaseConsumer, group: &str, topics: &[&str]) -> Vec<(String, i64, i64)> {
    let mut list = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)).unwrap();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            list.add_partition(topic, partition.id());
        }
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(5)).unwrap();
    committed
        .elements()
        .iter()
        .map(|e| {
            let (low, high) = consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(5)).unwrap();
            let at = match e.offset() {
                Offset::Offset(o) => o,
                _ => low,
            };
            (format!("{group}/{}/{}", e.topic(), e.partition()), at, high)
        })
        .collect()
}
