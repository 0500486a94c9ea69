//! The service as its users meet it: the real binary on a loopback port, spoken to over
//! real HTTP. One integration-test binary; modules by theme.

// Test code: a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod harness;

mod api;
mod cli;
mod faults;
mod fuzz;
mod hangs;
mod history;
mod hostile;
mod isolation;
mod numbers;
mod openapi;
mod page;
mod persistence;
mod pgproxy;
mod prometheus;
mod rules;
mod settings;
mod sse;
mod stream;
mod tls;
mod webconfig;
