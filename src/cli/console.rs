//! Lines for a person at a terminal, on stdout.
//!
//! `println!` panics when stdout is a pipe whose reader has gone (`smplcast demo | head`). The
//! commands that print use [`say!`](crate::say) instead: it reports whether the line was
//! written, and the caller stops as if interrupted when it was not.

use std::io::Write;

/// Writes one line to stdout and flushes it; false when stdout is closed or failing.
pub fn line(args: std::fmt::Arguments) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush()).is_ok()
}

/// `println!` that returns whether the line was written instead of panicking; see
/// [`console`](crate::cli::console).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::cli::console::line(format_args!($($arg)*)) };
}
