//! The migrations are embedded at compile time (`refinery::embed_migrations!`), which
//! cargo does not know reads `migrations/`: without this a new migration file would not
//! rebuild the crate, and a stale binary would run without it.

// A build script speaks to cargo on standard output.
#![allow(clippy::print_stdout)]

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
