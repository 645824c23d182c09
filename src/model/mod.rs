//! MPS-Net inference with tract: the ResNet-50 backbone and the temporal head (MoCA → HAFI →
//! SPIN regressor), in full-window and streaming form.
//!
//! Runs on the inference thread(s); every type here is `Send` but used by one thread at a time
//! (`&mut self`): tract's execution state is reused between calls.
//!
//! The ONNX graphs come from `models/convert.py` (see models/smplcast_models/export.py for the
//! contract); f32 or int8 is whatever the file holds (int8 graphs are QOperator: QLinearConv /
//! QLinearMatMul, which tract runs on integer kernels).
//!
//! | graph | inputs | outputs |
//! |---|---|---|
//! | `backbone.onnx` | `image` [N, 3, 224, 224] f32 RGB, ImageNet mean/std | `feature` [N, C] |
//! | `temporal.onnx` | `features` [N, 16, C] | `pose6d` [N, 144], `shape` [N, 10], `cam` [N, 3] |
//! | `temporal_frame.onnx` | `feature` [N, C] | `theta`, `phi` [N, I], `fx`, `fm` [N, H], `rx`, `rm` [N, 157] |
//! | `temporal_step.onnx` | `x`, `theta`, `phi`, `fx`, `fm`, `rx`, `rm` over 16 frames | as `temporal.onnx` |
//!
//! C is 2048 for the published model, I = C / 2, H = 256 (a narrow test variant divides all by 8);
//! 157 is the regressor's state (pose6d, shape, cam).

pub mod device;
mod fuse;
mod graph;
pub mod preprocess;
mod quantize;

use std::path::{Path, PathBuf};

pub use device::{Device, Target};
use graph::{f32_slice, Dim, Graph, Interface, Port, Widths};
pub use graph::{OpProfile, Precision};

/// Side of the square RGB crop the backbone takes.
pub const IMAGE_SIZE: usize = 224;
/// Frames in a temporal window.
pub const SEQ_LEN: usize = 16;
/// Index of the frame a window's result belongs to (frames 0..=7 before it, 9..=15 after).
pub const CENTRE: usize = 8;
/// 6D rotation per SMPL joint, 24 joints.
pub const POSE6D_LEN: usize = 144;
/// SMPL shape coefficients β.
pub const SHAPE_LEN: usize = 10;
/// Weak-perspective crop camera (s, tx, ty).
pub const CAM_LEN: usize = 3;
/// The SPIN regressor's state: pose6d, shape and cam, in that order.
pub const STATE_LEN: usize = POSE6D_LEN + SHAPE_LEN + CAM_LEN;

/// Errors of loading and running the model graphs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("model file {path}: cannot read it: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "model file {path}: not a usable {graph} graph: {reason}. Expected the ONNX file written \
         by `models/run convert.py` (see README, \"Models\")"
    )]
    Parse { path: PathBuf, graph: &'static str, reason: String },
    #[error(
        "model file {path}: wrong {graph} graph: expected {expected}; the file has {found}. \
         Convert the model again with `models/run convert.py` (graphs from an older smplcast \
         differ; README, \"Models\")"
    )]
    Interface { path: PathBuf, graph: &'static str, expected: String, found: String },
    #[error("{graph} inference failed: {reason}")]
    Run { graph: &'static str, reason: String },
    #[error(
        "model directory {dir}: the backbone gives {backbone}-d features but the temporal graphs \
         take {temporal}-d; convert all graphs together with `models/run convert.py`"
    )]
    Mismatch { dir: PathBuf, backbone: usize, temporal: usize },
    #[error(
        "model file {path}: {reason}. Expected the model.json that `models/run convert.py` \
         writes beside the graphs, with \"model_id\" (text) and \"trained\" (true or false)"
    )]
    Manifest { path: PathBuf, reason: String },
}

/// `model.json`: what the model directory holds (other keys are for people).
#[derive(Debug, serde::Deserialize)]
struct Manifest {
    model_id: String,
    trained: bool,
}

