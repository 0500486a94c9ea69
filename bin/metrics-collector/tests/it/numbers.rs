//! The numbers agree with independent readings taken at the same time (SPEC §2).

use std::time::Duration;

use crate::harness::{Service, wait_for};

/// df's view of `/`: (size, used, avail) in bytes.
fn df_root() -> (u64, u64, u64) {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=size,used,avail", "/"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let nums: Vec<u64> = text
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    (nums[0], nums[1], nums[2])
}

#[test]
fn disk_matches_df() {
    let svc = Service::start(&[]).ready();
    let d = svc.json("/metrics")["disk"].clone();
    let (size, used, avail) = df_root();
    assert_eq!(
        d["total"].as_u64().unwrap(),
        size,
        "total = f_blocks * f_frsize, as df"
    );
    // Other processes write meanwhile: allow 256 MiB of drift between the two readings.
    let slack = 256 << 20;
    assert!(
        d["used"].as_u64().unwrap().abs_diff(used) < slack,
        "used {d} vs df {used}"
    );
    assert!(
        d["free"].as_u64().unwrap().abs_diff(avail) < slack,
        "free {d} vs df avail {avail}"
    );
    let df_percent = used as f64 / (used + avail) as f64 * 100.0;
    assert!(
        (d["percent"].as_f64().unwrap() - df_percent).abs() < 0.2,
        "percent {d} vs df {df_percent}"
    );
}

fn meminfo_percent() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let field = |name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let (total, available) = (field("MemTotal:"), field("MemAvailable:"));
    (total - available) / total * 100.0
}

#[test]
fn ram_matches_proc_meminfo() {
    let svc = Service::start(&[("METRICS_INTERVAL_LIVE", "0.2")]).ready();
    // Bracket the service's reading with two of ours.
    let before = meminfo_percent();
    let ram = svc.json("/metrics")["ram"].as_f64().unwrap();
    let after = meminfo_percent();
    let (lo, hi) = (before.min(after) - 1.0, before.max(after) + 1.0);
    assert!(
        (lo..=hi).contains(&ram),
        "ram {ram} vs /proc/meminfo {before:.2}..{after:.2}"
    );
}

/// Spins every core until dropped.
struct Load(
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    Vec<std::thread::JoinHandle<()>>,
);

impl Load {
    fn all_cores() -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let n = std::thread::available_parallelism().unwrap().get();
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        Self(stop, threads)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.1.drain(..) {
            let _ = t.join();
        }
    }
}

/// psutil's (busy, total) from this machine's /proc/stat, read by the test itself.
fn cpu_counters() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap();
    let f: Vec<u64> = text
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    let total: u64 = f[..8].iter().sum();
    (total - f[3] - f[4], total)
}

/// Waits for the sample after `seq`, then reads the counters at once: consecutive calls
/// bracket (almost exactly) the window the service measured.
fn next_sample(svc: &Service, seq: u64) -> (u64, f64, (u64, u64)) {
    wait_for(Duration::from_secs(10), "the next sample", || {
        let h = svc.json("/health");
        let now = h["sample_seq"].as_u64().unwrap();
        (now > seq).then(|| (now, h["metrics"]["cpu"].as_f64().unwrap(), cpu_counters()))
    })
}

/// Our CPU % for one whole live interval beside the test's own reading of the same interval.
fn cpu_pair(svc: &Service) -> (f64, f64) {
    let (current, _, _) = next_sample(svc, 0);
    let (seq, _, before) = next_sample(svc, current);
    let (seq2, ours, after) = next_sample(svc, seq);
    assert_eq!(seq2, seq + 1, "polling kept up with the sampler");
    let independent = (after.0 - before.0) as f64 / (after.1 - before.1) as f64 * 100.0;
    (ours, independent)
}

#[test]
fn cpu_is_near_100_under_full_load_and_agrees_with_proc_stat_idle_or_busy() {
    let svc = Service::start(&[("METRICS_INTERVAL_LIVE", "1")]).ready();
    {
        let _load = Load::all_cores();
        let busy = wait_for(
            Duration::from_secs(15),
            "cpu >= 90 with every core spinning",
            || {
                let cpu = svc.json("/metrics")["cpu"].as_f64().unwrap();
                (cpu >= 90.0).then_some(cpu)
            },
        );
        assert!(busy <= 100.0);
    }
    // Load stopped. Other tests run beside this one, so "idle" is whatever the machine is
    // doing: the service must agree with the same window read independently.
    let (ours, independent) = cpu_pair(&svc);
    assert!(
        (ours - independent).abs() < 10.0,
        "cpu {ours} vs /proc/stat over the same second {independent:.1}"
    );
}
