//! The routes: the page, the JSON API over the latest snapshot and the history,
//! `/metrics`, `/healthz` and `/readyz` (ready once the first sample is in,
//! whatever its sources answered: the monitor's job is to report failures).
//!
//! The JSON API shows customers' orders and totals: it answers only a bearer
//! token with the admin role. The page is a static shell without data, which
//! asks for that token (`/#token=<JWT>`, kept for the browser tab) and sends it
//! with every call. `/metrics` stays open for Prometheus on loopback: it holds
//! counts, lags and latencies, no customer or order.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use metrics_exporter_prometheus::PrometheusHandle;
use outflow_service::{
    auth::{bearer_token, JwtKeys, Role},
    error::{ApiError, ApiQuery},
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::sampler::Board;

const PAGE: &str = include_str!("page.html");

pub fn router(board: Arc<Board>, handle: PrometheusHandle, keys: JwtKeys) -> Router {
    let data = Router::new()
        .route("/api/overview", get(overview))
        .route("/api/lag", get(|s: State<Arc<Board>>| section(s, "lag")))
        .route("/api/cluster", get(|s: State<Arc<Board>>| section(s, "cluster")))
        .route("/api/connectors", get(|s: State<Arc<Board>>| section(s, "connectors")))
        .route("/api/slots", get(|s: State<Arc<Board>>| section(s, "slots")))
        .route("/api/dlq", get(|s: State<Arc<Board>>| section(s, "dlq")))
        .route("/api/sagas", get(|s: State<Arc<Board>>| section(s, "sagas")))
        .route("/api/latency", get(|s: State<Arc<Board>>| section(s, "latency")))
        .route("/api/history", get(history))
        .route_layer(middleware::from_fn_with_state(keys, admins_only));
    let document = <crate::openapi::ApiDoc as utoipa::OpenApi>::openapi();
    let api = data
        .route("/", get(page))
        .route("/openapi.json", get(move || std::future::ready(Json(document.clone()))))
        .route("/readyz", get(readyz))
        .with_state(board)
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(move || std::future::ready(handle.render())));
    outflow_service::ops::with_common_layers(api, "monitor")
}

async fn admins_only(State(keys): State<JwtKeys>, request: Request, next: Next) -> Response {
    let Some(token) = bearer_token(request.headers()) else {
        return ApiError::unauthorized("missing_token", "send Authorization: Bearer <admin token> (scripts/token --sub you --role admin)").into_response();
    };
    match keys.verify(token).map(|claims| claims.role) {
        Ok(Role::Admin) => next.run(request).await,
        Ok(Role::Customer) => ApiError::forbidden("the monitor is for admins").into_response(),
        Err(refused) => refused.into_response(),
    }
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

async fn overview(State(board): State<Arc<Board>>, ApiQuery(at): ApiQuery<At>) -> Response {
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

async fn history(State(board): State<Arc<Board>>, ApiQuery(since): ApiQuery<Since>) -> Json<Value> {
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
