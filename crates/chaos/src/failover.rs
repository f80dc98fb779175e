//! Failover under load on the cluster topology (`scripts/failover`): each
//! scenario places its own orders at a steady rate, hits one node of the
//! cluster after a lead time, brings it back, waits until every order ended
//! and every group caught up, and checks the invariants over its own orders,
//! so that each scenario's figures (time until orders complete again, events
//! duplicated on Kafka, sagas affected) are its own.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{ensure, Context, Result};
use outflow_invariants::{Options, Report, Scope, Sources};
use outflow_stack_tests::Stack;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    cluster,
    component::Component,
    fault::{signal, wait_gone, wait_healthy},
    load::{self, Progress},
    recovery::{self, Intervention},
    run::{outcomes, payment_deadline, products},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// SIGKILL the Kafka node that leads the most event partitions.
    KillLeadingBroker,
    /// Then the same for another node, once the first has rejoined.
    KillAnotherBroker,
    /// SIGKILL the Connect worker that runs the most connector tasks.
    KillTaskWorker,
    /// SIGSTOP the Kafka node that leads the most event partitions for 30 s.
    FreezeBroker,
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [Scenario::KillLeadingBroker, Scenario::KillAnotherBroker, Scenario::KillTaskWorker, Scenario::FreezeBroker];
}

/// How a scenario's load is shaped.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub rate: f64,
    /// Orders are placed for this long.
    pub seconds: u64,
    /// The fault comes this long after the first order.
    pub lead: Duration,
    pub seed: u64,
}

/// What one scenario found.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub scenario: Scenario,
    pub target: Component,
    pub orders: usize,
    pub outcomes: std::collections::BTreeMap<String, i64>,
    /// From the fault until the first order placed after it was confirmed.
    pub confirms_again_ms: Option<u64>,
    /// A worker's death: from the kill until every connector and task ran on the other worker.
    pub tasks_moved_ms: Option<u64>,
    /// How long the node was down or frozen.
    pub down_ms: u64,
    /// From bringing the node back until every partition had all its replicas in sync.
    pub in_sync_ms: Option<u64>,
    /// Events of the scenario's orders on Kafka more than once.
    pub kafka_duplicates: u64,
    /// Orders whose saga was under way at the fault or started before orders completed again.
    pub sagas_affected: i64,
    /// The longest place → end time among them.
    pub slowest_affected_ms: Option<u64>,
    pub median_place_to_end_ms: Option<u64>,
    pub requests_retried: usize,
    pub interventions: Vec<Intervention>,
    pub invariants: Report,
}

impl Outcome {
    pub fn held(&self) -> bool {
        self.invariants.held()
    }
}

/// Runs one scenario. `excluded`: nodes an earlier scenario already killed.
pub async fn run(scenario: Scenario, load: Load, excluded: &[Component]) -> Result<Outcome> {
    let stack = Stack::from_env();
    for component in Component::deployed() {
        ensure!(component.healthy().await, "{} is not healthy before {scenario:?}: start the stack with scripts/up --cluster", component.name());
    }
    ensure!(Component::deployed().contains(&Component::Kafka3), "failover needs the cluster topology: scripts/up --cluster");
    cluster::wait_in_sync(&stack, Duration::from_secs(120)).await?;
    let orders_db = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&stack.database_url("orders")).await.context("the orders database")?;
    let progress = Arc::new(Progress::default());
    let client = load::Client::new(&stack, progress.clone());
    let orders = (load.rate * load.seconds as f64).round() as usize;
    let skus = products(&client, &orders_db, orders, load.seed).await?;
    let placing = tokio::spawn(load::run(client, skus.clone(), orders, load.rate, load.seed));
    tokio::time::sleep(load.lead).await;
    let fault = inject(&stack, &orders_db, scenario, excluded).await?;
    let placed = placing.await.context("the load")??;
    let ids: Vec<Uuid> = placed.iter().map(|p| Uuid::parse_str(&p.order_id)).collect::<Result<_, _>>()?;

    let mut interventions = Vec::new();
    recovery::components(&mut interventions).await?;
    recovery::connectors(&stack, &mut interventions).await?;
    recovery::orders_ended(&orders_db, &ids, payment_deadline() + Duration::from_secs(180)).await?;
    let sources = Sources::from_env().await?;
    outflow_invariants::wait_caught_up(&sources, Duration::from_secs(300)).await?;
    let scope = Scope::Only { orders: ids.clone(), skus };
    let invariants = outflow_invariants::check_until_held(&sources, &scope, &Options::from_env(), Duration::from_secs(60)).await?;
    let (sagas_affected, slowest_affected_ms, median_place_to_end_ms) = affected(&orders_db, &ids, &fault).await?;
    Ok(Outcome {
        scenario,
        target: fault.target,
        orders: ids.len(),
        outcomes: outcomes(&orders_db, &ids).await?,
        confirms_again_ms: fault.confirms_again_ms,
        tasks_moved_ms: fault.tasks_moved_ms,
        down_ms: fault.down_ms,
        in_sync_ms: fault.in_sync_ms,
        kafka_duplicates: invariants.kafka_duplicates,
        sagas_affected,
        slowest_affected_ms,
        median_place_to_end_ms,
        requests_retried: progress.retried.load(std::sync::atomic::Ordering::Relaxed),
        interventions,
        invariants,
    })
}

