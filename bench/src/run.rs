//! `scripts/bench [quick|full]`: every figure of the benchmark in one run on
//! the running stack, each next to its ceiling.
//!
//! (a) SQL ceilings of the order transaction and of the whole saga;
//! (b) the write path through REST; (c) commit → Kafka per hop; (d) the
//! completed-saga rate at saturation (closed loop) and, at half of it, POST →
//! view CONFIRMED and commit → view, with the slots' lag sampled throughout;
//! (e) the view consumer's apply rate against batched upserts; (f) CPU time
//! per completed saga and the resident memory of every component.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use outflow_stack_tests::Stack;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;

use crate::{
    backlog::{BacklogSampler, GroupKeptUp},
    ceiling::SagaCeiling,
    measure::{Latencies, Measurement, Percentiles},
    observer::{Hop, Observer},
    report::{self, Row},
    resources::{self, Usage},
    saga::{self, AtRate, Shop, SlotLag, SlotSampler},
    views_apply::{self, ViewsApply},
    write_path::{self, WritePath},
};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Mode {
    /// About 3 minutes: every figure, short phases.
    Quick,
    /// About 20 minutes: the saga sustained for 10 minutes.
    Full,
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(value_enum, default_value = "quick")]
    mode: Mode,
    /// Customers of the closed saga loop (saturation).
    #[arg(long, default_value_t = 32)]
    customers: usize,
    /// Concurrency of the SQL ceilings and the write path.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long, default_value = "bench/results")]
    results: PathBuf,
    /// The stack's state folder (pid files of its components).
    #[arg(long, env = "OUTFLOW_STATE", default_value = ".state")]
    state: PathBuf,
}

struct Plan {
    ceiling_s: u64,
    probe_s: u64,
    write_rounds: usize,
    write_s: u64,
    saturate_s: u64,
    half_rate_s: u64,
    views_max_s: u64,
}

impl Plan {
    fn of(mode: Mode) -> Plan {
        match mode {
            Mode::Quick => Plan { ceiling_s: 10, probe_s: 20, write_rounds: 1, write_s: 10, saturate_s: 30, half_rate_s: 30, views_max_s: 30 },
            Mode::Full => Plan { ceiling_s: 30, probe_s: 60, write_rounds: 3, write_s: 15, saturate_s: 600, half_rate_s: 120, views_max_s: 120 },
        }
    }
}

/// Whole-stack CPU per completed saga the stack should stay under.
const CPU_PER_SAGA_GOAL_MS: f64 = 12.0;
/// A group keeps up when its late backlog is under this much of its work.
const KEPT_UP_SECONDS: f64 = 5.0;

/// How long the stack's idle cost is measured.
const REST: Duration = Duration::from_secs(20);

/// How long the consumer groups get to work off a run's backlog.
const DRAIN_DEADLINE: Duration = Duration::from_secs(1800);

pub async fn run(args: Args) -> anyhow::Result<()> {
    let plan = Plan::of(args.mode);
    let stack = Stack::from_env();
    let started = chrono::Utc::now();
    println!("outflow bench, {:?} mode, {}", args.mode, started.format("%Y-%m-%d %H:%M:%S UTC"));

    println!("(a) the whole saga over SQL");
    let ceiling = Arc::new(SagaCeiling::prepare(&stack, args.concurrency as u32 + 4).await?);
    let before = resources::ceiling_cpu_ms(&args.state);
    let saga_ceiling = ceiling.measure(args.concurrency, plan.ceiling_s).await;
    let ceiling_cpu_ms = resources::ceiling_cpu_ms(&args.state) - before;
    Arc::try_unwrap(ceiling).map_err(|_| anyhow::anyhow!("ceiling still in use"))?.cleanup().await?;

    let through_stack = through_the_stack(&stack, &args, &plan).await?;

    // Last: every order it places starts a saga (tens of thousands in a few
    // seconds), and the stack works that backlog off for minutes; measured
    // first, it slowed the saga probe and so set the half rate too low. Its
    // two sides alternate in rounds, so both meet the same background load.
    println!("(a, b) the order transaction over SQL and through POST /v1/orders");
    let write = write_path::compare(&stack, args.concurrency, plan.write_s, plan.write_rounds).await?;

    let figures = Figures { saga_ceiling, ceiling_cpu_ms, write, stack: through_stack };
    let rows = figures.rows(&args, &plan);
    report::print(&rows);
    write_results(&args, started, &rows, &figures)
}

