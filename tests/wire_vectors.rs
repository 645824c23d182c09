//! The committed wire test vectors (tests/data/wire/*.cbor + *.json), checked both ways:
//! decoding the bytes gives the JSON values; encoding the JSON values gives the bytes.
//! `SMPLCAST_WRITE_WIRE_VECTORS=1 cargo test --test wire_vectors` rewrites them: when their
//! values change (they must satisfy every rule of docs/WIRE.md, which the independent
//! subscriber's tests check), or with a schema version bump; the bytes of given values change
//! only with a bump.

use std::path::{Path, PathBuf};

use smplcast::wire::{self, Person, PoseMsg, Window, POSE_LEN, SCHEMA_VERSION, SHAPE_LEN};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wire")
}

fn person(id: u32, seed: f32) -> Person {
    Person {
        id,
        // Inside the 640 × 480 image of the smallest vector.
        bbox: [212, 48 + (id % 20) as u16, 131, 402],
        score: 0.8 + 0.05 * seed,
        cam: [0.93 - 0.1 * seed, 0.021, 0.187],
        cam_img: [0.19, 0.253, -1.37 + seed, 0.45],
        pose: pose(seed),
        shape: std::array::from_fn(|j| (j as f32 - 4.0) * 0.37 - seed),
        joints: None,
        predicted: false,
    }
}

/// Axis-angle rotations spanning θ's range: angles from 0 to just under π (joints 1, 9 and 17
/// at 3.1406), about axes that vary from joint to joint.
fn pose(seed: f32) -> [f32; POSE_LEN] {
    let mut pose = [0.0; POSE_LEN];
    for (j, joint) in pose.chunks_exact_mut(3).enumerate() {
        let t = j as f32 + seed;
        let axis = [(t * 0.73).sin(), (t * 1.31).cos(), (t * 0.47).sin() + 0.5];
        let norm = axis.iter().map(|a| a * a).sum::<f32>().sqrt();
        let angle = if j % 8 == 1 { 3.1406 } else { (t * 0.59).sin().abs() * 3.0 };
        for (x, a) in joint.iter_mut().zip(axis) {
            *x = a / norm * angle;
        }
    }
    pose
}

fn vectors() -> Vec<(&'static str, PoseMsg)> {
    let base = PoseMsg {
        v: SCHEMA_VERSION,
        dev: "pi5-hall".into(),
        seq: 0,
        frame: 0,
        utc_us: 1_795_600_000_000_000,
        mono_ns: 12_000_000_000,
        model: "mpsnet-random-0-w64".into(),
        // Nobody tracked: no person's estimate waits for lookahead.
        win: Window { len: 16, lookahead: 0, fps: None },
        img: [640, 480],
        people: vec![],
    };
    let win = Window { lookahead: 7, ..base.win };
    let one = PoseMsg { seq: 1, frame: 8, win, people: vec![person(0, 0.0)], ..base.clone() };
    let two = PoseMsg {
        seq: 4_294_967_296,
        frame: 9_000_001,
        utc_us: 1_795_600_300_033_367,
        mono_ns: 312_033_367_000,
        img: [1920, 1080],
        win,
        people: vec![person(3, 1.0), person(70_000, 2.0)],
        ..base.clone()
    };
    // Joints (optional, added within v1): metres, a body about the origin.
    let mut with_joints = person(5, 0.5);
    with_joints.joints =
        Some(std::array::from_fn(|k| ((k as f32 * 1.37).sin() * 0.8) - 0.1 * (k % 3) as f32));
    let joints = PoseMsg { seq: 2, frame: 9, win, people: vec![with_joints], ..base.clone() };
    // A person the detector missed this frame (optional key, added within v1), beside one it
    // saw.
    let coasting = Person { predicted: true, ..person(8, 1.5) };
    let predicted =
        PoseMsg { seq: 3, frame: 10, win, people: vec![person(7, 0.25), coasting], ..base.clone() };
    // The model's frame rate (optional key, added within v1): a 30 fps camera, every 4th
    // frame.
    let rate = PoseMsg {
        seq: 5,
        frame: 24,
        win: Window { fps: Some(7.5), ..win },
        people: vec![person(9, 0.75)],
        ..base.clone()
    };
    vec![
        ("v1-empty", base),
        ("v1-one-person", one),
        ("v1-two-people", two),
        ("v1-joints", joints),
        ("v1-predicted", predicted),
        ("v1-model-fps", rate),
    ]
}

/// The message a subscriber decodes: encoding rounds to binary16.
fn as_decoded(msg: &PoseMsg) -> PoseMsg {
    wire::decode(&wire::encode(msg)).expect("own encoding decodes")
}

#[test]
fn vectors_decode_to_their_json_and_encode_to_their_bytes() {
    let write = std::env::var_os("SMPLCAST_WRITE_WIRE_VECTORS").is_some();
    for (name, msg) in vectors() {
        let (cbor_path, json_path) =
            (dir().join(format!("{name}.cbor")), dir().join(format!("{name}.json")));
        if write {
            let decoded = as_decoded(&msg);
            std::fs::write(&cbor_path, wire::encode(&decoded)).unwrap();
            let json = serde_json::to_string_pretty(&decoded).unwrap() + "\n";
            std::fs::write(&json_path, json).unwrap();
        }
        let bytes = std::fs::read(&cbor_path).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();

        let decoded = wire::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(serde_json::to_value(&decoded).unwrap(), json, "{name}: decode");
        let from_json: PoseMsg = serde_json::from_value(json).unwrap();
        assert_eq!(wire::encode(&from_json), bytes, "{name}: encode");
        // The generator's message, once rounded, is the vector: nothing else changed.
        assert_eq!(as_decoded(&msg), decoded, "{name}: vector matches the encoder");
        check_typed_arrays(name, &bytes, msg.people.len());
    }
}

/// The bytes themselves, read as plain CBOR (not through our types): each person's `pose`,
/// `shape` and (when present) `joints` are RFC 8746 typed arrays, tag 84 on 2 × n bytes, with
/// n = 72, 10 and 72 (docs/WIRE.md).
fn check_typed_arrays(name: &str, bytes: &[u8], people: usize) {
    use serde_cbor::Value;
    let text = |k: &str| Value::Text(k.into());
    let Ok(Value::Map(msg)) = serde_cbor::from_slice::<Value>(bytes) else {
        panic!("{name}: not a CBOR map")
    };
    let Some(Value::Array(found)) = msg.get(&text("people")) else { panic!("{name}: no people") };
    assert_eq!(found.len(), people, "{name}");
    for person in found {
        let Value::Map(person) = person else { panic!("{name}: a person is not a map") };
        for (key, n, required) in
            [("pose", POSE_LEN, true), ("shape", SHAPE_LEN, true), ("joints", 72, false)]
        {
            match person.get(&text(key)) {
                Some(Value::Tag(84, inner)) => match inner.as_ref() {
                    Value::Bytes(b) => assert_eq!(b.len(), 2 * n, "{name}: {key}"),
                    other => panic!("{name}: {key} tags {other:?}, not a byte string"),
                },
                None if !required => {}
                other => panic!("{name}: {key} is {other:?}, not tag 84"),
            }
        }
    }
}
