//! GStreamer sources (feature `gstreamer`): a pipeline the user writes (`kind = "gstreamer"`: Pi
//! and Jetson CSI cameras, anything GStreamer reads), an RTSP camera (`kind = "rtsp"`) and a
//! video file (`kind = "video"`). Each pipeline ends in `videoconvert ! appsink` with caps the
//! fused sampler reads as they are (NV12, I420, YUY2, RGB, GRAY8), so the conversion is a
//! passthrough whenever the decoder or camera already delivers one of them ([`launch`]).
//!
//! Start-up opens the pipeline and waits for its first frame: a syntax error, a missing element
//! or decoder, a wrong URL or login, a missing file or one that is not a video are start-up
//! errors naming the input and the fix. At run time a live pipeline (RTSP, a camera) that fails,
//! ends or stalls for `stall_timeout` is torn down and restarted with a backoff, reporting
//! [`Error::Gone`] meanwhile, as the V4L2 camera does; each restart and each discontinuity GStreamer
//! flags begins a new segment, so no window mixes frames across the gap, while frame ids go on
//! counting. A file ends at its end, or loops (a new segment each time round). Warnings and
//! corrupted buffers are [`Error::Frame`]: counted and skipped.

#[cfg(feature = "gstreamer")]
pub mod frame;
pub mod launch;
#[cfg(feature = "gstreamer")]
mod rate;
#[cfg(feature = "gstreamer")]
mod stream;

use std::path::PathBuf;
use std::time::Duration;

#[cfg(feature = "gstreamer")]
pub use stream::{list_devices, Stream};

use crate::secret::Password;

/// A camera's login (RTSP): the password comes from a file or a systemd credential.
#[derive(Clone, Debug, PartialEq)]
pub struct Login {
    pub user: String,
    pub password: Password,
}

/// What to open.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// `kind = "gstreamer"`: a description ending in raw video.
    Pipeline(String),
    /// `kind = "rtsp"`.
    Rtsp { url: String, tcp: bool, latency_ms: u32, login: Option<Login> },
    /// `kind = "video"`: paced at the file's own rate, or as fast as the pipeline takes frames.
    Video { path: PathBuf, paced: bool, looping: bool },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub kind: Kind,
    /// A live pipeline with no frame for this long counts as lost and is restarted.
    pub stall_timeout: Duration,
}
