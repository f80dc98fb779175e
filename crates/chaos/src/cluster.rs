//! What the failover scenarios ask of the cluster topology: which Kafka node
//! leads the most event partitions, whether every partition has all its
//! replicas in sync again, and which Connect worker runs which task.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result};
use outflow_stack_tests::Stack;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

use crate::component::Component;

/// One look at the cluster's partitions.
#[derive(Debug, Default)]
pub struct Partitions {
    /// Event partitions (`outflow.*.events`) led, per node id.
    pub event_leaders: BTreeMap<i32, usize>,
    /// Partitions (of every topic) with fewer replicas in sync than assigned.
    pub under_replicated: usize,
    /// Partitions without a leader.
    pub offline: usize,
}

impl Partitions {
    /// The node leading the most event partitions, leaving out `excluded`.
    pub fn busiest_leader(&self, excluded: &[Component]) -> Option<Component> {
        self.event_leaders
            .iter()
            .filter_map(|(id, led)| Some((node(*id)?, *led)))
            .filter(|(component, _)| !excluded.contains(component))
            .max_by_key(|(component, led)| (*led, std::cmp::Reverse(*component)))
            .map(|(component, _)| component)
    }
}

/// The component of a Kafka node id (node 1 is `kafka`).
pub fn node(id: i32) -> Option<Component> {
    usize::try_from(id - 1).ok().and_then(|i| Component::KAFKA_NODES.get(i).copied())
}

/// The partitions as the cluster's metadata describes them.
pub async fn partitions(stack: &Stack) -> Result<Partitions> {
    let config = stack.kafka_config();
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = config.create().context("a Kafka client for the cluster's metadata")?;
        let metadata = client.fetch_metadata(None, Duration::from_secs(10)).context("fetching the cluster's metadata")?;
        let mut seen = Partitions::default();
        for topic in metadata.topics() {
            let event_topic = topic.name().starts_with("outflow.") && topic.name().ends_with(".events");
            for partition in topic.partitions() {
                if partition.leader() < 0 {
                    seen.offline += 1;
                } else if event_topic {
                    *seen.event_leaders.entry(partition.leader()).or_default() += 1;
                }
                if partition.isr().len() < partition.replicas().len() {
                    seen.under_replicated += 1;
                }
            }
        }
        Ok(seen)
    })
    .await?
}

