//! Shared helpers of the model tests: fixture locations and test vectors.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use ndarray_npy::NpzReader;

/// The committed narrow fixture, plus the full-size models when `SMPLCAST_FULL_MODELS` names
/// their directory (the README test command generates them).
pub fn model_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("models/fixtures/narrow")];
    if let Some(full) = std::env::var_os("SMPLCAST_FULL_MODELS") {
        let full = root.join(full);
        assert!(
            full.join("backbone.onnx").is_file(),
            "SMPLCAST_FULL_MODELS: no models in {full:?}"
        );
        dirs.push(full);
    }
    dirs
}

pub struct Vectors(NpzReader<File>);

impl Vectors {
    pub fn open(dir: &Path) -> Self {
        let f = File::open(dir.join("vectors.npz"))
            .expect("vectors.npz (models/run convert.py --vectors)");
        Vectors(NpzReader::new(f).expect("npz"))
    }

    pub fn get(&mut self, name: &str) -> ArrayD<f32> {
        self.0.by_name(&format!("{name}.npy")).unwrap_or_else(|e| panic!("vector {name}: {e}"))
    }
}

/// max |a − b| / max |reference|.
pub fn rel_max_diff(reference: &[f32], got: &[f32]) -> f32 {
    assert_eq!(reference.len(), got.len());
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    max_abs_diff(reference, got) / scale
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// Geodesic angle in degrees between corresponding joint rotations of two 6D poses (any
/// number of 24-joint poses, concatenated).
pub fn joint_angles_deg(reference: &[f32], got: &[f32]) -> Vec<f32> {
    assert_eq!(reference.len(), got.len());
    reference
        .chunks(6)
        .zip(got.chunks(6))
        .map(|(a, b)| {
            let ra = smplcast::smpl::rot6d_to_rotmat(a.try_into().unwrap());
            let rb = smplcast::smpl::rot6d_to_rotmat(b.try_into().unwrap());
            // trace(Raᵀ Rb) = Σ_ij Ra_ij Rb_ij
            let tr: f32 = (0..3)
                .flat_map(|i| (0..3).map(move |j| (i, j)))
                .map(|(i, j)| ra[i][j] * rb[i][j])
                .sum();
            ((tr - 1.0) / 2.0).clamp(-1.0, 1.0).acos().to_degrees()
        })
        .collect()
}

pub fn mean(v: &[f32]) -> f32 {
    v.iter().sum::<f32>() / v.len() as f32
}

/// A deterministic pseudo-random stream (xorshift), for long synthetic sequences.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in [-1, 1).
    pub fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

pub mod daemon;
pub mod mqtt;

/// Writes a synthetic SMPL model file of the real layout (random template and blend shapes,
/// models/gen_joints_vectors.py) into `dir`, and returns its path.
pub fn synthetic_smpl_file(dir: &Path) -> PathBuf {
    let out = std::process::Command::new(mqtt::python())
        .arg(mqtt::root().join("models/gen_joints_vectors.py"))
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir.join("smpl_synthetic.npz")
}
