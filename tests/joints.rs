//! Joints from an SMPL model file (src/joints.rs) against the numpy reference of
//! models/gen_joints_vectors.py, on a synthetic model file of SMPL's layout (random arrays:
//! no SMPL data in the repository).

use std::path::{Path, PathBuf};
use std::process::Command;

use smplcast::smpl::joints::Skeleton;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The synthetic model and the reference joints, written by the Python test venv.
fn vectors() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smplcast-joints-{}", std::process::id()));
    let out = Command::new(root().join("tests/.venv/bin/python"))
        .arg(root().join("models/gen_joints_vectors.py"))
        .arg(&dir)
        .output()
        .expect("the test venv: tests/run creates it (scripts/test.sh does)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir
}

#[test]
fn joints_match_the_python_reference_to_1e_5() {
    let dir = vectors();
    let skeleton = Skeleton::load(&dir.join("smpl_synthetic.npz")).unwrap();
    let text = std::fs::read_to_string(dir.join("joints_vectors.json")).unwrap();
    let vectors: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = vectors["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
    };
    let mut worst = 0f64;
    for (i, case) in cases.iter().enumerate() {
        let pose: [f32; 72] = floats(&case["pose"]).try_into().unwrap();
        let shape: [f32; 10] = floats(&case["shape"]).try_into().unwrap();
        let got = skeleton.joints(&pose, &shape);
        let want = case["joints"].as_array().unwrap();
        for (j, (g, w)) in got.iter().zip(want).enumerate() {
            for (a, (g, w)) in g.iter().zip(w.as_array().unwrap()).enumerate() {
                let d = (f64::from(*g) - w.as_f64().unwrap()).abs();
                worst = worst.max(d);
                assert!(d < 1e-5, "case {i} joint {j} axis {a}: {g} against {w}");
            }
        }
    }
    println!("largest difference: {worst:.2e}");
    // A posed case moves the joints away from the rest pose (the test sees real rotations).
    let rest = skeleton.joints(&[0.0; 72], &[0.0; 10]);
    let posed = skeleton.joints(&floats(&cases[2]["pose"]).try_into().unwrap(), &[0.0; 10]);
    assert!(rest.iter().zip(&posed).skip(1).all(|(r, p)| r != p));
}

#[test]
fn a_file_with_the_wrong_arrays_is_named() {
    // The parity vectors are an .npz too, but not an SMPL model.
    let file = root().join("models/fixtures/narrow/vectors.npz");
    let e = Skeleton::load(&file).unwrap_err().to_string();
    assert!(e.starts_with(&file.display().to_string()), "{e}");
    assert!(e.contains("no array \"v_template\""), "{e}");
    // Nor is a text file.
    let file = root().join("models/fixtures/narrow/model.json");
    let e = Skeleton::load(&file).unwrap_err().to_string();
    assert!(e.contains("not an .npz archive"), "{e}");
}
