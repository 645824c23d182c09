//! 3D joints from SMPL parameters, with the user's own SMPL model file.
//!
//! The SMPL body model is licensed and not bundled. Given its file (`model.smpl_file`, the
//! common `.npz` layout of the smplx package: `v_template` V×3, `shapedirs` V×3×B with
//! B ≥ 10, `J_regressor` 24×V, `kintree_table` 2×24), [`Skeleton::load`] keeps only what the
//! joints need: the joint regressor applied to the template and to the first 10 shape blend
//! shapes (24 × 3 × 11 numbers) and the kinematic tree. [`Skeleton::joints`] then poses them
//! as SMPL does (forward kinematics, Loper et al. 2015, and the smplx `lbs` function):
//!
//! ```text
//! J      = J_template + J_shapedirs · β                rest joints, 24 × 3
//! R_k    = Rodrigues(θ_k)
//! G_0    = [R_0 | J_0],   G_k = G_parent(k) · [R_k | J_k − J_parent(k)]
//! joints = translation of each G_k                      metres, SMPL body frame
//! ```
//!
//! Computed in f64: 24 Rodrigues rotations and 3 × 3 products per person. The joints are in
//! the model's frame with the root's rotation applied and no translation: the pelvis is at
//! J_0(β), whatever the camera.

use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3, ArrayD};
use ndarray_npy::{NpzReader, ReadableElement};

/// SMPL joints.
pub const JOINTS: usize = crate::smpl::NUM_JOINTS;
/// Shape coefficients used (β on the wire).
pub const BETAS: usize = 10;

/// What the joints need from an SMPL model.
#[derive(Clone, Debug, PartialEq)]
pub struct Skeleton {
    /// Rest joints of the mean shape: `J_regressor · v_template`.
    template: [[f64; 3]; JOINTS],
    /// Their change per shape coefficient: `J_regressor · shapedirs[..., :10]`.
    shape_dirs: [[[f64; BETAS]; 3]; JOINTS],
    /// Parent of each joint; the root has none. Parents come before their children.
    parents: [Option<usize>; JOINTS],
}

/// Why an SMPL model file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
}

