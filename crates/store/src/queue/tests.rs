use std::time::{Duration, UNIX_EPOCH};

use super::*;

fn window(second: u64) -> Window {
    let at = UNIX_EPOCH + Duration::from_secs(second);
    Window {
        start: at - Duration::from_secs(1),
        at,
        cpu: Some(sampler::Stat::steady(1.0, 1)),
        ram: Some(sampler::Stat::steady(2.0, 1)),
        gpu: None,
        temperature: None,
        disk: None,
    }
}

fn seconds(q: &Queue) -> Vec<u64> {
    q.front(usize::MAX)
        .map(|w| w.at.duration_since(UNIX_EPOCH).unwrap().as_secs())
        .collect()
}

#[test]
fn a_full_queue_drops_the_oldest_and_counts_it() {
    let mut q = Queue::new(3);
    for s in 1..=5 {
        q.push(window(s));
    }
    assert_eq!(seconds(&q), [3, 4, 5]);
    assert_eq!(q.dropped(), 2);
    assert_eq!(q.rows(), 6);
}

#[test]
fn written_windows_leave_from_the_front_in_order() {
    let mut q = Queue::new(10);
    for s in 1..=4 {
        q.push(window(s));
    }
    assert_eq!(q.front(2).len(), 2);
    q.remove_front(2);
    assert_eq!(seconds(&q), [3, 4]);
    assert_eq!(q.rows(), 4);
    q.remove_front(99);
    assert!(q.is_empty());
    assert_eq!(q.rows(), 0);
}
