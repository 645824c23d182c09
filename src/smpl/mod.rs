//! SMPL output geometry: turns the raw MPS-Net regressor outputs into what subscribers use.
//!
//! Role: a pure stage (no I/O, no allocation, no state) called by the `post` thread
//! between `temporal` and `encode`. It owns no queue; its callers' queue policies apply.
//!
//! Input, per person and frame (the layout of MPS-Net's / SPIN's `pred_pose` and `pred_cam`):
//! - `pose6d`: `[144] f32` = 24 SMPL joints × 6, joint-major (joint `j` at `6j..6j+6`),
//!   the continuous 6D rotation representation of Zhou et al. (CVPR 2019) in SPIN's memory
//!   layout (see [`rot6d_to_rotmat`]). Joint 0 is the global (root) orientation.
//! - `cam`: weak-perspective camera `(s, tx, ty)` in the normalised `[-1, 1]` coordinates of
//!   the square person crop (see [`CropCam`]).
//!
//! Output:
//! - `[72] f32` = 24 × 3 SMPL axis-angle vectors (`axis * angle`, angle in `[0, π]`), the
//!   `θ` that SMPL's forward kinematics takes; or `24 × [3][3]` rotation matrices.
//! - [`OrigCam`]: the same weak-perspective camera expressed in normalised coordinates of
//!   the full camera image, so a renderer does not need the crop box.
//!
//! Precision: all public `f32` functions compute in `f64` internally and round once at the
//! end; the `*_f64` variants expose the same math without that rounding. The functions are
//! total: they never panic, and non-finite input yields non-finite (NaN) output rather than a
//! plausible-looking pose.
//!
//! Tests compare against a PyTorch reference (`models/smplcast_models/geometry.py`), whose
//! vectors `models/gen_smpl_vectors.py` writes to `tests/data/smpl_vectors.json` after
//! cross-checking them against `scipy.spatial.transform.Rotation`.

#[cfg(feature = "runtime")]
pub mod encode;
#[cfg(feature = "runtime")]
pub mod joints;

/// Number of SMPL joints whose rotation the model predicts (root orientation first).
pub const NUM_JOINTS: usize = 24;

/// Floor under vector norms in [`rot6d_to_rotmat`], as in `torch.nn.functional.normalize`
/// (`v / max(|v|, eps)` with `eps = 1e-12`).
const NORM_EPS: f64 = 1e-12;

type Vec3 = [f64; 3];
type Mat3 = [[f64; 3]; 3];

fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn scale(v: Vec3, f: f64) -> Vec3 {
    [v[0] * f, v[1] * f, v[2] * f]
}

/// `v / max(|v|, 1e-12)`, like `torch.nn.functional.normalize(v, dim=-1)`.
fn normalize(v: Vec3) -> Vec3 {
    scale(v, 1.0 / dot(v, v).sqrt().max(NORM_EPS))
}

fn mat_to_f32(m: &Mat3) -> [[f32; 3]; 3] {
    m.map(|row| row.map(|v| v as f32))
}

fn mat_to_f64(m: &[[f32; 3]; 3]) -> Mat3 {
    m.map(|row| row.map(f64::from))
}

/// Converts one 6D rotation (Zhou et al., CVPR 2019) to a 3×3 rotation matrix, following
/// SPIN's convention exactly (`nkolot/SPIN`, `utils/geometry.py: rot6d_to_rotmat`).
///
/// The six numbers are read as a row-major 3×2 matrix: column `a1 = (x0, x2, x4)`,
/// column `a2 = (x1, x3, x5)`. Gram–Schmidt then gives `b1 = normalize(a1)`,
/// `b2 = normalize(a2 − (b1·a2) b1)`, `b3 = b1 × b2`, and the result has *columns*
/// `b1, b2, b3` (`R[i][0] = b1[i]`, `R[i][1] = b2[i]`, `R[i][2] = b3[i]`).
/// Conversely, the 6D encoding of a rotation `R` is its first two columns, row-major:
/// `[R00, R01, R10, R11, R20, R21]`.
///
/// `normalize(v) = v / max(|v|, 1e-12)`, as `torch.nn.functional.normalize`, so degenerate
/// input (`a1 = 0`, or `a2` parallel to `a1`) gives a finite matrix that is not a rotation,
/// exactly like the PyTorch model head. Computed in `f64`, rounded to `f32` at the end.
///
/// # Panics
///
/// Never.
#[must_use]
pub fn rot6d_to_rotmat(x: &[f32; 6]) -> [[f32; 3]; 3] {
    mat_to_f32(&rot6d_to_rotmat_f64(&x.map(f64::from)))
}

