//! `outflow-check-invariants`: checks the saga's guarantees over the running
//! stack and prints one line per invariant (docs/invariants.md).
//!
//! Exit status: 0 every invariant holds, 1 one is broken, 2 a source could
//! not be read (the message names it), 3 the consumers did not catch up
//! within `--wait`.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use outflow_invariants::{check, check_until_held, wait_caught_up, NotCaughtUp, Options, Report, Scope, Settings, Sources};

#[derive(Parser)]
#[command(name = "outflow-check-invariants", about = "Checks the saga's invariants over the databases, Kafka and the views")]
struct Args {
    /// First wait up to SECS until every saga consumer group has caught up.
    #[arg(long, value_name = "SECS")]
    wait: Option<u64>,
    /// Check again every second until every invariant holds, for up to SECS.
    #[arg(long, value_name = "SECS")]
    until_held: Option<u64>,
    /// Check only these orders (and the SKUs given); repeatable.
    #[arg(long = "order", value_name = "ID")]
    orders: Vec<uuid::Uuid>,
    /// Check only these SKUs (and the orders given); repeatable.
    #[arg(long = "sku", value_name = "SKU")]
    skus: Vec<String>,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// How long after the payment deadline a saga may still be running.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    grace: u64,
    #[arg(long, value_name = "MS", env = "OUTFLOW_PAYMENT_DEADLINE_MS", default_value_t = 20_000)]
    payment_deadline_ms: u64,
    /// How long reading one topic to its end may take.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    read_deadline: u64,
    #[command(flatten)]
    connection: Connection,
}

/// Each falls back to the variable, then to infra/dev.env, then to the default port.
#[derive(clap::Args)]
struct Connection {
    #[arg(long, env = "OUTFLOW_PG_HOST")]
    pg_host: Option<String>,
    #[arg(long, env = "OUTFLOW_PG_PORT")]
    pg_port: Option<u16>,
    #[arg(long, env = "OUTFLOW_PG_USER")]
    pg_user: Option<String>,
    #[arg(long, env = "OUTFLOW_PG_PASSWORD", hide_env_values = true)]
    pg_password: Option<String>,
    #[arg(long, env = "OUTFLOW_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    #[arg(long, env = "OUTFLOW_REGISTRY_URL")]
    registry_url: Option<String>,
    #[arg(long, env = "OUTFLOW_MONGO_URL")]
    mongo_url: Option<String>,
    #[arg(long, env = "OUTFLOW_VIEWS_DATABASE")]
    views_database: Option<String>,
}

impl Connection {
    fn settings(self) -> Settings {
        let mut settings = Settings::from_env();
        let set = |field: &mut String, value: Option<String>| {
            if let Some(value) = value {
                *field = value;
            }
        };
        set(&mut settings.pg_host, self.pg_host);
        settings.pg_port = self.pg_port.unwrap_or(settings.pg_port);
        set(&mut settings.pg_user, self.pg_user);
        set(&mut settings.pg_password, self.pg_password);
        set(&mut settings.kafka_brokers, self.kafka_brokers);
        set(&mut settings.registry_url, self.registry_url);
        set(&mut settings.mongo_url, self.mongo_url);
        set(&mut settings.views_database, self.views_database);
        settings
    }
}

enum Failure {
    Source(anyhow::Error),
    NotCaughtUp(anyhow::Error),
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = Args::parse();
    let json = args.json.take();
    match run(args).await {
        Ok(report) => {
            println!("{report}");
            println!("{}", summary(&report));
            if let Some(path) = json {
                let written = serde_json::to_vec_pretty(&report).map_err(anyhow::Error::from).and_then(|bytes| Ok(std::fs::write(&path, bytes)?));
                if let Err(e) = written {
                    eprintln!("outflow-check-invariants: writing {}: {e:#}", path.display());
                    return ExitCode::from(2);
                }
            }
            ExitCode::from(if report.held() { 0 } else { 1 })
        }
        Err(Failure::Source(e)) => {
            eprintln!("outflow-check-invariants: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::NotCaughtUp(e)) => {
            eprintln!("outflow-check-invariants: {e:#}");
            ExitCode::from(3)
        }
    }
}

async fn run(args: Args) -> Result<Report, Failure> {
    let scope = if args.orders.is_empty() && args.skus.is_empty() {
        Scope::All
    } else {
        Scope::parse(&args.orders.iter().map(|o| o.to_string()).collect::<Vec<_>>(), &args.skus).map_err(Failure::Source)?
    };
    let options = Options {
        payment_deadline: Duration::from_millis(args.payment_deadline_ms),
        grace: Duration::from_secs(args.grace),
        read_deadline: Duration::from_secs(args.read_deadline),
    };
    let sources = Sources::connect(args.connection.settings()).await.map_err(Failure::Source)?;
    if let Some(secs) = args.wait {
        wait_caught_up(&sources, Duration::from_secs(secs)).await.map_err(
            |e| {
                if e.is::<NotCaughtUp>() {
                    Failure::NotCaughtUp(e)
                } else {
                    Failure::Source(e)
                }
            },
        )?;
    }
    let report = match args.until_held {
        Some(secs) => check_until_held(&sources, &scope, &options, Duration::from_secs(secs)).await,
        None => check(&sources, &scope, &options).await,
    };
    report.map_err(Failure::Source)
}

fn summary(report: &Report) -> String {
    let broken = report.invariants.iter().filter(|i| !i.held).count();
    let verdict = if broken == 0 { format!("all {} held", report.invariants.len()) } else { format!("{broken} of {} broken", report.invariants.len()) };
    format!(
        "scope {}: {} orders, {} skus, {} event records, {} dead letters read in {:.1} s: {verdict}",
        report.scope,
        report.orders_checked,
        report.skus_checked,
        report.records_read,
        report.dead_letters_read,
        report.took_ms as f64 / 1000.0
    )
}