/// What (c) to (f) measured through the running stack.
struct StackFigures {
    probe: Measurement,
    half: AtRate,
    hops: Vec<Hop>,
    half_drained: Duration,
    views: ViewsApply,
    saturated: Measurement,
    kept_up: Vec<GroupKeptUp>,
    left: Vec<(String, i64)>,
    /// How long the backlog the sustained run left took to work off.
    sustained_drained: Duration,
    slots: Vec<SlotLag>,
    /// From the start of the sustained run until its backlog was worked off.
    cpu: BTreeMap<String, f64>,
    /// Over [`REST`] with no orders.
    at_rest: BTreeMap<String, f64>,
    memory: BTreeMap<String, Usage>,
}

async fn through_the_stack(stack: &Stack, args: &Args, plan: &Plan) -> anyhow::Result<StackFigures> {
    println!("(c, d) the saga through the stack");
    let orders_db = PgPoolOptions::new().max_connections(2).connect(&stack.database_url("orders")).await.context("connecting to the orders database")?;
    let shop = Arc::new(Shop::open(stack, &orders_db).await?);
    let observer = Observer::start(stack).await?;
    // The maximum first, briefly, to know what half of it is.
    let probe = saga::max_rate(&shop, &observer, args.customers, plan.probe_s, 0).await;
    println!("waiting for every consumer group to work off its backlog");
    saga::wait_drained(stack, DRAIN_DEADLINE).await?;
    // Sampled from the half rate to the end of the sustained run.
    let sampler = SlotSampler::start(stack.admin_pool().await?);
    let HalfRate { half, hops, drained: half_drained } = half_rate(stack, &shop, &observer, probe.per_second, plan.half_rate_s).await?;

    println!("(e) the view consumer replaying every topic, against batched upserts");
    let views = views_apply::measure(stack, &shop.run_id, plan.views_max_s).await?;

    println!("(d, f) the saga sustained at its maximum for {} s", plan.saturate_s);
    let before = resources::snapshot(&args.state);
    let backlogs = BacklogSampler::start(stack);
    let saturated = saga::max_rate(&shop, &observer, args.customers, plan.saturate_s, 1_000_000_000_000).await;
    let kept_up = backlogs.finish();
    let left = saga::backlog(stack)?;
    observer.stop();
    let slots = sampler.finish();
    // The work the run left behind is part of what its sagas cost.
    println!("waiting for every consumer group to work off its backlog");
    let sustained_drained = saga::wait_drained(stack, DRAIN_DEADLINE).await?;
    let after = resources::snapshot(&args.state);
    shop.close().await?;
    let memory = resources::snapshot(&args.state);
    let cpu = resources::cpu_between(&before, &after);
    println!("(f) the stack at rest for {} s", REST.as_secs());
    tokio::time::sleep(REST).await;
    let at_rest = resources::cpu_between(&after, &resources::snapshot(&args.state));
    Ok(StackFigures { probe, half, hops, half_drained, views, saturated, kept_up, left, sustained_drained, slots, cpu, at_rest, memory })
}

/// The open loop at half the probed maximum, with the hops its events took.
struct HalfRate {
    half: AtRate,
    hops: Vec<Hop>,
    /// How long the backlog it left took to work off.
    drained: Duration,
}

async fn half_rate(stack: &Stack, shop: &Arc<Shop>, observer: &Observer, max_per_second: f64, seconds: u64) -> anyhow::Result<HalfRate> {
    let rate = (max_per_second / 2.0).max(1.0);
    observer.record(true);
    let mongo = stack.mongo().await?.database("outflow");
    // Order numbers far above the probe's, so no idempotency key repeats.
    let live = crate::live::LiveSampler::default();
    let half = saga::at_rate(shop, observer, &mongo, rate, seconds, 10_000_000_000_000, Some(&live)).await?;
    observer.record(false);
    let hops = observer.hops();
    println!("waiting for every consumer group to work off its backlog");
    let drained = saga::wait_drained(stack, DRAIN_DEADLINE).await?;
    Ok(HalfRate { half, hops, drained })
}

