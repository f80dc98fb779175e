//! # Layout
//!
//! The shipping writer (port 7104): the only writer of the `shipping` database
//! besides the shipping consumer's steps.
//!
//! - [`settings`]: typed settings, with the carrier's key as a secret;
//! - [`startup`]: the writer's routes, built on `outflow_service::app::Writer`
//!   (migrate, register the event schemas, bind);
//! - [`state`]: what the handlers receive;
//! - [`routes`]: `callback` (the carrier's callback, authenticated by its
//!   signature and confirmed with the carrier) and `get_shipment`;
//! - [`openapi`]: the OpenAPI document, served and checked in as `openapi.json`.
//!
//! The carrier's client and its signature are `outflow-carrier`
//! (`crates/carrier`); the carrier sandbox is `writers/carrier-sandbox`.

pub mod openapi;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
