//! # Layout
//!
//! The payments writer (port 7103): the only writer of the `payments` database.
//!
//! - [`settings`]: typed settings, with the provider's server key as a secret;
//! - [`startup`]: the writer's routes, built on `outflow_service::app::Writer`
//!   (migrate, register the event schemas, bind);
//! - [`state`]: what the handlers receive;
//! - [`events`]: the `PaymentFailed` of a payment given up, built by both consumers' steps;
//! - [`status`]: what a provider status means, and which status codes go with it;
//! - [`refund`]: refunds recorded first and finished after the provider call,
//!   shared with the payments consumer;
//! - [`routes`]: `notification` (the provider webhook, authenticated by its
//!   signature and confirmed with the provider) and `get_payment`;
//! - [`openapi`]: the OpenAPI document, served and checked in as `openapi.json`.
//!
//! The provider's client and its signature are `outflow-provider`
//! (`crates/provider`). The webhook's tests run against a provider sandbox of
//! their own, in `tests/tests/webhook.rs`.

pub mod events;
pub mod openapi;
pub mod refund;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod status;