impl Skeleton {
    /// Reads an SMPL model `.npz` and precomputes the joints' terms.
    ///
    /// # Errors
    /// [`Error::File`] naming the file and the problem: unreadable, not an `.npz` (a `.pkl`
    /// must be converted first), an array missing or of the wrong shape, a kinematic tree
    /// that is not one.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let fail = |problem: String| Error::File { path: path.to_owned(), problem };
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("pkl")) {
            return Err(fail(
                "a pickled SMPL model; convert it once with `models/run smpl_to_npz.py FILE.pkl` \
                 (writes FILE.npz) and point model.smpl_file at the .npz"
                    .into(),
            ));
        }
        let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open it: {e}")))?;
        let mut npz = NpzReader::new(file)
            .map_err(|e| fail(format!("not an .npz archive of SMPL arrays ({e})")))?;
        let template: Array2<f64> = read(&mut npz, "v_template").map_err(&fail)?;
        let shapedirs: Array3<f64> = read(&mut npz, "shapedirs").map_err(&fail)?;
        let regressor: Array2<f64> = read(&mut npz, "J_regressor").map_err(&fail)?;
        let tree: Array2<f64> = read(&mut npz, "kintree_table").map_err(&fail)?;
        let vertices = template.nrows();
        let shape_ok = template.ncols() == 3
            && shapedirs.shape()[..2] == [vertices, 3]
            && shapedirs.shape()[2] >= BETAS
            && regressor.dim() == (JOINTS, vertices)
            && tree.dim() == (2, JOINTS);
        if !shape_ok {
            return Err(fail(format!(
                "arrays of unexpected shapes: v_template {:?}, shapedirs {:?}, J_regressor {:?}, \
                 kintree_table {:?}; SMPL has V×3, V×3×B (B ≥ {BETAS}), {JOINTS}×V and 2×{JOINTS}",
                template.shape(),
                shapedirs.shape(),
                regressor.shape(),
                tree.shape()
            )));
        }
        let parents = parents(&tree).map_err(&fail)?;
        let mut skeleton = Skeleton {
            template: [[0.0; 3]; JOINTS],
            shape_dirs: [[[0.0; BETAS]; 3]; JOINTS],
            parents,
        };
        let joint_template = regressor.dot(&template);
        for j in 0..JOINTS {
            for a in 0..3 {
                skeleton.template[j][a] = joint_template[[j, a]];
                for b in 0..BETAS {
                    let column = shapedirs.slice(ndarray::s![.., a, b]);
                    skeleton.shape_dirs[j][a][b] = regressor.row(j).dot(&column);
                }
            }
        }
        Ok(skeleton)
    }

    /// The 24 posed joints, [x, y, z] each, for axis-angle `pose` (θ, 72) and `shape` (β).
    pub fn joints(&self, pose: &[f32; 3 * JOINTS], shape: &[f32; BETAS]) -> [[f32; 3]; JOINTS] {
        let mut rest = self.template;
        for (joint, dirs) in rest.iter_mut().zip(&self.shape_dirs) {
            for (x, dir) in joint.iter_mut().zip(dirs) {
                *x += dir.iter().zip(shape).map(|(d, b)| d * f64::from(*b)).sum::<f64>();
            }
        }
        // Global rotation and translation of each joint's frame.
        let mut rotations = [[[0.0; 3]; 3]; JOINTS];
        let mut posed = [[0.0; 3]; JOINTS];
        for k in 0..JOINTS {
            let local = rodrigues([pose[3 * k], pose[3 * k + 1], pose[3 * k + 2]].map(f64::from));
            match self.parents[k] {
                None => {
                    rotations[k] = local;
                    posed[k] = rest[k];
                }
                Some(p) => {
                    let offset = [0, 1, 2].map(|a| rest[k][a] - rest[p][a]);
                    let moved = mat_vec(&rotations[p], &offset);
                    posed[k] = [0, 1, 2].map(|a| posed[p][a] + moved[a]);
                    rotations[k] = mat_mul(&rotations[p], &local);
                }
            }
        }
        posed.map(|j| j.map(|x| x as f32))
    }
}

/// An array of the file as f64, whatever float or integer type it was saved with.
fn read<D: ndarray::Dimension>(
    npz: &mut NpzReader<std::fs::File>,
    name: &str,
) -> Result<ndarray::Array<f64, D>, String> {
    fn as_f64<T: ReadableElement + Copy + Into<f64>>(
        npz: &mut NpzReader<std::fs::File>,
        name: &str,
    ) -> Option<ArrayD<f64>> {
        let array: ArrayD<T> =
            npz.by_name(name).or_else(|_| npz.by_name(&format!("{name}.npy"))).ok()?;
        Some(array.mapv(Into::into))
    }
    let any = as_f64::<f64>(npz, name)
        .or_else(|| as_f64::<f32>(npz, name))
        .or_else(|| as_f64::<i32>(npz, name))
        .or_else(|| as_f64::<u32>(npz, name))
        .or_else(|| {
            // i64 and u64 tree tables: exact in f64 for every index SMPL has (and for the
            // root's -1 or 2³² − 1 marker).
            let array: ArrayD<i64> = npz.by_name(name).ok()?;
            Some(array.mapv(|v| v as f64))
        })
        .or_else(|| {
            let array: ArrayD<u64> = npz.by_name(name).ok()?;
            Some(array.mapv(|v| v as f64))
        })
        .ok_or_else(|| format!("no array {name:?} of numbers (an SMPL model .npz has it)"))?;
    let shape = any.shape().to_vec();
    any.into_dimensionality::<D>()
        .map_err(|_| format!("{name} has shape {shape:?}, not {} dimensions", D::NDIM.unwrap_or(0)))
}