/// [`rot6d_to_rotmat`] in `f64` throughout.
///
/// # Panics
///
/// Never.
#[must_use]
pub fn rot6d_to_rotmat_f64(x: &[f64; 6]) -> [[f64; 3]; 3] {
    let a1 = [x[0], x[2], x[4]];
    let a2 = [x[1], x[3], x[5]];
    let b1 = normalize(a1);
    let proj = dot(b1, a2);
    let b2 = normalize([a2[0] - proj * b1[0], a2[1] - proj * b1[1], a2[2] - proj * b1[2]]);
    let b3 = cross(b1, b2);
    [[b1[0], b2[0], b3[0]], [b1[1], b2[1], b3[1]], [b1[2], b2[2], b3[2]]]
}

/// Converts a rotation matrix to an axis-angle vector `axis * angle`, angle in `[0, π]`.
///
/// Robust for every angle, including exactly 0, tiny angles and angles at or near π.
/// Written from the identities for `R = cos θ I + sin θ [k]× + (1 − cos θ) k kᵀ`:
/// - `cos θ = (tr R − 1) / 2` (clamped to `[-1, 1]`);
/// - the skew part `w = vee(R − Rᵀ) / 2 = sin θ · k`;
/// - `θ = atan2(|w|, cos θ)`, accurate at both ends, unlike `acos` near 0 or `asin` near π.
///
/// For `θ ≤ π/2` (`cos θ ≥ 0`) the result is `w · θ / |w|` (`0` when `w = 0`); the
/// factor `θ / sin θ` is well conditioned there. For `θ > π/2` the skew part fades as
/// `sin θ → 0`, so the axis comes from the symmetric part instead:
/// `k kᵀ = ((R + Rᵀ)/2 − cos θ I) / (1 − cos θ)` (at `θ = π` this is `(R + I)/2`). Its
/// column with the largest diagonal entry (`≥ 1/3`), divided by the square root of that
/// entry, is `±k`; the sign is chosen so that `k · w ≥ 0`. At exactly π both signs describe
/// the same rotation, and either may come back.
///
/// The input should be a rotation matrix (orthonormal, `det = +1`) up to rounding; for
/// other matrices the result is finite but meaningless. Non-finite input gives NaN.
/// Computed in `f64`, rounded to `f32` at the end.
///
/// # Panics
///
/// Never.
#[must_use]
pub fn rotmat_to_axis_angle(r: &[[f32; 3]; 3]) -> [f32; 3] {
    rotmat_to_axis_angle_f64(&mat_to_f64(r)).map(|v| v as f32)
}