/// Every figure of the run.
struct Figures {
    saga_ceiling: Measurement,
    /// CPU the ceiling took: PostgreSQL and the bench's own steps.
    ceiling_cpu_ms: f64,
    write: WritePath,
    stack: StackFigures,
}

impl Figures {
    /// The table, section by section.
    fn rows(&self, args: &Args, plan: &Plan) -> Vec<Row> {
        let mut rows = self.ceiling_rows(args);
        rows.extend(hop_rows(&self.stack.hops));
        rows.extend(self.saturated_rows(args, plan));
        rows.extend(half_rate_rows(&self.stack, plan));
        rows.extend(slot_rows(&self.stack.slots));
        let views = &self.stack.views;
        rows.push(Row::against("e", "view consumer events applied /s vs batched upserts /s", views.apply_per_second, "/s", views.ceiling_per_second, 0.7));
        rows.extend(resource_rows(&self.stack, self.ceiling_cpu_ms / self.saga_ceiling.completed.max(1) as f64));
        rows
    }

    /// (a, b): the SQL ceilings and the write path against its own.
    fn ceiling_rows(&self, args: &Args) -> Vec<Row> {
        let write = &self.write;
        vec![
            Row::info("a", format!("order transaction, SQL, {} at a time /s", args.concurrency), write.ceiling_per_second, "/s"),
            Row::info("a", format!("whole saga (6 transactions), SQL, {} at a time /s", args.concurrency), self.saga_ceiling.per_second, "/s"),
            Row::info("a", "  its CPU per saga (PostgreSQL and the steps)", self.ceiling_cpu_ms / self.saga_ceiling.completed.max(1) as f64, "ms"),
            Row::against(
                "b",
                format!("POST /v1/orders vs the order transaction ({} rounds)", write.rounds.len() / 3),
                write.writer_per_second,
                "/s",
                write.ceiling_per_second,
                0.8,
            ),
            Row::against("b", "  the same driven by wrk (external load generator)", write.wrk_per_second, "/s", write.ceiling_per_second, 0.8),
            Row::info("b", "  the bench's own generator against wrk", write.writer_per_second / write.wrk_per_second, "ratio"),
        ]
    }

    /// (d): the closed loop against the saga's ceiling.
    fn saturated_rows(&self, args: &Args, plan: &Plan) -> Vec<Row> {
        let saturated = &self.stack.saturated;
        let mut rows = vec![
            Row::against(
                "d",
                format!("completed sagas, {} customers, {} s /s", args.customers, plan.saturate_s),
                saturated.per_second,
                "/s",
                self.saga_ceiling.per_second,
                0.5,
            ),
            Row::info("d", "  errors in that loop (timeouts, refusals)", saturated.errors as f64, ""),
        ];
        for (group, lag) in &self.stack.left {
            rows.push(Row::info("d", format!("  backlog at its end: {group}"), *lag as f64, "events"));
        }
        rows.push(Row::info("d", "  that backlog worked off in", self.stack.sustained_drained.as_secs_f64(), "s"));
        for g in &self.stack.kept_up {
            let name = g.group.trim_start_matches("outflow-");
            rows.push(Row::info("d", format!("  {name}: backlog, largest in the first third"), g.max_first_third as f64, "events"));
            rows.push(Row::judged(
                "d",
                format!("  {name}: backlog, largest in the last third"),
                g.max_last_third as f64,
                "events",
                "<= first third",
                g.bounded(),
            ));
            let what = format!("  {name}: that in seconds of its work ({:.0} records/s)", g.records_per_second);
            rows.push(Row::judged("d", what, g.last_third_seconds_of_work, "s", "< 5 s", g.shallow(KEPT_UP_SECONDS)));
        }
        rows
    }
}

