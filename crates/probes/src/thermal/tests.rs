use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

/// `tests/testdata/<machine>/sys`: a fixture tree with the layout of a real machine.
fn fixture(machine: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata")
        .join(machine)
        .join("sys")
}

/// The message of an error with its source chain, as `/health` shows it.
fn message(e: Error) -> String {
    crate::Unavailable::from(e).to_string()
}

/// What a probe read should give: `Ok((°C, source))` or `Err(part of the message)`.
type Expected = Result<(f64, &'static str), &'static str>;

/// Reads `machine`'s fixture twice (discovery, then the cached files) and checks both
/// against `want`.
fn check(machine: &str, want: Expected) {
    let mut probe = Thermal::new(&fixture(machine));
    for attempt in ["first", "cached"] {
        match (probe.read(), want) {
            (Ok(celsius), Ok((expected, source))) => {
                assert_eq!(celsius, expected, "{machine} ({attempt} read)");
                assert_eq!(probe.source(), Some(source), "{machine} ({attempt} read)");
            }
            (Err(e), Err(part)) => {
                let text = message(e);
                assert!(text.contains(part), "{machine} ({attempt} read): {text}");
                assert_eq!(probe.source(), None, "{machine}");
            }
            (got, want) => panic!("{machine} ({attempt} read): got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn fixtures_of_real_machines() {
    let cases: [(&str, Expected); 11] = [
        ("intel-desktop", Ok((47.0, "coretemp Package id 0"))),
        ("intel-dual-socket", Ok((61.0, "coretemp Package id 1"))),
        ("amd-ryzen-zen1", Ok((48.75, "k10temp Tdie"))),
        ("amd-ryzen-zen3", Ok((55.25, "k10temp Tctl"))),
        ("raspberry-pi-4", Ok((48.686, "cpu-thermal"))),
        ("jetson-nano", Ok((34.0, "CPU-therm"))),
        ("jetson-xavier-nx", Ok((38.5, "CPU-therm"))),
        ("jetson-orin", Ok((43.531, "cpu-thermal"))),
        ("jetson-orin-gpu-offline", Ok((43.531, "cpu-thermal"))),
        ("cpu-zone-offline", Err("cpu-thermal: ")),
        ("no-sensors", Err("no CPU temperature sensor under ")),
    ];
    for (machine, want) in cases {
        check(machine, want);
    }
}

#[test]
fn errors_say_why_and_where() {
    let text = message(
        Thermal::new(&fixture("cpu-zone-offline"))
            .read()
            .unwrap_err(),
    );
    assert!(text.contains("sensor offline (reads -256 °C)"), "{text}");
    assert!(text.contains("thermal_zone0/temp"), "{text}");

    let sysfs = fixture("no-sensors");
    let absent = crate::Unavailable::from(Thermal::new(&sysfs).read().unwrap_err());
    assert!(
        absent.is_absent(),
        "no sensor at all is absent hardware, not a fault"
    );
    let offline = crate::Unavailable::from(
        Thermal::new(&fixture("cpu-zone-offline"))
            .read()
            .unwrap_err(),
    );
    assert!(
        !offline.is_absent(),
        "a sensor that reads offline is a fault"
    );
    let text = message(Thermal::new(&sysfs).read().unwrap_err());
    for searched in [sysfs.join("class/hwmon"), sysfs.join("class/thermal")] {
        assert!(text.contains(&*searched.to_string_lossy()), "{text}");
    }

    // A root without even class/ is searched the same way, not an I/O error.
    let text = message(
        Thermal::new(Path::new("/no/such/sysfs"))
            .read()
            .unwrap_err(),
    );
    assert!(
        text.contains("no CPU temperature sensor under /no/such/sysfs/class/hwmon"),
        "{text}"
    );
}

#[test]
fn parses_millidegree_files() {
    let cases: [(&str, Result<f64, &str>); 8] = [
        ("52000\n", Ok(52.0)),
        ("48686", Ok(48.686)),
        ("  -5500 \n", Ok(-5.5)),
        ("-256000\n", Ok(-256.0)),
        ("", Err("not a temperature")),
        ("\n", Err("not a temperature")),
        ("52 C\n", Err("\"52 C\"")),
        ("0x10\n", Err("not a temperature")),
    ];
    for (text, want) in cases {
        match (parse_millidegrees(text), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{text:?}"),
            (Err(got), Err(part)) => assert!(got.contains(part), "{text:?}: {got}"),
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn only_plausible_temperatures_pass() {
    let cases: [(f64, Result<f64, &str>); 9] = [
        (52.0, Ok(52.0)),
        (-60.0, Ok(-60.0)),
        (150.0, Ok(150.0)),
        (0.0, Ok(0.0)),
        (-256.0, Err("offline")),
        (f64::NAN, Err("not a number")),
        (f64::INFINITY, Err("not a number")),
        (150.001, Err("implausible")),
        (-100.0, Err("implausible")),
    ];
    for (celsius, want) in cases {
        match (check_celsius(celsius), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{celsius}"),
            (Err(got), Err(part)) => assert!(got.contains(part), "{celsius}: {got}"),
            (got, want) => panic!("{celsius}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn read_celsius_applies_parse_and_filters() {
    let tree = TempTree::new();
    for (content, want) in [
        ("61000\n", Ok(61.0)),
        ("-256000\n", Err("offline")),
        ("nan\n", Err("not a number")),
        ("200000\n", Err("implausible")),
        ("garbage\n", Err("parsing ")),
    ] {
        tree.write("temp", content);
        match (read_celsius(&tree.path("temp")), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{content:?}"),
            (Err(e), Err(part)) => {
                let text = message(e);
                assert!(
                    text.contains(part) && text.contains("/temp"),
                    "{content:?}: {text}"
                );
            }
            (got, want) => panic!("{content:?}: got {got:?}, want {want:?}"),
        }
    }
    let missing = message(read_celsius(&tree.path("absent")).unwrap_err());
    assert!(
        missing.contains("reading ") && missing.contains("absent"),
        "{missing}"
    );
}

#[test]
fn cpu_zone_names() {
    for (kind, cpu) in [
        ("x86_pkg_temp", true),
        ("cpu-thermal", true),
        ("cpu_thermal", true),
        ("CPU-therm", true),
        ("cpu0-thermal", true),
        ("cpu-big0-thermal", true),
        ("cpu1_thermal", true),
        ("BCPU-therm", true),
        ("MCPU-therm", true),
        ("gpu-thermal", false),
        ("GPU-therm", false),
        ("tj-thermal", false),
        ("soc0-thermal", false),
        ("acpitz", false),
        ("PMIC-Die", false),
        ("thermal-fan-est", false),
        ("cpufreq", false),
        ("iwlwifi_1", false),
    ] {
        assert_eq!(is_cpu_zone(kind), cpu, "{kind}");
    }
}

#[test]
fn package_labels_per_chip() {
    fn check(chip: &str, labels: &[(u32, &str)], want: &[(u32, &str)]) {
        let labels: Vec<(u32, String)> =
            labels.iter().map(|(n, l)| (*n, (*l).to_owned())).collect();
        assert_eq!(package_labels(chip, &labels), want, "{chip} {labels:?}");
    }
    check(
        "coretemp",
        &[(1, "Package id 0"), (2, "Core 0"), (3, "Core 1")],
        &[(1, "Package id 0")],
    );
    // Every package a chip lists counts (one coretemp device per package is the usual case).
    check(
        "coretemp",
        &[(1, "Package id 0"), (2, "Core 0"), (9, "Package id 1")],
        &[(1, "Package id 0"), (9, "Package id 1")],
    );
    check("coretemp", &[(2, "Core 0"), (3, "Core 1")], &[]);
    check("k10temp", &[(1, "Tctl"), (2, "Tdie")], &[(2, "Tdie")]);
    check(
        "k10temp",
        &[(1, "Tctl"), (3, "Tccd1"), (4, "Tccd2")],
        &[(1, "Tctl")],
    );
    check("k10temp", &[(3, "Tccd1")], &[]);
    check(
        "zenpower",
        &[(1, "Tdie"), (2, "Tctl"), (3, "Tccd1")],
        &[(1, "Tdie")],
    );
    check("nvme", &[(1, "Composite"), (2, "Package id 0")], &[]);
}

#[test]
fn hottest_skips_invalid_readings() {
    /// `None` in `readings` stands for an invalid reading.
    fn check(readings: &[Option<f64>], want: Option<(usize, f64)>) {
        let readings: Vec<Result<f64, Error>> = readings
            .iter()
            .map(|r| r.ok_or_else(|| Error::NotAvailable("offline".into())))
            .collect();
        assert_eq!(hottest(&readings), want, "{readings:?}");
    }
    check(&[], None);
    check(&[None], None);
    check(&[Some(52.0), Some(61.0)], Some((1, 61.0)));
    check(&[Some(70.0), None, Some(61.0)], Some((0, 70.0)));
    check(&[None, Some(-5.0)], Some((1, -5.0)));
}

#[test]
fn zones_are_in_number_order_without_non_sensors() {
    let kinds: Vec<String> = zones(&fixture("jetson-nano"))
        .into_iter()
        .map(|z| z.kind)
        .collect();
    assert_eq!(kinds, ["AO-therm", "CPU-therm", "GPU-therm", "PLL-therm"]);

    // thermal_zone10 sorts after thermal_zone9, not after thermal_zone1.
    let tree = TempTree::new();
    for n in [10, 9, 1] {
        tree.write(
            &format!("class/thermal/thermal_zone{n}/type"),
            &format!("zone{n}\n"),
        );
    }
    tree.write("class/thermal/cooling_device0/type", "Processor\n");
    let found = zones(tree.root());
    let kinds: Vec<&str> = found.iter().map(|z| z.kind.as_str()).collect();
    assert_eq!(kinds, ["zone1", "zone9", "zone10"]);
    assert_eq!(
        found[2].temp_path,
        tree.path("class/thermal/thermal_zone10/temp")
    );
}

#[test]
fn a_changed_value_is_read_from_the_cached_file() {
    let tree = TempTree::copy_of("intel-desktop");
    let mut probe = Thermal::new(tree.root());
    assert_eq!(probe.read().unwrap(), 47.0);

    tree.write("class/hwmon/hwmon3/temp1_input", "71000\n");
    assert_eq!(probe.read().unwrap(), 71.0);

    // Cached: the labels and names are not looked at again.
    tree.remove("class/hwmon/hwmon3/temp1_label");
    tree.remove("class/hwmon/hwmon3/name");
    tree.write("class/hwmon/hwmon3/temp1_input", "72000\n");
    assert_eq!(probe.read().unwrap(), 72.0);
    assert_eq!(probe.source(), Some("coretemp Package id 0"));
}

#[test]
fn a_vanished_sensor_falls_back_to_the_cpu_zone() {
    let tree = TempTree::copy_of("intel-desktop");
    let mut probe = Thermal::new(tree.root());
    assert_eq!(probe.read().unwrap(), 47.0);

    tree.remove("class/hwmon/hwmon3");
    assert_eq!(probe.read().unwrap(), 46.0);
    assert_eq!(probe.source(), Some("x86_pkg_temp"));

    tree.remove("class/thermal/thermal_zone1");
    let text = message(probe.read().unwrap_err());
    assert!(text.contains("no CPU temperature sensor"), "{text}");
    assert_eq!(probe.source(), None);
}

#[test]
fn a_renumbered_hwmon_is_found_again() {
    // hwmon numbers follow driver load order, which changes across reboots and reloads.
    let tree = TempTree::copy_of("amd-ryzen-zen3");
    let mut probe = Thermal::new(tree.root());
    assert_eq!(probe.read().unwrap(), 55.25);

    tree.rename("class/hwmon/hwmon1", "class/hwmon/hwmon7");
    tree.write("class/hwmon/hwmon7/temp1_input", "58000\n");
    assert_eq!(probe.read().unwrap(), 58.0);
    assert_eq!(probe.source(), Some("k10temp Tctl"));
}

#[test]
fn an_offline_cached_zone_gives_way_to_a_rediscovered_one() {
    let tree = TempTree::copy_of("raspberry-pi-4");
    let mut probe = Thermal::new(tree.root());
    assert_eq!(probe.read().unwrap(), 48.686);

    tree.write("class/thermal/thermal_zone0/temp", "-256000\n");
    let text = message(probe.read().unwrap_err());
    assert!(text.contains("offline"), "{text}");

    tree.write("class/thermal/thermal_zone0/temp", "50000\n");
    assert_eq!(probe.read().unwrap(), 50.0);
}

#[test]
fn a_sensor_that_appears_later_is_found_on_the_next_read() {
    let tree = TempTree::copy_of("no-sensors");
    let mut probe = Thermal::new(tree.root()).rescan_every(Duration::ZERO);
    assert!(probe.read().is_err());

    // e.g. `modprobe coretemp` after boot.
    tree.write("class/hwmon/hwmon0/name", "coretemp\n");
    tree.write("class/hwmon/hwmon0/temp1_label", "Package id 0\n");
    tree.write("class/hwmon/hwmon0/temp1_input", "39000\n");
    assert_eq!(probe.read().unwrap(), 39.0);
    assert_eq!(probe.source(), Some("coretemp Package id 0"));
}

#[test]
fn hwmon_offline_everywhere_falls_back_to_zones() {
    let tree = TempTree::copy_of("intel-desktop");
    tree.write("class/hwmon/hwmon3/temp1_input", "-256000\n");
    let mut probe = Thermal::new(tree.root());
    assert_eq!(probe.read().unwrap(), 46.0);
    assert_eq!(probe.source(), Some("x86_pkg_temp"));
}

#[test]
fn old_kernels_with_attributes_under_device() {
    let tree = TempTree::new();
    tree.write("class/hwmon/hwmon0/device/name", "coretemp\n");
    tree.write("class/hwmon/hwmon0/device/temp1_label", "Package id 0\n");
    tree.write("class/hwmon/hwmon0/device/temp1_input", "44000\n");
    assert_eq!(Thermal::new(tree.root()).read().unwrap(), 44.0);
}

#[cfg(unix)]
#[test]
fn hwmon_entries_are_symlinks_on_a_real_sysfs() {
    let tree = TempTree::new();
    let device = "devices/platform/coretemp.0/hwmon/hwmon2";
    tree.write(&format!("{device}/name"), "coretemp\n");
    tree.write(&format!("{device}/temp1_label"), "Package id 0\n");
    tree.write(&format!("{device}/temp1_input"), "45000\n");
    std::fs::create_dir_all(tree.path("class/hwmon")).unwrap();
    std::os::unix::fs::symlink(format!("../../{device}"), tree.path("class/hwmon/hwmon2")).unwrap();
    assert_eq!(Thermal::new(tree.root()).read().unwrap(), 45.0);
}

/// A scratch sysfs tree, removed on drop (the crate has no `tempfile` dependency).
struct TempTree {
    root: PathBuf,
}

impl TempTree {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "probes-thermal-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Self { root }
    }

    /// A copy of a fixture's `sys` tree, to change under a probe.
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

    fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
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

#[test]
fn a_host_without_sensors_is_searched_again_only_after_the_rescan_period() {
    let tree = TempTree::copy_of("no-sensors");
    let mut probe = Thermal::new(tree.root()).rescan_every(Duration::from_secs(3600));
    let first = probe.read().unwrap_err();
    tree.write("class/hwmon/hwmon0/name", "coretemp\n");
    tree.write("class/hwmon/hwmon0/temp1_label", "Package id 0\n");
    tree.write("class/hwmon/hwmon0/temp1_input", "39000\n");
    // Within the period the answer is remembered, not searched for.
    let again = probe.read().unwrap_err();
    assert_eq!(
        crate::Unavailable::from(first),
        crate::Unavailable::from(again)
    );
    let mut fresh = Thermal::new(tree.root());
    assert_eq!(fresh.read().unwrap(), 39.0, "a new search finds it");
}

/// A temp file holding bytes that are not UTF-8 was an I/O error, taken for a vanished
/// sensor: the probe searched sysfs again every tick and said "stream did not contain
/// valid UTF-8" without the bytes. It is a bad reading of a file that is there.
#[test]
fn a_temp_file_that_is_not_utf8_is_a_bad_reading_not_a_vanished_file() {
    let tree = TempTree::new();
    std::fs::write(tree.path("temp"), b"\xff52000\n").unwrap();
    let err = read_celsius(&tree.path("temp")).unwrap_err();
    assert!(matches!(err, Error::Parse { .. }), "{err:?}");
    let text = message(err);
    assert!(
        text.contains("/temp")
            && text.contains("not a temperature in millidegrees: \"\u{fffd}52000\""),
        "{text}"
    );
}

#[test]
fn sysfs_numbers_are_read_the_way_the_kernel_writes_them() {
    for (name, prefix, suffix, want) in [
        ("temp1_label", "temp", "_label", Some(1)),
        ("temp0_label", "temp", "_label", Some(0)),
        ("hwmon10", "hwmon", "", Some(10)),
        ("rail_name_2", "rail_name_", "", Some(2)),
        // Before: parsed as 1, a second "temp1" beside the real one.
        ("temp+1_label", "temp", "_label", None),
        ("temp01_label", "temp", "_label", None),
        ("temp_label", "temp", "_label", None),
        ("temp 1_label", "temp", "_label", None),
        ("temp4294967296_label", "temp", "_label", None),
        ("temp1_labelx", "temp", "_label", None),
    ] {
        assert_eq!(entry_number(name, prefix, suffix), want, "{name}");
    }
}

// ---- Property tests: sysfs values and labels over any input ----------------------------

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        #[test]
        fn no_text_makes_the_millidegree_parser_panic(text in any::<String>()) {
            if let Err(e) = parse_millidegrees(&text) {
                prop_assert!(e.starts_with("not a temperature in millidegrees: \""), "{e}");
                prop_assert!(e.len() < 400, "{} bytes of error", e.len());
            }
        }

        #[test]
        fn an_integer_file_reads_as_its_millidegrees(
            n in any::<i64>(),
            pad in "[ \t]{0,2}",
            end in prop::sample::select(&["", "\n", "\r\n", " \n"][..]),
        ) {
            let text = format!("{pad}{n}{end}");
            prop_assert_eq!(parse_millidegrees(&text), Ok(n as f64 / 1000.0));
        }

        #[test]
        fn a_bad_file_is_refused_naming_its_text(
            n in any::<i32>(),
            junk in "[a-zA-Z°\0\u{80}-\u{3000}]{1,3}",
            long in (0usize..20_000).prop_map(|n| "5".repeat(n)),
        ) {
            for text in [format!("{n}{junk}"), format!("{junk}{n}"), format!("{n} {junk}"), format!("{long}x")] {
                let e = parse_millidegrees(&text).expect_err("not a number");
                let head: String = text.trim().chars().take(20).collect();
                let head = format!("{head:?}");
                prop_assert!(e.contains(head.trim_end_matches('"')), "{e} lacks {head}");
                prop_assert!(e.len() < 400, "{} bytes of error", e.len());
            }
        }

        #[test]
        fn only_finite_plausible_online_readings_pass(celsius in any::<f64>()) {
            let plausible = celsius.is_finite() && celsius != -256.0 && (-60.0..=150.0).contains(&celsius);
            match check_celsius(celsius) {
                Ok(c) => prop_assert!(plausible && c == celsius, "{celsius} -> {c}"),
                Err(e) => {
                    prop_assert!(!plausible, "{celsius} refused: {e}");
                    prop_assert!(!e.is_empty());
                }
            }
        }

        #[test]
        fn a_millidegree_file_in_range_passes_and_any_other_is_refused(n in -300_000i64..300_000) {
            let got = parse_millidegrees(&format!("{n}\n")).and_then(check_celsius);
            if (-60_000..=150_000).contains(&n) {
                prop_assert_eq!(got, Ok(n as f64 / 1000.0));
            } else {
                prop_assert!(got.is_err(), "{n} m°C passed");
            }
        }

        #[test]
        fn a_sysfs_number_reads_back_as_the_number_written(
            n in any::<u32>(),
            (prefix, suffix) in prop::sample::select(&[
                ("temp", "_label"), ("in", "_label"), ("hwmon", ""), ("thermal_zone", ""), ("rail_name_", ""),
            ][..]),
        ) {
            prop_assert_eq!(entry_number(&format!("{prefix}{n}{suffix}"), prefix, suffix), Some(n));
        }

        #[test]
        fn only_the_kernels_own_spelling_of_a_number_is_read(name in any::<String>(), suffix in "(_label)?") {
            if let Some(n) = entry_number(&name, "temp", &suffix) {
                prop_assert_eq!(format!("temp{n}{suffix}"), name);
            }
        }

        #[test]
        fn zone_names_never_panic_and_non_sensors_are_never_cpus(kind in any::<String>()) {
            let _ = is_cpu_zone(&kind);
            prop_assert!(!is_cpu_zone("PMIC-Die") && !is_cpu_zone("thermal-fan-est"));
        }

        #[test]
        fn a_cpu_therm_name_in_any_case_is_a_cpu_zone(
            middle in "[a-z0-9_-]{0,6}",
            tail in "[a-z0-9_-]{0,6}",
            upper in prop::collection::vec(any::<bool>(), 32),
        ) {
            let name: String = format!("cpu{middle}therm{tail}")
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
                .collect();
            prop_assert!(is_cpu_zone(&name), "{name}");
        }

        #[test]
        fn package_labels_pick_what_each_chip_means(
            labels in prop::collection::vec(
                (0u32..20, prop_oneof![
                    "Package id [0-9]{1,2}".boxed(),
                    "Core [0-9]{1,2}".boxed(),
                    prop::sample::select(&["Tdie", "Tctl", "Tccd1", "", " Tdie"][..]).prop_map(str::to_owned).boxed(),
                    any::<String>().boxed(),
                ]),
                0..10,
            ),
            chip in prop::sample::select(&["coretemp", "k10temp", "zenpower", "acpitz", ""][..]),
        ) {
            let got = package_labels(chip, &labels);
            let first = |want: &str| labels.iter().find(|(_, l)| l == want).map(|(n, l)| (*n, l.as_str()));
            match chip {
                "coretemp" => {
                    let want: Vec<(u32, &str)> = labels
                        .iter()
                        .filter(|(_, l)| l.starts_with("Package id"))
                        .map(|(n, l)| (*n, l.as_str()))
                        .collect();
                    prop_assert_eq!(got, want);
                }
                "k10temp" | "zenpower" => {
                    let want: Vec<(u32, &str)> = first("Tdie").or_else(|| first("Tctl")).into_iter().collect();
                    prop_assert_eq!(got, want);
                }
                _ => prop_assert!(got.is_empty()),
            }
        }
    }
}
