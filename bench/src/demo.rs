//! `scripts/demo`: a small shop on the running stack. It creates a few
//! products (two with little stock, so that some orders run out), makes the
//! provider sandbox deny a share of the payments and the carrier sandbox fail
//! a share of the deliveries (refunded and restocked), then places orders from a
//! handful of customers at a steady rate until interrupted, following each
//! saga to its end on Kafka and showing the tally on a progress line.

use std::{
    io::IsTerminal,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use outflow_service::auth::{JwtKeys, Role};
use outflow_stack_tests::Stack;
use rand::{seq::IndexedRandom, Rng};
use secrecy::SecretString;
use serde_json::json;

use crate::{
    http1::Connection,
    observer::{End, Observer},
};

const INVENTORY: &str = "http://127.0.0.1:7102";
const SANDBOX: &str = "http://127.0.0.1:7199";
const CARRIER: &str = "http://127.0.0.1:7198";
const ORDERS: &str = "127.0.0.1:7101";

/// (sku, name, price in cents, stock)
const PRODUCTS: [(&str, &str, i64, i32); 5] = [
    ("DEMO-MUG", "Outflow mug", 1250, 100_000),
    ("DEMO-TEE", "Outflow T-shirt", 2400, 100_000),
    ("DEMO-CAP", "Outflow cap", 1800, 100_000),
    ("DEMO-POSTER", "Signed poster", 3900, 40),
    ("DEMO-LIMITED", "Limited edition print", 9900, 8),
];
const CUSTOMERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

#[derive(clap::Args)]
pub struct Args {
    /// Orders per second.
    #[arg(long, default_value_t = 4.0)]
    rate: f64,
    /// Share of payments the provider sandbox denies.
    #[arg(long, default_value_t = 0.15)]
    deny_rate: f64,
    /// How long the sandbox's customer "takes" to pay, ms.
    #[arg(long, default_value_t = 300)]
    settle_delay_ms: u64,
    /// Share of deliveries the carrier sandbox fails (the order is refunded and restocked).
    #[arg(long, default_value_t = 0.1)]
    delivery_failure_rate: f64,
    /// How long the carrier takes to deliver, ms.
    #[arg(long, default_value_t = 2000)]
    delivery_delay_ms: u64,
}

#[derive(Default)]
struct Tally {
    placed: AtomicU64,
    confirmed: AtomicU64,
    out_of_stock: AtomicU64,
    payment_failed: AtomicU64,
    other: AtomicU64,
    refused: AtomicU64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    let stack = Stack::from_env();
    let keys = JwtKeys::new(&SecretString::from(stack.jwt_secret.clone()));
    // Tokens live at most a day (the services refuse longer ones) and the
    // demo runs until stopped: each request gets a fresh one-hour token, and
    // the tokens printed for people to use live 12 hours.
    let http = reqwest::Client::new();
    create_products(&http, &keys.mint("demo-admin", Role::Admin, 3600)).await?;
    let provider = json!({"settle_delay_ms": args.settle_delay_ms, "failure_rate": args.deny_rate});
    let sandbox_before = set_behaviour(&http, SANDBOX, &provider, "provider sandbox").await?;
    let carrier = json!({"delivery_delay_ms": args.delivery_delay_ms, "failure_rate": args.delivery_failure_rate});
    let carrier_before = set_behaviour(&http, CARRIER, &carrier, "carrier sandbox").await?;
    let observer = Observer::start(&stack).await?;
    let first = place_first(&keys.mint(CUSTOMERS[0], Role::Customer, 3600)).await?;
    print_where_to_look(&args, &first, &keys.mint(CUSTOMERS[0], Role::Customer, 12 * 3600), &keys.mint("demo-operator", Role::Admin, 12 * 3600));
    let restocker = tokio::spawn(restock_poster(http.clone(), keys.clone()));
    let stream = Arc::new(OrderStream {
        tally: Tally::default(),
        observer,
        connections: (0..8).map(|_| Connection::new(ORDERS)).collect(),
        keys,
        run_id: chrono::Utc::now().timestamp_millis(),
    });
    stream.clone().run_until_stopped(args.rate).await;
    stream.observer.stop();
    restocker.abort();
    http.put(format!("{SANDBOX}/sandbox/behaviour")).json(&sandbox_before).send().await?.error_for_status()?;
    http.put(format!("{CARRIER}/sandbox/behaviour")).json(&carrier_before).send().await?.error_for_status()?;
    println!(
        "\ndemo stopped after {}; the sandboxes behave as before; the stack keeps running (scripts/down stops it)",
        summary(&stream.tally, stream.observer.deliveries())
    );
    Ok(())
}

async fn create_products(http: &reqwest::Client, admin: &str) -> anyhow::Result<()> {
    for (sku, name, price, stock) in PRODUCTS {
        let response = http
            .post(format!("{INVENTORY}/v1/products"))
            .bearer_auth(admin)
            .json(&json!({"sku": sku, "name": name, "price_minor": price, "currency": "EUR", "stock": stock}))
            .send()
            .await
            .context("creating the demo products (inventory writer, 7102)")?;
        // 409: it exists from an earlier demo, which is fine.
        anyhow::ensure!(response.status().is_success() || response.status() == 409, "creating {sku}: {} {}", response.status(), response.text().await?);
    }
    Ok(())
}

/// Sets a sandbox's behaviour (delay and failure rate); returns its behaviour
/// before, to restore at the end.
async fn set_behaviour(http: &reqwest::Client, sandbox: &str, behaviour: &serde_json::Value, what: &str) -> anyhow::Result<serde_json::Value> {
    let url = format!("{sandbox}/sandbox/behaviour");
    let before: serde_json::Value =
        http.get(&url).send().await?.error_for_status()?.json().await.with_context(|| format!("reading the {what}'s behaviour ({sandbox})"))?;
    http.put(&url).json(behaviour).send().await?.error_for_status().with_context(|| format!("setting the {what}'s behaviour ({sandbox})"))?;
    Ok(before)
}

fn print_where_to_look(args: &Args, first: &str, token: &str, admin: &str) {
    println!(
        "\nOutflow demo: {} orders/s from {} customers; the provider denies {:.0}% of payments, the carrier fails {:.0}% of deliveries.",
        args.rate,
        CUSTOMERS.len(),
        args.deny_rate * 100.0,
        args.delivery_failure_rate * 100.0
    );
    // The dashboard's data is for admins; the token rides in the fragment, which the browser keeps to itself.
    println!("  dashboard     http://127.0.0.1:7190/#token={admin}");
    println!("  an order view curl -s http://127.0.0.1:7110/v1/orders/{first} -H 'authorization: Bearer {token}'");
    println!("  its shipment  curl -s http://127.0.0.1:7104/v1/shipments/{first} -H 'authorization: Bearer {token}'");
    println!("  availability  curl -s http://127.0.0.1:7110/v1/products/DEMO-LIMITED/availability");
    println!("  traces        http://127.0.0.1:56686/search?service=outflow-orders (Jaeger: one trace per order)");
    println!("  a new order   curl -s -X POST http://127.0.0.1:7101/v1/orders -H 'authorization: Bearer {token}' -H 'Idempotency-Key: try-1' -H 'content-type: application/json' -d '{{\"items\":[{{\"sku\":\"DEMO-MUG\",\"quantity\":1}}]}}'");
    println!("  Ctrl-C or scripts/down ends it.\n");
}

/// The poster comes back in small batches, so its availability moves.
async fn restock_poster(http: reqwest::Client, keys: JwtKeys) {
    let mut every = tokio::time::interval(Duration::from_secs(30));
    every.tick().await;
    loop {
        every.tick().await;
        let admin = keys.mint("demo-admin", Role::Admin, 3600);
        let _ = http.post(format!("{INVENTORY}/v1/products/DEMO-POSTER/restock")).bearer_auth(&admin).json(&json!({"quantity": 5})).send().await;
    }
}

/// The orders of the demo: what every order's task shares.
struct OrderStream {
    tally: Tally,
    observer: Observer,
    connections: Vec<Connection>,
    /// Mints each order's customer token.
    keys: JwtKeys,
    run_id: i64,
}

impl OrderStream {
    /// Places `rate` orders a second, each in a task of its own (an order
    /// waiting for its saga never delays the next), until Ctrl-C or SIGTERM.
    async fn run_until_stopped(self: Arc<Self>, rate: f64) {
        let bar = ProgressBar::new_spinner().with_style(ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").unwrap());
        bar.enable_steady_tick(Duration::from_millis(200));
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        let mut n: u64 = 0;
        let stop = shutdown_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = ticker.tick() => {}
            }
            n += 1;
            tokio::spawn(self.clone().place(n));
            bar.set_message(summary(&self.tally, self.observer.deliveries()));
            // Without a terminal (a log file) the progress line is hidden: a line every 10 s instead.
            if !std::io::stdout().is_terminal() && n % (rate * 10.0).ceil().max(1.0) as u64 == 0 {
                println!("{}", summary(&self.tally, self.observer.deliveries()));
            }
        }
        bar.finish();
    }

    /// Order `n` from a random customer, counted by how its saga ended.
    async fn place(self: Arc<Self>, n: u64) {
        let customer = *CUSTOMERS.choose(&mut rand::rng()).expect("customers");
        let token = self.keys.mint(customer, Role::Customer, 3600);
        let body = random_order();
        let connection = &self.connections[(n % self.connections.len() as u64) as usize];
        let tally = &self.tally;
        let Ok(order_id) = place(connection, &token, &format!("demo-{}-{customer}-{n}", self.run_id), &body).await else {
            tally.refused.fetch_add(1, Ordering::Relaxed);
            return;
        };
        tally.placed.fetch_add(1, Ordering::Relaxed);
        let counter = match self.observer.ended(&order_id, Duration::from_secs(120)).await {
            Ok(End::Completed) => &tally.confirmed,
            Ok(End::Cancelled(reason)) if reason == "out_of_stock" => &tally.out_of_stock,
            Ok(End::Cancelled(reason)) if reason == "payment_failed" => &tally.payment_failed,
            _ => &tally.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The tally, with the shipments that ended since the demo began: (delivered, failed).
fn summary(t: &Tally, (delivered, undelivered): (u64, u64)) -> String {
    let (placed, confirmed, oos, failed, other) = (
        t.placed.load(Ordering::Relaxed),
        t.confirmed.load(Ordering::Relaxed),
        t.out_of_stock.load(Ordering::Relaxed),
        t.payment_failed.load(Ordering::Relaxed),
        t.other.load(Ordering::Relaxed),
    );
    let open = placed.saturating_sub(confirmed + oos + failed + other);
    format!(
        "placed {placed} · confirmed {confirmed} (delivered {delivered}, delivery failed {undelivered}) · cancelled: out of stock {oos}, payment denied {failed} · open {open}{}",
        match t.refused.load(Ordering::Relaxed) {
            0 => String::new(),
            r => format!(" · refused {r}"),
        }
    )
}

/// One or two lines, mostly of the plentiful products; one order in eight
/// asks for the poster or the limited print, which run out.
fn random_order() -> serde_json::Value {
    let mut rng = rand::rng();
    let plentiful: Vec<&str> = PRODUCTS[..3].iter().map(|p| p.0).collect();
    let lines = rng.random_range(1..=2);
    let mut skus: Vec<&str> = plentiful.choose_multiple(&mut rng, lines).copied().collect();
    if rng.random_bool(0.125) {
        skus[0] = PRODUCTS[3 + rng.random_range(0..2)].0;
    }
    skus.sort_unstable();
    json!({"items": skus.iter().map(|sku| json!({"sku": sku, "quantity": rng.random_range(1..=2)})).collect::<Vec<_>>()})
}

/// The first order, retried while the orders side's catalog replica does not
/// know the new products yet (422 unknown SKU).
async fn place_first(token: &str) -> anyhow::Result<String> {
    let connection = Connection::new(ORDERS);
    let body = json!({"items": [{"sku": "DEMO-MUG", "quantity": 1}]});
    let key = format!("demo-first-{}", chrono::Utc::now().timestamp_millis());
    for _ in 0..120 {
        match place(&connection, token, &key, &body).await {
            Ok(id) => return Ok(id),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    place(&connection, token, &key, &body).await.context("the orders writer never accepted the first demo order")
}

async fn place(connection: &Connection, token: &str, key: &str, body: &serde_json::Value) -> anyhow::Result<String> {
    let request = hyper::Request::post("/v1/orders")
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(http_body_util::Full::new(bytes::Bytes::from(serde_json::to_vec(body)?)))?;
    let (status, answer) = connection.send(request).await?;
    anyhow::ensure!(status == 202, "POST /v1/orders: {status} {}", String::from_utf8_lossy(&answer));
    let answer: serde_json::Value = serde_json::from_slice(&answer)?;
    Ok(answer["order_id"].as_str().context("no order_id")?.to_owned())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
