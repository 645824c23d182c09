//! `smplcast bench`: the real pipeline ([`smplcast::daemon`]) on a chosen model and source,
//! measured. For each precision × thread count it runs the daemon twice on the embedded broker
//! with the demo's subscriber ([`crate::cli::demo`]):
//!
//! 1. **throughput**: an unpaced source, nothing dropped. After `warmup` frames, the stage
//!    timers ([`smplcast::telemetry::stats::Stages`], the publisher's hand-off) and the counters are read at
//!    the first and last measured frame: person-frames per second, milliseconds per frame per
//!    stage and the share of the stages that run no model, RSS, bytes per person-frame.
//! 2. **latency**: the source paced at 80 % of that throughput (so no frame waits for another),
//!    every message timed from its frame's capture (`mono_ns`) to its arrival at the
//!    subscriber: p50 / p99, against the goal 7 frames / fps + 1.2 × inference time (a message
//!    waits for 7 frames of lookahead).
//!
//! Everything goes to stdout as a table and, with `--json`, to a file that later runs can be
//! compared with; `--svg` draws the per-stage breakdown. The runs share one process (and
//! tract's executor is process-wide), so they run one after another, never side by side.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::demo::{self, Received};
use smplcast::config::{ModelConfig, People, SourceConfig};
use smplcast::daemon;
use smplcast::telemetry::stats::Counters;

/// The flags of `smplcast bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model directory; default as for `demo`.
    #[arg(long)]
    models: Option<PathBuf>,
    /// Precisions, comma-separated: f32, f16 (the f32 graphs in half precision: fast only on
    /// ARMv8.2 cores; emulated, slowly, elsewhere), int8 (the int8 backbone).
    #[arg(long, value_delimiter = ',', default_value = "f32,int8")]
    precision: Vec<String>,
    /// Thread counts for the models' matrix products (per worker), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    threads: Vec<usize>,
    /// Inference worker counts (`pipeline.workers`), comma-separated: frames in parallel.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    workers: Vec<usize>,
    /// Where the graphs run (`model.device`), comma-separated: cpu, cuda, auto. With `--only`,
    /// the first.
    #[arg(long, value_delimiter = ',', default_value = "cpu", value_parser = parse_device)]
    device: Vec<smplcast::model::Device>,
    /// Frames measured per run.
    #[arg(long, default_value_t = 60)]
    frames: u64,
    /// Frames run first, not measured.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// A directory of images, or a video file (build with `--features gstreamer`), looped,
    /// instead of the synthetic 640×480 pattern; with `--only source`, what to read.
    #[arg(long)]
    source: Option<PathBuf>,
    /// Find people with this detector (models/nanodet/nanodet.onnx, or BlazePose's
    /// pose_detection.onnx) instead of the whole frame; with `--only detector`, the detector
    /// to run (default models/nanodet/nanodet.onnx).
    #[arg(long)]
    detector: Option<PathBuf>,
    /// Skip the paced latency runs.
    #[arg(long)]
    no_latency: bool,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the per-stage breakdown as an SVG bar chart to this file.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Run only this model part, `--iterations` times, on fixed inputs, and print the time of
    /// each run (for profilers and instruction counts; the first --precision is used).
    #[arg(long, value_enum)]
    only: Option<Part>,
    /// With `--only detector`: NanoDet's input sizes, comma-separated (default: the daemon's,
    /// `person.detector_sizes`).
    #[arg(long, value_delimiter = ',')]
    detector_sizes: Vec<usize>,
    /// With `--only detector`: the frame's size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x480", value_parser = parse_size)]
    frame: (u32, u32),
    /// Runs of `--only`'s part (0: load it only).
    #[arg(long, default_value_t = 10)]
    iterations: u64,
    /// With `--only`: the time per tract op kind instead, after one unprofiled run.
    #[arg(long, requires = "only")]
    profile: bool,
    /// With `--only backbone`: crops per call, comma-separated. Each size gets a graph of its
    /// own; the sizes take turns, one call each per iteration, so that they are compared side
    /// by side, and the median time per crop is printed.
    #[arg(long, value_delimiter = ',', default_value = "1", requires = "only")]
    batch: Vec<usize>,
}

