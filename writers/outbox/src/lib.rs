//! # Layout
//!
//! The outbox library of the write services: appending an event to the `outbox`
//! table inside the caller's sqlx transaction, Avro-encoded through the schema
//! registry. Its behaviour arrives with the write side (issue 3); until then the
//! crate holds only this contract, so that the workspace layout is in place.