/// Each event type's hops (sorted by type): commit → Debezium, commit → consumable.
fn hops_per_type(hops: &[Hop]) -> Vec<(&'static str, Percentiles, Percentiles)> {
    let mut per_type: BTreeMap<&'static str, (Latencies, Latencies)> = BTreeMap::new();
    for hop in hops {
        let (debezium, consumer) = per_type.entry(hop.event_type).or_default();
        debezium.record_ms(hop.to_debezium_ms);
        consumer.record_ms(hop.to_consumer_ms);
    }
    per_type.into_iter().map(|(event_type, (debezium, consumer))| (event_type, Percentiles::of(&debezium), Percentiles::of(&consumer))).collect()
}

/// (c): commit → Kafka per event type and over every hop.
fn hop_rows(hops: &[Hop]) -> Vec<Row> {
    let mut rows = Vec::new();
    for (event_type, debezium, consumer) in hops_per_type(hops) {
        rows.push(Row::info("c", format!("{event_type}: commit → Debezium p50 (n={})", debezium.count), debezium.p50_ms, "ms"));
        rows.push(Row::info("c", format!("{event_type}: commit → Debezium p99"), debezium.p99_ms, "ms"));
        rows.push(Row::info("c", format!("{event_type}: commit → consumable p50"), consumer.p50_ms, "ms"));
        rows.push(Row::at_most("c", format!("{event_type}: commit → consumable p99"), consumer.p99_ms, 50.0));
    }
    let mut all = Latencies::default();
    for hop in hops {
        all.record_ms(hop.to_consumer_ms);
    }
    let all = Percentiles::of(&all);
    rows.push(Row::at_most("c", format!("every hop: commit → consumable p99 (n={})", all.count), all.p99_ms, 50.0));
    rows
}

/// (d): the open loop at half the probed maximum.
fn half_rate_rows(figures: &StackFigures, plan: &Plan) -> Vec<Row> {
    let (half, probe) = (&figures.half, &figures.probe);
    vec![
        Row::info("d", format!("half rate: offered /s (half of {:.1}/s in a {} s probe)", probe.per_second, plan.probe_s), half.offered_per_second, "/s"),
        Row::info("d", format!("half rate: completed /s ({} of {}, {} failed)", half.completed, half.placed, half.failed), half.completed_per_second, "/s"),
        Row::info("d", "half rate: POST → saga end on Kafka p50", half.post_to_saga_end.p50_ms, "ms"),
        Row::info("d", "half rate: POST → view CONFIRMED p50", half.post_to_view_confirmed.p50_ms, "ms"),
        Row::at_most("d", format!("half rate: POST → view CONFIRMED p99 (n={})", half.post_to_view_confirmed.count), half.post_to_view_confirmed.p99_ms, 500.0),
        Row::info("d", "half rate: commit → view p50, every event", half.commit_to_view_all.p50_ms, "ms"),
        Row::at_most("d", format!("half rate: commit → view p99, every event (n={})", half.commit_to_view_all.count), half.commit_to_view_all.p99_ms, 150.0),
        Row::info("d", format!("half rate: commit → SSE message p50 (every {}th order's stream)", saga::LIVE_SAMPLE), half.commit_to_sse.p50_ms, "ms"),
        Row::info(
            "d",
            format!("half rate: commit → SSE message p99 (n={}, {} streams failed)", half.commit_to_sse.count, half.sse_failures),
            half.commit_to_sse.p99_ms,
            "ms",
        ),
        Row::info("d", "half rate: backlog left, worked off in", figures.half_drained.as_secs_f64(), "s"),
    ]
}

/// (d): whether the slots' lag stayed bounded: its largest early and late.
fn slot_rows(slots: &[SlotLag]) -> Vec<Row> {
    let mut rows = Vec::new();
    for slot in slots {
        rows.push(Row::info("d", format!("slot {}: lag, largest in the first third", slot.slot), slot.max_first_third_bytes as f64 / 1024.0, "KiB"));
        rows.push(Row::info("d", format!("slot {}: lag, largest in the last third", slot.slot), slot.max_last_third_bytes as f64 / 1024.0, "KiB"));
    }
    rows
}

