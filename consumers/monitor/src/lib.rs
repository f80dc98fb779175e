//! # Layout
//!
//! The monitor (port 7190): what the pipeline is doing right now, and over the
//! last minutes. It only reads.
//!
//! - [`kafka`]: per consumer group (`outflow-*`) and partition, the lag (high
//!   watermark minus committed offset); records per dead-letter topic (`*.dlq`);
//! - [`connect`]: each connector's and task's state from Connect's REST API;
//! - [`postgres`]: each replication slot's retained WAL, confirmed flush
//!   position and lag; sagas (orders) per status and the stuck ones;
//! - [`latency`]: commit-to-view percentiles from the view consumer's histogram;
//! - [`sampler`]: samples every source each interval into the latest
//!   [`model::Snapshot`] and a ring buffer of history, with trends;
//! - [`exporter`]: the snapshot as Prometheus gauges (`outflow_consumer_lag_records`, ...);
//! - [`api`]: `GET /` (the page, `page.html`), `/api/overview[?at=ms]`, `/api/lag`,
//!   `/api/connectors`, `/api/slots`, `/api/dlq`, `/api/sagas`, `/api/latency`,
//!   `/api/history?since=`, `/metrics`, `/healthz`, `/readyz`;
//! - [`settings`]: addresses, credentials and sampling knobs.
//!
//! A source that fails leaves its section as `{"error": "..."}` and the others intact.

pub mod api;
pub mod connect;
pub mod exporter;
pub mod kafka;
pub mod latency;
pub mod model;
pub mod openapi;
pub mod postgres;
pub mod sampler;
pub mod settings;

use std::future::Future;

use anyhow::Context;

/// Binds the port, starts the sampler and serves until `shutdown`.
pub async fn run(settings: settings::Settings, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let handle = exporter::install(settings.monitor.interval()).context("installing the metrics recorder")?;
    let address = format!("{}:{}", settings.http.host, settings.http.port);
    let listener = match tokio::net::TcpListener::bind(&address).await {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
            "port {} is already taken (another monitor? `ss -ltnp 'sport = :{}'` names it): stop it, or choose another port with OUTFLOW_HTTP__PORT",
            settings.http.port,
            settings.http.port
        ),
        Err(e) => return Err(e).with_context(|| format!("binding {address}")),
    };
    let mut sources = sampler::Sources::new(&settings)?;
    let board = sampler::Board::new(settings.monitor.clone());
    // The first sample before serving, so the monitor is ready once it answers
    // (each source is bounded by its timeout; connections wait in the backlog).
    board.publish(sources.sample().await);
    tokio::spawn(sampler::run(sources, board.clone(), handle.clone()));
    tracing::info!(address = %listener.local_addr()?, "monitor listening");
    let keys = outflow_service::auth::JwtKeys::from_settings(&settings.jwt_secret, &settings.jwt).await.context("the JWT keys")?;
    outflow_service::ops::serve(listener, api::router(board, handle, keys), &settings.http.limits, shutdown).await.context("serving HTTP")
}