impl Manifest {
    fn load(path: &Path) -> Result<Manifest> {
        let failed = |reason: String| Error::Manifest { path: path.to_path_buf(), reason };
        let text =
            std::fs::read_to_string(path).map_err(|e| failed(format!("cannot read it: {e}")))?;
        serde_json::from_str(&text).map_err(|e| failed(format!("not the manifest: {e}")))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Runs the matrix products of every graph in this process on `threads` threads: tract's
/// `multithread-mm` executor over a rayon pool of that size (the calling thread waits for
/// it). 1: each graph runs on the thread that calls it, tract's default.
///
/// # Errors
/// The pool's threads could not be started.
pub fn set_threads(threads: usize) -> std::io::Result<()> {
    use tract_linalg::multithread::{set_default_executor, Executor};
    let executor = if threads > 1 {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("smplcast-mm-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Executor::MultiThread(std::sync::Arc::new(pool))
    } else {
        Executor::SingleThread
    };
    set_default_executor(executor);
    Ok(())
}

/// Float graphs loaded after this call run in f16 (tract's `f32_to_f16` transform): the
/// native half-precision kernels of ARMv8.2 cores (Pi 5, Orin), half the weight bytes. The
/// graphs still take and give f32; int8 graphs keep their integer convs. For graphs loaded on
/// the calling thread (so tests running side by side do not see it); for
/// `smplcast bench --precision f16` (docs/performance.md).
pub fn set_half_floats(half: bool) {
    graph::HALF_FLOATS.set(half);
}

/// Runs `load` with [`set_half_floats`]`(half)` on this thread, and restores the setting after:
/// the graphs `load` loads run in f16 when `half`.
pub fn with_half_floats<T>(half: bool, load: impl FnOnce() -> T) -> T {
    let before = graph::HALF_FLOATS.replace(half);
    let out = load();
    graph::HALF_FLOATS.set(before);
    out
}

/// Runs `load` with the graphs it loads made runnable on `target` (see [`device::select`]),
/// and restores the setting after. On the GPU, tract runs there what its CUDA runtime supports
/// and the rest of the graph on the CPU; a graph it cannot prepare at all runs on the CPU, with
/// a warning. Per thread, like [`with_half_floats`].
pub fn with_device<T>(target: Target, load: impl FnOnce() -> T) -> T {
    let before = graph::DEVICE.replace(target);
    let out = load();
    graph::DEVICE.set(before);
    out
}

/// Whether this CPU does f16 arithmetic natively (aarch64 `fp16`, ARMv8.2: Pi 5, Jetson Orin).
/// Elsewhere tract emulates it, several times slower than f32.
pub fn native_half_floats() -> bool {
    #[cfg(target_arch = "aarch64")]
    return std::arch::is_aarch64_feature_detected!("fp16");
    #[cfg(not(target_arch = "aarch64"))]
    return false;
}

/// Turns the per-op profile of this thread's graph runs on (an empty one) or off, returning
/// what was recorded since it was turned on: time per tract op kind and how many nodes ran,
/// for `smplcast bench --only PART --profile`. Runs are slower while it is on.
pub fn profile_ops(on: bool) -> OpProfile {
    graph::PROFILE.replace(on.then(OpProfile::new)).unwrap_or_default()
}

use Dim::{Batch as N, Fixed as F, Var as V};

const BACKBONE: Interface = Interface {
    graph: "backbone",
    inputs: &[Port { name: "image", dims: &[N, F(3), F(IMAGE_SIZE), F(IMAGE_SIZE)] }],
    outputs: &[Port { name: "feature", dims: &[N, V('C')] }],
};
/// The person detector (models/detector/pose_detection.onnx, MediaPipe's BlazePose detector).
pub const DETECTOR_SIZE: usize = 224;
/// Its SSD anchors (one candidate per anchor).
pub const DETECTOR_ANCHORS: usize = 2254;
/// Values per candidate: box x, y, w, h and 4 keypoints (x, y).
pub const DETECTOR_COORDS: usize = 12;
const DETECTOR: Interface = Interface {
    graph: "person detector",
    inputs: &[Port { name: "input_1", dims: &[F(1), F(DETECTOR_SIZE), F(DETECTOR_SIZE), F(3)] }],
    outputs: &[
        Port { name: "Identity", dims: &[F(1), F(DETECTOR_ANCHORS), F(DETECTOR_COORDS)] },
        Port { name: "Identity_1", dims: &[F(1), F(DETECTOR_ANCHORS), F(1)] },
    ],
};
/// The multi-person detector (models/nanodet/nanodet.onnx, NanoDet-g, person class): any input
/// size that is a multiple of [`NANODET_STRIDE`], chosen at load.
const NANODET: Interface = Interface {
    graph: "person detector (NanoDet)",
    inputs: &[Port { name: "image", dims: &[F(1), F(3), V('H'), V('W')] }],
    outputs: &[
        Port { name: "score", dims: &[F(1), V('N')] },
        Port { name: "distance", dims: &[F(1), V('N'), F(4)] },
    ],
};
/// NanoDet's coarsest stride: its input sides are multiples of this.
pub const NANODET_STRIDE: usize = 32;
const HEAD_OUTPUTS: &[Port] = &[
    Port { name: "pose6d", dims: &[N, F(POSE6D_LEN)] },
    Port { name: "shape", dims: &[N, F(SHAPE_LEN)] },
    Port { name: "cam", dims: &[N, F(CAM_LEN)] },
];
const TEMPORAL: Interface = Interface {
    graph: "temporal",
    inputs: &[Port { name: "features", dims: &[N, F(SEQ_LEN), V('C')] }],
    outputs: HEAD_OUTPUTS,
};
const FRAME: Interface = Interface {
    graph: "temporal_frame",
    inputs: &[Port { name: "feature", dims: &[N, V('C')] }],
    outputs: &[
        Port { name: "theta", dims: &[N, V('I')] },
        Port { name: "phi", dims: &[N, V('I')] },
        Port { name: "fx", dims: &[N, V('H')] },
        Port { name: "fm", dims: &[N, V('H')] },
        Port { name: "rx", dims: &[N, F(STATE_LEN)] },
        Port { name: "rm", dims: &[N, F(STATE_LEN)] },
    ],
};
const STEP: Interface = Interface {
    graph: "temporal_step",
    inputs: &[
        Port { name: "x", dims: &[N, F(SEQ_LEN), V('C')] },
        Port { name: "theta", dims: &[N, F(SEQ_LEN), V('I')] },
        Port { name: "phi", dims: &[N, F(SEQ_LEN), V('I')] },
        Port { name: "fx", dims: &[N, F(SEQ_LEN), V('H')] },
        Port { name: "fm", dims: &[N, F(SEQ_LEN), V('H')] },
        Port { name: "rx", dims: &[N, F(SEQ_LEN), F(STATE_LEN)] },
        Port { name: "rm", dims: &[N, F(SEQ_LEN), F(STATE_LEN)] },
    ],
    outputs: HEAD_OUTPUTS,
};

/// The temporal head's result for one window's centre frame.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadOutput {
    /// 24 joints × 6D rotation (first two columns of the rotation matrix, row-major 3×2).
    pub pose6d: [f32; POSE6D_LEN],
    /// SMPL shape β.
    pub shape: [f32; SHAPE_LEN],
    /// Weak-perspective camera of the crop: scale, x and y translation.
    pub cam: [f32; CAM_LEN],
}

fn head_outputs(
    graph: &'static str,
    outs: &[tract_onnx::prelude::TValue],
    batch: usize,
) -> Result<Vec<HeadOutput>> {
    let pose = f32_slice(graph, &outs[0])?;
    let shape = f32_slice(graph, &outs[1])?;
    let cam = f32_slice(graph, &outs[2])?;
    let mut v = Vec::with_capacity(batch);
    for b in 0..batch {
        let mut o =
            HeadOutput { pose6d: [0.0; POSE6D_LEN], shape: [0.0; SHAPE_LEN], cam: [0.0; CAM_LEN] };
        o.pose6d.copy_from_slice(&pose[b * POSE6D_LEN..(b + 1) * POSE6D_LEN]);
        o.shape.copy_from_slice(&shape[b * SHAPE_LEN..(b + 1) * SHAPE_LEN]);
        o.cam.copy_from_slice(&cam[b * CAM_LEN..(b + 1) * CAM_LEN]);
        v.push(o);
    }
    Ok(v)
}

fn check_len(graph: &'static str, what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::Run { graph, reason: format!("{what}: {got} values given, {want} expected") })
    }
}

/// The per-frame ResNet-50 feature extractor.
pub struct Backbone {
    graph: Graph,
    batch: usize,
    feat: usize,
}

impl Backbone {
    /// Loads `backbone.onnx` (or its int8 form) for `batch` crops per call.
    ///
    /// # Errors
    /// See [`Error`]: unreadable, not ONNX, or not the backbone interface.
    pub fn load(path: &Path, batch: usize) -> Result<Self> {
        let mut widths = Widths::default();
        let graph = Graph::load(path, &BACKBONE, batch, &mut widths)?;
        Ok(Backbone { graph, batch, feat: widths.get('C') })
    }

