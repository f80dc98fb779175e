//! `scripts/failover`: on the cluster topology, kills and freezes Kafka nodes
//! and a Connect worker under load, one scenario after another, and reports
//! for each how long orders stood still, what was duplicated and whether every
//! invariant held. Exits 0 when all held, 1 when one broke, 2 when a scenario
//! could not finish.

use std::{path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};
use outflow_chaos::{
    component::Component,
    failover::{self, Load, Outcome, Scenario},
};
use serde::Serialize;

#[derive(Clone, Copy, ValueEnum)]
enum Only {
    KillLeadingBroker,
    KillAnotherBroker,
    KillTaskWorker,
    FreezeBroker,
}

#[derive(Parser)]
#[command(about = "Failover under load on the cluster topology: broker kills, a Connect worker kill and a broker freeze, each checked")]
struct Args {
    /// Orders per second during each scenario.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// How long each scenario places orders.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Seconds of orders before the fault.
    #[arg(long, default_value_t = 10)]
    lead: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run only these scenarios (default: all four, in order).
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Only>,
    /// Where the JSON report goes.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Serialize)]
struct FailoverReport {
    held: bool,
    scenarios: Vec<Outcome>,
    /// The scenario that could not finish, and why.
    failed: Option<String>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let scenarios: Vec<Scenario> = match args.only.is_empty() {
        true => Scenario::ALL.to_vec(),
        false => args.only.iter().map(|o| Scenario::ALL[*o as usize]).collect(),
    };
    let mut report = FailoverReport { held: true, scenarios: Vec::new(), failed: None };
    let mut killed: Vec<Component> = Vec::new();
    for (i, scenario) in scenarios.into_iter().enumerate() {
        let load = Load { rate: args.rate, seconds: args.seconds, lead: Duration::from_secs(args.lead), seed: args.seed + i as u64 };
        let excluded = if scenario == Scenario::KillAnotherBroker { killed.clone() } else { Vec::new() };
        match failover::run(scenario, load, &excluded).await {
            Ok(outcome) => {
                eprintln!("{}", line(&outcome));
                if matches!(scenario, Scenario::KillLeadingBroker | Scenario::KillAnotherBroker) {
                    killed.push(outcome.target);
                }
                report.held &= outcome.held();
                report.scenarios.push(outcome);
            }
            Err(e) => {
                report.held = false;
                report.failed = Some(format!("{scenario:?}: {e:#}"));
                break;
            }
        }
    }
    print(&report);
    write(&args.report.unwrap_or_else(|| outflow_stack_tests::services::state().join("failover/report.json")), &report);
    std::process::exit(match (&report.failed, report.held) {
        (Some(_), _) => 2,
        (None, true) => 0,
        (None, false) => 1,
    });
}

fn secs(ms: Option<u64>) -> String {
    ms.map_or("-".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
}

fn line(o: &Outcome) -> String {
    format!(
        "{:<22} {:<10} {:>8} {:>9} {:>9} {:>8} {:>5} {:>6} {:>9} {:>8}  {}",
        format!("{:?}", o.scenario),
        o.target.name(),
        secs(Some(o.down_ms)),
        secs(o.tasks_moved_ms),
        secs(o.confirms_again_ms),
        secs(o.in_sync_ms),
        o.kafka_duplicates,
        o.sagas_affected,
        secs(o.slowest_affected_ms),
        secs(o.median_place_to_end_ms),
        if o.held() { "held".to_owned() } else { format!("BROKEN: {}", o.invariants) }
    )
}

fn print(report: &FailoverReport) {
    println!(
        "{:<22} {:<10} {:>8} {:>9} {:>9} {:>8} {:>5} {:>6} {:>9} {:>8}  invariants",
        "scenario", "node", "down", "tasks→", "confirms", "in sync", "dups", "sagas", "slowest", "median"
    );
    for outcome in &report.scenarios {
        println!("{}", line(outcome));
    }
    println!("down: killed or frozen for; tasks→: until every task ran on the other worker; confirms: until an order placed after the fault was confirmed;");
    println!("in sync: from the node's return until no partition was under-replicated; dups: the scenario's events on Kafka more than once;");
    println!("sagas: orders under way at the fault or placed before orders completed again; slowest: their longest place → end; median: all of the scenario's orders");
    for outcome in &report.scenarios {
        for i in &outcome.interventions {
            println!("{:?}: did not recover by itself: {}: {}", outcome.scenario, i.what, i.why);
        }
    }
    match &report.failed {
        Some(why) => println!("FAILED: {why}"),
        None => println!("{}", if report.held { "every invariant held in every scenario" } else { "BROKEN" }),
    }
}

fn write(path: &std::path::Path, report: &FailoverReport) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match serde_json::to_vec_pretty(report).map(|json| std::fs::write(path, json)) {
        Ok(Ok(())) => println!("report: {}", path.display()),
        _ => eprintln!("failover: could not write {}", path.display()),
    }
}