/// [`rotmat_to_axis_angle`] in `f64` throughout.
///
/// # Panics
///
/// Never.
#[must_use]
pub fn rotmat_to_axis_angle_f64(r: &[[f64; 3]; 3]) -> [f64; 3] {
    if r.iter().flatten().any(|v| !v.is_finite()) {
        return [f64::NAN; 3];
    }
    // w = sin(θ) k.
    let w = [0.5 * (r[2][1] - r[1][2]), 0.5 * (r[0][2] - r[2][0]), 0.5 * (r[1][0] - r[0][1])];
    let cos = (0.5 * (r[0][0] + r[1][1] + r[2][2] - 1.0)).clamp(-1.0, 1.0);
    let sin = dot(w, w).sqrt();
    // sin ≥ 0, so θ ∈ [0, π].
    let theta = sin.atan2(cos);

    if cos >= 0.0 {
        if sin == 0.0 {
            return [0.0; 3];
        }
        return scale(w, theta / sin);
    }

    // θ > π/2: k kᵀ from the symmetric part; 1 − cos ∈ (1, 2].
    let inv = 1.0 / (1.0 - cos);
    let kkt: Mat3 = std::array::from_fn(|i| {
        std::array::from_fn(|j| {
            let sym = 0.5 * (r[i][j] + r[j][i]);
            let diag = if i == j { cos } else { 0.0 };
            (sym - diag) * inv
        })
    });
    let mut col = 0;
    for j in 1..3 {
        if kkt[j][j] > kkt[col][col] {
            col = j;
        }
    }
    let d = kkt[col][col];
    if d <= 0.0 {
        // Not a rotation matrix (for a rotation, d ≥ 1/3); fall back to the skew part.
        return if sin == 0.0 { [0.0; 3] } else { scale(w, theta / sin) };
    }
    let mut k = normalize(scale([kkt[0][col], kkt[1][col], kkt[2][col]], 1.0 / d.sqrt()));
    if dot(k, w) < 0.0 {
        k = scale(k, -1.0);
    }
    scale(k, theta)
}

/// Converts an axis-angle vector (`axis * angle`) to a rotation matrix (Rodrigues' formula).
///
/// `R = I + (sin θ / θ) [v]× + ((1 − cos θ) / θ²) [v]×²` with `θ = |v|`; the second
/// coefficient is evaluated as `2 (sin(θ/2) / θ)²` to avoid cancellation at small angles.
/// Any angle is accepted (not only `[0, π]`). Computed in `f64`, rounded to `f32`.
///
/// # Panics
///
/// Never.
#[must_use]
pub fn axis_angle_to_rotmat(aa: &[f32; 3]) -> [[f32; 3]; 3] {
    mat_to_f32(&axis_angle_to_rotmat_f64(&aa.map(f64::from)))
}

/// [`axis_angle_to_rotmat`] in `f64` throughout.
///
/// # Panics
///
/// Never.
#[must_use]
pub fn axis_angle_to_rotmat_f64(aa: &[f64; 3]) -> [[f64; 3]; 3] {
    let theta = dot(*aa, *aa).sqrt();
    let (a, b) = if theta < 1e-8 {
        // Series limits; the next terms (θ²/6, θ²/24) are below f64 resolution here.
        (1.0, 0.5)
    } else {
        let h = (0.5 * theta).sin() / theta;
        (theta.sin() / theta, 2.0 * h * h)
    };
    let [x, y, z] = *aa;
    let k: Mat3 = [[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]];
    std::array::from_fn(|i| {
        std::array::from_fn(|j| {
            let k2 = k[i][0] * k[0][j] + k[i][1] * k[1][j] + k[i][2] * k[2][j];
            let id = if i == j { 1.0 } else { 0.0 };
            id + a * k[i][j] + b * k2
        })
    })
}

/// The 6D rotation of joint `j` from a packed pose, widened to `f64`.
fn joint6d(pose6d: &[f32; 6 * NUM_JOINTS], j: usize) -> [f64; 6] {
    std::array::from_fn(|i| f64::from(pose6d[6 * j + i]))
}

/// Converts a full SMPL pose from 6D (`[144] f32`, 24 joints × 6, joint-major) to 24
/// rotation matrices, joint by joint with [`rot6d_to_rotmat`].
///
/// # Panics
///
/// Never.
#[must_use]
pub fn pose6d_to_rotmats(pose6d: &[f32; 6 * NUM_JOINTS]) -> [[[f32; 3]; 3]; NUM_JOINTS] {
    std::array::from_fn(|j| mat_to_f32(&rot6d_to_rotmat_f64(&joint6d(pose6d, j))))
}

