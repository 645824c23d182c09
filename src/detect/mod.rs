//! Finding people: detections (boxes with scores) and the tracker that gives them stable ids
//! ([`track`]). The person detector itself arrives with issue #5's model; until then the
//! daemon's person region is the configured box or the whole frame.

pub mod track;

use crate::preprocess::BBox;

/// One detected person: a box in image pixels and the detector's confidence (0–1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    pub bbox: BBox,
    pub score: f32,
}
