//! The loop's isolation, tested with probes that misbehave on purpose (through the trait:
//! a hung mount or a panicking driver cannot be summoned on demand).

use std::sync::Condvar;
use std::sync::atomic::{AtomicU32, Ordering};

use probes::{DiskUsage, Error, MemoryUsage};

use super::*;

struct Value(f64);
impl Probe for Value {
    type Output = f64;
    fn name(&self) -> &'static str {
        "value"
    }
    fn read(&mut self) -> Result<f64, Error> {
        Ok(self.0)
    }
}

struct Mem;
impl Probe for Mem {
    type Output = MemoryUsage;
    fn name(&self) -> &'static str {
        "memory"
    }
    fn read(&mut self) -> Result<MemoryUsage, Error> {
        Ok(MemoryUsage {
            total_bytes: 100,
            available_bytes: 25,
        })
    }
}

/// A disk whose statvfs blocks until released, like one on a dead NFS server.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);
impl Gate {
    fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }
}
struct HangingDisk {
    gate: Gate,
    reads: Arc<AtomicU32>,
}
impl Probe for HangingDisk {
    type Output = DiskUsage;
    fn name(&self) -> &'static str {
        "disk"
    }
    fn read(&mut self) -> Result<DiskUsage, Error> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let (lock, cvar) = &*self.gate.0;
        let _open = cvar
            .wait_while(lock.lock().unwrap(), |open| !*open)
            .unwrap();
        Ok(DiskUsage {
            total_bytes: 100,
            used_bytes: 40,
            free_bytes: 60,
        })
    }
}

/// A thermal driver that panics on its first read only.
struct PanicsOnce(bool);
impl Probe for PanicsOnce {
    type Output = f64;
    fn name(&self) -> &'static str {
        "thermal"
    }
    fn read(&mut self) -> Result<f64, Error> {
        if !self.0 {
            self.0 = true;
            panic!("sensor driver exploded");
        }
        Ok(47.0)
    }
}

fn no_gpu() -> Box<dyn GpuBackend> {
    Box::new(gpu::NoGpu::new("no GPU here"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_disk_costs_only_the_disk_field_and_one_thread() {
    let gate = Gate::default();
    let reads = Arc::new(AtomicU32::new(0));
    let disk = HangingDisk {
        gate: gate.clone(),
        reads: reads.clone(),
    };
    let mut sampler = Sampler::new(
        Value(12.5),
        Mem,
        disk,
        Value(40.0),
        no_gpu(),
        Duration::from_millis(100),
    )
    .unwrap();

    let first = sampler.tick().await;
    let s = &first.snapshot;
    assert_eq!(s.sample.cpu_percent, Ok(12.5));
    assert_eq!(s.sample.memory.as_ref().unwrap().percent(), Some(75.0));
    assert_eq!(s.sample.cpu_celsius, Ok(40.0));
    let reason = s.sample.disk.as_ref().unwrap_err().reason().to_owned();
    assert!(reason.contains("timed out after 0.1 s"), "{reason}");
    let disk_state = s.probes.iter().find(|p| p.name == "disk").unwrap();
    assert!(disk_state.error.is_some() && disk_state.last_ok.is_none());
    assert!(
        s.succeeded(),
        "the other families still count as a successful sample"
    );

    // The read is still stuck: the next tick reports it and does not start another one.
    let second = sampler.tick().await;
    let reason = second
        .snapshot
        .sample
        .disk
        .as_ref()
        .unwrap_err()
        .reason()
        .to_owned();
    assert!(reason.contains("has not returned yet"), "{reason}");
    assert_eq!(reads.load(Ordering::SeqCst), 1);
    assert_eq!(second.snapshot.seq, 2);

    // The mount comes back: the next tick reads it again.
    gate.open();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let next = sampler.tick().await;
        if let Ok(d) = &next.snapshot.sample.disk {
            assert_eq!(d.percent(), Some(40.0));
            break;
        }
        assert!(Instant::now() < deadline, "disk never recovered");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_probe_is_unavailable_for_one_tick_only() {
    let mut sampler = Sampler::new(
        Value(1.0),
        Mem,
        Value2Disk,
        PanicsOnce(false),
        no_gpu(),
        Duration::from_secs(5),
    )
    .unwrap();
    let first = sampler.tick().await;
    let reason = first
        .snapshot
        .sample
        .cpu_celsius
        .as_ref()
        .unwrap_err()
        .reason()
        .to_owned();
    assert!(
        reason.contains("panicked: sensor driver exploded"),
        "{reason}"
    );
    let second = sampler.tick().await;
    assert_eq!(second.snapshot.sample.cpu_celsius, Ok(47.0));
}

struct Value2Disk;
impl Probe for Value2Disk {
    type Output = DiskUsage;
    fn name(&self) -> &'static str {
        "disk"
    }
    fn read(&mut self) -> Result<DiskUsage, Error> {
        Ok(DiskUsage {
            total_bytes: 10,
            used_bytes: 5,
            free_bytes: 5,
        })
    }
}

/// A CPU probe that takes most of the interval to answer.
struct SlowCpu(Duration);
impl Probe for SlowCpu {
    type Output = f64;
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn read(&mut self) -> Result<f64, Error> {
        std::thread::sleep(self.0);
        Ok(50.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_samples_do_not_push_later_ticks_back() {
    let live = Duration::from_millis(100);
    // Each tick spends 80 ms of its 100 ms reading: a loop that slept `live` after each
    // sample would space them 180 ms apart.
    let sampler = Sampler::new(
        SlowCpu(Duration::from_millis(80)),
        Mem,
        Value2Disk,
        Value(1.0),
        no_gpu(),
        live,
    )
    .unwrap();
    let (publish, mut latest) = watch::channel(None);
    let sampling = start(sampler, live, publish, None);
    let mut stamps = Vec::new();
    while stamps.len() < 11 {
        tokio::time::timeout(Duration::from_secs(10), latest.changed())
            .await
            .unwrap()
            .unwrap();
        let p = latest.borrow_and_update().clone().unwrap();
        stamps.push(p.snapshot.sample.taken_at);
    }
    sampling.stop();
    let span = stamps[10].duration_since(stamps[0]).unwrap();
    let mean = span / 10;
    assert!(
        mean < Duration::from_millis(140),
        "ticks drifted: mean spacing {mean:?}"
    );
}