/// Waits until no partition is under-replicated or offline: the node brought
/// back has caught up on every partition it holds.
pub async fn wait_in_sync(stack: &Stack, within: Duration) -> Result<()> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let look = partitions(stack).await;
        if let Ok(Partitions { under_replicated: 0, offline: 0, .. }) = look {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < until, "partitions still not in sync after {within:?}: {look:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every connector and task with its state and worker, from whichever worker answers.
#[derive(Debug, Default)]
pub struct Assignments {
    /// (connector or `connector/task`, state, the worker running it).
    pub units: Vec<(String, String, Option<Component>)>,
}

impl Assignments {
    /// The worker running the most tasks.
    pub fn busiest_worker(&self) -> Option<Component> {
        let mut tasks: BTreeMap<Component, usize> = BTreeMap::new();
        for (_, _, worker) in self.units.iter().filter(|(unit, _, _)| unit.contains('/')) {
            if let Some(component) = worker {
                *tasks.entry(*component).or_default() += 1;
            }
        }
        tasks.into_iter().max_by_key(|(component, n)| (*n, std::cmp::Reverse(*component))).map(|(component, _)| component)
    }

    /// Every unit RUNNING, none on `gone`.
    pub fn all_running_without(&self, gone: Component) -> bool {
        !self.units.is_empty() && self.units.iter().all(|(_, state, worker)| state == "RUNNING" && *worker != Some(gone))
    }

    pub fn on(&self, worker: Component) -> Vec<String> {
        self.units.iter().filter(|(_, _, w)| *w == Some(worker)).map(|(unit, _, _)| unit.clone()).collect()
    }
}

/// A worker id (`host:port` of its REST listener) as the component it is:
/// worker N listens on the Nth of `ports`.
fn worker_component(worker_id: &str, ports: &[u16]) -> Option<Component> {
    let port: u16 = worker_id.rsplit(':').next()?.parse().ok()?;
    Component::CONNECT_WORKERS.into_iter().zip(ports).find(|(_, p)| **p == port).map(|(component, _)| component)
}

/// The workers' REST addresses (`OUTFLOW_CONNECT_URLS`, which scripts/lib.sh exports).
fn worker_urls() -> Vec<String> {
    std::env::var("OUTFLOW_CONNECT_URLS").unwrap_or_else(|_| "http://127.0.0.1:58083,http://127.0.0.1:58084".into()).split(',').map(str::to_owned).collect()
}

fn worker_ports() -> Vec<u16> {
    worker_urls().iter().filter_map(|url| url.rsplit(':').next()?.trim_end_matches('/').parse().ok()).collect()
}

/// The connectors' and tasks' assignments, asked of each worker in turn
/// until one answers (a dead worker's REST API does not).
pub async fn assignments(stack: &Stack) -> Result<Assignments> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let mut last = anyhow::anyhow!("no Connect worker is configured");
    for url in worker_urls() {
        let answer = http.get(format!("{url}/connectors?expand=status")).basic_auth(&stack.connect_user, Some(&stack.connect_password)).send().await;
        match answer.and_then(|r| r.error_for_status()) {
            Ok(response) => return Ok(read_assignments(&response.json().await?, &worker_ports())),
            Err(e) => last = anyhow::Error::new(e).context(format!("Connect at {url}")),
        }
    }
    Err(last)
}

fn read_assignments(statuses: &Value, ports: &[u16]) -> Assignments {
    let mut units = Vec::new();
    let state = |v: &Value| v["state"].as_str().unwrap_or_default().to_owned();
    let worker = |v: &Value| worker_component(v["worker_id"].as_str().unwrap_or_default(), ports);
    for (name, entry) in statuses.as_object().into_iter().flatten() {
        let status = &entry["status"];
        units.push((name.clone(), state(&status["connector"]), worker(&status["connector"])));
        for task in status["tasks"].as_array().into_iter().flatten() {
            units.push((format!("{name}/{}", task["id"]), state(task), worker(task)));
        }
    }
    Assignments { units }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_leader_leaves_out_the_excluded_and_breaks_ties_by_node_id() {
        let look = Partitions { event_leaders: [(1, 3), (2, 3), (3, 2)].into(), ..Default::default() };
        assert_eq!(look.busiest_leader(&[]), Some(Component::Kafka));
        assert_eq!(look.busiest_leader(&[Component::Kafka]), Some(Component::Kafka2));
        assert_eq!(look.busiest_leader(&[Component::Kafka, Component::Kafka2, Component::Kafka3]), None);
    }

    #[test]
    fn assignments_name_the_worker_of_each_task() {
        let statuses = serde_json::json!({
            "outflow-orders": {"status": {"connector": {"state": "RUNNING", "worker_id": "127.0.0.1:58084"},
                "tasks": [{"id": 0, "state": "RUNNING", "worker_id": "127.0.0.1:58084"}]}},
            "outflow-payments": {"status": {"connector": {"state": "RUNNING", "worker_id": "127.0.0.1:58083"},
                "tasks": [{"id": 0, "state": "UNASSIGNED", "worker_id": "127.0.0.1:58083"}]}}
        });
        let seen = read_assignments(&statuses, &[58083, 58084]);
        assert_eq!(seen.busiest_worker(), Some(Component::Connect), "a tie goes to the first worker");
        assert_eq!(seen.on(Component::Connect2), vec!["outflow-orders".to_owned(), "outflow-orders/0".to_owned()]);
        assert!(!seen.all_running_without(Component::Connect2));
        assert!(!seen.all_running_without(Component::Kafka), "a task not RUNNING");
    }
}
