//! The find stage: the people of each frame, in frame order (the tracker needs them so), handed
//! to the inference workers as numbered jobs.

use std::time::Instant;

use anyhow::{bail, Result};

use super::{Captured, Inferred, Numbered, POLL};
use crate::detect::finder::Finder;
use crate::detect::track::Tracked;
use crate::queue;
use crate::source::Frame;
use crate::telemetry::stats::Counters;

/// A frame and its people, for a worker.
pub struct Job {
    pub seq: u64,
    pub frame: Frame,
    /// The model's frame rate when it was captured (`pipeline.model_fps`).
    pub fps: Option<f32>,
    /// The people to infer, ascending id.
    pub people: Vec<Tracked>,
    /// Tracks that ended before this frame.
    pub ended: Vec<u32>,
}

/// The find thread's state.
pub struct Find {
    pub finder: Finder,
}

impl Find {
    /// Runs until capture closes the frame queue and it is drained. Frames go to the workers
    /// (`job_tx`, waiting while they are all busy, so the frame queue drops the oldest); a gap,
    /// or a frame whose people cannot be found, goes straight to post (`feature_tx`) in its
    /// place in the numbering.
    pub fn run(
        mut self,
        frame_rx: queue::Receiver<Captured>,
        job_tx: queue::Sender<Job>,
        feature_tx: queue::Sender<Numbered>,
        counters: &Counters,
    ) -> Result<()> {
        let mut seq = 0..;
        let mut next = || seq.next().unwrap_or(u64::MAX);
        let to_post = |seq: u64, item: Inferred| -> Result<()> {
            if feature_tx.send_wait(Numbered { seq, item }).is_err() {
                bail!("the post thread stopped taking frames");
            }
            Ok(())
        };
        let mut throttle = super::Throttle::default();
        let mut segment = None;
        while let Ok(item) = frame_rx.recv_timeout(POLL) {
            let (frame, fps) = match item {
                Some(Captured::Frame { frame, fps }) => (frame, fps),
                Some(Captured::Gap) => {
                    // The source lost its input: every track ends here and in `post`.
                    self.finder.reset();
                    to_post(next(), Inferred::Gap)?;
                    continue;
                }
                None => continue,
            };
            if segment.is_some_and(|s| s != frame.segment) {
                // A restart whose gap marker a live source's drop-oldest queue evicted.
                self.finder.reset();
                to_post(next(), Inferred::Gap)?;
            }
            segment = Some(frame.segment);
            let t0 = Instant::now();
            let found = self.finder.find(&frame.image, counters);
            Counters::add(&counters.infer_ns, t0.elapsed().as_nanos() as u64);
            let seq = next();
            match found {
                Ok((people, ended)) => {
                    if job_tx.send_wait(Job { seq, frame, fps, people, ended }).is_err() {
                        bail!("the inference workers stopped taking frames");
                    }
                }
                Err(e) => {
                    throttle.frame_failed(counters, frame.id, "Finding people", &e);
                    to_post(seq, Inferred::Skipped { ended: Vec::new() })?;
                }
            }
        }
        Ok(())
    }
}