/// `smplcast bench`: the pipeline runs, or one part with `--only`.
///
/// # Errors
/// See [`run`] and [`part_loop`]; files that cannot be written.
pub fn main(args: Args) -> Result<()> {
    let models = args.models.unwrap_or_else(demo::default_models);
    if let Some(part) = args.only {
        let precision = args.precision.first().map_or("f32", String::as_str);
        ensure!(
            PRECISIONS.contains(&precision),
            "--precision {precision:?}: expected {PRECISIONS:?}"
        );
        let int8 = precision == "int8";
        smplcast::model::set_half_floats(precision == "f16");
        smplcast::model::set_threads(args.threads.first().copied().unwrap_or(1))?;
        let detector = args
            .detector
            .clone()
            .unwrap_or_else(|| PathBuf::from(smplcast::config::DEFAULT_DETECTOR));
        let dir = if part == Part::Detector { detector.as_path() } else { models.as_path() };
        let mut detection = smplcast::detect::nanodet::Settings::default();
        if !args.detector_sizes.is_empty() {
            detection.sizes = args.detector_sizes.clone();
        }
        if part == Part::Source {
            let path =
                args.source.as_deref().context("--only source needs --source FILE or DIR")?;
            let (what, ms) = source_loop(path, args.iterations)?;
            let shown: Vec<String> = ms.iter().map(|m| format!("{m:.2}")).collect();
            let mut sorted = ms.clone();
            sorted.sort_by(f64::total_cmp);
            println!(
                "Source {what}: {:.2} ms per frame (median); ms per frame [{}]",
                percentile(&sorted, 0.5),
                shown.join(", ")
            );
            return Ok(());
        }
        let device = args.device.first().copied().unwrap_or_default();
        let target = smplcast::model::device::select(device)?;
        if args.batch != [1] {
            ensure!(part == Part::Backbone, "--batch is for --only backbone");
            let runs = smplcast::model::with_device(target, || {
                batch_loop(dir, int8, &args.batch, args.iterations)
            })?;
            for (batch, mut ms) in runs {
                let shown: Vec<String> = ms.iter().map(|m| format!("{m:.1}")).collect();
                ms.sort_by(f64::total_cmp);
                let per_crop = percentile(&ms, 0.5) / batch as f64;
                println!(
                    "Backbone ({precision}, {target}) batch {batch}: {per_crop:.2} ms per crop \
                     (median); ms per run [{}]",
                    shown.join(", ")
                );
            }
            return Ok(());
        }
        let runs = smplcast::model::with_device(target, || {
            if part == Part::Detector {
                detector_loop(dir, detection, args.frame, args.iterations, args.profile)
            } else {
                part_loop(dir, part, int8, args.iterations, args.profile)
            }
        })?;
        if args.profile {
            print!("{}", render_profile(&runs.ops, args.iterations.max(1)));
        } else {
            let shown: Vec<String> = runs.ms.iter().map(|m| format!("{m:.2}")).collect();
            println!("{part:?} ({precision}, {target}): ms per run [{}]", shown.join(", "));
        }
        println!("RSS after the runs: {:.1} MB", runs.rss_mb);
        println!("Loaded and prepared in {:.2} s", runs.load_s);
        return Ok(());
    }
    let opts = BenchOptions {
        models,
        precisions: args.precision,
        threads: args.threads,
        workers: args.workers,
        devices: args.device,
        frames: args.frames,
        warmup: args.warmup,
        source: args.source,
        detector: args.detector,
        no_latency: args.no_latency,
    };
    let report = run(&opts)?;
    print!("{}", render(&report));
    if let Some(file) = args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(&file, text + "\n")
            .with_context(|| format!("writing {}", file.display()))?;
    }
    if let Some(file) = args.svg {
        std::fs::write(&file, svg(&report))
            .with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(())
}

/// What `smplcast bench` runs; see [`Args`].
#[derive(Clone, Debug, Serialize)]
pub struct BenchOptions {
    pub models: PathBuf,
    /// Backbone precisions to run: "f32", "int8".
    pub precisions: Vec<String>,
    /// Thread counts for the models' matrix products.
    pub threads: Vec<usize>,
    /// Inference worker counts.
    pub workers: Vec<usize>,
    /// `model.device` of the runs.
    pub devices: Vec<smplcast::model::Device>,
    /// Frames measured, after `warmup` frames.
    pub frames: u64,
    pub warmup: u64,
    /// `None`: the synthetic 640×480 pattern; else a directory of images (looped).
    pub source: Option<PathBuf>,
    /// The person detector; `None`: the whole frame is one person.
    pub detector: Option<PathBuf>,
    /// Skip the paced latency run.
    pub no_latency: bool,
}

/// One stage's cost over the measured frames.
#[derive(Clone, Debug, Serialize)]
pub struct StageFigure {
    pub name: &'static str,
    /// Runs a model (detector, backbone, temporal head).
    pub model: bool,
    pub ms_per_call: f64,
    pub calls_per_frame: f64,
    pub ms_per_frame: f64,
    /// Of the sum over stages.
    pub share: f64,
}

/// The paced run.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub fps: f64,
    pub messages: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// 7 frames / fps + 1.2 × the inference time per frame of the throughput run.
    pub goal_ms: f64,
    /// The inference time per frame in this paced run: longer than unpaced, as the caches
    /// cool between frames.
    pub inference_ms: f64,
    /// 7 frames / fps + 1.2 × `inference_ms`.
    pub goal_own_ms: f64,
}

/// One precision × thread count × worker count.
#[derive(Clone, Debug, Serialize)]
pub struct RunFigure {
    /// Where the backbone ran.
    pub device: smplcast::model::Target,
    pub precision: String,
    pub threads: usize,
    pub workers: usize,
    pub frames: u64,
    pub seconds: f64,
    pub people_per_frame: f64,
    pub person_frames_per_s: f64,
    /// Wall time per frame in the throughput run (the slowest stage's thread sets it).
    pub frame_ms: f64,
    /// Detector + backbone + projection per frame (what bounds throughput).
    pub inference_ms: f64,
    pub stages: Vec<StageFigure>,
    /// Share of the stage time spent outside the models.
    pub non_model_share: f64,
    pub rss_mb_steady: f64,
    pub rss_mb_max: f64,
    pub bytes_per_person_frame: f64,
    pub latency: Option<Latency>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub smplcast: &'static str,
    pub tract: &'static str,
    pub date_utc: String,
    pub machine: Machine,
    pub options: BenchOptions,
    pub runs: Vec<RunFigure>,
    /// Throughput of each run ÷ the first run's (f32 or the first precision, 1 thread).
    pub throughput_ratios: Vec<(String, f64)>,
    /// Each run on N > 1 workers against the same precision and threads on 1 worker.
    pub scaling: Vec<Scaling>,
}

