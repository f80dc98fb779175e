//! Each connector's and task's state, from Kafka Connect's REST API
//! (`GET /connectors?expand=status`), asked of the first worker that answers
//! (any worker serves the whole group), and each configured worker's own
//! `GET /`: whether it is up, and which connectors and tasks it runs.

use secrecy::{ExposeSecret, SecretString};
use std::{collections::BTreeMap, time::Duration};

use anyhow::Context;
use serde::Deserialize;

use crate::model::{Connector, Connectors, Task, Worker};

pub struct ConnectSource {
    /// Every worker's REST address.
    urls: Vec<String>,
    http: reqwest::Client,
    /// The REST API's login (basic authentication).
    login: (String, SecretString),
}

#[derive(Deserialize)]
struct Expanded {
    status: Status,
}

#[derive(Deserialize)]
struct Status {
    name: String,
    connector: State,
    #[serde(default)]
    tasks: Vec<TaskState>,
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(Deserialize)]
struct State {
    state: String,
    #[serde(default)]
    worker_id: String,
    trace: Option<String>,
}

#[derive(Deserialize)]
struct TaskState {
    id: i64,
    state: String,
    #[serde(default)]
    worker_id: String,
    trace: Option<String>,
}

impl ConnectSource {
    /// `urls`: the workers' REST addresses, comma-separated.
    pub fn new(urls: &str, login: (String, SecretString), timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        let urls: Vec<String> = urls.split(',').map(|u| u.trim().trim_end_matches('/').to_owned()).filter(|u| !u.is_empty()).collect();
        anyhow::ensure!(!urls.is_empty(), "no Kafka Connect worker URL is configured");
        Ok(ConnectSource { urls, http, login })
    }

    pub async fn sample(&self) -> anyhow::Result<Connectors> {
        let (statuses, reachable) = tokio::join!(self.statuses(), futures::future::join_all(self.urls.iter().map(|url| self.answers(url))));
        let connectors = statuses?;
        let workers = self.urls.iter().zip(reachable).map(|(url, reachable)| worker(url, reachable, &connectors)).collect();
        Ok(Connectors { connectors, workers })
    }

    async fn answers(&self, url: &str) -> bool {
        let request = self.http.get(format!("{url}/")).basic_auth(&self.login.0, Some(self.login.1.expose_secret()));
        request.send().await.is_ok_and(|r| r.status().is_success())
    }

    /// The statuses from the first worker that answers them.
    async fn statuses(&self) -> anyhow::Result<Vec<Connector>> {
        let mut failures = Vec::new();
        for url in &self.urls {
            match self.statuses_at(url).await {
                Ok(connectors) => return Ok(connectors),
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        anyhow::bail!("no Kafka Connect worker answers: {}", failures.join("; "))
    }

    async fn statuses_at(&self, base: &str) -> anyhow::Result<Vec<Connector>> {
        let url = format!("{base}/connectors?expand=status");
        let response = self
            .http
            .get(&url)
            .basic_auth(&self.login.0, Some(self.login.1.expose_secret()))
            .send()
            .await
            .with_context(|| format!("Kafka Connect does not answer at {base}"))?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!("GET {url}: {status}: {}", response.text().await.unwrap_or_default());
        }
        let body: BTreeMap<String, Expanded> = response.json().await.context("reading Connect's connector statuses")?;
        let connectors = body
            .into_values()
            .map(|e| {
                let mut tasks: Vec<Task> =
                    e.status.tasks.into_iter().map(|t| Task { id: t.id, state: t.state, worker_id: t.worker_id, trace: first_line(t.trace) }).collect();
                tasks.sort_by_key(|t| t.id);
                Connector {
                    name: e.status.name,
                    kind: e.status.kind,
                    state: e.status.connector.state,
                    worker_id: e.status.connector.worker_id,
                    trace: first_line(e.status.connector.trace),
                    tasks,
                }
            })
            .collect();
        Ok(connectors)
    }
}

/// A worker's row: its id is the `host:port` of its URL, as Connect reports it.
fn worker(url: &str, reachable: bool, connectors: &[Connector]) -> Worker {
    let worker_id = url.split("://").nth(1).unwrap_or(url).to_owned();
    Worker {
        url: url.to_owned(),
        reachable,
        connectors: connectors.iter().filter(|c| c.worker_id == worker_id).map(|c| c.name.clone()).collect(),
        tasks: connectors.iter().flat_map(|c| c.tasks.iter().filter(|t| t.worker_id == worker_id).map(move |t| format!("{}/{}", c.name, t.id))).collect(),
        worker_id,
    }
}

/// A Java stack trace's first line names the exception and its message.
fn first_line(trace: Option<String>) -> Option<String> {
    trace.and_then(|t| t.lines().next().map(str::to_owned))
}
