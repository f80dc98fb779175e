//! The background sampler: every interval it asks all sources at once, each
//! under its own deadline, so a slow or failing source costs only its own
//! section. It fills in the trends from the history, sets the gauges, and
//! keeps the latest snapshot and a ring buffer of history points.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use anyhow::Context;
use chrono::Utc;
use tokio::time::{timeout, MissedTickBehavior};

use crate::{
    connect::ConnectSource,
    exporter,
    kafka::KafkaSource,
    latency::LatencySource,
    model::{HistoryPoint, Section, Snapshot, Trend},
    postgres::{PostgresSource, SETTLED},
    settings::{MonitorSettings, Settings},
};

/// Whole snapshots kept for `/api/overview?at=` (one minute at the default interval).
const RECENT_SNAPSHOTS: usize = 30;

/// What the HTTP handlers read: the latest snapshots and the history.
pub struct Board {
    pub settings: MonitorSettings,
    /// The newest last.
    recent: RwLock<VecDeque<Arc<Snapshot>>>,
    history: RwLock<VecDeque<HistoryPoint>>,
}

impl Board {
    pub fn new(settings: MonitorSettings) -> Arc<Self> {
        Arc::new(Board { settings, recent: RwLock::new(VecDeque::new()), history: RwLock::new(VecDeque::new()) })
    }

    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.recent.read().expect("board lock").back().cloned()
    }

    /// The snapshot taken at `at` (milliseconds since the epoch), while it is
    /// among the recent ones: what a page that shows it was rendered from.
    pub fn at(&self, at: i64) -> Option<Arc<Snapshot>> {
        self.recent.read().expect("board lock").iter().find(|s| s.sampled_at_ms == at).cloned()
    }

    /// The history points taken after `since` (milliseconds since the epoch).
    pub fn history(&self, since: i64) -> Vec<HistoryPoint> {
        self.history.read().expect("board lock").iter().filter(|p| p.t > since).cloned().collect()
    }

    /// Stores a sample: trends from the history, the gauges, the ring buffer.
    pub fn publish(&self, mut snapshot: Snapshot) {
        let mut history = self.history.write().expect("board lock");
        fill_trends(&mut snapshot, &history, self.settings.trend_secs);
        history.push_back(point(&snapshot));
        while history.len() > self.settings.history_len() {
            history.pop_front();
        }
        drop(history);
        exporter::record(&snapshot);
        let mut recent = self.recent.write().expect("board lock");
        recent.push_back(Arc::new(snapshot));
        if recent.len() > RECENT_SNAPSHOTS {
            recent.pop_front();
        }
    }
}

pub struct Sources {
    kafka: Arc<Mutex<KafkaSource>>,
    connect: ConnectSource,
    postgres: PostgresSource,
    latency: LatencySource,
    timeout: Duration,
    interval: Duration,
}

impl Sources {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let monitor = &settings.monitor;
        let timeout = monitor.source_timeout();
        Ok(Sources {
            kafka: Arc::new(Mutex::new(KafkaSource::new(&settings.kafka_brokers, settings.kafka_login.clone(), &monitor.group_prefix, timeout)?)),
            connect: ConnectSource::new(settings.connect_workers(), (settings.connect_user.clone(), settings.connect_password.clone()), timeout)?,
            postgres: PostgresSource::new(
                settings.connect_options(&settings.orders_database),
                &settings.orders_database,
                monitor.stuck_after_secs,
                monitor.stuck_limit,
            )
            .with_trace_ui(settings.jaeger_url.clone()),
            latency: LatencySource::new(&settings.views_metrics_url, Duration::from_secs(monitor.latency_window_secs), timeout)?,
            timeout,
            interval: monitor.interval(),
        })
    }

    /// One sample of every source.
    pub async fn sample(&mut self) -> Snapshot {
        let started = Instant::now();
        let sampled_at = Utc::now();
        let kafka = self.kafka.clone();
        let kafka = within(self.timeout, "Kafka", async move {
            tokio::task::spawn_blocking(move || {
                // A sample still stuck in librdkafka keeps the lock: report, don't queue.
                let mut source = kafka.try_lock().map_err(|_| anyhow::anyhow!("the previous Kafka sample has not finished"))?;
                source.sample()
            })
            .await
            .context("the Kafka sampler panicked")?
        });
        let timeout = self.timeout;
        let (kafka, connectors, slots, sagas, latency) = tokio::join!(
            kafka,
            within(timeout, "Kafka Connect", self.connect.sample()),
            within(timeout, "PostgreSQL", self.postgres.slots()),
            within(timeout, "PostgreSQL", self.postgres.sagas()),
            within(timeout, "the view consumer", self.latency.sample()),
        );
        let (lag, dlq, cluster) = match kafka {
            Ok(sample) => (Section::Ok(sample.lag), Section::Ok(sample.dead_letters), Section::Ok(sample.cluster)),
            Err(e) => {
                let error = format!("{e:#}");
                (Section::Failed { error: error.clone() }, Section::Failed { error: error.clone() }, Section::Failed { error })
            }
        };
        Snapshot {
            sampled_at,
            sampled_at_ms: sampled_at.timestamp_millis(),
            sample_ms: started.elapsed().as_millis() as u64,
            interval_ms: self.interval.as_millis() as u64,
            lag,
            cluster,
            connectors: Section::from_result(connectors),
            slots: Section::from_result(slots),
            dlq,
            sagas: Section::from_result(sagas),
            latency: Section::from_result(latency),
        }
    }
}

async fn within<T>(limit: Duration, source: &str, work: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    timeout(limit, work).await.unwrap_or_else(|_| Err(anyhow::anyhow!("{source} did not answer within {limit:?}")))
}

