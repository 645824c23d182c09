//! Finding people: the person detector and the tracker that gives people stable ids
//! ([`track`]). Two detectors, told apart by the ONNX file's interface:
//! - [`nanodet`], NanoDet-g's person class (the default, models/nanodet/nanodet.onnx): tight
//!   boxes for every person in the frame, close or far;
//! - [`blazepose`], MediaPipe's BlazePose detector (models/detector/pose_detection.onnx): one
//!   person close to the camera, a box derived from the face and hips.
//!
//! Runs on the inference thread.

pub mod blazepose;
pub mod cut;
pub mod finder;
pub mod nanodet;
pub mod track;

use std::path::Path;

use crate::geom::BBox;
use crate::model;
use crate::pixels::Image;

/// One detected person: a box in image pixels and the detector's confidence (0–1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    pub bbox: BBox,
    pub score: f32,
}

/// What the tracker needs from a person detector: the people in a frame, best first. The
/// seam between [`finder::Finder`] and the ONNX detectors ([`PersonDetector`]); tests put a
/// scripted detector here.
pub trait Detect: Send {
    /// The people in `image`, best first.
    ///
    /// # Errors
    /// [`model::Error`] when the detector's graph fails.
    fn detect(&mut self, image: &Image) -> model::Result<Vec<Detection>>;
}

/// A loaded person detector, whichever the file holds.
pub enum PersonDetector {
    NanoDet(Box<nanodet::Detector>),
    BlazePose(Box<blazepose::Detector>),
}

impl PersonDetector {
    /// Loads `path`: NanoDet when the file declares NanoDet's input (`image`, 4-d), else
    /// BlazePose. `settings` apply to NanoDet (BlazePose has its own, MediaPipe's).
    ///
    /// # Errors
    /// See [`model::Error`]; a file that is neither names NanoDet's interface and what the
    /// file has.
    pub fn load(path: &Path, settings: nanodet::Settings) -> model::Result<Self> {
        if model::NanoDetGraph::declared_by(path) || !blazepose::Detector::declared_by(path) {
            return Ok(PersonDetector::NanoDet(Box::new(nanodet::Detector::load(path, settings)?)));
        }
        Ok(PersonDetector::BlazePose(Box::new(blazepose::Detector::load(path)?)))
    }

    /// Which detector it is, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PersonDetector::NanoDet(_) => "NanoDet",
            PersonDetector::BlazePose(_) => "BlazePose",
        }
    }
}

impl Detect for PersonDetector {
    fn detect(&mut self, image: &Image) -> model::Result<Vec<Detection>> {
        match self {
            PersonDetector::NanoDet(d) => d.detect(image),
            PersonDetector::BlazePose(d) => Ok(d
                .detect(image)?
                .iter()
                .filter_map(|p| p.body_box(image.width, image.height))
                .collect()),
        }
    }
}