/// One fault as it happened.
struct Fault {
    target: Component,
    /// Seconds since the epoch, on this machine's clock (the database's too).
    at: f64,
    down_ms: u64,
    confirms_again_ms: Option<u64>,
    tasks_moved_ms: Option<u64>,
    in_sync_ms: Option<u64>,
}

/// How long an outage may keep orders from completing before the run gives up.
const PATIENCE: Duration = Duration::from_secs(180);

async fn inject(stack: &Stack, orders_db: &PgPool, scenario: Scenario, excluded: &[Component]) -> Result<Fault> {
    let target = match scenario {
        Scenario::KillTaskWorker => cluster::assignments(stack).await?.busiest_worker().context("no Connect worker runs a task")?,
        _ => cluster::partitions(stack).await?.busiest_leader(excluded).context("no Kafka node leads an event partition")?,
    };
    let pids = target.processes()?;
    let at = epoch_now();
    let started = Instant::now();
    let mut fault = Fault { target, at, down_ms: 0, confirms_again_ms: None, tasks_moved_ms: None, in_sync_ms: None };
    eprintln!("failover: {scenario:?}: {} (pid {})", target.name(), pids[0]);
    if scenario == Scenario::FreezeBroker {
        signal(&pids, libc::SIGSTOP);
        tokio::time::sleep(Duration::from_secs(30)).await;
        signal(&pids, libc::SIGCONT);
        fault.down_ms = millis(started.elapsed());
        fault.confirms_again_ms = Some(confirms_again(orders_db, at).await?);
    } else {
        signal(&pids[..1], libc::SIGKILL);
        wait_gone(pids[0]).await?;
        if scenario == Scenario::KillTaskWorker {
            fault.tasks_moved_ms = Some(tasks_moved(stack, target, started).await?);
        }
        // The node stays down until orders complete without it.
        fault.confirms_again_ms = Some(confirms_again(orders_db, at).await?);
        fault.down_ms = millis(started.elapsed());
        target.start().await?;
        wait_healthy(target, Duration::from_secs(120)).await?;
    }
    let back = Instant::now();
    cluster::wait_in_sync(stack, Duration::from_secs(180)).await?;
    fault.in_sync_ms = Some(millis(back.elapsed()));
    Ok(fault)
}

/// Waits until every connector and task runs, none on the dead worker.
async fn tasks_moved(stack: &Stack, gone: Component, since: Instant) -> Result<u64> {
    loop {
        if let Ok(seen) = cluster::assignments(stack).await {
            if seen.all_running_without(gone) {
                return Ok(millis(since.elapsed()));
            }
        }
        ensure!(since.elapsed() < PATIENCE, "the tasks of {} did not move to another worker within {PATIENCE:?}", gone.name());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until an order placed after `at` is confirmed; answers how long after `at`.
async fn confirms_again(orders_db: &PgPool, at: f64) -> Result<u64> {
    let until = tokio::time::Instant::now() + PATIENCE;
    loop {
        let first: Option<f64> = sqlx::query_scalar(
            "select extract(epoch from min(confirmed_at))::float8 from orders where confirmed_at is not null and created_at >= to_timestamp($1)",
        )
        .bind(at)
        .fetch_one(orders_db)
        .await?;
        if let Some(t) = first {
            return Ok(((t - at) * 1000.0).max(0.0) as u64);
        }
        ensure!(tokio::time::Instant::now() < until, "no order placed after the fault was confirmed within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (sagas affected, the slowest of them, the scenario's median) in ms: a saga
/// is affected when it was under way at the fault or began before orders
/// completed again.
async fn affected(orders_db: &PgPool, ids: &[Uuid], fault: &Fault) -> Result<(i64, Option<u64>, Option<u64>)> {
    let again = fault.at + fault.confirms_again_ms.unwrap_or(fault.down_ms) as f64 / 1000.0;
    let (count, slowest, median): (i64, Option<f64>, Option<f64>) = sqlx::query_as(
        "select count(*) filter (where created_at < to_timestamp($3) and settled_at > to_timestamp($2)),
                max(extract(epoch from settled_at - created_at)::float8 * 1000) filter (where created_at < to_timestamp($3) and settled_at > to_timestamp($2)),
                percentile_cont(0.5) within group (order by extract(epoch from settled_at - created_at)::float8 * 1000)
         from (select created_at, coalesce(confirmed_at, updated_at) as settled_at from orders where id = any($1) and status <> 'PENDING') settled",
    )
    .bind(ids)
    .bind(fault.at)
    .bind(again)
    .fetch_one(orders_db)
    .await?;
    Ok((count, slowest.map(|ms| ms as u64), median.map(|ms| ms as u64)))
}

fn epoch_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