/// What N workers give over one.
#[derive(Clone, Debug, Serialize)]
pub struct Scaling {
    pub run: String,
    pub workers: usize,
    /// Throughput ÷ (N × the 1-worker throughput): 1 is perfect scaling.
    pub efficiency: f64,
    /// (Steady RSS − the 1-worker run's) ÷ (N − 1).
    pub rss_mb_per_extra_worker: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub arch: &'static str,
    pub cpu: String,
    pub cpus: usize,
}

impl Machine {
    fn here() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Machine { arch: std::env::consts::ARCH, cpu, cpus }
    }
}

/// What `--precision` takes: the f32 graphs, the same in half precision, the int8 backbone.
const PRECISIONS: [&str; 3] = ["f32", "f16", "int8"];

/// Runs every precision × thread count and returns the report.
///
/// # Errors
/// A model or source that does not load, the embedded broker, or a run that stalls.
pub fn run(opts: &BenchOptions) -> Result<Report> {
    ensure!(opts.frames >= 10, "--frames must be at least 10");
    let port = crate::cli::broker::start().context("starting the embedded MQTT broker")?.mqtt;
    let mut runs = Vec::new();
    let settings = opts.devices.iter().flat_map(|&device| {
        opts.precisions.iter().flat_map(move |precision| {
            opts.threads.iter().flat_map(move |&threads| {
                opts.workers.iter().map(move |&workers| Setting {
                    device,
                    precision,
                    threads,
                    workers,
                })
            })
        })
    });
    for setting in settings {
        let Setting { precision, workers, .. } = setting;
        ensure!(
            PRECISIONS.contains(&precision),
            "--precision {precision:?}: expected {PRECISIONS:?}"
        );
        ensure!((1..=64).contains(&workers), "--workers {workers}: expected 1 to 64");
        eprintln!("bench: {}: throughput …", setting.name());
        let mut figure = throughput(opts, &setting, port)?;
        // A video plays at its own rate or unpaced: the latency run's pace cannot be set.
        let video = opts.source.as_deref().is_some_and(|p| !p.is_dir());
        if video && !opts.no_latency {
            eprintln!("bench: {}: no latency run: a video file cannot be paced at a chosen rate (use a directory of images)", setting.name());
        }
        if !opts.no_latency && !video {
            let fps = (0.8 * figure.person_frames_per_s / figure.people_per_frame.max(1.0))
                .clamp(0.5, 1000.0);
            eprintln!("bench: {}: latency at {fps:.1} fps …", setting.name());
            figure.latency = Some(latency(opts, &setting, port, fps, &figure)?);
        }
        runs.push(figure);
    }
    smplcast::model::set_threads(1)?;
    let base = runs.first().map_or(1.0, |r| r.person_frames_per_s.max(1e-9));
    let throughput_ratios =
        runs.iter().map(|r| (run_name(r), r.person_frames_per_s / base)).collect();
    let scaling = scaling(&runs);
    Ok(Report {
        smplcast: env!("CARGO_PKG_VERSION"),
        tract: "0.23.9",
        date_utc: utc_now(),
        machine: Machine::here(),
        options: opts.clone(),
        runs,
        throughput_ratios,
        scaling,
    })
}

/// One run's settings.
struct Setting<'a> {
    device: smplcast::model::Device,
    precision: &'a str,
    threads: usize,
    workers: usize,
}

impl Setting<'_> {
    fn name(&self) -> String {
        format!(
            "{}, {}, {} thread(s), {} worker(s)",
            self.device, self.precision, self.threads, self.workers
        )
    }
}

fn run_name(r: &RunFigure) -> String {
    format!("{} {} {}t {}w", r.device, r.precision, r.threads, r.workers)
}

/// Each run on N > 1 workers against its 1-worker run (same precision and threads), if any.
fn scaling(runs: &[RunFigure]) -> Vec<Scaling> {
    runs.iter()
        .filter(|r| r.workers > 1)
        .filter_map(|r| {
            let one = runs.iter().find(|o| {
                o.workers == 1
                    && o.device == r.device
                    && o.precision == r.precision
                    && o.threads == r.threads
            })?;
            let n = r.workers as f64;
            Some(Scaling {
                run: run_name(r),
                workers: r.workers,
                efficiency: r.person_frames_per_s / (n * one.person_frames_per_s.max(1e-9)),
                rss_mb_per_extra_worker: (r.rss_mb_steady - one.rss_mb_steady) / (n - 1.0),
            })
        })
        .collect()
}

