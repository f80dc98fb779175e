//! The schema compatibility gate. Every event schema must stay
//! BACKWARD_TRANSITIVE compatible with every version it ever had: consumers
//! reading with the new schema must decode every retained event written with
//! an old one. The gate registers, under a fresh subject per event type, each
//! version of the `.avsc` file from git history (oldest first) and then the
//! working copy, so it checks the whole history even on a fresh registry; and
//! it registers the current schemas under the real subjects the writers use.

use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use outflow_events::DomainEvent;
use outflow_stack_tests::Stack;
use serde_json::{json, Value};

struct Registry {
    url: String,
    http: reqwest::Client,
    /// The administrator's login: the gate sets compatibility and deletes its subjects.
    login: (String, String),
}

impl Registry {
    fn new(stack: &Stack) -> Self {
        Registry { url: stack.registry_url.clone(), http: reqwest::Client::new(), login: (stack.registry_user.clone(), stack.registry_password.clone()) }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url)).basic_auth(&self.login.0, Some(&self.login.1))
    }

    async fn set_compatibility(&self, subject: &str, level: &str) -> Result<()> {
        let response = self.request(reqwest::Method::PUT, &format!("/config/{subject}")).json(&json!({"compatibility": level})).send().await?;
        if !response.status().is_success() {
            bail!("setting {level} on {subject}: {}", response.text().await?);
        }
        Ok(())
    }

    /// Registers a schema; Ok(Err(message)) when the registry refuses it as incompatible.
    async fn register(&self, subject: &str, schema: &str) -> Result<std::result::Result<u64, String>> {
        let response = self
            .request(reqwest::Method::POST, &format!("/subjects/{subject}/versions"))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .json(&json!({"schema": schema}))
            .send()
            .await
            .context("the schema registry is not reachable: is the stack up (scripts/up)?")?;
        let status = response.status().as_u16();
        let body: Value = response.json().await?;
        match status {
            200 => Ok(Ok(body["id"].as_u64().context("an id")?)),
            409 => Ok(Err(body["message"].as_str().unwrap_or_default().to_owned())),
            _ => bail!("registering under {subject}: {status} {body}"),
        }
    }

    async fn delete_subject(&self, subject: &str) {
        let _ = self.request(reqwest::Method::DELETE, &format!("/subjects/{subject}")).send().await;
        let _ = self.request(reqwest::Method::DELETE, &format!("/subjects/{subject}?permanent=true")).send().await;
    }
}

/// Every committed version of a schema file, oldest first. Without the
/// whole history (no git, not a checkout, a shallow clone) the gate cannot
/// check what it promises, so that is an error, never an empty history.
fn history(file: &str) -> Result<Vec<String>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let git = |args: &[&str]| -> Result<String> {
        let output = Command::new("git").arg("-C").arg(root).args(args).output().context("running git: the schema gate reads the schemas' history with it")?;
        ensure!(output.status.success(), "git {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    ensure!(
        git(&["rev-parse", "--is-shallow-repository"])?.trim() == "false",
        "{root} is a shallow clone: the gate needs every version of the schemas (git fetch --unshallow)"
    );
    let commits = git(&["log", "--reverse", "--format=%H", "--", file])?;
    let mut versions = Vec::new();
    for commit in commits.lines() {
        // A commit that deleted the file has no version of it.
        if let Ok(text) = git(&["show", &format!("{commit}:{file}")]) {
            versions.push(text);
        }
    }
    Ok(versions)
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn every_schema_is_backward_transitive_compatible_with_its_whole_history() -> Result<()> {
    let registry = Registry::new(&Stack::from_env());
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut failures = Vec::new();
    for (name, aggregate, current) in DomainEvent::catalog() {
        let subject = format!("test-gate-{run}-{name}");
        registry.set_compatibility(&subject, "BACKWARD_TRANSITIVE").await?;
        let mut versions = history(&format!("avro/schemas/{name}.avsc"))?;
        versions.push(current.to_owned());
        for (i, schema) in versions.iter().enumerate() {
            if let Err(message) = registry.register(&subject, schema).await? {
                failures.push(format!("{name}.avsc (version {} of {}): {message}", i + 1, versions.len()));
            }
        }
        registry.delete_subject(&subject).await;

        // The subject the writers register under: topic + record name.
        let real = format!("{}-{}.{name}", aggregate.topic(), outflow_events::NAMESPACE);
        registry.set_compatibility(&real, "BACKWARD_TRANSITIVE").await?;
        if let Err(message) = registry.register(&real, current).await? {
            failures.push(format!("{name}.avsc against the registered {real}: {message}"));
        }
    }
    assert!(failures.is_empty(), "incompatible schema changes:\n{}", failures.join("\n"));
    Ok(())
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn the_gate_refuses_an_incompatible_edit_and_accepts_a_compatible_one() -> Result<()> {
    let registry = Registry::new(&Stack::from_env());
    let subject = format!("test-gate-{}-edit", uuid::Uuid::new_v4().simple());
    registry.set_compatibility(&subject, "BACKWARD_TRANSITIVE").await?;
    let original: Value = serde_json::from_str(<outflow_events::order::OrderPlaced as outflow_events::Event>::SCHEMA)?;
    assert!(registry.register(&subject, &original.to_string()).await?.is_ok());

    let mut required_field = original.clone();
    required_field["fields"].as_array_mut().unwrap().push(json!({"name": "coupon", "type": "string"}));
    let refused = registry.register(&subject, &required_field.to_string()).await?;
    assert!(refused.is_err(), "a new field without a default must be refused: {refused:?}");

    let mut retyped = original.clone();
    retyped["fields"][4]["type"] = json!("int"); // customer_id: string -> int
    assert!(registry.register(&subject, &retyped.to_string()).await?.is_err(), "a changed field type must be refused");

    let mut optional_field = original.clone();
    optional_field["fields"].as_array_mut().unwrap().push(json!({"name": "coupon", "type": ["null", "string"], "default": null}));
    let accepted = registry.register(&subject, &optional_field.to_string()).await?;
    assert!(accepted.is_ok(), "an optional field with a default is compatible: {accepted:?}");

    registry.delete_subject(&subject).await;
    Ok(())
}
