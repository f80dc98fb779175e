//! The OpenAPI document of the monitor's JSON API, served at `/openapi.json`
//! and checked in as `consumers/monitor/openapi.json` (a test keeps the two
//! equal). Every `/api/*` call needs an admin's bearer token.

use outflow_service::openapi::{BearerAuth, WRITER_ERRORS};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(title = "Outflow monitor", description = "Consumer lag, the Kafka cluster, connectors and workers, replication slots, dead letters, sagas and commit-to-view latency: the latest sample of each source, a recent one, and the time series of the last minutes."),
    paths(overview, lag, cluster, connectors, slots, dlq, sagas, latency, history),
    modifiers(&BearerAuth, &WRITER_ERRORS)
)]
pub struct ApiDoc;

/// One sample of every source; a source that failed has `{"error": "..."}` as its section.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Snapshot {
    sampled_at: String,
    sampled_at_ms: i64,
    /// How long the sample took.
    sample_ms: u64,
    interval_ms: u64,
    lag: serde_json::Value,
    cluster: serde_json::Value,
    connectors: serde_json::Value,
    slots: serde_json::Value,
    dlq: serde_json::Value,
    sagas: serde_json::Value,
    latency: serde_json::Value,
}

/// One source's section of the latest sample, under the source's name.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Section {
    sampled_at: String,
    sampled_at_ms: i64,
}

/// The time series the page charts.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct History {
    interval_ms: u64,
    history_secs: u64,
    points: Vec<serde_json::Value>,
}

#[utoipa::path(
    get, path = "/api/overview",
    params(("at" = Option<i64>, Query, description = "A recent sample by its sampled_at_ms instead of the latest")),
    responses(
        (status = 200, body = Snapshot),
        (status = 400, description = "at is not a number"),
        (status = 403, description = "Not an admin's token"),
        (status = 404, description = "No sample taken at that time is kept (only the last minute's)"),
        (status = 503, description = "The first sample is still being taken"),
    ),
    security(("bearer" = []))
)]
#[allow(dead_code)]
fn overview() {}

// rustfmt re-indents the attribute inside the macro on every run.
#[rustfmt::skip]
macro_rules! section {
    ($name:ident, $path:literal, $what:literal) => {
        #[utoipa::path(
                    get, path = $path, description = $what,
                    responses(
                        (status = 200, body = Section),
                        (status = 403, description = "Not an admin's token"),
                        (status = 503, description = "The first sample is still being taken"),
                    ),
                    security(("bearer" = []))
                )]
        #[allow(dead_code)]
        fn $name() {}
    };
}

section!(lag, "/api/lag", "Lag per consumer group and partition (`lag`).");
section!(cluster, "/api/cluster", "The Kafka brokers that are up, what each leads, and every under-replicated or offline partition (`cluster`).");
section!(connectors, "/api/connectors", "Each connector's and task's state, and each Connect worker with what it runs (`connectors`).");
section!(slots, "/api/slots", "Each replication slot's retained WAL and lag (`slots`).");
section!(dlq, "/api/dlq", "Records on each dead-letter topic (`dlq`).");
section!(sagas, "/api/sagas", "Orders per status and the stuck ones, each with its trace (`sagas`).");
section!(latency, "/api/latency", "Commit-to-view percentiles (`latency`).");

#[utoipa::path(
    get, path = "/api/history",
    params(("since" = Option<i64>, Query, description = "Only the points after this (milliseconds since the epoch)")),
    responses(
        (status = 200, body = History),
        (status = 400, description = "since is not a number"),
        (status = 403, description = "Not an admin's token"),
    ),
    security(("bearer" = []))
)]
#[allow(dead_code)]
fn history() {}

#[cfg(test)]
mod tests {
    #[test]
    fn the_checked_in_openapi_document_is_current() {
        use utoipa::OpenApi;
        outflow_service::openapi::check_in(&super::ApiDoc::openapi(), concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"));
    }
}
