//! What operators and load balancers use: `/healthz` (the process answers),
//! `/readyz` (its database answers), `/metrics` (Prometheus), request metrics,
//! the common layers, and serving until SIGTERM or Ctrl-C.

use std::{
    future::Future,
    sync::OnceLock,
    time::{Duration, Instant},
};

use axum::{
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// The process-wide Prometheus recorder (installed once, shared by every app
/// that a test process builds).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                // Up to a minute: a consumer working off a backlog lags by seconds or more.
                .set_buckets(&[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0])
                .expect("static buckets")
                .install_recorder()
                .expect("a metrics recorder is installed once per process")
        })
        .clone()
}

/// `/healthz`, `/readyz` and `/metrics` for a service backed by `pool`.
pub fn routes(pool: PgPool) -> Router {
    let handle = metrics_handle();
    Router::new()
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz).with_state(pool))
        .route("/metrics", get(move || std::future::ready(handle.render())))
}

async fn readyz(State(pool): State<PgPool>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), sqlx::query("select 1").execute(&pool)).await {
        Ok(Ok(_)) => Json(json!({ "status": "ready" })).into_response(),
        Ok(Err(e)) => not_ready(format!("database: {e}")),
        Err(_) => not_ready("database: no answer within 2 s".to_owned()),
    }
}

fn not_ready(reason: String) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not_ready", "reason": reason }))).into_response()
}

/// The layers every service applies: body limit, timeout, tracing, request metrics.
pub fn with_common_layers(router: Router, service: &'static str) -> Router {
    router
        .layer(middleware::from_fn(move |request, next| track_request(service, request, next)))
        .layer(TraceLayer::new_for_http())
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(30)))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
}

async fn track_request(service: &'static str, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = [("service", service.to_owned()), ("route", route), ("method", method), ("status", response.status().as_u16().to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

/// Serves `router` on `listener` until `shutdown` completes; in-flight requests finish.
/// Responses go out at once (TCP_NODELAY): a small JSON answer must not wait
/// for Nagle's algorithm and the client's delayed ACK.
pub async fn serve(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
