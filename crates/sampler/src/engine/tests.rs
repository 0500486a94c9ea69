//! The engine's isolation, tested with probes that misbehave on purpose (through the trait:
//! a hung mount or a panicking driver cannot be summoned on demand).

use std::sync::Condvar;
use std::sync::atomic::{AtomicU32, AtomicU64};

use probes::{DiskUsage, Error, MemoryUsage};
use tokio::sync::watch;

use super::*;
use crate::{Encode, NoBodies, Published, Running};

const WAIT: Duration = Duration::from_secs(10);

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

/// A CPU that is always as busy as said.
struct Busy(f64);
impl Probe for Busy {
    type Output = CpuUsage;
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn read(&mut self) -> Result<CpuUsage, Error> {
        Ok(CpuUsage {
            percent: Ok(self.0),
            times: probes::CpuTimes::default(),
        })
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

struct Disk;
impl Probe for Disk {
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

fn probes(disk: impl Probe<Output = DiskUsage> + 'static) -> Probes {
    Probes {
        cpu: Box::new(Busy(12.5)),
        memory: Box::new(Mem),
        disk: Box::new(disk),
        thermal: Box::new(Value(40.0)),
    }
}

/// Waits until `f` gives something, failing with `what` after `WAIT`.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn latest<B>(rx: &watch::Receiver<Option<Arc<Published<B>>>>) -> Option<Arc<Published<B>>> {
    rx.borrow().clone()
}

fn seq<B>(rx: &watch::Receiver<Option<Arc<Published<B>>>>) -> u64 {
    latest(rx).map_or(0, |p| p.snapshot.seq)
}

#[test]
fn a_hung_disk_costs_only_the_disk_field_and_one_extra_thread() {
    let gate = Gate::default();
    let reads = Arc::new(AtomicU32::new(0));
    let disk = HangingDisk {
        gate: gate.clone(),
        reads: reads.clone(),
    };
    let mut engine = Engine::new(probes(disk), no_gpu(), Duration::from_millis(100)).unwrap();

    let s = engine.sample();
    assert_eq!(s.sample.cpu_percent, Ok(12.5));
    assert_eq!(s.sample.memory.as_ref().unwrap().percent(), Some(75.0));
    assert_eq!(s.sample.cpu_celsius, Ok(40.0));
    let reason = s.sample.disk.as_ref().unwrap_err().reason().to_owned();
    assert!(reason.contains("timed out after 0.1 s"), "{reason}");
    assert!(s.families.disk.error.is_some() && s.families.disk.last_ok.is_none());
    assert!(s.families.cpu.error.is_none() && s.families.cpu.last_ok.is_some());
    assert!(
        s.succeeded(),
        "the other families still count as a successful sample"
    );

    // The read is still stuck: later ticks report it, start no other read of it, and run
    // on one spare thread beside the stuck one, however many ticks pass.
    for n in 2..=4 {
        let s = engine.sample();
        let reason = s.sample.disk.as_ref().unwrap_err().reason().to_owned();
        assert!(reason.contains("has not returned yet"), "{reason}");
        assert_eq!(s.seq, n);
    }
    assert_eq!(reads.load(Ordering::SeqCst), 1);
    let stats = engine.pool_stats();
    assert_eq!((stats.threads, stats.stuck), (2, 1), "{stats:?}");

    // The mount comes back: the next tick reads it again, and the spare is let go.
    gate.open();
    wait_for("the disk to read again", || {
        engine.sample().sample.disk.ok().map(|d| {
            assert_eq!(d.percent(), Some(40.0));
        })
    });
    wait_for("one probe thread again", || {
        (engine.pool_stats().threads == 1).then_some(())
    });
}

#[test]
fn a_panicking_probe_is_unavailable_for_one_tick_only() {
    let mut engine = Engine::new(
        Probes {
            thermal: Box::new(PanicsOnce(false)),
            ..probes(Disk)
        },
        no_gpu(),
        Duration::from_secs(5),
    )
    .unwrap();
    let first = engine.sample();
    let reason = first
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
    assert_eq!(first.families.thermal.errors, 1);
    let second = engine.sample();
    assert_eq!(second.sample.cpu_celsius, Ok(47.0));
    // The failure is remembered as a count; the families that never failed count none,
    // and the host's lack of a GPU is no failure either.
    assert_eq!(second.families.thermal.errors, 1);
    assert_eq!(second.families.cpu.errors, 0);
    assert_eq!(second.families.gpu.errors, 0);
    assert!(
        second.sample.cpu_times.is_some(),
        "the CPU's counters are kept"
    );
}

/// A CPU probe that takes most of the interval to answer.
struct SlowCpu(Duration);
impl Probe for SlowCpu {
    type Output = CpuUsage;
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn read(&mut self) -> Result<CpuUsage, Error> {
        std::thread::sleep(self.0);
        Ok(CpuUsage {
            percent: Ok(50.0),
            times: probes::CpuTimes::default(),
        })
    }
}

#[test]
fn slow_reads_do_not_push_the_schedule_back() {
    let live = Duration::from_millis(100);
    // Each tick spends 80 ms of its 100 ms reading: a loop that slept `live` after each
    // sample would be due every 180 ms. Whatever the load on this machine, every tick is
    // due on the grid first + k * live, and reads start no earlier than due.
    let engine = Engine::new(
        Probes {
            cpu: Box::new(SlowCpu(Duration::from_millis(80))),
            ..probes(Disk)
        },
        no_gpu(),
        live,
    )
    .unwrap();
    let (publish, rx) = watch::channel(None);
    let running = crate::start(engine, NoBodies, live, publish, Default::default());
    let mut dues = Vec::new();
    wait_for("eleven ticks", || {
        let p = latest(&rx)?;
        if dues.last() != Some(&p.due) {
            assert!(p.taken >= p.due.unwrap(), "read before it was due");
            dues.push(p.due);
        }
        (dues.len() >= 11).then_some(())
    });
    running.stop();
    let first = dues[0].unwrap();
    for due in &dues[1..] {
        let since = due.unwrap().duration_since(first);
        assert_eq!(
            since.as_nanos() % live.as_nanos(),
            0,
            "a tick was due {since:?} after the first: off the grid"
        );
    }
}

#[test]
fn after_a_hung_read_returns_one_thread_wakes_once_per_tick_again() {
    let gate = Gate::default();
    let reads = Arc::new(AtomicU32::new(0));
    let disk = HangingDisk {
        gate: gate.clone(),
        reads: reads.clone(),
    };
    let live = Duration::from_millis(40);
    let engine = Engine::new(probes(disk), no_gpu(), Duration::from_millis(10)).unwrap();
    let (publish, rx) = watch::channel(None);
    let running = crate::start(engine, NoBodies, live, publish, Default::default());
    wait_for("ticks with a spare beside the hung read", || {
        let s = seq(&rx);
        (s >= 3 && running.probe_threads() == 2).then_some(())
    });
    gate.open();
    wait_for("the spare to retire", || {
        (running.probe_threads() == 1).then_some(())
    });
    let (seq0, wakeups0) = (seq(&rx), running.probe_wakeups());
    wait_for("ten more ticks", || (seq(&rx) >= seq0 + 10).then_some(()));
    let (seq1, wakeups1) = (seq(&rx), running.probe_wakeups());
    running.stop();
    let (ticks, wakeups) = (seq1 - seq0, wakeups1 - wakeups0);
    // The window's edges may cut one tick's wake-up either way.
    assert!(
        wakeups <= ticks + 1,
        "{wakeups} wake-ups for {ticks} ticks: more than one thread wakes per tick"
    );
    assert!(reads.load(Ordering::SeqCst) >= 2, "the disk read again");
}

/// Bodies whose encoding panics on some ticks: a bug in a layer above must not end the
/// schedule.
struct PanicsOn(Vec<u64>, Arc<AtomicU64>);
impl Encode for PanicsOn {
    type Bodies = ();
    fn encode(&mut self, snapshot: &Snapshot, _: Option<&Published<()>>) {
        self.1.store(snapshot.seq, Ordering::SeqCst);
        assert!(
            !self.0.contains(&snapshot.seq),
            "encoding tick {} exploded",
            snapshot.seq
        );
    }
}

#[test]
fn a_panic_while_building_a_tick_costs_that_tick_and_the_schedule_goes_on() {
    let live = Duration::from_millis(20);
    let engine = Engine::new(probes(Disk), no_gpu(), live).unwrap();
    let (publish, rx) = watch::channel(None);
    let encoded = Arc::new(AtomicU64::new(0));
    let running: Running = crate::start(
        engine,
        PanicsOn(vec![2, 3, 4], encoded.clone()),
        live,
        publish,
        Default::default(),
    );
    wait_for("ticks after three that panicked in a row", || {
        (seq(&rx) >= 8).then_some(())
    });
    running.stop();
    assert!(encoded.load(Ordering::SeqCst) >= 8);
}

#[test]
fn the_gpu_stands_in_for_temperature_only_on_a_host_without_a_cpu_sensor() {
    struct Thermal(Result<f64, Error>);
    impl Probe for Thermal {
        type Output = f64;
        fn name(&self) -> &'static str {
            "thermal"
        }
        fn read(&mut self) -> Result<f64, Error> {
            match &self.0 {
                Ok(v) => Ok(*v),
                Err(Error::Absent(why)) => Err(Error::Absent(why.clone())),
                Err(e) => Err(Error::NotAvailable(e.to_string())),
            }
        }
    }
    let control = gpu::fake::Control::default();
    control.set_devices(vec![gpu::Device {
        index: 0,
        celsius: Some(71.0),
        utilization_percent: Some(10.0),
        ..Default::default()
    }]);
    let cases = [
        (Ok(48.0), Some(48.0)),
        (Err(Error::Absent("no sensor".into())), Some(71.0)),
        (Err(Error::NotAvailable("hwmon read EIO".into())), None),
    ];
    for (reading, expected) in cases {
        let label = format!("{reading:?}");
        let mut engine = Engine::new(
            Probes {
                thermal: Box::new(Thermal(reading)),
                ..probes(Disk)
            },
            Box::new(gpu::fake::FakeGpu::new(control.clone())),
            Duration::from_secs(5),
        )
        .unwrap();
        let s = engine.sample();
        assert_eq!(s.temperature(), expected, "thermal {label}");
        if expected.is_none() {
            let e = s.families.thermal.error.as_ref().unwrap();
            assert!(!e.is_absent() && e.reason().contains("EIO"), "{e:?}");
        }
    }
}

#[test]
fn windows_lie_on_the_persist_grid_and_every_tick_reaches_the_ring() {
    struct Collect(Arc<Mutex<Vec<crate::Window>>>);
    impl crate::WindowSink for Collect {
        fn offer(&self, w: crate::Window) -> Result<(), crate::Window> {
            self.0.lock().unwrap().push(w);
            Ok(())
        }
    }
    let live = Duration::from_millis(20);
    let every = Duration::from_millis(100);
    let engine = Engine::new(probes(Disk), no_gpu(), live).unwrap();
    let (publish, rx) = watch::channel(None);
    let ring = Arc::new(crate::Ring::new(live, every));
    let closed = Arc::new(Mutex::new(Vec::new()));
    let outputs = crate::Outputs {
        persist: Some(crate::Persist::new(Collect(closed.clone()), every)),
        ring: Some(ring.clone()),
    };
    let running = crate::start(engine, NoBodies, live, publish, outputs);
    wait_for("four windows", || {
        (closed.lock().unwrap().len() >= 4).then_some(())
    });
    let published = seq(&rx);
    running.stop();
    let windows = closed.lock().unwrap().clone();
    for w in &windows[..windows.len() - 1] {
        let start = crate::unix_ms(w.start);
        assert_eq!(start % 100, 0, "on the grid: {w:?}");
        assert_eq!(crate::unix_ms(w.at), start + 100, "closed at the next line");
    }
    for pair in windows.windows(2) {
        assert!(pair[0].start < pair[1].start, "in order, none twice");
    }
    assert!(
        ring.stats().samples as u64 >= published,
        "every tick published is in the ring: {} < {published}",
        ring.stats().samples
    );
    assert!(ring.stats().windows >= 4);
}

/// A probe whose reads take a random while, up to `most`: around the deadline, so some
/// finish in time, some overrun it and come back later.
struct Jittery<T: Clone + Send> {
    seed: u64,
    most: Duration,
    value: T,
}
impl<T: Clone + Send> Probe for Jittery<T> {
    type Output = T;
    fn name(&self) -> &'static str {
        "jittery"
    }
    fn read(&mut self) -> Result<T, Error> {
        // xorshift64: fixed seeds, the same run every time.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let micros = u64::try_from(self.most.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        std::thread::sleep(Duration::from_micros(self.seed % micros));
        Ok(self.value.clone())
    }
}