/// (f): CPU per completed saga of the sustained run (until its backlog was
/// worked off) against the ceiling's own, the stack's cost at rest, and
/// memory at the end.
fn resource_rows(figures: &StackFigures, ceiling_cpu_per_saga: f64) -> Vec<Row> {
    let completed = figures.saturated.completed.max(1) as f64;
    let total_cpu: f64 = figures.cpu.values().sum();
    let per_saga = total_cpu / completed;
    let what = format!("CPU per completed saga, whole stack ({} sagas)", figures.saturated.completed);
    let mut rows = vec![
        Row::judged("f", what, per_saga, "ms", &format!("<= {CPU_PER_SAGA_GOAL_MS} ms"), per_saga <= CPU_PER_SAGA_GOAL_MS),
        Row {
            ceiling: Some(ceiling_cpu_per_saga),
            ratio: Some(per_saga / ceiling_cpu_per_saga),
            ..Row::info("f", "  against the SQL ceiling's CPU per saga", per_saga, "ms")
        },
    ];
    for (name, ms) in &figures.cpu {
        rows.push(Row::info("f", format!("  CPU per saga: {name}"), ms / completed, "ms"));
    }
    let seconds = REST.as_secs_f64();
    rows.push(Row::info("f", format!("CPU at rest, whole stack ({seconds:.0} s, no orders)"), figures.at_rest.values().sum::<f64>() / seconds, "ms/s"));
    for (name, ms) in figures.at_rest.iter().filter(|(_, ms)| **ms / seconds >= 1.0) {
        rows.push(Row::info("f", format!("  at rest: {name}"), ms / seconds, "ms/s"));
    }
    let total_pss: f64 = figures.memory.values().map(|u| u.pss_mib).sum();
    rows.push(Row::info("f", "memory of the whole stack (PSS)", total_pss, "MiB"));
    for (name, usage) in &figures.memory {
        rows.push(Row::info("f", format!("  PSS: {name} ({} processes, RSS {:.0} MiB)", usage.processes, usage.rss_mib), usage.pss_mib, "MiB"));
    }
    rows
}

/// The JSON document and the chart, under `args.results`.
fn write_results(args: &Args, started: chrono::DateTime<chrono::Utc>, rows: &[Row], figures: &Figures) -> anyhow::Result<()> {
    let stack = &figures.stack;
    std::fs::create_dir_all(&args.results)?;
    let stem = format!("bench-{:?}-{}", args.mode, started.format("%Y%m%dT%H%M%SZ")).to_lowercase();
    let chart = args.results.join(format!("{stem}-latency.svg"));
    let slot_series: Vec<(String, Vec<(f64, i64)>)> = stack.slots.iter().map(|s| (s.slot.clone(), s.series.clone())).collect();
    report::chart(&chart, &stack.half.timeline, &slot_series)?;
    let hops: Vec<serde_json::Value> = hops_per_type(&stack.hops)
        .into_iter()
        .map(|(event_type, debezium, consumer)| json!({"event_type": event_type, "commit_to_debezium": debezium, "commit_to_consumer": consumer}))
        .collect();
    let file = args.results.join(format!("{stem}.json"));
    let document = json!({
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "started": started.to_rfc3339(),
        "rows": rows,
        "write_path": figures.write,
        "saga_sql_ceiling": figures.saga_ceiling,
        "saga_probe": stack.probe,
        "saga_closed_loop": stack.saturated,
        "backlog_after_sustained": stack.left,
        "kept_up": stack.kept_up,
        "cpu_ms_at_rest": stack.at_rest,
        "saga_sql_ceiling_cpu_ms": figures.ceiling_cpu_ms,
        "half_rate": stack.half,
        "hops": hops,
        "slots": stack.slots,
        "views_apply": stack.views,
        "cpu_ms_per_component": stack.cpu,
        "memory": stack.memory,
    });
    std::fs::write(&file, serde_json::to_string_pretty(&document)?)?;
    println!("\nresults: {}\nchart:   {}", file.display(), chart.display());
    Ok(())
}