/// Converts a full SMPL pose from 6D (`[144] f32`, 24 joints × 6, joint-major) to SMPL
/// axis-angle (`[72] f32`, 24 joints × 3, joint-major): [`rot6d_to_rotmat`] then
/// [`rotmat_to_axis_angle`] per joint, with the intermediate matrix kept in `f64`.
///
/// # Panics
///
/// Never.
#[must_use]
pub fn pose6d_to_axis_angle(pose6d: &[f32; 6 * NUM_JOINTS]) -> [f32; 3 * NUM_JOINTS] {
    let mut out = [0.0_f32; 3 * NUM_JOINTS];
    for (j, dst) in out.chunks_exact_mut(3).enumerate() {
        let aa = rotmat_to_axis_angle_f64(&rot6d_to_rotmat_f64(&joint6d(pose6d, j)));
        for (d, v) in dst.iter_mut().zip(aa) {
            *d = v as f32;
        }
    }
    out
}

/// Weak-perspective camera predicted by MPS-Net / SPIN for one person crop.
///
/// A 3D point `(X, Y, Z)` (SMPL model frame, metres-ish, root-relative) projects to the
/// normalised crop coordinates `u = s (X + tx)`, `v = s (Y + ty)`, where `[-1, 1]` spans the
/// square crop (of side `h` pixels centred at `(cx, cy)`, see [`crop_cam_to_orig`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropCam {
    /// Scale, crop half-widths per model unit; positive for a valid prediction.
    pub s: f32,
    /// Horizontal translation, model units, added before scaling.
    pub tx: f32,
    /// Vertical translation, model units, added before scaling.
    pub ty: f32,
}

/// The same weak-perspective camera in normalised coordinates of the whole image.
///
/// A point projects to `u = sx (X + tx)`, `v = sy (Y + ty)`, where `u = -1..1` spans the
/// image width and `v = -1..1` its height (pixel `x = W/2 (1 + u)`, `y = H/2 (1 + v)`).
/// This is VIBE's / MPS-Net's `orig_cam` layout `[sx, sy, tx, ty]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrigCam {
    /// Horizontal scale, image half-widths per model unit.
    pub sx: f32,
    /// Vertical scale, image half-heights per model unit.
    pub sy: f32,
    /// Horizontal translation, model units.
    pub tx: f32,
    /// Vertical translation, model units.
    pub ty: f32,
}

