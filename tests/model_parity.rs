//! tract vs the PyTorch reference on the vectors written by `models/run convert.py --vectors`.
//!
//! Tolerances (see docs/MODEL.md for what they mean in degrees):
//! - f32: max |diff| ≤ 1e-4 × max |reference| per output; rotation matrices ≤ 1e-3 absolute.
//! - int8: measured per output on these vectors and recorded here with headroom.

mod common;

use common::{max_abs_diff, model_dirs, rel_max_diff, Vectors};
use smplcast::model::{Backbone, HeadOutput, Precision, TemporalHead, POSE6D_LEN};
use smplcast::smpl;

const F32_REL: f32 = 1e-4;
const ROTMAT_ABS: f32 = 1e-3;

fn flat(outs: &[HeadOutput]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    (
        outs.iter().flat_map(|o| o.pose6d).collect(),
        outs.iter().flat_map(|o| o.shape).collect(),
        outs.iter().flat_map(|o| o.cam).collect(),
    )
}

fn rotmats(pose6d: &[f32]) -> Vec<f32> {
    pose6d
        .chunks(POSE6D_LEN)
        .flat_map(|p| {
            let p: &[f32; POSE6D_LEN] = p.try_into().expect("chunk of 144");
            smpl::pose6d_to_rotmats(p).into_iter().flatten().flatten()
        })
        .collect()
}

fn run_backbone(dir: &std::path::Path, file: &str, v: &mut Vectors) -> (Vec<f32>, Vec<f32>) {
    let image = v.get("image");
    let reference = v.get("feature");
    let mut bb = Backbone::load(&dir.join(file), image.shape()[0]).expect("load backbone");
    let got = bb.run(image.as_slice().unwrap()).expect("run backbone");
    (reference.into_raw_vec_and_offset().0, got)
}

fn run_head(dir: &std::path::Path, file: &str, v: &mut Vectors) -> [(Vec<f32>, Vec<f32>); 4] {
    let windows = v.get("windows");
    let mut head = TemporalHead::load(&dir.join(file), windows.shape()[0]).expect("load temporal");
    let (pose, shape, cam) = flat(&head.run(windows.as_slice().unwrap()).expect("run temporal"));
    let mut want = |n: &str| v.get(n).into_raw_vec_and_offset().0;
    [
        (want("pose6d"), pose.clone()),
        (want("shape"), shape),
        (want("cam"), cam),
        (want("rotmat"), rotmats(&pose)),
    ]
}

#[test]
fn backbone_f32_matches_pytorch() {
    for dir in model_dirs() {
        let mut v = Vectors::open(&dir);
        let (want, got) = run_backbone(&dir, "backbone.onnx", &mut v);
        let d = rel_max_diff(&want, &got);
        eprintln!("{}: backbone f32 feature max diff / scale = {d:.2e}", dir.display());
        assert!(d <= F32_REL, "{}: {d}", dir.display());
    }
}

#[test]
fn temporal_f32_matches_pytorch_at_real_and_small_feature_scale() {
    for dir in model_dirs() {
        let mut v = Vectors::open(&dir);
        // Windows 0-1 are backbone features of real crops, 2-3 small-scale (unsaturated softmax).
        let [pose, shape, cam, rot] = run_head(&dir, "temporal.onnx", &mut v);
        for (name, (want, got)) in [("pose6d", pose), ("shape", shape), ("cam", cam)] {
            let d = rel_max_diff(&want, &got);
            eprintln!("{}: temporal f32 {name} max diff / scale = {d:.2e}", dir.display());
            assert!(d <= F32_REL, "{}: {name} {d}", dir.display());
        }
        let d = max_abs_diff(&rot.0, &rot.1);
        eprintln!("{}: rotation matrices max abs diff = {d:.2e}", dir.display());
        assert!(d <= ROTMAT_ABS);
    }
}

/// Tolerances measured on the narrow fixture and full-size random models (docs/MODEL.md).
const INT8_FEATURE_REL: f32 = 0.06;
const INT8_HEAD_REL: f32 = 0.12;
const INT8_ROTMAT_ABS: f32 = 0.25;

#[test]
fn int8_graphs_stay_within_measured_tolerance() {
    for dir in model_dirs() {
        let mut v = Vectors::open(&dir);
        let bb = Backbone::load(&dir.join("backbone.int8.onnx"), 1).unwrap();
        assert_eq!(bb.precision(), Precision::Int8);
        let (want, got) = run_backbone(&dir, "backbone.int8.onnx", &mut v);
        let d = rel_max_diff(&want, &got);
        eprintln!("{}: backbone int8 feature max diff / scale = {d:.3}", dir.display());
        assert!(d <= INT8_FEATURE_REL, "{d}");
        let [pose, shape, cam, rot] = run_head(&dir, "temporal.int8.onnx", &mut v);
        for (name, (want, got)) in [("pose6d", pose), ("shape", shape), ("cam", cam)] {
            let d = rel_max_diff(&want, &got);
            eprintln!("{}: temporal int8 {name} max diff / scale = {d:.3}", dir.display());
            assert!(d <= INT8_HEAD_REL, "{name} {d}");
        }
        let d = max_abs_diff(&rot.0, &rot.1);
        eprintln!("{}: temporal int8 rotation matrices max abs diff = {d:.3}", dir.display());
        assert!(d <= INT8_ROTMAT_ABS, "{d}");
    }
}

#[test]
fn batched_people_equal_each_alone() {
    for dir in model_dirs() {
        let mut v = Vectors::open(&dir);
        let windows = v.get("windows");
        let (n, per) = (windows.shape()[0], windows.len() / windows.shape()[0]);
        let data = windows.as_slice().unwrap();
        let mut batched = TemporalHead::load(&dir.join("temporal.onnx"), n).unwrap();
        let together = batched.run(data).unwrap();
        let mut single = TemporalHead::load(&dir.join("temporal.onnx"), 1).unwrap();
        for (b, out) in together.iter().enumerate() {
            let alone = &single.run(&data[b * per..(b + 1) * per]).unwrap()[0];
            let d = max_abs_diff(&out.pose6d, &alone.pose6d)
                .max(max_abs_diff(&out.shape, &alone.shape))
                .max(max_abs_diff(&out.cam, &alone.cam));
            assert!(d <= 1e-5, "{}: window {b} differs by {d} in a batch of {n}", dir.display());
        }
        let image = v.get("image");
        let per = image.len() / image.shape()[0];
        let data = image.as_slice().unwrap();
        let together = Backbone::load(&dir.join("backbone.onnx"), 2).unwrap().run(data).unwrap();
        let mut single = Backbone::load(&dir.join("backbone.onnx"), 1).unwrap();
        let c = together.len() / 2;
        for b in 0..2 {
            let alone = single.run(&data[b * per..(b + 1) * per]).unwrap();
            assert!(rel_max_diff(&alone, &together[b * c..(b + 1) * c]) <= 1e-5);
        }
    }
}
