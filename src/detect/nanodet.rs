//! The multi-person detector: NanoDet-g (RangiLyu/nanodet, Apache-2.0; models/nanodet/README.md),
//! COCO's person class, run by tract. Finds people at every distance.
//!
//! The whole frame is letterboxed into an input whose longer side is a given size (the shorter
//! side follows the frame's aspect ratio, rounded up to a multiple of 32, so little of the input
//! is padding). The detector runs at each of `sizes` and one non-maximum suppression merges
//! what they find. Two sizes by default, [320, 160], because NanoDet-g misses people whose box
//! is 130–180 px tall in its input (the limit of its finest output level: recall 0.34 at
//! 140–160 px on real footage, docs/people-eval.md); those are 65–90 px tall at half the size,
//! where it finds 0.98 of them. The larger size finds the smallest people: from ~32 px tall
//! in its input, 13 % of a 4:3 frame's height at 320 (17 % of a 16:9 one); `[512, 320, 160]`
//! reaches 8 % (11 %) for three times the time.
//!
//! Input: a frame ([`Image`]). Output: tight person boxes in image pixels with scores, best
//! first ([`Detection`]). Runs on the inference thread.
//!
//! Each size's graph is prepared for one input; a frame of another size prepares it again (a
//! source that changes its resolution), which is rare and logged.

use std::path::{Path, PathBuf};

use super::Detection;
use crate::geom::BBox;
use crate::model::{self, NanoDetGraph, NANODET_STRIDE};
use crate::pixels::{sample_grid, Grid, Image};

/// The strides of NanoDet's three output levels, in output order.
pub const STRIDES: [usize; 3] = [8, 16, 32];

/// Detector settings (config `[person]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The longer sides of the detector's inputs, pixels (multiples of 32): it runs at each.
    pub sizes: Vec<usize>,
    /// Least score of a reported person.
    pub min_score: f32,
    /// Boxes overlapping a better one by more than this IoU are dropped.
    pub nms_iou: f32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { sizes: vec![320, 160], min_score: 0.45, nms_iou: 0.5 }
    }
}

/// The input size [width, height] for a `width` × `height` frame: the longer side is
/// `size`, the shorter one keeps the aspect ratio, rounded up to a multiple of 32.
pub fn input_size(width: u32, height: u32, size: usize) -> [usize; 2] {
    let round_up = |v: f64| ((v / NANODET_STRIDE as f64).ceil() as usize).max(1) * NANODET_STRIDE;
    let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    if w >= h {
        [size, round_up(size as f64 * h / w)]
    } else {
        [round_up(size as f64 * w / h), size]
    }
}

/// How a frame sits in the detector's input: scaled by `scale` into the top-left corner.
fn letterbox_scale(width: u32, height: u32, input: [usize; 2]) -> f32 {
    (input[0] as f32 / width.max(1) as f32).min(input[1] as f32 / height.max(1) as f32)
}

/// The detector's outputs → people in image pixels (a `width` × `height` frame, letterboxed
/// into `input`), best first, after NMS. Any output values are accepted (fuzzed): NaN scores
/// are never above the threshold, and boxes that are empty once clipped to the image are
/// dropped.
pub fn postprocess(
    scores: &[f32],
    distances: &[f32],
    input: [usize; 2],
    image: [u32; 2],
    settings: &Settings,
) -> Vec<Detection> {
    let mut found = Vec::new();
    candidates(scores, distances, input, image, settings.min_score, &mut found);
    nms(found, settings.nms_iou)
}

/// The cells scoring at least `min_score`, as boxes in image pixels, added to `found`.
fn candidates(
    scores: &[f32],
    distances: &[f32],
    input: [usize; 2],
    [width, height]: [u32; 2],
    min_score: f32,
    found: &mut Vec<Detection>,
) {
    let scale = letterbox_scale(width, height, input);
    let mut cell = 0;
    for stride in STRIDES {
        let (cols, rows) = (input[0] / stride, input[1] / stride);
        for k in 0..cols * rows {
            let i = cell + k;
            let (Some(&score), Some(d)) = (scores.get(i), distances.get(4 * i..4 * i + 4)) else {
                return;
            };
            // NaN is never above the threshold.
            if score.is_nan() || score < min_score {
                continue;
            }
            let s = stride as f32;
            let (cx, cy) = (((k % cols) as f32 + 0.5) * s, ((k / cols) as f32 + 0.5) * s);
            let corners = [cx - d[0] * s, cy - d[1] * s, cx + d[2] * s, cy + d[3] * s];
            if let Some(bbox) = clip(corners.map(|v| v / scale), width, height) {
                found.push(Detection { bbox, score });
            }
        }
        cell += cols * rows;
    }
}

/// A box's corners clipped to the image ([`BBox::clip`]).
pub fn clip(corners: [f32; 4], width: u32, height: u32) -> Option<BBox> {
    BBox::from_corners(corners).clip(width, height)
}

/// Greedy non-maximum suppression: best first, dropping boxes that overlap a kept one by
/// more than `iou`.
pub fn nms(mut found: Vec<Detection>, iou: f32) -> Vec<Detection> {
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::new();
    for d in found {
        if kept.iter().all(|k| k.bbox.iou(&d.bbox) <= iou) {
            kept.push(d);
        }
    }
    kept
}

/// The detector: a graph per input size, and the input buffer.
pub struct Detector {
    path: PathBuf,
    settings: Settings,
    graphs: Vec<NanoDetGraph>,
    input: Vec<f32>,
}

