//! The sampling engine: what turns probes into published snapshots and closed windows,
//! on a schedule, with a deadline on every read.
//!
//! Owns: the [`Engine`] (one host's probes and GPU backend, each read on the probe pool
//! with its own deadline, a panic or a hang costing that family's field for one tick), the
//! schedule ([`start`]: a tick every live interval on a fixed grid, one wake-up per idle
//! tick, the snapshot encoded once by an [`Encode`] and published through a `watch`
//! channel), the types both the API and the store need: the [`Snapshot`] it publishes and
//! the [`Window`] it closes, the [`WindowSink`] windows go to and the [`WriterStatus`]
//! the store's writer reports back ([`DatabaseView`] reads it live for `/health`), and GPU
//! discovery under a deadline ([`discover_gpu`]).
//!
//! Does not own: HTTP, SQL, configuration parsing. It uses `tokio::sync` channels to hand
//! values to async readers, but runs no runtime: its threads are plain threads, so the
//! self-healing agent can use [`Engine::sample`] from synchronous code
//! (`examples/agent.rs`).

mod discover;
mod engine;
mod history;
mod persist;
mod pool;
mod ring;
mod schedule;
mod snapshot;
mod window;

pub use discover::{discover_gpu, discover_with};
pub use engine::{Engine, Probes};
pub use history::{Archive, ArchiveFuture, Bucket, Columns, Grid, Series};
pub use persist::{DatabaseView, LostWindows, Persist, WindowSink, WriterState, WriterStatus};
pub use ring::{CatchUp, LIVE_SPAN, Resume, Ring, RingStats, WINDOW_SPAN, refill, window_start};
pub use schedule::{Latest, Outputs, Running, first_tick_delay, start};
pub use snapshot::{Encode, Families, FamilyState, NoBodies, Published, Snapshot};
pub use window::{DiskRow, Stat, Window, WindowBuilder, from_unix_ms, unix_ms, window_start_ms};
