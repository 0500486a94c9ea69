//! What one tick produces ([`Snapshot`]) and what readers see of it ([`Published`]): the
//! snapshot with the response bodies an [`Encode`] made of it, once, on the probe thread.

use std::time::{Duration, Instant, SystemTime};

use probes::{Sample, Unavailable};

/// One value per family a tick reads, each in its own named field.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Families<T> {
    pub cpu: T,
    pub memory: T,
    pub disk: T,
    pub thermal: T,
    pub gpu: T,
}

impl<T> Families<T> {
    /// Every family with its name (its key in `/health` and in logs), in a fixed order.
    pub fn named(&self) -> [(&'static str, &T); 5] {
        [
            ("cpu", &self.cpu),
            ("memory", &self.memory),
            ("disk", &self.disk),
            ("thermal", &self.thermal),
            ("gpu", &self.gpu),
        ]
    }

    /// As [`named`](Self::named), mutably.
    pub fn named_mut(&mut self) -> [(&'static str, &mut T); 5] {
        [
            ("cpu", &mut self.cpu),
            ("memory", &mut self.memory),
            ("disk", &mut self.disk),
            ("thermal", &mut self.thermal),
            ("gpu", &mut self.gpu),
        ]
    }
}

/// How one family's read went in a tick, for `/health`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FamilyState {
    /// How long the read took (its deadline when it timed out).
    pub took: Duration,
    /// Why the read gave nothing; `None` when it succeeded.
    pub error: Option<Unavailable>,
    /// When this family last gave a reading.
    pub last_ok: Option<SystemTime>,
    /// Reads of this family that failed since the engine started (a host that lacks the
    /// hardware is no failure).
    pub errors: u64,
}

/// Everything one sampling tick produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Increases by one per snapshot built, from 1; never goes back.
    pub seq: u64,
    pub sample: Sample,
    pub gpu: gpu::GpuSample,
    pub families: Families<FamilyState>,
}

impl Snapshot {
    /// SPEC §2 `temperature`: the CPU package sensor; the GPU's only when the host has no
    /// CPU sensor at all. A CPU sensor that exists but fails or times out gives `None`
    /// (its reason is the thermal family's error): the GPU is no stand-in for a CPU that
    /// may be overheating.
    pub fn temperature(&self) -> Option<f64> {
        match &self.sample.cpu_celsius {
            Ok(celsius) => Some(*celsius),
            Err(why) if why.is_absent() => self.gpu.max_celsius(),
            Err(_) => None,
        }
    }

    /// The headline numbers as `/metrics` shows them, one decimal, `None` when unknown:
    /// cpu, ram, gpu, temperature and the disk percent (the order of
    /// [`Series::ALL`](crate::Series::ALL)).
    pub fn values(&self) -> [Option<f64>; 5] {
        let one_decimal = |v: Option<f64>| v.filter(|x| x.is_finite()).map(probes::round1);
        [
            one_decimal(self.sample.cpu_percent.as_ref().ok().copied()),
            one_decimal(self.sample.memory.as_ref().ok().and_then(|m| m.percent())),
            one_decimal(self.gpu.mean_utilization()),
            one_decimal(self.temperature()),
            one_decimal(self.sample.disk.as_ref().ok().and_then(|d| d.percent())),
        ]
    }

    /// A tick succeeded when it read at least one of the host's core families.
    pub fn succeeded(&self) -> bool {
        self.sample.cpu_percent.is_ok() || self.sample.memory.is_ok() || self.sample.disk.is_ok()
    }
}

/// Turns each snapshot into what readers are served (the API's response bodies), once per
/// tick, on the probe thread that built it: readers never encode.
pub trait Encode: Send + 'static {
    type Bodies: Send + Sync + 'static;

    /// The bodies of `snapshot`; `previous` is the last one published, whose parts may be
    /// reused where nothing changed.
    fn encode(
        &mut self,
        snapshot: &Snapshot,
        previous: Option<&Published<Self::Bodies>>,
    ) -> Self::Bodies;

    /// The stream event of a sample (what the ring keeps for resuming streams); empty for
    /// encoders that serve no stream.
    fn event(_bodies: &Self::Bodies) -> bytes::Bytes {
        bytes::Bytes::new()
    }
}

/// For users of the engine that serve nothing (tests, the self-healing agent's loop).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoBodies;

impl Encode for NoBodies {
    type Bodies = ();

    fn encode(&mut self, _: &Snapshot, _: Option<&Published<()>>) {}
}

/// A snapshot as readers see it: the data, when it was taken, and its encoded bodies.
#[derive(Debug)]
pub struct Published<B> {
    pub snapshot: Snapshot,
    /// Monotonic time the tick's reads started, for the sample's age.
    pub taken: Instant,
    /// When this tick was due on the schedule (`None` for a sample taken on demand).
    pub due: Option<Instant>,
    /// Monotonic time of the last tick that succeeded (this one or an earlier one).
    pub last_success: Option<Instant>,
    pub bodies: B,
}
