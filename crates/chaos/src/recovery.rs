//! After the last fault: everything is brought back to health, and what did
//! not come back by itself is named in the report (and then brought back, as
//! `scripts/up` would): a component that died on its own, a connector task
//! left FAILED. Then every order must end, every group catch up and every
//! replication slot be active with its lag back under 1 MiB.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use outflow_stack_tests::{services, Stack};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

use crate::{component::Component, fault::wait_healthy};

/// Something that did not recover by itself.
#[derive(Clone, Debug, Serialize)]
pub struct Intervention {
    pub what: String,
    pub why: String,
}

/// Starts every component that is not running (its death is an intervention)
/// and waits until each is healthy.
pub async fn components(interventions: &mut Vec<Intervention>) -> Result<()> {
    for component in Component::deployed() {
        if services::recorded(component.name()).is_err() {
            interventions.push(Intervention { what: component.name().into(), why: "was not running after the faults: started again".into() });
            component.start().await?;
        }
        wait_healthy(component, Duration::from_secs(120)).await?;
    }
    Ok(())
}

/// Every connector and task RUNNING; a FAILED one is restarted and named.
pub async fn connectors(stack: &Stack, interventions: &mut Vec<Intervention>) -> Result<()> {
    let until = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let statuses: Value = stack.connect_request(reqwest::Method::GET, "/connectors?expand=status").send().await?.json().await?;
        let mut pending = Vec::new();
        for (name, entry) in statuses.as_object().context("Connect's connector list")? {
            let status = &entry["status"];
            let states: Vec<&str> =
                std::iter::once(&status["connector"]).chain(status["tasks"].as_array().into_iter().flatten()).filter_map(|s| s["state"].as_str()).collect();
            if states.contains(&"FAILED") {
                let trace = status["tasks"].as_array().into_iter().flatten().find_map(|t| t["trace"].as_str()).unwrap_or_default();
                interventions
                    .push(Intervention { what: format!("connector {name}"), why: format!("FAILED: {}; restarted", trace.lines().next().unwrap_or_default()) });
                stack.connect_request(reqwest::Method::POST, &format!("/connectors/{name}/restart?includeTasks=true&onlyFailed=true")).send().await?;
            }
            if states.is_empty() || states.iter().any(|s| *s != "RUNNING") {
                pending.push(format!("{name}: {states:?}"));
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        ensure!(tokio::time::Instant::now() < until, "connectors not RUNNING 120 s after the faults: {pending:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Waits until no order of the run is PENDING.
pub async fn orders_ended(orders: &PgPool, ids: &[uuid::Uuid], within: Duration) -> Result<()> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let pending: i64 = sqlx::query_scalar("select count(*) from orders where id = any($1) and status = 'PENDING'").bind(ids).fetch_one(orders).await?;
        if pending == 0 {
            return Ok(());
        }
        ensure!(tokio::time::Instant::now() < until, "{pending} orders of the run are still PENDING {within:?} after the faults");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Slot {
    pub name: String,
    pub active: bool,
    pub wal_status: Option<String>,
    pub lag_bytes: Option<i64>,
}

const SLOT_LAG_LIMIT: i64 = 1 << 20;

/// The connectors' replication slots, once each is active with under 1 MiB of
/// lag; a slot moves only when Debezium confirms (its heartbeat, on a quiet
/// database), so this waits up to 90 s. Returns the last look either way.
/// How many slots there must be: one per connector of `connectors/`.
fn connector_files() -> Result<usize> {
    let dir = services::repo().join("connectors");
    let files = std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
    Ok(files.filter_map(|f| f.ok()).filter(|f| f.path().extension().is_some_and(|e| e == "json")).count())
}

pub async fn slots(admin: &PgPool) -> Result<(bool, Vec<Slot>)> {
    let until = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let rows: Vec<(String, bool, Option<String>, Option<i64>)> = sqlx::query_as(
            "select slot_name::text, active, wal_status, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint
             from pg_replication_slots where slot_name like 'outflow\\_%' order by slot_name",
        )
        .fetch_all(admin)
        .await?;
        let slots: Vec<Slot> = rows.into_iter().map(|(name, active, wal_status, lag_bytes)| Slot { name, active, wal_status, lag_bytes }).collect();
        let held = slots.len() == connector_files()?
            && slots
                .iter()
                .all(|s| s.active && matches!(s.wal_status.as_deref(), Some("reserved" | "extended")) && s.lag_bytes.is_some_and(|l| l < SLOT_LAG_LIMIT));
        if held || tokio::time::Instant::now() > until {
            return Ok((held, slots));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
