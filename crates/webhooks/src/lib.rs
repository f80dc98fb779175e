//! # Layout
//!
//! What the notifications writer and the notifications consumer share about
//! customers' webhooks:
//!
//! - [`target`]: which URLs a webhook may have, and a DNS resolver that will
//!   not connect to a private address (a registered URL must not reach into
//!   the shop's own network);
//! - [`signing`]: each webhook's secret, and the headers that sign a delivery
//!   ([Standard Webhooks](https://www.standardwebhooks.com/): `webhook-id` is
//!   the event id, `webhook-timestamp` the send time, `webhook-signature`
//!   `v1,<base64 HMAC-SHA256 of id.timestamp.body>`), so that a receiver can
//!   verify a delivery with that specification's libraries, refuse one whose
//!   timestamp is old (a replay), and drop a repeat by its id.

pub mod signing;
pub mod target;
