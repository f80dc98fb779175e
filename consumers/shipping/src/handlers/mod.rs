//! One file per reaction.

pub mod order_confirmed;
