//! The `smplcast` command line. Thin: parses arguments, sets up logging, runs a subcommand.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use smplcast::model::{Backbone, Streaming};
use smplcast::window::TrackWindow;
use smplcast::{smpl, subscribe, synthetic};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(version, about = "Streams 3D human pose and shape (MPS-Net → SMPL) from cameras")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the model on the built-in synthetic source and prints one summary line per second.
    Demo {
        /// Model directory (from `models/run convert.py`); default: models/generated/full when
        /// it exists, else the bundled narrow test model.
        #[arg(long)]
        models: Option<PathBuf>,
        /// Use the int8 backbone (backbone.int8.onnx).
        #[arg(long)]
        int8: bool,
        /// Frames to run (0: until interrupted).
        #[arg(long, default_value_t = 100)]
        frames: u64,
    },
    /// Loads a model directory and prints its graphs, precision and widths.
    CheckModels {
        /// Model directory.
        dir: PathBuf,
    },
    /// Subscribes to pose and status messages and prints each as one JSON line.
    Sub {
        /// Broker host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Broker port.
        #[arg(long, default_value_t = 1883)]
        port: u16,
        /// Topic prefix.
        #[arg(long, default_value = "smplcast")]
        prefix: String,
        /// Device id, or `+` for all devices.
        #[arg(long, default_value = "+")]
        device: String,
        /// Exit after this many pose messages.
        #[arg(long)]
        count: Option<u64>,
    },
}

fn sub(settings: subscribe::Settings) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            on_signal.cancel();
        });
        subscribe::run(settings, std::io::stdout().lock(), shutdown).await
    })?;
    Ok(())
}

fn default_models() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let full = root.join("models/generated/full");
    if full.join("backbone.onnx").is_file() {
        full
    } else {
        root.join("models/fixtures/narrow")
    }
}

struct Loaded {
    backbone: Backbone,
    streaming: Streaming,
}

fn load(dir: &Path, int8: bool) -> Result<Loaded> {
    let file = if int8 { "backbone.int8.onnx" } else { "backbone.onnx" };
    let backbone = Backbone::load(&dir.join(file), 1)?;
    let streaming =
        Streaming::load(&dir.join("temporal_frame.onnx"), &dir.join("temporal_step.onnx"), 1)?;
    anyhow::ensure!(
        backbone.feature_len() == streaming.dims().feat,
        "{}: the backbone gives {}-d features but the temporal graphs take {}-d",
        dir.display(),
        backbone.feature_len(),
        streaming.dims().feat
    );
    let manifest = std::fs::read_to_string(dir.join("model.json")).unwrap_or_default();
    if manifest.contains("\"trained\": false") {
        tracing::warn!(dir = %dir.display(), "Model weights are random (untrained): poses are meaningless.");
    }
    tracing::info!(
        dir = %dir.display(),
        backbone = %backbone.precision(),
        feature = backbone.feature_len(),
        "Model loaded."
    );
    Ok(Loaded { backbone, streaming })
}

fn demo(dir: &Path, int8: bool, frames: u64) -> Result<()> {
    let Loaded { mut backbone, mut streaming } = load(dir, int8)?;
    let mut window = TrackWindow::new();
    let mut image = Vec::new();
    let (mut last, mut results, mut bb_time, mut head_time) =
        (Instant::now(), 0u64, Duration::ZERO, Duration::ZERO);
    let mut frame = 0u64;
    while frames == 0 || frame < frames {
        synthetic::crop(frame, &mut image);
        let t0 = Instant::now();
        let feature = backbone.run(&image)?;
        let t1 = Instant::now();
        let cache = streaming.project(&feature)?.remove(0);
        let mut ready: Vec<_> = window.push(frame, cache).into_iter().collect();
        if frames != 0 && frame + 1 == frames {
            ready.extend(window.flush());
        }
        for r in &ready {
            let out = streaming.step(&[r.refs()])?.remove(0);
            let theta = smpl::pose6d_to_axis_angle(&out.pose6d);
            results += 1;
            if last.elapsed() >= Duration::from_secs(1) || frames != 0 && r.frame_id + 1 == frames {
                let n = (frame + 1) as f64;
                println!(
                    "frame {:>5}  result for frame {:>5}  backbone {:6.1} ms  head {:5.2} ms  \
                     root θ [{:+.3} {:+.3} {:+.3}]  β0 {:+.3}  cam s {:.3}",
                    frame,
                    r.frame_id,
                    bb_time.as_secs_f64() * 1e3 / n,
                    head_time.as_secs_f64() * 1e3 / n,
                    theta[0],
                    theta[1],
                    theta[2],
                    out.shape[0],
                    out.cam[0],
                );
                last = Instant::now();
            }
        }
        bb_time += t1 - t0;
        head_time += t1.elapsed();
        frame += 1;
    }
    println!("{frame} frames in, {results} results out");
    anyhow::ensure!(results == frame, "every frame must get one result");
    Ok(())
}

fn check_models(dir: &Path) -> Result<()> {
    let Loaded { backbone, streaming } = load(dir, false)?;
    println!(
        "{}: backbone {} ({}-d features)",
        dir.display(),
        backbone.precision(),
        backbone.feature_len()
    );
    if let Ok(b) = Backbone::load(&dir.join("backbone.int8.onnx"), 1) {
        println!("{}: backbone.int8.onnx {}", dir.display(), b.precision());
    }
    println!("{}: streaming temporal head {:?}", dir.display(), streaming.dims());
    Ok(())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Demo { models, int8, frames } => {
            let dir = models.unwrap_or_else(default_models);
            demo(&dir, int8, frames).with_context(|| format!("demo on {}", dir.display()))
        }
        Command::CheckModels { dir } => check_models(&dir),
        Command::Sub { host, port, prefix, device, count } => {
            sub(subscribe::Settings { host, port, prefix, device, count })
        }
    }
}
