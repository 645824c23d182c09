//! Where the graphs run (`model.device`): the CPU, or an NVIDIA GPU through tract's CUDA
//! runtime (tract-cuda, cargo feature `cuda` for CUDA 13 or `cuda12` for JetPack 6).
//!
//! tract-cuda loads the CUDA libraries when it first runs, and panics in `prepare` when the
//! toolkit's headers are missing. So the choice is made once at start-up, after a check of
//! everything the GPU path needs: the driver, the four libraries and the headers. `cuda` turns a
//! failed check into one start-up error that names what is missing and the package that provides
//! it; `auto` runs on the CPU instead and says why.

use std::fmt;

/// What `model.device` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    #[default]
    Cpu,
    Cuda,
    /// The GPU when the check passes, the CPU otherwise.
    Auto,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::Auto => "auto",
        })
    }
}

/// Where the graphs of this process run, once [`select`] decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    #[default]
    Cpu,
    Cuda,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Target::Cpu => "cpu",
            Target::Cuda => "cuda",
        })
    }
}

/// Whether this binary has tract's CUDA runtime (feature `cuda` or `cuda12`).
pub const CUDA_BUILT: bool = cfg!(any(feature = "cuda", feature = "cuda12"));

/// `model.device = "cuda"` on a machine or build where CUDA cannot run.
#[derive(Debug, thiserror::Error)]
#[error("model.device = \"cuda\": {0}")]
pub struct Unusable(pub String);

/// Decides where the graphs run: `cpu` always works; `cuda` checks the GPU path and fails
/// with what is missing; `auto` takes the GPU when the check passes and the CPU otherwise,
/// with a warning that says why.
///
/// # Errors
/// [`Unusable`] for `cuda` when the build or the machine cannot run it.
pub fn select(device: Device) -> Result<Target, Unusable> {
    match device {
        Device::Cpu => Ok(Target::Cpu),
        Device::Cuda => cuda_usable()
            .map(|()| Target::Cuda)
            .map_err(|why| Unusable(format!("{why}. {OTHERWISE}"))),
        Device::Auto => match cuda_usable() {
            Ok(()) => {
                tracing::info!("model.device = auto: the GPU is usable; the graphs run on it.");
                Ok(Target::Cuda)
            }
            Err(why) => {
                tracing::warn!(
                    "model.device = auto: running on the CPU. CUDA is not usable: {why}"
                );
                Ok(Target::Cpu)
            }
        },
    }
}

/// Whether everything the CUDA path needs is here; `Err` says what is not, and the fix.
fn cuda_usable() -> Result<(), String> {
    #[cfg(any(feature = "cuda", feature = "cuda12"))]
    return gpu::check();
    #[cfg(not(any(feature = "cuda", feature = "cuda12")))]
    return Err(NOT_BUILT.into());
}

/// The reason `cuda` cannot run on a binary built without it.
pub const NOT_BUILT: &str = "this smplcast was built without CUDA support. Build it with \
     `cargo build --release --features cuda` (CUDA 13) or `--features cuda12` (CUDA 12, Jetson \
     with JetPack 6; the arm64 .deb is built so)";

/// The other fix for `cuda` where it cannot run.
pub const OTHERWISE: &str = "Or set model.device = \"cpu\" or \"auto\"";

/// A shared library the CUDA path loads, and where it comes from.
#[derive(Clone, Copy, Debug)]
pub struct Library {
    /// File names tried, in order.
    pub names: &'static [&'static str],
    /// What it is and the package that provides it.
    pub package: &'static str,
}

