//! The idle-CPU floor that `cargo xtask bench` measures beside the service: one thread that
//! wakes every interval and does the raw reads a sample needs (`/proc/stat` and
//! `/proc/meminfo` kept open and read again from offset 0, `statvfs`), and nothing else:
//! no parsing, no deadlines, no encoding.
//!
//!     cargo run --release -p probes --example raw_floor -- [INTERVAL_SECONDS] [DISK_PATH]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let interval = args
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(5), Duration::from_secs_f64);
    let disk = args.next().unwrap_or_else(|| "/".to_owned());
    let stat = File::open("/proc/stat")?;
    let meminfo = File::open("/proc/meminfo")?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut due = Instant::now();
    loop {
        due += interval;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let a = stat.read_at(&mut buf, 0)?;
        let b = meminfo.read_at(&mut buf, 0)?;
        let st = rustix::fs::statvfs(disk.as_str())?;
        std::hint::black_box((a, b, st.f_bavail));
    }
}
