//! One file per endpoint.

pub mod callback;
pub mod get_shipment;
