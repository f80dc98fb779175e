//! `scripts/chaos`: faults under load on the running stack. Exits 0 when
//! every invariant held, 1 when one broke, 2 when the run itself failed.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use clap::Parser;
use outflow_chaos::{component::Component, Config};
use serde::Serialize;

#[derive(Parser)]
#[command(about = "Kills and freezes every component of the running stack while orders flow, then checks every invariant")]
struct Args {
    #[arg(long, default_value_t = 600)]
    orders: usize,
    /// Orders per second (default: spread over the faults' estimated duration).
    #[arg(long)]
    rate: Option<f64>,
    /// Faults, one after another.
    #[arg(long, default_value_t = 12)]
    kills: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Components every run hits at least once (comma-separated names).
    #[arg(long, value_delimiter = ',', default_value = "postgres,kafka,connect,registry,mongo")]
    required: Vec<String>,
    /// Components the other faults are drawn from (default: every one).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where the JSON report goes.
    #[arg(long, default_value = ".state/chaos/report.json")]
    report: PathBuf,
    /// Longest freeze, in seconds (the shortest is 5).
    #[arg(long, default_value_t = 30)]
    max_freeze: u64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let parse = |names: &[String]| names.iter().map(|n| Component::parse(n)).collect::<anyhow::Result<Vec<_>>>();
    let (required, only) = match (parse(&args.required), parse(&args.only)) {
        (Ok(r), Ok(o)) => (r, o),
        (Err(e), _) | (_, Err(e)) => exit(2, &format!("{e:#}")),
    };
    let config = Config {
        orders: args.orders,
        rate: args.rate,
        faults: args.kills.max(required.len()),
        seed: args.seed,
        required,
        pool: if only.is_empty() { Component::deployed() } else { only },
        freeze: (Duration::from_secs(5), Duration::from_secs(args.max_freeze.max(5))),
        gap: (Duration::from_secs(2), Duration::from_secs(6)),
    };
    match outflow_chaos::run(config).await {
        Ok(report) => {
            println!("{report}");
            write_report(&args.report, &report);
            std::process::exit(if report.held() { 0 } else { 1 });
        }
        Err(failed) => {
            eprintln!("{failed}");
            write_report(&args.report, &failed);
            std::process::exit(2);
        }
    }
}

/// The JSON report, for a finished run and a failed one alike.
fn write_report(path: &Path, report: &impl Serialize) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match serde_json::to_vec_pretty(report).map(|json| std::fs::write(path, json)) {
        Ok(Ok(())) => println!("report: {}", path.display()),
        _ => eprintln!("chaos: could not write {}", path.display()),
    }
}

fn exit(code: i32, message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(code)
}
