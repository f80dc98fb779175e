//! One file per endpoint.

pub mod get_payment;
pub mod notification;
