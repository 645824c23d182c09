//! The capture stage: frames from the source into the frame queue until the source ends or
//! the daemon stops; the source's state (streaming, lost) to the publisher, retained.

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use super::rate::{ModelRate, Sampler};
use super::Captured;
use crate::queue;
use crate::source::FrameSource;
use crate::telemetry::stats::Counters;
use crate::telemetry::{CameraState, Notice, Streaming};

/// The capture thread: frames from the source into the frame queue until the source ends or
/// `shutdown`.
pub fn capture(
    mut source: Box<dyn FrameSource>,
    live: bool,
    rate: ModelRate,
    frame_tx: queue::Sender<Captured>,
    notice_tx: queue::Sender<Notice>,
    counters: &Counters,
    shutdown: &CancellationToken,
) -> Result<()> {
    let mut throttle = super::Throttle::default();
    let mut sampler = Sampler::new(rate, source.fps());
    // The source's state as last published: None before the first frame.
    let mut streaming: Option<bool> = None;
    let say = |state: Streaming, reason: Option<String>, source: &dyn FrameSource| {
        let state = CameraState {
            state,
            source: source.describe(),
            reason,
            since_utc_us: crate::source::CaptureTime::now().utc_us,
        };
        let _ = notice_tx.send(Notice::Camera(state));
    };
    while !shutdown.is_cancelled() {
        let next = counters.stages.capture.time(|| source.next_frame());
        match next {
            Ok(Some(frame)) => {
                if streaming != Some(true) {
                    say(Streaming::Streaming, None, source.as_ref());
                    streaming = Some(true);
                }
                Counters::add(&counters.frames_in, 1);
                if live && sampler.fps().is_none() {
                    sampler.learn(source.fps());
                }
                if !sampler.keep(frame_tx.dropped()) {
                    Counters::add(&counters.frames_strided, 1);
                    continue;
                }
                let fps = sampler.fps();
                let milli = fps.map_or(0, |f| (f * 1e3).round() as u64);
                counters.model_fps_milli.store(milli, std::sync::atomic::Ordering::Relaxed);
                let frame = Captured::Frame { frame, fps: fps.map(|f| f as f32) };
                let sent = if live { frame_tx.send(frame) } else { frame_tx.send_wait(frame) };
                if sent.is_err() {
                    break; // inference is gone; it reports why
                }
            }
            Ok(None) => {
                tracing::info!("Source ended.");
                break;
            }
            Err(crate::source::Error::Gone { reason, .. }) => {
                if streaming != Some(false) {
                    Counters::add(&counters.source_losses, 1);
                    say(Streaming::Lost, Some(reason), source.as_ref());
                    streaming = Some(false);
                    // The frames before the gap get their results now, not when it ends.
                    if frame_tx.send(Captured::Gap).is_err() {
                        break;
                    }
                }
            }
            Err(e) => {
                Counters::add(&counters.frames_bad, 1);
                if throttle.ready() {
                    tracing::warn!(error = %e, "Frame skipped (counted in stats as frames_bad).");
                }
            }
        }
    }
    // The retained state must not say `streaming` after a clean stop.
    say(Streaming::Stopped, None, source.as_ref());
    Ok(())
}
