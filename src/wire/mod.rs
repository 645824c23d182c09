//! Wire format v1: the CBOR pose message published on `<prefix>/<device_id>/pose`.
//!
//! The specification (prose + CDDL) is docs/WIRE.md; tests/data/wire/ holds test vectors (CBOR
//! bytes and the decoded values as JSON) that the Rust and the Python tests check both ways.
//! This module is the only place that touches CBOR (serde_cbor, RUSTSEC-2021-0127: kept
//! here so it can be replaced without touching anything else), and it builds without the
//! `runtime` feature so subscribers can depend on it alone.
//!
//! One message per processed frame carries every person in it. Compact numbers: θ and β are
//! RFC 8746 typed arrays of little-endian binary16 (tag 84); score and cameras are binary16
//! scalars; the box is whole pixels. Encoding rounds to binary16 (relative error ≤ 2⁻¹¹;
//! absolute ≤ 0.0016 rad for |θ| ≤ π). A person costs at most 256 bytes (tested on the worst
//! case).

use half::f16;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_cbor::tags::Tagged;

mod recording;
pub use recording::{
    write_header, write_message, Header, Reader, Recorded, RecordingError, RECORDING_VERSION,
};

/// Schema version written in every message (`v`). Bumped on any change of meaning; optional
/// keys may be added within a version, and decoders ignore keys they do not know.
pub const SCHEMA_VERSION: u32 = 1;
/// RFC 8746 typed-array tag: binary16, little endian.
pub const TAG_F16_LE: u64 = 84;
/// SMPL joints × 3 axis-angle components.
pub const POSE_LEN: usize = 72;
/// SMPL shape coefficients.
pub const SHAPE_LEN: usize = 10;
/// Posed SMPL joints × [x, y, z] (the optional `joints`).
pub const JOINTS_LEN: usize = 72;

/// Errors of decoding a pose message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a v1 pose message: {0}")]
    Cbor(#[from] serde_cbor::Error),
    #[error("pose message schema version {found}, this decoder reads version {SCHEMA_VERSION}")]
    Version { found: u32 },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Window placement of the temporal model, so subscribers know the latency they see.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Frames in the model's window (16 for MPS-Net).
    pub len: u8,
    /// Frames after the estimated one that the window includes (7: a result is ready 7 frames
    /// after its frame was captured). 0 for the windows of a track's first and last frames.
    pub lookahead: u8,
    /// The rate of the frames the model gets (the camera's, over `pipeline.model_fps`'s
    /// stride): a window spans `len / fps` seconds. Absent for an unpaced source (added
    /// within v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f32>,
}

/// One pose message: the results for one captured frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoseMsg {
    /// Schema version, [`SCHEMA_VERSION`].
    pub v: u32,
    /// Device id (also in the topic).
    pub dev: String,
    /// Message sequence number: +1 per published pose message, from 0 at daemon start. A gap
    /// means messages were dropped (counted in stats).
    pub seq: u64,
    /// Id of the camera frame the results are for: +1 per captured frame, so gaps show frames the
    /// daemon did not process.
    pub frame: u64,
    /// Capture time of that frame, microseconds since the Unix epoch (UTC).
    pub utc_us: i64,
    /// Capture time of that frame, CLOCK_MONOTONIC nanoseconds (the kernel's timestamp for V4L2
    /// frames): comparable with the daemon host's monotonic clock, for latency.
    pub mono_ns: u64,
    /// Model id (`model.json`'s `model_id`).
    pub model: String,
    /// Temporal window placement.
    pub win: Window,
    /// Size of the camera image in pixels, [width, height]: the frame of `box` and `cam_img`.
    pub img: [u32; 2],
    /// Everyone in the frame, in ascending track id.
    pub people: Vec<Person>,
}

/// One person's result in a frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// Track id, stable while the person is tracked.
    pub id: u32,
    /// Person box in the image, whole pixels: [left, top, width, height].
    #[serde(rename = "box")]
    pub bbox: [u16; 4],
    /// Detection confidence in [0, 1] (binary16).
    #[serde(serialize_with = "f16_scalar")]
    pub score: f32,
    /// Weak-perspective camera of the square crop: [s, tx, ty] (binary16).
    #[serde(serialize_with = "f16_scalars")]
    pub cam: [f32; 3],
    /// The same camera in normalised coordinates of the whole image: [sx, sy, tx, ty]
    /// (binary16).
    #[serde(serialize_with = "f16_scalars")]
    pub cam_img: [f32; 4],
    /// SMPL pose θ: 24 joints × axis-angle (radians), root first. Typed array, tag 84.
    #[serde(with = "f16_array")]
    pub pose: [f32; POSE_LEN],
    /// SMPL shape β. Typed array, tag 84.
    #[serde(with = "f16_array")]
    pub shape: [f32; SHAPE_LEN],
    /// The 24 posed SMPL joints, [x, y, z] each in metres in the body's frame; only when the
    /// daemon has an SMPL model file (`model.smpl_file`). Typed array, tag 84.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "f16_array_opt")]
    pub joints: Option<[f32; JOINTS_LEN]>,
    /// The detector did not see the person this frame (a missed detection, or a frame between
    /// detector runs): `box` is the tracker's prediction. Written only when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub predicted: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Encodes a message. Deterministic: the same message gives the same bytes.
