//! smplcast: streams 3D human pose and shape (SMPL θ, β and camera) estimated by MPS-Net
//! (CVPR 2022) from camera frames.
//!
//! # Layout
//!
//! ```text
//!  crop 224² RGB, ImageNet mean/std
//!        ▼
//!  model::Backbone          ResNet-50 (tract)            2048-d feature per person-frame
//!        ▼
//!  model::Streaming::project  per-frame projections      FrameCache (feature + MoCA/HAFI maps)
//!        ▼
//!  window::TrackWindow       per-track ring, T = 16      ReadyWindow (centre frame, lookahead 7)
//!        ▼
//!  model::Streaming::step    MoCA → HAFI → regressor     6D pose 144, β 10, crop camera 3
//!        ▼
//!  smpl                      6D → rotation → axis-angle  θ 72; camera in the original image
//! ```
//!
//! `model::TemporalHead` runs the same head on whole windows; it is the reference the streaming
//! form is tested against. `wire` is the pose message format (docs/WIRE.md). Capture,
//! tracking and MQTT publishing arrive with later issues.
//!
//! # Features
//!
//! `runtime` (default): the model, the window and the CLI (tract, clap, tracing). Without it
//! the crate is `smpl` and `wire` only, for subscribers that decode pose messages:
//! `smplcast = { version = "…", default-features = false }`.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

#[cfg(feature = "runtime")]
pub mod broker;
#[cfg(feature = "runtime")]
pub mod config;
#[cfg(feature = "runtime")]
pub mod daemon;
#[cfg(feature = "runtime")]
pub mod demo;
#[cfg(feature = "runtime")]
pub mod encode;
#[cfg(feature = "runtime")]
pub mod model;
#[cfg(feature = "runtime")]
pub mod preprocess;
#[cfg(feature = "runtime")]
pub mod publish;
#[cfg(feature = "runtime")]
pub mod queue;
pub mod smpl;
#[cfg(feature = "runtime")]
pub mod source;
#[cfg(feature = "runtime")]
pub mod stats;
#[cfg(feature = "runtime")]
pub mod subscribe;
#[cfg(feature = "runtime")]
pub mod window;
pub mod wire;
