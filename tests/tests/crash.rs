//! Crash: the inventory consumer is killed (SIGKILL, by its own failpoint)
//! after its saga step committed and before the event's offset was stored; the
//! restarted consumer gets the event again and the effect still exists exactly
//! once: one reservation, the stock held once, one `StockReserved` on Kafka,
//! and the saga ends as if nothing had happened.
//!
//! It stops the running inventory consumer for its duration, so it is its own
//! test binary; whatever happens, it ends by running `scripts/up`, which
//! starts the real consumer again.

mod shop;

use std::{
    any::Any,
    os::unix::process::ExitStatusExt,
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{bail, ensure, Context, Result};
use futures::FutureExt;
use outflow_stack_tests::{consume, header_map, Stack};
use rdkafka::Message;
use shop::Shop;

const CONSUMER: &str = "inventory-consumer";
const PORT: u16 = 7121;
const STOCK: i32 = 5;
const QUANTITY: i32 = 2;

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_consumer_killed_between_its_commit_and_its_offset_applies_the_event_exactly_once() -> Result<()> {
    let shop = Shop::new().await;
    let sku = shop.product(i64::from(STOCK)).await;

    // A panic in there (the Shop helpers assert) must not skip the restart either.
    let crashed = match AssertUnwindSafe(crash_after_the_effect(&shop, &sku)).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(anyhow::anyhow!("panicked: {}", panic_text(&*panic))),
    };
    // Always, also when the crash part failed: the real consumer runs again.
    let restored = restart_the_stack().await;
    let order = match (crashed, restored) {
        (Ok(order), Ok(_)) => order,
        (Err(e), Ok(_)) => return Err(e.context("the crash part failed (scripts/up restarted the consumer)")),
        (Ok(_), Err(restore)) => return Err(restore),
        (Err(e), Err(restore)) => return Err(e.context(format!("the crash part failed, and so did the restart: {restore:#}"))),
    };

    // The restarted consumer gets OrderPlaced again; the inbox makes it a duplicate.
    shop.wait_order(&order.id, "CONFIRMED").await;
    shop.wait_reservation(&order.id, "COMMITTED").await;
    assert_eq!(shop.stock(&sku).await, (STOCK - QUANTITY, 0), "sold once, nothing left reserved");
    assert_eq!(reservations_of(&shop, &order.id).await?, 1, "still one reservation");
    assert_eq!(inbox_claims(&shop, &order.event_id).await?, 1, "still one inbox claim of OrderPlaced");
    let duplicates = duplicate_order_placed_count().await?;
    assert!(duplicates >= 1, "the restarted consumer must have seen OrderPlaced again as a duplicate (consumer_events_total: {duplicates})");

    let stack = Stack::from_env();
    let key = order.id.clone();
    let reserved = consume(&stack, "outflow.inventory.events", 2, Duration::from_secs(10), |m| {
        m.key() == Some(key.as_bytes()) && header_map(m).get("eventType").map(String::as_str) == Some("StockReserved")
    })
    .await?;
    assert_eq!(reserved.len(), 1, "exactly one StockReserved for order {}", order.id);
    Ok(())
}

struct Placed {
    id: String,
    /// The id of its `OrderPlaced` event (the inbox key).
    event_id: String,
}

