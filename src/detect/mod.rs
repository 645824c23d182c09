//! Finding people: the person detector ([`blazepose`], MediaPipe's BlazePose detector run by
//! tract) and the tracker that gives people stable ids ([`track`]). Not wired into the daemon
//! yet (#5): its person region is still the configured box or the whole frame.

pub mod blazepose;
pub mod track;

use crate::preprocess::BBox;

/// One detected person: a box in image pixels and the detector's confidence (0–1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    pub bbox: BBox,
    pub score: f32,
}
