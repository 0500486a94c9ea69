//! Encoding cost of one tick: what the sampler pays once per sample so that handlers only
//! clone bytes.
//!
//! - `bodies_of/N`: `Bodies::of`, which encodes both the `/metrics` and the `/gpu` bodies,
//!   for a snapshot with N GPUs (0, 1, 8).
//! - `encoder_next_tick/N`: what the engine's `Encoder` does on a tick whose GPU readings
//!   are those of the tick before: the `/metrics` body, the `/gpu` one reused, and both
//!   Prometheus bodies.
//! - `prometheus_bodies/N`: the text format and OpenMetrics bodies alone (issue 11: at
//!   most 20 µs with 8 GPUs), by the `prometheus-client` crate.
//!
//! The snapshot is built by hand with realistic values (a 2-core VM with a 500 GB disk,
//! NVML-like devices), so the figures do not depend on this machine's sensors.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use sampler::Encode;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use probes::{DiskUsage, MemoryUsage, Sample, Unavailable};

fn device(index: u32) -> gpu::Device {
    gpu::Device {
        index,
        name: Some("NVIDIA H100 80GB HBM3".to_owned()),
        uuid: Some(format!("GPU-6f1c2a3b-4d5e-6f70-8192-a3b4c5d6e7{index:02x}")),
        utilization_percent: Some(37.0 + f64::from(index) * 3.3),
        memory_used_bytes: Some(12_884_901_888 + u64::from(index) * 1_073_741_824),
        memory_total_bytes: Some(85_520_809_984),
        celsius: Some(41.0 + f64::from(index)),
        power_watts: Some(118.431 + f64::from(index)),
        power_limit_watts: Some(700.0),
        ..Default::default()
    }
}

fn gpu_sample(devices: u32) -> gpu::GpuSample {
    if devices == 0 {
        gpu::GpuSample::unavailable(
            gpu::BackendKind::None,
            "no GPU backend on this machine (no NVML library, not a Jetson)",
        )
    } else {
        gpu::GpuSample {
            backend: gpu::BackendKind::Nvml,
            reason: None,
            devices: (0..devices).map(device).collect(),
            system: gpu::SystemInfo::default(),
            board_power_watts: None,
        }
    }
}

fn snapshot(devices: u32) -> sampler::Snapshot {
    let now = SystemTime::now();
    let sample = Sample {
        taken_at: now,
        cpu_percent: Ok(12.345_678),
        cpu_times: Some(probes::CpuTimes {
            user: 27_216_700,
            nice: 1_200,
            system: 11_450_500,
            idle: 149_129_300,
            iowait: 18_221,
            softirq: 26_644,
            steal: 7_523,
            ..Default::default()
        }),
        memory: Ok(MemoryUsage {
            total_bytes: 8_148_340_736,
            available_bytes: 5_905_010_688,
        }),
        disk: Ok(DiskUsage::from_blocks(
            4096,
            122_030_592,
            95_403_264,
            89_161_728,
        )),
        cpu_celsius: Err(Unavailable::absent(
            "no CPU temperature sensor under /sys/class/hwmon or /sys/class/thermal",
        )),
    };
    let family = sampler::FamilyState {
        took: Duration::from_micros(40),
        error: None,
        last_ok: Some(now),
        errors: 0,
    };
    sampler::Snapshot {
        seq: 1234,
        sample,
        gpu: gpu_sample(devices),
        families: sampler::Families {
            cpu: family.clone(),
            memory: family.clone(),
            disk: family.clone(),
            thermal: family.clone(),
            gpu: family,
        },
    }
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for devices in [0u32, 1, 8] {
        let snap = snapshot(devices);
        group.bench_with_input(BenchmarkId::new("bodies_of", devices), &snap, |b, snap| {
            b.iter(|| black_box(api::Bodies::of(black_box(snap))))
        });
        let previous = sampler::Published {
            snapshot: snap.clone(),
            taken: Instant::now(),
            due: None,
            last_success: None,
            bodies: api::Bodies::of(&snap),
        };
        group.bench_with_input(
            BenchmarkId::new("prometheus_bodies", devices),
            &snap,
            |b, snap| {
                let mut encoder = api::Encoder::default();
                b.iter(|| black_box(encoder.encode_prometheus(black_box(snap))))
            },
        );
        group.bench_with_input(
            BenchmarkId::new("encoder_next_tick", devices),
            &snap,
            |b, snap| {
                let mut encoder = api::Encoder::default();
                // The snapshot is made (and dropped) outside the measurement.
                b.iter_batched_ref(
                    || snap.clone(),
                    |s| black_box(encoder.encode(s, Some(&previous))),
                    BatchSize::SmallInput,
                );
            },
        );
    }
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