    /// Feature size C (2048 for the published model).
    pub fn feature_len(&self) -> usize {
        self.feat
    }

    /// Precision of the loaded graph.
    pub fn precision(&self) -> Precision {
        self.graph.precision
    }

    /// Where it runs.
    pub fn target(&self) -> Target {
        self.graph.target
    }

    /// Another backbone over the same weights, with its own state: one per worker.
    ///
    /// # Errors
    /// [`Error::Run`] if tract cannot make the state.
    pub fn fork(&self) -> Result<Self> {
        Ok(Backbone { graph: self.graph.fork()?, batch: self.batch, feat: self.feat })
    }

    /// `images`: `batch` crops, [batch, 3, 224, 224] f32 RGB, ImageNet mean/std →
    /// features [batch, C].
    ///
    /// # Errors
    /// [`Error::Run`] on a wrong input length or a tract failure.
    pub fn run(&mut self, images: &[f32]) -> Result<Vec<f32>> {
        let shape = [self.batch, 3, IMAGE_SIZE, IMAGE_SIZE];
        check_len(self.graph.name(), "image", images.len(), shape.iter().product())?;
        let outs = self.graph.run(&[(&shape, images)])?;
        Ok(f32_slice(self.graph.name(), &outs[0])?.to_vec())
    }
}

/// The person detector graph: raw candidates, decoded by `detect::blazepose`.
pub struct DetectorGraph {
    graph: Graph,
}

impl DetectorGraph {
    /// # Errors
    /// See [`Error`]: unreadable, not ONNX, or not the detector's interface.
    pub fn load(path: &Path) -> Result<Self> {
        Ok(DetectorGraph { graph: Graph::load(path, &DETECTOR, 1, &mut Widths::default())? })
    }

