//! The probes as a library user (the self-healing agent, a container deployment) sees them.

// Test code: a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use probes::{HostProbes, Probe, Roots};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata")
        .join(name)
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("probes-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("proc")).unwrap();
    dir
}

#[test]
fn every_probe_reads_under_the_roots_it_is_given() {
    // A container's view: the host's /proc, /sys and / mounted elsewhere.
    let host = scratch("roots");
    let proc = host.join("proc");
    std::fs::copy(testdata("procfs-desktop/meminfo"), proc.join("meminfo")).unwrap();
    std::fs::write(proc.join("stat"), "cpu  100 0 100 800 0 0 0 0 0 0\n").unwrap();
    std::fs::create_dir_all(host.join("data")).unwrap();
    let roots = Roots {
        rootfs: host.clone(),
        procfs: proc.clone(),
        sysfs: testdata("intel-desktop/sys"),
    };

    let mut probes = HostProbes::new(&roots, Path::new("/data"));
    assert_eq!(
        probes.disk.path(),
        host.join("data"),
        "METRICS_DISK_PATH resolves under the rootfs"
    );
    std::fs::write(proc.join("stat"), "cpu  400 0 400 1000 200 0 0 0 0 0\n").unwrap();
    let s = probes.sample();

    // busy = (300 + 300) of total (300 + 300 + 200 + 200) ticks
    assert_eq!(s.cpu_percent, Ok(60.0));
    let m = s.memory.unwrap();
    assert_eq!(
        (m.total_bytes, m.available_bytes),
        (16318412 * 1024, 10235308 * 1024)
    );
    assert_eq!(s.cpu_celsius, Ok(47.0));
    let direct = probes::disk::usage(&host).unwrap();
    assert_eq!(s.disk.unwrap().total_bytes, direct.total_bytes);
    std::fs::remove_dir_all(&host).unwrap();
}

#[test]
fn a_missing_family_is_unavailable_and_the_others_still_read() {
    let host = scratch("partial");
    std::fs::copy(
        testdata("procfs-desktop/meminfo"),
        host.join("proc/meminfo"),
    )
    .unwrap();
    let roots = Roots {
        rootfs: host.clone(),
        procfs: host.join("proc"),
        sysfs: testdata("no-sensors/sys"),
    };
    let s = HostProbes::new(&roots, Path::new("/gone")).sample();
    assert!(s.cpu_percent.unwrap_err().reason().contains("proc/stat"));
    assert!(s.memory.is_ok());
    assert!(s.disk.unwrap_err().reason().contains("gone"));
    assert!(s.cpu_celsius.unwrap_err().is_absent());
    std::fs::remove_dir_all(&host).unwrap();
}

// Against the real /proc, with sysinfo as the independent reading.

#[test]
fn memory_agrees_with_sysinfo() {
    let mut sys = sysinfo::System::new().unwrap();
    sys.refresh_memory();
    let ours = probes::Memory::new(Path::new("/proc")).read().unwrap();
    assert_eq!(ours.total_bytes, sys.total_memory());
    let (a, b) = (ours.available_bytes as f64, sys.available_memory() as f64);
    assert!(
        (a - b).abs() / b < 0.02,
        "available: ours {a} vs sysinfo {b}"
    );
}

#[test]
fn cpu_agrees_with_sysinfo_over_the_same_window() {
    let mut sys = sysinfo::System::new().unwrap();
    sys.refresh_cpu_usage();
    let mut cpu = probes::Cpu::new(Path::new("/proc"));
    // A measurement window, not a synchronisation: both read the counters at its ends.
    std::thread::sleep(Duration::from_millis(1000).max(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL));
    sys.refresh_cpu_usage();
    let usage = cpu.read().unwrap();
    let ours = usage.percent.unwrap();
    let theirs = f64::from(sys.global_cpu_usage());
    assert!(
        (ours - theirs).abs() < 10.0,
        "cpu: ours {ours:.1} vs sysinfo {theirs:.1}"
    );
    assert!(usage.times.idle > 0, "{:?}", usage.times);
}