pub fn encode(msg: &PoseMsg) -> Vec<u8> {
    // Writing into a Vec cannot fail, and every field type serializes (no maps with non-string
    // keys, no sequences of unknown length): an error here is a broken invariant.
    match serde_cbor::to_vec(msg) {
        Ok(bytes) => bytes,
        Err(e) => unreachable!("encoding a PoseMsg into memory failed: {e}"),
    }
}

/// Decodes a message.
///
/// # Errors
/// [`Error::Cbor`] for bytes that are not a v1 pose message (missing or mistyped fields, bad
/// typed arrays, trailing bytes), [`Error::Version`] for another schema version.
pub fn decode(bytes: &[u8]) -> Result<PoseMsg> {
    #[derive(Deserialize)]
    struct Versioned {
        v: u32,
    }
    let Versioned { v } = serde_cbor::from_slice(bytes)?;
    if v != SCHEMA_VERSION {
        return Err(Error::Version { found: v });
    }
    Ok(serde_cbor::from_slice(bytes)?)
}

/// Rounds to binary16 and back: the value a subscriber will decode.
pub fn round_f16(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

// Human-readable formats (the JSON of the test vectors) get the binary16 values as exact
// decimal f64; CBOR gets them as floats that serde_cbor writes as binary16 (it picks the
// shortest width that keeps an f32's value) or as a typed array.

fn f16_scalar<S: Serializer>(x: &f32, s: S) -> std::result::Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_f64(f64::from(round_f16(*x)))
    } else {
        s.serialize_f32(round_f16(*x))
    }
}

fn f16_scalars<S: Serializer, const N: usize>(
    v: &[f32; N],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        v.map(|x| f64::from(round_f16(x))).serialize(s)
    } else {
        v.map(round_f16).serialize(s)
    }
}

