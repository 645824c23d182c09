//! The inference stage: finds the people of each frame, crops each and runs the per-frame
//! model (the backbone, then the temporal head's per-frame projection) for each.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::{Captured, Inferred, POLL};
use crate::detect::finder::Finder;
use crate::model::preprocess;
use crate::model::Projector;
use crate::queue;
use crate::telemetry::stats::Counters;
use crate::window::assemble::{FrameIn, PersonIn};

/// What the inference stage needs from the backbone: one crop's feature vector. The seam
/// between the stage and tract's ResNet-50 ([`crate::model::Backbone`]); tests put a
/// stand-in of chosen speed here.
pub trait Features: Send {
    /// The features of one crop, given as `preprocess::crop_to_tensor` makes it.
    ///
    /// # Errors
    /// [`crate::model::Error`] when the graph fails.
    fn features(&mut self, crop: &[f32]) -> crate::model::Result<Vec<f32>>;
}

impl Features for crate::model::Backbone {
    fn features(&mut self, crop: &[f32]) -> crate::model::Result<Vec<f32>> {
        self.run(crop)
    }
}

/// The inference thread's state: the per-frame model and the person finder.
pub struct Infer {
    pub backbone: Box<dyn Features>,
    pub projector: Projector,
    pub finder: Finder,
    pub crop_scale: f32,
}

impl Infer {
    pub fn run(
        mut self,
        frame_rx: queue::Receiver<Captured>,
        feature_tx: queue::Sender<Inferred>,
        counters: &Counters,
    ) -> Result<()> {
        let mut tensor = Vec::new();
        let mut last_warning: Option<Instant> = None;
        let mut segment = None;
        // Runs until capture closes the queue and it is drained.
        while let Ok(next) = frame_rx.recv_timeout(POLL) {
            let frame = match next {
                Some(Captured::Frame(frame)) => frame,
                Some(Captured::Gap) => {
                    self.gap(&feature_tx)?;
                    continue;
                }
                None => continue,
            };
            if segment.is_some_and(|s| s != frame.segment) {
                // A restart whose gap marker a live source's drop-oldest queue evicted.
                self.gap(&feature_tx)?;
            }
            segment = Some(frame.segment);
            let t0 = Instant::now();
            let (width, height) = (frame.image.width, frame.image.height);
            let result = self.infer(&frame, &mut tensor, counters);
            Counters::add(&counters.infer_ns, t0.elapsed().as_nanos() as u64);
            let (people, ended) = match result {
                Ok(found) => found,
                Err(e) => {
                    Counters::add(&counters.frames_failed, 1);
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::error!(
                            error = format!("{e:#}"),
                            frame = frame.id,
                            "Inference failed; frame skipped."
                        );
                        last_warning = Some(Instant::now());
                    }
                    continue;
                }
            };
            Counters::add(&counters.frames_inferred, 1);
            Counters::add(&counters.people_inferred, people.len() as u64);
            let frame_in = FrameIn {
                frame_id: frame.id,
                time: frame.time,
                image: [width, height],
                people,
                ended,
            };
            if feature_tx.send_wait(Inferred::Frame(Box::new(frame_in))).is_err() {
                bail!("the post thread stopped taking frames");
            }
        }
        Ok(())
    }

    /// The source lost its input: every track ends here and in `post`.
    fn gap(&mut self, feature_tx: &queue::Sender<Inferred>) -> Result<()> {
        self.finder.reset();
        if feature_tx.send_wait(Inferred::Gap).is_err() {
            bail!("the post thread stopped taking frames");
        }
        Ok(())
    }

    /// Finds the people of one frame and runs the per-frame model for each.
    fn infer(
        &mut self,
        frame: &crate::source::Frame,
        tensor: &mut Vec<f32>,
        counters: &Counters,
    ) -> Result<(Vec<PersonIn>, Vec<u32>)> {
        let (tracked, ended) = self.finder.find(&frame.image, counters)?;
        let mut people = Vec::with_capacity(tracked.len());
        for t in tracked {
            let stages = &counters.stages;
            let crop = t.bbox.crop(self.crop_scale);
            stages.preprocess.time(|| preprocess::crop_to_tensor(frame, crop, tensor));
            let feature = stages.backbone.time(|| self.backbone.features(tensor))?;
            let cache = stages.project.time(|| self.projector.project(&feature))?.swap_remove(0);
            people.push(PersonIn {
                id: t.id,
                bbox: t.bbox,
                score: t.score,
                predicted: t.predicted,
                crop,
                cache,
            });
        }
        Ok((people, ended))
    }
}
