//! From a frame and a person's box to the backbone's input: the official MPS-Net demo's crop
//! (a square around the box centre, side = longer box side × scale, default 1.1), sampled
//! bilinearly to 224 × 224, pixels outside the image black, then ImageNet mean/std.
//! Output: [3, 224, 224] f32 RGB, planar. Pure; runs on the inference thread.

use crate::encode::Crop;
use crate::model::IMAGE_SIZE;
use crate::source::Frame;

/// ImageNet normalisation the backbone was trained with.
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A person's box in image pixels: left, top, width, height.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BBox {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
}

impl BBox {
    pub fn full(width: u32, height: u32) -> Self {
        BBox { left: 0.0, top: 0.0, width: width as f32, height: height as f32 }
    }

    pub fn as_array(&self) -> [f32; 4] {
        [self.left, self.top, self.width, self.height]
    }

    /// From corners (left, top, right, bottom).
    pub fn from_corners([x0, y0, x1, y1]: [f32; 4]) -> Self {
        BBox { left: x0, top: y0, width: x1 - x0, height: y1 - y0 }
    }

    /// This box clipped to a `width` × `height` image by moving the sides that stick out (never
    /// shifting the box); `None` when less than a pixel of it is left in either direction, or
    /// a side is not finite.
    pub fn clip(&self, width: u32, height: u32) -> Option<BBox> {
        let [x0, y0] = [self.left, self.top];
        let [x1, y1] = [self.left + self.width, self.top + self.height];
        if ![x0, y0, x1, y1].iter().all(|v| v.is_finite()) {
            return None;
        }
        let (x0, x1) = (x0.max(0.0), x1.min(width as f32));
        let (y0, y1) = (y0.max(0.0), y1.min(height as f32));
        (x1 - x0 >= 1.0 && y1 - y0 >= 1.0).then(|| BBox::from_corners([x0, y0, x1, y1]))
    }

    /// Intersection over union with `other` (0 when either is empty).
    pub fn iou(&self, other: &BBox) -> f32 {
        let x0 = self.left.max(other.left);
        let y0 = self.top.max(other.top);
        let x1 = (self.left + self.width).min(other.left + other.width);
        let y1 = (self.top + self.height).min(other.top + other.height);
        let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
        let union = self.width * self.height + other.width * other.height - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }

    /// The square crop around this box: centre kept, side = longer side × `scale`.
    pub fn crop(&self, scale: f32) -> Crop {
        Crop {
            cx: self.left + self.width / 2.0,
            cy: self.top + self.height / 2.0,
            side: self.width.max(self.height) * scale,
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
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
    fn square_crop_scaled_around_the_box_centre() {
        let b = BBox { left: 100.0, top: 50.0, width: 80.0, height: 200.0 };
        let c = b.crop(1.1);
        assert_eq!((c.cx, c.cy), (140.0, 150.0));
        assert!((c.side - 220.0).abs() < 1e-3, "{c:?}");
        assert_eq!(BBox::full(640, 480).crop(1.0), Crop { cx: 320.0, cy: 240.0, side: 640.0 });
    }

    #[test]
    fn iou_basics() {
        let a = BBox { left: 0.0, top: 0.0, width: 10.0, height: 10.0 };
        let b = BBox { left: 5.0, top: 0.0, width: 10.0, height: 10.0 };
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(a.iou(&BBox { left: 20.0, ..a }), 0.0);
        assert_eq!(a.iou(&a), 1.0);
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
