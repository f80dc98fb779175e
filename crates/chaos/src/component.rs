//! Every component of the stack as the scripts know it: its name (pid file,
//! log folder), the shell function that starts it and the one that says it
//! is healthy, so that a fault brings it back exactly as `scripts/up` would.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use outflow_stack_tests::services;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    Postgres,
    Kafka,
    /// The cluster topology's second and third Kafka nodes.
    Kafka2,
    Kafka3,
    Connect,
    /// The cluster topology's second Connect worker.
    Connect2,
    Registry,
    Mongo,
    Orders,
    Inventory,
    Payments,
    Sandbox,
    InventoryConsumer,
    PaymentsConsumer,
    OrdersConsumer,
    ViewsConsumer,
    NotificationsConsumer,
    Query,
    Monitor,
}

impl Component {
    pub const ALL: [Component; 19] = [
        Component::Postgres,
        Component::Kafka,
        Component::Kafka2,
        Component::Kafka3,
        Component::Connect,
        Component::Connect2,
        Component::Registry,
        Component::Mongo,
        Component::Orders,
        Component::Inventory,
        Component::Payments,
        Component::Sandbox,
        Component::InventoryConsumer,
        Component::PaymentsConsumer,
        Component::OrdersConsumer,
        Component::ViewsConsumer,
        Component::NotificationsConsumer,
        Component::Query,
        Component::Monitor,
    ];

    /// The infrastructure, as opposed to Outflow's own services.
    pub const INFRASTRUCTURE: [Component; 8] = [
        Component::Postgres,
        Component::Kafka,
        Component::Kafka2,
        Component::Kafka3,
        Component::Connect,
        Component::Connect2,
        Component::Registry,
        Component::Mongo,
    ];

    /// The Kafka nodes and Connect workers that only the cluster topology runs.
    const CLUSTER_ONLY: [Component; 3] = [Component::Kafka2, Component::Kafka3, Component::Connect2];

    /// The components of the topology the stack runs: the state folder records
    /// it (`scripts/up --cluster`), and `OUTFLOW_TOPOLOGY` names it in the
    /// scripts' environment.
    pub fn deployed() -> Vec<Component> {
        let topology = std::env::var("OUTFLOW_TOPOLOGY").ok().filter(|t| !t.is_empty());
        let topology = topology.or_else(|| std::fs::read_to_string(services::state().join("TOPOLOGY")).ok());
        let cluster = topology.is_some_and(|t| t.trim() == "cluster");
        Component::ALL.into_iter().filter(|c| cluster || !Component::CLUSTER_ONLY.contains(c)).collect()
    }

    /// The Kafka nodes, in node id order (node 1 is `kafka`).
    pub const KAFKA_NODES: [Component; 3] = [Component::Kafka, Component::Kafka2, Component::Kafka3];
    /// The Connect workers, in worker order.
    pub const CONNECT_WORKERS: [Component; 2] = [Component::Connect, Component::Connect2];

    pub fn name(self) -> &'static str {
        match self {
            Component::Postgres => "postgres",
            Component::Kafka => "kafka",
            Component::Kafka2 => "kafka-2",
            Component::Kafka3 => "kafka-3",
            Component::Connect => "connect",
            Component::Connect2 => "connect-2",
            Component::Registry => "registry",
            Component::Mongo => "mongo",
            Component::Orders => "orders",
            Component::Inventory => "inventory",
            Component::Payments => "payments",
            Component::Sandbox => "sandbox",
            Component::InventoryConsumer => "inventory-consumer",
            Component::PaymentsConsumer => "payments-consumer",
            Component::OrdersConsumer => "orders-consumer",
            Component::ViewsConsumer => "views-consumer",
            Component::NotificationsConsumer => "notifications-consumer",
            Component::Query => "query",
            Component::Monitor => "monitor",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Component::ALL.into_iter().find(|c| c.name() == name).with_context(|| format!("no component {name:?}; one of: {}", names(&Component::ALL)))
    }

    fn is_infrastructure(self) -> bool {
        Component::INFRASTRUCTURE.contains(&self)
    }

    fn start_command(self) -> String {
        match self.is_infrastructure() {
            true => format!("start_{}", self.name()),
            false => format!("start_service {}", self.name()),
        }
    }

    fn health_command(self) -> String {
        match self.is_infrastructure() {
            true => format!("healthy_{}", self.name()),
            false => format!("healthy_service {}", self.name()),
        }
    }

    /// The recorded process and, for PostgreSQL, every backend it forked:
    /// freezing only the postmaster would leave its open sessions working.
    pub fn processes(self) -> Result<Vec<u32>> {
        let pid = services::recorded(self.name())?;
        let mut all = vec![pid];
        if self == Component::Postgres {
            all.extend(children(pid));
        }
        Ok(all)
    }

    pub async fn healthy(self) -> bool {
        shell(&self.health_command()).await.is_ok()
    }

    /// Starts the component as `scripts/up` does. A killed postmaster leaves
    /// backends that hold its shared memory for a moment, and PostgreSQL
    /// refuses to start beside them: that start is retried.
    pub async fn start(self) -> Result<()> {
        let until = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            match shell(&self.start_command()).await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() < until => {
                    eprintln!("chaos: {} did not start yet ({e:#}); again in 1 s", self.name());
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e.context(format!("{} did not come back within 90 s", self.name()))),
            }
        }
    }
}

pub fn names(components: &[Component]) -> String {
    components.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
}

/// Runs a command with the scripts' functions, off the async runtime.
pub async fn shell(command: &str) -> Result<()> {
    let mut cmd = services::scripts(command);
    let command = command.to_owned();
    let output = tokio::task::spawn_blocking(move || cmd.output()).await?.with_context(|| format!("running {command}"))?;
    ensure!(output.status.success(), "{command}: {}{}", String::from_utf8_lossy(&output.stdout).trim(), String::from_utf8_lossy(&output.stderr).trim());
    Ok(())
}

/// Processes whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(all) = procfs::process::all_processes() else { return Vec::new() };
    all.filter_map(|p| p.ok()?.stat().ok()).filter(|stat| stat.ppid as u32 == parent).map(|stat| stat.pid as u32).collect()
}
