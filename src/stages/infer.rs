//! The inference workers: each takes a frame's people from `find`, crops each person and
//! runs the per-frame model (the backbone, then the temporal head's per-frame projection).
//! Frames run in parallel, one per worker; each worker has its own tract state over one shared
//! copy of the weights ([`Infer::fork`]). `post` puts the results back in frame order.

use std::time::Instant;

use anyhow::{bail, Result};

use super::find::Job;
use super::{Inferred, Numbered, POLL};
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

    /// Another one over the same weights, with a state of its own: one per worker.
    ///
    /// # Errors
    /// [`crate::model::Error`] when the state cannot be made.
    fn fork(&self) -> crate::model::Result<Box<dyn Features>>;
}

impl Features for crate::model::Backbone {
    fn features(&mut self, crop: &[f32]) -> crate::model::Result<Vec<f32>> {
        self.run(crop)
    }

    fn fork(&self) -> crate::model::Result<Box<dyn Features>> {
        Ok(Box::new(crate::model::Backbone::fork(self)?))
    }
}

/// A worker's state: the per-frame model.
pub struct Infer {
    pub backbone: Box<dyn Features>,
    pub projector: Projector,
    pub crop_scale: f32,
    /// `--save-crops`: where a sample of the crops goes, shared by the workers.
    pub crops: Option<std::sync::Arc<super::crops::CropSaver>>,
}

impl Infer {
    /// Another worker over the same weights.
    ///
    /// # Errors
    /// [`crate::model::Error`] when tract cannot make the states.
    pub fn fork(&self) -> crate::model::Result<Infer> {
        Ok(Infer {
            backbone: self.backbone.fork()?,
            projector: self.projector.fork()?,
            crop_scale: self.crop_scale,
            crops: self.crops.clone(),
        })
    }

    /// Runs until `find` closes the job queue and it is drained.
    pub fn run(
        mut self,
        job_rx: queue::Receiver<Job>,
        feature_tx: queue::Sender<Numbered>,
        counters: &Counters,
    ) -> Result<()> {
        let mut tensor = Vec::new();
        let mut throttle = super::Throttle::default();
        while let Ok(next) = job_rx.recv_timeout(POLL) {
            let Some(job) = next else { continue };
            let t0 = Instant::now();
            let result = self.infer(&job, &mut tensor, counters);
            Counters::add(&counters.infer_ns, t0.elapsed().as_nanos() as u64);
            let Job { seq, frame, fps, ended, .. } = job;
            let item = match result {
                Ok(people) => {
                    Counters::add(&counters.frames_inferred, 1);
                    Counters::add(&counters.people_inferred, people.len() as u64);
                    let image = [frame.image.width, frame.image.height];
                    let frame_in =
                        FrameIn { frame_id: frame.id, time: frame.time, fps, image, people, ended };
                    Inferred::Frame(Box::new(frame_in))
                }
                Err(e) => {
                    throttle.frame_failed(counters, frame.id, "Inference", &e);
                    Inferred::Skipped { ended }
                }
            };
            if feature_tx.send_wait(Numbered { seq, item }).is_err() {
                bail!("the post thread stopped taking frames");
            }
        }
        Ok(())
    }

    /// Runs the per-frame model for each person of one frame.
    fn infer(
        &mut self,
        job: &Job,
        tensor: &mut Vec<f32>,
        counters: &Counters,
    ) -> Result<Vec<PersonIn>> {
        let mut people = Vec::with_capacity(job.people.len());
        for t in &job.people {
            let stages = &counters.stages;
            let crop = t.bbox.crop(self.crop_scale);
            stages.preprocess.time(|| preprocess::crop_to_tensor(&job.frame, crop, tensor));
            if let Some(crops) = &self.crops {
                crops.offer(t.id, job.frame.id, job.frame.time.mono_ns, tensor);
            }
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
        Ok(people)
    }
}
