//! A whole run: products, the load, the faults one after another while the
//! orders flow, then the recovery and the check.

use std::{
    collections::BTreeMap,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{ensure, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use outflow_invariants::{Options, Scope, Sources};
use outflow_stack_tests::Stack;
use sqlx::{postgres::PgPoolOptions, PgPool};
use uuid::Uuid;

use crate::{
    completion,
    component::Component,
    fault::{self, Injected},
    load::{self, Progress},
    plan::{Config, Plan},
    recovery::{self, Intervention},
    report::FailedRun,
    ChaosReport,
};

/// The payment deadline of the stack the run drives (expired orders end after it).
pub(crate) fn payment_deadline() -> Duration {
    Duration::from_millis(std::env::var("OUTFLOW_PAYMENT_DEADLINE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000))
}

/// What a run had done so far, kept so that a run that cannot finish still
/// reports its faults and where it stopped.
struct Partial {
    stage: &'static str,
    faults: Vec<Injected>,
    interventions: Vec<Intervention>,
    progress: Arc<Progress>,
}

/// Runs the load and the faults, then the recovery and the check. A run that
/// cannot finish answers what it had done and the step that failed.
pub async fn run(config: Config) -> Result<ChaosReport, Box<FailedRun>> {
    let started = Instant::now();
    let mut partial = Partial { stage: "before the load", faults: Vec::new(), interventions: Vec::new(), progress: Arc::new(Progress::default()) };
    match stages(&config, &mut partial, started).await {
        Ok(report) => Ok(report),
        Err(error) => Err(Box::new(FailedRun {
            seed: config.seed,
            stage: partial.stage.into(),
            error: format!("{error:#}"),
            orders_placed: partial.progress.placed.load(Ordering::Relaxed),
            faults: partial.faults,
            interventions: partial.interventions,
            took_s: started.elapsed().as_secs(),
        })),
    }
}

async fn stages(config: &Config, partial: &mut Partial, started: Instant) -> Result<ChaosReport> {
    let started_at = SystemTime::now();
    let stack = Stack::from_env();
    let plan = Plan::new(config);
    for component in Component::deployed() {
        ensure!(component.healthy().await, "{} is not healthy before the run: start the stack with scripts/up", component.name());
    }
    let orders_db = PgPoolOptions::new().max_connections(2).connect(&stack.database_url("orders")).await.context("the orders database")?;
    let client = load::Client::new(&stack, partial.progress.clone());
    let skus = products(&client, &orders_db, config.orders, config.seed).await?;
    let rate = config.rate.unwrap_or(config.orders as f64 / plan.estimated().as_secs_f64().max(1.0));
    eprintln!("chaos: seed {}, {} orders at {rate:.1}/s, {} faults over about {} s", config.seed, config.orders, plan.faults.len(), plan.estimated().as_secs());
    let load = tokio::spawn(load::run(client, skus.clone(), config.orders, rate, config.seed));
    partial.stage = "the faults";
    faults(&plan, &partial.progress, config.orders, started, &mut partial.faults).await?;
    partial.stage = "the load";
    let placed = load.await.context("the load")??;

    partial.stage = "recovery: components and connectors";
    recovery::components(&mut partial.interventions).await?;
    recovery::connectors(&stack, &mut partial.interventions).await?;
    partial.stage = "recovery: every order ended";
    let ids: Vec<Uuid> = placed.iter().map(|p| Uuid::parse_str(&p.order_id)).collect::<Result<_, _>>()?;
    recovery::orders_ended(&orders_db, &ids, payment_deadline() + Duration::from_secs(180)).await?;
    partial.stage = "recovery: every group caught up and every slot active";
    let sources = Sources::from_env().await?;
    outflow_invariants::wait_caught_up(&sources, Duration::from_secs(300)).await?;
    let (slots_held, slots) = recovery::slots(&stack.admin_pool().await?).await?;
    partial.stage = "the invariant check";
    let scope = Scope::Only { orders: ids.clone(), skus };
    let invariants = outflow_invariants::check_until_held(&sources, &scope, &Options::from_env(), Duration::from_secs(60)).await?;
    let mut faults = std::mem::take(&mut partial.faults);
    let confirm_median_ms = completion::confirms_again(&orders_db, &ids, started_at, &mut faults).await?;
    Ok(ChaosReport {
        seed: config.seed,
        orders: placed.len(),
        outcomes: outcomes(&orders_db, &ids).await?,
        faults,
        confirm_median_ms,
        requests_retried: partial.progress.retried.load(Ordering::Relaxed),
        interventions: std::mem::take(&mut partial.interventions),
        slots_held,
        slots,
        invariants,
        took_s: started.elapsed().as_secs(),
    })
}

/// The run's products, once the orders writer's catalog replica knows them
/// (before the first fault: a placement of an unknown SKU is refused).
pub(crate) async fn products(client: &load::Client, orders_db: &PgPool, orders: usize, seed: u64) -> Result<Vec<String>> {
    let products = load::products(seed, orders);
    for (sku, stock) in &products {
        client.product(sku, *stock).await?;
    }
    let skus: Vec<String> = products.into_iter().map(|(sku, _)| sku).collect();
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let known: i64 = sqlx::query_scalar("select count(*) from catalog where sku = any($1)").bind(&skus).fetch_one(orders_db).await?;
        if known == skus.len() as i64 {
            return Ok(skus);
        }
        ensure!(tokio::time::Instant::now() < until, "the catalog replica knows {known} of the run's {} products after 60 s", skus.len());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The faults of the plan, one after another, with a progress line.
async fn faults(plan: &Plan, progress: &Arc<Progress>, orders: usize, started: Instant, injected: &mut Vec<Injected>) -> Result<()> {
    let bar = ProgressBar::new(orders as u64);
    bar.set_style(ProgressStyle::with_template("{elapsed_precise} orders placed {pos}/{len}, {msg}").expect("a valid template"));
    for (i, fault) in plan.faults.iter().enumerate() {
        let waited = tokio::time::sleep(Duration::from_millis(fault.after_ms));
        tokio::pin!(waited);
        while tokio::time::timeout(Duration::from_millis(500), &mut waited).await.is_err() {
            bar.set_position(progress.placed.load(Ordering::Relaxed) as u64);
        }
        bar.set_message(format!("fault {}/{}: {} {:?}", i + 1, plan.faults.len(), fault.component.name(), fault.action));
        let done = fault::inject(fault, started).await?;
        let line = format!(
            "fault {}/{}: {} {:?}: down {} ms, healthy {} ms later",
            i + 1,
            plan.faults.len(),
            done.component.name(),
            done.action,
            done.down_ms,
            done.recovered_ms
        );
        // Without a terminal (CI, a log file) the bar is hidden: the lines still matter.
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
        injected.push(done);
    }
    bar.finish_with_message("faults done; waiting for the orders to end");
    Ok(())
}

pub(crate) async fn outcomes(orders_db: &PgPool, ids: &[Uuid]) -> Result<BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("select status || coalesce(' (' || cancel_reason || ')', ''), count(*) from orders where id = any($1) group by 1")
            .bind(ids)
            .fetch_all(orders_db)
            .await?;
    Ok(rows.into_iter().collect())
}