fn utc_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// The daemon's configuration for one run.
fn config(opts: &BenchOptions, setting: &Setting, port: u16, fps: f64) -> smplcast::config::Config {
    let Setting { device, precision, threads, workers } = *setting;
    let source = match &opts.source {
        None => SourceConfig::Synthetic { width: 640, height: 480, fps, frames: None },
        Some(path) => source_config(path, fps),
    };
    let people = match &opts.detector {
        None => People::Region(None),
        Some(d) => People::detected(d.clone()),
    };
    let model = ModelConfig {
        dir: opts.models.clone(),
        int8: precision == "int8",
        // f16: the f32 graphs loaded in half precision ([model] half_floats).
        half_floats: precision == "f16",
        threads,
        device,
        smpl_file: None,
    };
    let mut config = smplcast::config::Config::builtin(
        "bench",
        source,
        model,
        people,
        Some(crate::cli::broker::client(port)),
    );
    config.workers = workers;
    config
}

/// Counters at one instant.
#[derive(Clone, Copy)]
struct Snapshot {
    at: Instant,
    frames: u64,
    people: u64,
    bytes: u64,
    people_out: u64,
    stages: [(u64, u64); 10],
}

impl Snapshot {
    fn take(c: &Counters, m: &smplcast::telemetry::stats::MqttCounters) -> Self {
        let mut stages = [(0, 0); 10];
        for (slot, (_, stage, _)) in stages.iter_mut().zip(c.stages.all()) {
            *slot = stage.totals();
        }
        stages[9] = m.handoff.totals();
        Snapshot {
            at: Instant::now(),
            frames: c.frames_inferred.load(Ordering::Relaxed),
            people: c.people_inferred.load(Ordering::Relaxed),
            bytes: c.bytes_out.load(Ordering::Relaxed),
            people_out: c.people_out.load(Ordering::Relaxed),
            stages,
        }
    }

    /// Inference (the detector, the backbone and the head's per-frame projection) per frame
    /// between `self` and a later snapshot, in ms.
    fn inference_ms_until(&self, later: &Snapshot) -> f64 {
        let frames = later.frames.saturating_sub(self.frames).max(1) as f64;
        let ns: u64 = stage_names()
            .iter()
            .zip(self.stages.iter().zip(&later.stages))
            .filter(|((name, _), _)| matches!(*name, "detect" | "backbone" | "project"))
            .map(|(_, (a, b))| b.0.saturating_sub(a.0))
            .sum();
        ns as f64 / frames / 1e6
    }
}