impl Detector {
    /// Loads `path` and prepares it at each size for a 4:3 frame (the input sizes are checked
    /// again on each frame; see the module's docs).
    ///
    /// # Errors
    /// See [`model::Error`]: unreadable, not ONNX, or not NanoDet's interface.
    pub fn load(path: &Path, settings: Settings) -> model::Result<Self> {
        let graphs = settings
            .sizes
            .iter()
            .map(|&size| NanoDetGraph::load(path, input_size(4, 3, size)))
            .collect::<model::Result<_>>()?;
        Ok(Detector { path: path.into(), settings, graphs, input: Vec::new() })
    }

    /// People in `image`, best first.
    ///
    /// # Errors
    /// [`model::Error`] when tract fails, or preparing a graph for a new frame size does.
    pub fn detect(&mut self, image: &Image) -> model::Result<Vec<Detection>> {
        let frame = [image.width, image.height];
        let mut found = Vec::new();
        for (graph, &size) in self.graphs.iter_mut().zip(&self.settings.sizes) {
            let input = input_size(image.width, image.height, size);
            if input != graph.size() {
                tracing::info!(
                    width = image.width,
                    height = image.height,
                    input = ?input,
                    "Frame size changed; preparing the person detector for it."
                );
                *graph = NanoDetGraph::load(&self.path, input)?;
            }
            let scale = letterbox_scale(image.width, image.height, input);
            let grid = Grid { origin: [0.0, 0.0], step: [1.0 / scale; 2], size: input };
            // RGB 0–255: the graph normalises (mean 0, std 1/255 leaves v as it is).
            sample_grid(image, grid, [0.0; 3], [1.0 / 255.0; 3], &mut self.input);
            let (scores, distances) = graph.run(&self.input)?;
            candidates(&scores, &distances, input, frame, self.settings.min_score, &mut found);
        }
        Ok(nms(found, self.settings.nms_iou))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_keeps_the_aspect_ratio_in_multiples_of_32() {
        assert_eq!(input_size(1920, 1080, 512), [512, 288]);
        assert_eq!(input_size(1280, 720, 416), [416, 256]); // 234 → 256
        assert_eq!(input_size(768, 576, 512), [512, 384]);
        assert_eq!(input_size(480, 640, 512), [384, 512]); // portrait
        assert_eq!(input_size(4000, 10, 320), [320, 32]);
        assert_eq!(input_size(0, 0, 320), [320, 320]);
    }

    /// One cell of the stride-8 level fires: its box comes back in image pixels.
    #[test]
    fn a_cell_decodes_to_its_box_in_image_pixels() {
        let input = [64, 32]; // cells: 8×4 + 4×2 + 2×1 = 42
        let cells = 42;
        let mut scores = vec![0.0; cells];
        let mut dists = vec![0.0; 4 * cells];
        // Stride 8, column 3, row 1: centre (28, 12) in the input.
        let k = 8 + 3;
        scores[k] = 0.9;
        dists[4 * k..4 * k + 4].copy_from_slice(&[1.0, 0.5, 2.0, 1.5]);
        // A 128 × 64 frame: scale 0.5.
        let found = postprocess(&scores, &dists, input, [128, 64], &Settings::default());
        assert_eq!(found.len(), 1);
        let b = found[0].bbox;
        assert_eq!((b.left, b.top, b.width, b.height), (40.0, 16.0, 48.0, 32.0));
        assert_eq!(found[0].score, 0.9);
    }

    #[test]
    fn boxes_are_clipped_by_shrinking_never_shifted() {
        let b = clip([-30.0, -10.0, 50.0, 100.0], 640, 480).unwrap();
        assert_eq!((b.left, b.top, b.width, b.height), (0.0, 0.0, 50.0, 100.0));
        let b = clip([600.0, 400.0, 700.0, 520.0], 640, 480).unwrap();
        assert_eq!((b.left, b.top, b.width, b.height), (600.0, 400.0, 40.0, 80.0));
        assert!(clip([700.0, 0.0, 800.0, 10.0], 640, 480).is_none(), "outside");
        assert!(clip([10.0, 10.0, 10.0, 50.0], 640, 480).is_none(), "empty");
        assert!(clip([f32::NAN, 0.0, 10.0, 10.0], 640, 480).is_none(), "NaN");
        assert!(clip([0.0, 0.0, f32::INFINITY, 10.0], 640, 480).is_none(), "infinite");
    }

    #[test]
    fn nms_keeps_the_best_of_a_cluster_and_close_neighbours() {
        let d = |x: f32, score| Detection {
            bbox: BBox { left: x, top: 0.0, width: 40.0, height: 100.0 },
            score,
        };
        // Two people side by side (IoU 0.33) and a duplicate of the first (IoU 0.9).
        let kept = nms(vec![d(0.0, 0.7), d(20.0, 0.6), d(2.0, 0.8)], 0.6);
        let lefts: Vec<f32> = kept.iter().map(|k| k.bbox.left).collect();
        assert_eq!(lefts, [2.0, 20.0]);
    }

    #[test]
    fn garbage_outputs_give_no_panic_and_no_nan_boxes() {
        let input = [32, 32]; // 16 + 4 + 1 cells
        let scores = [f32::NAN, f32::INFINITY, 1.0, -1.0].repeat(6);
        let dists = [f32::NAN, -5.0, f32::INFINITY, 1e30].repeat(24);
        for found in [
            postprocess(&scores, &dists, input, [32, 32], &Settings::default()),
            postprocess(&scores[..3], &dists[..5], input, [32, 32], &Settings::default()),
            postprocess(&scores, &dists, input, [0, 0], &Settings::default()),
        ] {
            for d in found {
                let b = d.bbox;
                assert!([b.left, b.top, b.width, b.height].iter().all(|v| v.is_finite()));
                assert!(b.width >= 1.0 && b.height >= 1.0);
            }
        }
    }
}
