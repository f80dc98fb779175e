//! # Layout
//!
//! What every Outflow HTTP service shares, so that each service crate holds only
//! its routes and its domain:
//!
//! - [`app`]: the migrated pool, outbox and keys of a service, and its server;
//! - [`environment`]: `OUTFLOW_ENV`, and what production refuses;
//! - [`settings`]: typed settings loaded in layers (defaults, file, `OUTFLOW_`
//!   environment), secrets wrapped so they never print;
//! - [`telemetry`]: tracing subscriber (JSON logs with `OUTFLOW_LOG_FORMAT=json`);
//! - [`auth`]: JWT bearer tokens with a `role` claim (HS256, and RS256/ES256
//!   from an identity provider's key set);
//! - [`edge`]: rate limits per customer and per client address, connection
//!   cap and header deadline;
//! - [`error`]: the JSON error body `{"error": {"code", "message"}}` and the
//!   [`error::ApiJson`] extractor that turns every bad body into one;
//! - [`openapi`]: the bearer security scheme and the check-in of OpenAPI files;
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, the request metrics layer, and
//!   the server loop with graceful shutdown;
//! - `views` (feature `mongo`): the read views' revision field, which the view
//!   consumer writes and the query service watches.

pub mod app;
pub mod auth;
pub mod edge;
pub mod environment;
pub mod error;
pub mod metrics_catalog;
pub mod openapi;
pub mod ops;
pub mod settings;
pub mod telemetry;
#[cfg(feature = "mongo")]
pub mod views;