/// `Option<[f32; N]>` as [`f16_array`], for optional keys.
mod f16_array_opt {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(transparent)]
    struct Halves<const N: usize>(#[serde(with = "f16_array")] [f32; N]);

    pub fn serialize<S: Serializer, const N: usize>(
        v: &Option<[f32; N]>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        v.map(Halves).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> std::result::Result<Option<[f32; N]>, D::Error> {
        Ok(Option::<Halves<N>>::deserialize(d)?.map(|h| h.0))
    }
}

/// `[f32; N]` as an RFC 8746 binary16 little-endian typed array (tag 84).
mod f16_array {
    use super::*;

    pub fn serialize<S: Serializer, const N: usize>(
        v: &[f32; N],
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return f16_scalars(v, s);
        }
        let bytes: Vec<u8> = v.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()).collect();
        Tagged::new(Some(TAG_F16_LE), serde_bytes::ByteBuf::from(bytes)).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> std::result::Result<[f32; N], D::Error> {
        use serde::de::Error as _;
        if d.is_human_readable() {
            let v = Vec::<f32>::deserialize(d)?;
            let n = v.len();
            return v.try_into().map_err(|_| D::Error::invalid_length(n, &"the array's length"));
        }
        let t = Tagged::<serde_bytes::ByteBuf>::deserialize(d)?;
        if t.tag != Some(TAG_F16_LE) {
            return Err(D::Error::custom(format!(
                "expected a binary16 little-endian typed array (tag {TAG_F16_LE}), found tag {:?}",
                t.tag
            )));
        }
        if t.value.len() != 2 * N {
            return Err(D::Error::custom(format!(
                "typed array of {} bytes, expected {} binary16 values",
                t.value.len(),
                N
            )));
        }
        let mut out = [0f32; N];
        for (o, b) in out.iter_mut().zip(t.value.chunks_exact(2)) {
            *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn person(id: u32, k: f32) -> Person {
        Person {
            id,
            bbox: [231, 35, 180, 410],
            score: 0.93,
            cam: [0.91, 0.012, 0.21],
            cam_img: [0.256, 0.341, -0.3, 0.18],
            pose: std::array::from_fn(|j| ((j as f32 * 0.37 + k).sin()) * 3.0),
            shape: std::array::from_fn(|j| (j as f32 - 4.5) * 0.4 + k),
            joints: None,
            predicted: false,
        }
    }

    pub(super) fn msg(people: usize) -> PoseMsg {
        PoseMsg {
            v: SCHEMA_VERSION,
            dev: "cam-kitchen".into(),
            seq: 41,
            frame: 1_000_123,
            utc_us: 1_795_000_000_123_456,
            mono_ns: 98_765_432_100,
            model: "mpsnet-official".into(),
            win: Window { len: 16, lookahead: 7, fps: None },
            img: [640, 480],
            people: (0..people).map(|i| person(i as u32 + 3, i as f32)).collect(),
        }
    }

    #[test]
    fn round_trip_rounds_only_pose_shape_and_score() {
        let m = msg(2);
        let back = decode(&encode(&m)).unwrap();
        for (a, b) in m.people.iter().zip(&back.people) {
            assert_eq!((a.id, a.bbox), (b.id, b.bbox));
            assert_eq!(b.score, round_f16(a.score));
            assert_eq!((b.cam, b.cam_img), (a.cam.map(round_f16), a.cam_img.map(round_f16)));
            for (x, y) in a.pose.iter().zip(&b.pose).chain(a.shape.iter().zip(&b.shape)) {
                assert_eq!(*y, round_f16(*x));
                assert!((x - y).abs() <= x.abs() * 2f32.powi(-11), "{x} -> {y}");
            }
        }
        assert_eq!(encode(&back), encode(&m), "decoded values re-encode identically");
    }

    /// Joints are optional: absent, the key is not written and decodes as `None`; present,
    /// they round-trip as binary16.
    #[test]
    fn joints_are_optional_and_binary16() {
        let mut m = msg(1);
        let without = encode(&m);
        assert!(!without.windows(6).any(|w| w == b"joints"));
        assert_eq!(decode(&without).unwrap().people[0].joints, None);
        let joints: [f32; JOINTS_LEN] = std::array::from_fn(|j| (j as f32 * 0.37).cos() * 0.9);
        m.people[0].joints = Some(joints);
        let back = decode(&encode(&m)).unwrap().people[0].joints.unwrap();
        assert_eq!(back, joints.map(round_f16));
        assert!(back.iter().zip(joints).all(|(b, j)| (b - j).abs() <= 0.9 * 2f32.powi(-11)));
    }

    #[test]
    fn a_person_costs_at_most_256_bytes() {
        let (one, three) = (encode(&msg(1)).len(), encode(&msg(3)).len());
        let per_person = (three - one) / 2;
        assert!(per_person <= 256, "{per_person} bytes per person");
        // Worst case: every number at its longest encoding.
        let worst = Person {
            id: u32::MAX,
            bbox: [u16::MAX; 4],
            score: 0.3,
            cam: [0.3; 3],
            cam_img: [0.3; 4],
            pose: [0.3; POSE_LEN],
            shape: [0.3; SHAPE_LEN],
            joints: None,
            predicted: false,
        };
        let mut m = msg(0);
        let empty = encode(&m).len();
        m.people.push(worst.clone());
        assert!(encode(&m).len() - empty <= 256, "worst case {}", encode(&m).len() - empty);
        // Joints add at most 155 bytes: key, tag, length and 72 halves.
        m.people[0].joints = Some([0.3; JOINTS_LEN]);
        assert!(encode(&m).len() - empty <= 256 + 155, "with joints {}", encode(&m).len() - empty);
        assert!(encode(&msg(0)).len() < 160, "header {} bytes", encode(&msg(0)).len());
    }

    #[test]
    fn rejects_other_versions_and_garbage() {
        let mut m = msg(1);
        m.v = 2;
        assert!(matches!(decode(&encode(&m)), Err(Error::Version { found: 2 })));
        assert!(matches!(decode(b"\xff\x00"), Err(Error::Cbor(_))));
        let bytes = encode(&msg(1));
        assert!(decode(&bytes[..bytes.len() - 1]).is_err(), "truncated");
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err(), "trailing bytes");
    }

    #[test]
    fn typed_array_tag_and_length_are_checked() {
        let bytes = encode(&msg(1));
        // The pose array: tag 84 (0xd8 0x54), byte string of 144 bytes (0x58 0x90).
        let at = bytes.windows(4).position(|w| w == [0xd8, 0x54, 0x58, 0x90]).unwrap();
        let mut wrong_tag = bytes.clone();
        wrong_tag[at + 1] = 85;
        assert!(decode(&wrong_tag).unwrap_err().to_string().contains("tag 84"));
    }

    #[test]
    fn unknown_keys_are_ignored() {
        // A v1 message from a newer encoder with an extra top-level key.
        let mut v: serde_cbor::Value = serde_cbor::from_slice(&encode(&msg(1))).unwrap();
        if let serde_cbor::Value::Map(m) = &mut v {
            m.insert(serde_cbor::Value::Text("future".into()), serde_cbor::Value::Bool(true));
        }
        let back = decode(&serde_cbor::to_vec(&v).unwrap()).unwrap();
        assert_eq!(back.people.len(), 1);
    }
}
