use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// `tests/testdata/<machine>`: a fixture tree with the layout of one machine.
fn fixture(machine: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata")
        .join(machine)
}

fn roots_at(root: &Path) -> Roots {
    Roots {
        rootfs: root.to_owned(),
        procfs: root.join("proc"),
        sysfs: root.join("sys"),
    }
}

/// What sampling a fixture should give.
struct Case {
    machine: &'static str,
    detect: bool,
    /// `Err(part of the reason)` when the sample is unavailable.
    utilization: Result<f64, &'static str>,
    name: &'static str,
    /// `Err(part of a note)` when the temperature is `None`.
    celsius: Result<f64, &'static str>,
    board_watts: Option<f64>,
    /// `Err(part of a note)` when the device's power is `None`.
    gpu_watts: Result<f64, &'static str>,
    /// Part of a note, whatever else the case says.
    note: &'static str,
    model: Option<&'static str>,
    l4t: Option<&'static str>,
}

const CASES: [Case; 8] = [
    Case {
        machine: "jetson-nano",
        detect: true,
        utilization: Ok(15.8),
        name: "gm20b",
        celsius: Ok(31.0),
        board_watts: Some(3.187),
        gpu_watts: Ok(0.45),
        note: "memory: the integrated GPU shares system RAM",
        model: Some("NVIDIA Jetson Nano Developer Kit"),
        l4t: Some("32.7.1"),
    },
    Case {
        machine: "jetson-xavier-nx",
        detect: true,
        utilization: Ok(37.1),
        name: "gv11b",
        celsius: Ok(37.0),
        board_watts: Some(6.188544),
        gpu_watts: Err("VDD_CPU_GPU_CV (1.54 W) feeds the CPU, GPU and CV engines"),
        note: "not reported as GPU power",
        model: Some("NVIDIA Jetson Xavier NX Developer Kit"),
        l4t: Some("35.4.1"),
    },
    Case {
        machine: "jetson-orin",
        detect: true,
        utilization: Ok(99.6),
        name: "ga10b",
        celsius: Ok(42.937),
        board_watts: None,
        gpu_watts: Ok(5.143488),
        note: "VDD_GPU_SOC feeds the GPU and the SoC together",
        model: Some("NVIDIA Jetson AGX Orin Developer Kit"),
        l4t: Some("36.4.3"),
    },
    Case {
        machine: "jetson-orin-gpu-offline",
        detect: true,
        utilization: Ok(0.0),
        name: "ga10b",
        celsius: Err("temperature: gpu-thermal reads -256 °C: powered off"),
        board_watts: None,
        gpu_watts: Ok(2.053408),
        note: "power: no board input rail (VDD_IN, POM_5V_IN) among the INA3221 rails \
               VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0, VDDQ_VDD2_1V8AO",
        model: Some("NVIDIA Jetson AGX Orin Developer Kit"),
        l4t: Some("36.4.3"),
    },
    Case {
        machine: "jetson-orin-nano",
        detect: true,
        utilization: Ok(4.2),
        name: "ga10b",
        celsius: Ok(44.062),
        board_watts: Some(7.032432),
        gpu_watts: Err("VDD_CPU_GPU_CV (2.06 W)"),
        note: "memory:",
        model: Some("NVIDIA Jetson Orin Nano Developer Kit"),
        l4t: Some("35.3.1"),
    },
    Case {
        machine: "jetson-orin-late-gpu",
        detect: true,
        utilization: Err("no Jetson GPU load file"),
        name: "",
        celsius: Err(""),
        board_watts: None,
        gpu_watts: Err(""),
        note: "",
        model: Some("NVIDIA Jetson AGX Orin Developer Kit"),
        l4t: Some("36.4.3"),
    },
    Case {
        machine: "not-a-jetson",
        detect: false,
        utilization: Err("no Jetson GPU load file"),
        name: "",
        celsius: Err(""),
        board_watts: None,
        gpu_watts: Err(""),
        note: "",
        model: None,
        l4t: None,
    },
    Case {
        machine: "rockchip-rk3588",
        detect: false,
        utilization: Err("no Jetson GPU load file"),
        name: "",
        celsius: Err(""),
        board_watts: None,
        gpu_watts: Err(""),
        note: "",
        model: Some("Radxa ROCK 5B"),
        l4t: None,
    },
];

