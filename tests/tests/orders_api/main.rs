//! The orders writer against the real stack: a fresh database per test, the
//! app on port 0, the WAL read back through a test_decoding slot.

mod helpers;
mod place_order;
mod read_and_cancel;
