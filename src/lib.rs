//! smplcast: streams 3D human pose and shape (SMPL θ, β and camera) estimated by MPS-Net
//! (CVPR 2022) from camera frames.
//!
//! # Layout
//!
//! ```text
//!  source::FrameSource       synthetic │ image files │ V4L2   Frame + capture time   [capture]
//!        ▼  queue (bounded; drop-oldest when paced)
//!  detect::finder            detector + tracker, or a region   people with ids      [infer]
//!  model::preprocess         person box → crop 224²     [3,224,224] f32, ImageNet
//!  model::Backbone           ResNet-50 (tract)          2048-d feature
//!  model::Projector          per-frame projections      FrameCache
//!        ▼  queue (bounded)
//!  window::TrackWindow       per-track ring, T = 16     ReadyWindow (lookahead 7)    [post]
//!  model::Stepper            MoCA → HAFI → regressor    6D pose 144, β 10, cam 3
//!  smpl + smpl::encode       axis-angle θ 72, cameras   wire::PoseMsg → CBOR
//!        ▼  queue (bounded, drop-oldest)
//!  mqtt::publish             rumqttc                    pose │ status │ camera │ stats  [io]
//! ```
//!
//! `daemon` wires the stages (`stages::{capture, infer, post}`; docs/ARCHITECTURE.md has the
//! tree, the thread map and the queue table); `config` reads and checks the TOML;
//! `telemetry` counts and reports. `model::TemporalHead` runs the head on whole windows: the
//! reference the streaming form is tested against. `wire` is the pose message format
//! (docs/WIRE.md). The command-line tools (demo, bench, sub, view) are the binary's.
//!
//! # Features
//!
//! `runtime` (default): the daemon and the CLI (tract, rumqttc, tokio, clap, tracing). Without it
//! the crate is `smpl` and `wire` only, for subscribers that decode pose messages:
//! `smplcast = { version = "…", default-features = false }`.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// Almost no unsafe code of our own: three calls into libc (malloc_trim and mallopt in
// telemetry::memory, dlopen in model::device), each allowed where it is. The rest is in
// reviewed crates (tract's kernels, the v4l crate's ioctls and mmap, ring), whose advisories
// `scripts/deny.sh` checks.
#![deny(unsafe_code)]

#[cfg(feature = "runtime")]
pub mod config;
#[cfg(feature = "runtime")]
pub mod daemon;
#[cfg(feature = "runtime")]
pub mod detect;
#[cfg(feature = "runtime")]
pub mod geom;
#[cfg(feature = "runtime")]
pub mod model;
#[cfg(feature = "runtime")]
pub mod mqtt;
#[cfg(feature = "runtime")]
pub mod pixels;
#[cfg(feature = "runtime")]
pub mod queue;
#[cfg(feature = "runtime")]
pub mod secret;
pub mod smpl;
#[cfg(feature = "runtime")]
pub mod source;
#[cfg(feature = "runtime")]
pub mod stages;
#[cfg(feature = "runtime")]
pub mod telemetry;
#[cfg(feature = "runtime")]
pub mod window;
pub mod wire;
