//! Prometheus for real, against the running stack: every service's `/metrics`
//! passes `promtool check metrics` (HELP text, unit-bearing names, counters
//! ending in `_total`); the alerting rules pass `promtool check rules` and
//! their unit tests; and Debian's Prometheus, started with
//! `infra/prometheus/prometheus.yml` exactly as users take it, scrapes every
//! target and answers every query of the Grafana dashboard with data.

mod shop;

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{ensure, Context, Result};
use outflow_stack_tests::services::repo;
use serde_json::Value;

/// Every `/metrics` of the stack, as `infra/prometheus/prometheus.yml` scrapes them.
const SCRAPED: [(&str, u16); 13] = [
    ("orders", 7101),
    ("inventory", 7102),
    ("payments", 7103),
    ("shipping", 7104),
    ("notifications", 7105),
    ("query", 7110),
    ("inventory-consumer", 7121),
    ("payments-consumer", 7122),
    ("orders-consumer", 7123),
    ("views-consumer", 7124),
    ("notifications-consumer", 7125),
    ("shipping-consumer", 7126),
    ("monitor", 7190),
];

fn prometheus_dir() -> PathBuf {
    repo().join("infra/prometheus")
}

/// Runs promtool with `args`, `input` on its standard input; its output when it succeeds.
fn promtool(args: &[&str], input: Option<&str>) -> Result<String> {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("promtool is missing (Debian's prometheus package; scripts/prerequisites.sh installs it)")?;
    let mut stdin = child.stdin.take().expect("piped");
    if let Some(input) = input {
        stdin.write_all(input.as_bytes())?;
    }
    drop(stdin);
    let output = child.wait_with_output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    ensure!(output.status.success(), "promtool {args:?} failed ({}):\n{text}", output.status);
    Ok(text)
}

#[tokio::test]
#[ignore = "needs the stack"]
async fn every_metrics_page_passes_promtool() -> Result<()> {
    // A placed order makes the writers' and consumers' event metrics appear.
    let shop = shop::Shop::new().await;
    let sku = shop.product(5).await;
    let order = shop.place("prometheus-lint", &[(&sku, 1)]).await;
    shop.wait_order(&order, "CONFIRMED").await;
    let http = reqwest::Client::new();
    for (service, port) in SCRAPED {
        let page = http.get(format!("http://127.0.0.1:{port}/metrics")).send().await?.error_for_status()?.text().await?;
        ensure!(page.contains("# HELP "), "{service}'s /metrics has no HELP line at all:\n{page}");
        let problems = promtool(&["check", "metrics"], Some(&page)).with_context(|| format!("{service} (:{port}/metrics)"))?;
        ensure!(problems.trim().is_empty(), "promtool finds problems in {service}'s /metrics:\n{problems}");
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs promtool, which scripts/test installs"]
async fn the_alerting_rules_pass_promtool_and_their_unit_tests() -> Result<()> {
    let dir = prometheus_dir();
    promtool(&["check", "config", dir.join("prometheus.yml").to_str().unwrap()], None)?;
    promtool(&["check", "rules", dir.join("alerts.yml").to_str().unwrap()], None)?;
    promtool(&["test", "rules", dir.join("alerts.test.yml").to_str().unwrap()], None)?;
    Ok(())
}

/// Debian's Prometheus with the repository's configuration, on a free port,
/// its data in a temporary folder; stopped and removed on drop.
struct Prometheus {
    child: std::process::Child,
    url: String,
    http: reqwest::Client,
    data: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

impl Prometheus {
    fn start() -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let data = std::env::temp_dir().join(format!("outflow-prometheus-{}", uuid::Uuid::new_v4().simple()));
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", prometheus_dir().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("prometheus is missing (Debian's prometheus package; scripts/prerequisites.sh installs it)")?;
        Ok(Prometheus { child, url: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new(), data })
    }

    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.url), query)?;
        let body: Value = self.http.get(url).send().await?.json().await?;
        ensure!(body["status"] == "success", "{path} {query:?}: {body}");
        Ok(body["data"].clone())
    }

    /// Waits until Prometheus scraped every target at least `scrapes` times.
    async fn wait_scrapes(&mut self, scrapes: u64) -> Result<()> {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            ensure!(self.child.try_wait()?.is_none(), "prometheus exited at its start");
            let every_target = format!("min(count_over_time(up[5m])) and count(up) == {}", SCRAPED.len());
            if let Ok(data) = self.api("/api/v1/query", &[("query", &every_target)]).await {
                if data["result"][0]["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).is_some_and(|n| n >= scrapes as f64) {
                    return Ok(());
                }
            }
            ensure!(Instant::now() < until, "Prometheus did not scrape its {} targets {scrapes} times within 60 s", SCRAPED.len());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Every query of the Grafana dashboard, its `$group` variable set to All.
fn dashboard_queries() -> Result<Vec<(String, String)>> {
    let file = repo().join("infra/grafana/outflow-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().context("panels")? {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                queries.push((panel["title"].as_str().unwrap_or("?").to_owned(), expr.replace("$group", ".*")));
            }
        }
    }
    ensure!(queries.len() >= 10, "the dashboard has only {} queries", queries.len());
    Ok(queries)
}

#[tokio::test]
#[ignore = "needs the stack"]
async fn prometheus_scrapes_every_target_and_every_dashboard_query_has_data() -> Result<()> {
    // Orders that end both ways, so that every saga state the dashboard charts exists.
    let shop = shop::Shop::new().await;
    let sku = shop.product(1).await;
    // One after the other: orders on different partitions race for the last unit.
    let confirmed = shop.place("prometheus-dashboard", &[(&sku, 1)]).await;
    shop.wait_order(&confirmed, "CONFIRMED").await;
    let rejected = shop.place("prometheus-dashboard", &[(&sku, 1)]).await;
    shop.wait_order(&rejected, "CANCELLED").await;

    let mut prometheus = Prometheus::start()?;
    prometheus.wait_scrapes(2).await?;
    let targets = prometheus.api("/api/v1/targets", &[]).await?;
    for target in targets["activeTargets"].as_array().context("activeTargets")? {
        ensure!(target["health"] == "up", "target {} is {}: {}", target["scrapeUrl"], target["health"], target["lastError"]);
    }
    let groups = prometheus.api("/api/v1/label/group/values", &[("match[]", "outflow_consumer_group_lag_records")]).await?;
    ensure!(groups.as_array().is_some_and(|g| g.len() >= 5), "the dashboard's group variable finds {groups}");
    for (panel, query) in dashboard_queries()? {
        let data = prometheus.api("/api/v1/query", &[("query", &query)]).await?;
        ensure!(data["result"].as_array().is_some_and(|r| !r.is_empty()), "panel \"{panel}\": `{query}` returns no data");
    }
    let rules = prometheus.api("/api/v1/rules", &[]).await?;
    let loaded = rules["groups"].as_array().into_iter().flatten().flat_map(|g| g["rules"].as_array().into_iter().flatten()).count();
    let written = std::fs::read_to_string(repo().join("infra/prometheus/alerts.yml"))?.lines().filter(|l| l.trim_start().starts_with("- alert:")).count();
    ensure!(loaded == written, "Prometheus loaded {loaded} alerting rules from alerts.yml, which holds {written}");
    Ok(())
}
