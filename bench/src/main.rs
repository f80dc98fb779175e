//! # Layout
//!
//! `outflow-bench`: each measured path next to its ceiling, both in one run on
//! the same machine, alternating rounds so that drift hits both alike.
//!
//! - [`run`]: `scripts/bench [quick|full]`, every figure in one run: the SQL
//!   ceilings ([`ceiling`] for the whole saga), the write path, the saga
//!   through the stack ([`saga`], timed hop by hop by the [`observer`]), the
//!   view consumer's apply rate ([`views_apply`]), CPU and memory
//!   ([`resources`]); [`report`] prints the table and writes JSON and a chart;
//! - [`demo`]: `scripts/demo`'s stream of orders with a progress line;
//! - [`cdc`]: one Debezium task's drain rate and one partition's read rate,
//!   for the scaling plan; [`drain`]: one consumer instance's rate on a backlog;
//! - [`scale`]: the sustained rate and commit → view before and after 500,000
//!   more orders in the views and on the topics; [`backlog`]: whether every
//!   group keeps up with the sustained saga; [`wrk`]: the write path driven
//!   by an external load generator;
//! - [`write_path`]: `POST /v1/orders` through the orders writer against the
//!   same transaction (order + lines + outbox row) issued directly over SQL;
//! - [`http1`]: a lean keep-alive HTTP/1.1 client, one connection per worker;
//! - [`measure`]: the closed-loop driver (N workers, fixed duration), latency
//!   percentiles and the result table.

mod backlog;
mod cdc;
mod ceiling;
mod demo;
mod drain;
mod http1;
mod live;
mod measure;
mod observer;
mod report;
mod resources;
mod run;
mod saga;
mod scale;
mod views_apply;
mod write_path;
mod wrk;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Outflow's benchmark (scripts/bench)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every figure against its ceiling: quick (minutes) or full (saga sustained 10 minutes).
    Run(run::Args),
    /// A stream of orders on the running stack until interrupted (scripts/demo).
    Demo(demo::Args),
    /// The view consumer replaying every topic against batched upserts.
    ViewsApply {
        #[arg(long, default_value_t = 60)]
        max_seconds: u64,
    },
    /// POST /v1/orders against its SQL ceiling.
    WritePath(write_path::Args),
    /// One Debezium task's drain rate and one partition's read rate (scaling plan).
    Cdc(cdc::Args),
    /// One inventory consumer instance draining a backlog (scaling plan).
    Drain(drain::Args),
    /// The sustained rate and commit → view with 500,000 more orders in the views and on the topics.
    Scale(scale::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::WritePath(args) => write_path::run(args).await,
        Command::Cdc(args) => cdc::run(args).await,
        Command::Drain(args) => drain::run(args).await,
        Command::Scale(args) => scale::run(args).await,
        Command::ViewsApply { max_seconds } => {
            let run_id = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
            let result = views_apply::measure(&outflow_stack_tests::Stack::from_env(), &run_id, max_seconds).await?;
            println!("{}", serde_json::to_string_pretty(&result)?);
            Ok(())
        }
    }
}
