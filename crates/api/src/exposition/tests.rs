use std::time::{Duration, UNIX_EPOCH};

use probes::{CpuTimes, DiskUsage, MemoryUsage, Sample, Unavailable};
use sampler::{Families, FamilyState};

use super::*;

fn healthy() -> FamilyState {
    FamilyState {
        took: Duration::from_micros(250),
        error: None,
        last_ok: Some(UNIX_EPOCH),
        errors: 0,
    }
}

fn device(index: u32) -> gpu::Device {
    gpu::Device {
        index,
        name: Some("NVIDIA H100 80GB HBM3".into()),
        uuid: Some(format!("GPU-5a7e6f1c-0000-4000-8000-00000000000{index}")),
        utilization_percent: Some(37.5),
        memory_used_bytes: Some(12_884_901_888),
        memory_total_bytes: Some(85_520_809_984),
        celsius: Some(41.0),
        power_watts: Some(118.431),
        power_limit_watts: Some(700.0),
        ..Default::default()
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        seq: 42,
        sample: Sample {
            taken_at: UNIX_EPOCH + Duration::from_millis(1_796_179_642_132),
            cpu_percent: Ok(12.345),
            cpu_times: Some(CpuTimes {
                user: 272_167,
                system: 114_505,
                idle: 1_491_293,
                steal: 7_523,
                guest: 1_000,
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
            cpu_celsius: Ok(55.25),
        },
        gpu: gpu::GpuSample {
            backend: gpu::BackendKind::Nvml,
            reason: None,
            devices: vec![device(0), device(1)],
            system: gpu::SystemInfo::default(),
            board_power_watts: None,
        },
        families: Families {
            cpu: healthy(),
            memory: healthy(),
            disk: healthy(),
            thermal: healthy(),
            gpu: healthy(),
        },
    }
}

fn mount() -> Mount {
    Mount {
        mountpoint: "/".into(),
        device: "/dev/nvme0n1p2".into(),
        fstype: "ext4".into(),
    }
}

fn bodies(s: &Snapshot) -> (String, String) {
    let mut e = Exposition::new(Sources {
        filesystem: mount(),
        ..Sources::default()
    });
    let (text, om) = e.encode(s);
    (
        String::from_utf8(text.to_vec()).unwrap(),
        String::from_utf8(om.to_vec()).unwrap(),
    )
}

/// The value of the one sample line that starts with `series ` (name and labels).
fn value(body: &str, series: &str) -> Option<f64> {
    let mut found = body
        .lines()
        .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse::<f64>().unwrap());
    let v = found.next();
    assert!(found.next().is_none(), "{series} appears twice");
    v
}

#[test]
fn every_family_of_the_spec_is_there_with_its_value() {
    let s = snapshot();
    let (text, om) = bodies(&s);
    for body in [&text, &om] {
        let fs = r#"{mountpoint="/",device="/dev/nvme0n1p2",fstype="ext4"}"#;
        let gpu1 = r#"{gpu="1",uuid="GPU-5a7e6f1c-0000-4000-8000-000000000001",name="NVIDIA H100 80GB HBM3"}"#;
        for (series, want) in [
            ("metrics_collector_cpu_usage_ratio".to_owned(), 0.12345),
            (
                r#"metrics_collector_cpu_seconds_total{mode="user"}"#.into(),
                2721.67,
            ),
            (
                r#"metrics_collector_cpu_seconds_total{mode="steal"}"#.into(),
                75.23,
            ),
            (
                r#"metrics_collector_cpu_seconds_total{mode="idle"}"#.into(),
                14912.93,
            ),
            (
                r#"metrics_collector_cpu_seconds_total{mode="irq"}"#.into(),
                0.0,
            ),
            (
                "metrics_collector_memory_total_bytes".into(),
                8_148_340_736.0,
            ),
            (
                "metrics_collector_memory_available_bytes".into(),
                5_905_010_688.0,
            ),
            (
                "metrics_collector_memory_usage_ratio".into(),
                (8_148_340_736.0 - 5_905_010_688.0) / 8_148_340_736.0,
            ),
            (
                format!("metrics_collector_filesystem_size_bytes{fs}"),
                122_030_592.0 * 4096.0,
            ),
            (
                format!("metrics_collector_filesystem_free_bytes{fs}"),
                95_403_264.0 * 4096.0,
            ),
            (
                format!("metrics_collector_filesystem_avail_bytes{fs}"),
                89_161_728.0 * 4096.0,
            ),
            (
                format!("metrics_collector_filesystem_usage_ratio{fs}"),
                (122_030_592.0 - 95_403_264.0) / (122_030_592.0 - 95_403_264.0 + 89_161_728.0),
            ),
            ("metrics_collector_temperature_celsius".into(), 55.25),
            (
                format!("metrics_collector_gpu_utilization_ratio{gpu1}"),
                0.375,
            ),
            (
                format!("metrics_collector_gpu_memory_used_bytes{gpu1}"),
                12_884_901_888.0,
            ),
            (
                format!("metrics_collector_gpu_memory_total_bytes{gpu1}"),
                85_520_809_984.0,
            ),
            (
                format!("metrics_collector_gpu_temperature_celsius{gpu1}"),
                41.0,
            ),
            (format!("metrics_collector_gpu_power_watts{gpu1}"), 118.431),
            (
                format!("metrics_collector_gpu_power_limit_watts{gpu1}"),
                700.0,
            ),
            (
                format!(
                    r#"metrics_collector_build_info{{version="{}"}}"#,
                    env!("CARGO_PKG_VERSION")
                ),
                1.0,
            ),
            (
                "metrics_collector_last_sample_timestamp_seconds".into(),
                1_796_179_642.132,
            ),
            ("metrics_collector_samples_total".into(), 42.0),
            (r#"metrics_collector_probe_up{probe="thermal"}"#.into(), 1.0),
            (
                r#"metrics_collector_probe_duration_seconds{probe="gpu"}"#.into(),
                0.00025,
            ),
            (
                r#"metrics_collector_probe_errors_total{probe="disk"}"#.into(),
                0.0,
            ),
        ] {
            let got = value(body, &series).unwrap_or_else(|| panic!("no {series} in\n{body}"));
            assert!(
                (got - want).abs() <= want.abs() * 1e-12,
                "{series}: {got} != {want}"
            );
        }
        // Nothing of a database or of streams on a server that has neither.
        assert!(!body.contains("database_up"), "{body}");
        assert!(!body.contains("metrics_collector_streams"), "{body}");
        // Every family has its HELP and TYPE; no sample has a timestamp or a host label.
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            let after_labels = line.rsplit_once('}').map_or(line, |(_, rest)| rest);
            let fields = after_labels.split_whitespace().count();
            let want = if line.contains('}') { 1 } else { 2 };
            assert_eq!(fields, want, "a timestamp or a stray field: {line}");
            assert!(
                !line.contains("host=") && !line.contains("instance="),
                "{line}"
            );
        }
    }
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(!text.contains("# EOF"), "{text}");
    let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
    let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
    assert_eq!(helps, types);
    // Every family of SPEC §8 but the database and stream ones, which this server lacks.
    assert_eq!(helps, 22, "{helps} families:\n{text}");
}

#[test]
fn a_value_that_cannot_be_read_has_no_series() {
    let mut s = snapshot();
    s.sample.cpu_percent = Err(Unavailable::new("first read"));
    s.sample.cpu_times = None;
    s.sample.memory = Err(Unavailable::new("reading /proc/meminfo: EIO"));
    s.sample.disk = Err(Unavailable::new("statvfs timed out"));
    s.sample.cpu_celsius = Err(Unavailable::new("hwmon EIO"));
    s.families.thermal.error = Some(Unavailable::new("hwmon EIO"));
    s.families.thermal.errors = 3;
    s.gpu.devices[1].power_watts = None;
    s.gpu.devices[1].celsius = Some(f64::NAN);
    s.gpu.devices[0].power_limit_watts = None;
    s.gpu.devices[1].power_limit_watts = None;
    let (text, om) = bodies(&s);
    for body in [&text, &om] {
        for gone in [
            "cpu_usage_ratio",
            "cpu_seconds",
            "metrics_collector_memory_",
            "filesystem_",
            "metrics_collector_temperature_celsius",
            "gpu_power_limit_watts",
            r#"gpu_power_watts{gpu="1""#,
            r#"gpu_temperature_celsius{gpu="1""#,
        ] {
            assert!(!body.contains(gone), "{gone} is served:\n{body}");
        }
        assert!(!body.to_lowercase().contains("nan"), "{body}");
        assert!(body.contains(r#"gpu_power_watts{gpu="0""#), "{body}");
        assert_eq!(
            value(body, r#"metrics_collector_probe_up{probe="thermal"}"#),
            Some(0.0)
        );
        assert_eq!(
            value(
                body,
                r#"metrics_collector_probe_errors_total{probe="thermal"}"#
            ),
            Some(3.0)
        );
    }
}

#[test]
fn hardware_the_host_lacks_has_no_up_series_and_no_gpu_families() {
    let mut s = snapshot();
    s.sample.cpu_celsius = Err(Unavailable::absent("no sensor"));
    s.families.thermal.error = Some(Unavailable::absent("no sensor"));
    s.gpu = gpu::GpuSample::unavailable(gpu::BackendKind::None, "no GPU");
    s.families.gpu.error = Some(Unavailable::absent("no GPU"));
    let (text, _) = bodies(&s);
    assert!(!text.contains("gpu_"), "{text}");
    assert!(!text.contains(r#"probe_up{probe="gpu"}"#), "{text}");
    assert!(!text.contains(r#"probe_up{probe="thermal"}"#), "{text}");
    assert_eq!(
        value(&text, r#"metrics_collector_probe_up{probe="cpu"}"#),
        Some(1.0)
    );
    // Still timed and counted: absent hardware is no failure.
    assert_eq!(
        value(
            &text,
            r#"metrics_collector_probe_errors_total{probe="gpu"}"#
        ),
        Some(0.0)
    );
}

#[test]
fn label_values_are_escaped() {
    let mut s = snapshot();
    s.gpu.devices[0].name = Some("Quadro \"RTX\" \\ 8000\nrev2".into());
    let (text, om) = bodies(&s);
    for body in [&text, &om] {
        assert!(
            body.contains(r#"name="Quadro \"RTX\" \\ 8000\nrev2""#),
            "{body}"
        );
    }
}

#[test]
fn the_service_families_follow_the_database_and_the_streams() {
    let (status_tx, status) = tokio::sync::watch::channel(sampler::WriterStatus {
        state: WriterState::Unreachable,
        pending_windows: 7,
        written_windows: 120,
        dropped_windows: 2,
        ..Default::default()
    });
    let persist = sampler::Persist::new(Discard, Duration::from_secs(30));
    let streams = Streams {
        slots: Arc::new(tokio::sync::Semaphore::new(10)),
        max: 10,
    };
    let held = streams.slots.clone().try_acquire_many_owned(3).unwrap();
    let mut e = Exposition::new(Sources {
        filesystem: mount(),
        database: Some(DatabaseView::new(status, persist.lost())),
        streams: Some(streams),
    });
    let (text, _) = e.encode(&snapshot());
    let text = String::from_utf8(text.to_vec()).unwrap();
    for (series, want) in [
        ("metrics_collector_database_up", 0.0),
        ("metrics_collector_persist_queue_windows", 7.0),
        ("metrics_collector_windows_written_total", 120.0),
        ("metrics_collector_windows_dropped_total", 2.0),
        ("metrics_collector_streams", 3.0),
    ] {
        assert_eq!(value(&text, series), Some(want), "{series}\n{text}");
    }
    // Read again at the next sample.
    status_tx.send_modify(|s| s.state = WriterState::Connected);
    drop(held);
    let (text, _) = e.encode(&snapshot());
    let text = String::from_utf8(text.to_vec()).unwrap();
    assert_eq!(value(&text, "metrics_collector_database_up"), Some(1.0));
    assert_eq!(value(&text, "metrics_collector_streams"), Some(0.0));
}

struct Discard;
impl sampler::WindowSink for Discard {
    fn offer(&self, _: sampler::Window) -> Result<(), sampler::Window> {
        Ok(())
    }
}

#[test]
fn the_cpu_counters_are_node_exporters_eight_modes_and_no_guest() {
    let (text, _) = bodies(&snapshot());
    let modes: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("metrics_collector_cpu_seconds_total{mode=\""))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert_eq!(
        modes,
        [
            "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"
        ]
    );
}

/// The text body is what the crate's own text format 0.0.4 encoder writes, byte for byte,
/// for every shape a sample can take.
#[test]
fn the_text_body_is_the_crates_text_encoding_byte_for_byte() {
    let mut shapes = vec![snapshot()];
    let mut bare = snapshot();
    bare.sample.cpu_percent = Err(Unavailable::new("first read"));
    bare.sample.cpu_times = None;
    bare.sample.memory = Err(Unavailable::new("EIO"));
    bare.sample.disk = Err(Unavailable::new("timed out"));
    bare.families.disk.error = Some(Unavailable::new("timed out"));
    bare.gpu = gpu::GpuSample::unavailable(gpu::BackendKind::None, "no GPU");
    shapes.push(bare);
    let mut odd = snapshot();
    odd.gpu.devices[0].name = Some("Quadro \"RTX\" \\ 8000\nrev2 # HELP x".into());
    odd.gpu.devices[1].uuid = None;
    shapes.push(odd);
    for s in &shapes {
        let mut e = Exposition::new(Sources {
            filesystem: mount(),
            ..Sources::default()
        });
        let (text, _) = e.encode(s);
        let mut oracle = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut oracle, &e.registry).unwrap();
        assert_eq!(String::from_utf8(text.to_vec()).unwrap(), oracle);
    }
}

#[test]
fn no_help_text_needs_escaping() {
    let (_, om) = bodies(&snapshot());
    for help in om.lines().filter_map(|l| l.strip_prefix("# HELP ")) {
        assert!(!help.contains('\\'), "{help}");
    }
}
