//! The payment provider as Outflow sees it, in one place for the three parts
//! that meet it: the payments writer (its webhook), the payments consumer (it
//! opens, cancels and refunds transactions) and the provider sandbox (it
//! signs notifications with the same function the webhook checks them with).
//!
//! - [`ProviderClient`]: the provider's API (open, status, cancel, refund);
//! - [`signature`]: the SHA-512 notification signature, checked in constant time.

mod client;
pub mod signature;

pub use client::{OpenedTransaction, ProviderClient, TransactionStatus};
