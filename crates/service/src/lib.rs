//! # Layout
//!
//! What every Outflow HTTP service shares, so that each service crate holds only
//! its routes and its domain:
//!
//! - [`app`]: the migrated pool, outbox and keys of a service, and its server;
//! - [`settings`]: typed settings loaded in layers (defaults, file, `OUTFLOW_`
//!   environment), secrets wrapped so they never print;
//! - [`telemetry`]: tracing subscriber (JSON logs with `OUTFLOW_LOG_FORMAT=json`);
//! - [`auth`]: HS256 JWT bearer tokens with a `role` claim;
//! - [`error`]: the JSON error body `{"error": {"code", "message"}}` and the
//!   [`error::ApiJson`] extractor that turns every bad body into one;
//! - [`openapi`]: the bearer security scheme and the check-in of OpenAPI files;
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, the request metrics layer, and
//!   the server loop with graceful shutdown.

pub mod app;
pub mod auth;
pub mod error;
pub mod openapi;
pub mod ops;
pub mod settings;
pub mod telemetry;