/// Stops the real consumer, runs one with the failpoint, places an order and
/// checks what the killed process left behind.
async fn crash_after_the_effect(shop: &Shop, sku: &str) -> Result<Placed> {
    stop_the_running_consumer().await?;
    let log = std::env::temp_dir().join(format!("outflow-crash-{}.log", uuid::Uuid::new_v4().simple()));
    let mut child = Killed::spawn(&shop.stack, &log)?;
    wait_healthy(&mut child, &log).await?;

    let order = shop.place("crash-customer", &[(sku, i64::from(QUANTITY))]).await;
    shop.force(&order, "settle").await;
    let status = child.wait_for_exit(Duration::from_secs(30)).await.with_context(|| format!("the consumer did not crash; its log:\n{}", tail(&log)))?;
    ensure!(status.signal() == Some(9), "the consumer ended with {status}, not by SIGKILL; its log:\n{}", tail(&log));

    let event_id = order_placed_event_id(&shop.stack, &order).await?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    ensure!(
        text.lines().any(|l| l.contains("failpoint: killing the process") && l.contains(&event_id)),
        "the failpoint fired for another event than OrderPlaced {event_id} of order {order}; its log:\n{}",
        tail(&log)
    );

    // What the killed process committed: the reservation, once, and the stock held.
    let id = uuid::Uuid::parse_str(&order)?;
    let rows: Vec<(String,)> = sqlx::query_as("select status from reservations where order_id = $1").bind(id).fetch_all(&inventory(shop)).await?;
    ensure!(rows.len() == 1 && rows[0].0 == "RESERVED", "reservations of {order} after the crash: {rows:?}");
    let (on_hand, reserved) = shop.stock(sku).await;
    ensure!((on_hand, reserved) == (STOCK, QUANTITY), "stock after the crash: on hand {on_hand}, reserved {reserved}");
    ensure!(inbox_claims(shop, &event_id).await? == 1, "OrderPlaced {event_id} is not claimed in the inbox");
    let _ = std::fs::remove_file(&log);
    Ok(Placed { id: order, event_id })
}

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

fn state() -> PathBuf {
    std::env::var_os("OUTFLOW_STATE").map(PathBuf::from).unwrap_or_else(|| repo().join(".state"))
}

/// `/proc/<pid>/stat` after the command name: state first, start time 20th.
fn proc_stat(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(") ")? + 2..];
    Some(rest.split(' ').map(str::to_owned).collect())
}

fn running(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|fields| fields[0] != "Z")
}

/// The pid `scripts/up` recorded for the consumer, if that very process runs.
fn recorded_consumer() -> Result<u32> {
    let file = state().join("run").join(format!("{CONSUMER}.pid"));
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}: is the stack up (scripts/up)?", file.display()))?;
    let mut lines = text.lines();
    let pid: u32 = lines.next().unwrap_or_default().trim().parse().with_context(|| format!("no pid in {}", file.display()))?;
    let recorded = lines.next().unwrap_or_default().trim().to_owned();
    let started = proc_stat(pid).and_then(|fields| fields.get(19).cloned());
    ensure!(started.as_deref() == Some(recorded.as_str()) && running(pid), "{CONSUMER} (pid {pid} in {}) is not running", file.display());
    Ok(pid)
}

