//! Slot safety: a replication slot lost under a running connector (dropped
//! by hand here; invalidated by `max_slot_wal_keep_size` is the same to
//! Debezium) stops that database's CDC loudly, the monitor shows it, and the
//! reset that README.md documents (stop, delete offsets, resume) brings it
//! back. What is lost is said plainly: every event committed from the loss
//! of the slot until the reset, and nothing else.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use outflow_stack_tests::{header_map, read_topic, slot_exists, wait_slot_active, Stack, TestConnector};
use serde_json::Value;
use sqlx::PgPool;

/// The outbox the writers' databases have (their first migration).
const OUTBOX_DDL: &str = include_str!("../../crates/outbox/sql/outbox.sql");
const MONITOR: &str = "http://127.0.0.1:7190";

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_lost_slot_fails_its_connector_loudly_and_the_reset_loses_only_what_was_committed_meanwhile() -> Result<()> {
    let stack = Stack::from_env();
    let (database, pool) = stack.fresh_database("slot").await?;
    sqlx::raw_sql(OUTBOX_DDL).execute(&pool).await?;
    let connector = TestConnector::start(&stack, &pool, &database).await?;
    let outcome = lose_and_reset(&stack, &connector, &pool, &database).await;
    connector.stop(&["slot"]).await?;
    pool.close().await;
    stack.drop_database(&database).await?;
    outcome
}

async fn lose_and_reset(stack: &Stack, connector: &TestConnector, pool: &PgPool, database: &str) -> Result<()> {
    let topic = connector.topic("slot");
    let before = write(pool, "before").await?;
    wait_on_topic(stack, &topic, &[&before]).await?;

    let admin = stack.admin_pool().await?;
    drop_slot(&admin, database).await?;
    let meanwhile = write(pool, "while the slot is gone").await?;
    let failure = wait_task_failed(stack, database).await?;
    ensure!(failure.contains("no longer available on the server"), "the task failed for another reason: {failure}");
    let after_failure = write(pool, "while the task is failed").await?;
    monitor_shows_the_loss(database).await?;

    reset(stack, database).await?;
    wait_slot_active(&admin, database, Duration::from_secs(60)).await?;
    let after_reset = write(pool, "after the reset").await?;
    let ids = wait_on_topic(stack, &topic, &[&before, &after_reset]).await?;
    ensure!(!ids.contains(&meanwhile) && !ids.contains(&after_failure), "events committed without a slot were not expected on {topic}: {ids:?}");
    Ok(())
}

/// One outbox row, inserted and deleted in one transaction as the writers do; its id.
async fn write(pool: &PgPool, note: &str) -> Result<String> {
    let id = uuid::Uuid::new_v4();
    let mut tx = pool.begin().await?;
    sqlx::query("insert into outbox (id, aggregatetype, aggregateid, type, payload) values ($1, 'slot', $2, 'SlotChecked', $3)")
        .bind(id)
        .bind(id.to_string())
        .bind(note.as_bytes())
        .execute(&mut *tx)
        .await?;
    sqlx::query("delete from outbox where id = $1").bind(id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(id.to_string())
}

/// The event ids on `topic`, read to its end once `wanted` are all there.
async fn wait_on_topic(stack: &Stack, topic: &str, wanted: &[&str]) -> Result<Vec<String>> {
    let id = |m: &rdkafka::message::OwnedMessage| header_map(m).get("id").cloned().unwrap_or_default();
    let found = read_topic(stack, topic, Duration::from_secs(60), |_| true, |kept| wanted.iter().all(|w| kept.iter().any(|m| id(m) == *w))).await?;
    let ids: Vec<String> = found.iter().map(id).collect();
    ensure!(wanted.iter().all(|w| ids.iter().any(|i| i == w)), "{wanted:?} not all on {topic} within 60 s: {ids:?}");
    Ok(ids)
}

/// Drops the slot under the running connector. An active slot cannot be
/// dropped, so one statement ends its walsender, waits up to 5 s for it to
/// exit (the task reconnects within moments) and drops it. The test connector
/// has `slot.drop.on.stop`, so the task, stopping after it lost its walsender,
/// may drop the slot first (CI then saw "does not exist" for 30 s): the slot
/// is gone either way, which is what the test needs.
async fn drop_slot(admin: &PgPool, slot: &str) -> Result<()> {
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let dropped = sqlx::query(
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots \
             where slot_name = $1 and (active_pid is null or pg_terminate_backend(active_pid, 5000))",
        )
        .bind(slot)
        .execute(admin)
        .await;
        if !slot_exists(admin, slot).await? {
            return Ok(());
        }
        ensure!(tokio::time::Instant::now() < until, "could not drop slot {slot} within 30 s (last: {:?})", dropped.map(|d| d.rows_affected()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The task's trace once Connect reports it FAILED.
async fn wait_task_failed(stack: &Stack, connector: &str) -> Result<String> {
    let until = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let status: Value = stack.connect_request(reqwest::Method::GET, &format!("/connectors/{connector}/status")).send().await?.json().await?;
        let task = &status["tasks"][0];
        if task["state"] == "FAILED" {
            return Ok(task["trace"].as_str().unwrap_or_default().to_owned());
        }
        ensure!(tokio::time::Instant::now() < until, "the task of {connector} did not fail within 90 s of losing its slot: {status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Before the reset, the monitor's overview shows the task FAILED with its
/// trace and no slot for the connector.
async fn monitor_shows_the_loss(connector: &str) -> Result<()> {
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    // The monitor's API answers admins only.
    let admin = outflow_service::auth::JwtKeys::new(&Stack::from_env().jwt_secret.into()).mint("slots-test", outflow_service::auth::Role::Admin, 600);
    let http = reqwest::Client::new();
    loop {
        let overview: Value = http.get(format!("{MONITOR}/api/overview")).bearer_auth(&admin).send().await?.error_for_status()?.json().await?;
        let shown = overview["connectors"]["connectors"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == connector)
            .context("the monitor lists the connector")?;
        let failed = shown["tasks"][0]["state"] == "FAILED" && shown["tasks"][0]["trace"].as_str().is_some_and(|t| t.contains("no longer available"));
        let slot_gone = overview["slots"]["slots"].as_array().into_iter().flatten().all(|s| s["slot_name"] != connector);
        if failed && slot_gone {
            return Ok(());
        }
        ensure!(tokio::time::Instant::now() < until, "the monitor does not show the lost slot within 30 s: {shown} / {}", overview["slots"]);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// README.md's reset: stop the connector, delete its stored offsets, resume.
async fn reset(stack: &Stack, connector: &str) -> Result<()> {
    let path = format!("/connectors/{connector}");
    let http = |method: reqwest::Method, tail: &str| stack.connect_request(method, &format!("{path}{tail}"));
    ensure!(http(reqwest::Method::PUT, "/stop").send().await?.status().is_success(), "stopping {connector}");
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        // Offsets can be deleted only once the connector has stopped.
        let deleted = http(reqwest::Method::DELETE, "/offsets").send().await?;
        if deleted.status().is_success() {
            break;
        }
        ensure!(tokio::time::Instant::now() < until, "deleting the offsets of {connector}: {}", deleted.text().await?);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ensure!(http(reqwest::Method::PUT, "/resume").send().await?.status().is_success(), "resuming {connector}");
    Ok(())
}