/// Samples the case's fixture twice (discovery, then the cached files) and checks both.
fn check(case: &Case) {
    let machine = case.machine;
    let roots = roots_at(&fixture(machine));
    assert_eq!(detect(&roots), case.detect, "{machine}: detect");
    let mut jetson = Jetson::new(&roots);
    assert_eq!(jetson.kind(), BackendKind::Jetson);
    for attempt in ["first", "cached"] {
        let at = format!("{machine} ({attempt} sample)");
        let s = jetson.sample();
        assert_eq!(s.backend, BackendKind::Jetson, "{at}");
        assert_eq!(s.system.board_model.as_deref(), case.model, "{at}");
        assert_eq!(s.system.l4t_release.as_deref(), case.l4t, "{at}");
        assert_eq!(s.board_power_watts, case.board_watts, "{at}");
        let utilization = match case.utilization {
            Err(part) => {
                let reason = s.reason.as_deref().unwrap_or_default();
                assert!(!s.available() && s.devices.is_empty(), "{at}: {s:?}");
                assert!(reason.contains(part), "{at}: {reason}");
                // Names what was searched.
                let sysfs = roots.sysfs.display().to_string();
                for searched in [
                    "class/devfreq",
                    "devices/gpu.0/load",
                    "devices/platform/gpu.0/load",
                ] {
                    assert!(
                        reason.contains(&format!("{sysfs}/{searched}")),
                        "{at}: {reason}"
                    );
                }
                continue;
            }
            Ok(utilization) => utilization,
        };
        assert!(s.available(), "{at}: {s:?}");
        assert_eq!(s.devices.len(), 1, "{at}");
        let d = &s.devices[0];
        let notes = d.notes.join(" | ");
        assert_eq!(d.error, None, "{at}");
        assert_eq!(d.index, 0, "{at}");
        assert_eq!(d.name.as_deref(), Some(case.name), "{at}");
        assert_eq!(d.uuid, None, "{at}");
        assert_eq!(d.utilization_percent, Some(utilization), "{at}");
        assert_eq!(
            (d.memory_used_bytes, d.memory_total_bytes),
            (None, None),
            "{at}"
        );
        match case.celsius {
            Ok(c) => assert_eq!(d.celsius, Some(c), "{at}"),
            Err(part) => {
                assert_eq!(d.celsius, None, "{at}");
                assert!(notes.contains(part), "{at}: {notes}");
            }
        }
        match case.gpu_watts {
            Ok(w) => assert_eq!(d.power_watts, Some(w), "{at}"),
            Err(part) => {
                assert_eq!(d.power_watts, None, "{at}");
                assert!(notes.contains(part), "{at}: {notes}");
            }
        }
        assert!(notes.contains(case.note), "{at}: {notes}");
        assert_eq!(s.mean_utilization(), Some(utilization), "{at}");
    }
}

#[test]
fn fixtures_of_real_machines() {
    for case in &CASES {
        check(case);
    }
}

#[test]
fn a_gpu_node_that_appears_later_is_found_on_the_next_sample() {
    // The nvgpu driver can bind after the service starts (jetson-stats issue #425).
    let tree = TempTree::copy_of("jetson-orin-late-gpu");
    let mut jetson = Jetson::new(&tree.roots());
    for _ in 0..2 {
        let s = jetson.sample();
        assert!(!s.available(), "{s:?}");
        assert_eq!(s.system.l4t_release.as_deref(), Some("36.4.3"));
    }

    let node = "sys/class/devfreq/17000000.gpu/device";
    tree.write(&format!("{node}/of_node/name"), "gpu\0");
    tree.write(&format!("{node}/of_node/compatible"), "nvidia,ga10b\0");
    tree.write(&format!("{node}/load"), "523\n");
    let s = jetson.sample();
    assert!(s.available(), "{s:?}");
    assert_eq!(s.devices[0].name.as_deref(), Some("ga10b"));
    assert_eq!(s.devices[0].utilization_percent, Some(52.3));
    assert_eq!(s.devices[0].celsius, Some(42.937));
}

#[test]
fn a_renumbered_hwmon_is_found_again() {
    // hwmon numbers follow driver load order, which changes across reboots and reloads.
    let tree = TempTree::copy_of("jetson-xavier-nx");
    let mut jetson = Jetson::new(&tree.roots());
    assert_eq!(jetson.sample().board_power_watts, Some(6.188544));

    tree.rename("sys/class/hwmon/hwmon4", "sys/class/hwmon/hwmon2");
    tree.write("sys/class/hwmon/hwmon2/curr1_input", "2000\n");
    let s = jetson.sample();
    assert_eq!(s.board_power_watts, Some(10.112));
    assert_eq!(s.devices[0].error, None, "{s:?}");
}

