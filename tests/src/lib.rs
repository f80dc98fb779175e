//! # Layout
//!
//! Helpers for the end-to-end tests that run against the stack `scripts/up`
//! starts (the tests themselves live in `tests/tests/`):
//!
//! - [`Stack`]: where each component listens and the credentials, read from the
//!   same `OUTFLOW_*` variables as the scripts, with `infra/dev.env` behind them;
//! - [`Stack::fresh_database`]: a uniquely named database per test;
//! - [`Connect`]: a thin client of Kafka Connect's REST API for test connectors;
//! - [`wait_for_topic`]: topic metadata polling, since topics appear only when
//!   Connect writes their first record;
//! - [`consume`] and [`read_topic`]: records of a topic, up to a count or to
//!   the topic's end;
//! - [`WalProbe`]: a `test_decoding` replication slot that shows every row a
//!   request changed, so a test proves "exactly one outbox insert" or "nothing
//!   written" from the WAL itself, even for outbox rows deleted at commit.
//!
//! - [`services`]: the stack's processes as the scripts record them: stop,
//!   start as `scripts/up` does, freeze for a moment.
//!
//! Every test that needs the stack is `#[ignore = "needs the stack"]`:
//! `cargo test` alone runs the pure ones, `scripts/test` starts the stack and
//! runs everything.

pub mod service;
pub mod services;

use std::{collections::HashMap, time::Duration};

use anyhow::{bail, Context, Result};
use rdkafka::{consumer::Consumer, ClientConfig};
use sqlx::{postgres::PgPoolOptions, PgPool};

/// Where the stack listens, as the scripts configure it.
#[derive(Clone, Debug)]
pub struct Stack {
    pub pg_port: u16,
    pub pg_user: String,
    pub pg_password: String,
    pub kafka_brokers: String,
    /// The tests' and the bench's Kafka login (`OUTFLOW_KAFKA_ADMIN_USER`/`_PASSWORD`).
    pub kafka_user: String,
    pub kafka_password: String,
    pub connect_url: String,
    /// Kafka Connect's REST login (`OUTFLOW_CONNECT_USER`/`_PASSWORD`).
    pub connect_user: String,
    pub connect_password: String,
    pub registry_url: String,
    /// The registry's login for tests and tools (`OUTFLOW_REGISTRY_USER`/`_PASSWORD`).
    pub registry_user: String,
    pub registry_password: String,
    pub mongo_url: String,
    pub mongo_user: String,
    pub mongo_password: String,
    pub jwt_secret: String,
    pub provider_server_key: String,
    pub carrier_key: String,
}

impl Stack {
    pub fn from_env() -> Self {
        let defaults = dev_defaults();
        let var = |name: &str, default: &str| std::env::var(name).ok().or_else(|| defaults.get(name).cloned()).unwrap_or_else(|| default.to_owned());
        let port = |name: &str, default: u16| var(name, &default.to_string()).parse().unwrap_or_else(|_| panic!("{name} is not a port"));
        let kafka_port = port("OUTFLOW_KAFKA_PORT", 59092);
        Stack {
            pg_port: port("OUTFLOW_PG_PORT", 55432),
            pg_user: var("OUTFLOW_PG_USER", "outflow"),
            pg_password: var("OUTFLOW_PG_PASSWORD", ""),
            kafka_brokers: var("OUTFLOW_KAFKA_BROKERS", &format!("127.0.0.1:{kafka_port}")),
            kafka_user: var("OUTFLOW_KAFKA_ADMIN_USER", ""),
            kafka_password: var("OUTFLOW_KAFKA_ADMIN_PASSWORD", ""),
            connect_url: format!("http://127.0.0.1:{}", port("OUTFLOW_CONNECT_PORT", 58083)),
            connect_user: var("OUTFLOW_CONNECT_USER", ""),
            connect_password: var("OUTFLOW_CONNECT_PASSWORD", ""),
            registry_url: format!("http://127.0.0.1:{}", port("OUTFLOW_REGISTRY_PORT", 58081)),
            registry_user: var("OUTFLOW_REGISTRY_USER", ""),
            registry_password: var("OUTFLOW_REGISTRY_PASSWORD", ""),
            mongo_url: format!("mongodb://127.0.0.1:{}/", port("OUTFLOW_MONGO_PORT", 57017)),
            mongo_user: var("OUTFLOW_MONGO_USER", ""),
            mongo_password: var("OUTFLOW_MONGO_PASSWORD", ""),
            jwt_secret: var("OUTFLOW_JWT_SECRET", ""),
            provider_server_key: var("OUTFLOW_PROVIDER_SERVER_KEY", ""),
            carrier_key: var("OUTFLOW_CARRIER_KEY", ""),
        }
    }

