//! Bad model files give one clear error naming the file and what was expected.

use std::path::{Path, PathBuf};

use smplcast::model::{Backbone, Bundle, Error, Streaming, TemporalHead};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fixtures/narrow").join(name)
}

fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smplcast-bad-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn backbone_err(path: &Path) -> String {
    let err = Backbone::load(path, 1).err().expect("loading must fail");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "error must name the file: {msg}");
    msg
}

#[test]
fn missing_file() {
    let path = fixture("no-such-model.onnx");
    let msg = backbone_err(&path);
    assert!(msg.contains("cannot read it"), "{msg}");
}

#[test]
fn empty_file() {
    let msg = backbone_err(&scratch("empty.onnx", b""));
    assert!(msg.contains("the file is empty") && msg.contains("backbone"), "{msg}");
    assert!(msg.contains("models/run convert.py"), "the error says how to make one: {msg}");
}

#[test]
fn not_onnx() {
    let msg = backbone_err(&scratch("text.onnx", b"this is not a model\n"));
    assert!(msg.contains("not a usable backbone graph"), "{msg}");
}

#[test]
fn truncated_file() {
    let bytes = std::fs::read(fixture("backbone.onnx")).unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 1, 100] {
        let msg = backbone_err(&scratch("truncated.onnx", &bytes[..cut]));
        assert!(msg.contains("not a usable backbone graph"), "cut at {cut}: {msg}");
    }
}

#[test]
fn wrong_graph_names_expected_and_found_shapes() {
    let path = fixture("temporal.onnx");
    let msg = backbone_err(&path);
    assert!(matches!(Backbone::load(&path, 1), Err(Error::Interface { .. })));
    assert!(
        msg.contains("expected inputs image [N, 3, 224, 224] -> outputs feature [N, C]"),
        "{msg}"
    );
    assert!(msg.contains("features [N, 16, 256]"), "says what the file has: {msg}");

    let err = TemporalHead::load(&fixture("backbone.onnx"), 1).err().unwrap().to_string();
    assert!(err.contains("features [N, 16, C]") && err.contains("image [N, 3, 224, 224]"), "{err}");
}

#[test]
fn streaming_graphs_swapped_or_mismatched() {
    let (frame, step) = (fixture("temporal_frame.onnx"), fixture("temporal_step.onnx"));
    let err = Streaming::load(&step, &frame, 1).err().unwrap().to_string();
    assert!(err.contains("temporal_frame") && err.contains(&step.display().to_string()), "{err}");
    // A step graph of other widths than the frame graph (the backbone stands in for "other").
    let err = Streaming::load(&frame, &fixture("temporal.onnx"), 1).err().unwrap().to_string();
    assert!(err.contains("wrong temporal_step graph") && err.contains("x [N, 16, 256]"), "{err}");
}

/// `model.json` is read into its fields: a malformed or missing one is an error naming the
/// file, never a guess (an untrained model taken for a trained one).
#[test]
fn malformed_or_missing_manifest() {
    let dir = std::env::temp_dir().join(format!("smplcast-bad-manifest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["backbone.onnx", "temporal_frame.onnx", "temporal_step.onnx"] {
        std::fs::copy(fixture(f), dir.join(f)).unwrap();
    }
    let manifest = dir.join("model.json");
    for (text, says) in [
        (None, "cannot read it"),
        (Some("{\"model_id\": \"m\", \"trained\": \"no\"}"), "trained"),
        (Some("{\"trained\": false}"), "model_id"),
        (Some("not json"), "not the manifest"),
    ] {
        match text {
            Some(t) => std::fs::write(&manifest, t).unwrap(),
            None => {
                let _ = std::fs::remove_file(&manifest);
            }
        }
        let Err(err) = Bundle::load(&dir, false) else { panic!("{text:?} was accepted") };
        let msg = err.to_string();
        assert!(matches!(err, Error::Manifest { .. }), "{msg}");
        assert!(msg.contains(&manifest.display().to_string()) && msg.contains(says), "{msg}");
    }
    std::fs::write(&manifest, "{\"model_id\": \"m\", \"trained\": false, \"seq_len\": 16}")
        .unwrap();
    let bundle = Bundle::load(&dir, false).unwrap();
    assert_eq!((bundle.model_id.as_str(), bundle.trained), ("m", false));
    std::fs::remove_dir_all(&dir).unwrap();
}