#[test]
fn cached_files_are_read_without_looking_again() {
    let tree = TempTree::copy_of("jetson-nano");
    let mut jetson = Jetson::new(&tree.roots());
    assert_eq!(jetson.sample().devices[0].utilization_percent, Some(15.8));

    // What discovery reads is gone; the cached files alone give the new values.
    let devfreq = "sys/class/devfreq/57000000.gpu";
    tree.remove(&format!("{devfreq}/device/of_node"));
    tree.remove("sys/class/thermal/thermal_zone2/type");
    let iio = "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0";
    tree.remove(&format!("{iio}/rail_name_0"));
    tree.remove(&format!("{iio}/rail_name_1"));
    tree.remove("sys/firmware/devicetree/base/model");
    tree.write(&format!("{devfreq}/device/load"), "1000\n");
    tree.write("sys/class/thermal/thermal_zone2/temp", "55500\n");
    tree.write(&format!("{iio}/in_power0_input"), "7001\n");
    tree.write(&format!("{iio}/in_power1_input"), "4120\n");

    let s = jetson.sample();
    let d = &s.devices[0];
    assert_eq!(d.utilization_percent, Some(100.0));
    assert_eq!(d.celsius, Some(55.5));
    assert_eq!(s.board_power_watts, Some(7.001));
    assert_eq!(d.power_watts, Some(4.12));
    assert_eq!(d.name.as_deref(), Some("gm20b"));
    assert_eq!(
        s.system.board_model.as_deref(),
        Some("NVIDIA Jetson Nano Developer Kit")
    );
}

#[test]
fn a_vanished_devfreq_node_falls_back_to_the_fixed_path_then_to_unavailable() {
    let tree = TempTree::copy_of("jetson-nano");
    let mut jetson = Jetson::new(&tree.roots());
    assert_eq!(jetson.sample().devices[0].name.as_deref(), Some("gm20b"));

    tree.remove("sys/class/devfreq/57000000.gpu");
    tree.write("sys/devices/gpu.0/load", "77\n");
    let s = jetson.sample();
    assert_eq!(s.devices[0].name.as_deref(), Some("gpu.0"));
    assert_eq!(s.devices[0].utilization_percent, Some(7.7));

    tree.remove("sys/devices/gpu.0");
    let s = jetson.sample();
    assert!(!s.available());
    assert!(s.reason.unwrap().contains("no Jetson GPU load file"));
}

#[test]
fn fixed_load_paths_without_devfreq() {
    for (path, load, want) in [
        ("sys/devices/gpu.0/load", "0\n", 0.0),
        ("sys/devices/platform/gpu.0/load", "999\n", 99.9),
    ] {
        let tree = TempTree::new();
        tree.write(path, load);
        let s = Jetson::new(&tree.roots()).sample();
        assert!(s.available(), "{path}: {s:?}");
        let d = &s.devices[0];
        assert_eq!(d.name.as_deref(), Some("gpu.0"), "{path}");
        assert_eq!(d.utilization_percent, Some(want), "{path}");
        let notes = d.notes.join(" | ");
        assert!(
            notes.contains("temperature: no GPU thermal zone"),
            "{notes}"
        );
        assert!(notes.contains("power: no INA3221 power monitor"), "{notes}");
        assert_eq!(d.error, None);
        assert_eq!(s.system, SystemInfo::default());
    }
}

#[test]
fn bad_readings_are_errors_not_numbers() {
    let tree = TempTree::copy_of("jetson-orin");
    tree.write("sys/class/devfreq/17000000.gpu/device/load", "busy\n");
    tree.write("sys/class/thermal/thermal_zone1/temp", "nan\n");
    tree.write("sys/class/hwmon/hwmon0/curr1_input", "\n");
    let s = Jetson::new(&tree.roots()).sample();
    assert!(s.available(), "the device stays listed: {s:?}");
    let d = &s.devices[0];
    assert_eq!(
        (d.utilization_percent, d.celsius, d.power_watts),
        (None, None, None)
    );
    let error = d.error.as_deref().unwrap_or_default();
    for part in [
        "load: parsing ",
        "device/load: not a load in per mille: \"busy\"",
        "temperature: ",
        "thermal_zone1/temp: not a number",
        "power: VDD_GPU_SOC: parsing ",
        "curr1_input: not an integer",
    ] {
        assert!(error.contains(part), "{part:?} in {error}");
    }
    assert_eq!(s.failing().count(), 1);
}

