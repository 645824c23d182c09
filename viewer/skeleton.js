// SMPL's kinematic tree and forward kinematics, for drawing a skeleton from θ when a message
// carries no joints (the daemon has no SMPL model file). The rest skeleton below is a generic
// adult body in T-pose with made-up bone lengths, not SMPL's: drawings from it are labelled
// approximate. With `joints` in the message the viewer draws those instead.

export const PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21];

export const NAMES = ["pelvis", "left hip", "right hip", "spine1", "left knee", "right knee",
  "spine2", "left ankle", "right ankle", "spine3", "left foot", "right foot", "neck",
  "left collar", "right collar", "head", "left shoulder", "right shoulder", "left elbow",
  "right elbow", "left wrist", "right wrist", "left hand", "right hand"];

// Each joint's offset from its parent in the rest pose, metres, in SMPL's body axes (x to the
// body's left, y up, z forward). Generic lengths: documented in docs/VIEWER.md.
export const REST_OFFSETS = [
  [0, 0, 0],
  [0.06, -0.09, 0], [-0.06, -0.09, 0], [0, 0.11, 0],
  [0.04, -0.38, 0], [-0.04, -0.38, 0], [0, 0.13, 0],
  [0, -0.40, -0.04], [0, -0.40, -0.04], [0, 0.05, 0],
  [0, -0.05, 0.12], [0, -0.05, 0.12], [0, 0.21, 0],
  [0.08, 0.12, 0], [-0.08, 0.12, 0], [0, 0.09, 0.05],
  [0.10, 0.03, 0], [-0.10, 0.03, 0], [0.26, 0, 0],
  [-0.26, 0, 0], [0.25, 0, 0], [-0.25, 0, 0],
  [0.09, 0, 0], [-0.09, 0, 0],
];

// Axis-angle → row-major 3×3 rotation (Rodrigues).
export function rodrigues(x, y, z) {
  const angle = Math.hypot(x, y, z);
  const a = angle < 1e-8 ? 1 : Math.sin(angle) / angle;
  const b = angle < 1e-8 ? 0.5 : (1 - Math.cos(angle)) / (angle * angle);
  return [
    1 - b * (y * y + z * z), b * x * y - a * z, b * x * z + a * y,
    b * x * y + a * z, 1 - b * (x * x + z * z), b * y * z - a * x,
    b * x * z - a * y, b * y * z + a * x, 1 - b * (x * x + y * y),
  ];
}

function mul(m, n) {
  const out = new Array(9);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      out[3 * i + j] = m[3 * i] * n[j] + m[3 * i + 1] * n[3 + j] + m[3 * i + 2] * n[6 + j];
    }
  }
  return out;
}

function apply(m, v) {
  return [0, 1, 2].map((i) => m[3 * i] * v[0] + m[3 * i + 1] * v[1] + m[3 * i + 2] * v[2]);
}

// The 24 joints posed by θ (72 axis-angle values) on the generic rest skeleton, as SMPL's
// forward kinematics does on its own (src/joints.rs).
export function approximateJoints(theta) {
  const rotations = [];
  const joints = [];
  for (let k = 0; k < 24; k++) {
    const local = rodrigues(theta[3 * k], theta[3 * k + 1], theta[3 * k + 2]);
    const p = PARENTS[k];
    if (p < 0) {
      rotations.push(local);
      joints.push([0, 0, 0]);
    } else {
      const moved = apply(rotations[p], REST_OFFSETS[k]);
      joints.push([0, 1, 2].map((a) => joints[p][a] + moved[a]));
      rotations.push(mul(rotations[p], local));
    }
  }
  return joints;
}
