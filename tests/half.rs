//! f16 (`model::set_half_floats`): the f32 graphs loaded in half precision give what f32
//! gives, to f16's precision, through the same f32 interface. On x86 tract emulates f16 (slow,
//! correct); the speed is for ARMv8.2 cores (docs/performance.md).

mod common;

use common::{model_dirs, rel_max_diff, Rng};
use smplcast::model::{set_half_floats, Backbone, Precision, Streaming, IMAGE_SIZE, SEQ_LEN};

#[test]
fn half_precision_graphs_match_f32() {
    // The narrow fixture only: the full-size backbone in emulated f16 takes minutes on x86.
    let dir = &model_dirs()[0];
    let mut rng = Rng::new(7);
    let image: Vec<f32> = (0..3 * IMAGE_SIZE * IMAGE_SIZE).map(|_| rng.next()).collect();

    let load = |half: bool| {
        set_half_floats(half);
        let backbone = Backbone::load(&dir.join("backbone.onnx"), 1).unwrap();
        let head =
            Streaming::load(&dir.join("temporal_frame.onnx"), &dir.join("temporal_step.onnx"), 1)
                .unwrap();
        set_half_floats(false);
        (backbone, head)
    };
    let (mut b32, mut h32) = load(false);
    let (mut b16, mut h16) = load(true);
    assert_eq!(b32.precision(), Precision::F32);
    assert_eq!(b16.precision(), Precision::F16);
    assert_eq!(h16.precision(), Precision::F16);

    let f32_features = b32.run(&image).unwrap();
    let f16_features = b16.run(&image).unwrap();
    let d = rel_max_diff(&f32_features, &f16_features);
    eprintln!("backbone: max |f16 − f32| / max |f32| = {d:.2e}");
    assert!(d < 1e-2, "backbone: {d}");
    assert!(d > 0.0, "f16 and f32 features are identical: the f16 graph was not half precision");

    // The head over one window of features.
    let project = |h: &mut Streaming| {
        (0..SEQ_LEN)
            .map(|k| {
                let f: Vec<f32> =
                    f32_features.iter().map(|v| v * (1.0 + 0.01 * k as f32)).collect();
                h.project(&f).unwrap().remove(0)
            })
            .collect::<Vec<_>>()
    };
    let (c32, c16) = (project(&mut h32), project(&mut h16));
    let out32 = h32.step(&[std::array::from_fn(|i| &c32[i])]).unwrap().remove(0);
    let out16 = h16.step(&[std::array::from_fn(|i| &c16[i])]).unwrap().remove(0);
    let flat = |o: &smplcast::model::HeadOutput| {
        o.pose6d.iter().chain(&o.shape).chain(&o.cam).copied().collect::<Vec<f32>>()
    };
    let d = rel_max_diff(&flat(&out32), &flat(&out16));
    eprintln!("head: max |f16 − f32| / max |f32| = {d:.2e}");
    assert!(d < 1e-2, "head: {d}");
}
