//! One sampling cycle against its floor, on this machine's real `/proc`, `/sys` and `/`.
//!
//! Group `sample_cycle`, measured in the same run so the ratios hold on a noisy machine:
//! - `raw_reads`: the floor. `/proc/stat` and `/proc/meminfo` read into a reused `String`
//!   and one `statvfs("/")`, nothing parsed.
//! - `probes_parse`: the same reads plus the crate's parsers (`cpu::parse_stat`,
//!   `memory::parse_meminfo`) and `disk::usage` (statvfs plus `df` arithmetic).
//! - `host_probes_sample`: `HostProbes::sample()`, the full cycle the agent runs: fresh
//!   `String`s, error types, CPU delta and the thermal probe (cached sensor paths when the
//!   host has sensors; a rediscovery per read when it has none, as in most VMs).
//!
//! Group `thermal`: the thermal probe alone over the `intel-desktop` fixture tree (cached
//! paths, and a fresh probe that discovers every time) and over the real `/sys`.
//!
//! The goal: `host_probes_sample` ≤ 2 × `raw_reads`.

use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use probes::{HostProbes, Probe, Roots, Thermal, cpu, disk, memory};

/// Reads `path` into `buf`, keeping its allocation.
fn read_into(path: &Path, buf: &mut String) {
    buf.clear();
    let mut file = std::fs::File::open(path).expect("procfs file opens");
    file.read_to_string(buf).expect("procfs file reads");
}

fn sample_cycle(c: &mut Criterion) {
    let stat = Path::new("/proc/stat");
    let meminfo = Path::new("/proc/meminfo");
    let root = Path::new("/");
    let mut group = c.benchmark_group("sample_cycle");

    let mut buf = String::with_capacity(16 * 1024);
    group.bench_function("raw_reads", |b| {
        b.iter(|| {
            read_into(stat, &mut buf);
            black_box(buf.len());
            read_into(meminfo, &mut buf);
            black_box(buf.len());
            black_box(rustix::fs::statvfs(black_box(root)).expect("statvfs /"));
        });
    });

    group.bench_function("probes_parse", |b| {
        b.iter(|| {
            read_into(stat, &mut buf);
            black_box(cpu::parse_stat(&buf).expect("/proc/stat parses"));
            read_into(meminfo, &mut buf);
            black_box(memory::parse_meminfo(&buf).expect("/proc/meminfo parses"));
            black_box(disk::usage(black_box(root)).expect("statvfs /"));
        });
    });

    let mut host = HostProbes::new(&Roots::default(), Path::new("/"));
    // The first read discovers the thermal sensors (and caches them where there are any).
    black_box(host.sample());
    group.bench_function("host_probes_sample", |b| {
        b.iter(|| black_box(host.sample()));
    });
    group.finish();
}

fn thermal(c: &mut Criterion) {
    let fixture: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/intel-desktop/sys");
    let mut group = c.benchmark_group("thermal");

    let mut cached = Thermal::new(&fixture);
    assert!(
        cached.read().is_ok(),
        "the intel-desktop fixture has a package sensor"
    );
    group.bench_function("fixture_cached", |b| {
        b.iter(|| black_box(cached.read()));
    });

    group.bench_function("fixture_discover", |b| {
        b.iter(|| black_box(Thermal::new(black_box(&fixture)).read()));
    });

    // Whatever this machine has: cached sensors on bare metal, a full (empty) search per
    // read in a VM without any.
    let mut real = Thermal::new(Path::new("/sys"));
    black_box(real.read().ok());
    group.bench_function("real_sys", |b| {
        b.iter(|| black_box(real.read()));
    });
    group.finish();
}

criterion_group!(benches, sample_cycle, thermal);
criterion_main!(benches);