/// Re-expresses a crop camera in the normalised coordinates of the full `img_w × img_h`
/// image, given the square crop of side `h` pixels centred at pixel `(cx, cy)`.
///
/// Derivation (x shown; y is the same with `cy`, `H`, `ty`). In the crop, the point lands at
/// `u_crop = s (X + tx)`, i.e. at pixel `x = cx + u_crop · h/2`. The normalised image
/// coordinate of that pixel is
///
/// ```text
/// u_img = (x − W/2) / (W/2)
///       = (cx − W/2)/(W/2) + s·h/W · (X + tx)
///       = sx · (X + tx')      with  sx  = s·h/W,
///                                   tx' = tx + (cx − W/2) / ((W/2)·sx).
/// ```
///
/// Likewise `sy = s·h/H` and `ty' = ty + (cy − H/2) / ((H/2)·sy)`. The crop is square, so
/// one `s` gives two image scales when `W ≠ H`. Computed in `f64`, rounded to `f32`.
///
/// A degenerate camera or box (`s = 0`, `h = 0`, or a zero image side) has no
/// translation in image space; the result then holds infinite or NaN values, which callers
/// detect with `is_finite`.
///
/// # Panics
///
/// Never.
#[must_use]
pub fn crop_cam_to_orig(cam: CropCam, cx: f32, cy: f32, h: f32, img_w: f32, img_h: f32) -> OrigCam {
    let (s, tx, ty) = (f64::from(cam.s), f64::from(cam.tx), f64::from(cam.ty));
    let (cx, cy, h) = (f64::from(cx), f64::from(cy), f64::from(h));
    let (hw, hh) = (0.5 * f64::from(img_w), 0.5 * f64::from(img_h));
    let sx = s * h / (2.0 * hw);
    let sy = s * h / (2.0 * hh);
    OrigCam {
        sx: sx as f32,
        sy: sy as f32,
        tx: (tx + (cx - hw) / (hw * sx)) as f32,
        ty: (ty + (cy - hh) / (hh * sy)) as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Vectors {
        rotations: Vec<RotCase>,
        cameras: Vec<CamCase>,
    }

    #[derive(Deserialize)]
    struct RotCase {
        name: String,
        sixd: [f64; 6],
        rotmat: [[f64; 3]; 3],
        axis_angle: [f64; 3],
    }

    #[derive(Deserialize)]
    struct CamCase {
        crop_cam: [f64; 3],
        bbox: [f64; 3],
        img: [f64; 2],
        orig_cam: [f64; 4],
    }

    fn vectors() -> Vectors {
        serde_json::from_str(include_str!("../../tests/data/smpl_vectors.json"))
            .expect("tests/data/smpl_vectors.json parses")
    }

    fn to_f32<const N: usize>(v: [f64; N]) -> [f32; N] {
        v.map(|x| x as f32)
    }

    fn max_abs_mat(a: &Mat3, b: &Mat3) -> f64 {
        let mut m = 0.0_f64;
        for i in 0..3 {
            for j in 0..3 {
                m = m.max((a[i][j] - b[i][j]).abs());
            }
        }
        m
    }

    fn max_abs_vec(a: Vec3, b: Vec3) -> f64 {
        (0..3).map(|i| (a[i] - b[i]).abs()).fold(0.0, f64::max)
    }

    fn norm(v: Vec3) -> f64 {
        dot(v, v).sqrt()
    }

    /// Largest entry of |RᵀR − I| and det(R).
    fn orthonormality(r: &Mat3) -> (f64, f64) {
        let mut err = 0.0_f64;
        for i in 0..3 {
            for j in 0..3 {
                let g = (0..3).map(|k| r[k][i] * r[k][j]).sum::<f64>();
                let id = if i == j { 1.0 } else { 0.0 };
                err = err.max((g - id).abs());
            }
        }
        let c0 = [r[0][0], r[1][0], r[2][0]];
        let c1 = [r[0][1], r[1][1], r[2][1]];
        let c2 = [r[0][2], r[1][2], r[2][2]];
        (err, dot(cross(c0, c1), c2))
    }

    fn widen(m: &[[f32; 3]; 3]) -> Mat3 {
        mat_to_f64(m)
    }

    /// Compares axis-angle vectors; near π (where `k θ` and `−k θ` are the same or nearly
    /// the same rotation) compares angles and the rotations they describe instead.
    fn aa_error(got: Vec3, want: Vec3) -> f64 {
        if norm(want) < std::f64::consts::PI - 1e-2 {
            max_abs_vec(got, want)
        } else {
            let dm = max_abs_mat(&axis_angle_to_rotmat_f64(&got), &axis_angle_to_rotmat_f64(&want));
            dm.max((norm(got) - norm(want)).abs())
        }
    }

    /// xorshift64*; deterministic, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next_f64(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
            (v >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Uniform in [-1, 1).
        fn sym(&mut self) -> f64 {
            2.0 * self.next_f64() - 1.0
        }

        fn unit(&mut self) -> Vec3 {
            loop {
                let v = [self.sym(), self.sym(), self.sym()];
                let n = norm(v);
                if n > 0.1 && n <= 1.0 {
                    return scale(v, 1.0 / n);
                }
            }
        }
    }

    #[test]
    fn reference_vectors_are_present() {
        let v = vectors();
        assert!(v.rotations.len() >= 40, "only {} rotation cases", v.rotations.len());
        assert!(v.cameras.len() >= 3, "only {} camera cases", v.cameras.len());
        for kind in ["identity", "random", "small", "near_pi", "pi"] {
            assert!(
                v.rotations.iter().any(|c| c.name.starts_with(kind)),
                "no {kind} case in the vectors"
            );
        }
    }

    #[test]
    fn rot6d_matches_torch_reference() {
        let mut worst = 0.0_f64;
        for case in vectors().rotations {
            let r = widen(&rot6d_to_rotmat(&to_f32(case.sixd)));
            let err = max_abs_mat(&r, &case.rotmat);
            assert!(err <= 1e-5, "{}: rotmat error {err:e}", case.name);
            worst = worst.max(err);
        }
        eprintln!("rot6d_to_rotmat vs torch: max abs error {worst:e}");
    }

    #[test]
    fn axis_angle_matches_torch_reference() {
        let mut worst_chain = 0.0_f64;
        let mut worst_f32_mat = 0.0_f64;
        for case in vectors().rotations {
            // Through the f64 chain from the 6D input.
            let pose: [f32; 6 * NUM_JOINTS] = std::array::from_fn(|i| case.sixd[i % 6] as f32);
            let aa = pose6d_to_axis_angle(&pose);
            for j in 0..NUM_JOINTS {
                let got = [aa[3 * j], aa[3 * j + 1], aa[3 * j + 2]].map(f64::from);
                let err = aa_error(got, case.axis_angle);
                assert!(err <= 1e-4, "{} (chain): axis-angle error {err:e}", case.name);
                worst_chain = worst_chain.max(err);
            }
            // From the reference matrix rounded to f32.
            let got = rotmat_to_axis_angle(&case.rotmat.map(to_f32)).map(f64::from);
            let err = aa_error(got, case.axis_angle);
            assert!(err <= 1e-4, "{} (f32 rotmat): axis-angle error {err:e}", case.name);
            worst_f32_mat = worst_f32_mat.max(err);
        }
        eprintln!(
            "axis-angle vs torch: max error {worst_chain:e} (6D chain), \
             {worst_f32_mat:e} (f32 rotmat)"
        );
    }

    #[test]
    fn pose6d_helpers_keep_joint_order() {
        let rots = vectors().rotations;
        let pose: [f32; 6 * NUM_JOINTS] =
            std::array::from_fn(|i| rots[(i / 6) % rots.len()].sixd[i % 6] as f32);
        let mats = pose6d_to_rotmats(&pose);
        let aa = pose6d_to_axis_angle(&pose);
        for j in 0..NUM_JOINTS {
            let case = &rots[j % rots.len()];
            assert!(max_abs_mat(&widen(&mats[j]), &case.rotmat) <= 1e-5, "joint {j}");
            let got = [aa[3 * j], aa[3 * j + 1], aa[3 * j + 2]].map(f64::from);
            assert!(aa_error(got, case.axis_angle) <= 1e-4, "joint {j}");
        }
    }

    #[test]
    fn crop_cam_matches_torch_reference() {
        for case in vectors().cameras {
            let [s, tx, ty] = to_f32(case.crop_cam);
            let [cx, cy, h] = to_f32(case.bbox);
            let [w, ih] = to_f32(case.img);
            let got = crop_cam_to_orig(CropCam { s, tx, ty }, cx, cy, h, w, ih);
            let got = [got.sx, got.sy, got.tx, got.ty].map(f64::from);
            for (g, want) in got.iter().zip(case.orig_cam) {
                assert!(
                    (g - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "{got:?} vs {:?}",
                    case.orig_cam
                );
            }
        }
    }

    /// Projects points through the crop camera and the crop box, and through the image
    /// camera and the image: both must land on the same pixel.
    #[test]
    fn crop_and_orig_cameras_project_to_the_same_pixels() {
        let mut rng = Rng(0x5EED_CAFE);
        let images = [(1920.0, 1080.0), (640.0, 480.0), (720.0, 1280.0)];
        let mut worst = 0.0_f64;
        for (img_w, img_h) in images {
            for _ in 0..20 {
                let cam = CropCam {
                    s: (0.5 + 0.7 * rng.next_f64()) as f32,
                    tx: (0.3 * rng.sym()) as f32,
                    ty: (0.3 * rng.sym()) as f32,
                };
                let h = (80.0 + 600.0 * rng.next_f64()) as f32;
                let cx = (img_w * rng.next_f64()) as f32;
                let cy = (img_h * rng.next_f64()) as f32;
                let orig = crop_cam_to_orig(cam, cx, cy, h, img_w as f32, img_h as f32);
                for _ in 0..5 {
                    let (px, py) = (rng.sym(), rng.sym());
                    // Crop route: normalised crop coords, then crop -> pixel.
                    let u_crop = f64::from(cam.s) * (px + f64::from(cam.tx));
                    let v_crop = f64::from(cam.s) * (py + f64::from(cam.ty));
                    let x1 = f64::from(cx) + u_crop * f64::from(h) / 2.0;
                    let y1 = f64::from(cy) + v_crop * f64::from(h) / 2.0;
                    // Image route: normalised image coords, then image -> pixel.
                    let u_img = f64::from(orig.sx) * (px + f64::from(orig.tx));
                    let v_img = f64::from(orig.sy) * (py + f64::from(orig.ty));
                    let x2 = img_w / 2.0 * (1.0 + u_img);
                    let y2 = img_h / 2.0 * (1.0 + v_img);
                    let err = (x1 - x2).abs().max((y1 - y2).abs());
                    assert!(err < 1e-3, "pixel mismatch {err} px");
                    worst = worst.max(err);
                }
            }
        }
        eprintln!("crop vs orig camera: max pixel mismatch {worst:e} px");
    }

    #[test]
    fn centred_full_image_crop_is_identity_for_square_images() {
        let cam = CropCam { s: 0.9, tx: 0.1, ty: -0.2 };
        let orig = crop_cam_to_orig(cam, 256.0, 256.0, 512.0, 512.0, 512.0);
        assert_eq!(orig, OrigCam { sx: 0.9, sy: 0.9, tx: 0.1, ty: -0.2 });
    }

    #[test]
    fn degenerate_camera_is_not_finite() {
        let cam = CropCam { s: 0.0, tx: 0.0, ty: 0.0 };
        let orig = crop_cam_to_orig(cam, 10.0, 10.0, 100.0, 640.0, 480.0);
        assert!(!orig.tx.is_finite() && !orig.ty.is_finite());
    }

    #[test]
    fn random_6d_gives_proper_rotations() {
        let mut rng = Rng(42);
        for _ in 0..10_000 {
            let x: [f32; 6] = std::array::from_fn(|_| (3.0 * rng.sym()) as f32);
            let r = widen(&rot6d_to_rotmat(&x));
            let (err, det) = orthonormality(&r);
            // f32 output: entries carry ~6e-8 rounding each.
            assert!(err <= 1e-6 && (det - 1.0).abs() <= 1e-6, "{x:?}: {err:e}, det {det}");
            // b1 is along a1 and b2 has a positive component along a2.
            let a1 = [x[0], x[2], x[4]].map(f64::from);
            let a2 = [x[1], x[3], x[5]].map(f64::from);
            let b1 = [r[0][0], r[1][0], r[2][0]];
            let b2 = [r[0][1], r[1][1], r[2][1]];
            assert!((dot(b1, a1) - norm(a1)).abs() <= 1e-6 * norm(a1).max(1.0));
            assert!(dot(b2, a2) >= -1e-6);
        }
    }

    #[test]
    fn sixd_of_a_rotation_round_trips() {
        let mut rng = Rng(7);
        for _ in 0..1000 {
            let aa = scale(rng.unit(), std::f64::consts::PI * rng.next_f64());
            let r = axis_angle_to_rotmat_f64(&aa);
            let x = [r[0][0], r[0][1], r[1][0], r[1][1], r[2][0], r[2][1]];
            assert!(max_abs_mat(&rot6d_to_rotmat_f64(&x), &r) <= 1e-14);
        }
    }

    #[test]
    fn axis_angle_round_trips_at_all_angles() {
        use std::f64::consts::PI;
        let mut rng = Rng(99);
        let mut angles: Vec<f64> = (0..2000).map(|_| PI * rng.next_f64()).collect();
        angles.extend([
            0.0,
            1e-300,
            1e-12,
            1e-9,
            1e-8,
            1e-6,
            1e-3,
            0.5,
            PI / 2.0 - 1e-9,
            PI / 2.0,
            PI / 2.0 + 1e-9,
            PI - 1e-3,
            PI - 1e-5,
            PI - 1e-6,
            PI - 1e-9,
            PI - 1e-12,
            PI,
        ]);
        let mut worst_aa = 0.0_f64;
        let mut worst_mat = 0.0_f64;
        for (n, &theta) in angles.iter().enumerate() {
            let axis = match n % 5 {
                0 => [1.0, 0.0, 0.0],
                1 => [0.0, -1.0, 0.0],
                2 => [0.0, 0.0, 1.0],
                _ => rng.unit(),
            };
            let aa = scale(axis, theta);
            // f64: aa -> R -> aa.
            let r = axis_angle_to_rotmat_f64(&aa);
            let back = rotmat_to_axis_angle_f64(&r);
            let err = aa_error(back, aa);
            assert!(err <= 1e-9, "θ={theta:e}, axis {axis:?}: {back:?} vs {aa:?} ({err:e})");
            assert!(norm(back) <= PI + 1e-12);
            worst_aa = worst_aa.max(err);
            // f32 public path: R -> aa -> Rodrigues -> R.
            let r32 = mat_to_f32(&r);
            let back32 = rotmat_to_axis_angle(&r32);
            let err = max_abs_mat(&widen(&axis_angle_to_rotmat(&back32)), &widen(&r32));
            assert!(err <= 1e-5, "θ={theta:e}: f32 round trip {err:e}");
            worst_mat = worst_mat.max(err);
        }
        eprintln!("round trips: aa {worst_aa:e} (f64), R {worst_mat:e} (f32)");
    }

    #[test]
    fn identity_and_tiny_angles_are_exact_enough() {
        assert_eq!(
            rotmat_to_axis_angle(&rot6d_to_rotmat(&[1.0, 0.0, 0.0, 1.0, 0.0, 0.0])),
            [0.0; 3]
        );
        let aa = [1e-6_f32, -2e-7, 3e-7];
        let back = rotmat_to_axis_angle(&axis_angle_to_rotmat(&aa));
        for (b, a) in back.iter().zip(aa) {
            assert!((b - a).abs() <= 1e-12, "{back:?} vs {aa:?}");
        }
    }

    #[test]
    fn exactly_pi_about_axes() {
        use std::f64::consts::PI;
        let diag = |d: [f64; 3]| [[d[0], 0.0, 0.0], [0.0, d[1], 0.0], [0.0, 0.0, d[2]]];
        for (r, axis) in [
            (diag([1.0, -1.0, -1.0]), [1.0, 0.0, 0.0]),
            (diag([-1.0, 1.0, -1.0]), [0.0, 1.0, 0.0]),
            (diag([-1.0, -1.0, 1.0]), [0.0, 0.0, 1.0]),
        ] {
            let aa = rotmat_to_axis_angle_f64(&r);
            let (n, d) = (norm(aa), dot(aa, axis).abs());
            assert!((n - PI).abs() <= 1e-15 && (d - PI).abs() <= 1e-15, "{aa:?}");
        }
    }

    #[test]
    fn bad_input_never_panics() {
        let zero = rot6d_to_rotmat(&[0.0; 6]);
        assert!(zero.iter().flatten().all(|v| v.is_finite()));
        assert!(rotmat_to_axis_angle(&zero).iter().all(|v| v.is_finite()));
        let parallel = rot6d_to_rotmat(&[1.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
        assert!(rotmat_to_axis_angle(&parallel).iter().all(|v| v.is_finite()));
        assert!(rotmat_to_axis_angle(&[[0.0; 3]; 3]).iter().all(|v| v.is_finite()));
        let nan = rotmat_to_axis_angle(&[[f32::NAN, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        assert!(nan.iter().all(|v| v.is_nan()));
        assert!(pose6d_to_axis_angle(&[f32::NAN; 144]).iter().all(|v| v.is_nan()));
    }
}
