//! The monitor (7190) against the running stack, read-only: its JSON against
//! the sources themselves (Connect, the broker's committed offsets, the
//! `orders` table, `pg_replication_slots`), its Prometheus metrics, and its
//! page rendered by a real headless Chromium, every number on screen held
//! against the JSON API; plus a screenshot in `target/monitor-screenshot.png`.
//!
//! The pipeline keeps moving while a test reads, so a value is compared with
//! reads taken on both sides of the monitor's sample (the sample's time is in
//! the JSON): counts that only grow must lie between them, and must equal them
//! when nothing moved. `OUTFLOW_MONITOR_URL` points the tests at another
//! monitor, `OUTFLOW_CHROMIUM` at another browser binary.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, ensure, Context, Result};
use outflow_stack_tests::Stack;
use prometheus_parse::{Scrape, Value as Metric};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    Offset, TopicPartitionList,
};
use scraper::{Html, Selector};
use serde_json::Value;

const CONNECTORS: [(&str, &str); 4] = [
    ("outflow-orders", "outflow_orders"),
    ("outflow-inventory", "outflow_inventory"),
    ("outflow-payments", "outflow_payments"),
    ("outflow-shipping", "outflow_shipping"),
];
const GROUPS: [&str; 6] = ["outflow-inventory", "outflow-payments", "outflow-orders", "outflow-shipping", "outflow-views", "outflow-notifications"];
const EVENT_TOPICS: [&str; 4] = ["outflow.order.events", "outflow.inventory.events", "outflow.payment.events", "outflow.shipment.events"];
/// Every order status the monitor counts.
const STATUSES: [&str; 5] = ["PENDING", "CONFIRMED", "CANCELLED", "COMPLETED", "DELIVERY_FAILED"];
const SECTIONS: [&str; 7] = ["lag", "cluster", "connectors", "slots", "dlq", "sagas", "latency"];

struct Monitor {
    base: String,
    /// An admin's token: the JSON API answers nobody else.
    token: String,
    http: reqwest::Client,
}

impl Monitor {
    fn from_env() -> Self {
        let base = std::env::var("OUTFLOW_MONITOR_URL").unwrap_or_else(|_| "http://127.0.0.1:7190".to_owned());
        let token = outflow_service::auth::JwtKeys::new(&Stack::from_env().jwt_secret.into()).mint("monitor-test", outflow_service::auth::Role::Admin, 3600);
        Monitor { base: base.trim_end_matches('/').to_owned(), token, http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap() }
    }

    async fn text(&self, path: &str) -> Result<(reqwest::StatusCode, String)> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("the monitor does not answer at {} (scripts/up starts it)", self.base))?;
        Ok((response.status(), response.text().await?))
    }

    async fn json(&self, path: &str) -> Result<Value> {
        let (status, body) = self.text(path).await?;
        ensure!(status.is_success(), "GET {path}: {status}: {body}");
        serde_json::from_str(&body).with_context(|| format!("GET {path} is not JSON: {body}"))
    }

    /// The latest snapshot, once there is one.
    async fn overview(&self) -> Result<Value> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.text("/api/overview").await?;
            if status.is_success() {
                return Ok(serde_json::from_str(&body)?);
            }
            ensure!(Instant::now() < until, "no snapshot within 30 s: {status} {body}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The first snapshot whose sampling started after `t_ms`: every source
    /// read it holds was made after whatever the test did before `t_ms`.
    async fn overview_after(&self, t_ms: i64) -> Result<Value> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let overview = self.overview().await?;
            if overview["sampled_at_ms"].as_i64().unwrap_or(0) > t_ms {
                return Ok(overview);
            }
            ensure!(Instant::now() < until, "no sample after {t_ms} within 30 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls the overview until `check` passes (the pipeline may be settling).
    async fn until(&self, what: &str, check: impl Fn(&Value) -> Result<()>) -> Result<Value> {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let overview = self.overview().await?;
            match check(&overview) {
                Ok(()) => return Ok(overview),
                Err(e) if Instant::now() > until => return Err(e.context(format!("{what}, still after 60 s"))),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn section<'a>(overview: &'a Value, name: &str) -> Result<&'a Value> {
    let section = &overview[name];
    ensure!(section.is_object(), "no section {name} in {overview}");
    if let Some(error) = section.get("error") {
        bail!("the monitor reports {name} failing: {error}");
    }
    Ok(section)
}

fn group<'a>(overview: &'a Value, name: &str) -> Result<&'a Value> {
    section(overview, "lag")?["groups"].as_array().into_iter().flatten().find(|g| g["group"] == name).with_context(|| format!("no consumer group {name}"))
}

