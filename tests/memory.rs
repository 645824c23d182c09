//! `memory::release_freed` gives freed heap pages back: the mechanism behind the daemon's
//! steady RSS (docs/performance.md). Its own test binary, so no other test allocates while the
//! process's RSS is read.
#![cfg(all(feature = "runtime", target_os = "linux", target_env = "gnu"))]

use smplcast::telemetry::memory::{release_freed, rss_bytes};

#[test]
fn freed_memory_between_live_blocks_goes_back_to_the_kernel() {
    const MB: u64 = 1 << 20;
    // 64 KiB blocks (below glibc's mmap threshold, so on the heap), touched so they are
    // resident; every other one stays alive, so the freed ones are holes the heap cannot
    // shrink past: what loading a model leaves behind.
    let mut blocks: Vec<Vec<u8>> = (0..2048).map(|i| vec![(i % 251) as u8 + 1; 64 << 10]).collect();
    let live: Vec<Vec<u8>> =
        blocks.drain(..).enumerate().filter(|(i, _)| i % 2 == 0).map(|(_, b)| b).collect();
    let before = rss_bytes().expect("/proc/self/status");
    assert!(release_freed(), "glibc released nothing");
    let after = rss_bytes().expect("/proc/self/status");
    assert!(
        before - after >= 48 * MB,
        "RSS {} MB → {} MB: expected ≥ 48 MB back of the 64 MB freed",
        before / MB,
        after / MB
    );
    // The live half is intact.
    assert!(live
        .iter()
        .enumerate()
        .all(|(i, b)| b.iter().all(|v| *v == ((2 * i) % 251) as u8 + 1)));
}
