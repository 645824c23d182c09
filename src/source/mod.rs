//! Frame sources: where camera frames come from. A [`FrameSource`] runs on the capture thread
//! (`capture`), blocks until its next frame is due and hands out owned RGB8 [`Frame`]s stamped
//! with their capture time.
//!
//! - [`synthetic::Synthetic`]: a deterministic moving test pattern of any size and rate.
//! - [`files::Files`]: a directory of PNG/JPEG images replayed in name order.
//! - `v4l2::Camera` (feature `v4l2`): V4L2 cameras, with recovery from unplugging.
//! - `gst::Stream` (feature `gstreamer`): RTSP cameras, video files and any GStreamer pipeline
//!   (Pi and Jetson CSI cameras), with recovery for the live ones.
//!
//! Pacing decides the queue policy downstream ([`FrameSource::is_live`]): a paced source
//! (`fps` > 0) behaves like a camera, and when the pipeline is slower its oldest waiting frame
//! is dropped and counted; an unpaced one (`fps` = 0) runs as fast as the pipeline takes frames
//! and nothing is dropped, so replaying the same input gives the same messages.

pub mod files;
pub mod gst;
pub mod synthetic;
#[cfg(feature = "v4l2")]
pub mod v4l2;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::pixels::Image;

/// One captured frame, owned (the source keeps nothing pointing into it).
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// Capture index: +1 per frame the source produced, from 0. Frames dropped later leave gaps
    /// downstream.
    pub id: u64,
    /// The pixels, in the layout the source delivers (sampled directly, not converted).
    pub image: Image,
    /// When it was captured.
    pub time: CaptureTime,
    /// +1 each time the source restarts after losing its input (a camera unplugged and back):
    /// frames of different segments never share a temporal window.
    pub segment: u64,
}

/// A capture instant on both clocks: UTC for people and logs, monotonic for latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureTime {
    /// Microseconds since the Unix epoch (UTC).
    pub utc_us: i64,
    /// CLOCK_MONOTONIC in nanoseconds (the clock V4L2 stamps buffers with).
    pub mono_ns: u64,
}

impl CaptureTime {
    pub fn now() -> Self {
        let utc_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let mono = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let mono_ns = u64::try_from(mono.tv_sec).unwrap_or(0) * 1_000_000_000
            + u64::try_from(mono.tv_nsec).unwrap_or(0);
        CaptureTime { utc_us, mono_ns }
    }
}

/// Errors of a source. Start-up errors name the input and the fix; a bad frame at run time is
/// [`Error::Frame`], which the capture thread counts and skips.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: cannot read the frame directory: {source}; set [source] path to a directory of .png/.jpg images")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("{path}: no .png, .jpg or .jpeg images in the frame directory; set [source] path to a directory that has some")]
    Empty { path: PathBuf },
    #[error("{path}: {reason}")]
    Frame { path: PathBuf, reason: String },
    #[error("camera {device}: {reason}")]
    Device { device: PathBuf, reason: String },
    /// A GStreamer pipeline that does not start: `input` names it (URLs without their login).
    #[error("{input}: {reason}")]
    Pipeline { input: String, reason: String },
    /// The input went away at run time; the source keeps trying to get it back.
    #[error("{input} unavailable: {reason}")]
    Gone { input: String, reason: String },
}

/// A camera-like producer of frames, driven by the capture thread.
pub trait FrameSource: Send {
    /// Blocks until the next frame is due and returns it; `Ok(None)` when the source has
    /// ended (a finite replay or frame count).
    ///
    /// # Errors
    /// [`Error::Frame`] for a frame that cannot be read; the next call goes on with the next.
    fn next_frame(&mut self) -> Result<Option<Frame>, Error>;

    /// True for a paced source: frames arrive in real time whether or not the pipeline keeps
    /// up, so the queue after it drops the oldest frame. False: it waits for the pipeline.
    fn is_live(&self) -> bool;

