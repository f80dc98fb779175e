//! # Layout
//!
//! The payments writer (port 7103): the only writer of the `payments` database.
//!
//! - [`settings`]: typed settings, with the provider's server key as a secret;
//! - [`startup`]: [`startup::build`] migrates, registers the event schemas and
//!   binds the router;
//! - [`signature`]: the provider's SHA-512 notification signature, checked in
//!   constant time (the sandbox signs with the same function);
//! - [`provider`]: the client of the provider's API (open, refund);
//! - [`routes`]: `notification` (the provider webhook, authenticated by its
//!   signature) and `get_payment`;
//! - [`openapi`]: the OpenAPI document, served and checked in as `openapi.json`.

pub mod openapi;
pub mod provider;
pub mod routes;
pub mod settings;
pub mod signature;
pub mod startup;