#[test]
fn a_gpu_zone_that_comes_back_online_reads_again() {
    let tree = TempTree::copy_of("jetson-orin-gpu-offline");
    let mut jetson = Jetson::new(&tree.roots());
    assert_eq!(jetson.sample().devices[0].celsius, None);

    tree.write("sys/class/thermal/thermal_zone1/temp", "39500\n");
    let d = &jetson.sample().devices[0];
    assert_eq!(d.celsius, Some(39.5));
    assert!(!d.notes.iter().any(|n| n.contains("-256")), "{:?}", d.notes);
}

#[cfg(unix)]
#[test]
fn devfreq_and_of_node_are_symlinks_on_a_real_sysfs() {
    use std::os::unix::fs::symlink;
    let tree = TempTree::new();
    let device = "sys/devices/platform/bus@0/17000000.gpu";
    let of_node = "sys/firmware/devicetree/base/bus@0/gpu@17000000";
    tree.write(&format!("{of_node}/name"), "gpu\0");
    tree.write(&format!("{of_node}/compatible"), "nvidia,ga10b\0");
    tree.write(&format!("{device}/load"), "250\n");
    tree.mkdir(&format!("{device}/devfreq/17000000.gpu"));
    tree.mkdir("sys/class/devfreq");
    symlink(
        "../../../../firmware/devicetree/base/bus@0/gpu@17000000",
        tree.path(&format!("{device}/of_node")),
    )
    .unwrap();
    symlink(
        "../../../17000000.gpu",
        tree.path(&format!("{device}/devfreq/17000000.gpu/device")),
    )
    .unwrap();
    symlink(
        "../../devices/platform/bus@0/17000000.gpu/devfreq/17000000.gpu",
        tree.path("sys/class/devfreq/17000000.gpu"),
    )
    .unwrap();
    // hwmon entries are links too.
    let ina = "sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040/hwmon/hwmon3";
    tree.write(&format!("{ina}/name"), "ina3221\n");
    tree.write(&format!("{ina}/in1_label"), "VDD_IN\n");
    tree.write(&format!("{ina}/in1_input"), "5000\n");
    tree.write(&format!("{ina}/curr1_input"), "1500\n");
    tree.mkdir("sys/class/hwmon");
    symlink(
        "../../devices/platform/bus@0/c240000.i2c/i2c-1/1-0040/hwmon/hwmon3",
        tree.path("sys/class/hwmon/hwmon3"),
    )
    .unwrap();

    let roots = tree.roots();
    assert!(detect(&roots));
    let s = Jetson::new(&roots).sample();
    assert_eq!(s.devices[0].name.as_deref(), Some("ga10b"));
    assert_eq!(s.devices[0].utilization_percent, Some(25.0));
    assert_eq!(s.board_power_watts, Some(7.5));
}

#[test]
fn detect_by_each_signal_alone() {
    let none = TempTree::new();
    assert!(!detect(&none.roots()));
    assert!(!detect(&roots_at(Path::new("/no/such/root"))));

    let release = TempTree::new();
    release.write("etc/nv_tegra_release", "# R36 (release), REVISION: 4.3\n");
    assert!(detect(&release.roots()));

    let dt = TempTree::new();
    dt.write(
        "sys/firmware/devicetree/base/compatible",
        "nvidia,p3768-0000+p3767-0005\0nvidia,tegra234\0",
    );
    assert!(detect(&dt.roots()));
    dt.write(
        "sys/firmware/devicetree/base/compatible",
        "raspberrypi,4-model-b\0brcm,bcm2711\0",
    );
    assert!(!detect(&dt.roots()));

    let devfreq = TempTree::new();
    devfreq.write(
        "sys/class/devfreq/17000000.gv11b/device/of_node/name",
        "gv11b\0",
    );
    assert!(detect(&devfreq.roots()));
}

// ---- Pure functions ------------------------------------------------------------------

