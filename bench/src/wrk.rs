//! `POST /v1/orders` driven by wrk, a load generator in another process
//! written in C, beside the bench's own (`http1`): when both reach the same
//! rate against the same writer, the bench's generator is not what limits
//! the figure. A Lua script gives every request its own idempotency key and
//! one of many customers' tokens, as the bench's own requests have.

use std::time::Duration;

use anyhow::Context;

use crate::measure::Measurement;

/// Runs wrk for `seconds` with `connections` connections on one thread.
pub async fn post_orders(name: &str, address: &str, tokens: &[String], connections: usize, seconds: u64) -> anyhow::Result<Measurement> {
    let script = std::env::temp_dir().join(format!("outflow-wrk-{}.lua", uuid::Uuid::new_v4()));
    std::fs::write(&script, lua(tokens, &uuid::Uuid::new_v4().to_string()))?;
    println!("{name}: wrk, {connections} connections, {seconds} s");
    let mut command = std::process::Command::new("wrk");
    command
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "--timeout", "10s", "-s"])
        .arg(&script)
        .arg(format!("http://{address}/v1/orders"));
    let output = tokio::task::spawn_blocking(move || command.output()).await?;
    let _ = std::fs::remove_file(&script);
    let output = output.context("running wrk (Debian: apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    parse(name, &text)
}

/// The script: a unique key per request (prefix, thread-local counter), the
/// bench's order lines, a token per request in turn.
fn lua(tokens: &[String], prefix: &str) -> String {
    let tokens: Vec<String> = tokens.iter().map(|t| format!("{t:?}")).collect();
    format!(
        r#"local tokens = {{ {} }}
local skus = {{ "BENCH-1", "BENCH-2", "BENCH-3" }}
local n = 0
request = function()
  n = n + 1
  local items = {{}}
  for i = 1, (n % 3) + 1 do items[i] = string.format('{{"sku":"%s","quantity":%d}}', skus[i], i) end
  wrk.headers["authorization"] = tokens[(n % #tokens) + 1]
  wrk.headers["content-type"] = "application/json"
  wrk.headers["idempotency-key"] = "wrk-{prefix}-" .. n
  return wrk.format("POST", "/v1/orders", nil, '{{"items":[' .. table.concat(items, ",") .. ']}}')
end
"#,
        tokens.join(",")
    )
}

/// wrk's report: requests and seconds, refused responses, socket errors and
/// the latency distribution (`--latency`).
fn parse(name: &str, text: &str) -> anyhow::Result<Measurement> {
    let words = |line: &str| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let find = |prefix: &str| text.lines().map(str::trim).find(|l| l.starts_with(prefix)).map(words);
    let total = text.lines().map(words).find(|w| w.len() > 3 && w[1] == "requests" && w[2] == "in").context("no request count in wrk's report")?;
    let requests: u64 = total[0].parse()?;
    let seconds = duration(total[3].trim_end_matches(','))?.as_secs_f64();
    let refused: u64 = find("Non-2xx or 3xx responses:").and_then(|w| w.last()?.parse().ok()).unwrap_or(0);
    let socket_errors: u64 = find("Socket errors:").map_or(0, |w| w.iter().filter_map(|x| x.trim_end_matches(',').parse::<u64>().ok()).sum());
    let percentile = |p: &str| find(p).and_then(|w| duration(w.get(1)?).ok()).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let completed = requests.saturating_sub(refused);
    Ok(Measurement {
        name: name.to_owned(),
        completed,
        errors: refused + socket_errors,
        seconds,
        per_second: completed as f64 / seconds,
        p50_ms: percentile("50%"),
        p99_ms: percentile("99%"),
    })
}

/// wrk's durations: `812.00us`, `1.23ms`, `10.01s`, `1.00m`.
fn duration(text: &str) -> anyhow::Result<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).context("no unit")?;
    let value: f64 = text[..split].parse()?;
    let seconds = match &text[split..] {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        unit => anyhow::bail!("unknown unit {unit}"),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 10s test @ http://127.0.0.1:1/v1/orders
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.52ms    4.01ms  61.23ms   80.12%
    Req/Sec     1.28k   101.23     1.45k    71.00%
  Latency Distribution
     50%   11.98ms
     75%   14.10ms
     90%   17.20ms
     99%   25.50ms
  12801 requests in 10.01s, 3.21MB read
  Non-2xx or 3xx responses: 1
Requests/sec:   1278.82
Transfer/sec:    328.52KB
";

    #[test]
    fn the_report_gives_completed_requests_per_second_and_percentiles() {
        let m = parse("wrk", REPORT).unwrap();
        assert_eq!((m.completed, m.errors), (12800, 1));
        assert!((m.per_second - 12800.0 / 10.01).abs() < 1e-6);
        assert!((m.p50_ms - 11.98).abs() < 1e-9 && (m.p99_ms - 25.5).abs() < 1e-9);
        assert_eq!(duration("812.00us").unwrap(), Duration::from_micros(812));
        assert!(parse("wrk", "nothing").is_err());
    }
}
