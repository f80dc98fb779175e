//! Each connector's and task's state, from Kafka Connect's REST API
//! (`GET /connectors?expand=status`).

use secrecy::{ExposeSecret, SecretString};
use std::{collections::BTreeMap, time::Duration};

use anyhow::Context;
use serde::Deserialize;

use crate::model::{Connector, Connectors, Task};

pub struct ConnectSource {
    url: String,
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
    pub fn new(url: &str, login: (String, SecretString), timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(ConnectSource { url: url.trim_end_matches('/').to_owned(), http, login })
    }

    pub async fn sample(&self) -> anyhow::Result<Connectors> {
        let url = format!("{}/connectors?expand=status", self.url);
        let response = self
            .http
            .get(&url)
            .basic_auth(&self.login.0, Some(self.login.1.expose_secret()))
            .send()
            .await
            .with_context(|| format!("Kafka Connect does not answer at {}", self.url))?;
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
        Ok(Connectors { connectors })
    }
}

/// A Java stack trace's first line names the exception and its message.
fn first_line(trace: Option<String>) -> Option<String> {
    trace.and_then(|t| t.lines().next().map(str::to_owned))
}