    /// Whether `path` declares this graph's input (`input_1`, 4-d); the file is read, not
    /// prepared.
    pub fn declared_by(path: &Path) -> bool {
        graph::declares_input(path, DETECTOR.inputs[0])
    }

    /// `input`: [1, 224, 224, 3] f32 NHWC RGB in [-1, 1] → (candidates [2254 × 12], score
    /// logits [2254]).
    ///
    /// # Errors
    /// [`Error::Run`] on a wrong input length or a tract failure.
    pub fn run(&mut self, input: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let shape = [1, DETECTOR_SIZE, DETECTOR_SIZE, 3];
        check_len(self.graph.name(), "image", input.len(), shape.iter().product())?;
        let outs = self.graph.run(&[(&shape, input)])?;
        let name = self.graph.name();
        Ok((f32_slice(name, &outs[0])?.to_vec(), f32_slice(name, &outs[1])?.to_vec()))
    }
}

/// The NanoDet person detector graph, prepared for one input size: per-cell scores and box
/// distances, decoded by `detect::nanodet`.
pub struct NanoDetGraph {
    graph: Graph,
    size: [usize; 2],
    cells: usize,
}

impl NanoDetGraph {
    /// Loads the graph for input `size` = [width, height] (multiples of [`NANODET_STRIDE`]).
    ///
    /// # Errors
    /// See [`Error`]: unreadable, not ONNX, or not the detector's interface.
    pub fn load(path: &Path, size: [usize; 2]) -> Result<Self> {
        let mut widths = Widths::default();
        widths.bind('W', size[0]);
        widths.bind('H', size[1]);
        let graph = Graph::load(path, &NANODET, 1, &mut widths)?;
        Ok(NanoDetGraph { graph, size, cells: widths.get('N') })
    }

