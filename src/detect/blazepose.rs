//! The person detector: MediaPipe's BlazePose detector (models/detector/, Apache-2.0) run by
//! tract, with MediaPipe's pre- and post-processing written here from the parameters of its
//! `PoseDetectionCpu` graph (mediapipe 0.10.21):
//! - **Letterbox** (ImageToTensor, keep aspect ratio): the image padded to a centred square with
//!   black, mapped corner to corner onto 224 × 224, RGB in [-1, 1], NHWC.
//! - **Anchors** (SsdAnchors): strides 8, 16, 32, 32, 32 on 224 px, 2 anchors per cell (one
//!   aspect ratio plus the interpolated one), fixed size 1, offset 0.5: 2254 anchors.
//! - **Decoding** (TensorsToDetections): x, y, w, h and 4 keypoints in 224-px units relative to
//!   the anchor; score = sigmoid(clamp(logit, ±100)); candidates below 0.5 are dropped.
//! - **Weighted NMS** (NonMaxSuppression, IoU > 0.3): the best candidate's score, with box and
//!   keypoints averaged over its cluster weighted by score.
//!
//! The detector's box is the **face**; keypoints 0 and 1 are the hip centre and a point above
//! the head that together give the whole body's position, size and rotation (MediaPipe's
//! alignment points). [`PersonDetection::body_box`] turns them into a person box.
//! Tested against the numpy reference (models/smplcast_models/blazepose.py), itself checked
//! against MediaPipe's own graph.

use std::path::Path;

use super::Detection;
use crate::geom::BBox;
use crate::model::{self, DetectorGraph, DETECTOR_ANCHORS, DETECTOR_COORDS, DETECTOR_SIZE};
use crate::pixels::{crop_normalised, Image};

/// Least score of a candidate.
pub const MIN_SCORE: f32 = 0.5;
/// IoU above which candidates are merged.
pub const NMS_IOU: f32 = 0.3;

/// One detected person, in image pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PersonDetection {
    pub score: f32,
    /// The face box.
    pub face: BBox,
    /// Hip centre, a point above the head, and two more alignment points (x, y); they may lie
    /// outside the image.
    pub keypoints: [[f32; 2]; 4],
}

impl PersonDetection {
    /// The person box: a square centred on the hip centre whose half side is the distance from
    /// it to the point above the head (MediaPipe's body alignment), clipped to the image.
    /// `None` when nothing of it is inside.
    pub fn body_box(&self, width: u32, height: u32) -> Option<Detection> {
        let [hip, top] = [self.keypoints[0], self.keypoints[1]];
        let half = ((top[0] - hip[0]).powi(2) + (top[1] - hip[1]).powi(2)).sqrt();
        let x0 = (hip[0] - half).max(0.0);
        let y0 = (hip[1] - half).max(0.0);
        let x1 = (hip[0] + half).min(width as f32);
        let y1 = (hip[1] + half).min(height as f32);
        (x1 > x0 && y1 > y0)
            .then_some(Detection { bbox: BBox::from_corners([x0, y0, x1, y1]), score: self.score })
    }
}

/// A candidate in letterbox fractions: box (xmin, ymin, xmax, ymax) and keypoints.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub score: f32,
    pub bbox: [f32; 4],
    pub keypoints: [[f32; 2]; 4],
}

/// Anchor centres (x, y) in fractions of the input; every anchor has size 1.
pub fn anchors() -> Vec<[f32; 2]> {
    // SsdAnchors with num_layers 5, strides [8, 16, 32, 32, 32], one aspect ratio and the
    // interpolated one: consecutive layers of equal stride share a grid, 2 anchors per layer.
    let strides = [8usize, 16, 32, 32, 32];
    let mut out = Vec::with_capacity(DETECTOR_ANCHORS);
    let mut layer = 0;
    while layer < strides.len() {
        let same = strides[layer..].iter().take_while(|&&s| s == strides[layer]).count();
        let cells = DETECTOR_SIZE.div_ceil(strides[layer]);
        for y in 0..cells {
            for x in 0..cells {
                let c = [(x as f32 + 0.5) / cells as f32, (y as f32 + 0.5) / cells as f32];
                out.extend(std::iter::repeat_n(c, 2 * same));
            }
        }
        layer += same;
    }
    out
}

