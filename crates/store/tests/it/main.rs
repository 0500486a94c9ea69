//! The store against a real PostgreSQL: each test its own database (they run in parallel),
//! on the server `cargo xtask test` provides (`METRICS_TEST_POSTGRES`); the outage tests
//! start and stop a server of their own.

// Test code: a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod support;

mod compact;
mod history;
mod schema;
mod writer;
