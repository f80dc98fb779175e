//! A closed loop: `concurrency` workers each run one operation after another
//! for `seconds`; every completion is counted and timed. Latencies are kept in
//! [`Latencies`] (an HDR histogram) and summarized as [`Percentiles`].

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
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
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let operation = Arc::new(operation);
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let progress = Progress::start(name, seconds, until);
    let workers: Vec<_> = (0..concurrency as u64).map(|worker| tokio::spawn(work(operation.clone(), worker, until))).collect();
    let mut tally = Tally::default();
    for worker in workers {
        tally.add(worker.await.expect("worker"));
    }
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    let completed = tally.latencies.count();
    Measurement {
        name: name.to_owned(),
        completed,
        errors: tally.errors,
        seconds,
        per_second: completed as f64 / seconds,
        p50_ms: tally.latencies.quantile_ms(0.50),
        p99_ms: tally.latencies.quantile_ms(0.99),
    }
}

/// What one worker (or all of them) saw.
#[derive(Default)]
struct Tally {
    latencies: Latencies,
    errors: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.latencies.add(&other.latencies);
        self.errors += other.errors;
    }
}

/// One worker's loop. Its operations are numbered `worker * 10^9 + n`, so an
/// operation knows its worker (and so its own connection) from the number alone.
async fn work<F, Fut>(operation: Arc<F>, worker: u64, until: Instant) -> Tally
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut tally = Tally::default();
    let mut n = 0u64;
    while Instant::now() < until {
        let t = Instant::now();
        match operation(worker * 1_000_000_000 + n).await {
            Ok(()) => tally.latencies.record(t.elapsed()),
            Err(e) => {
                tally.errors += 1;
                // The first error says what goes wrong; the count says how often.
                if tally.errors == 1 {
                    eprintln!("{worker}: {e:#}");
                }
            }
        }
        n += 1;
    }
    tally
}

/// A progress bar that moves once a second until the loop's end.
struct Progress {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn start(name: &str, seconds: u64, until: Instant) -> Progress {
        let bar = ProgressBar::new(seconds).with_style(ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} s").unwrap().progress_chars("=> "));
        bar.set_message(name.to_owned());
        let ticker = {
            let bar = bar.clone();
            tokio::spawn(async move {
                while Instant::now() < until {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    bar.inc(1);
                }
            })
        };
        Progress { bar, ticker }
    }

    fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

/// Latencies in µs to 3 significant digits: within 0.1%, finer than the
/// hundredths of a ms the bench prints, in bounded memory however many are
/// recorded. A quantile is the recorded value that share of the samples do not
/// exceed (HDR's nearest rank), reported at the top of its 0.1% bucket.
#[derive(Clone, Debug)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Latencies(Histogram::new(3).expect("3 significant digits are within HDR's 0 to 5"))
    }
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        self.record_us(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// A latency in ms, such as the difference of two millisecond timestamps.
    /// A negative one (two clocks, or two processes' reads of one clock, a
    /// millisecond apart) counts as 0, since a histogram holds no negative values.
    pub fn record_ms(&mut self, ms: f64) {
        self.record_us((ms.max(0.0) * 1000.0).round() as u64);
    }

    fn record_us(&mut self, us: u64) {
        // The histogram grows to fit; only a value past what it can ever hold
        // (about 146,000 years in µs) fails, and is recorded as its largest.
        if self.0.record(us).is_err() {
            self.0.saturating_record(us);
        }
    }

    pub fn add(&mut self, other: &Latencies) {
        self.0.add(&other.0).expect("a histogram that grows to fit takes any other's values");
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The latency that the share `q` of the samples do not exceed, in ms; 0
    /// when there are none.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.max() as f64 / 1000.0
    }
}

/// How a latency is reported: count, p50, p99 and the largest, in ms.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(latencies: &Latencies) -> Percentiles {
        Percentiles { count: latencies.count() as usize, p50_ms: latencies.quantile_ms(0.50), p99_ms: latencies.quantile_ms(0.99), max_ms: latencies.max_ms() }
    }
}

pub fn print_table(rows: &[Measurement]) {
    println!("{:<30} {:>10} {:>8} {:>10} {:>9} {:>9}", "path", "completed", "errors", "per s", "p50 ms", "p99 ms");
    for r in rows {
        println!("{:<30} {:>10} {:>8} {:>10.1} {:>9.2} {:>9.2}", r.name, r.completed, r.errors, r.per_second, r.p50_ms, r.p99_ms);
    }
}

/// The median of a few rounds' rates (the middle two averaged for an even
/// count). Not a histogram: two rounds must give their mean, not one of them.
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
