//! Giving freed heap memory back to the kernel.
//!
//! Loading a model reads the ONNX file, decodes it and lets tract optimise it: about three
//! times the weights' size, briefly. glibc keeps what is freed in its arenas, and because the
//! weights that stay are allocated in between, the heap cannot shrink from the top: without
//! help the process stays at its loading peak (194 MB with the int8 models, against 124 MB
//! after a trim; docs/performance.md). [`release_freed`] asks glibc to return every free page,
//! once, after loading. Calling it per frame would not help: the per-frame buffers are
//! reused, and refaulting them costs a third of the throughput.
//!
//! glibc also gives every thread that meets a locked arena an arena of its own, which keeps
//! the thread's freed buffers. With inference workers (`pipeline.workers`) each worker's arena
//! held its whole working set: +40 MB of RSS per extra worker, where the heap's live data
//! grows by about 5 MB a backbone run (massif). [`one_arena`] makes every thread share one
//! arena: +21 to +38 MB per extra worker over five runs, at the same throughput
//! (docs/performance.md).

/// `malloc_trim(0)` on glibc; nothing elsewhere (musl and other allocators have no such call).
/// Returns whether glibc released anything.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_freed() -> bool {
    // One of the crate's three unsafe blocks (lib.rs denies unsafe code elsewhere; the others
    // are one_arena below and model::device::loads).
    // SAFETY: malloc_trim takes a plain integer, touches only the allocator's own free lists
    // under its arena locks, and is safe to call from any thread at any time (glibc ≥ 2.0).
    #[allow(unsafe_code)]
    let released = unsafe { libc::malloc_trim(0) };
    released == 1
}

/// `malloc_trim(0)` on glibc; nothing elsewhere (musl and other allocators have no such call).
/// Returns whether glibc released anything.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed() -> bool {
    false
}

/// `mallopt(M_ARENA_MAX, 1)` on glibc: every thread allocates from the main arena. Call it
/// first thing in `main`, before any thread starts (it overrides `MALLOC_ARENA_MAX` from the
/// environment). Returns whether glibc took the setting.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn one_arena() -> bool {
    // SAFETY: mallopt takes two plain integers and only changes the allocator's parameters
    // under its own lock; M_ARENA_MAX exists since glibc 2.10.
    #[allow(unsafe_code)]
    let taken = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    taken == 1
}

/// `mallopt(M_ARENA_MAX, 1)` on glibc; nothing elsewhere.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn one_arena() -> bool {
    false
}

/// This process's resident memory (`VmRSS` of /proc/self/status) in bytes; None off Linux.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
