//! The cost of one GPU sample cycle per backend (goal: under 1 ms of CPU per sample).
//!
//! `cargo bench -p gpu --bench sample`: the Jetson backend over the Orin fixture tree (paths
//! cached, as in the service), and NVML on this machine's GPUs when NVML opens here. On a
//! machine without NVML that case says so and measures nothing: run it on a GPU machine.

// A measuring program: it reports what it skipped on standard error.
#![allow(clippy::print_stderr)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use gpu::GpuBackend;

fn fixture(name: &str) -> probes::Roots {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata")
        .join(name);
    probes::Roots {
        rootfs: root.clone(),
        procfs: root.join("proc"),
        sysfs: root.join("sys"),
    }
}

fn sample_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("gpu_sample");
    let mut jetson = gpu::jetson::Jetson::new(&fixture("jetson-orin"));
    jetson.sample(); // discover and cache the paths, as the service's first tick does
    group.bench_function("jetson_orin_fixture", |b| {
        b.iter(|| black_box(jetson.sample()))
    });
    match gpu::nvml::Nvml::open(&probes::Roots::default()) {
        Ok(mut nvml) => {
            let devices = nvml.device_names().len();
            group.bench_function(format!("nvml_{devices}_devices"), |b| {
                b.iter(|| black_box(nvml.sample()))
            });
        }
        Err(e) => eprintln!("gpu_sample/nvml: not measured here ({})", e.reason()),
    }
    group.finish();
}

criterion_group!(benches, sample_cycle);
criterion_main!(benches);
