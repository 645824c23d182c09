//! The model's frame rate (`pipeline.model_fps`): which camera frames go to the model.
//!
//! MPS-Net sees 16 consecutive frames. If the pipeline is slower than the camera and frames are
//! simply dropped when the queue is full, the frames that survive are irregular, and a window
//! spans an unknown time. Instead, the capture stage keeps every `stride`-th frame: the model
//! then sees frames at `camera fps / stride`, a known rate that each message states
//! (`win.fps`, docs/WIRE.md).
//!
//! - `model_fps = N`: the stride that brings the camera's rate closest to N without going
//!   over it... or to the camera's own rate when N is higher.
//! - `"auto"` (the default): every frame while the pipeline keeps up. When more than 5 % of
//!   the kept frames are dropped over a period of 2 s, the stride goes up by one and the log
//!   says the new rate. It never goes down while the daemon runs: windows keep one rate.
//! - `0`: every frame, dropped ones left to the queue (before 0.2).
//!
//! A source without a rate (an unpaced replay) is never sampled: it waits for the pipeline. A
//! live source that learns its rate after the start (a stream measured from its timestamps) is
//! sampled from then on.

/// What `pipeline.model_fps` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum ModelRate {
    /// Lower the rate by a stride when the pipeline drops frames.
    #[default]
    Auto,
    /// Every frame; the queue drops what the pipeline cannot take.
    Every,
    /// At most this many frames per second, by a fixed stride.
    At(f64),
}

/// Longest stride `auto` goes to (1 fps from a 30 fps camera).
const MAX_STRIDE: u64 = 30;
/// `auto`'s period, seconds of the camera's frames.
const PERIOD_S: f64 = 2.0;
/// `auto` raises the stride when more than this share of a period's kept frames was dropped.
const DROP_SHARE: f64 = 0.05;

/// Decides, frame by frame, which camera frames the model gets.
#[derive(Debug)]
pub struct Sampler {
    mode: ModelRate,
    /// The source's frame rate; `None`: unpaced, nothing is sampled.
    camera_fps: Option<f64>,
    stride: u64,
    /// Frames seen since the last kept one.
    since_kept: u64,
    /// `auto`: the current period's kept frames and the queue's drop count at its start.
    period: Period,
}

#[derive(Debug, Default)]
struct Period {
    kept: u64,
    dropped_at_start: u64,
    /// The first period is the warm-up (caches, first allocations): not judged.
    judged: bool,
}

impl Sampler {
    /// `camera_fps`: the source's rate (`FrameSource::fps`); `None` or 0 for an unpaced source.
    pub fn new(mode: ModelRate, camera_fps: Option<f64>) -> Sampler {
        let camera_fps = camera_fps.filter(|f| *f > 0.0);
        let stride = match (mode, camera_fps) {
            (ModelRate::At(want), Some(cam)) if want > 0.0 => ((cam / want).ceil() as u64).max(1),
            _ => 1,
        };
        // The first frame is kept.
        Sampler { mode, camera_fps, stride, since_kept: stride - 1, period: Period::default() }
    }

    /// Whether the model gets this frame. `dropped`: the frame queue's running drop count.
    pub fn keep(&mut self, dropped: u64) -> bool {
        self.since_kept += 1;
        if self.since_kept < self.stride {
            return false;
        }
        self.since_kept = 0;
        self.judge(dropped);
        true
    }

    /// `auto`: at the end of each period, a stride up when the pipeline dropped too many.
    fn judge(&mut self, dropped: u64) {
        let (ModelRate::Auto, Some(cam)) = (self.mode, self.camera_fps) else { return };
        let p = &mut self.period;
        p.kept += 1;
        let length = (PERIOD_S * cam / self.stride as f64).ceil().max(8.0) as u64;
        if p.kept < length {
            return;
        }
        let lost = dropped.saturating_sub(p.dropped_at_start);
        let slow = p.judged && lost as f64 > DROP_SHARE * p.kept as f64;
        *p = Period { kept: 0, dropped_at_start: dropped, judged: true };
        if slow && self.stride < MAX_STRIDE {
            self.stride += 1;
            self.period.judged = false; // the new rate's first period settles the queue
            tracing::warn!(
                camera_fps = format_args!("{cam:.2}"),
                model_fps = format_args!("{:.2}", cam / self.stride as f64),
                stride = self.stride,
                dropped = lost,
                "The pipeline cannot keep up with the camera: the model now gets every \
                 {}th frame (pipeline.model_fps = \"auto\"; set a rate to fix it).",
                self.stride
            );
        }
    }

