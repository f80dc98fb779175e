//! # Layout
//!
//! `outflow-bench`: each measured path next to its ceiling, both in one run on
//! the same machine, alternating rounds so that drift hits both alike.
//!
//! - [`write_path`]: `POST /v1/orders` through the orders writer against the
//!   same transaction (order + lines + outbox row) issued directly over SQL;
//! - [`http1`]: a lean keep-alive HTTP/1.1 client, one connection per worker;
//! - [`measure`]: the closed-loop driver (N workers, fixed duration), latency
//!   percentiles and the result table.

mod http1;
mod measure;
mod write_path;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Outflow's benchmark (scripts/bench)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// POST /v1/orders against its SQL ceiling.
    WritePath(write_path::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::WritePath(args) => write_path::run(args).await,
    }
}
