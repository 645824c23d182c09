//! Hard cuts (scene changes: an edited broadcast, a switched camera): the tracker must not
//! carry a person's id, or their temporal window, across one.
//!
//! Each frame is reduced to an 8 × 6 grid of mean colours (from 64 × 48 bilinear samples);
//! a cut is a mean absolute difference between consecutive grids of more than `threshold`
//! (colour values in 0–1). Calibrated on real footage (docs/people-eval.md): consecutive frames
//! of one shot differ by ≤ 0.007 (vtest.avi, people walking) to 0.057 (tree.avi, a moving
//! camera); the hard cuts of Megamind.avi by 0.124–0.137, and splices of unrelated real
//! scenes by ≥ 0.15. Runs on the inference thread, about 3 000 samples a frame.

use crate::pixels::{sample_grid, Grid, Image};

const SAMPLES: [usize; 2] = [64, 48];
const CELLS: [usize; 2] = [8, 6];

/// Tells whether a frame starts a new scene.
#[derive(Clone, Debug)]
pub struct CutDetector {
    threshold: f32,
    last: Option<Vec<f32>>,
    samples: Vec<f32>,
}

impl CutDetector {
    /// `threshold`: see the module docs (0.1 by default; 0 turns cut detection off).
    pub fn new(threshold: f32) -> Self {
        CutDetector { threshold, last: None, samples: Vec::new() }
    }

    /// Whether `image` differs from the previous frame by more than the threshold (never for
    /// the first frame, nor with a threshold of 0 or less).
    pub fn is_cut(&mut self, image: &Image) -> bool {
        let cells = self.cells(image);
        let cut = match &self.last {
            Some(last) if self.threshold > 0.0 => difference(last, &cells) > self.threshold,
            _ => false,
        };
        self.last = Some(cells);
        cut
    }

    /// Forgets the previous frame (a source gap: the next frame is not compared).
    pub fn reset(&mut self) {
        self.last = None;
    }

    fn cells(&mut self, image: &Image) -> Vec<f32> {
        let [sw, sh] = SAMPLES;
        let step = [image.width as f32 / sw as f32, image.height as f32 / sh as f32];
        let grid = Grid { origin: [0.0, 0.0], step, size: SAMPLES };
        sample_grid(image, grid, [0.0; 3], [1.0; 3], &mut self.samples);
        let [cw, ch] = CELLS;
        let (per_x, per_y) = (sw / cw, sh / ch);
        let mut cells = vec![0.0; 3 * cw * ch];
        for c in 0..3 {
            let plane = &self.samples[c * sw * sh..(c + 1) * sw * sh];
            for (y, row) in plane.chunks_exact(sw).enumerate() {
                for (x, v) in row.iter().enumerate() {
                    cells[c * cw * ch + (y / per_y) * cw + x / per_x] += v;
                }
            }
        }
        let n = (per_x * per_y) as f32;
        cells.iter_mut().for_each(|v| *v /= n);
        cells
    }
}

/// Mean absolute difference of two cell grids.
fn difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(w: u32, h: u32, rgb: [u8; 3]) -> Image {
        Image::rgb24(w, h, rgb.repeat((w * h) as usize))
    }

    #[test]
    fn a_change_of_scene_is_a_cut_and_small_changes_are_not() {
        let mut d = CutDetector::new(0.1);
        assert!(!d.is_cut(&flat(64, 48, [100, 100, 100])), "the first frame");
        assert!(!d.is_cut(&flat(64, 48, [110, 105, 100])), "a small change");
        assert!(d.is_cut(&flat(64, 48, [10, 200, 40])), "a new scene");
        d.reset();
        assert!(!d.is_cut(&flat(64, 48, [250, 250, 250])), "after a reset: a first frame");
        let mut off = CutDetector::new(0.0);
        off.is_cut(&flat(64, 48, [0, 0, 0]));
        assert!(!off.is_cut(&flat(64, 48, [255, 255, 255])), "threshold 0: off");
    }

    #[test]
    fn any_frame_size_works() {
        let mut d = CutDetector::new(0.1);
        for (w, h) in [(1, 1), (7, 3), (1920, 1080), (3, 700)] {
            d.is_cut(&flat(w, h, [50, 60, 70]));
        }
    }
}
