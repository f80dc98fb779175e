//! The spine of Outflow, end to end on the real stack: an outbox row holding
//! Confluent-framed Avro bytes, written to PostgreSQL, streamed by Debezium's
//! PostgreSQL connector through the Outbox Event Router to its Kafka topic,
//! consumed with rdkafka and decoded through the schema registry; and a round
//! trip through the MongoDB API.

use std::time::Duration;

use anyhow::{Context, Result};
use apache_avro::types::Value;
use futures::StreamExt;
use mongodb::bson::doc;
use outflow_stack_tests::{consume, header_map, Stack, TestConnector};
use rdkafka::message::Message;
use schema_registry_converter::{
    async_impl::avro::{AvroDecoder, AvroEncoder},
    schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema},
};

const SPINE_SCHEMA: &str = r#"{
  "type": "record", "name": "SpineChecked", "namespace": "dev.outflow.test",
  "fields": [
    {"name": "event_id", "type": "string"},
    {"name": "aggregate_id", "type": "string"},
    {"name": "amount_minor", "type": "long"},
    {"name": "note", "type": "string"}
  ]
}"#;

/// The outbox the writers' databases have (their first migration).
const OUTBOX_DDL: &str = include_str!("../../crates/outbox/sql/outbox.sql");

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn an_outbox_row_reaches_its_topic_byte_for_byte_and_decodes_through_the_registry() -> Result<()> {
    let stack = Stack::from_env();
    let (database, pool) = stack.fresh_database("spine").await?;
    sqlx::raw_sql(OUTBOX_DDL).execute(&pool).await?;
    let connector = TestConnector::start(&stack, &pool, &database).await?;
    let outcome = run_spine(&stack, &connector, &pool).await;
    connector.stop(&["spine"]).await?;
    pool.close().await;
    stack.drop_database(&database).await?;
    outcome
}

async fn run_spine(stack: &Stack, connector: &TestConnector, pool: &sqlx::PgPool) -> Result<()> {
    let topic = connector.topic("spine");
    let event_id = uuid::Uuid::now_v7();
    let aggregate_id = uuid::Uuid::new_v4().to_string();
    let encoder = AvroEncoder::new(stack.registry().settings());
    let strategy = SubjectNameStrategy::TopicRecordNameStrategyWithSchema(
        topic.clone(),
        SuppliedSchema::new(Some("dev.outflow.test.SpineChecked".into()), SchemaType::Avro, SPINE_SCHEMA.into()),
    );
    let written = vec![
        ("event_id", Value::String(event_id.to_string())),
        ("aggregate_id", Value::String(aggregate_id.clone())),
        ("amount_minor", Value::Long(12_345)),
        ("note", Value::String("spine".into())),
    ];
    let payload = encoder.encode(written.clone(), strategy).await.context("encoding through the registry")?;
    assert_eq!(payload[0], 0, "Confluent framing starts with magic byte 0");

    // Insert and delete in one transaction, as the writers do: the WAL keeps the insert.
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut tx = pool.begin().await?;
    sqlx::query("insert into outbox (id, aggregatetype, aggregateid, type, payload, traceparent) values ($1, $2, $3, $4, $5, $6)")
        .bind(event_id)
        .bind("spine")
        .bind(&aggregate_id)
        .bind("SpineChecked")
        .bind(&payload)
        .bind(traceparent)
        .execute(&mut *tx)
        .await?;
    sqlx::query("delete from outbox where id = $1").bind(event_id).execute(&mut *tx).await?;
    tx.commit().await?;

    let messages = consume(stack, &topic, 1, Duration::from_secs(60), |_| true).await?;
    let message = messages.first().context("no record on the routed topic within 60 s")?;
    assert_eq!(message.payload(), Some(payload.as_slice()), "the connector must pass the bytes through unchanged");
    assert_eq!(message.key(), Some(aggregate_id.as_bytes()), "key = aggregate id");
    let headers = header_map(message);
    assert_eq!(headers.get("id").map(String::as_str), Some(event_id.to_string().as_str()), "event id header: {headers:?}");
    assert_eq!(headers.get("eventType").map(String::as_str), Some("SpineChecked"), "event type header: {headers:?}");
    assert_eq!(headers.get("traceparent").map(String::as_str), Some(traceparent), "trace context header: {headers:?}");

    let decoded = AvroDecoder::new(stack.registry().settings()).decode(message.payload()).await.context("decoding through the registry")?;
    let expected = Value::Record(written.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    assert_eq!(decoded.value, expected);
    Ok(())
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn the_mongodb_api_inserts_upserts_and_finds() -> Result<()> {
    let stack = Stack::from_env();
    let client = stack.mongo().await?;
    let database = client.database(&format!("spine_{}", uuid::Uuid::new_v4().simple()));
    let views = database.collection::<mongodb::bson::Document>("views");

    views.insert_one(doc! { "_id": "order-1", "status": "PENDING", "version": 1 }).await?;
    let updated =
        views.update_one(doc! { "_id": "order-1", "version": { "$lt": 2 } }, doc! { "$set": { "status": "CONFIRMED", "version": 2 } }).upsert(true).await?;
    assert_eq!(updated.modified_count, 1);
    let inserted = views.update_one(doc! { "_id": "order-2" }, doc! { "$set": { "status": "PENDING", "version": 1 } }).upsert(true).await?;
    assert!(inserted.upserted_id.is_some(), "an upsert of a missing document inserts it");

    let found = views.find_one(doc! { "_id": "order-1" }).await?.context("order-1 not found")?;
    assert_eq!(found.get_str("status")?, "CONFIRMED");
    assert_eq!(found.get_i32("version")?, 2);
    let mut all: Vec<_> = views.find(doc! {}).await?.collect::<Vec<_>>().await.into_iter().collect::<Result<_, _>>()?;
    all.sort_by_key(|d| d.get_str("_id").unwrap_or_default().to_owned());
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].get_str("_id")?, "order-2");

    database.drop().await?;
    Ok(())
}