/// Samples every interval (the first one after an interval) until the process ends.
pub async fn run(mut sources: Sources, board: Arc<Board>, handle: metrics_exporter_prometheus::PrometheusHandle) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + sources.interval, sources.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Logged when a source starts failing, fails differently, or recovers: not every sample.
    let mut failing: HashMap<&'static str, String> = HashMap::new();
    loop {
        ticks.tick().await;
        let snapshot = sources.sample().await;
        let now: HashMap<&'static str, String> = errors(&snapshot).into_iter().map(|(s, e)| (s, e.to_owned())).collect();
        for (source, error) in &now {
            if failing.get(source) != Some(error) {
                tracing::warn!(source, error, "monitor source failed");
            }
        }
        for source in failing.keys().filter(|s| !now.contains_key(*s)) {
            tracing::info!(source, "monitor source answers again");
        }
        failing = now;
        board.publish(snapshot);
        handle.run_upkeep();
    }
}

fn errors(snapshot: &Snapshot) -> Vec<(&'static str, &str)> {
    fn error<T>(section: &Section<T>) -> Option<&str> {
        match section {
            Section::Failed { error } => Some(error),
            Section::Ok(_) => None,
        }
    }
    [
        ("kafka", error(&snapshot.lag)),
        ("connect", error(&snapshot.connectors)),
        ("postgres", error(&snapshot.slots)),
        ("sagas", error(&snapshot.sagas)),
        ("latency", error(&snapshot.latency)),
    ]
    .into_iter()
    .filter_map(|(name, error)| Some((name, error?)))
    .collect()
}

/// The history point that a trend compares with: the newest at least
/// `window` old, or the oldest there is while the history is shorter.
fn baseline(history: &VecDeque<HistoryPoint>, now: i64, window_secs: u64) -> Option<&HistoryPoint> {
    let cutoff = now - window_secs as i64 * 1000;
    history.iter().rev().find(|p| p.t <= cutoff).or_else(|| history.front())
}

fn fill_trends(snapshot: &mut Snapshot, history: &VecDeque<HistoryPoint>, window_secs: u64) {
    let now = snapshot.sampled_at_ms;
    let Some(then) = baseline(history, now, window_secs) else { return };
    let span = (now - then.t) as f64 / 1000.0;
    if let Some(lag) = snapshot.lag.ok_mut() {
        for group in &mut lag.groups {
            group.trend = Trend::between(group.total, then.lag.get(&group.group).copied(), span);
            for p in &mut group.partitions {
                let key = (group.group.clone(), p.topic.clone(), p.partition);
                p.trend = Trend::between(p.lag, then.partitions.get(&key).copied(), span);
            }
        }
    }
    if let Some(slots) = snapshot.slots.ok_mut() {
        for slot in &mut slots.slots {
            if let Some(lag) = slot.lag_bytes {
                slot.trend = Trend::between(lag, then.slot_lag.get(&slot.slot_name).copied(), span);
            }
        }
    }
    if let Some(sagas) = snapshot.sagas.ok_mut() {
        let finished = |counts: &dyn Fn(&str) -> Option<i64>| SETTLED.iter().map(|s| counts(s)).sum::<Option<i64>>();
        let now_done = finished(&|s| sagas.counts.get(s).copied());
        let then_done = finished(&|s| then.sagas.get(s).copied());
        if let (Some(now_done), Some(then_done), true) = (now_done, then_done, span > 0.0) {
            sagas.finished_per_min = Some((now_done - then_done).max(0) as f64 * 60.0 / span);
        }
    }
}

fn point(snapshot: &Snapshot) -> HistoryPoint {
    let mut point = HistoryPoint { t: snapshot.sampled_at_ms, ..Default::default() };
    if let Some(lag) = snapshot.lag.ok() {
        for group in &lag.groups {
            point.lag.insert(group.group.clone(), group.total);
            for p in &group.partitions {
                point.partitions.insert((group.group.clone(), p.topic.clone(), p.partition), p.lag);
            }
        }
    }
    if let Some(slots) = snapshot.slots.ok() {
        for slot in &slots.slots {
            if let Some(lag) = slot.lag_bytes {
                point.slot_lag.insert(slot.slot_name.clone(), lag);
            }
            if let Some(retained) = slot.retained_wal_bytes {
                point.slot_retained.insert(slot.slot_name.clone(), retained);
            }
        }
    }
    if let Some(latency) = snapshot.latency.ok() {
        (point.latency_p50, point.latency_p90, point.latency_p99) = (latency.recent.p50, latency.recent.p90, latency.recent.p99);
    }
    point.dlq_total = snapshot.dlq.ok().map(|d| d.total);
    if let Some(sagas) = snapshot.sagas.ok() {
        point.sagas = sagas.counts.clone();
        point.stuck = Some(sagas.stuck_count);
    }
    point
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: i64) -> HistoryPoint {
        HistoryPoint { t, ..Default::default() }
    }

    #[test]
    fn the_baseline_is_the_newest_point_at_least_one_window_old() {
        let history: VecDeque<HistoryPoint> = [0, 30_000, 58_000, 62_000, 90_000].into_iter().map(at).collect();
        assert_eq!(baseline(&history, 120_000, 60).unwrap().t, 58_000);
        assert_eq!(baseline(&history, 40_000, 60).unwrap().t, 0, "a short history compares with its start");
        assert!(baseline(&VecDeque::new(), 1, 60).is_none());
    }

    #[test]
    fn a_trend_names_its_direction() {
        assert_eq!(Trend::between(10, Some(4), 30.0).direction, "rising");
        assert_eq!(Trend::between(10, Some(4), 30.0).per_min, 12.0);
        assert_eq!(Trend::between(0, Some(4), 30.0).direction, "falling");
        assert_eq!(Trend::between(3, None, 30.0).direction, "steady");
    }
}