/// SIGTERM to the running consumer, then waits until it has exited.
async fn stop_the_running_consumer() -> Result<()> {
    let pid = recorded_consumer().context("start the stack with scripts/up")?;
    let term = Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
    ensure!(term.success(), "kill -TERM {pid} failed: {term}");
    let until = tokio::time::Instant::now() + Duration::from_secs(40);
    while running(pid) {
        ensure!(tokio::time::Instant::now() < until, "{CONSUMER} (pid {pid}) did not stop within 40 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The consumer binary with the failpoint armed; killed and reaped on drop if
/// it is still running.
struct Killed(Child);

impl Killed {
    fn spawn(stack: &Stack, log: &Path) -> Result<Self> {
        let binary = repo().join("target/release/outflow-inventory-consumer");
        let out = std::fs::File::create(log)?;
        let child = Command::new(&binary)
            .env("OUTFLOW_HTTP__PORT", PORT.to_string())
            .env("OUTFLOW_DATABASE__URL", stack.database_url("inventory"))
            .env("OUTFLOW_KAFKA_BROKERS", &stack.kafka_brokers)
            .env("OUTFLOW_REGISTRY_URL", &stack.registry_url)
            .env("OUTFLOW_FAILPOINT_KILL_AFTER_EFFECT", "OrderPlaced")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {} (built by scripts/up)", binary.display()))?;
        Ok(Killed(child))
    }

    async fn wait_for_exit(&mut self, within: Duration) -> Result<std::process::ExitStatus> {
        let until = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait()? {
                return Ok(status);
            }
            ensure!(tokio::time::Instant::now() < until, "still running after {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

async fn wait_healthy(child: &mut Killed, log: &Path) -> Result<()> {
    let http = reqwest::Client::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.0.try_wait()? {
            bail!("the consumer with the failpoint exited during start ({status}); its log:\n{}", tail(log));
        }
        let up = http.get(format!("http://127.0.0.1:{PORT}/healthz")).timeout(Duration::from_secs(2)).send().await;
        if up.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        ensure!(tokio::time::Instant::now() < until, "the consumer with the failpoint is not healthy after 30 s; its log:\n{}", tail(log));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `scripts/up`: starts whatever is not running, here the real consumer. It
/// must run healthy afterwards; a failure of `scripts/up` elsewhere (another
/// component it could not start) is reported, not charged to this test.
async fn restart_the_stack() -> Result<()> {
    let mut command = Command::new(repo().join("scripts/up"));
    // The variables cargo sets for a test process would make the release build
    // inside scripts/up look stale and rebuild; scripts/up runs as from a shell.
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO") && key != "CARGO_HOME" {
            command.env_remove(key);
        }
    }
    let up = command.current_dir(repo()).stdin(Stdio::null()).output().context("running scripts/up")?;
    let output = format!("{}{}", String::from_utf8_lossy(&up.stdout), String::from_utf8_lossy(&up.stderr));
    let healthy = reqwest::Client::new().get(format!("http://127.0.0.1:{PORT}/healthz")).timeout(Duration::from_secs(2)).send().await.is_ok_and(|r| r.status().is_success());
    match recorded_consumer() {
        Ok(_) if healthy => {}
        Ok(pid) => bail!("after scripts/up ({}), {CONSUMER} (pid {pid}) is not healthy; its output:\n{output}", up.status),
        Err(e) => bail!("after scripts/up ({}): {e:#}; its output:\n{output}", up.status),
    }
    if !up.status.success() {
        eprintln!("warning: scripts/up failed ({}), though {CONSUMER} runs healthy again; its output:\n{output}", up.status);
    }
    Ok(())
}

fn panic_text(panic: &(dyn Any + Send)) -> String {
    panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned())).unwrap_or_else(|| "a panic without a message".to_owned())
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn inventory(shop: &Shop) -> sqlx::PgPool {
    static POOL: std::sync::OnceLock<sqlx::PgPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| sqlx::postgres::PgPoolOptions::new().max_connections(2).connect_lazy(&shop.stack.database_url("inventory")).expect("a database URL")).clone()
}

async fn reservations_of(shop: &Shop, order: &str) -> Result<i64> {
    let id = uuid::Uuid::parse_str(order)?;
    Ok(sqlx::query_scalar("select count(*) from reservations where order_id = $1").bind(id).fetch_one(&inventory(shop)).await?)
}

async fn inbox_claims(shop: &Shop, event_id: &str) -> Result<i64> {
    let id = uuid::Uuid::parse_str(event_id)?;
    Ok(sqlx::query_scalar("select count(*) from processed_events where event_id = $1 and event_type = 'OrderPlaced'")
        .bind(id)
        .fetch_one(&inventory(shop))
        .await?)
}

/// The event id (`id` header) of the order's `OrderPlaced` record.
async fn order_placed_event_id(stack: &Stack, order: &str) -> Result<String> {
    let placed = consume(stack, "outflow.order.events", 1, Duration::from_secs(30), |m| {
        m.key() == Some(order.as_bytes()) && header_map(m).get("eventType").map(String::as_str) == Some("OrderPlaced")
    })
    .await?;
    let record = placed.first().with_context(|| format!("no OrderPlaced for {order} on outflow.order.events"))?;
    header_map(record).get("id").cloned().context("OrderPlaced has no id header")
}

/// `consumer_events_total` of the inventory group for OrderPlaced seen as a
/// duplicate, since the consumer (re)started.
async fn duplicate_order_placed_count() -> Result<u64> {
    let metrics = reqwest::get(format!("http://127.0.0.1:{PORT}/metrics")).await?.text().await?;
    Ok(metrics
        .lines()
        .filter(|l| l.starts_with("consumer_events_total{") && l.contains("event_type=\"OrderPlaced\"") && l.contains("outcome=\"duplicate\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum())
}