/// Parents from the kinematic tree's first row: the root's entry is any value outside
/// 0..24 (smplx files hold 2³² − 1 or -1); every other joint's parent comes before it.
fn parents(tree: &Array2<f64>) -> Result<[Option<usize>; JOINTS], String> {
    let mut parents = [None; JOINTS];
    for (k, parent) in parents.iter_mut().enumerate() {
        let p = tree[[0, k]];
        if k == 0 {
            continue;
        }
        if !(p >= 0.0 && p < k as f64 && p.fract() == 0.0) {
            return Err(format!(
                "kintree_table gives joint {k} the parent {p}; SMPL lists parents before their \
                 children"
            ));
        }
        *parent = Some(p as usize);
    }
    Ok(parents)
}

/// Axis-angle → rotation matrix: the one [`crate::smpl`] decodes θ with.
fn rodrigues(r: [f64; 3]) -> [[f64; 3]; 3] {
    crate::smpl::axis_angle_to_rotmat_f64(&r)
}

fn mat_mul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}

fn mat_vec(a: &[[f64; 3]; 3], v: &[f64; 3]) -> [f64; 3] {
    std::array::from_fn(|i| (0..3).map(|k| a[i][k] * v[k]).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain along x: joint k at (k, 0, 0), each the parent of the next; no shape.
    fn chain() -> Skeleton {
        let mut s = Skeleton {
            template: std::array::from_fn(|k| [k as f64, 0.0, 0.0]),
            shape_dirs: [[[0.0; BETAS]; 3]; JOINTS],
            parents: std::array::from_fn(|k| k.checked_sub(1)),
        };
        s.shape_dirs[0][1][0] = 1.0; // β₀ moves the root's rest position along y.
        s
    }

    #[test]
    fn zero_pose_gives_the_rest_joints_and_shape_moves_them() {
        let s = chain();
        let mut shape = [0f32; BETAS];
        let j = s.joints(&[0.0; 72], &shape);
        assert!((0..JOINTS).all(|k| j[k] == [k as f32, 0.0, 0.0]));
        shape[0] = 0.5;
        let j = s.joints(&[0.0; 72], &shape);
        // Unposed, the joints are the rest joints of that shape: only the root moved.
        assert_eq!(j[0], [0.0, 0.5, 0.0]);
        assert_eq!(j[3], [3.0, 0.0, 0.0]);
    }

    /// Turning joint 1 by 90° about z swings every later joint into +y around it.
    #[test]
    fn a_rotation_swings_the_children() {
        let s = chain();
        let mut pose = [0f32; 72];
        pose[3 + 2] = std::f32::consts::FRAC_PI_2;
        let j = s.joints(&pose, &[0.0; BETAS]);
        let close = |a: [f32; 3], b: [f32; 3]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(close(j[1], [1.0, 0.0, 0.0]), "{:?}", j[1]);
        assert!(close(j[2], [1.0, 1.0, 0.0]), "{:?}", j[2]);
        assert!(close(j[5], [1.0, 4.0, 0.0]), "{:?}", j[5]);
    }

    #[test]
    fn rodrigues_is_a_rotation_near_zero_and_far_from_it() {
        for r in [[0.0, 0.0, 0.0], [1e-9, -2e-9, 0.0], [3e-5, 0.0, 1e-5], [0.3, -1.2, 2.0]] {
            let m = rodrigues(r);
            let mt: [[f64; 3]; 3] = std::array::from_fn(|i| std::array::from_fn(|j| m[j][i]));
            let id = mat_mul(&m, &mt);
            for (i, row) in id.iter().enumerate() {
                for (j, v) in row.iter().enumerate() {
                    assert!((v - f64::from(u8::from(i == j))).abs() < 1e-12);
                }
            }
            // The axis is fixed.
            let v = mat_vec(&m, &r);
            assert!(v.iter().zip(r).all(|(a, b)| (a - b).abs() < 1e-12));
        }
    }

    #[test]
    fn a_pickle_is_named_with_the_conversion() {
        let e = Skeleton::load(Path::new("/nowhere/SMPL_NEUTRAL.pkl")).unwrap_err().to_string();
        assert!(e.contains("smpl_to_npz.py") && e.contains("SMPL_NEUTRAL.pkl"), "{e}");
        let e = Skeleton::load(Path::new("/nowhere/SMPL_NEUTRAL.npz")).unwrap_err().to_string();
        assert!(e.contains("cannot open it"), "{e}");
    }
}