    /// Takes the source's rate when it becomes known after the start (a live stream whose
    /// caps give none, measured from its first frames); a known rate is kept.
    pub fn learn(&mut self, camera_fps: Option<f64>) {
        if self.camera_fps.is_none() && camera_fps.is_some_and(|f| f > 0.0) {
            *self = Sampler::new(self.mode, camera_fps);
        }
    }

    /// The rate of the frames the model gets, when the source has one.
    pub fn fps(&self) -> Option<f64> {
        self.camera_fps.map(|cam| cam / self.stride as f64)
    }

    /// Camera frames per model frame.
    pub fn stride(&self) -> u64 {
        self.stride
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(s: &mut Sampler, frames: u64) -> Vec<u64> {
        (0..frames).filter(|_| s.keep(0)).collect()
    }

    #[test]
    fn a_fixed_rate_keeps_every_nth_frame_from_the_first() {
        let mut s = Sampler::new(ModelRate::At(10.0), Some(30.0));
        assert_eq!((s.stride(), s.fps()), (3, Some(10.0)));
        assert_eq!(kept(&mut s, 10), [0, 3, 6, 9]);
        // Not over the asked rate: 30 / 4 = 7.5 fps for 8.
        assert_eq!(Sampler::new(ModelRate::At(8.0), Some(30.0)).fps(), Some(7.5));
        // A rate above the camera's: every frame.
        assert_eq!(Sampler::new(ModelRate::At(60.0), Some(29.97)).fps(), Some(29.97));
        // An unpaced source has no rate and is not sampled.
        let mut unpaced = Sampler::new(ModelRate::At(10.0), None);
        assert_eq!((unpaced.fps(), kept(&mut unpaced, 5).len()), (None, 5));
    }

    #[test]
    fn a_rate_learned_after_the_start_samples_from_then_on() {
        let mut s = Sampler::new(ModelRate::At(10.0), None);
        assert_eq!(kept(&mut s, 4).len(), 4, "no rate yet: every frame");
        s.learn(None);
        assert_eq!(s.fps(), None);
        s.learn(Some(30.0));
        assert_eq!((s.stride(), s.fps()), (3, Some(10.0)));
        assert_eq!(kept(&mut s, 7), [0, 3, 6], "from the next frame on");
        s.learn(Some(15.0));
        assert_eq!(s.fps(), Some(10.0), "a known rate is kept: windows keep one rate");
    }

    #[test]
    fn every_frame_never_samples() {
        let mut s = Sampler::new(ModelRate::Every, Some(30.0));
        let all = (0..1000).filter(|i| s.keep(i / 2)).count();
        assert_eq!((all, s.stride()), (1000, 1));
    }

    #[test]
    fn auto_raises_the_stride_only_when_the_pipeline_drops_frames() {
        // 30 fps camera; a period is 60 kept frames at stride 1.
        let mut s = Sampler::new(ModelRate::Auto, Some(30.0));
        let mut dropped = 0;
        // Warm-up period: drops there are not judged.
        for _ in 0..60 {
            dropped += 1;
            assert!(s.keep(dropped));
        }
        assert_eq!(s.stride(), 1);
        // A period without drops: stays.
        for _ in 0..60 {
            s.keep(dropped);
        }
        assert_eq!(s.stride(), 1);
        // One drop in 60 (under 5 %): stays.
        for i in 0..60 {
            s.keep(dropped + u64::from(i >= 30));
        }
        dropped += 1;
        assert_eq!(s.stride(), 1);
        // A third of them dropped: every second frame from now on.
        for i in 0..60 {
            s.keep(dropped + i / 3);
        }
        assert_eq!((s.stride(), s.fps()), (2, Some(15.0)));
        let at = s.since_kept;
        let kept: Vec<bool> = (0..6).map(|_| s.keep(1000)).collect();
        assert_eq!(kept.iter().filter(|k| **k).count(), 3, "{kept:?} from {at}");
        // It never goes back down, and stops at MAX_STRIDE.
        let mut d = 1000;
        for _ in 0..100_000 {
            d += 1;
            s.keep(d);
        }
        assert_eq!(s.stride(), MAX_STRIDE);
    }
}