#[test]
fn reads_that_overrun_at_random_never_stall_the_schedule() {
    // Every family's read takes 0-40 ms against a 20 ms deadline and interval, for 5 s:
    // overruns, spares, threads coming back and ticks skipped behind a stall, in every
    // order. Snapshots keep coming all along.
    let live = Duration::from_millis(20);
    fn jittery<T: Clone + Send>(seed: u64, value: T) -> Jittery<T> {
        Jittery {
            seed,
            most: Duration::from_millis(40),
            value,
        }
    }
    let engine = Engine::new(
        Probes {
            cpu: Box::new(jittery(
                1,
                CpuUsage {
                    percent: Ok(1.0),
                    times: probes::CpuTimes::default(),
                },
            )),
            memory: Box::new(jittery(
                2,
                MemoryUsage {
                    total_bytes: 4,
                    available_bytes: 1,
                },
            )),
            disk: Box::new(jittery(
                3,
                DiskUsage {
                    total_bytes: 2,
                    used_bytes: 1,
                    free_bytes: 1,
                },
            )),
            thermal: Box::new(jittery(4, 40.0)),
        },
        no_gpu(),
        live,
    )
    .unwrap();
    let (publish, rx) = watch::channel(None);
    let running = crate::start(engine, NoBodies, live, publish, Default::default());
    let start = Instant::now();
    let (mut last, mut since) = (0, Instant::now());
    while start.elapsed() < Duration::from_secs(5) {
        let s = seq(&rx);
        if s != last {
            (last, since) = (s, Instant::now());
        }
        assert!(
            since.elapsed() < Duration::from_secs(2),
            "no snapshot for 2 s after {last} ({} probe threads)",
            running.probe_threads()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(last >= 20, "{last} snapshots in 5 s");
    running.stop();
}
