//! A closed loop: `concurrency` workers each run one operation after another
//! for `seconds`; every completion is counted and timed.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    pub name: String,
    pub completed: u64,
    pub errors: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs `operation` in a closed loop; an `Err` counts as an error, not a completion.
pub async fn closed_loop<F, Fut>(name: &str, concurrency: usize, seconds: u64, operation: F) -> Measurement
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let operation = Arc::new(operation);
    let bar = ProgressBar::new(seconds).with_style(ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} s").unwrap().progress_chars("=> "));
    bar.set_message(name.to_owned());
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let operation = operation.clone();
            tokio::spawn(async move {
                let (mut latencies, mut errors, mut n) = (Vec::new(), 0u64, 0u64);
                while Instant::now() < until {
                    let t = Instant::now();
                    match operation(worker as u64 * 1_000_000_000 + n).await {
                        Ok(()) => latencies.push(t.elapsed()),
                        Err(e) => {
                            errors += 1;
                            if errors == 1 {
                                eprintln!("{worker}: {e:#}");
                            }
                        }
                    }
                    n += 1;
                }
                (latencies, errors)
            })
        })
        .collect();
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_secs(1)).await;
                bar.inc(1);
            }
        })
    };
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for worker in workers {
        let (l, e) = worker.await.expect("worker");
        latencies.extend(l);
        errors += e;
    }
    ticker.abort();
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    Measurement {
        name: name.to_owned(),
        completed: latencies.len() as u64,
        errors,
        seconds,
        per_second: latencies.len() as f64 / seconds,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
    }
}

/// The `p` quantile of sorted values (nearest rank), 0 when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

pub fn print_table(rows: &[Measurement]) {
    println!("{:<30} {:>10} {:>8} {:>10} {:>9} {:>9}", "path", "completed", "errors", "per s", "p50 ms", "p99 ms");
    for r in rows {
        println!("{:<30} {:>10} {:>8} {:>10.1} {:>9.2} {:>9.2}", r.name, r.completed, r.errors, r.per_second, r.p50_ms, r.p99_ms);
    }
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}
