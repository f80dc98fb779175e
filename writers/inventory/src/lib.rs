//! # Layout
//!
//! The inventory writer (port 7102): the only writer of the `inventory` database.
//!
//! - [`settings`]: typed settings (defaults here, `OUTFLOW_*` environment);
//! - [`startup`]: the writer's routes, built on `outflow_service::app::Writer`
//!   (migrate, register the event schemas, bind);
//! - [`state`]: what the handlers receive;
//! - [`routes`]: `create_product` and `restock` (admin), `get_product`;
//! - [`product`]: what a valid product is, and the product as the API shows it;
//! - [`openapi`]: the OpenAPI document, served and checked in as `openapi.json`.
//!
//! Stock changes commit the product row and `ProductCreated` / `StockAdjusted`
//! in one transaction; reservations arrive with the consumers.

pub mod openapi;
pub mod product;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
