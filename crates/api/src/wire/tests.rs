use std::time::{Duration, SystemTime, UNIX_EPOCH};

use probes::{DiskUsage, MemoryUsage, Sample, Unavailable};

use super::*;
use crate::Snapshot;

fn snapshot(sample: Sample) -> Snapshot {
    Snapshot {
        seq: 1,
        sample,
        gpu: gpu::GpuSample::unavailable(gpu::BackendKind::None, "no GPU"),
        probes: Vec::new(),
    }
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn timestamps_are_utc_with_z_and_milliseconds() {
    let t = UNIX_EPOCH + Duration::from_millis(1_705_314_600_250);
    assert_eq!(rfc3339(t), "2024-01-15T10:30:00.250Z");
}

#[test]
fn metrics_have_the_seed_shape_with_one_decimal() {
    let s = snapshot(Sample {
        taken_at: UNIX_EPOCH + Duration::from_secs(1_705_314_600),
        cpu_percent: Ok(45.234),
        memory: Ok(MemoryUsage {
            total_bytes: 1000,
            available_bytes: 372,
        }),
        disk: Ok(DiskUsage {
            total_bytes: 536870912000,
            used_bytes: 107374182400,
            free_bytes: 429496729600,
        }),
        cpu_celsius: Ok(55.04),
    });
    let v = json(&encode_metrics(&s));
    assert_eq!(
        v,
        serde_json::json!({
            "cpu": 45.2, "ram": 62.8, "gpu": null, "temperature": 55.0,
            "disk": {"used": 107374182400u64, "free": 429496729600u64, "total": 536870912000u64, "percent": 20.0},
            "timestamp": "2024-01-15T10:30:00.000Z"
        })
    );
}

#[test]
fn unknown_values_are_null_and_disk_stays_an_object() {
    let gone = || Unavailable::new("gone");
    let s = snapshot(Sample {
        taken_at: SystemTime::now(),
        cpu_percent: Err(gone()),
        memory: Err(gone()),
        disk: Err(gone()),
        cpu_celsius: Err(Unavailable::absent("no sensor")),
    });
    let v = json(&encode_metrics(&s));
    for key in ["cpu", "ram", "gpu", "temperature"] {
        assert!(v[key].is_null(), "{key}: {v}");
    }
    assert_eq!(
        v["disk"],
        serde_json::json!({"used": null, "free": null, "total": null, "percent": null})
    );
}

#[test]
fn temperature_falls_back_to_the_gpu() {
    let mut s = snapshot(Sample {
        taken_at: SystemTime::now(),
        cpu_percent: Ok(1.0),
        memory: Ok(MemoryUsage {
            total_bytes: 1,
            available_bytes: 1,
        }),
        disk: Ok(DiskUsage {
            total_bytes: 1,
            used_bytes: 0,
            free_bytes: 1,
        }),
        cpu_celsius: Err(Unavailable::absent("no sensor")),
    });
    s.gpu = gpu::GpuSample {
        backend: gpu::BackendKind::Nvml,
        reason: None,
        devices: vec![gpu::Device {
            celsius: Some(61.0),
            utilization_percent: Some(30.5),
            ..Default::default()
        }],
        system: gpu::SystemInfo::default(),
        board_power_watts: None,
    };
    let v = json(&encode_metrics(&s));
    assert_eq!(v["temperature"], 61.0);
    assert_eq!(v["gpu"], 30.5);
}

#[test]
fn no_gpu_answers_available_false_with_a_reason() {
    let v = json(&encode_gpu(&gpu::GpuSample::unavailable(
        gpu::BackendKind::None,
        "no driver",
    )));
    assert_eq!(v["available"], false);
    assert_eq!(v["backend"], "none");
    assert_eq!(v["reason"], "no driver");
    assert_eq!(v["gpus"], serde_json::json!([]));
    for key in [
        "utilization",
        "memory_used",
        "memory_total",
        "temperature",
        "power_draw",
    ] {
        assert!(v[key].is_null(), "{key}");
    }
}
