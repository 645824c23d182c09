//! The pipeline's stages, one thread each (the inference workers: as many as
//! `pipeline.workers`); `daemon` creates their queues and threads.
//!
//! - [`capture`]: frames from the source into the frame queue, the camera's state to the
//!   publisher;
//! - [`find`]: the people of each frame (`detect::finder::Finder`: detector, tracker), in
//!   frame order; numbers the frames and hands them to the workers;
//! - [`infer`]: the workers: crop each person and run the per-frame model (backbone,
//!   projection), frames in parallel;
//! - [`post`]: puts the frames back in order, then per-track windows, the temporal step, SMPL
//!   decoding and wire encoding;
//! - [`output`]: the seam to whatever publishes the messages.
//!
//! What passes between them: [`Captured`] (capture → find), [`find::Job`] (find → infer) and
//! [`Numbered`] [`Inferred`] (find and infer → post).

use std::time::Duration;

use crate::window::assemble::FrameIn;

pub mod capture;
pub mod crops;
pub mod find;
pub mod infer;
pub mod output;
pub mod post;
pub mod rate;

/// How often a blocked stage looks at its shutdown token.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// Logs a repeated failure (a bad frame) at most once every 10 s; stats count every one.
#[derive(Default)]
pub(crate) struct Throttle(Option<std::time::Instant>);

impl Throttle {
    /// Whether to log this one.
    pub(crate) fn ready(&mut self) -> bool {
        let ready = self.0.is_none_or(|t| t.elapsed() > Duration::from_secs(10));
        if ready {
            self.0 = Some(std::time::Instant::now());
        }
        ready
    }

    /// A frame whose people could not be found or inferred (`what` failed): counted in
    /// `frames_failed`, logged when the throttle allows.
    pub(crate) fn frame_failed(
        &mut self,
        counters: &crate::telemetry::stats::Counters,
        frame: u64,
        what: &str,
        e: &anyhow::Error,
    ) {
        crate::telemetry::stats::Counters::add(&counters.frames_failed, 1);
        if self.ready() {
            tracing::error!(error = format!("{e:#}"), frame, "{what} failed; frame skipped.");
        }
    }
}

/// What the capture thread queues for inference.
pub enum Captured {
    /// A frame the model gets, with the rate the model gets frames at (`pipeline.model_fps`;
    /// `None` for an unpaced source).
    Frame { frame: crate::source::Frame, fps: Option<f32> },
    /// The source lost its input: the frames before it end their track windows.
    Gap,
}

/// What `find` and the workers hand to `post`.
pub enum Inferred {
    /// Boxed: a frame's people and caches are large next to the markers.
    Frame(Box<FrameIn>),
    /// The source lost its input: every track ends here.
    Gap,
    /// A frame whose people could not be found or inferred (counted in `frames_bad`): no
    /// result, but the tracks that ended before it still end.
    Skipped { ended: Vec<u32> },
}

/// An [`Inferred`] with its place in the stream: `find` numbers what it sends on from 0, one
/// number per frame or gap, and `post` takes them in that order whatever order the workers
/// finish in.
pub struct Numbered {
    pub seq: u64,
    pub item: Inferred,
}
