use super::*;

fn device(
    util: Option<f64>,
    used: Option<u64>,
    celsius: Option<f64>,
    watts: Option<f64>,
) -> Device {
    Device {
        utilization_percent: util,
        memory_used_bytes: used,
        celsius,
        power_watts: watts,
        ..Default::default()
    }
}

#[test]
fn aggregates_skip_devices_that_do_not_report() {
    let s = GpuSample {
        backend: BackendKind::Nvml,
        reason: None,
        system: SystemInfo::default(),
        board_power_watts: None,
        devices: vec![
            device(Some(20.0), Some(1 << 30), Some(50.0), Some(100.0)),
            device(Some(40.0), None, Some(71.0), None),
            device(None, Some(1 << 30), None, Some(50.5)),
        ],
    };
    assert!(s.available());
    assert_eq!(s.mean_utilization(), Some(30.0));
    assert_eq!(s.memory_used_bytes(), Some(2 << 30));
    assert_eq!(s.memory_total_bytes(), None);
    assert_eq!(s.max_celsius(), Some(71.0));
    assert_eq!(s.power_watts(), Some(150.5));
}

#[test]
fn no_gpu_is_unavailable_with_a_reason_and_no_numbers() {
    let s = NoGpu::new("no driver").sample();
    assert!(!s.available());
    assert_eq!(s.backend, BackendKind::None);
    assert_eq!(s.reason.as_deref(), Some("no driver"));
    assert_eq!(s.mean_utilization(), None);
    assert_eq!(s.power_watts(), None);
}

#[test]
fn choices_parse_and_explicit_missing_backends_fail() {
    assert_eq!("AUTO".parse(), Ok(Choice::Auto));
    assert_eq!(" none ".parse(), Ok(Choice::None));
    assert_eq!("cuda".parse::<Choice>(), Err(()));
    assert!(select(Choice::Auto, &probes::Roots::default()).is_ok());
    assert_eq!(
        select(Choice::None, &probes::Roots::default())
            .unwrap()
            .sample()
            .backend,
        BackendKind::None
    );
    let err = select(Choice::Nvml, &probes::Roots::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("nvml"), "{err}");
}