    /// Whether `path` declares the NanoDet interface's input (`image`, 4-d); the file is
    /// read, not prepared.
    pub fn declared_by(path: &Path) -> bool {
        graph::declares_input(path, NANODET.inputs[0])
    }

    /// The input size [width, height] it was prepared for.
    pub fn size(&self) -> [usize; 2] {
        self.size
    }

    /// `input`: [1, 3, H, W] f32 planar RGB, 0–255 → (scores [N], distances [N × 4]): the
    /// cells of strides 8, 16 and 32 in that order, row-major within each.
    ///
    /// # Errors
    /// [`Error::Run`] on a wrong input length or a tract failure.
    pub fn run(&mut self, input: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let shape = [1, 3, self.size[1], self.size[0]];
        check_len(self.graph.name(), "image", input.len(), shape.iter().product())?;
        let outs = self.graph.run(&[(&shape, input)])?;
        let name = self.graph.name();
        let (scores, dists) = (f32_slice(name, &outs[0])?, f32_slice(name, &outs[1])?);
        debug_assert_eq!(scores.len(), self.cells);
        Ok((scores.to_vec(), dists.to_vec()))
    }
}

/// The temporal head on whole 16-frame windows (the reference form; the daemon streams with
/// [`Streaming`], which gives the same numbers for a fraction of the work).
pub struct TemporalHead {
    graph: Graph,
    batch: usize,
    feat: usize,
}

impl TemporalHead {
    /// Loads `temporal.onnx` for `batch` windows per call; `feat` is the backbone's feature size.
    ///
    /// # Errors
    /// See [`Error`].
    pub fn load(path: &Path, batch: usize) -> Result<Self> {
        let mut widths = Widths::default();
        let graph = Graph::load(path, &TEMPORAL, batch, &mut widths)?;
        Ok(TemporalHead { graph, batch, feat: widths.get('C') })
    }

    /// Feature size C the graph takes.
    pub fn feature_len(&self) -> usize {
        self.feat
    }

    /// Precision of the loaded graph.
    pub fn precision(&self) -> Precision {
        self.graph.precision
    }

    /// `windows`: [batch, 16, C] backbone features → one result per window (its frame 8).
    ///
    /// # Errors
    /// [`Error::Run`] on a wrong input length or a tract failure.
    pub fn run(&mut self, windows: &[f32]) -> Result<Vec<HeadOutput>> {
        let shape = [self.batch, SEQ_LEN, self.feat];
        check_len(self.graph.name(), "features", windows.len(), shape.iter().product())?;
        let outs = self.graph.run(&[(&shape, windows)])?;
        head_outputs(self.graph.name(), &outs, self.batch)
    }
}

/// One frame's cached inputs to the streaming step: its feature and the temporal head's
/// per-frame linear maps of it (see models/smplcast_models/mpsnet.py, `TemporalFrame`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrameCache {
    /// Backbone feature, C.
    pub x: Vec<f32>,
    /// MoCA θ projection, I.
    pub theta: Vec<f32>,
    /// MoCA φ projection, I.
    pub phi: Vec<f32>,
    /// HAFI fc of the feature (no bias), H.
    pub fx: Vec<f32>,
    /// HAFI fc of the frame's MoCA mask contribution `Wmask·Wg·x` (no bias), H.
    pub fm: Vec<f32>,
    /// The regressor (folded into one affine map `R`) of the feature, `R·x`, 157.
    pub rx: Vec<f32>,
    /// The regressor of the mask contribution, `R·Wmask·Wg·x`, 157.
    pub rm: Vec<f32>,
}

