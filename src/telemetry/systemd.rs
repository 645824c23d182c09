//! systemd integration for `Type=notify` units (systemd/smplcast.service): `READY=1` once the
//! pipeline runs, a `STATUS=` line with the live figures, `STOPPING=1` on a stop request, and
//! watchdog pings (`WATCHDOG=1`) that go out **only while frames flow through inference**: a
//! stalled camera, a hung model or a stuck pipeline stops the pings, and systemd restarts the
//! daemon after `WatchdogSec`.
//!
//! Everything is a no-op without `$NOTIFY_SOCKET` (not started by systemd); pings need
//! `$WATCHDOG_USEC` too. Notification errors are logged once and never stop the daemon.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::telemetry::stats::{Report, Reporter};

/// How often the `STATUS=` line is refreshed when no watchdog is asked for.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Tells systemd that start-up is done (models loaded, source open, broker connected).
pub fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("running: waiting for the first frames")]);
}

/// Start-up is waiting for something that may take long (the broker, compiling GPU kernels):
/// says so, and extends systemd's start timeout to `longer` from now, so a daemon that keeps
/// working is not killed as hung.
pub fn waiting(status: &str, longer: Duration) {
    let usec = u32::try_from(longer.as_micros()).unwrap_or(u32::MAX);
    send(&[NotifyState::Status(status), NotifyState::ExtendTimeoutUsec(usec)]);
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
pub async fn run(reporter: Reporter, shutdown: CancellationToken, io_stop: CancellationToken) {
    if !supervised() {
        return;
    }
    let watchdog = sd_notify::watchdog_enabled();
    tracing::info!(watchdog = ?watchdog, "Supervised by systemd.");
    notify(reporter, watchdog, send, shutdown, io_stop).await;
}

/// [`run`]'s loop, with the watchdog timeout and the way to notify given: every half
/// timeout (systemd's advice), or every [`STATUS_EVERY`] without a watchdog, a status line,
/// and a ping if inference moved since the last one.
async fn notify(
    mut reporter: Reporter,
    watchdog: Option<Duration>,
    mut send: impl FnMut(&[NotifyState]),
    shutdown: CancellationToken,
    io_stop: CancellationToken,
) {
    let every = watchdog.map_or(STATUS_EVERY, |w| (w / 2).max(Duration::from_millis(10)));
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

    /// The watchdog over time, on tokio's paused clock: a ping at every tick while frames go
    /// through inference, none while it is stalled (systemd would restart the daemon), pings
    /// again when it resumes, and `STOPPING=1` on a stop.
    #[tokio::test(start_paused = true)]
    async fn watchdog_pings_only_while_frames_flow() {
        let counters = Arc::new(Counters::default());
        let reporter = Reporter::new(counters.clone(), Arc::default(), Vec::new());
        let sent = Arc::new(std::sync::Mutex::new(Vec::<(f64, String)>::new()));
        let (shutdown, io_stop) = (CancellationToken::new(), CancellationToken::new());
        let t0 = Instant::now();
        let record = {
            let sent = sent.clone();
            move |states: &[NotifyState]| {
                let line: Vec<String> = states.iter().map(ToString::to_string).collect();
                sent.lock().unwrap().push((t0.elapsed().as_secs_f64(), line.join(" ")));
            }
        };
        // WatchdogSec=400ms: a tick every 200 ms.
        let watchdog = Some(Duration::from_millis(400));
        let task =
            tokio::spawn(notify(reporter, watchdog, record, shutdown.clone(), io_stop.clone()));
        let flow = |seconds: u32| {
            let counters = counters.clone();
            async move {
                for _ in 0..seconds * 20 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Counters::add(&counters.frames_inferred, 1);
                }
            }
        };
        flow(1).await; // 0–1 s: 20 frames/s
        tokio::time::sleep(Duration::from_secs(3)).await; // 1–4 s: one frame takes 3 s
        flow(1).await; // 4–5 s: flowing again
        shutdown.cancel();
        task.await.unwrap();

        let sent = sent.lock().unwrap();
        let pings = |from: f64, to: f64| {
            sent.iter().filter(|(t, l)| l.starts_with("WATCHDOG=1") && *t > from && *t < to).count()
        };
        eprintln!(
            "figure: watchdog on a paused clock (400 ms watchdog): {} pings in 1 s of frames, {} \
             in the 3 s one frame took, {} in the 1 s after",
            pings(0.0, 1.1),
            pings(1.1, 3.9),
            pings(4.1, 5.0)
        );
        assert_eq!(pings(0.1, 0.9), 4, "a ping every 200 ms while flowing: {sent:?}");
        assert_eq!(pings(1.1, 3.9), 0, "no ping while stalled: {sent:?}");
        assert!(pings(4.1, 5.0) >= 4, "pings resume with frames: {sent:?}");
        let stalled = sent.iter().filter(|(t, _)| *t > 3.1 && *t < 3.9);
        assert!(
            stalled.clone().count() >= 3
                && stalled.clone().all(|(_, l)| l.contains("stalled: no frame through inference")),
            "the status says it is stalled: {sent:?}"
        );
        assert!(sent.last().unwrap().1.starts_with("STOPPING=1"), "{sent:?}");
    }
}
