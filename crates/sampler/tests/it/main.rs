//! The engine as the self-healing agent uses it, against this machine's real probes and a
//! really hung mount (a FUSE filesystem whose daemon is stopped, as a dead NFS server).

// Test code: a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use probes::{HostProbes, Roots};
use sampler::Engine;
use testkit::FuseMount;

#[test]
fn sampling_a_host_with_a_hung_mount_returns_within_the_deadline() {
    let mount = FuseMount::new();
    let deadline = Duration::from_millis(300);
    let probes = HostProbes::new(&Roots::default(), &mount.path());
    let mut engine = Engine::new(
        probes.into(),
        Box::new(gpu::NoGpu::new("no GPU here")),
        deadline,
    )
    .unwrap();
    let s = engine.sample();
    assert!(s.sample.disk.is_ok(), "{:?}", s.sample.disk);

    mount.freeze();
    for round in 0..3 {
        let asked = Instant::now();
        let s = engine.sample();
        let took = asked.elapsed();
        // HostProbes::sample would block here until the mount came back.
        assert!(
            took < deadline * 10,
            "round {round}: the agent waited {took:?} on a hung mount"
        );
        let why = s.sample.disk.as_ref().unwrap_err().reason().to_owned();
        assert!(
            why.contains("timed out") || why.contains("has not returned"),
            "{why}"
        );
        assert!(s.sample.memory.is_ok(), "the other families are read");
    }
    mount.thaw();
    testkit::wait_for(Duration::from_secs(10), "the disk to read again", || {
        engine.sample().sample.disk.ok()
    });
}
