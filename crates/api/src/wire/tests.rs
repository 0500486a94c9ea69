use std::time::{Duration, SystemTime, UNIX_EPOCH};

use probes::{DiskUsage, MemoryUsage, Sample, Unavailable};

use super::*;
use sampler::Snapshot;

fn snapshot(sample: Sample) -> Snapshot {
    Snapshot {
        seq: 1,
        sample,
        gpu: gpu::GpuSample::unavailable(gpu::BackendKind::None, "no GPU"),
        families: sampler::Families::default(),
    }
}

fn encode_metrics(s: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    write_metrics(s, &mut out);
    out
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn timestamps_are_utc_with_z_and_milliseconds() {
    let t = UNIX_EPOCH + Duration::from_millis(1_705_314_600_250);
    assert_eq!(rfc3339(t), "2024-01-15T10:30:00.250Z");
    assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    // Every field zero-padded; the fraction truncated to milliseconds, not rounded.
    let t = UNIX_EPOCH + Duration::from_nanos(1_772_683_506_007_999_999);
    assert_eq!(rfc3339(t), "2026-03-05T04:05:06.007Z");
    let t = UNIX_EPOCH + Duration::from_millis(253_402_300_799_999);
    assert_eq!(rfc3339(t), "9999-12-31T23:59:59.999Z");
}

#[test]
fn metrics_have_the_seed_shape_with_one_decimal() {
    let s = snapshot(Sample {
        taken_at: UNIX_EPOCH + Duration::from_secs(1_705_314_600),
        cpu_percent: Ok(45.234),
        cpu_times: None,
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
    let body = encode_metrics(&s);
    // Byte for byte: the seed's key order, and floats that stay floats (`55.0`, not `55`).
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        r#"{"cpu":45.2,"ram":62.8,"gpu":null,"temperature":55.0,"disk":{"used":107374182400,"free":429496729600,"total":536870912000,"percent":20.0},"timestamp":"2024-01-15T10:30:00.000Z"}"#
    );
    let v = json(&body);
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
        cpu_times: None,
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
fn temperature_falls_back_to_the_gpu_only_without_a_cpu_sensor() {
    let mut s = snapshot(Sample {
        taken_at: SystemTime::now(),
        cpu_percent: Ok(1.0),
        cpu_times: None,
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
    // A CPU sensor that is there but fails: `null` (its reason is in /health), not the GPU.
    s.sample.cpu_celsius = Err(Unavailable::new("timed out after 2.0 s"));
    let v = json(&encode_metrics(&s));
    assert!(v["temperature"].is_null(), "{v}");
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

#[test]
fn the_gpu_body_is_reused_only_while_the_gpu_readings_stay_the_same() {
    use sampler::{Encode, Published};
    let sample = || Sample {
        taken_at: UNIX_EPOCH,
        cpu_percent: Ok(1.0),
        cpu_times: None,
        memory: Err(Unavailable::new("gone")),
        disk: Err(Unavailable::new("gone")),
        cpu_celsius: Err(Unavailable::new("gone")),
    };
    let publish = |snapshot: Snapshot, previous: Option<&Published<crate::Bodies>>| {
        let bodies = crate::Encoder::default().encode(&snapshot, previous);
        Published {
            snapshot,
            taken: std::time::Instant::now(),
            due: None,
            last_success: None,
            bodies,
        }
    };
    let first = publish(snapshot(sample()), None);
    let same = publish(snapshot(sample()), Some(&first));
    assert_eq!(same.bodies.gpu(), first.bodies.gpu());
    assert_eq!(
        same.bodies.gpu().as_ptr(),
        first.bodies.gpu().as_ptr(),
        "not encoded again"
    );

    let mut other = snapshot(sample());
    other.gpu = gpu::GpuSample::unavailable(gpu::BackendKind::Nvml, "the driver went away");
    let changed = publish(other, Some(&same));
    assert_eq!(
        json(changed.bodies.gpu())["reason"],
        "the driver went away",
        "a different reading is encoded afresh"
    );
}