    pub fn database_url(&self, database: &str) -> String {
        format!("postgres://{}:{}@127.0.0.1:{}/{}", self.pg_user, self.pg_password, self.pg_port, database)
    }

    /// Creates a database named `test_<prefix>_<random>` and connects to it
    /// (`scripts/test` drops leftovers of earlier runs by that prefix).
    pub async fn fresh_database(&self, prefix: &str) -> Result<(String, PgPool)> {
        let name = format!("test_{prefix}_{}", uuid::Uuid::new_v4().simple());
        let admin = self.admin_pool().await?;
        sqlx::query(&format!("create database {name}")).execute(&admin).await.with_context(|| format!("creating database {name}"))?;
        let pool = PgPoolOptions::new().max_connections(5).connect(&self.database_url(&name)).await.with_context(|| format!("connecting to {name}"))?;
        Ok((name, pool))
    }

    /// Drops a test database, its replication slots and its publications first.
    pub async fn drop_database(&self, name: &str) -> Result<()> {
        let admin = self.admin_pool().await?;
        sqlx::query("select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = $1 and not active")
            .bind(name)
            .execute(&admin)
            .await
            .context("dropping the test database's replication slots")?;
        sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&admin).await.with_context(|| format!("dropping database {name}"))?;
        Ok(())
    }

    pub async fn admin_pool(&self) -> Result<PgPool> {
        PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&self.database_url("postgres"))
            .await
            .with_context(|| format!("PostgreSQL on 127.0.0.1:{} is not reachable: is the stack up (scripts/up)?", self.pg_port))
    }

    /// A request to Kafka Connect's REST API (`path` from `/`), logged in.
    pub fn connect_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new().request(method, format!("{}{path}", self.connect_url)).basic_auth(&self.connect_user, Some(&self.connect_password))
    }

    /// The tests' Kafka login, for consumer runtimes they run in-process.
    pub fn kafka_login(&self) -> outflow_service::settings::KafkaLogin {
        outflow_service::settings::KafkaLogin::new(&self.kafka_user, &self.kafka_password)
    }

    /// The schema registry with the tests' login.
    pub fn registry(&self) -> outflow_outbox::Registry {
        outflow_outbox::Registry::new(&self.registry_url, Some(self.registry_user.clone()), Some(self.registry_password.clone().into()))
    }

    /// A client of the MongoDB API with the views' login.
    pub async fn mongo(&self) -> Result<mongodb::Client> {
        outflow_service::settings::mongo_client(&self.mongo_url, &self.mongo_user, &self.mongo_password.clone().into()).await
    }

    /// A Kafka client logged in as the tests' own principal (the administrator).
    pub fn kafka_config(&self) -> ClientConfig {
        outflow_service::settings::KafkaLogin::new(&self.kafka_user, &self.kafka_password).client_config(&self.kafka_brokers)
    }
}

/// The development defaults in `infra/dev.env`, the same file the scripts read.
fn dev_defaults() -> HashMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/dev.env");
    // Read, not loaded into the environment: the real environment stays first.
    dotenvy::from_path_iter(path).map(|entries| entries.filter_map(Result::ok).collect()).unwrap_or_default()
}

/// Kafka Connect's REST API, as much of it as the tests need.
pub struct Connect {
    url: String,
    http: reqwest::Client,
    login: (String, String),
}

impl Connect {
    pub fn new(stack: &Stack) -> Self {
        Connect { url: stack.connect_url.clone(), http: reqwest::Client::new(), login: (stack.connect_user.clone(), stack.connect_password.clone()) }
    }

    pub async fn put_config(&self, name: &str, config: &serde_json::Value) -> Result<()> {
        let response = self
            .http
            .put(format!("{}/connectors/{name}/config", self.url))
            .basic_auth(&self.login.0, Some(&self.login.1))
            .json(config)
            .send()
            .await
            .context("Kafka Connect is not reachable: is the stack up (scripts/up)?")?;
        if !response.status().is_success() {
            bail!("PUT connector {name}: {} {}", response.status(), response.text().await?);
        }
        Ok(())
    }

