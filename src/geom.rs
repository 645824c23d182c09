//! Image geometry shared by the stages: a person's box ([`BBox`]) and the square crop the
//! model sees ([`Crop`]), in image pixels.

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

/// The square crop the model saw, in image pixels: centre and side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Crop {
    pub cx: f32,
    pub cy: f32,
    pub side: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
