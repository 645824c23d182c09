//! The pipeline's stages, one thread each; `daemon` creates their queues and threads.
//!
//! - [`capture`]: frames from the source into the frame queue, the camera's state to the
//!   publisher;
//! - [`infer`]: finds the people of each frame (`detect::Finder`), crops them and runs the
//!   per-frame model (backbone, projection);
//! - [`post`]: per-track windows, the temporal step, SMPL decoding and wire encoding.
//!
//! What passes between them: [`Captured`] (capture → infer) and [`Inferred`] (infer → post).

use std::time::Duration;

use crate::window::assemble::FrameIn;

pub mod capture;
pub mod infer;
pub mod output;
pub mod post;

/// How often a blocked stage looks at its shutdown token.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// What the capture thread queues for inference.
pub enum Captured {
    Frame(crate::source::Frame),
    /// The source lost its input: the frames before it end their track windows.
    Gap,
}

/// What `infer` hands to `post`.
pub enum Inferred {
    /// Boxed: a frame's people and caches are large next to the marker.
    Frame(Box<FrameIn>),
    Gap,
}
