//! systemd integration for `Type=notify` units (systemd/smplcast.service): `READY=1` once the
//! pipeline runs, a `STATUS=` line with the live figures, `STOPPING=1` on a stop request, and
//! watchdog pings (`WATCHDOG=1`) that go out **only while frames flow through inference**: a
//! stalled camera, a hung model or a stuck pipeline stops the pings, and systemd restarts the
//! daemon after `WatchdogSec`.
//!
//! Everything is a no-op without `$NOTIFY_SOCKET` (not started by systemd); pings need
//! `$WATCHDOG_USEC` too. Notification errors are logged once and never stop the daemon.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::telemetry::stats::{Report, Reporter};

/// How often the `STATUS=` line is refreshed when no watchdog is asked for.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Tells systemd that start-up is done (models loaded, source open, broker connected).
pub fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("running: waiting for the first frames")]);
}

/// Start-up is waiting for something that may take long (the broker): says so, and extends
/// systemd's start timeout by 10 s, so a daemon that keeps trying is not killed as hung.
pub fn waiting(status: &str) {
    send(&[NotifyState::Status(status), NotifyState::ExtendTimeoutUsec(10_000_000)]);
}

/// Whether this process was started with a notification socket.
fn supervised() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

fn send(states: &[NotifyState]) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Err(e) = sd_notify::notify(states) {
        if !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "Cannot notify systemd ($NOTIFY_SOCKET).");
        }
    }
}

/// Decides the watchdog pings: healthy means inference finished a frame since the last check.
#[derive(Debug)]
pub struct Progress {
    last: u64,
    since: Instant,
}

impl Progress {
    pub fn new(now: Instant) -> Self {
        Progress { last: 0, since: now }
    }

    /// `inferred` is the running count of frames through inference. Returns whether it moved
    /// since the previous call.
    pub fn advanced(&mut self, inferred: u64, now: Instant) -> bool {
        let moved = inferred > self.last;
        if moved {
            self.last = inferred;
            self.since = now;
        }
        moved
    }

    /// How long inference has not moved.
    pub fn stalled_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.since)
    }
}

/// The `STATUS=` text systemd shows in `systemctl status`.
pub fn status_line(report: &Report, stalled: Duration) -> String {
    if stalled >= Duration::from_secs(2) {
        return format!(
            "stalled: no frame through inference for {} s ({} frames in, {} dropped, {} source losses)",
            stalled.as_secs(),
            report.frames_in,
            report.frames_dropped,
            report.source_losses
        );
    }
    format!(
        "{:.1} fps in, {:.1} poses/s, {:.1} people/frame, inference {:.0} ms/frame, {} frames and {} messages dropped",
        report.fps_in,
        report.fps_out,
        report.people_per_frame,
        report.inference_ms,
        report.frames_dropped,
        report.messages_dropped
    )
}

/// The notifier task (on the io runtime): status lines, watchdog pings while inference moves,
/// `STOPPING=1` when `shutdown` is cancelled. Returns at once when not supervised.
pub async fn run(mut reporter: Reporter, shutdown: CancellationToken, io_stop: CancellationToken) {
    if !supervised() {
        return;
    }
    let watchdog = sd_notify::watchdog_enabled();
    // systemd's advice: ping at half the timeout.
    let every = watchdog.map_or(STATUS_EVERY, |w| (w / 2).max(Duration::from_millis(10)));
    tracing::info!(watchdog = ?watchdog, "Supervised by systemd.");
    let mut progress = Progress::new(Instant::now());
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            _ = io_stop.cancelled() => return,
            _ = shutdown.cancelled() => {
                send(&[NotifyState::Stopping, NotifyState::Status("stopping: flushing results")]);
                return;
            }
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let moved =
            progress.advanced(reporter.counters().frames_inferred.load(Ordering::Relaxed), now);
        let status = status_line(&reporter.report(), progress.stalled_for(now));
        if moved && watchdog.is_some() {
            send(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
        } else {
            send(&[NotifyState::Status(&status)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::stats::Counters;
    use std::sync::Arc;

    #[test]
    fn pings_only_when_inference_moves() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0);
        let at = |s| t0 + Duration::from_secs(s);
        assert!(!p.advanced(0, at(1)), "nothing inferred yet");
        assert!(p.advanced(3, at(2)));
        assert!(!p.advanced(3, at(3)), "the same count is a stall");
        assert!(!p.advanced(3, at(9)));
        assert_eq!(p.stalled_for(at(9)), Duration::from_secs(7));
        assert!(p.advanced(4, at(10)));
        assert_eq!(p.stalled_for(at(10)), Duration::ZERO);
    }

    #[test]
    fn status_names_rates_or_the_stall() {
        let counters = Arc::new(Counters::default());
        let mqtt = Arc::new(crate::telemetry::stats::MqttCounters::default());
        let mut reporter = Reporter::new(counters.clone(), mqtt, Vec::new());
        Counters::add(&counters.frames_in, 7);
        let report = reporter.report();
        let running = status_line(&report, Duration::ZERO);
        assert!(running.contains("fps in") && running.contains("people/frame"), "{running}");
        let stalled = status_line(&report, Duration::from_secs(12));
        assert!(stalled.starts_with("stalled: no frame through inference for 12 s"), "{stalled}");
        assert!(stalled.contains("7 frames in"), "{stalled}");
    }
}