/// Sizes of the temporal head: feature C, MoCA projection I, HAFI hidden H.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemporalDims {
    pub feat: usize,
    pub inter: usize,
    pub hidden: usize,
}

/// The temporal head in streaming form: [`Streaming::project`] once per new frame,
/// [`Streaming::step`] once per result. The daemon splits it ([`Streaming::into_parts`]) so that
/// projection runs on the inference thread and the step on the post-processing thread.
pub struct Streaming {
    projector: Projector,
    stepper: Stepper,
}

/// The per-frame half of [`Streaming`]: `temporal_frame.onnx`.
pub struct Projector {
    graph: Graph,
    batch: usize,
    dims: TemporalDims,
}

/// The per-result half of [`Streaming`]: `temporal_step.onnx`.
pub struct Stepper {
    graph: Graph,
    batch: usize,
    dims: TemporalDims,
    /// Step inputs assembled from the caches, reused between calls: x, θ, φ, fx, fm, rx, rm.
    scratch: [Vec<f32>; 7],
}

impl Streaming {
    /// Loads `temporal_frame.onnx` and `temporal_step.onnx` for `batch` tracks per call.
    ///
    /// # Errors
    /// See [`Error`]; also [`Error::Interface`] when the two files disagree on widths.
    pub fn load(frame: &Path, step: &Path, batch: usize) -> Result<Self> {
        let mut widths = Widths::default();
        let frame = Graph::load(frame, &FRAME, batch, &mut widths)?;
        let step = Graph::load(step, &STEP, batch, &mut widths)?;
        let dims =
            TemporalDims { feat: widths.get('C'), inter: widths.get('I'), hidden: widths.get('H') };
        Ok(Streaming {
            projector: Projector { graph: frame, batch, dims },
            stepper: Stepper { graph: step, batch, dims, scratch: Default::default() },
        })
    }

    /// Sizes of the head.
    pub fn dims(&self) -> TemporalDims {
        self.stepper.dims
    }

    /// Batch size the graphs were loaded for.
    pub fn batch(&self) -> usize {
        self.stepper.batch
    }

    /// Precision of the loaded graphs (the step graph's; both are exported together).
    pub fn precision(&self) -> Precision {
        self.stepper.graph.precision
    }

    /// Where the step graph runs.
    pub fn target(&self) -> Target {
        self.stepper.graph.target
    }

    /// See [`Projector::project`].
    ///
    /// # Errors
    /// [`Error::Run`] on a wrong input length or a tract failure.
    pub fn project(&mut self, features: &[f32]) -> Result<Vec<FrameCache>> {
        self.projector.project(features)
    }

    /// See [`Stepper::step`].
    ///
    /// # Errors
    /// [`Error::Run`] when a window does not have 16 frames of the loaded widths, or tract fails.
    pub fn step(&mut self, windows: &[[&FrameCache; SEQ_LEN]]) -> Result<Vec<HeadOutput>> {
        self.stepper.step(windows)
    }

    /// The two halves, for use on different threads.
    pub fn into_parts(self) -> (Projector, Stepper) {
        (self.projector, self.stepper)
    }
}

impl Projector {
    /// Another projector over the same weights, with its own state: one per worker.
    ///
    /// # Errors
    /// [`Error::Run`] if tract cannot make the state.
    pub fn fork(&self) -> Result<Self> {
        Ok(Projector { graph: self.graph.fork()?, batch: self.batch, dims: self.dims })
    }

