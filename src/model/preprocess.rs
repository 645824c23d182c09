//! From a frame and a person's box to the backbone's input: the official MPS-Net demo's crop
//! (a square around the box centre, side = longer box side × scale, default 1.1), sampled
//! bilinearly to 224 × 224, pixels outside the image black, then ImageNet mean/std.
//! Output: [3, 224, 224] f32 RGB, planar. Pure; runs on the inference thread.

use crate::geom::Crop;
use crate::model::IMAGE_SIZE;
use crate::source::Frame;

/// ImageNet normalisation the backbone was trained with.
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Samples `crop` of `frame` into `out`, resized to [3, 224, 224] and normalised, in one pass
/// over whatever pixel layout the frame has ([`crate::pixels::crop_normalised`]).
pub fn crop_to_tensor(frame: &Frame, crop: Crop, out: &mut Vec<f32>) {
    crate::pixels::crop_normalised(
        &frame.image,
        (crop.cx, crop.cy, crop.side),
        IMAGE_SIZE,
        MEAN,
        STD,
        out,
    );
}

/// The inverse of [`crop_to_tensor`]'s normalisation: a [3, 224, 224] tensor back to 224 × 224
/// RGB bytes, row by row (what the backbone saw, as an image).
pub fn tensor_to_rgb(tensor: &[f32]) -> Vec<u8> {
    let plane = IMAGE_SIZE * IMAGE_SIZE;
    (0..plane * 3)
        .map(|i| {
            let (pixel, c) = (i / 3, i % 3);
            let v = tensor.get(c * plane + pixel).copied().unwrap_or(0.0);
            ((v * STD[c] + MEAN[c]) * 255.0).round().clamp(0.0, 255.0) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geom::BBox;
    use crate::source::CaptureTime;

    fn frame(width: u32, height: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Frame {
        let f = &f;
        let rgb = (0..height).flat_map(|y| (0..width).flat_map(move |x| f(x, y))).collect();
        let image = crate::pixels::Image::rgb24(width, height, rgb);
        Frame { id: 0, image, time: CaptureTime { utc_us: 0, mono_ns: 0 }, segment: 0 }
    }

    fn denorm(v: f32, c: usize) -> f32 {
        (v * STD[c] + MEAN[c]) * 255.0
    }

    #[test]
    fn identity_crop_reproduces_the_image() {
        let f = frame(224, 224, |x, y| [x as u8, y as u8, (x ^ y) as u8]);
        let mut t = Vec::new();
        crop_to_tensor(&f, BBox::full(224, 224).crop(1.0), &mut t);
        for (y, x) in [(0usize, 0usize), (10, 200), (223, 223), (100, 7)] {
            let want = [x as f32, y as f32, (x ^ y) as f32];
            for c in 0..3 {
                let got = denorm(t[c * 224 * 224 + y * 224 + x], c);
                assert!((got - want[c]).abs() < 1e-3, "({x},{y}) c{c}: {got} vs {}", want[c]);
            }
        }
    }

    #[test]
    fn a_tensor_turns_back_into_the_crop_it_was_made_from() {
        let f = frame(224, 224, |x, y| [x as u8, y as u8, (x ^ y) as u8]);
        let mut t = Vec::new();
        crop_to_tensor(&f, BBox::full(224, 224).crop(1.0), &mut t);
        assert_eq!(tensor_to_rgb(&t), f.image.data);
    }

    #[test]
    fn outside_the_image_is_black() {
        // 448×224 image: left half 0, right half 200. The full-frame square crop (side 448)
        // covers 112 rows of black above and below.
        let f = frame(448, 224, |x, _| if x < 224 { [0; 3] } else { [200; 3] });
        let mut t = Vec::new();
        crop_to_tensor(&f, BBox::full(448, 224).crop(1.0), &mut t);
        let at = |x: usize, y: usize| denorm(t[y * 224 + x], 0);
        assert!(at(150, 10).abs() < 1e-3, "above the image: black");
        assert!((at(150, 112) - 200.0).abs() < 1e-3 && at(50, 112).abs() < 1e-3);
        // 2:1 downsampling samples between source pixels 2i and 2i + 1: the seam stays sharp.
        assert!(at(111, 112).abs() < 1e-3 && (at(112, 112) - 200.0).abs() < 1e-3);
    }
}