#[test]
fn parses_per_mille_load() {
    let cases: [(&str, Result<f64, &str>); 8] = [
        ("523\n", Ok(52.3)),
        ("0\n", Ok(0.0)),
        ("1000", Ok(100.0)),
        (" 7 \n", Ok(0.7)),
        ("1001\n", Err("out of range")),
        ("-1\n", Err("not a load")),
        ("\n", Err("not a load")),
        ("52.3\n", Err("\"52.3\"")),
    ];
    for (text, want) in cases {
        match (parse_load(text), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{text:?}"),
            (Err(got), Err(part)) => assert!(got.contains(part), "{text:?}: {got}"),
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn parses_l4t_release() {
    let cases: [(&str, Option<&str>); 11] = [
        (
            "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, \
             DATE: Wed Jan  8 01:49:37 UTC 2025\n# KERNEL_VARIANT: oot\n\
             TARGET_USERSPACE_LIB_DIR=nvidia\n",
            Some("36.4.3"),
        ),
        ("# R32 (release), REVISION: 7.1", Some("32.7.1")),
        (
            "# R35 (release), REVISION: 3.1, GCID: 32827747, BOARD: t186ref\r\n",
            Some("35.3.1"),
        ),
        (
            "# R28 (release), REVISION: 1.0, GCID: 9379712\n",
            Some("28.1.0"),
        ),
        (
            "\n  # R36 (release), REVISION: 4.7 , GCID: 1\n",
            Some("36.4.7"),
        ),
        ("# R32 (release), REVISION: 5\n", Some("32.5")),
        ("# R36 (release)\n", None),
        ("# R (release), REVISION: 4.3\n", None),
        ("# R36 (release), REVISION: 4.x\n", None),
        ("# R36 (release), REVISION: 4..3\n", None),
        ("", None),
    ];
    for (text, want) in cases {
        assert_eq!(parse_l4t_release(text).as_deref(), want, "{text:?}");
    }
}

#[test]
fn parses_device_tree_model() {
    let cases: [(&str, Option<&str>); 5] = [
        (
            "NVIDIA Jetson AGX Orin Developer Kit\0",
            Some("NVIDIA Jetson AGX Orin Developer Kit"),
        ),
        (
            "NVIDIA Jetson Nano Developer Kit",
            Some("NVIDIA Jetson Nano Developer Kit"),
        ),
        ("Radxa ROCK 5B\n\0", Some("Radxa ROCK 5B")),
        ("\0", None),
        ("", None),
    ];
    for (text, want) in cases {
        assert_eq!(parse_model(text).as_deref(), want, "{text:?}");
    }
    assert_eq!(
        parse_dt_strings("nvidia,tegra210-gm20b\0nvidia,gm20b\0"),
        ["nvidia,tegra210-gm20b", "nvidia,gm20b"]
    );
}

#[test]
fn tegra_gpu_nodes_and_their_chip_names() {
    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }
    // (of_node name, compatible, is a Tegra GPU, chip name)
    let cases: [(&str, &[&str], bool, &str); 10] = [
        ("gp10b", &[], true, "gp10b"),
        ("gv11b", &["nvidia,gv11b"], true, "gv11b"),
        ("ga10b", &[], true, "ga10b"),
        ("gb10b", &[], true, "gb10b"),
        ("gm20b", &[], true, "gm20b"),
        (
            "gpu",
            &["nvidia,tegra210-gm20b", "nvidia,gm20b"],
            true,
            "gm20b",
        ),
        ("gpu", &["nvidia,ga10b"], true, "ga10b"),
        ("gpu", &["nvidia,some-future-gpu"], true, "gpu"),
        (
            "gpu",
            &["rockchip,rk3588-mali", "arm,mali-valhall-csf"],
            false,
            "gpu",
        ),
        ("dmc", &["nvidia,tegra234-emc"], false, "dmc"),
    ];
    for (name, compatible, tegra, chip) in cases {
        let compatible = strings(compatible);
        assert_eq!(
            is_tegra_gpu_node(name, &compatible),
            tegra,
            "{name} {compatible:?}"
        );
        assert_eq!(chip_name(name, &compatible), chip, "{name} {compatible:?}");
    }
}

#[test]
fn gpu_zone_names_and_readings() {
    for (kind, gpu) in [
        ("GPU-therm", true),
        ("gpu-thermal", true),
        ("gpu_thermal", true),
        ("CPU-therm", false),
        ("cpu-thermal", false),
        ("tj-thermal", false),
        ("PMIC-Die", false),
        ("thermal-fan-est", false),
        ("gpufreq", false),
    ] {
        assert_eq!(is_gpu_zone(kind), gpu, "{kind}");
    }
    let cases: [(&str, Result<Option<f64>, &str>); 5] = [
        ("42937\n", Ok(Some(42.937))),
        ("-256000\n", Ok(None)),
        ("200000\n", Err("implausible")),
        ("nan\n", Err("not a number")),
        ("hot\n", Err("not a temperature")),
    ];
    for (text, want) in cases {
        match (gpu_celsius(text), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{text:?}"),
            (Err(got), Err(part)) => assert!(got.contains(part), "{text:?}: {got}"),
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn rail_roles_and_picking() {
    for (label, role) in [
        ("VDD_IN", Some(Role::Board)),
        ("POM_5V_IN", Some(Role::Board)),
        ("POM_5V_GPU", Some(Role::Gpu(GpuRail::Dedicated))),
        ("VDD_SYS_GPU", Some(Role::Gpu(GpuRail::Dedicated))),
        ("GPU", Some(Role::Gpu(GpuRail::Dedicated))),
        ("VDD_GPU_SOC", Some(Role::Gpu(GpuRail::WithSoc))),
        ("VDD_CPU_GPU_CV", Some(Role::Gpu(GpuRail::Shared))),
        ("VDD_CPU_CV", None),
        ("VIN_SYS_5V0", None),
        ("POM_5V_CPU", None),
        ("VDD_SOC", None),
    ] {
        assert_eq!(rail_role(label), role, "{label}");
    }
    for (label, rail) in [
        ("VDD_IN", true),
        ("NC", false),
        ("sum of shunt voltages", false),
        ("", false),
    ] {
        assert_eq!(is_rail_label(label), rail, "{label:?}");
    }

    let rail = |label: &str| Rail {
        label: label.to_owned(),
        meter: Meter::Power {
            milliwatts: PathBuf::from(label),
        },
    };
    assert_eq!(Rails::pick(Vec::new()), None);
    let picked = Rails::pick(
        ["VDD_CPU_GPU_CV", "VDD_GPU_SOC", "VDD_IN", "GPU"]
            .map(rail)
            .to_vec(),
    )
    .unwrap();
    assert_eq!(picked.board, Some(rail("VDD_IN")));
    assert_eq!(picked.gpu, Some((rail("GPU"), GpuRail::Dedicated)));
    let picked = Rails::pick(vec![rail("VDD_CPU_GPU_CV"), rail("VDD_GPU_SOC")]).unwrap();
    assert_eq!(picked.board, None);
    assert_eq!(picked.gpu, Some((rail("VDD_GPU_SOC"), GpuRail::WithSoc)));
    let picked = Rails::pick(vec![rail("VDD_SOC")]).unwrap();
    assert_eq!((picked.board, picked.gpu), (None, None));
    assert_eq!(picked.labels, ["VDD_SOC"]);
}

#[test]
fn rail_arithmetic() {
    assert_eq!(parse_integer("5056\n"), Ok(5056.0));
    assert_eq!(parse_integer(" -8 "), Ok(-8.0));
    assert!(parse_integer("32760 ma").is_err());
    assert_eq!(watts_from_mv_ma(5056.0, 1224.0), 6.188544);
    assert_eq!(watts_from_mv_ma(5000.0, 0.0), 0.0);
    assert_eq!(watts_from_mw(3187.0), 3.187);
}

/// A scratch machine root (`sys/`, `etc/`), removed on drop (the crate has no `tempfile`
/// dependency).
struct TempTree {
    root: PathBuf,
}

impl TempTree {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "gpu-jetson-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Self { root }
    }

    /// A copy of a fixture, to change under the backend.
    fn copy_of(machine: &str) -> Self {
        fn copy(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(from).unwrap() {
                let entry = entry.unwrap();
                let target = to.join(entry.file_name());
                if entry.file_type().unwrap().is_dir() {
                    copy(&entry.path(), &target);
                } else {
                    std::fs::copy(entry.path(), target).unwrap();
                }
            }
        }
        let tree = Self::new();
        copy(&fixture(machine), &tree.root);
        tree
    }

    fn roots(&self) -> Roots {
        roots_at(&self.root)
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    fn mkdir(&self, relative: &str) {
        std::fs::create_dir_all(self.path(relative)).unwrap();
    }

    fn write(&self, relative: &str, content: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    fn remove(&self, relative: &str) {
        let path = self.path(relative);
        if path.is_dir() {
            std::fs::remove_dir_all(path).unwrap();
        } else {
            std::fs::remove_file(path).unwrap();
        }
    }

    fn rename(&self, from: &str, to: &str) {
        std::fs::rename(self.path(from), self.path(to)).unwrap();
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

// ---- Defects fixed with the property tests below ---------------------------------------

/// A load file holding bytes that are not UTF-8 was an I/O error, taken for a vanished
/// node: discovery ran again on every sample. It is a bad reading that shows its text.
#[test]
fn a_load_file_that_is_not_utf8_is_a_bad_reading_not_a_vanished_node() {
    let tree = TempTree::new();
    std::fs::write(tree.path("load"), b"5\xff3\n").unwrap();
    let reading = read_parsed(&tree.path("load"), parse_load);
    assert!(!vanished(&reading), "{reading:?}");
    let err = reading.unwrap_err();
    assert!(matches!(err, probes::Error::Parse { .. }), "{err:?}");
    assert!(
        describe(err).ends_with("/load: not a load in per mille: \"5\u{fffd}3\""),
        "names the file and the text"
    );
}

#[test]
fn a_release_file_with_a_stray_byte_still_gives_the_release() {
    let tree = TempTree::new();
    tree.mkdir("etc");
    std::fs::write(
        tree.path("etc/nv_tegra_release"),
        b"# R36 (release), REVISION: 4.3, GCID: 1\n# built by caf\xe9\n",
    )
    .unwrap();
    let info = system_info(&tree.path("sys"), &tree.root);
    assert_eq!(info.l4t_release.as_deref(), Some("36.4.3"));
}

#[test]
fn a_load_past_every_integer_type_is_out_of_range_not_unreadable() {
    for text in ["1001", "4294967296", "99999999999999999999999"] {
        let err = parse_load(text).unwrap_err();
        assert_eq!(
            err,
            format!("load out of range (0-1000 per mille): \"{text}\"")
        );
    }
    let huge = "1".repeat(50_000);
    let err = parse_load(&huge).unwrap_err();
    assert!(err.ends_with("… (50000 bytes)") && err.len() < 200, "{err}");
}

// ---- Property tests: sysfs values, device-tree strings, nv_tegra_release ---------------

mod properties {
    use proptest::prelude::*;

    use super::*;

    use testkit::proptest_config as config;

    /// The start of `text` as an error quotes it.
    fn head(text: &str) -> String {
        let head: String = text.trim().chars().take(20).collect();
        format!("{head:?}").trim_end_matches('"').to_owned()
    }

    fn line_end() -> impl Strategy<Value = &'static str> {
        prop::sample::select(&["", "\n", "\r\n", " \n", "\0"][..])
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn no_text_makes_a_value_parser_panic(text in any::<String>()) {
            for e in [parse_load(&text).err(), parse_integer(&text).err(), gpu_celsius(&text).err()]
                .into_iter()
                .flatten()
            {
                prop_assert!(e.len() < 400, "{} bytes of error", e.len());
            }
        }

        #[test]
        fn a_load_in_per_mille_reads_as_its_percentage(n in 0u32..=1000, end in line_end()) {
            // A NUL is no line end the kernel writes: refused, not read.
            let got = parse_load(&format!("{n}{end}"));
            if end == "\0" {
                prop_assert!(got.is_err());
            } else {
                prop_assert_eq!(got, Ok(f64::from(n) / 10.0));
            }
        }

        #[test]
        fn a_load_past_1000_or_not_a_count_is_refused_with_its_text(
            over in 1001u64..,
            bad in prop_oneof![
                (1u64..).prop_map(|n| format!("-{n}")),
                "[0-9]{1,3}\\.[0-9]{1,3}",
                "[a-z%\u{80}-\u{3000}]{1,10}",
                Just("NaN".to_owned()),
            ],
        ) {
            let e = parse_load(&over.to_string()).expect_err("over 1000");
            prop_assert!(e.starts_with("load out of range") && e.contains(&over.to_string()), "{e}");
            let e = parse_load(&bad).expect_err("not a count");
            prop_assert!(e.starts_with("not a load in per mille: ") && e.contains(&head(&bad)), "{e}");
        }

        #[test]
        fn an_integer_reading_reads_as_itself(n in any::<i64>(), end in line_end()) {
            let got = parse_integer(&format!(" {n}{end}"));
            if end == "\0" {
                prop_assert!(got.is_err());
            } else {
                prop_assert_eq!(got, Ok(n as f64));
            }
        }

        #[test]
        fn watts_from_any_two_readings_are_finite(mv in any::<i64>(), ma in any::<i64>(), mw in any::<i64>()) {
            prop_assert!(watts_from_mv_ma(mv as f64, ma as f64).is_finite());
            prop_assert!(watts_from_mw(mw as f64).is_finite());
        }

        #[test]
        fn a_gpu_zone_reading_is_a_temperature_powered_off_or_refused(n in -400_000i64..400_000) {
            match gpu_celsius(&format!("{n}\n")) {
                Ok(Some(c)) => prop_assert!((-60_000..=150_000).contains(&n) && c == n as f64 / 1000.0),
                Ok(None) => prop_assert_eq!(n, -256_000),
                Err(e) => prop_assert!(!(-60_000..=150_000).contains(&n) && e.contains("implausible"), "{n}: {e}"),
            }
        }

        #[test]
        fn device_tree_strings_read_back_as_written(
            strings in prop::collection::vec("[ -~\u{80}-\u{3000}]{1,40}", 0..6),
            trailing_nul in any::<bool>(),
        ) {
            let strings: Vec<String> = strings
                .into_iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            let mut text = strings.join("\0");
            if trailing_nul {
                text.push('\0');
            }
            prop_assert_eq!(&parse_dt_strings(&text), &strings);
            prop_assert_eq!(parse_model(&text), strings.first().cloned());
        }

        #[test]
        fn no_device_tree_bytes_make_the_gpu_node_rules_panic(
            name in any::<String>(),
            compatible in any::<Vec<u8>>(),
        ) {
            let compatible = parse_dt_strings(&String::from_utf8_lossy(&compatible));
            let chip = chip_name(&name, &compatible);
            prop_assert!(TEGRA_GPUS.contains(&chip.as_str()) || chip == name, "{chip}");
            if TEGRA_GPUS.contains(&name.as_str()) {
                prop_assert!(is_tegra_gpu_node(&name, &compatible));
            }
            if !name.contains("gpu") && !TEGRA_GPUS.contains(&name.as_str()) {
                prop_assert!(!is_tegra_gpu_node(&name, &compatible));
            }
        }

        #[test]
        fn an_nvidia_compatible_names_its_chip(
            soc in prop::option::of("tegra[0-9]{3}"),
            chip in prop::sample::select(&TEGRA_GPUS[..]),
            before in prop::collection::vec("[a-z]{1,8},[a-z0-9-]{1,12}", 0..3),
        ) {
            let entry = match soc {
                Some(soc) => format!("nvidia,{soc}-{chip}"),
                None => format!("nvidia,{chip}"),
            };
            let mut compatible = before;
            compatible.push(entry);
            prop_assert!(is_tegra_gpu_node("gpu", &compatible));
            prop_assert_eq!(chip_name("gpu", &compatible), chip);
        }

        #[test]
        fn no_release_file_makes_the_parser_panic(text in any::<String>()) {
            if let Some(release) = parse_l4t_release(&text) {
                prop_assert!(release.bytes().all(|b| b.is_ascii_digit() || b == b'.'), "{release}");
            }
        }

        #[test]
        fn a_release_line_reads_back_as_its_version(
            major in any::<u32>(),
            revision in prop::collection::vec(0u16..1000, 1..4),
            rest in "(, GCID: [0-9]{1,9})?(, BOARD: [a-z0-9]{1,9})?(, DATE: [A-Za-z0-9: ]{0,30})?",
            before in prop::collection::vec("[ \t]{0,2}", 0..3),
            crlf in any::<bool>(),
        ) {
            let revision: Vec<String> = revision.iter().map(u16::to_string).collect();
            let revision = revision.join(".");
            let end = if crlf { "\r\n" } else { "\n" };
            let text = format!(
                "{}# R{major} (release), REVISION: {revision}{rest}{end}# KERNEL_VARIANT: oot{end}",
                before.join(end) + if before.is_empty() { "" } else { end },
            );
            prop_assert_eq!(parse_l4t_release(&text), Some(format!("{major}.{revision}")), "{:?}", text);
        }

        #[test]
        fn rail_labels_match_in_any_case(
            label in prop::sample::select(&["VDD_IN", "POM_5V_IN", "VDD_GPU", "VDD_GPU_SOC", "VDD_CPU_GPU_CV"][..]),
            upper in prop::collection::vec(any::<bool>(), 16),
            other in any::<String>(),
        ) {
            let mixed: String = label
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                .collect();
            prop_assert_eq!(rail_role(&mixed), rail_role(label));
            prop_assert!(rail_role(label).is_some());
            let _ = (rail_role(&other), is_rail_label(&other), is_gpu_zone(&other));
        }
    }
}
