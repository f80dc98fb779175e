//! # Layout
//!
//! The payments writer (port 7103): the only writer of the `payments` database.
//!
//! - [`settings`]: typed settings, with the provider's server key as a secret;
//! - [`startup`]: [`startup::build`] migrates, registers the event schemas and
//!   binds the router;
//! - [`signature`]: the provider's SHA-512 notification signature, checked in
//!   constant time (the sandbox signs with the same function);
//! - [`provider`]: the client of the provider's API (open, status, cancel, refund);
//! - [`events`]: the `PaymentFailed` of a payment given up, built by both consumers' steps;
//! - [`status`]: what a provider status means, and which status codes go with it;
//! - [`refund`]: refunds recorded first and finished after the provider call,
//!   shared with the payments consumer;
//! - [`routes`]: `notification` (the provider webhook, authenticated by its
//!   signature and confirmed with the provider) and `get_payment`;
//! - [`openapi`]: the OpenAPI document, served and checked in as `openapi.json`.
//!
//! The webhook's tests run against a provider sandbox of their own, in
//! `writers/provider-sandbox/tests/webhook.rs`.

pub mod events;
pub mod openapi;
pub mod provider;
pub mod refund;
pub mod routes;
pub mod settings;
pub mod signature;
pub mod startup;
pub mod status;