    /// The rate frames come at, when the source has one (a camera, a paced replay); `None`:
    /// unpaced or unknown. The model's rate is a stride of it (`pipeline.model_fps`).
    fn fps(&self) -> Option<f64> {
        None
    }

    /// One line for the log: kind, size, rate.
    fn describe(&self) -> String;
}

/// A lost input's retries: why it is lost, and a backoff that doubles from `min` to `max`
/// between tries (V4L2 cameras, RTSP streams).
#[derive(Debug)]
pub struct Retry {
    gone: Option<String>,
    next_try: Instant,
    backoff: Duration,
    min: Duration,
    max: Duration,
}

impl Retry {
    pub fn new(min: Duration, max: Duration) -> Self {
        Retry { gone: None, next_try: Instant::now(), backoff: min, min, max }
    }

    /// The input was lost: the first try comes after the current backoff.
    pub fn lost(&mut self, reason: String) {
        self.gone = Some(reason);
        self.next_try = Instant::now() + self.backoff;
    }

    /// Waits for the next try, at most 250 ms so that the caller sees a shutdown; true when it
    /// is due.
    pub fn wait(&self) -> bool {
        let now = Instant::now();
        if now < self.next_try {
            std::thread::sleep((self.next_try - now).min(Duration::from_millis(250)));
        }
        Instant::now() >= self.next_try
    }

    /// A try failed: the backoff doubles.
    pub fn failed(&mut self, reason: String) {
        self.gone = Some(reason);
        self.backoff = (self.backoff * 2).min(self.max);
        self.next_try = Instant::now() + self.backoff;
    }

    /// The input is back: the backoff starts again from its least.
    pub fn back(&mut self) {
        self.gone = None;
        self.backoff = self.min;
    }

    /// Why the input is lost (empty while it is not).
    pub fn reason(&self) -> String {
        self.gone.clone().unwrap_or_default()
    }
}

/// Paces a source at a fixed rate (or not at all). When the caller falls behind by more than
/// one period, the schedule restarts from now instead of bursting to catch up, as a camera
/// would (it does not store the frames it could not deliver).
#[derive(Debug)]
pub struct Pacer {
    period: Option<Duration>,
    next: Option<Instant>,
}

impl Pacer {
    /// `fps` = 0: no pacing.
    pub fn new(fps: f64) -> Self {
        let period = (fps > 0.0).then(|| Duration::from_secs_f64(1.0 / fps));
        Pacer { period, next: None }
    }

    /// Sleeps until the next tick.
    pub fn wait(&mut self) {
        let Some(period) = self.period else { return };
        let now = Instant::now();
        let due = match self.next {
            Some(due) if due + period > now => due,
            _ => now,
        };
        if due > now {
            std::thread::sleep(due - now);
        }
        self.next = Some(due + period);
    }

    pub fn is_paced(&self) -> bool {
        self.period.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_keeps_the_rate_and_does_not_burst_after_a_stall() {
        let mut p = Pacer::new(100.0);
        let t0 = Instant::now();
        for _ in 0..11 {
            p.wait();
        }
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(100), "10 periods of 10 ms took {took:?}");
        std::thread::sleep(Duration::from_millis(50));
        let t1 = Instant::now();
        p.wait();
        assert!(t1.elapsed() < Duration::from_millis(5), "late: the next frame is due at once");
        p.wait();
        assert!(t1.elapsed() >= Duration::from_millis(9), "then the period applies again");
        assert!(!Pacer::new(0.0).is_paced());
    }

    #[test]
    fn capture_time_is_now_on_both_clocks() {
        let (a, b) = (CaptureTime::now(), CaptureTime::now());
        assert!(b.mono_ns >= a.mono_ns && a.mono_ns > 0);
        assert!(a.utc_us > 1_700_000_000_000_000, "after 2023: {}", a.utc_us);
    }
}
