//! Giving freed heap memory back to the kernel.
//!
//! Loading a model reads the ONNX file, decodes it and lets tract optimise it: about three
//! times the weights' size, briefly. glibc keeps what is freed in its arenas, and because the
//! weights that stay are allocated in between, the heap cannot shrink from the top: without
//! help the process stays at its loading peak (194 MB with the int8 models, against 124 MB
//! after a trim; docs/performance.md). [`release_freed`] asks glibc to return every free page,
//! once, after loading. Calling it per frame would not help: the per-frame buffers are
//! reused, and refaulting them costs a third of the throughput.

/// `malloc_trim(0)` on glibc; nothing elsewhere (musl and other allocators have no such call).
/// Returns whether glibc released anything.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_freed() -> bool {
    // One of the crate's two unsafe blocks (lib.rs denies unsafe code elsewhere; the other is
    // model::device::loads).
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

/// This process's resident memory (`VmRSS` of /proc/self/status) in bytes; None off Linux.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
