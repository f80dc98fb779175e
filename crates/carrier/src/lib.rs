//! The carrier as Outflow sees it, in one place for the three parts that meet
//! it: the shipping writer (its callback endpoint), the shipping consumer (it
//! requests shipments) and the carrier sandbox (it signs callbacks with the
//! same function the writer checks them with).
//!
//! - [`CarrierClient`]: the carrier's API (request a shipment, ask its status);
//! - [`signature`]: the HMAC-SHA256 callback signature over a timestamp and the
//!   exact body bytes, checked in constant time, and the freshness check that
//!   lets a receiver refuse a replayed callback.

mod client;
pub mod signature;

pub use client::{Callback, CarrierClient, Shipment, ShipmentStatus};
