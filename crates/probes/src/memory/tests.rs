use super::*;

// The head of /proc/meminfo of a 16 GiB desktop (Linux 6.1).
const DESKTOP: &str = "MemTotal:       16318412 kB\n\
MemFree:         1243880 kB\n\
MemAvailable:   10235308 kB\n\
Buffers:          612120 kB\n\
Cached:          8263828 kB\n\
SwapCached:         1288 kB\n";

#[test]
fn percent_is_total_less_available_over_total() {
    let m = parse_meminfo(DESKTOP).unwrap();
    assert_eq!(m.total_bytes, 16318412 * 1024);
    assert_eq!(m.available_bytes, 10235308 * 1024);
    // psutil: (16318412 - 10235308) / 16318412 * 100 = 37.277...
    assert_eq!(crate::round1(m.percent().unwrap()), 37.3);
}

#[test]
fn old_kernels_without_memavailable_use_free_buffers_and_cache() {
    let m = parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n")
        .unwrap();
    assert_eq!(m.available_bytes, 400 * 1024);
    assert_eq!(m.percent(), Some(60.0));
}

#[test]
fn broken_meminfo_is_an_error() {
    for (text, want) in [
        ("", "no MemTotal"),
        ("MemTotal: 0 kB\nMemAvailable: 0 kB\n", "MemTotal is 0"),
        ("MemTotal: lots kB\n", "MemTotal is not a number"),
        ("MemTotal: 10 kB\n", "neither MemAvailable"),
    ] {
        let err = parse_meminfo(text).unwrap_err();
        assert!(err.contains(want), "{text:?}: {err}");
    }
}
