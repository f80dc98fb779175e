//! `scripts/bench cdc`: what one Debezium task and one partition carry, for
//! the scaling plan (README, "Scaling plan"). On a fresh test database with
//! the writers' outbox and a connector made from `connectors/orders.json`
//! (the production settings, `max.batch.size` included):
//!
//! - the connector is paused, N outbox rows are committed (K per transaction,
//!   insert and delete as the writers do), the connector is resumed, and the
//!   time until all N are on the topic gives the task's drain rate in events/s;
//! - one consumer then reads one partition of that topic from its start: the
//!   rate at which a partition hands records to a consumer.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use outflow_stack_tests::{Stack, TestConnector};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    Message, Offset, TopicPartitionList,
};
use serde::Serialize;

const OUTBOX_DDL: &str = include_str!("../../crates/outbox/sql/outbox.sql");
const AGGREGATE: &str = "cdcbench";

#[derive(clap::Args)]
pub struct Args {
    /// Events per pattern.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Events per transaction, one pattern each (1 is the saga's shape).
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    per_transaction: Vec<usize>,
}

#[derive(Debug, Serialize)]
pub struct Drain {
    pub events: usize,
    pub per_transaction: usize,
    pub seconds: f64,
    pub events_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Read {
    pub records: usize,
    pub seconds: f64,
    pub records_per_s: f64,
}

pub async fn run(args: Args) -> Result<()> {
    let stack = Stack::from_env();
    let mut drains = Vec::new();
    let mut read = None;
    for per_transaction in args.per_transaction {
        let (database, pool) = stack.fresh_database("cdcbench").await?;
        sqlx::raw_sql(OUTBOX_DDL).execute(&pool).await?;
        let connector = TestConnector::start(&stack, &pool, &database).await?;
        let topic = connector.topic(AGGREGATE);
        let measured = drain(&stack, &pool, &database, &topic, args.events, per_transaction).await;
        if let (Ok(_), None) = (&measured, &read) {
            read = Some(read_partition(&stack, &topic).await?);
        }
        connector.stop(&[AGGREGATE]).await?;
        pool.close().await;
        stack.drop_database(&database).await?;
        let measured = measured?;
        println!(
            "one Debezium task drains {:.0} events/s ({} events, {} per transaction, {:.1} s)",
            measured.events_per_s, measured.events, measured.per_transaction, measured.seconds
        );
        drains.push(measured);
    }
    if let Some(read) = &read {
        println!("one partition reads {:.0} records/s into one consumer ({} records, {:.2} s)", read.records_per_s, read.records, read.seconds);
    }
    println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "drains": drains, "partition_read": read }))?);
    Ok(())
}

/// Pauses the connector, commits `events` outbox rows, resumes it and times
/// until the topic holds them all.
async fn drain(stack: &Stack, pool: &sqlx::PgPool, connector: &str, topic: &str, events: usize, per_transaction: usize) -> Result<Drain> {
    connect(stack, reqwest::Method::PUT, &format!("/connectors/{connector}/pause")).await?;
    wait_state(stack, connector, "PAUSED").await?;
    let payload = vec![7u8; 200];
    for chunk in (0..events).collect::<Vec<_>>().chunks(per_transaction.max(1)) {
        let mut tx = pool.begin().await?;
        for i in chunk {
            let id = uuid::Uuid::now_v7();
            sqlx::query("insert into outbox (id, aggregatetype, aggregateid, type, payload) values ($1, $2, $3, 'CdcBenched', $4)")
                .bind(id)
                .bind(AGGREGATE)
                .bind(format!("aggregate-{}", i % 997))
                .bind(&payload)
                .execute(&mut *tx)
                .await?;
            sqlx::query("delete from outbox where id = $1").bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    let started = Instant::now();
    connect(stack, reqwest::Method::PUT, &format!("/connectors/{connector}/resume")).await?;
    let consumer: BaseConsumer = stack.kafka_config().create()?;
    loop {
        let on_topic = records(&consumer, topic).unwrap_or(0);
        if on_topic >= events {
            let seconds = started.elapsed().as_secs_f64();
            return Ok(Drain { events, per_transaction, seconds, events_per_s: events as f64 / seconds });
        }
        ensure!(started.elapsed() < Duration::from_secs(600), "{on_topic} of {events} events on {topic} after 600 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Records on every partition of `topic` (high minus low watermark).
fn records(consumer: &BaseConsumer, topic: &str) -> Result<usize> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let partitions = metadata.topics().first().map(|t| t.partitions().len()).unwrap_or(0);
    let mut total = 0;
    for p in 0..partitions as i32 {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5))?;
        total += usize::try_from(high - low).unwrap_or(0);
    }
    Ok(total)
}

/// Reads partition 0 from its start with one consumer.
async fn read_partition(stack: &Stack, topic: &str) -> Result<Read> {
    let mut config = stack.kafka_config();
    config.set("group.id", format!("test-cdcbench-{}", uuid::Uuid::new_v4().simple())).set("enable.auto.commit", "false");
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create()?;
        let (low, high) = consumer.fetch_watermarks(&topic, 0, Duration::from_secs(5))?;
        let wanted = usize::try_from(high - low)?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&topic, 0, Offset::Beginning)?;
        consumer.assign(&assignment)?;
        let started = Instant::now();
        let mut read = 0;
        while read < wanted {
            match consumer.poll(Duration::from_secs(10)) {
                Some(Ok(message)) => read += usize::from(message.payload().is_some()),
                Some(Err(e)) => return Err(e).context("reading the partition"),
                None => anyhow::bail!("read {read} of {wanted} records, then nothing for 10 s"),
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        Ok(Read { records: read, seconds, records_per_s: read as f64 / seconds })
    })
    .await?
}

async fn connect(stack: &Stack, method: reqwest::Method, path: &str) -> Result<()> {
    let response = stack.connect_request(method, path).send().await?;
    ensure!(response.status().is_success(), "{path}: {}", response.status());
    Ok(())
}

async fn wait_state(stack: &Stack, connector: &str, wanted: &str) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let status: serde_json::Value = stack.connect_request(reqwest::Method::GET, &format!("/connectors/{connector}/status")).send().await?.json().await?;
        let tasks = status["tasks"].as_array().cloned().unwrap_or_default();
        if status["connector"]["state"] == wanted && !tasks.is_empty() && tasks.iter().all(|t| t["state"] == wanted) {
            return Ok(());
        }
        ensure!(Instant::now() < until, "connector {connector} not {wanted} after 60 s: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
