//! The GPU path (`model.device = "cuda"`, tract's CUDA runtime) against the PyTorch vectors of
//! `models/run convert.py --vectors`. The test command builds these (feature `cuda`) but a
//! machine without an NVIDIA GPU cannot run them: they are `#[ignore]`d, and tests/gpu/run.sh
//! runs them with `--ignored` where there is one. The CPU side of `model.device` (the checks,
//! the errors, `auto` falling back) is tested in src/model/device.rs and tests/daemon.rs.
#![cfg(any(feature = "cuda", feature = "cuda12"))]

mod common;

use common::{model_dirs, rel_max_diff, Vectors};
use smplcast::model::{self, Backbone, Device, Target, TemporalHead};

/// Issue 20's goal for the GPU against PyTorch, of each output's scale.
const GPU_REL: f32 = 2e-3;

fn on_gpu<T>(half: bool, load: impl FnOnce() -> T) -> T {
    let target = model::device::select(Device::Cuda).expect("CUDA is usable on this machine");
    model::with_device(target, || model::with_half_floats(half, load))
}

#[test]
#[ignore = "needs an NVIDIA GPU: tests/gpu/run.sh"]
fn backbone_and_head_on_the_gpu_match_pytorch() {
    for dir in model_dirs() {
        let mut v = Vectors::open(&dir);
        let image = v.get("image");
        let feature = v.get("feature").into_raw_vec_and_offset().0;
        let windows = v.get("windows");
        let want: Vec<f32> = v.get("pose6d").into_raw_vec_and_offset().0;
        for half in [false, true] {
            let precision = if half { "f16" } else { "f32" };
            let mut backbone =
                on_gpu(half, || Backbone::load(&dir.join("backbone.onnx"), image.shape()[0]))
                    .expect("load the backbone");
            assert_eq!(backbone.target(), Target::Cuda, "the backbone runs on the GPU");
            let got = backbone.run(image.as_slice().unwrap()).expect("run the backbone");
            let d_backbone = rel_max_diff(&feature, &got);
            let mut head =
                on_gpu(half, || TemporalHead::load(&dir.join("temporal.onnx"), windows.shape()[0]))
                    .expect("load the temporal head");
            let out = head.run(windows.as_slice().unwrap()).expect("run the head");
            let pose: Vec<f32> = out.iter().flat_map(|o| o.pose6d).collect();
            let d_head = rel_max_diff(&want, &pose);
            eprintln!(
                "figure: {} {precision} on the GPU against PyTorch: backbone {d_backbone:.2e}, \
                 head pose6d {d_head:.2e} (max |diff| / scale)",
                dir.display()
            );
            if !half {
                assert!(d_backbone <= GPU_REL && d_head <= GPU_REL, "{}", dir.display());
            }
        }
    }
}
