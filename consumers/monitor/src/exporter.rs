//! The monitor's Prometheus metrics: every sample sets its gauges; a gauge no
//! sample has set for a few intervals (a dropped slot, a deleted connector, a
//! source that fails) leaves `/metrics` instead of repeating a stale value.
//!
//! The monitor installs its own recorder (the one `outflow_service::ops` installs
//! never forgets a series); the request metrics of the common layers land in it too.

use std::time::Duration;

use metrics::gauge;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

use crate::model::{Cluster, Connectors, DeadLetters, LagReport, Latency, Sagas, Slots, Snapshot};

pub fn install(interval: Duration) -> anyhow::Result<PrometheusHandle> {
    let idle = (interval * 3).max(Duration::from_secs(10));
    let handle = PrometheusBuilder::new()
        .set_buckets(&[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])?
        .idle_timeout(MetricKindMask::GAUGE, Some(idle))
        .install_recorder()?;
    outflow_service::metrics_catalog::describe();
    Ok(handle)
}

fn up(source: &'static str, ok: bool) {
    gauge!("outflow_monitor_source_up", "source" => source).set(if ok { 1.0 } else { 0.0 });
}

fn flag(value: bool) -> f64 {
    if value {
        1.0
    } else {
        0.0
    }
}

/// Sets every gauge from one sample. A failed section sets only its source's
/// `up` to 0: its other gauges go stale and expire, so no old value stands in.
pub fn record(snapshot: &Snapshot) {
    gauge!("outflow_monitor_sample_seconds").set(snapshot.sample_ms as f64 / 1000.0);
    up("kafka", snapshot.lag.ok().is_some());
    if let Some(lag) = snapshot.lag.ok() {
        record_lag(lag);
    }
    if let Some(dlq) = snapshot.dlq.ok() {
        record_dead_letters(dlq);
    }
    if let Some(cluster) = snapshot.cluster.ok() {
        record_cluster(cluster);
    }
    up("connect", snapshot.connectors.ok().is_some());
    if let Some(connectors) = snapshot.connectors.ok() {
        record_connectors(connectors);
    }
    up("postgres", snapshot.slots.ok().is_some());
    if let Some(slots) = snapshot.slots.ok() {
        record_slots(slots);
    }
    up("sagas", snapshot.sagas.ok().is_some());
    if let Some(sagas) = snapshot.sagas.ok() {
        record_sagas(sagas);
    }
    up("latency", snapshot.latency.ok().is_some());
    if let Some(latency) = snapshot.latency.ok() {
        record_latency(latency);
    }
}

fn record_lag(lag: &LagReport) {
    for group in &lag.groups {
        gauge!("outflow_consumer_group_lag_records", "group" => group.group.clone()).set(group.total as f64);
        gauge!("outflow_consumer_group_members", "group" => group.group.clone()).set(group.members as f64);
        for p in &group.partitions {
            let labels = [("group", group.group.clone()), ("topic", p.topic.clone()), ("partition", p.partition.to_string())];
            gauge!("outflow_consumer_lag_records", &labels).set(p.lag as f64);
            if let Some(committed) = p.committed {
                gauge!("outflow_consumer_committed_offset", &labels).set(committed as f64);
            }
            gauge!("outflow_partition_high_watermark_offset", "topic" => p.topic.clone(), "partition" => p.partition.to_string()).set(p.high as f64);
        }
    }
}

fn record_dead_letters(dlq: &DeadLetters) {
    for topic in &dlq.topics {
        gauge!("outflow_dlq_records", "topic" => topic.topic.clone()).set(topic.records as f64);
    }
}

fn record_cluster(cluster: &Cluster) {
    gauge!("outflow_kafka_brokers").set(cluster.brokers.len() as f64);
    gauge!("outflow_kafka_brokers_expected").set(cluster.expected_brokers as f64);
    gauge!("outflow_kafka_under_replicated_partitions").set(cluster.under_replicated.len() as f64);
    gauge!("outflow_kafka_offline_partitions").set(cluster.offline.len() as f64);
    for broker in &cluster.brokers {
        gauge!("outflow_kafka_broker_leader_partitions", "broker" => broker.id.to_string()).set(broker.leader_of as f64);
    }
}

fn record_connectors(connectors: &Connectors) {
    for w in &connectors.workers {
        gauge!("outflow_connect_worker_up", "worker" => w.worker_id.clone()).set(flag(w.reachable));
        gauge!("outflow_connect_worker_tasks", "worker" => w.worker_id.clone()).set(w.tasks.len() as f64);
    }
    for c in &connectors.connectors {
        gauge!("outflow_connector_running", "connector" => c.name.clone()).set(flag(c.state == "RUNNING"));
        for t in &c.tasks {
            gauge!("outflow_connector_task_running", "connector" => c.name.clone(), "task" => t.id.to_string()).set(flag(t.state == "RUNNING"));
        }
    }
}

fn record_slots(slots: &Slots) {
    for s in &slots.slots {
        gauge!("outflow_slot_active", "slot" => s.slot_name.clone()).set(flag(s.active));
        if let Some(retained) = s.retained_wal_bytes {
            gauge!("outflow_slot_retained_wal_bytes", "slot" => s.slot_name.clone()).set(retained as f64);
        }
        if let Some(lag) = s.lag_bytes {
            gauge!("outflow_slot_lag_bytes", "slot" => s.slot_name.clone()).set(lag as f64);
        }
    }
}

fn record_sagas(sagas: &Sagas) {
    for (status, count) in &sagas.counts {
        gauge!("outflow_sagas", "status" => status.clone()).set(*count as f64);
    }
    gauge!("outflow_sagas_stuck").set(sagas.stuck_count as f64);
    if let Some(oldest) = sagas.oldest_in_flight_secs {
        gauge!("outflow_sagas_oldest_in_flight_seconds").set(oldest);
    }
}

fn record_latency(latency: &Latency) {
    for (window, quantiles) in [("recent", &latency.recent), ("since_start", &latency.since_start)] {
        // `percentile`, not `quantile`: Prometheus keeps that label for summaries.
        for (percentile, value) in [("50", quantiles.p50), ("90", quantiles.p90), ("99", quantiles.p99)] {
            // A window without observations has no percentiles: no series rather than a 0.
            if let Some(value) = value {
                gauge!("outflow_commit_to_view_seconds", "percentile" => percentile, "window" => window).set(value);
            }
        }
    }
}
