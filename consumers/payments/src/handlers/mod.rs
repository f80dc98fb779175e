//! One file per event type.

pub mod order_cancelled;
pub mod stock_reserved;