    /// Per-frame projections of `batch` new features ([batch, C]).
    ///
    /// # Errors
    /// [`Error::Run`] on a wrong input length or a tract failure.
    pub fn project(&mut self, features: &[f32]) -> Result<Vec<FrameCache>> {
        let TemporalDims { feat, .. } = self.dims;
        let name = self.graph.name();
        check_len(name, "feature", features.len(), self.batch * feat)?;
        let outs = self.graph.run(&[(&[self.batch, feat], features)])?;
        let slices = outs.iter().map(|o| f32_slice(name, o)).collect::<Result<Vec<_>>>()?;
        Ok((0..self.batch)
            .map(|b| {
                let row = |s: &[f32]| {
                    let n = s.len() / self.batch;
                    s[b * n..(b + 1) * n].to_vec()
                };
                FrameCache {
                    x: features[b * feat..(b + 1) * feat].to_vec(),
                    theta: row(slices[0]),
                    phi: row(slices[1]),
                    fx: row(slices[2]),
                    fm: row(slices[3]),
                    rx: row(slices[4]),
                    rm: row(slices[5]),
                }
            })
            .collect())
    }
}

impl Stepper {
    /// Results for `batch` windows, each given as its 16 frames' caches in time order.
    ///
    /// # Errors
    /// [`Error::Run`] when a window does not have 16 frames of the loaded widths, or tract fails.
    pub fn step(&mut self, windows: &[[&FrameCache; SEQ_LEN]]) -> Result<Vec<HeadOutput>> {
        let name = self.graph.name();
        check_len(name, "windows", windows.len(), self.batch)?;
        let TemporalDims { feat, inter, hidden } = self.dims;
        let widths = [feat, inter, inter, hidden, hidden, STATE_LEN, STATE_LEN];
        for (k, buf) in self.scratch.iter_mut().enumerate() {
            buf.clear();
            buf.reserve(self.batch * SEQ_LEN * widths[k]);
        }
        for window in windows {
            for frame in window {
                let parts = [
                    &frame.x,
                    &frame.theta,
                    &frame.phi,
                    &frame.fx,
                    &frame.fm,
                    &frame.rx,
                    &frame.rm,
                ];
                for (k, part) in parts.iter().enumerate() {
                    check_len(name, "cached frame", part.len(), widths[k])?;
                    self.scratch[k].extend_from_slice(part);
                }
            }
        }
        let shapes: Vec<[usize; 3]> = widths.iter().map(|&w| [self.batch, SEQ_LEN, w]).collect();
        let inputs: Vec<(&[usize], &[f32])> =
            shapes.iter().zip(&self.scratch).map(|(s, d)| (s.as_slice(), d.as_slice())).collect();
        let outs = self.graph.run(&inputs)?;
        head_outputs(name, &outs, self.batch)
    }
}

/// The backbone's file in a model directory: `backbone.int8.onnx` or `backbone.onnx`.
pub fn backbone_file(int8: bool) -> &'static str {
    if int8 {
        "backbone.int8.onnx"
    } else {
        "backbone.onnx"
    }
}

/// Everything the daemon runs, loaded from one model directory (`models/run convert.py`):
/// `backbone.onnx` (or `backbone.int8.onnx`), `temporal_frame.onnx`, `temporal_step.onnx` and
/// `model.json`, for one person per call.
pub struct Bundle {
    pub backbone: Backbone,
    pub streaming: Streaming,
    /// `model.json`'s `model_id`; carried in every message.
    pub model_id: String,
    /// False when `model.json` says the weights are random (the bundled test models).
    pub trained: bool,
}

impl Bundle {
    /// # Errors
    /// See [`Error`]: a missing or unusable graph, graphs of different widths, or a missing
    /// or malformed `model.json`.
    pub fn load(dir: &Path, int8: bool) -> Result<Self> {
        let backbone = Backbone::load(&dir.join(backbone_file(int8)), 1)?;
        let streaming =
            Streaming::load(&dir.join("temporal_frame.onnx"), &dir.join("temporal_step.onnx"), 1)?;
        if backbone.feature_len() != streaming.dims().feat {
            return Err(Error::Mismatch {
                dir: dir.to_path_buf(),
                backbone: backbone.feature_len(),
                temporal: streaming.dims().feat,
            });
        }
        let Manifest { model_id, trained } = Manifest::load(&dir.join("model.json"))?;
        Ok(Bundle { backbone, streaming, model_id, trained })
    }
}
