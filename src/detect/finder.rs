//! How the inference stage finds people in a frame: a fixed region, or the person detector
//! (every `detect_every` frames), the scene-cut detector and the tracker.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use super::cut::CutDetector;
use super::nanodet::Settings as DetectorSettings;
use super::track::{Settings as TrackerSettings, Tracked, Tracker};
use super::{Detect, PersonDetector};
use crate::geom::BBox;
use crate::telemetry::stats::Counters;

/// How the daemon finds people (`[person]`; built by `config`).
#[derive(Clone, Debug, PartialEq)]
pub enum People {
    /// One person (track 0) in a fixed box, or (`None`) the whole frame.
    Region(Option<BBox>),
    /// The person detector and the tracker.
    Detected {
        detector: PathBuf,
        every: u32,
        detection: DetectorSettings,
        tracker: TrackerSettings,
        /// Scene-cut threshold ([`super::cut`]); 0: off.
        cut_threshold: f32,
    },
}

/// How the inference thread finds people in a frame.
pub enum Finder {
    /// One person, track 0: a fixed box, or the whole frame.
    Region(Option<BBox>),
    /// The detector every `every` frames, the tracker always.
    Detected {
        detector: Box<dyn Detect>,
        tracker: Tracker,
        cuts: CutDetector,
        every: u32,
        frames: u64,
    },
}

impl Finder {
    /// The finder `people` asks for; loads the person detector it names.
    ///
    /// # Errors
    /// The detector file's problem, naming `[person] detector`.
    pub fn new(people: &People) -> Result<Self> {
        Ok(match people {
            People::Region(b) => Finder::Region(*b),
            People::Detected { detector, detection, .. } => {
                let d = PersonDetector::load(detector, detection.clone()).with_context(|| {
                    format!(
                        "loading the person detector [person] detector = {:?}",
                        detector.display().to_string()
                    )
                })?;
                tracing::info!(detector = %detector.display(), kind = d.kind(), "Person detector loaded.");
                Finder::with_detector(people, Box::new(d))
            }
        })
    }

    /// The finder `people` asks for, with `detector` as its person detector (a region finder
    /// ignores it).
    pub fn with_detector(people: &People, detector: Box<dyn Detect>) -> Self {
        match people {
            People::Region(b) => Finder::Region(*b),
            People::Detected { every, tracker, cut_threshold, .. } => Finder::Detected {
                detector,
                tracker: Tracker::new(*tracker),
                cuts: CutDetector::new(*cut_threshold),
                every: *every,
                frames: 0,
            },
        }
    }

    /// The people of `image` (ascending id) and the tracks that ended.
    pub fn find(
        &mut self,
        image: &crate::pixels::Image,
        counters: &Counters,
    ) -> Result<(Vec<Tracked>, Vec<u32>)> {
        let size = [image.width, image.height];
        match self {
            Finder::Region(b) => {
                let t0 = Instant::now();
                let bbox = b.unwrap_or_else(|| BBox::full(image.width, image.height));
                let people = vec![Tracked { id: 0, bbox, score: 1.0, predicted: false }];
                counters.stages.track.add(t0.elapsed());
                Ok((people, Vec::new()))
            }
            Finder::Detected { detector, tracker, cuts, every, frames } => {
                // A hard cut ends every track (their windows flush) and runs the detector.
                let mut ended = Vec::new();
                if counters.stages.track.time(|| cuts.is_cut(image)) {
                    Counters::add(&counters.scene_cuts, 1);
                    ended = tracker.reset();
                    *frames = 0;
                }
                let run = *frames % u64::from(*every) == 0;
                *frames += 1;
                let update = if run {
                    let boxes = counters.stages.detect.time(|| detector.detect(image))?;
                    counters.stages.track.time(|| tracker.update(&boxes, size))
                } else {
                    counters.stages.track.time(|| tracker.predict(size))
                };
                ended.extend(update.ended);
                Ok((update.people, ended))
            }
        }
    }

    /// A source gap: every track ends (post flushes all windows on the gap marker); ids are
    /// not reused.
    pub fn reset(&mut self) {
        if let Finder::Detected { tracker, cuts, frames, .. } = self {
            tracker.reset();
            cuts.reset();
            *frames = 0;
        }
    }
}
