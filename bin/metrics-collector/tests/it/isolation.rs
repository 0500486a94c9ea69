//! A disk that hangs for real: a FUSE mount (bindfs) whose daemon is stopped, so statvfs on
//! it blocks, as on a dead network mount.

use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::harness::{Service, TempDir, get, wait_for};

/// A bindfs mount; on drop its daemon is resumed and the mount removed, whatever happened.
struct FuseMount {
    dir: TempDir,
    daemon: Pid,
}

impl FuseMount {
    fn new() -> Self {
        let dir = TempDir::new("fuse");
        std::fs::create_dir_all(dir.0.join("src")).unwrap();
        std::fs::create_dir_all(dir.0.join("mnt")).unwrap();
        let status = Command::new("bindfs")
            .arg(dir.0.join("src"))
            .arg(dir.0.join("mnt"))
            .status()
            .expect("bindfs is needed for this test: `cargo xtask test` installs it (apt-get install bindfs)");
        assert!(
            status.success(),
            "bindfs could not mount (is /dev/fuse there?)"
        );
        let mnt = dir.0.join("mnt").to_string_lossy().into_owned();
        let pid = wait_for(Duration::from_secs(5), "the bindfs daemon", || {
            let out = Command::new("pgrep")
                .args(["-f", &format!("bindfs .* {mnt}$")])
                .output()
                .ok()?;
            String::from_utf8(out.stdout)
                .ok()?
                .lines()
                .next()?
                .trim()
                .parse::<i32>()
                .ok()
        });
        Self {
            dir,
            daemon: Pid::from_raw(pid).unwrap(),
        }
    }

    fn path(&self) -> String {
        self.dir.0.join("mnt").to_string_lossy().into_owned()
    }

    fn freeze(&self) {
        kill_process(self.daemon, Signal::STOP).unwrap();
    }

    fn thaw(&self) {
        kill_process(self.daemon, Signal::CONT).unwrap();
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        let _ = kill_process(self.daemon, Signal::CONT);
        let _ = Command::new("fusermount")
            .arg("-u")
            .arg(self.dir.0.join("mnt"))
            .status();
    }
}

#[test]
fn a_hung_disk_mount_nulls_only_disk_and_the_loop_keeps_its_pace() {
    let mount = FuseMount::new();
    let svc = Service::start(&[
        ("METRICS_INTERVAL_LIVE", "0.5"),
        ("METRICS_DISK_PATH", &mount.path()),
    ])
    .ready();
    assert!(svc.json("/metrics")["disk"]["total"].is_u64());

    mount.freeze();
    let h = wait_for(Duration::from_secs(10), "disk to time out", || {
        let h = svc.json("/health");
        (h["probes"]["disk"]["state"] == "error").then_some(h)
    });
    let reason = h["probes"]["disk"]["error"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("timed out") || reason.contains("has not returned"),
        "{reason}"
    );
    // Samples keep coming at their interval, with everything but the disk.
    let seq = h["sample_seq"].as_u64().unwrap();
    let started = Instant::now();
    let later = wait_for(
        Duration::from_secs(10),
        "four more samples while the disk hangs",
        || {
            let h = svc.json("/health");
            (h["sample_seq"].as_u64().unwrap() >= seq + 4).then_some(h)
        },
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "ticks slowed down: {:?} for 4",
        started.elapsed()
    );
    assert_eq!(later["probes"]["cpu"]["state"], "ok", "{later}");
    assert_eq!(later["probes"]["memory"]["state"], "ok", "{later}");
    assert_eq!(later["status"], "degraded");
    let m = get(svc.addr, "/metrics").json();
    assert!(m["disk"]["percent"].is_null() && m["cpu"].is_f64(), "{m}");

    mount.thaw();
    wait_for(Duration::from_secs(10), "disk to read again", || {
        (svc.json("/health")["probes"]["disk"]["state"] == "ok").then_some(())
    });
    assert!(svc.json("/metrics")["disk"]["total"].is_u64());
}