/// The libraries a build for CUDA `major` loads (cudarc's names), with the Debian/Ubuntu
/// packages of NVIDIA's CUDA repository (JetPack installs the same names on a Jetson).
pub fn libraries(major: u32) -> [Library; 5] {
    if major >= 13 {
        [
            Library {
                names: &["libcuda.so.1"],
                package: "the NVIDIA driver (libcuda1, or nvidia-driver)",
            },
            Library { names: &["libcudart.so.13", "libcudart.so"], package: "cuda-cudart-13-0" },
            Library { names: &["libnvrtc.so.13", "libnvrtc.so"], package: "cuda-nvrtc-13-0" },
            Library { names: &["libcublas.so.13", "libcublas.so"], package: "libcublas-13-0" },
            Library { names: &["libcudnn.so.9", "libcudnn.so"], package: "libcudnn9-cuda-13" },
        ]
    } else {
        [
            Library {
                names: &["libcuda.so.1"],
                package: "the NVIDIA driver (on a Jetson: nvidia-l4t-cuda, part of JetPack)",
            },
            Library { names: &["libcudart.so.12", "libcudart.so"], package: "cuda-cudart-12-6" },
            Library { names: &["libnvrtc.so.12", "libnvrtc.so"], package: "cuda-nvrtc-12-6" },
            Library { names: &["libcublas.so.12", "libcublas.so"], package: "libcublas-12-6" },
            Library { names: &["libcudnn.so.9", "libcudnn.so"], package: "libcudnn9-cuda-12" },
        ]
    }
}

/// The libraries of `libs` that `loads` cannot open, as one line each: the first file name
/// tried and the package.
pub fn missing_libraries(libs: &[Library], loads: impl Fn(&str) -> bool) -> Vec<String> {
    libs.iter()
        .filter(|lib| !lib.names.iter().any(|name| loads(name)))
        .map(|lib| format!("{} ({})", lib.names[0], lib.package))
        .collect()
}

