//! What operators and load balancers use: `/healthz` (the process answers),
//! `/readyz` (its database answers), `/metrics` (Prometheus), request metrics,
//! the common layers, and serving until SIGTERM or Ctrl-C.

use std::{
    future::Future,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State},
    http::{Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::Semaphore};
use tower::Service;

use crate::edge::EdgeLimits;
use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// The process-wide Prometheus recorder (installed once, shared by every app
/// that a test process builds).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                // Up to a minute: a consumer working off a backlog lags by seconds or more.
                .set_buckets(&[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0])
                .expect("static buckets")
                .install_recorder()
                .expect("a metrics recorder is installed once per process");
            crate::metrics_catalog::describe();
            handle
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
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(30)))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
}

/// A request's span, named after its route (`POST /v1/orders`), continuing the
/// trace of the caller's `traceparent` header when it sends one.
fn request_span(request: &Request) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str());
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{} {route}", request.method()),
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = route,
    );
    let traceparent = request.headers().get("traceparent").and_then(|v| v.to_str().ok());
    let _ = span.set_parent(outflow_outbox::TraceContext::remote_context(traceparent));
    span
}

async fn track_request(service: &'static str, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    // Label values stay few: unknown paths are `unmatched` above, and so are
    // methods outside the standard ones (a client may send any token).
    let method = match *request.method() {
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE | Method::HEAD | Method::OPTIONS => request.method().to_string(),
        _ => "other".to_owned(),
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = [("service", service.to_owned()), ("route", route), ("method", method), ("status", response.status().as_u16().to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

/// Serves `router` on `listener` until `shutdown` completes; in-flight requests
/// finish. Each request carries its client's address (`ConnectInfo`, for the
/// per-client rate limit). At most `limits.max_connections` connections are
/// open (one more is closed at once, `http_connections_refused_total`), and a
/// connection whose request headers do not arrive within
/// `limits.header_read_timeout_ms` is closed, so that slow or idle sockets
/// cannot hold the server. Responses go out at once (TCP_NODELAY): a small JSON
/// answer must not wait for Nagle's algorithm and the client's delayed ACK.
pub async fn serve(listener: TcpListener, router: Router, limits: &EdgeLimits, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    use hyper_util::{
        rt::{TokioExecutor, TokioIo, TokioTimer},
        server::{conn::auto, graceful::GracefulShutdown},
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: the listener itself is fine.
                Err(e) => { tracing::warn!(error = %e, "accepting a connection failed"); tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("http_connections_refused_total").increment(1);
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().call(request)
        });
        let connection = graceful.watch(builder.serve_connection_with_upgrades(TokioIo::new(tcp), service).into_owned());
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    // A client that stopped reading holds its response (a stream above all)
    // however willing the server is to end it.
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open {DRAIN:?} after the shutdown signal; closing them");
    }
    Ok(())
}

/// How long in-flight requests may take to finish once the service stops.
const DRAIN: Duration = Duration::from_secs(20);

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
