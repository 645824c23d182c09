//! A deterministic synthetic person crop: a moving, breathing test pattern already in the
//! backbone's input layout, [3, 224, 224] f32 RGB with ImageNet mean/std applied.
//!
//! Used by `smplcast demo` and the benches where no camera is wanted. The same frame index
//! always gives the same bytes.

use crate::model::IMAGE_SIZE;

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Writes frame `index` of the pattern into `out` (resized to 3 × 224 × 224).
pub fn crop(index: u64, out: &mut Vec<f32>) {
    let n = IMAGE_SIZE;
    out.clear();
    out.resize(3 * n * n, 0.0);
    let t = index as f32 / 25.0;
    // A bright ellipse ("body") swaying over a diagonal gradient, plus two "arms" that swing.
    let (cx, cy) = (0.5 + 0.15 * (0.7 * t).sin(), 0.5 + 0.05 * (1.3 * t).cos());
    let swing = 0.25 * (2.0 * t).sin();
    for y in 0..n {
        for x in 0..n {
            let (u, v) = (x as f32 / n as f32, y as f32 / n as f32);
            let (dx, dy) = (u - cx, v - cy);
            let body = ((dx / 0.12).powi(2) + (dy / 0.3).powi(2) < 1.0) as u8 as f32;
            let arm = ((dy + swing * dx.abs()).abs() < 0.03 && dx.abs() < 0.3) as u8 as f32;
            let fg = body.max(arm);
            let rgb = [
                0.2 + 0.6 * u * (1.0 - fg) + 0.9 * fg,
                0.3 + 0.4 * v * (1.0 - fg) + 0.6 * fg,
                0.5 - 0.3 * u * (1.0 - fg) + 0.4 * fg,
            ];
            for c in 0..3 {
                out[c * n * n + y * n + x] = (rgb[c] - MEAN[c]) / STD[c];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn deterministic_and_moving() {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        super::crop(7, &mut a);
        super::crop(7, &mut b);
        super::crop(8, &mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 3 * 224 * 224);
        assert!(a.iter().all(|v| v.is_finite() && v.abs() < 3.0));
    }
}
