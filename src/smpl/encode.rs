//! From the temporal head's output to a wire [`Person`]: 6D pose → axis-angle θ, the crop
//! camera re-expressed for the whole image, and the posed joints when an SMPL model file was
//! given. Pure; runs on the thread that steps the windows.

use crate::geom::Crop;
use crate::model::HeadOutput;
use crate::smpl::joints::Skeleton;
use crate::smpl::{self, CropCam};
use crate::wire::Person;

/// What the tracker says of a person in one frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Seen {
    /// The tracker's box [left, top, width, height] in pixels, inside the image.
    pub bbox: [f32; 4],
    /// Detection score (the last one while coasting).
    pub score: f32,
    /// Coasting: the box is the tracker's prediction.
    pub predicted: bool,
}

/// One person's wire record; `img` is the image size [width, height]. The joints come from the
/// full-precision θ and β, before they are rounded for the wire.
pub fn person(
    id: u32,
    seen: Seen,
    crop: Crop,
    img: [u32; 2],
    out: &HeadOutput,
    skeleton: Option<&Skeleton>,
) -> Person {
    let cam = CropCam { s: out.cam[0], tx: out.cam[1], ty: out.cam[2] };
    let o = smpl::crop_cam_to_orig(cam, crop.cx, crop.cy, crop.side, img[0] as f32, img[1] as f32);
    let pose = smpl::pose6d_to_axis_angle(&out.pose6d);
    let joints = skeleton.map(|s| {
        let joints = s.joints(&pose, &out.shape);
        std::array::from_fn(|k| joints[k / 3][k % 3])
    });
    Person {
        id,
        // Whole pixels, clamped to what u16 holds (images up to 65535 px wide).
        bbox: seen.bbox.map(|v| v.round().clamp(0.0, f32::from(u16::MAX)) as u16),
        score: seen.score,
        cam: out.cam,
        cam_img: [o.sx, o.sy, o.tx, o.ty],
        pose,
        shape: out.shape,
        joints,
        predicted: seen.predicted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_carries_axis_angle_and_both_cameras() {
        // Identity rotations (6D = first two columns of I) and a centred crop of a 640×480 image.
        let mut pose6d = [0f32; 144];
        for j in 0..24 {
            pose6d[6 * j..6 * j + 6].copy_from_slice(&[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        }
        let out = HeadOutput { pose6d, shape: [0.5; 10], cam: [0.9, 0.1, -0.2] };
        let crop = Crop { cx: 320.0, cy: 240.0, side: 240.0 };
        let seen = Seen { bbox: [200.4, 120.6, 240.0, 239.5], score: 0.75, predicted: false };
        let p = person(3, seen, crop, [640, 480], &out, None);
        assert_eq!(p.pose, [0.0; 72]);
        assert_eq!(p.joints, None);
        assert_eq!(p.bbox, [200, 121, 240, 240]);
        assert_eq!((p.id, p.score, p.cam, p.shape), (3, 0.75, out.cam, out.shape));
        // A centred crop keeps the translation; scales shrink by side / image size.
        let want = [0.9 * 240.0 / 640.0, 0.9 * 240.0 / 480.0, 0.1, -0.2];
        for (a, b) in p.cam_img.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{:?}", p.cam_img);
        }
    }
}