/// Whether the dynamic loader finds and opens `name` (dlopen; closed again at once).
pub fn loads(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else { return false };
    // One of the crate's three unsafe blocks (lib.rs denies unsafe code elsewhere).
    // SAFETY: dlopen of a NUL-terminated name; the handle is closed before returning. Loading
    // runs the library's initialisers, which is what tract-cuda would do a moment later.
    #[allow(unsafe_code)]
    unsafe {
        let handle = libc::dlopen(c.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
        if handle.is_null() {
            return false;
        }
        libc::dlclose(handle);
    }
    true
}

/// The CUDA toolkit's headers NVRTC compiles tract's kernels with: `cuda_fp16.h` and CCCL's
/// `cuda/std/cstdint`, looked for where tract-cuda looks (`$CUDA_HOME`, `$CUDA_PATH`,
/// /usr/local/cuda, beside `nvcc` on the PATH; `include/` or `targets/*/include/`).
///
/// # Errors
/// What was looked for, where, and the packages that provide it (`major`: the CUDA release).
pub fn headers(major: u32) -> Result<std::path::PathBuf, String> {
    use std::path::{Path, PathBuf};
    let dev = if major >= 13 { "13-0" } else { "12-6" };
    let fix = format!(
        "install cuda-cudart-dev-{dev} and cuda-cccl-{dev}, or set CUDA_HOME to the toolkit's \
         directory"
    );
    let env = |k: &str| std::env::var_os(k).map(PathBuf::from);
    let nvcc_root = || {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .find(|d| d.join("nvcc").is_file())
            .and_then(|bin| bin.parent().map(Path::to_path_buf))
    };
    let Some(home) = env("CUDA_HOME")
        .or_else(|| env("CUDA_PATH"))
        .or_else(|| Some(PathBuf::from("/usr/local/cuda")).filter(|p| p.exists()))
        .or_else(nvcc_root)
    else {
        return Err(format!(
            "no CUDA toolkit found for the headers tract compiles its kernels with \
             ($CUDA_HOME, $CUDA_PATH, /usr/local/cuda and nvcc on the PATH are all absent): {fix}"
        ));
    };
    let mut includes = vec![home.join("include")];
    if let Ok(targets) = std::fs::read_dir(home.join("targets")) {
        includes.extend(targets.flatten().map(|t| t.path().join("include")));
    }
    let Some(include) = includes.iter().find(|i| i.join("cuda_fp16.h").is_file()) else {
        return Err(format!("no cuda_fp16.h under {}: {fix}", home.display()));
    };
    let cstdint = Path::new("cuda/std/cstdint");
    let cccl = [include.join("cccl"), include.join("libcudacxx/include"), include.clone()];
    if !cccl.iter().any(|d| d.join(cstdint).is_file()) {
        return Err(format!(
            "no CCCL headers (cuda/std/cstdint) under {}: {fix}",
            include.display()
        ));
    }
    Ok(include.clone())
}

#[cfg(any(feature = "cuda", feature = "cuda12"))]
pub(super) mod gpu {
    //! The checks and the `prepare` of tract's CUDA runtime.
    use tract_onnx::prelude::*;

    /// The CUDA release this binary was built for (major).
    pub fn major() -> u32 {
        (tract_cuda::utils::REQUIRED_CUDA_API / 1000).unsigned_abs()
    }

    /// Libraries, then headers, then tract's own check (the driver's version, a device).
    pub fn check() -> Result<(), String> {
        let missing = super::missing_libraries(&super::libraries(major()), super::loads);
        let headers = super::headers(major());
        if !missing.is_empty() || headers.is_err() {
            let mut why = Vec::new();
            if !missing.is_empty() {
                why.push(format!(
                    "the dynamic loader cannot open {}. Install them, or add their directory \
                     to LD_LIBRARY_PATH",
                    missing.join(", ")
                ));
            }
            why.extend(headers.err());
            return Err(format!("{}. This binary is built for CUDA {}.x", why.join("; "), major()));
        }
        let runtime = runtime()?;
        runtime.check().map_err(|e| format!("{e:#}"))
    }

    fn runtime() -> Result<&'static dyn Runtime, String> {
        match runtime_for_name("cuda") {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err("tract's CUDA runtime is not linked into this binary".into()),
            Err(e) => Err(format!("{e:#}")),
        }
    }

    /// The graph prepared on the GPU (tract moves the ops it can run there, the rest stays on
    /// the CPU). The first run on a machine compiles tract's kernels with NVRTC and caches
    /// them under `$XDG_CACHE_HOME/tract` (the unit sets it to its `CacheDirectory=`).
    pub fn prepare(model: TypedModel) -> Result<Box<dyn Runnable>, String> {
        let runtime = runtime()?;
        // tract-cuda panics where it expected its checks to have passed; after ours, a panic
        // left is a broken install, reported as an error rather than a crash.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.prepare(model)))
            .map_err(|panic| {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()));
                format!("tract's CUDA runtime failed: {}", text.unwrap_or_default())
            })?
            .map_err(|e| format!("{e:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_libraries_name_the_file_and_the_package() {
        let libs = libraries(13);
        let none = missing_libraries(&libs, |_| false);
        assert_eq!(none.len(), 5);
        assert_eq!(none[0], "libcuda.so.1 (the NVIDIA driver (libcuda1, or nvidia-driver))");
        assert_eq!(none[4], "libcudnn.so.9 (libcudnn9-cuda-13)");
        // Any one of a library's names will do; only what is absent is listed.
        let some =
            missing_libraries(&libraries(12), |n| n != "libcudnn.so.9" && n != "libcudnn.so");
        assert_eq!(some, ["libcudnn.so.9 (libcudnn9-cuda-12)"]);
        assert!(missing_libraries(&libs, |n| n.ends_with(".so")).len() == 1, "libcuda.so.1 only");
    }

    #[test]
    fn the_c_library_loads_and_a_made_up_one_does_not() {
        assert!(loads("libc.so.6"));
        assert!(!loads("libsmplcast-no-such-library.so.1"));
    }

    #[test]
    fn cpu_is_always_selected_and_auto_falls_back_when_cuda_is_unusable() {
        assert_eq!(select(Device::Cpu).unwrap(), Target::Cpu);
        if cuda_usable().is_err() {
            assert_eq!(select(Device::Auto).unwrap(), Target::Cpu);
            let err = select(Device::Cuda).unwrap_err().to_string();
            assert!(err.starts_with("model.device = \"cuda\": "), "{err}");
            assert!(err.contains("model.device = \"cpu\""), "the fix: {err}");
        }
    }
}
