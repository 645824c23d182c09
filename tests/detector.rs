//! The person detector (models/detector/pose_detection.onnx) run by tract and decoded in Rust,
//! against the numpy reference pipeline run with onnxruntime (tests/data/detector/, written by
//! models/gen_detector_vectors.py): real images with one person and with none.

use std::path::{Path, PathBuf};

use serde_json::Value;
use smplcast::detect::blazepose::{Detector, PersonDetection};
use smplcast::source::files::decode;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn model() -> PathBuf {
    root().join("models/detector/pose_detection.onnx")
}

fn vectors() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(root().join("tests/data/detector/vectors.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap().as_object().unwrap().clone()
}

/// Max difference between our detections and the reference's, as (score, pixels).
fn compare(got: &[PersonDetection], want: &Value) -> (f32, f32) {
    let want = want["detections"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "count: got {got:?}");
    let mut worst = (0f32, 0f32);
    for (g, w) in got.iter().zip(want) {
        let f = |v: &Value| v.as_f64().unwrap() as f32;
        worst.0 = worst.0.max((g.score - f(&w["score"])).abs());
        let b = &w["box"];
        let ours =
            [g.face.left, g.face.top, g.face.left + g.face.width, g.face.top + g.face.height];
        for (i, v) in ours.iter().enumerate() {
            worst.1 = worst.1.max((v - f(&b[i])).abs());
        }
        for (k, kp) in g.keypoints.iter().enumerate() {
            for c in 0..2 {
                worst.1 = worst.1.max((kp[c] - f(&w["keypoints"][k][c])).abs());
            }
        }
    }
    worst
}

#[test]
fn decoding_matches_the_reference_on_the_same_input() {
    let mut detector = Detector::load(&model()).unwrap();
    for (name, want) in vectors() {
        let png = decode(&root().join(format!("tests/data/detector/{name}_input.png"))).unwrap();
        let input: Vec<f32> = png.data.iter().map(|&v| f32::from(v) / 127.5 - 1.0).collect();
        let (w, h) =
            (want["width"].as_u64().unwrap() as u32, want["height"].as_u64().unwrap() as u32);
        let got = detector.detect_letterboxed(&input, w, h).unwrap();
        let (score, px) = compare(&got, &want);
        eprintln!(
            "{name}: {} people, score within {score:.1e}, positions within {px:.3} px",
            got.len()
        );
        // tract vs onnxruntime differ by ~1e-3 in the raw outputs (models/detector/).
        assert!(score < 2e-3 && px < 0.5, "{name}: score off by {score}, position by {px} px");
    }
}

#[test]
fn whole_pipeline_on_a_real_frame() {
    // Our letterbox (fused sampler) and JPEG decoder (zune-jpeg) instead of the reference's
    // OpenCV-style warp and Pillow: the same person, within a few pixels.
    let mut detector = Detector::load(&model()).unwrap();
    let image = decode(&root().join("benches/data/astronaut_640x480.jpg")).unwrap();
    let got = detector.detect(&image).unwrap();
    let (score, px) = compare(&got, &vectors()["astronaut_640x480"]);
    eprintln!("astronaut 640×480 through our letterbox: score within {score:.1e}, {px:.2} px");
    assert!(score < 0.02 && px < 3.0, "score off by {score}, position by {px} px: {got:?}");
    let body = got[0].body_box(640, 480).unwrap();
    assert!(body.bbox.width > 200.0 && body.bbox.height > 200.0, "{body:?}");
}

#[test]
fn a_graph_of_another_kind_is_refused_clearly() {
    let wrong = root().join("models/fixtures/narrow/temporal.onnx");
    let err = Detector::load(&wrong).err().unwrap().to_string();
    assert!(err.contains("temporal.onnx") && err.contains("person detector"), "{err}");
}
