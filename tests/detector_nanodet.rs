//! The default person detector, NanoDet (models/nanodet/nanodet.onnx), run by tract and decoded
//! in Rust, against onnxruntime and the numpy decoder of models/gen_nanodet_vectors.py
//! (tests/data/nanodet/): real images the size of the detector's input, so both sides see the
//! same pixels. Then what a user gets from a wrong file.

use std::path::{Path, PathBuf};

use serde_json::Value;
use smplcast::detect::nanodet::{Detector, Settings};
use smplcast::detect::{Detect, Detection, PersonDetector};
use smplcast::source::files::decode;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn model() -> PathBuf {
    root().join("models/nanodet/nanodet.onnx")
}

fn vectors() -> Value {
    let text = std::fs::read_to_string(root().join("tests/data/nanodet/vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Max difference between our detections and the reference's: (score, pixels).
fn compare(got: &[Detection], want: &[Value]) -> (f32, f32) {
    assert_eq!(got.len(), want.len(), "count: got {got:?}");
    let mut worst = (0f32, 0f32);
    for (g, w) in got.iter().zip(want) {
        let f = |v: &Value| v.as_f64().unwrap() as f32;
        worst.0 = worst.0.max((g.score - f(&w["score"])).abs());
        let b = g.bbox;
        let ours = [b.left, b.top, b.left + b.width, b.top + b.height];
        for (i, v) in ours.iter().enumerate() {
            worst.1 = worst.1.max((v - f(&w["corners"][i])).abs());
        }
    }
    worst
}

#[test]
fn detections_match_onnxruntime_on_real_images() {
    let v = vectors();
    let s = &v["settings"];
    let settings = Settings {
        sizes: vec![s["sizes"][0].as_u64().unwrap() as usize],
        min_score: s["min_score"].as_f64().unwrap() as f32,
        nms_iou: s["nms_iou"].as_f64().unwrap() as f32,
    };
    let d = Settings::default();
    assert_eq!((d.min_score, d.nms_iou), (settings.min_score, settings.nms_iou));
    let mut detector = Detector::load(&model(), settings).unwrap();
    for (name, want) in v["images"].as_object().unwrap() {
        let image = decode(&root().join(format!("tests/data/nanodet/{name}.png"))).unwrap();
        let got = detector.detect(&image).unwrap();
        let (score, px) = compare(&got, want.as_array().unwrap());
        eprintln!(
            "{name}: {} people, scores within {score:.1e}, boxes within {px:.4} px",
            got.len()
        );
        assert!(score < 1e-4 && px < 0.01, "{name}: score off by {score}, box by {px} px");
    }
}

#[test]
fn several_sizes_are_one_nms_over_what_each_finds() {
    let image = decode(&root().join("tests/data/nanodet/vtest-0060.png")).unwrap();
    let at = |sizes: Vec<usize>| {
        let mut d = Detector::load(&model(), Settings { sizes, ..Settings::default() }).unwrap();
        d.detect(&image).unwrap()
    };
    let (both, large, small) = (at(vec![512, 320]), at(vec![512]), at(vec![320]));
    assert!(both.len() >= large.len().max(small.len()), "{both:?}");
    let iou = Settings::default().nms_iou;
    for (i, d) in both.iter().enumerate() {
        // Each box is one a single size found (or overlaps one as its best cell would)...
        assert!(large.iter().chain(&small).any(|s| s.bbox.iou(&d.bbox) > iou), "{d:?}");
        // ... and no two are the same person.
        assert!(both[i + 1..].iter().all(|e| e.bbox.iou(&d.bbox) <= iou), "{d:?}");
    }
    assert!(both.windows(2).all(|w| w[0].score >= w[1].score), "best first");
}

#[test]
fn people_side_by_side_get_a_box_each() {
    // vtest-0060: a couple walking side by side (boxes 30 px apart at the shoulder).
    let mut detector = PersonDetector::load(&model(), Settings::default()).unwrap();
    assert_eq!(detector.kind(), "NanoDet");
    let image = decode(&root().join("tests/data/nanodet/vtest-0060.png")).unwrap();
    let got = detector.detect(&image).unwrap();
    assert!(got.len() >= 6, "{got:?}");
    for (i, a) in got.iter().enumerate() {
        for b in &got[i + 1..] {
            assert!(a.bbox.iou(&b.bbox) < 0.5, "one box between two people? {a:?} {b:?}");
        }
        // Tight, person-shaped boxes: taller than wide.
        assert!(a.bbox.height > 1.5 * a.bbox.width, "{a:?}");
    }
}

#[test]
fn any_frame_size_and_empty_frames() {
    let mut detector = Detector::load(&model(), Settings::default()).unwrap();
    // A portrait frame, then a tiny one, then 1080p: the graph is prepared again each time.
    for (w, h) in [(360, 640), (33, 17), (1920, 1080)] {
        let grey = smplcast::pixels::Image::rgb24(w, h, vec![128; (3 * w * h) as usize]);
        assert!(detector.detect(&grey).unwrap().is_empty(), "nobody in a grey {w}×{h} frame");
    }
}

#[test]
fn a_wrong_or_corrupt_file_is_refused_with_what_was_expected() {
    // Another kind of graph: the error names the file, the interface and what it has.
    let wrong = root().join("models/fixtures/narrow/temporal.onnx");
    let err = PersonDetector::load(&wrong, Settings::default()).err().unwrap().to_string();
    assert!(
        err.contains("temporal.onnx")
            && err.contains("image [1, 3, ")
            && err.contains("score")
            && err.contains("the file has inputs features"),
        "{err}"
    );
    // A truncated download.
    let dir = std::env::temp_dir().join(format!("smplcast-nanodet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corrupt = dir.join("detector.onnx");
    std::fs::write(&corrupt, &std::fs::read(model()).unwrap()[..100_000]).unwrap();
    let err = PersonDetector::load(&corrupt, Settings::default()).err().unwrap().to_string();
    assert!(err.contains("detector.onnx") && err.contains("not an ONNX"), "{err}");
    // BlazePose's file still loads, as BlazePose.
    let blaze = root().join("models/detector/pose_detection.onnx");
    let d = PersonDetector::load(&blaze, Settings::default()).unwrap();
    assert_eq!(d.kind(), "BlazePose");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_scene_cut_between_real_images_and_none_within_one() {
    use smplcast::detect::cut::CutDetector;
    let street = decode(&root().join("tests/data/nanodet/vtest-0060.png")).unwrap();
    let astronaut = decode(&root().join("tests/data/nanodet/astronaut.png")).unwrap();
    // The street 4 px to the left: the camera moved a little; the people walked on.
    let (w, h) = (street.width as usize, street.height as usize);
    let mut moved = street.to_rgb24();
    for row in moved.chunks_exact_mut(3 * w) {
        row.copy_within(12.., 0);
    }
    let moved = smplcast::pixels::Image::rgb24(w as u32, h as u32, moved);
    let mut cuts = CutDetector::new(0.1);
    assert!(!cuts.is_cut(&street));
    assert!(!cuts.is_cut(&moved), "the same scene, moved");
    assert!(cuts.is_cut(&astronaut), "another scene");
    assert!(cuts.is_cut(&street), "and back");
}
