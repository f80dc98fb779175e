//! What one sample holds, as the JSON API serves it. Each source's section is
//! either its report or `{"error": "..."}`, so one source failing leaves the
//! others intact.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A source's report, or why there is none this time.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Section<T> {
    Ok(T),
    Failed { error: String },
}

impl<T> Section<T> {
    pub fn from_result(result: anyhow::Result<T>) -> Self {
        match result {
            Ok(value) => Section::Ok(value),
            // `{:#}` keeps the whole context chain on one line.
            Err(error) => Section::Failed { error: format!("{error:#}") },
        }
    }

    pub fn ok(&self) -> Option<&T> {
        match self {
            Section::Ok(value) => Some(value),
            Section::Failed { .. } => None,
        }
    }

    pub fn ok_mut(&mut self) -> Option<&mut T> {
        match self {
            Section::Ok(value) => Some(value),
            Section::Failed { .. } => None,
        }
    }
}

/// Everything the monitor knows at one instant.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub sampled_at: DateTime<Utc>,
    pub sampled_at_ms: i64,
    /// How long taking the sample took.
    pub sample_ms: u64,
    pub interval_ms: u64,
    pub lag: Section<LagReport>,
    pub cluster: Section<Cluster>,
    pub connectors: Section<Connectors>,
    pub slots: Section<Slots>,
    pub dlq: Section<DeadLetters>,
    pub sagas: Section<Sagas>,
    pub latency: Section<Latency>,
}

/// How a value moved over the trend window.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Trend {
    /// The actual span compared (shorter while the history fills up).
    pub window_secs: f64,
    pub delta: i64,
    pub per_min: f64,
    /// `rising`, `falling` or `steady`.
    pub direction: &'static str,
}

impl Trend {
    pub fn between(now: i64, then: Option<i64>, window_secs: f64) -> Trend {
        let delta = then.map_or(0, |then| now - then);
        let per_min = if window_secs > 0.0 { delta as f64 * 60.0 / window_secs } else { 0.0 };
        let direction = match delta {
            d if d > 0 => "rising",
            d if d < 0 => "falling",
            _ => "steady",
        };
        Trend { window_secs, delta, per_min, direction }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct LagReport {
    pub groups: Vec<GroupLag>,
    /// The sum over every watched group.
    pub total: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupLag {
    pub group: String,
    /// The broker's view: `Stable`, `Empty`, `PreparingRebalance`, ...
    pub state: String,
    pub members: usize,
    pub topics: Vec<String>,
    pub total: i64,
    pub trend: Trend,
    pub partitions: Vec<PartitionLag>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub low: i64,
    pub high: i64,
    /// None: the group has committed nothing here yet (it starts at `low`).
    pub committed: Option<i64>,
    pub lag: i64,
    pub trend: Trend,
}

/// The Kafka cluster as its metadata describes it: the brokers that are up
/// and every partition not fully replicated.
#[derive(Clone, Debug, Serialize)]
pub struct Cluster {
    /// Brokers in the monitor's bootstrap list (`OUTFLOW_KAFKA_BROKERS`).
    pub expected_brokers: usize,
    /// Brokers registered with the controller, that is, up.
    pub brokers: Vec<Broker>,
    /// Partitions with fewer replicas in sync than assigned.
    pub under_replicated: Vec<PartitionReplicas>,
    /// Partitions without a leader: nobody can read or write them.
    pub offline: Vec<PartitionReplicas>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Broker {
    pub id: i32,
    pub address: String,
    /// Partitions this broker leads.
    pub leader_of: usize,
    /// Partitions this broker holds a replica of.
    pub replica_of: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct PartitionReplicas {
    pub topic: String,
    pub partition: i32,
    /// -1: no leader.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Connectors {
    pub connectors: Vec<Connector>,
    /// Each configured worker, whether its REST API answers, and what it runs.
    pub workers: Vec<Worker>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Worker {
    pub url: String,
    /// `host:port` of its REST listener: the `worker_id` of what it runs.
    pub worker_id: String,
    pub reachable: bool,
    pub connectors: Vec<String>,
    /// `connector/task id`.
    pub tasks: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Connector {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
    pub worker_id: String,
    /// The first line of a failure's trace.
    pub trace: Option<String>,
    pub tasks: Vec<Task>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Task {
    pub id: i64,
    pub state: String,
    pub worker_id: String,
    pub trace: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Slots {
    pub current_wal_lsn: String,
    pub slots: Vec<Slot>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Slot {
    pub slot_name: String,
    pub database: Option<String>,
    pub slot_type: String,
    pub plugin: Option<String>,
    pub active: bool,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
    pub confirmed_flush_lsn: Option<String>,
    /// WAL the server keeps for this slot: current position minus `restart_lsn`.
    pub retained_wal_bytes: Option<i64>,
    /// How far the consumer of the slot is behind: current position minus
    /// `confirmed_flush_lsn`.
    pub lag_bytes: Option<i64>,
    pub trend: Trend,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeadLetters {
    pub total: i64,
    pub topics: Vec<DeadLetterTopic>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeadLetterTopic {
    pub topic: String,
    pub partitions: usize,
    /// The sum over partitions of high minus low watermark.
    pub records: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sagas {
    /// Orders per status; every known status is present, 0 when none.
    pub counts: BTreeMap<String, i64>,
    pub total: i64,
    pub in_flight: i64,
    pub oldest_in_flight_secs: Option<f64>,
    pub stuck_after_secs: u64,
    pub stuck_count: i64,
    /// The oldest stuck sagas first, at most `stuck_limit` of them.
    pub stuck: Vec<StuckSaga>,
    /// Sagas that reached a terminal state, per minute, over the trend window.
    pub finished_per_min: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StuckSaga {
    pub order_id: String,
    pub customer_id: String,
    pub status: String,
    pub total_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub age_secs: f64,
    /// The order's trace in Jaeger's UI, when the monitor knows where that is.
    pub trace_url: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub metric: &'static str,
    pub source: String,
    /// The histogram's largest finite bucket: a percentile there means "at least this".
    pub max_bucket_secs: Option<f64>,
    /// Every event since the view consumer started.
    pub since_start: Quantiles,
    /// Only the events of the last window (the difference of two scrapes).
    pub recent: Quantiles,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Quantiles {
    pub window_secs: Option<f64>,
    pub count: u64,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

/// One sample, reduced to what the charts and trends need.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HistoryPoint {
    /// Milliseconds since the epoch.
    pub t: i64,
    /// Total lag per group.
    pub lag: BTreeMap<String, i64>,
    pub slot_lag: BTreeMap<String, i64>,
    pub slot_retained: BTreeMap<String, i64>,
    /// Recent commit-to-view quantiles, in seconds.
    pub latency_p50: Option<f64>,
    pub latency_p90: Option<f64>,
    pub latency_p99: Option<f64>,
    pub dlq_total: Option<i64>,
    pub sagas: BTreeMap<String, i64>,
    pub stuck: Option<i64>,
    /// Lag per (group, topic, partition), for the partitions' trends only.
    #[serde(skip)]
    pub partitions: HashMap<(String, String, i32), i64>,
}