/// Candidates scoring at least [`MIN_SCORE`] from the raw outputs.
pub fn decode(raw: &[f32], logits: &[f32], anchors: &[[f32; 2]]) -> Vec<Candidate> {
    let scale = DETECTOR_SIZE as f32;
    raw.chunks_exact(DETECTOR_COORDS)
        .zip(logits)
        .zip(anchors)
        .filter_map(|((r, &logit), a)| {
            let score = 1.0 / (1.0 + (-logit.clamp(-100.0, 100.0)).exp());
            if score < MIN_SCORE {
                return None;
            }
            let (xc, yc) = (r[0] / scale + a[0], r[1] / scale + a[1]);
            let (w, h) = (r[2] / scale, r[3] / scale);
            let kp = |k: usize| [r[4 + 2 * k] / scale + a[0], r[5 + 2 * k] / scale + a[1]];
            Some(Candidate {
                score,
                bbox: [xc - w / 2.0, yc - h / 2.0, xc + w / 2.0, yc + h / 2.0],
                keypoints: [kp(0), kp(1), kp(2), kp(3)],
            })
        })
        .collect()
}

/// MediaPipe's weighted non-maximum suppression: repeatedly take the best remaining candidate
/// and merge every remaining one that overlaps it by more than [`NMS_IOU`] (itself included),
/// averaging box and keypoints weighted by score; the best one's score is kept.
pub fn weighted_nms(mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    while let Some(top) = candidates.first().copied() {
        let (cluster, rest): (Vec<Candidate>, Vec<Candidate>) = candidates
            .into_iter()
            .partition(|c| BBox::from_corners(c.bbox).iou(&BBox::from_corners(top.bbox)) > NMS_IOU);
        let total: f32 = cluster.iter().map(|c| c.score).sum();
        let mut merged = Candidate { score: top.score, bbox: [0.0; 4], keypoints: [[0.0; 2]; 4] };
        if cluster.is_empty() || total <= 0.0 {
            merged = top; // a degenerate box overlaps nothing, not even itself
        } else {
            for c in &cluster {
                let w = c.score / total;
                for i in 0..4 {
                    merged.bbox[i] += c.bbox[i] * w;
                    merged.keypoints[i][0] += c.keypoints[i][0] * w;
                    merged.keypoints[i][1] += c.keypoints[i][1] * w;
                }
            }
        }
        out.push(merged);
        candidates = if cluster.is_empty() { rest.into_iter().skip(1).collect() } else { rest };
    }
    out
}

/// The letterbox square of an image: side and the image's offset in it (pixels).
fn square(width: u32, height: u32) -> (f32, f32, f32) {
    let side = width.max(height) as f32;
    (side, (side - width as f32) / 2.0, (side - height as f32) / 2.0)
}

/// The detector's input for `image`: [1, 224, 224, 3] NHWC RGB in [-1, 1].
pub fn letterbox(image: &Image, planar: &mut Vec<f32>, out: &mut Vec<f32>) {
    let (side, ox, oy) = square(image.width, image.height);
    let n = DETECTOR_SIZE;
    let step = side / n as f32;
    // MediaPipe maps output pixel i to source i·step − offset (corner to corner); the sampler
    // maps it to origin + (i + ½)·step − ½: shift the origin to match.
    let origin = |offset: f32| -offset - 0.5 * step + 0.5;
    let crop = (origin(ox) + side / 2.0, origin(oy) + side / 2.0, side);
    crop_normalised(image, crop, n, [0.5; 3], [0.5; 3], planar);
    out.clear();
    out.resize(3 * n * n, 0.0);
    for (i, px) in out.chunks_exact_mut(3).enumerate() {
        for (c, v) in px.iter_mut().enumerate() {
            *v = planar[c * n * n + i];
        }
    }
}

/// From letterbox fractions to image pixels.
/// The detector's post-processing: raw outputs → candidates → weighted NMS → people in image
/// pixels (of a `width` × `height` image). Any output values are accepted (fuzzed).
pub fn postprocess(
    raw: &[f32],
    logits: &[f32],
    anchors: &[[f32; 2]],
    width: u32,
    height: u32,
) -> Vec<PersonDetection> {
    let found = weighted_nms(decode(raw, logits, anchors));
    found.iter().map(|c| to_pixels(c, width, height)).collect()
}