fn connectors_running(overview: &Value) -> Result<()> {
    let connectors = section(overview, "connectors")?["connectors"].as_array().context("connectors")?;
    for (name, _) in CONNECTORS {
        let c = connectors.iter().find(|c| c["name"] == name).with_context(|| format!("connector {name} is missing"))?;
        ensure!(c["state"] == "RUNNING", "connector {name} is {}", c["state"]);
        let tasks = c["tasks"].as_array().context("tasks")?;
        ensure!(!tasks.is_empty() && tasks.iter().all(|t| t["state"] == "RUNNING"), "connector {name}'s tasks: {}", c["tasks"]);
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn the_overview_holds_every_connector_group_slot_and_dead_letter_topic() -> Result<()> {
    let monitor = Monitor::from_env();
    let overview = monitor.until("the three connectors and their tasks RUNNING", connectors_running).await?;
    for name in SECTIONS {
        section(&overview, name)?;
    }

    for name in GROUPS {
        let g = group(&overview, name)?;
        let partitions = g["partitions"].as_array().context("partitions")?;
        ensure!(!partitions.is_empty(), "group {name} has no partitions: {g}");
        let mut total = 0;
        for p in partitions {
            let (high, low, lag) = (p["high"].as_i64().unwrap(), p["low"].as_i64().unwrap(), p["lag"].as_i64().unwrap());
            match p["committed"].as_i64() {
                Some(committed) => assert_eq!(lag, (high - committed).max(0), "{name} {p}"),
                None => assert_eq!(lag, high - low, "{name} {p}: nothing committed, so it starts at the low watermark"),
            }
            assert!(EVENT_TOPICS.contains(&p["topic"].as_str().unwrap()), "{name} reads only event topics: {p}");
            total += lag;
        }
        assert_eq!(g["total"].as_i64(), Some(total), "{name}: the total is the sum of its partitions");
        // Every partition of every topic the group reads (event topics have 3).
        for topic in g["topics"].as_array().unwrap() {
            let ids: BTreeSet<i64> = partitions.iter().filter(|p| p["topic"] == *topic).map(|p| p["partition"].as_i64().unwrap()).collect();
            assert_eq!(ids, BTreeSet::from([0, 1, 2]), "{name} on {topic}");
        }
    }
    let views: BTreeSet<&str> = group(&overview, "outflow-views")?["topics"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(views, BTreeSet::from(EVENT_TOPICS), "the view consumer folds every event topic");

    let slots = section(&overview, "slots")?["slots"].as_array().unwrap();
    for (connector, slot) in CONNECTORS {
        let s = slots.iter().find(|s| s["slot_name"] == slot).with_context(|| format!("no slot {slot} (connector {connector})"))?;
        assert_eq!(s["active"], true, "{s}");
        assert!(s["confirmed_flush_lsn"].as_str().is_some_and(|l| l.contains('/')), "{s}");
        assert!(s["retained_wal_bytes"].as_i64().is_some_and(|b| b >= 0), "{s}");
        assert!(s["lag_bytes"].as_i64().is_some_and(|b| b >= 0), "{s}");
    }
    // The slots are the server's own.
    let stack = Stack::from_env();
    let pool = sqlx::PgPool::connect(&stack.database_url("orders")).await?;
    let server: Vec<(String, Option<String>)> = sqlx::query_as("select slot_name::text, database::text from pg_replication_slots").fetch_all(&pool).await?;
    for (_, slot) in CONNECTORS {
        let database = slots.iter().find(|s| s["slot_name"] == slot).unwrap()["database"].as_str().map(str::to_owned);
        assert!(server.contains(&(slot.to_owned(), database.clone())), "{slot} on {database:?} is not among the server's slots {server:?}");
    }

    let dlq = section(&overview, "dlq")?;
    let topics = dlq["topics"].as_array().unwrap();
    for topic in EVENT_TOPICS {
        let t = topics.iter().find(|t| t["topic"] == format!("{topic}.dlq")).with_context(|| format!("no dead-letter topic for {topic}"))?;
        assert!(t["records"].as_i64().is_some_and(|n| n >= 0), "{t}");
    }
    assert_eq!(dlq["total"].as_i64(), Some(topics.iter().map(|t| t["records"].as_i64().unwrap()).sum()));

    // Every broker of the bootstrap list is up and leads its share; every
    // connector's task runs on a worker that answers.
    let cluster = section(&overview, "cluster")?;
    let brokers = cluster["brokers"].as_array().context("brokers")?;
    assert_eq!(Some(brokers.len() as u64), cluster["expected_brokers"].as_u64(), "{cluster}");
    assert_eq!(cluster["offline"].as_array().map(Vec::len), Some(0), "no partition without a leader: {cluster}");
    let led: u64 = brokers.iter().filter_map(|b| b["leader_of"].as_u64()).sum();
    assert!(led >= 9, "the brokers lead at least the event topics' 9 partitions: {cluster}");
    let workers = section(&overview, "connectors")?["workers"].as_array().context("workers")?.clone();
    for (connector, _) in CONNECTORS {
        let task = format!("{connector}/0");
        let runs = |w: &&Value| w["reachable"] == true && w["tasks"].as_array().is_some_and(|t| t.iter().any(|t| t == task.as_str()));
        assert!(workers.iter().any(|w| runs(&w)), "{task} runs on no reachable worker: {workers:?}");
    }

    let latency = section(&overview, "latency")?;
    for window in ["since_start", "recent"] {
        let q = &latency[window];
        if q["count"].as_u64().unwrap() > 0 {
            let (p50, p90, p99) = (q["p50"].as_f64().unwrap(), q["p90"].as_f64().unwrap(), q["p99"].as_f64().unwrap());
            assert!(0.0 <= p50 && p50 <= p90 && p90 <= p99, "{window}: {q}");
        } else {
            assert!(q["p50"].is_null() && q["p99"].is_null(), "no events, no percentiles: {q}");
        }
    }

    // Each section on its own, and the history for the charts.
    for name in SECTIONS {
        let part = monitor.json(&format!("/api/{name}")).await?;
        assert!(part[name].is_object(), "/api/{name}: {part}");
    }
    let history = monitor.json("/api/history").await?;
    let points = history["points"].as_array().context("points")?;
    assert!(!points.is_empty(), "{history}");
    assert!(points.windows(2).all(|w| w[0]["t"].as_i64() < w[1]["t"].as_i64()), "history in time order");
    assert!(points.last().unwrap()["lag"]["outflow-views"].is_i64(), "{}", points.last().unwrap());
    Ok(())
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn saga_counts_agree_with_the_orders_table() -> Result<()> {
    let monitor = Monitor::from_env();
    let stack = Stack::from_env();
    let pool = sqlx::PgPool::connect(&stack.database_url("orders")).await?;
    let pool = &pool;
    let counts = move || async move {
        let rows: Vec<(String, i64)> = sqlx::query_as("select status, count(*) from orders group by status").fetch_all(pool).await?;
        Ok::<_, anyhow::Error>(rows.into_iter().collect::<BTreeMap<String, i64>>())
    };
    let before = counts().await?;
    let overview = monitor.overview_after(now_ms()).await?;
    let after = counts().await?;
    let sagas = section(&overview, "sagas")?;
    let seen: BTreeMap<String, i64> = sagas["counts"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_i64().unwrap())).collect();
    let get = |m: &BTreeMap<String, i64>, k: &str| m.get(k).copied().unwrap_or(0);
    if before == after {
        for status in STATUSES {
            assert_eq!(get(&seen, status), get(&before, status), "{status}: nothing moved, so the monitor must say what the table says");
        }
    }
    // Orders are only added, and an ended order never moves again: those
    // counts only grow, so the monitor's lie between the two reads around its
    // sample. (CONFIRMED orders move on to COMPLETED or DELIVERY_FAILED.)
    for status in ["CANCELLED", "COMPLETED", "DELIVERY_FAILED"] {
        let (low, high, value) = (get(&before, status), get(&after, status), get(&seen, status));
        assert!(low <= value && value <= high, "{status}: {low} <= {value} <= {high}");
    }
    let (low, high) = (before.values().sum::<i64>(), after.values().sum::<i64>());
    let total = sagas["total"].as_i64().unwrap();
    assert!(low <= total && total <= high, "total: {low} <= {total} <= {high}");
    assert_eq!(total, seen.values().sum::<i64>());
    assert_eq!(sagas["in_flight"].as_i64(), Some(get(&seen, "PENDING")));

    // Stuck: not terminal, older than the threshold, the oldest first.
    let threshold = sagas["stuck_after_secs"].as_f64().unwrap();
    let stuck = sagas["stuck"].as_array().unwrap();
    assert!(sagas["stuck_count"].as_i64().unwrap() >= stuck.len() as i64);
    assert!(sagas["stuck_count"].as_i64().unwrap() <= sagas["in_flight"].as_i64().unwrap());
    for s in stuck {
        assert_eq!(s["status"], "PENDING", "only a saga Outflow still drives can be stuck: {s}");
        assert!(s["age_secs"].as_f64().unwrap() >= threshold, "{s}");
    }
    assert!(stuck.windows(2).all(|w| w[0]["age_secs"].as_f64() >= w[1]["age_secs"].as_f64()), "oldest first");
    Ok(())
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn committed_offsets_agree_with_the_broker() -> Result<()> {
    let monitor = Monitor::from_env();
    let stack = Stack::from_env();
    let first = monitor.overview().await?;
    // What the broker says for each group, read between two samples.
    let read = |name: &str, partitions: &[(String, i32)]| -> Result<HashMap<(String, i32), Option<i64>>> {
        let reader: BaseConsumer = stack.kafka_config().set("group.id", name).set("enable.auto.commit", "false").create()?;
        let mut request = TopicPartitionList::new();
        for (topic, partition) in partitions {
            request.add_partition(topic, *partition);
        }
        let committed = reader.committed_offsets(request, Duration::from_secs(10))?;
        Ok(committed
            .elements()
            .iter()
            .map(|e| ((e.topic().to_owned(), e.partition()), if let Offset::Offset(n) = e.offset() { Some(n) } else { None }))
            .collect())
    };
    let partitions_of = |overview: &Value, name: &str| -> Result<HashMap<(String, i32), Option<i64>>> {
        Ok(group(overview, name)?["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| ((p["topic"].as_str().unwrap().to_owned(), p["partition"].as_i64().unwrap() as i32), p["committed"].as_i64()))
            .collect())
    };
    let mut broker = HashMap::new();
    for name in GROUPS {
        let keys: Vec<(String, i32)> = partitions_of(&first, name)?.into_keys().collect();
        broker.insert(name, read(name, &keys)?);
    }
    let second = monitor.overview_after(now_ms()).await?;
    for name in GROUPS {
        let (before, after) = (partitions_of(&first, name)?, partitions_of(&second, name)?);
        for (key, committed) in &broker[name] {
            // Committed offsets only move forward.
            let (low, high) = (before[key], after.get(key).copied().flatten());
            assert!(low <= *committed && *committed <= high, "{name} {key:?}: monitor {low:?} <= broker {committed:?} <= monitor {high:?}");
        }
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn the_metrics_carry_the_snapshot() -> Result<()> {
    let monitor = Monitor::from_env();
    let before = monitor.until("the connectors RUNNING", connectors_running).await?;
    let (status, text) = monitor.text("/metrics").await?;
    let after = monitor.overview().await?;
    assert!(status.is_success());
    let metrics = parse_metrics(&text);
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        metrics.get(&(name.to_owned(), labels)).copied()
    };
    for (connector, slot) in CONNECTORS {
        assert_eq!(value("outflow_connector_running", &[("connector", connector)]), Some(1.0), "{connector}");
        assert_eq!(value("outflow_connector_task_running", &[("connector", connector), ("task", "0")]), Some(1.0), "{connector}");
        assert!(value("outflow_slot_retained_wal_bytes", &[("slot", slot)]).is_some(), "{slot}");
        assert!(value("outflow_slot_lag_bytes", &[("slot", slot)]).is_some(), "{slot}");
    }
    for name in GROUPS {
        assert!(value("outflow_consumer_group_lag_records", &[("group", name)]).is_some(), "{name}");
        for p in group(&after, name)?["partitions"].as_array().unwrap() {
            let partition = p["partition"].to_string();
            let labels = [("group", name), ("topic", p["topic"].as_str().unwrap()), ("partition", partition.as_str())];
            assert!(value("outflow_consumer_lag_records", &labels).is_some(), "{labels:?}");
        }
    }
    for topic in EVENT_TOPICS {
        let dlq = format!("{topic}.dlq");
        assert!(value("outflow_dlq_records", &[("topic", dlq.as_str())]).is_some(), "{dlq}");
    }
    for status in STATUSES {
        let gauge = value("outflow_sagas", &[("status", status)]).with_context(|| format!("outflow_sagas{{status={status}}}"))?;
        let json = |o: &Value| o["sagas"]["counts"][status].as_f64();
        assert!(json(&before) == Some(gauge) || json(&after) == Some(gauge), "{status}: {gauge}");
    }
    assert!(value("outflow_sagas_stuck", &[]).is_some());
    assert_eq!(value("outflow_monitor_source_up", &[("source", "kafka")]), Some(1.0));
    Ok(())
}

/// The names on `/metrics` once the view consumer has written a view since it
/// started: the commit-to-view series exist only from then on, and on a stack
/// just started nothing may have been written yet. A new product is one write.
async fn metrics_after_a_view_write(monitor: &Monitor) -> Result<BTreeSet<String>> {
    let admin = outflow_service::auth::JwtKeys::new(&Stack::from_env().jwt_secret.into()).mint("monitor-test", outflow_service::auth::Role::Admin, 3600);
    let sku = format!("MONITOR-{}", uuid::Uuid::new_v4().simple());
    let body = serde_json::json!({"sku": sku, "name": "Monitor test item", "price_minor": 100, "currency": "EUR", "stock": 1});
    let created = monitor.http.post("http://127.0.0.1:7102/v1/products").bearer_auth(admin).json(&body).send().await?;
    ensure!(created.status() == reqwest::StatusCode::CREATED, "creating {sku}: {}", created.status());
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let names: BTreeSet<String> = parse_metrics(&monitor.text("/metrics").await?.1).into_keys().map(|(name, _)| name).collect();
        if names.contains("outflow_commit_to_view_seconds") || Instant::now() > until {
            return Ok(names);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn the_grafana_dashboard_asks_only_for_metrics_the_monitor_exports() -> Result<()> {
    let monitor = Monitor::from_env();
    monitor.until("the connectors RUNNING", connectors_running).await?;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/grafana/outflow-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    assert!(dashboard["templating"]["list"].as_array().unwrap().iter().any(|v| v["type"] == "datasource"), "a data source variable");
    let exported = metrics_after_a_view_write(&monitor).await?;
    let mut asked = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{expr}");
            let mut rest = expr;
            while let Some(at) = rest.find("outflow_") {
                let name: String = rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                rest = &rest[at + name.len()..];
                asked.insert(name);
            }
        }
    }
    let unknown: Vec<_> = asked.difference(&exported).collect();
    assert!(unknown.is_empty(), "the dashboard asks for {unknown:?}, which /metrics does not have");
    assert!(asked.len() >= 10, "{asked:?}");
    Ok(())
}

/// Prometheus text exposition: (series name, labels) -> value, a histogram's
/// buckets under `<name>_bucket` with their `le` and a summary's quantiles
/// under its name with their `quantile`, as a query names them.
fn parse_metrics(text: &str) -> HashMap<(String, BTreeMap<String, String>), f64> {
    let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("the lines of a string read without I/O errors");
    let mut metrics = HashMap::new();
    for sample in scrape.samples {
        let labels: BTreeMap<String, String> = sample.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let with = |name: &str, value: f64| {
            let mut labels = labels.clone();
            labels.insert(name.to_owned(), if value == f64::INFINITY { "+Inf".to_owned() } else { value.to_string() });
            labels
        };
        match sample.value {
            Metric::Counter(value) | Metric::Gauge(value) | Metric::Untyped(value) => {
                metrics.insert((sample.metric, labels), value);
            }
            Metric::Histogram(buckets) => {
                for bucket in buckets {
                    metrics.insert((format!("{}_bucket", sample.metric), with("le", bucket.less_than)), bucket.count);
                }
            }
            Metric::Summary(quantiles) => {
                for q in quantiles {
                    metrics.insert((sample.metric.clone(), with("quantile", q.quantile)), q.count);
                }
            }
        }
    }
    metrics
}

// ---------------------------------------------------------------- the page

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn the_page_shows_the_numbers_of_the_json_api_in_headless_chromium() -> Result<()> {
    let monitor = Monitor::from_env();
    let browser = outflow_stack_tests::chromium()?;
    monitor.until("the connectors RUNNING", connectors_running).await?;
    let profile = std::env::temp_dir().join(format!("outflow-monitor-chromium-{}", uuid::Uuid::new_v4().simple()));
    let url = format!("{}/#token={}", monitor.base, monitor.token);

    let before = monitor.overview().await?;
    let dom = run_chromium(&browser, &profile, &["--dump-dom".into(), url.clone()]).await?;
    let after = monitor.overview().await?;
    let page = Page::parse(&dom)?;
    // The very sample the page rendered, while the monitor still holds it.
    let shown = match monitor.text(&format!("/api/overview?at={}", page.sampled_at)).await? {
        (status, body) if status.is_success() => Some(serde_json::from_str::<Value>(&body)?),
        _ => None,
    };
    let candidates: Vec<(&str, BTreeMap<String, Expect>)> =
        [("the page's sample", shown.as_ref()), ("the sample before", Some(&before)), ("the sample after", Some(&after))]
            .into_iter()
            .filter_map(|(label, o)| Some((label, expectations(o?))))
            .collect();

    // Every number the JSON has, the page shows...
    let required: BTreeSet<&String> = match &shown {
        Some(_) => candidates[0].1.keys().collect(),
        None => candidates[0].1.keys().filter(|k| candidates[1].1.contains_key(*k)).collect(),
    };
    let on_page: BTreeSet<&String> = page.metrics.iter().map(|m| &m.key).collect();
    let missing: Vec<_> = required.difference(&on_page).collect();
    assert!(missing.is_empty(), "the page lacks {missing:?}");
    for key in ["lag.outflow-views.total", "sagas.CONFIRMED", "dlq.outflow.order.events.dlq", "connector.outflow-orders.state", "slot.outflow_orders.retained"]
    {
        assert!(page.metrics.iter().any(|m| m.key == key), "{key}");
    }
    // ...and every one it shows is what the JSON says, in data-value and on screen.
    let mut failures = Vec::new();
    for m in &page.metrics {
        let verdicts: Vec<String> = candidates
            .iter()
            .map(|(label, expected)| match expected.get(&m.key) {
                None => Err(format!("{label}: no such metric")),
                Some(e) => e.check(m).map_err(|why| format!("{label}: {why}")),
            })
            .filter_map(Result::err)
            .collect();
        if verdicts.len() == candidates.len() {
            failures.push(format!("{} (data-value {:?}, text {:?}): {}", m.key, m.value, m.text, verdicts.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} numbers differ from the JSON:\n{}", failures.len(), page.metrics.len(), failures.join("\n"));
    assert!(page.metrics.len() >= 40, "only {} numbers on the page", page.metrics.len());

    // A screenshot for people (and a check that it is a real, full picture).
    let shot = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/monitor-screenshot.png"));
    let _ = std::fs::remove_file(&shot);
    run_chromium(&browser, &profile, &[format!("--screenshot={}", shot.display()), "--window-size=1400,1000".into(), url]).await?;
    let png = std::fs::read(&shot).with_context(|| format!("no screenshot at {}", shot.display()))?;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let (width, height) = (u32::from_be_bytes(png[16..20].try_into()?), u32::from_be_bytes(png[20..24].try_into()?));
    assert_eq!((width, height), (1400, 1000));
    assert!(png.len() > 40_000, "a {}-byte screenshot is too plain to hold the dashboard", png.len());
    let _ = std::fs::remove_dir_all(&profile);
    println!("screenshot: {} ({} bytes); {} numbers checked", shot.canonicalize()?.display(), png.len(), page.metrics.len());
    Ok(())
}

/// Runs headless Chromium on the page until it is done (a virtual-time budget
/// lets the page's fetches and first render finish) and returns its stdout.
async fn run_chromium(browser: &Path, profile: &Path, args: &[String]) -> Result<String> {
    let (browser, profile, args) = (browser.to_owned(), profile.to_owned(), args.to_vec());
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&profile)?;
        let (out, err) = (profile.join("stdout"), profile.join("stderr"));
        let mut child = Command::new(&browser)
            .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--virtual-time-budget=10000"])
            .arg(format!("--user-data-dir={}", profile.join("profile").display()))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out)?)
            .stderr(std::fs::File::create(&err)?)
            .spawn()
            .with_context(|| format!("starting {}", browser.display()))?;
        let until = Instant::now() + Duration::from_secs(90);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > until {
                let _ = child.kill();
                bail!("chromium {args:?} did not finish within 90 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let stderr = std::fs::read_to_string(&err).unwrap_or_default();
        ensure!(status.success(), "chromium {args:?}: {status}\n{stderr}");
        Ok(std::fs::read_to_string(&out)?)
    })
    .await?
}

/// One number (or state) on the page.
#[derive(Debug)]
struct Shown {
    key: String,
    value: String,
    text: String,
}

struct Page {
    sampled_at: i64,
    metrics: Vec<Shown>,
}

impl Page {
    /// The dumped DOM: `<body data-ready="1" data-sampled-at=...>` and every
    /// element in it carrying `data-metric` (each holds only its text).
    fn parse(dom: &str) -> Result<Page> {
        let document = Html::parse_document(dom);
        let body = document.select(&selector("body")).next().context("no <body> in the dumped DOM")?;
        ensure!(body.attr("data-ready") == Some("1"), "the page never rendered data: {:?}", body.value());
        let sampled_at = body.attr("data-sampled-at").context("no data-sampled-at")?.parse()?;
        let metrics = body
            .select(&selector("[data-metric]"))
            .map(|element| Shown {
                key: element.attr("data-metric").unwrap_or_default().to_owned(),
                value: element.attr("data-value").unwrap_or_default().to_owned(),
                // Chromium writes a non-breaking space as &nbsp;, which the
                // numbers on screen read as a plain one ("20.0 MiB").
                text: element.text().collect::<String>().replace('\u{a0}', " ").trim().to_owned(),
            })
            .collect();
        Ok(Page { sampled_at, metrics })
    }
}

fn selector(css: &str) -> Selector {
    Selector::parse(css).expect("a valid CSS selector")
}

/// What the JSON says a `data-metric` should show.
#[derive(Debug)]
enum Expect {
    Number(Option<f64>),
    Word(Option<String>),
}

impl Expect {
    fn check(&self, shown: &Shown) -> Result<(), String> {
        match self {
            Expect::Number(None) | Expect::Word(None) => {
                (shown.value.is_empty() && shown.text == "—").then_some(()).ok_or_else(|| "expected no value (—)".into())
            }
            Expect::Word(Some(word)) => (shown.value == *word && shown.text == *word).then_some(()).ok_or_else(|| format!("expected {word}")),
            Expect::Number(Some(number)) => {
                let value: f64 = shown.value.parse().map_err(|_| format!("data-value {:?} is not a number", shown.value))?;
                if (value - number).abs() > 1e-9 * number.abs().max(1.0) {
                    return Err(format!("expected {number}"));
                }
                let (text, tolerance) = read_display(&shown.text).ok_or_else(|| format!("cannot read {:?}", shown.text))?;
                if (text - number).abs() > tolerance {
                    return Err(format!("on screen {text}, expected {number} ± {tolerance}"));
                }
                Ok(())
            }
        }
    }
}

/// A number as the page prints it ("1,234", "20.0 MiB", "32.8 ms", "≥ 2.50 s")
/// in base units, with half a unit of its last printed digit as tolerance.
fn read_display(text: &str) -> Option<(f64, f64)> {
    let text = text.trim_start_matches('≥').trim().replace(',', "");
    let (number, unit) = text.split_once(' ').unwrap_or((&text, ""));
    let scale = match unit {
        "" | "B" | "s" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024f64.powi(4),
        "ms" => 0.001,
        _ => return None,
    };
    let decimals = number.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    Some((number.parse::<f64>().ok()? * scale, 0.5 * 10f64.powi(-decimals) * scale * (1.0 + 1e-9)))
}

/// Every `data-metric` key the page shows for an overview, and its value.
fn expectations(o: &Value) -> BTreeMap<String, Expect> {
    use Expect::{Number, Word};
    let mut e = BTreeMap::new();
    let ok = |name: &str| o[name].is_object() && o[name].get("error").is_none();
    let num = |v: &Value| v.as_f64();
    let word = |v: &Value| v.as_str().map(str::to_owned);
    if ok("lag") {
        e.insert("lag.total".into(), Number(num(&o["lag"]["total"])));
        for g in o["lag"]["groups"].as_array().unwrap() {
            let name = g["group"].as_str().unwrap();
            e.insert(format!("lag.{name}.total"), Number(num(&g["total"])));
            e.insert(format!("group.{name}.state"), Word(word(&g["state"])));
            for p in g["partitions"].as_array().unwrap() {
                e.insert(format!("lag.{name}.{}.{}", p["topic"].as_str().unwrap(), p["partition"]), Number(num(&p["lag"])));
            }
        }
    }
    if ok("dlq") {
        e.insert("dlq.total".into(), Number(num(&o["dlq"]["total"])));
        for t in o["dlq"]["topics"].as_array().unwrap() {
            e.insert(format!("dlq.{}", t["topic"].as_str().unwrap()), Number(num(&t["records"])));
        }
    }
    if ok("cluster") {
        let c = &o["cluster"];
        let count = |key: &str| Number(c[key].as_array().map(|list| list.len() as f64));
        e.insert("cluster.brokers".into(), count("brokers"));
        e.insert("cluster.under_replicated".into(), count("under_replicated"));
        e.insert("cluster.offline".into(), count("offline"));
        for b in c["brokers"].as_array().unwrap() {
            e.insert(format!("cluster.broker.{}.leader_of", b["id"]), Number(num(&b["leader_of"])));
        }
    }
    if ok("connectors") {
        for w in o["connectors"]["workers"].as_array().unwrap() {
            let up = if w["reachable"] == true { "RUNNING" } else { "UNREACHABLE" };
            e.insert(format!("worker.{}.up", w["worker_id"].as_str().unwrap()), Word(Some(up.into())));
        }
        for c in o["connectors"]["connectors"].as_array().unwrap() {
            let name = c["name"].as_str().unwrap();
            e.insert(format!("connector.{name}.state"), Word(word(&c["state"])));
            for t in c["tasks"].as_array().unwrap() {
                e.insert(format!("connector.{name}.task.{}.state", t["id"]), Word(word(&t["state"])));
            }
        }
    }
    if ok("slots") {
        e.insert("wal.current_lsn".into(), Word(word(&o["slots"]["current_wal_lsn"])));
        let slots = o["slots"]["slots"].as_array().unwrap();
        if let Some(max) = slots.iter().filter_map(|s| s["lag_bytes"].as_f64()).reduce(f64::max) {
            e.insert("slots.max_lag".into(), Number(Some(max)));
        }
        for s in slots {
            let name = s["slot_name"].as_str().unwrap();
            e.insert(format!("slot.{name}.active"), Word(Some(if s["active"] == true { "yes" } else { "no" }.into())));
            e.insert(format!("slot.{name}.confirmed_flush_lsn"), Word(word(&s["confirmed_flush_lsn"])));
            e.insert(format!("slot.{name}.retained"), Number(num(&s["retained_wal_bytes"])));
            if !s["lag_bytes"].is_null() {
                e.insert(format!("slot.{name}.lag"), Number(num(&s["lag_bytes"])));
            }
        }
    }
    if ok("sagas") {
        let s = &o["sagas"];
        for (status, count) in s["counts"].as_object().unwrap() {
            e.insert(format!("sagas.{status}"), Number(num(count)));
        }
        e.insert("sagas.total".into(), Number(num(&s["total"])));
        e.insert("sagas.in_flight".into(), Number(num(&s["in_flight"])));
        e.insert("sagas.stuck".into(), Number(num(&s["stuck_count"])));
        e.insert("sagas.stuck_count".into(), Number(num(&s["stuck_count"])));
        e.insert("sagas.finished_per_min".into(), Number(num(&s["finished_per_min"])));
        for x in s["stuck"].as_array().unwrap() {
            e.insert(format!("stuck.{}.status", x["order_id"].as_str().unwrap()), Word(word(&x["status"])));
        }
    }
    if ok("latency") {
        let l = &o["latency"];
        for q in ["p50", "p90", "p99"] {
            e.insert(format!("latency.recent.{q}"), Number(num(&l["recent"][q])));
        }
        for q in ["p50", "p99", "count"] {
            e.insert(format!("latency.since_start.{q}"), Number(num(&l["since_start"][q])));
        }
    }
    e
}

#[test]
fn reads_the_numbers_as_the_page_prints_them() {
    assert_eq!(read_display("1,234"), Some((1234.0, 0.5 * (1.0 + 1e-9))));
    let (v, tol) = read_display("20.0 MiB").unwrap();
    assert_eq!(v, 20.0 * 1048576.0);
    assert!((tol - 0.05 * 1048576.0).abs() < 1.0);
    let (v, _) = read_display("≥ 2.50 s").unwrap();
    assert_eq!(v, 2.5);
    let (v, tol) = read_display("32.8 ms").unwrap();
    assert!((v - 0.0328).abs() < 1e-12 && (tol - 0.00005).abs() < 1e-9);
    assert_eq!(read_display("—"), None);
}

#[test]
fn finds_every_metric_in_a_dumped_dom() {
    let dom = r#"<html><head></head><body data-ready="1" data-sampled-at="17"><div><span class="num " data-metric="sagas.CONFIRMED" data-value="1205">1,205</span>
        <span class="badge RUNNING" data-metric="connector.a&amp;b.state" data-value="RUNNING">RUNNING</span></div></body></html>"#;
    let page = Page::parse(dom).unwrap();
    assert_eq!(page.sampled_at, 17);
    assert_eq!(page.metrics.len(), 2);
    assert_eq!((page.metrics[0].key.as_str(), page.metrics[0].value.as_str(), page.metrics[0].text.as_str()), ("sagas.CONFIRMED", "1205", "1,205"));
    assert_eq!(page.metrics[1].key, "connector.a&b.state");
    assert!(Expect::Number(Some(1205.0)).check(&page.metrics[0]).is_ok());
    assert!(Expect::Number(Some(1206.0)).check(&page.metrics[0]).is_err());
}

#[test]
fn reads_every_series_of_the_metrics_text() {
    let text = "# TYPE outflow_consumer_lag_records gauge
outflow_consumer_lag_records{group=\"outflow-views\",topic=\"outflow.order.events\",partition=\"0\"} 7
# TYPE outflow_sagas_stuck gauge
outflow_sagas_stuck 0
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{route=\"/metrics\",le=\"0.5\"} 2
http_request_duration_seconds_bucket{route=\"/metrics\",le=\"+Inf\"} 3
http_request_duration_seconds_sum{route=\"/metrics\"} 0.75
http_request_duration_seconds_count{route=\"/metrics\"} 3
";
    let metrics = parse_metrics(text);
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
    let lag = labels(&[("group", "outflow-views"), ("topic", "outflow.order.events"), ("partition", "0")]);
    assert_eq!(metrics.get(&("outflow_consumer_lag_records".into(), lag)), Some(&7.0));
    assert_eq!(metrics.get(&("outflow_sagas_stuck".into(), labels(&[]))), Some(&0.0));
    let bucket = |le| ("http_request_duration_seconds_bucket".to_owned(), labels(&[("route", "/metrics"), ("le", le)]));
    assert_eq!((metrics.get(&bucket("0.5")), metrics.get(&bucket("+Inf"))), (Some(&2.0), Some(&3.0)));
    assert_eq!(metrics.get(&("http_request_duration_seconds_count".into(), labels(&[("route", "/metrics")]))), Some(&3.0));
    assert_eq!(metrics.len(), 6);
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn the_json_api_answers_admins_only_and_metrics_stay_open() -> Result<()> {
    let monitor = Monitor::from_env();
    let customer = outflow_service::auth::JwtKeys::new(&Stack::from_env().jwt_secret.into()).mint("c-1", outflow_service::auth::Role::Customer, 600);
    for path in ["/api/overview", "/api/sagas", "/api/history"] {
        let anonymous = monitor.http.get(format!("{}{path}", monitor.base)).send().await?;
        assert_eq!(anonymous.status(), 401, "{path} without a token");
        let body: Value = anonymous.json().await?;
        assert_eq!(body["error"]["code"], "missing_token", "{body}");
        let customer = monitor.http.get(format!("{}{path}", monitor.base)).bearer_auth(&customer).send().await?;
        assert_eq!(customer.status(), 403, "{path} with a customer's token");
    }
    let metrics = monitor.http.get(format!("{}/metrics", monitor.base)).send().await?;
    assert_eq!(metrics.status(), 200, "/metrics stays open for Prometheus on loopback");
    Ok(())
}
