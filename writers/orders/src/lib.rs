//! # Layout
//!
//! The orders writer (port 7101): the only writer of the `orders` database.
//!
//! - [`settings`]: typed settings (defaults here, `OUTFLOW_*` environment);
//! - [`startup`]: the writer's routes, built on `outflow_service::app::Writer`
//!   (migrate, register the event schemas, bind);
//! - [`state`]: what the handlers receive;
//! - [`routes`]: one file per endpoint (`place_order`, `get_order`,
//!   `cancel_order`), each with its own error enum;
//! - [`domain`]: order status and the validation of a placement;
//! - [`openapi`]: the OpenAPI document, served at `/openapi.json` and checked in
//!   as `openapi.json`.
//!
//! Every change commits the business rows and its outbox event in one
//! transaction (`outflow-outbox`); nothing here talks to Kafka.

pub mod domain;
pub mod openapi;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
