//! The routes: the page, the JSON API over the latest snapshot and the history,
//! `/metrics`, `/healthz` and `/readyz` (ready once the first sample is in,
//! whatever its sources answered: the monitor's job is to report failures).

use std::sync::Arc;

use axum::{
    extract::{Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::sampler::Board;

const PAGE: &str = include_str!("page.html");

pub fn router(board: Arc<Board>, handle: PrometheusHandle) -> Router {
    let api = Router::new()
        .route("/", get(page))
        .route("/api/overview", get(overview))
        .route("/api/lag", get(|s: State<Arc<Board>>| section(s, "lag")))
        .route("/api/connectors", get(|s: State<Arc<Board>>| section(s, "connectors")))
        .route("/api/slots", get(|s: State<Arc<Board>>| section(s, "slots")))
        .route("/api/dlq", get(|s: State<Arc<Board>>| section(s, "dlq")))
        .route("/api/sagas", get(|s: State<Arc<Board>>| section(s, "sagas")))
        .route("/api/latency", get(|s: State<Arc<Board>>| section(s, "latency")))
        .route("/api/history", get(history))
        .route("/readyz", get(readyz))
        .with_state(board)
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(move || std::future::ready(handle.render())));
    outflow_service::ops::with_common_layers(api, "monitor")
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], PAGE).into_response()
}

fn no_sample_yet() -> Response {
    let body = json!({"error": {"code": "no_sample_yet", "message": "the first sample is still being taken"}});
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

#[derive(Deserialize)]
struct At {
    /// A recent snapshot by its `sampled_at_ms` instead of the latest.
    at: Option<i64>,
}

async fn overview(State(board): State<Arc<Board>>, Query(at): Query<At>) -> Response {
    match at.at {
        None => match board.latest() {
            Some(snapshot) => Json(&*snapshot).into_response(),
            None => no_sample_yet(),
        },
        Some(at) => match board.at(at) {
            Some(snapshot) => Json(&*snapshot).into_response(),
            None => {
                let message = format!("no snapshot taken at {at} is kept (only the last minute's)");
                (StatusCode::NOT_FOUND, Json(json!({"error": {"code": "not_found", "message": message}}))).into_response()
            }
        },
    }
}

/// One source's section of the latest snapshot, with the time it was taken.
async fn section(State(board): State<Arc<Board>>, name: &'static str) -> Response {
    let Some(snapshot) = board.latest() else { return no_sample_yet() };
    let mut whole = serde_json::to_value(&*snapshot).unwrap_or(Value::Null);
    let part = whole.get_mut(name).map(Value::take).unwrap_or(Value::Null);
    Json(json!({ "sampled_at": snapshot.sampled_at, "sampled_at_ms": snapshot.sampled_at_ms, name: part })).into_response()
}

#[derive(Deserialize)]
struct Since {
    /// Only the points after this (milliseconds since the epoch).
    since: Option<i64>,
}

async fn history(State(board): State<Arc<Board>>, Query(since): Query<Since>) -> Json<Value> {
    let settings = &board.settings;
    Json(json!({
        "interval_ms": settings.interval_ms,
        "history_secs": settings.history_secs,
        "points": board.history(since.since.unwrap_or(i64::MIN)),
    }))
}

async fn readyz(State(board): State<Arc<Board>>) -> Response {
    match board.latest() {
        Some(snapshot) => Json(json!({"status": "ready", "sampled_at": snapshot.sampled_at})).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not_ready", "reason": "no sample yet"}))).into_response(),
    }
}