fn to_pixels(c: &Candidate, width: u32, height: u32) -> PersonDetection {
    let (side, ox, oy) = square(width, height);
    let px = |x: f32, y: f32| [x * side - ox, y * side - oy];
    let [x0, y0] = px(c.bbox[0], c.bbox[1]);
    let [x1, y1] = px(c.bbox[2], c.bbox[3]);
    PersonDetection {
        score: c.score,
        face: BBox::from_corners([x0, y0, x1, y1]),
        keypoints: c.keypoints.map(|k| px(k[0], k[1])),
    }
}

/// The detector: graph, anchors and buffers.
pub struct Detector {
    graph: DetectorGraph,
    anchors: Vec<[f32; 2]>,
    planar: Vec<f32>,
    input: Vec<f32>,
}

impl Detector {
    /// # Errors
    /// See [`model::Error`].
    pub fn load(path: &Path) -> model::Result<Self> {
        Ok(Detector {
            graph: DetectorGraph::load(path)?,
            anchors: anchors(),
            planar: Vec::new(),
            input: Vec::new(),
        })
    }

    /// Whether `path` declares the BlazePose detector's input (`input_1`, 4-d); the file is
    /// read, not prepared.
    pub fn declared_by(path: &Path) -> bool {
        DetectorGraph::declared_by(path)
    }

    /// People in `image`, best first.
    ///
    /// # Errors
    /// [`model::Error::Run`] when tract fails.
    pub fn detect(&mut self, image: &Image) -> model::Result<Vec<PersonDetection>> {
        letterbox(image, &mut self.planar, &mut self.input);
        self.detect_input(image.width, image.height)
    }

    /// Like [`Detector::detect`] on an input already letterboxed (tests).
    ///
    /// # Errors
    /// [`model::Error::Run`] when tract fails or `input` is not 224 × 224 × 3.
    pub fn detect_letterboxed(
        &mut self,
        input: &[f32],
        width: u32,
        height: u32,
    ) -> model::Result<Vec<PersonDetection>> {
        self.input.clear();
        self.input.extend_from_slice(input);
        self.detect_input(width, height)
    }

    fn detect_input(&mut self, width: u32, height: u32) -> model::Result<Vec<PersonDetection>> {
        let (raw, logits) = self.graph.run(&self.input)?;
        Ok(postprocess(&raw, &logits, &self.anchors, width, height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_follow_the_ssd_layout() {
        let a = anchors();
        assert_eq!(a.len(), DETECTOR_ANCHORS);
        assert_eq!(
            (a[0], a[1], a[2]),
            ([0.5 / 28.0; 2], [0.5 / 28.0; 2], [1.5 / 28.0, 0.5 / 28.0])
        );
        assert_eq!(a[28 * 28 * 2], [0.5 / 14.0; 2]);
        let last7 = &a[DETECTOR_ANCHORS - 6..];
        assert!(last7.iter().all(|c| *c == [6.5 / 7.0; 2]), "6 anchors per 7×7 cell");
    }

    #[test]
    fn weighted_nms_merges_a_cluster_and_keeps_separate_people() {
        let c = |score, x: f32| Candidate {
            score,
            bbox: [x, 0.1, x + 0.2, 0.3],
            keypoints: [[x, 0.5]; 4],
        };
        let out = weighted_nms(vec![c(0.6, 0.12), c(0.9, 0.1), c(0.7, 0.6), c(0.3, 0.11)]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9, "the best score of the cluster");
        let want = (0.9 * 0.1 + 0.6 * 0.12 + 0.3 * 0.11) / 1.8;
        assert!(
            (out[0].bbox[0] - want).abs() < 1e-6 && (out[0].keypoints[2][0] - want).abs() < 1e-6
        );
        assert_eq!(out[1].bbox[0], 0.6);
        assert!(weighted_nms(Vec::new()).is_empty());
    }

    #[test]
    fn body_box_is_clipped_to_the_image() {
        let d = PersonDetection {
            score: 0.8,
            face: BBox { left: 0.0, top: 0.0, width: 1.0, height: 1.0 },
            keypoints: [[100.0, 300.0], [100.0, 100.0], [0.0; 2], [0.0; 2]],
        };
        let b = d.body_box(640, 360).unwrap().bbox;
        assert_eq!((b.left, b.top, b.width, b.height), (0.0, 100.0, 300.0, 260.0));
        let gone = PersonDetection {
            keypoints: [[-500.0, -500.0], [-500.0, -490.0], [0.0; 2], [0.0; 2]],
            ..d
        };
        assert!(gone.body_box(640, 360).is_none());
    }
}
