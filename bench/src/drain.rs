//! `scripts/bench drain`: what one instance of the inventory consumer carries,
//! for the scaling plan. The consumer is stopped, orders are placed until
//! their `OrderPlaced` events wait on the topic, and the consumer is started
//! again: the backlog over the time until its group has caught up is the
//! instance's rate, each event a real saga step (the inbox claim, the stock
//! reservation of every line, the outbox insert, one transaction).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{ensure, Context, Result};
use futures::StreamExt;
use outflow_stack_tests::{services, Stack};
use serde::Serialize;

use crate::{
    http1::Connection,
    saga::{backlog, Shop},
};

const GROUP: &str = "outflow-inventory";
const CONSUMER: &str = "inventory-consumer";
const CONSUMER_PORT: u16 = 7121;

#[derive(clap::Args)]
pub struct Args {
    /// Orders placed while the consumer is stopped.
    #[arg(long, default_value_t = 3000)]
    orders: u64,
}

#[derive(Debug, Serialize)]
pub struct Drained {
    pub backlog: i64,
    pub seconds: f64,
    pub events_per_s: f64,
}

pub async fn run(args: Args) -> Result<()> {
    let stack = Stack::from_env();
    let orders_db = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&stack.database_url("orders")).await?;
    let shop = Arc::new(Shop::open(&stack, &orders_db).await?);
    services::stop(CONSUMER).await?;
    let measured = measure(&stack, &shop, args.orders).await;
    if services::recorded(CONSUMER).is_err() {
        services::start(CONSUMER, CONSUMER_PORT).await?;
    }
    shop.close().await?;
    let drained = measured?;
    println!(
        "one {CONSUMER} instance drains {:.0} events/s ({} OrderPlaced, {:.1} s from its start to no lag)",
        drained.events_per_s, drained.backlog, drained.seconds
    );
    println!("{}", serde_json::to_string_pretty(&drained)?);
    Ok(())
}

async fn measure(stack: &Stack, shop: &Arc<Shop>, orders: u64) -> Result<Drained> {
    let first = lag(stack)?;
    let connections: Vec<Connection> = (0..16).map(|_| Connection::new("127.0.0.1:7101")).collect();
    let connections = Arc::new(connections);
    let placed = futures::stream::iter(0..orders)
        .map(|n| {
            let (shop, connections) = (shop.clone(), connections.clone());
            async move { shop.place(&connections[(n % 16) as usize], n).await }
        })
        .buffer_unordered(16)
        .filter(|placed| std::future::ready(placed.is_err()))
        .collect::<Vec<_>>()
        .await;
    ensure!(placed.is_empty(), "{} placements failed: {:?}", placed.len(), placed.first());
    // Every OrderPlaced is on the topic once the backlog has stopped growing.
    let until = Instant::now() + Duration::from_secs(120);
    let mut waiting = lag(stack)?;
    while waiting < first + orders as i64 {
        ensure!(Instant::now() < until, "only {} of {orders} OrderPlaced events reached the topic within 120 s", waiting - first);
        tokio::time::sleep(Duration::from_millis(200)).await;
        waiting = lag(stack)?;
    }
    let started = Instant::now();
    services::start(CONSUMER, CONSUMER_PORT).await?;
    loop {
        if lag(stack)? == 0 {
            let seconds = started.elapsed().as_secs_f64();
            return Ok(Drained { backlog: waiting, seconds, events_per_s: waiting as f64 / seconds });
        }
        ensure!(started.elapsed() < Duration::from_secs(600), "{GROUP} still behind 600 s after its start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn lag(stack: &Stack) -> Result<i64> {
    backlog(stack)?.into_iter().find(|(group, _)| group == GROUP).map(|(_, lag)| lag).context("no backlog for the inventory group")
}