/// Stage names and whether they run a model, in [`Snapshot::stages`] order.
fn stage_names() -> [(&'static str, bool); 10] {
    let c = Counters::default();
    let mut names = [("publish", false); 10];
    for (slot, (name, _, model)) in names.iter_mut().zip(c.stages.all()) {
        *slot = (name, model);
    }
    names
}

/// This process's resident memory, in MiB.
fn rss_mb() -> f64 {
    smplcast::telemetry::memory::rss_bytes().map_or(0.0, |b| b as f64 / (1024.0 * 1024.0))
}

/// A daemon run until `until` frames are inferred, with the subscriber watching; calls `tick`
/// every 20 ms with the counters, and returns the subscriber's record.
fn drive(
    config: &smplcast::config::Config,
    until: u64,
    mut tick: impl FnMut(&Counters, &smplcast::telemetry::stats::MqttCounters),
) -> Result<Arc<Received>> {
    let received = Arc::new(Received { record: true, ..Received::default() });
    let stop_watch = CancellationToken::new();
    let settings = config.mqtt.as_ref().map(|m| m.settings.clone()).context("no broker")?;
    let (watcher, _) = demo::spawn_watch(settings, received.clone(), stop_watch.clone())?;
    let running = daemon::start(config)?;
    let (counters, mqtt) = running.counters();
    let started = Instant::now();
    let mut last_progress = (Instant::now(), 0);
    while counters.frames_inferred.load(Ordering::Relaxed) < until {
        tick(&counters, &mqtt);
        let frames = counters.frames_inferred.load(Ordering::Relaxed);
        if frames != last_progress.1 {
            last_progress = (Instant::now(), frames);
        }
        if last_progress.0.elapsed() > Duration::from_secs(60) {
            running.stop();
            let _ = running.wait();
            anyhow::bail!("no frame inferred for 60 s after {frames} ({:?})", started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tick(&counters, &mqtt);
    running.stop();
    let summary = running.wait()?;
    // The last messages on their way to the subscriber.
    let deadline = Instant::now() + Duration::from_secs(2);
    while received.messages.load(Ordering::Relaxed) < summary.messages_out
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop_watch.cancel();
    let _ = watcher.join();
    Ok(received)
}

fn throughput(opts: &BenchOptions, setting: &Setting, port: u16) -> Result<RunFigure> {
    let config = config(opts, setting, port, 0.0);
    let (warmup, end) = (opts.warmup, opts.warmup + opts.frames);
    let mut first: Option<Snapshot> = None;
    let mut last: Option<Snapshot> = None;
    let mut rss = Vec::new();
    drive(&config, end, |c, m| {
        let frames = c.frames_inferred.load(Ordering::Relaxed);
        if first.is_none() && frames >= warmup {
            first = Some(Snapshot::take(c, m));
        }
        if first.is_some() {
            rss.push(rss_mb());
        }
        if last.is_none() && frames >= end {
            last = Some(Snapshot::take(c, m));
        }
    })?;
    let (a, b) = (first.context("no warm-up")?, last.context("no end")?);
    let frames = (b.frames - a.frames).max(1);
    let seconds = (b.at - a.at).as_secs_f64().max(1e-9);
    let people = (b.people - a.people) as f64;
    let mut stages: Vec<StageFigure> = stage_names()
        .iter()
        .enumerate()
        .map(|(i, &(name, model))| {
            let ns = b.stages[i].0.saturating_sub(a.stages[i].0) as f64;
            let calls = b.stages[i].1.saturating_sub(a.stages[i].1) as f64;
            StageFigure {
                name,
                model,
                ms_per_call: if calls > 0.0 { ns / calls / 1e6 } else { 0.0 },
                calls_per_frame: calls / frames as f64,
                ms_per_frame: ns / frames as f64 / 1e6,
                share: 0.0,
            }
        })
        .collect();
    let total: f64 = stages.iter().map(|s| s.ms_per_frame).sum::<f64>().max(1e-12);
    for s in &mut stages {
        s.share = s.ms_per_frame / total;
    }
    let non_model_share = stages.iter().filter(|s| !s.model).map(|s| s.share).sum();
    let inference_ms = a.inference_ms_until(&b);
    rss.sort_by(f64::total_cmp);
    Ok(RunFigure {
        // What the daemon's start-up chose (auto: the GPU or the CPU), asked again.
        device: smplcast::model::device::select(setting.device)?,
        precision: setting.precision.to_string(),
        threads: setting.threads,
        workers: setting.workers,
        frames,
        seconds,
        people_per_frame: people / frames as f64,
        person_frames_per_s: people / seconds,
        frame_ms: seconds * 1e3 / frames as f64,
        inference_ms,
        stages,
        non_model_share,
        rss_mb_steady: percentile(&rss, 0.5),
        rss_mb_max: rss.last().copied().unwrap_or(0.0),
        bytes_per_person_frame: (b.bytes - a.bytes) as f64
            / ((b.people_out - a.people_out).max(1)) as f64,
        latency: None,
    })
}

fn latency(
    opts: &BenchOptions,
    setting: &Setting,
    port: u16,
    fps: f64,
    throughput: &RunFigure,
) -> Result<Latency> {
    let config = config(opts, setting, port, fps);
    let (warmup, end) = (opts.warmup, opts.warmup + opts.frames);
    let (mut first, mut last) = (None, None);
    let received = drive(&config, end, |c, m| {
        let frames = c.frames_inferred.load(Ordering::Relaxed);
        if first.is_none() && frames >= warmup {
            first = Some(Snapshot::take(c, m));
        }
        if last.is_none() && frames >= end {
            last = Some(Snapshot::take(c, m));
        }
    })?;
    let (a, b) = (first.context("no warm-up")?, last.context("no end")?);
    let paced_inference_ms = a.inference_ms_until(&b);
    let mut ms: Vec<f64> = received
        .latencies
        .lock()
        .map_err(|_| anyhow::anyhow!("subscriber record poisoned"))?
        .iter()
        .filter(|(frame, _)| *frame >= opts.warmup)
        .map(|(_, ms)| *ms)
        .collect();
    ensure!(!ms.is_empty(), "the subscriber received no message after the warm-up");
    ms.sort_by(f64::total_cmp);
    Ok(Latency {
        fps,
        messages: ms.len(),
        p50_ms: percentile(&ms, 0.5),
        p99_ms: percentile(&ms, 0.99),
        max_ms: ms.last().copied().unwrap_or(0.0),
        goal_ms: 7.0 * 1e3 / fps + 1.2 * throughput.inference_ms,
        inference_ms: paced_inference_ms,
        goal_own_ms: 7.0 * 1e3 / fps + 1.2 * paced_inference_ms,
    })
}

/// Linear interpolation between closest ranks; `sorted` ascending.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The report as text: one table per run, then the ratios.
pub fn render(report: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let m = &report.machine;
    let _ = writeln!(
        out,
        "smplcast {} bench, tract {}, {} ({}, {} CPUs), {}",
        report.smplcast, report.tract, m.cpu, m.arch, m.cpus, report.date_utc
    );
    for r in &report.runs {
        let _ = writeln!(
            out,
            "\n{} backbone on the {}, {} thread(s), {} worker(s): {:.2} person-frames/s, \
             {:.1} ms/frame, {:.2} people/frame, RSS {:.0} MB (max {:.0}), {:.0} B per \
             person-frame",
            r.precision,
            r.device,
            r.threads,
            r.workers,
            r.person_frames_per_s,
            r.frame_ms,
            r.people_per_frame,
            r.rss_mb_steady,
            r.rss_mb_max,
            r.bytes_per_person_frame
        );
        let _ = writeln!(
            out,
            "  {:<11} {:>10} {:>9} {:>10} {:>7}",
            "stage", "ms/call", "calls/fr", "ms/frame", "share"
        );
        for s in &r.stages {
            let _ = writeln!(
                out,
                "  {:<11} {:>10.3} {:>9.2} {:>10.3} {:>6.2}%{}",
                s.name,
                s.ms_per_call,
                s.calls_per_frame,
                s.ms_per_frame,
                s.share * 100.0,
                if s.model { "  model" } else { "" }
            );
        }
        let _ = writeln!(
            out,
            "  outside the models: {:.2}% of the stage time",
            r.non_model_share * 100.0
        );
        if let Some(l) = &r.latency {
            let _ = writeln!(
                out,
                "  latency capture → subscriber at {:.1} fps: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
                 ({} messages); goal 7/fps + 1.2 × inference = {:.1} ms: {}; with this run's \
                 own inference ({:.1} ms a frame) {:.1} ms: {}",
                l.fps,
                l.p50_ms,
                l.p99_ms,
                l.max_ms,
                l.messages,
                l.goal_ms,
                if l.p99_ms <= l.goal_ms { "met (p99)" } else { "NOT met (p99)" },
                l.inference_ms,
                l.goal_own_ms,
                if l.p99_ms <= l.goal_own_ms { "met (p99)" } else { "NOT met (p99)" }
            );
        }
    }
    if report.runs.len() > 1 {
        let _ = writeln!(out, "\nthroughput ÷ the first run:");
        for (name, ratio) in &report.throughput_ratios {
            let _ = writeln!(out, "  {name:<15} {ratio:.2}");
        }
    }
    if !report.scaling.is_empty() {
        let _ = writeln!(out, "\nworkers: throughput ÷ (N × 1 worker's), RSS per extra worker:");
        for s in &report.scaling {
            let _ = writeln!(
                out,
                "  {:<15} {:.2}  {:+.1} MB",
                s.run, s.efficiency, s.rss_mb_per_extra_worker
            );
        }
    }
    out
}

/// The per-stage breakdown as an SVG: one horizontal bar per run, ms per frame by stage.
pub fn svg(report: &Report) -> String {
    use std::fmt::Write;
    const COLOURS: [&str; 10] = [
        "#8c8c8c", "#e6550d", "#fdae6b", "#bdbdbd", "#3182bd", "#6baed6", "#31a354", "#a1d99b",
        "#756bb1", "#636363",
    ];
    let (left, width, bar, gap) = (150.0, 600.0, 28.0, 14.0);
    let longest = report
        .runs
        .iter()
        .map(|r| r.stages.iter().map(|s| s.ms_per_frame).sum::<f64>())
        .fold(1e-9, f64::max);
    let scale = width / longest;
    let height = 60.0 + report.runs.len() as f64 * (bar + gap) + 40.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="12">"#,
        w = left + width + 120.0
    );
    let _ = writeln!(
        out,
        r#"<text x="10" y="20" font-size="14">smplcast bench: ms per frame by stage ({}, {} CPUs, {})</text>"#,
        xml(&report.machine.cpu),
        report.machine.cpus,
        report.date_utc
    );
    for (i, r) in report.runs.iter().enumerate() {
        let y = 40.0 + i as f64 * (bar + gap);
        let _ = writeln!(
            out,
            r#"<text x="10" y="{:.1}">{}: {:.1} ms</text>"#,
            y + bar * 0.65,
            run_name(r),
            r.stages.iter().map(|s| s.ms_per_frame).sum::<f64>()
        );
        let mut x = left;
        for (k, s) in r.stages.iter().enumerate() {
            let w = s.ms_per_frame * scale;
            let _ = writeln!(
                out,
                r#"<rect x="{x:.2}" y="{y:.1}" width="{w:.2}" height="{bar}" fill="{}"><title>{}: {:.3} ms ({:.1}%)</title></rect>"#,
                COLOURS[k % COLOURS.len()],
                s.name,
                s.ms_per_frame,
                s.share * 100.0
            );
            x += w;
        }
    }
    let legend_y = 50.0 + report.runs.len() as f64 * (bar + gap);
    if let Some(r) = report.runs.first() {
        for (k, s) in r.stages.iter().enumerate() {
            let x = 10.0 + k as f64 * 85.0;
            let _ = writeln!(
                out,
                r#"<rect x="{x}" y="{legend_y}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{}</text>"#,
                COLOURS[k % COLOURS.len()],
                x + 14.0,
                legend_y + 10.0,
                s.name
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 1.0), 5.0);
        assert!((percentile(&v, 0.99) - 4.96).abs() < 1e-12);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}

/// One model part, for `smplcast bench --only`: run alone in a loop on fixed inputs, to time
/// it or to count its instructions (`scripts/insn-count.sh`: valgrind on x86, qemu on aarch64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// `backbone.onnx` (or `.int8.onnx` with `--precision int8`).
    Backbone,
    /// The temporal head's per-frame projection (`temporal_frame.onnx`).
    Project,
    /// The temporal head's step over a 16-frame window (`temporal_step.onnx`).
    Step,
    /// The full-window temporal head (`temporal.onnx`), for comparison with project + step.
    Head,
    /// The person detector (`--detector`, default models/nanodet/nanodet.onnx) on a 640 × 480
    /// frame at its default input size: sampling, graph and decoding (f32 whatever
    /// `--precision`: the detector is a float graph).
    Detector,
    /// The source alone (`--source` FILE or DIR, read unpaced and looped): a frame read
    /// (a video's demuxing, decoding and appsink copy; an image's decoding) and the backbone's
    /// crop sampled from it, per frame. No model runs.
    Source,
}

/// What [`part_loop`] measured.
pub struct PartRuns {
    /// Milliseconds of each run.
    pub ms: Vec<f64>,
    /// The op profile of the runs (empty unless asked for).
    pub ops: smplcast::model::OpProfile,
    /// This process's RSS after the runs, with the part still loaded, in MB.
    pub rss_mb: f64,
    /// Seconds to load and prepare the part (on a GPU: the kernels' compile or cache).
    pub load_s: f64,
}

/// Loads `part` from `dir` (the detector's file for [`Part::Detector`]) and runs it `iterations` times, timing each run. Inputs are fixed
/// pseudo-random values, the same on every machine. With `profile`, one more run goes first,
/// and the op profile of the timed runs is recorded.
///
/// # Errors
/// A graph that does not load or run.
pub fn part_loop(
    dir: &std::path::Path,
    part: Part,
    int8: bool,
    iterations: u64,
    profile: bool,
) -> Result<PartRuns> {
    use smplcast::model::{Backbone, Streaming, TemporalHead, IMAGE_SIZE, SEQ_LEN};
    let mut seed = NOISE_SEED;
    let mut noise = |n: usize| noise(&mut seed, n);
    let loading = Instant::now();
    let time = |f: &mut dyn FnMut() -> Result<()>| -> Result<PartRuns> {
        let load_s = loading.elapsed().as_secs_f64();
        // As the daemon does after loading, so that the loop's RSS is the part's steady one.
        smplcast::telemetry::memory::release_freed();
        if profile {
            f()?;
            smplcast::model::profile_ops(true);
        }
        let ms = (0..iterations)
            .map(|_| {
                let t0 = Instant::now();
                f()?;
                Ok(t0.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_>>();
        let ops = smplcast::model::profile_ops(false);
        Ok(PartRuns { ms: ms?, ops, rss_mb: rss_mb(), load_s })
    };
    let streaming =
        || Streaming::load(&dir.join("temporal_frame.onnx"), &dir.join("temporal_step.onnx"), 1);
    match part {
        Part::Backbone => {
            let file = dir.join(smplcast::model::backbone_file(int8));
            let mut backbone = Backbone::load(&file, 1)?;
            let image = noise(3 * IMAGE_SIZE * IMAGE_SIZE);
            time(&mut || backbone.run(&image).map(drop).map_err(Into::into))
        }
        Part::Project => {
            let mut s = streaming()?;
            let feature = noise(s.dims().feat);
            time(&mut || s.project(&feature).map(drop).map_err(Into::into))
        }
        Part::Step => {
            let mut s = streaming()?;
            let feat = s.dims().feat;
            let caches: Vec<_> = (0..SEQ_LEN)
                .map(|_| s.project(&noise(feat)).map(|mut c| c.swap_remove(0)))
                .collect::<Result<_, _>>()?;
            let window: [&smplcast::model::FrameCache; SEQ_LEN] =
                std::array::from_fn(|i| &caches[i]);
            time(&mut || s.step(&[window]).map(drop).map_err(Into::into))
        }
        Part::Head => {
            let mut head = TemporalHead::load(&dir.join("temporal.onnx"), 1)?;
            let window = noise(SEQ_LEN * head.feature_len());
            time(&mut || head.run(&window).map(drop).map_err(Into::into))
        }
        Part::Detector => {
            let settings = smplcast::detect::nanodet::Settings::default();
            detector_loop(dir, settings, (640, 480), iterations, profile)
        }
        Part::Source => anyhow::bail!("--only source reads a source: see source_loop"),
    }
}

/// `--source PATH`, looped: a directory of images paced at `fps` (0: unpaced), or a video file
/// through GStreamer, unpaced.
fn source_config(path: &std::path::Path, fps: f64) -> SourceConfig {
    if path.is_dir() {
        return SourceConfig::Files { path: path.to_path_buf(), fps, looping: true };
    }
    let kind = smplcast::source::gst::Kind::Video {
        path: path.to_path_buf(),
        paced: false,
        looping: true,
    };
    SourceConfig::Gstreamer(smplcast::source::gst::Settings {
        kind,
        stall_timeout: Duration::from_secs(5),
    })
}

/// `smplcast bench --only source`: reads `path` (a directory of images, or a video file),
/// unpaced and looped, `iterations` frames after 5 untimed ones, and samples the backbone's
/// centred crop from each, as the daemon does for a person filling the frame. Returns the
/// source's description and the milliseconds per frame.
///
/// # Errors
/// A source that does not open, or ends.
pub fn source_loop(path: &std::path::Path, iterations: u64) -> Result<(String, Vec<f64>)> {
    use smplcast::model::IMAGE_SIZE;
    let mut source = smplcast::daemon::open_source(&source_config(path, 0.0))?;
    let mut crop = Vec::new();
    let mut one = || -> Result<f64> {
        let t0 = Instant::now();
        let frame = loop {
            match source.next_frame() {
                Ok(Some(frame)) => break frame,
                Ok(None) => anyhow::bail!("the source ended"),
                Err(smplcast::source::Error::Frame { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        };
        let (w, h) = (frame.image.width as f32, frame.image.height as f32);
        smplcast::pixels::crop_normalised(
            &frame.image,
            (w / 2.0, h / 2.0, w.min(h)),
            IMAGE_SIZE,
            [0.485, 0.456, 0.406],
            [0.229, 0.224, 0.225],
            &mut crop,
        );
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    };
    for _ in 0..5 {
        one()?;
    }
    let ms = (0..iterations).map(|_| one()).collect::<Result<Vec<f64>>>()?;
    Ok((source.describe(), ms))
}

/// The seed of [`noise`]: the same inputs on every machine.
const NOISE_SEED: u32 = 0x2545_f491;

/// `n` pseudo-random values in [-1, 1] (xorshift32 from `seed`, which it advances).
fn noise(seed: &mut u32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 17;
            *seed ^= *seed << 5;
            (*seed as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The backbone for each of `batches` crops per call, loaded side by side and run in turn
/// (one call of each per iteration, after one untimed call each) on fixed pseudo-random
/// crops: the milliseconds of each call, per batch size.
///
/// # Errors
/// A batch of 0, or a graph that does not load or run.
pub fn batch_loop(
    dir: &std::path::Path,
    int8: bool,
    batches: &[usize],
    iterations: u64,
) -> Result<Vec<(usize, Vec<f64>)>> {
    use smplcast::model::{Backbone, IMAGE_SIZE};
    ensure!(!batches.contains(&0), "--batch: sizes from 1");
    let file = dir.join(smplcast::model::backbone_file(int8));
    let mut seed = NOISE_SEED;
    let mut runs = Vec::new();
    for &batch in batches {
        let backbone = Backbone::load(&file, batch)?;
        let crops = noise(&mut seed, batch * 3 * IMAGE_SIZE * IMAGE_SIZE);
        runs.push((batch, backbone, crops, Vec::new()));
    }
    smplcast::telemetry::memory::release_freed();
    for round in 0..=iterations {
        for (_, backbone, crops, ms) in &mut runs {
            let t0 = Instant::now();
            backbone.run(crops)?;
            if round > 0 {
                ms.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    Ok(runs.into_iter().map(|(batch, _, _, ms)| (batch, ms)).collect())
}

/// [`part_loop`] for the person detector `file` with `settings`, on a `frame` (width, height)
/// of fixed pseudo-random pixels: sampling, graphs and decoding per run.
///
/// # Errors
/// The detector cannot be loaded or fails to run.
pub fn detector_loop(
    file: &std::path::Path,
    settings: smplcast::detect::nanodet::Settings,
    (width, height): (u32, u32),
    iterations: u64,
    profile: bool,
) -> Result<PartRuns> {
    use smplcast::detect::Detect;
    let loading = Instant::now();
    let mut d = smplcast::detect::PersonDetector::load(file, settings)?;
    let load_s = loading.elapsed().as_secs_f64();
    let mut seed = 0x9e37_79b9_u32;
    let pixels = (0..3 * width as usize * height as usize)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed >> 24) as u8
        })
        .collect();
    let image = smplcast::pixels::Image::rgb24(width, height, pixels);
    smplcast::telemetry::memory::release_freed();
    if profile {
        d.detect(&image)?;
        smplcast::model::profile_ops(true);
    }
    let ms = (0..iterations)
        .map(|_| {
            let t0 = Instant::now();
            d.detect(&image)?;
            Ok(t0.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_>>()?;
    let ops = smplcast::model::profile_ops(false);
    Ok(PartRuns { ms, ops, rss_mb: rss_mb(), load_s })
}

fn parse_device(s: &str) -> Result<smplcast::model::Device, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("{s:?}: expected cpu, cuda or auto"))
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once('x').ok_or_else(|| format!("{s:?}: expected WIDTHxHEIGHT"))?;
    let n = |v: &str| v.parse::<u32>().map_err(|e| format!("{s:?}: {e}"));
    Ok((n(w)?, n(h)?))
}

/// An op profile over `runs` runs as a table, slowest op kind first: nodes and milliseconds
/// per run, share of the total.
fn render_profile(ops: &smplcast::model::OpProfile, runs: u64) -> String {
    let mut rows: Vec<(&str, u64, f64)> = ops
        .iter()
        .map(|(op, (took, nodes))| {
            (op.as_str(), nodes / runs, took.as_secs_f64() * 1e3 / runs as f64)
        })
        .collect();
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    let total: f64 = rows.iter().map(|r| r.2).sum();
    let mut out = format!("{:<28} {:>6} {:>10} {:>7}\n", "op", "nodes", "ms/run", "share");
    for (op, nodes, ms) in rows {
        out += &format!("{op:<28} {nodes:>6} {ms:>10.3} {:>6.1}%\n", 100.0 * ms / total);
    }
    out + &format!("{:<28} {:>6} {total:>10.3}\n", "total", "")
}