    /// Waits until the connector and all its tasks run; a FAILED task ends the
    /// wait at once with its trace.
    pub async fn wait_running(&self, name: &str, deadline: Duration) -> Result<()> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let status: serde_json::Value =
                self.http.get(format!("{}/connectors/{name}/status", self.url)).basic_auth(&self.login.0, Some(&self.login.1)).send().await?.json().await?;
            let connector = status["connector"]["state"].as_str().unwrap_or("");
            let tasks = status["tasks"].as_array().cloned().unwrap_or_default();
            if let Some(failed) = tasks.iter().find(|t| t["state"] == "FAILED") {
                bail!("connector {name} task failed: {}", failed["trace"]);
            }
            if connector == "FAILED" {
                bail!("connector {name} failed: {}", status["connector"]["trace"]);
            }
            if connector == "RUNNING" && !tasks.is_empty() && tasks.iter().all(|t| t["state"] == "RUNNING") {
                return Ok(());
            }
            if tokio::time::Instant::now() > until {
                bail!("connector {name} not RUNNING after {deadline:?}: {status}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        self.http.delete(format!("{}/connectors/{name}", self.url)).basic_auth(&self.login.0, Some(&self.login.1)).send().await?;
        Ok(())
    }
}

/// Waits until the broker knows `topic` (Connect creates topics on first write).
pub async fn wait_for_topic(stack: &Stack, topic: &str, deadline: Duration) -> Result<()> {
    let consumer: rdkafka::consumer::BaseConsumer = stack.kafka_config().create()?;
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(2))?;
        if metadata.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()) {
            return Ok(());
        }
        if tokio::time::Instant::now() > until {
            bail!("topic {topic} did not appear within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the server has replication slot `slot`.
pub async fn slot_exists(pool: &PgPool, slot: &str) -> Result<bool> {
    Ok(sqlx::query_scalar("select exists (select 1 from pg_replication_slots where slot_name = $1)").bind(slot).fetch_one(pool).await?)
}

/// Waits until a logical replication slot is held by a WAL sender, so that rows
/// written from now on are streamed.
pub async fn wait_slot_active(pool: &PgPool, slot: &str, deadline: Duration) -> Result<()> {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let active: Option<bool> = sqlx::query_scalar("select active from pg_replication_slots where slot_name = $1").bind(slot).fetch_optional(pool).await?;
        if active == Some(true) {
            return Ok(());
        }
        if tokio::time::Instant::now() > until {
            bail!("replication slot {slot} not active within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes topics a test created (missing ones are fine).
pub async fn delete_topics(stack: &Stack, topics: &[&str]) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = stack.kafka_config().create()?;
    admin.delete_topics(topics, &AdminOptions::new()).await?;
    Ok(())
}

/// A logical replication slot with the `test_decoding` plugin on a test
/// database: every committed change after [`WalProbe::start`], as text.
pub struct WalProbe {
    slot: String,
    pool: PgPool,
}

impl WalProbe {
    pub async fn start(pool: &PgPool) -> Result<Self> {
        let slot = format!("probe_{}", uuid::Uuid::new_v4().simple());
        sqlx::query("select pg_create_logical_replication_slot($1, 'test_decoding')")
            .bind(&slot)
            .execute(pool)
            .await
            .context("creating a test_decoding slot")?;
        Ok(WalProbe { slot, pool: pool.clone() })
    }

    /// The row changes committed so far, e.g. `table public.orders: INSERT: ...`
    /// (BEGIN and COMMIT lines left out).
    pub async fn changes(&self) -> Result<Vec<String>> {
        let rows: Vec<String> = sqlx::query_scalar("select data from pg_logical_slot_peek_changes($1, null, null) where data like 'table %'")
            .bind(&self.slot)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows)
    }

    /// The `type` of every outbox insert committed so far.
    pub async fn outbox_event_types(&self) -> Result<Vec<String>> {
        Ok(self
            .changes()
            .await?
            .iter()
            .filter(|c| c.starts_with("table public.outbox: INSERT:"))
            .filter_map(|c| c.split(" type[text]:'").nth(1)?.split('\'').next().map(str::to_owned))
            .collect())
    }

    pub async fn stop(self) -> Result<()> {
        sqlx::query("select pg_drop_replication_slot($1)").bind(&self.slot).execute(&self.pool).await?;
        Ok(())
    }
}

/// The production connector config (`connectors/orders.json`: converter,
/// router, predicates, heartbeat) pointed at a test database, its events
/// routed to `<database>.<aggregate type>.events` instead of the real topics.
pub struct TestConnector {
    pub name: String,
    connect: Connect,
    stack: Stack,
}

impl TestConnector {
    pub async fn start(stack: &Stack, pool: &PgPool, database: &str) -> Result<Self> {
        let connect = Connect::new(stack);
        let config = test_connector_config(database)?;
        prepare_database(pool, database, &config).await?;
        connect.put_config(database, &config).await?;
        connect.wait_running(database, Duration::from_secs(60)).await?;
        wait_slot_active(pool, database, Duration::from_secs(30)).await?;
        Ok(TestConnector { name: database.to_owned(), connect, stack: stack.clone() })
    }

    pub fn topic(&self, aggregate_type: &str) -> String {
        format!("{}.{aggregate_type}.events", self.name)
    }

    /// Deletes the connector (its task drops the slot) and the topics it made.
    pub async fn stop(self, aggregate_types: &[&str]) -> Result<()> {
        self.connect.delete(&self.name).await?;
        let mut topics: Vec<String> = aggregate_types.iter().map(|t| self.topic(t)).collect();
        topics.push(format!("__debezium-heartbeat.{}", self.name));
        delete_topics(&self.stack, &topics.iter().map(String::as_str).collect::<Vec<_>>()).await?;
        // The stopping task drops the slot, and a database cannot be dropped
        // before: wait until it is gone.
        let admin = self.stack.admin_pool().await?;
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if !slot_exists(&admin, &self.name).await? {
                return Ok(());
            }
            if tokio::time::Instant::now() > until {
                bail!("the replication slot {} of the stopped connector was not dropped within 30 s", self.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What `scripts/register-connectors` does before it registers a connector
/// (Debezium's login may not create publications): the publication with the
/// streamed tables, and that login's grants on them. `pool` is the
/// administrator's, in the test database.
async fn prepare_database(pool: &PgPool, database: &str, config: &serde_json::Value) -> Result<()> {
    let user = config["database.user"].as_str().context("the connector config names no database.user")?;
    for statement in [
        format!("grant usage on schema public to {user}"),
        format!("grant select on outbox, outbox_heartbeat to {user}"),
        format!("grant insert, update on outbox_heartbeat to {user}"),
        format!("create publication {database} for table outbox, outbox_heartbeat"),
    ] {
        sqlx::query(&statement).execute(pool).await.with_context(|| format!("{statement} in {database}"))?;
    }
    Ok(())
}

fn test_connector_config(database: &str) -> Result<serde_json::Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../connectors/orders.json");
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let mut config = file["config"].clone();
    for (key, value) in [
        ("database.dbname", database.to_owned()),
        ("topic.prefix", database.to_owned()),
        ("slot.name", database.to_owned()),
        ("publication.name", database.to_owned()),
        ("slot.drop.on.stop", "true".to_owned()),
        ("heartbeat.interval.ms", "1000".to_owned()),
        ("transforms.outbox.route.topic.replacement", format!("{database}.${{routedByValue}}.events")),
        ("predicates.isOutbox.pattern", format!("{database}\\.public\\.outbox")),
        ("predicates.isHeartbeatRow.pattern", format!("{database}\\.public\\.outbox_heartbeat")),
    ] {
        config[key] = serde_json::Value::String(value);
    }
    Ok(config)
}

/// Reads records from `topic` until `deadline`, returning those accepted by `keep`
/// once `want` of them arrived (or all it saw when the deadline passes).
pub async fn consume(
    stack: &Stack,
    topic: &str,
    want: usize,
    deadline: Duration,
    keep: impl Fn(&rdkafka::message::BorrowedMessage<'_>) -> bool,
) -> Result<Vec<rdkafka::message::OwnedMessage>> {
    use futures::StreamExt;
    use rdkafka::consumer::StreamConsumer;
    wait_for_topic(stack, topic, deadline).await?;
    let consumer: StreamConsumer = stack
        .kafka_config()
        .set("group.id", format!("test-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let until = tokio::time::Instant::now() + deadline;
    let mut kept = Vec::new();
    let mut stream = consumer.stream();
    while kept.len() < want {
        match tokio::time::timeout_at(until, stream.next()).await {
            Ok(Some(Ok(message))) if keep(&message) => kept.push(message.detach()),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => bail!("consuming {topic}: {e}"),
            Ok(None) | Err(_) => break,
        }
    }
    Ok(kept)
}

/// The records of `topic` that `keep` accepts, read from its start to its end
/// (the high watermark of every partition); when `complete` does not accept
/// them yet, the topic is read on from there to its new end, until it does or
/// `deadline` passes. Unlike [`consume`], it never waits for records that may
/// not come: "exactly one X" is read to the end of the topic, not to a timeout.
pub async fn read_topic(
    stack: &Stack,
    topic: &str,
    deadline: Duration,
    keep: impl Fn(&rdkafka::message::BorrowedMessage<'_>) -> bool,
    complete: impl Fn(&[rdkafka::message::OwnedMessage]) -> bool,
) -> Result<Vec<rdkafka::message::OwnedMessage>> {
    use rdkafka::{consumer::StreamConsumer, Message, Offset, TopicPartitionList};
    wait_for_topic(stack, topic, deadline).await?;
    let consumer: StreamConsumer =
        stack.kafka_config().set("group.id", format!("test-{}", uuid::Uuid::new_v4())).set("enable.auto.commit", "false").create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len()) as i32;
    let mut list = TopicPartitionList::new();
    let mut next = Vec::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)?;
        next.push(consumer.fetch_watermarks(topic, p, Duration::from_secs(5))?.0);
    }
    consumer.assign(&list)?;
    let until = tokio::time::Instant::now() + deadline;
    let mut kept = Vec::new();
    loop {
        let ends = (0..partitions).map(|p| consumer.fetch_watermarks(topic, p, Duration::from_secs(5)).map(|(_, high)| high)).collect::<Result<Vec<_>, _>>()?;
        while next.iter().zip(&ends).any(|(n, end)| n < end) {
            let idle = (tokio::time::Instant::now() + Duration::from_millis(500)).min(until);
            match tokio::time::timeout_at(idle, consumer.recv()).await {
                Ok(Ok(message)) => {
                    next[message.partition() as usize] = message.offset() + 1;
                    if keep(&message) {
                        kept.push(message.detach());
                    }
                }
                Ok(Err(e)) => bail!("reading {topic}: {e}"),
                // Idle: the rest up to the end may be transaction markers,
                // which take offsets but are never delivered; the position
                // moves past them.
                Err(_) if tokio::time::Instant::now() < until => {
                    for element in consumer.position()?.elements_for_topic(topic) {
                        if let Offset::Offset(at) = element.offset() {
                            let slot = &mut next[element.partition() as usize];
                            *slot = (*slot).max(at);
                        }
                    }
                }
                Err(_) => bail!("{topic} not read to its end ({ends:?}) within {deadline:?}: at {next:?}"),
            }
        }
        if complete(&kept) {
            return Ok(kept);
        }
        if tokio::time::Instant::now() > until {
            bail!("{topic}: what {deadline:?} brought is not complete yet: {} records kept", kept.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many records of `topics` the consumer group `group` has not committed
/// yet: the high watermark minus the committed offset, over every partition
/// (a partition the group never committed counts from its low watermark).
pub fn lag(stack: &Stack, group: &str, topics: &[String]) -> Result<i64> {
    use rdkafka::{consumer::BaseConsumer, Offset, TopicPartitionList};
    let consumer: BaseConsumer = stack.kafka_config().set("group.id", group).create()?;
    let mut list = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            list.add_partition(topic, partition.id());
        }
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(5))?;
    let mut behind = 0;
    for e in committed.elements() {
        let (low, high) = consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(5))?;
        let at = match e.offset() {
            Offset::Offset(o) => o,
            _ => low,
        };
        behind += (high - at).max(0);
    }
    Ok(behind)
}

/// The partitions of `topic`, as the broker reports them.
pub fn partitions(consumer: &impl Consumer, topic: &str) -> Result<Vec<i32>> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    Ok(metadata.topics().iter().flat_map(|t| t.partitions()).map(|p| p.id()).collect())
}

/// A record's headers as text.
pub fn header_map(message: &impl rdkafka::Message) -> HashMap<String, String> {
    use rdkafka::message::Headers;
    message
        .headers()
        .map(|h| h.iter().map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect())
        .unwrap_or_default()
}

/// Debian's `chromium` (or `chromium-browser`, or `OUTFLOW_CHROMIUM`).
pub fn chromium() -> Result<std::path::PathBuf> {
    if let Ok(path) = std::env::var("OUTFLOW_CHROMIUM") {
        return Ok(path.into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(found) = std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()) {
            return Ok(found);
        }
    }
    bail!("no chromium on PATH: apt-get install -y chromium (scripts/prerequisites.sh lists it), or set OUTFLOW_CHROMIUM")
}
