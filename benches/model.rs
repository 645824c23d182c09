//! Model benchmark: tract vs onnxruntime, f32 vs int8, full-window vs incremental temporal head,
//! all on one thread and the same inputs, from one run (see docs/BENCHMARKS.md).
//!
//! ```text
//! cargo bench --bench model
//! ```
//!
//! Environment:
//! - `SMPLCAST_BENCH_MODELS`: model directory (default `models/generated/full`, made by
//!   `models/run convert.py --random-init 0 --vectors --out models/generated/full`);
//! - `SMPLCAST_BENCH_BACKBONE_ITERS` (default 20), `SMPLCAST_BENCH_HEAD_ITERS` (default 100),
//!   `SMPLCAST_BENCH_WARMUP` (untimed runs of each graph first, default 3);
//! - `SMPLCAST_BENCH_ORT=0` skips the onnxruntime side (`models/run bench_ort.py`, which needs
//!   the Python venv).
//!
//! Method: warm-up runs, then the iterations; the graphs compared in one group (backbone f32 /
//! int8; head full f32 / full int8 / incremental) run once each per iteration, in an order that
//! reverses every other iteration, so machine noise and cache effects hit every side alike.
//! tract first, then the onnxruntime subprocess (one thread, `OMP_NUM_THREADS=1`) on the same
//! inputs written as .npy files; both sides' per-iteration times are summarised here (median,
//! p10, p90). The table is printed and the whole report written to `target/bench-model.json`.
//!
//! Inputs: the first image and the first feature window of the model directory's `vectors.npz`
//! (deterministic pseudo-random data if the directory has none). The incremental head is what the
//! daemon runs per new frame: `Streaming::project` of the frame's feature, a `TrackWindow` push,
//! and `Streaming::step` over the 16 cached frames.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ndarray::{Array, Array3, Array4, Axis, IxDyn};
use serde_json::{json, Value};
use smplcast::model::{Backbone, FrameCache, HeadOutput, Precision, Streaming, TemporalHead};
use smplcast::model::{IMAGE_SIZE, SEQ_LEN};
use smplcast::window::TrackWindow;

const DEFAULT_MODELS: &str = "models/generated/full";
const GENERATE: &str =
    "models/run convert.py --random-init 0 --vectors --out models/generated/full";

struct Config {
    models: PathBuf,
    backbone_iters: usize,
    head_iters: usize,
    warmup: usize,
    ort: bool,
}

fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().with_context(|| format!("{name}={v}: not a count")),
        Err(_) => Ok(default),
    }
}

impl Config {
    fn from_env() -> Result<Self> {
        let models = std::env::var_os("SMPLCAST_BENCH_MODELS").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODELS),
            PathBuf::from,
        );
        let cfg = Config {
            models,
            backbone_iters: env_usize("SMPLCAST_BENCH_BACKBONE_ITERS", 20)?.max(1),
            head_iters: env_usize("SMPLCAST_BENCH_HEAD_ITERS", 100)?.max(1),
            warmup: env_usize("SMPLCAST_BENCH_WARMUP", 3)?,
            ort: std::env::var("SMPLCAST_BENCH_ORT").map_or(true, |v| v != "0"),
        };
        Ok(cfg)
    }
}

/// Median and 10th / 90th percentiles (linear interpolation between order statistics, as
/// numpy's default) of per-iteration times in ms.
#[derive(Clone, Copy, Debug)]
struct Stats {
    median: f64,
    p10: f64,
    p90: f64,
    n: usize,
}

impl Stats {
    fn of(samples: &[f64]) -> Stats {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let q = |p: f64| {
            if s.is_empty() {
                return f64::NAN;
            }
            let x = p * (s.len() - 1) as f64;
            let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
            s[lo] + (s[hi] - s[lo]) * (x - lo as f64)
        };
        Stats { median: q(0.5), p10: q(0.1), p90: q(0.9), n: s.len() }
    }

    fn json(&self) -> Value {
        json!({"median_ms": self.median, "p10_ms": self.p10, "p90_ms": self.p90, "n": self.n})
    }
}

/// Per-iteration times in ms, by measurement name.
type Samples = BTreeMap<String, Vec<f64>>;

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// A measured case: runs once and returns its named times in ms (usually one, its own name).
type Case<'a> = (&'static str, Box<dyn FnMut() -> Result<Vec<(&'static str, f64)>> + 'a>);

/// Runs every case `warmup` times, then `iters` times each, alternating (order reversed every
/// other iteration).
fn alternate(cases: &mut [Case<'_>], iters: usize, warmup: usize) -> Result<Samples> {
    for _ in 0..warmup {
        for (_, run) in cases.iter_mut() {
            run()?;
        }
    }
    let mut samples = Samples::new();
    let n = cases.len();
    for i in 0..iters {
        for k in 0..n {
            let k = if i % 2 == 0 { k } else { n - 1 - k };
            let (name, run) = &mut cases[k];
            for (key, t) in run().with_context(|| format!("running {name}"))? {
                samples.entry(key.to_string()).or_default().push(t);
            }
        }
    }
    Ok(samples)
}

/// The benchmark inputs: one image [1, 3, 224, 224] and one feature window [1, 16, C].
struct Inputs {
    image: Array4<f32>,
    window: Array3<f32>,
    source: String,
}

/// Deterministic pseudo-random values in [-scale, scale) (xorshift), for directories without
/// vectors.npz.
fn synthetic(shape: &[usize], seed: u64, scale: f32) -> Array<f32, IxDyn> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Array::from_shape_simple_fn(IxDyn(shape), || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
    })
}

fn load_inputs(dir: &Path, feat: usize) -> Result<Inputs> {
    let path = dir.join("vectors.npz");
    if path.exists() {
        let file = std::fs::File::open(&path).with_context(|| format!("{}", path.display()))?;
        let mut npz = ndarray_npy::NpzReader::new(file)?;
        let image: Array4<f32> = npz.by_name("image")?;
        let windows: Array3<f32> = npz.by_name("windows")?;
        if image.shape()[1..] != [3, IMAGE_SIZE, IMAGE_SIZE]
            || windows.shape()[1..] != [SEQ_LEN, feat]
        {
            bail!(
                "{}: image {:?} / windows {:?} do not fit the graphs (C = {feat})",
                path.display(),
                image.shape(),
                windows.shape()
            );
        }
        Ok(Inputs {
            image: image.slice_axis(Axis(0), (0..1).into()).to_owned(),
            window: windows.slice_axis(Axis(0), (0..1).into()).to_owned(),
            source: format!("{}: image[0:1], windows[0:1]", path.display()),
        })
    } else {
        Ok(Inputs {
            image: synthetic(&[1, 3, IMAGE_SIZE, IMAGE_SIZE], 1, 2.0).into_dimensionality()?,
            window: synthetic(&[1, SEQ_LEN, feat], 2, 0.5).into_dimensionality()?,
            source: "synthetic (xorshift, no vectors.npz in the model directory)".into(),
        })
    }
}

fn contiguous(a: &Array<f32, impl ndarray::Dimension>) -> &[f32] {
    a.as_slice().expect("inputs are standard-layout arrays")
}

fn max_abs_diff(a: &[HeadOutput], b: &[HeadOutput]) -> f64 {
    a.iter()
        .zip(b)
        .flat_map(|(a, b)| {
            let x = a.pose6d.iter().chain(&a.shape).chain(&a.cam);
            let y = b.pose6d.iter().chain(&b.shape).chain(&b.cam);
            x.zip(y).map(|(x, y)| f64::from((x - y).abs()))
        })
        .fold(0.0, f64::max)
}

fn expect_precision(what: &str, got: Precision, want: Precision) -> Result<()> {
    if got != want {
        bail!("{what}: expected a {want} graph, the file holds {got}");
    }
    Ok(())
}

fn bench_backbone(cfg: &Config, image: &[f32]) -> Result<Samples> {
    let mut f32_ = Backbone::load(&cfg.models.join("backbone.onnx"), 1)?;
    let mut int8 = Backbone::load(&cfg.models.join("backbone.int8.onnx"), 1)?;
    expect_precision("backbone.onnx", f32_.precision(), Precision::F32)?;
    expect_precision("backbone.int8.onnx", int8.precision(), Precision::Int8)?;
    let mut cases: Vec<Case<'_>> = vec![
        (
            "backbone.onnx",
            Box::new(|| {
                let t = Instant::now();
                black_box(f32_.run(black_box(image))?);
                Ok(vec![("backbone.onnx", ms(t))])
            }),
        ),
        (
            "backbone.int8.onnx",
            Box::new(|| {
                let t = Instant::now();
                black_box(int8.run(black_box(image))?);
                Ok(vec![("backbone.int8.onnx", ms(t))])
            }),
        ),
    ];
    alternate(&mut cases, cfg.backbone_iters, cfg.warmup)
}

struct HeadRun {
    samples: Samples,
    /// Largest difference between the incremental and the full f32 head on the same window.
    incremental_vs_full: f64,
}

fn bench_heads(cfg: &Config, window: &[f32], feat: usize) -> Result<HeadRun> {
    let dir = &cfg.models;
    let mut full = TemporalHead::load(&dir.join("temporal.onnx"), 1)?;
    let mut full8 = TemporalHead::load(&dir.join("temporal.int8.onnx"), 1)?;
    let mut streaming =
        Streaming::load(&dir.join("temporal_frame.onnx"), &dir.join("temporal_step.onnx"), 1)?;
    expect_precision("temporal.onnx", full.precision(), Precision::F32)?;
    expect_precision("temporal.int8.onnx", full8.precision(), Precision::Int8)?;
    expect_precision("temporal_step.onnx", streaming.precision(), Precision::F32)?;
    let frame = |k: usize| &window[k * feat..(k + 1) * feat];
    // Several tracks stepped together share each weight read (the step is memory-bound at batch
    // 1): TRACKS tracks, each holding the same rotation of the window, one call for all.
    let mut batched =
        Streaming::load(&dir.join("temporal_frame.onnx"), &dir.join("temporal_step.onnx"), TRACKS)?;
    let mut tracks: Vec<TrackWindow> = (0..TRACKS).map(|_| TrackWindow::new()).collect();
    let mut bnext = SEQ_LEN - 1;
    for k in 0..SEQ_LEN - 1 {
        let feats: Vec<f32> = (0..TRACKS).flat_map(|_| frame(k).iter().copied()).collect();
        for (t, c) in tracks.iter_mut().zip(batched.project(&feats)?) {
            t.push(k as u64, c);
        }
    }

    // The 16 frames' caches, as a track's window holds them; the incremental result on them must
    // be the full head's.
    let caches: Vec<FrameCache> =
        (0..SEQ_LEN).map(|k| Ok(streaming.project(frame(k))?.remove(0))).collect::<Result<_>>()?;
    let mut track = TrackWindow::new();
    let mut ready = None;
    for (k, c) in caches.iter().enumerate() {
        ready = track.push(k as u64, c.clone());
    }
    let ready = ready.context("a 16-frame track has a centred window")?;
    let incremental_vs_full = max_abs_diff(&streaming.step(&[ready.refs()])?, &full.run(window)?);

    // Per iteration the track receives one more frame (the window's frames in turn, so it always
    // holds a rotation of the same 16 features): project it, push it, step.
    let mut next = 0usize;
    let mut id = SEQ_LEN as u64;
    let mut cases: Vec<Case<'_>> = vec![
        (
            "temporal.onnx",
            Box::new(|| {
                let t = Instant::now();
                black_box(full.run(black_box(window))?);
                Ok(vec![("temporal.onnx", ms(t))])
            }),
        ),
        (
            "incremental",
            Box::new(|| {
                let t0 = Instant::now();
                let cache = streaming.project(black_box(frame(next)))?.remove(0);
                let t1 = Instant::now();
                let ready =
                    track.push(id, cache).context("a full track yields a window per frame")?;
                black_box(streaming.step(&[ready.refs()])?);
                let project = (t1 - t0).as_secs_f64() * 1e3;
                let total = ms(t0);
                next = (next + 1) % SEQ_LEN;
                id += 1;
                Ok(vec![
                    ("incremental", total),
                    ("incremental.project", project),
                    ("incremental.step", total - project),
                ])
            }),
        ),
        (
            "incremental.tracks",
            Box::new(|| {
                let t0 = Instant::now();
                let k = bnext % SEQ_LEN;
                let feats: Vec<f32> = (0..TRACKS).flat_map(|_| frame(k).iter().copied()).collect();
                let caches = batched.project(black_box(&feats))?;
                let ready = tracks
                    .iter_mut()
                    .zip(caches)
                    .map(|(t, c)| {
                        t.push(bnext as u64, c).context("a full track yields a window per frame")
                    })
                    .collect::<Result<Vec<_>>>()?;
                bnext += 1;
                let windows: Vec<_> = ready.iter().map(|r| r.refs()).collect();
                black_box(batched.step(&windows)?);
                Ok(vec![("incremental.per_track", ms(t0) / TRACKS as f64)])
            }),
        ),
        (
            "temporal.int8.onnx",
            Box::new(|| {
                let t = Instant::now();
                black_box(full8.run(black_box(window))?);
                Ok(vec![("temporal.int8.onnx", ms(t))])
            }),
        ),
    ];
    let samples = alternate(&mut cases, cfg.head_iters, cfg.warmup)?;
    Ok(HeadRun { samples, incremental_vs_full })
}

/// Runs `models/run bench_ort.py` on the same inputs; its JSON report.
fn bench_ort(cfg: &Config, inputs: &Inputs, scratch: &Path) -> Result<Value> {
    std::fs::create_dir_all(scratch)?;
    let image = scratch.join("image.npy");
    let window = scratch.join("window.npy");
    ndarray_npy::write_npy(&image, &inputs.image)?;
    ndarray_npy::write_npy(&window, &inputs.window)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let models = std::fs::canonicalize(&cfg.models)?;
    let mut cmd = Command::new(root.join("models/run"));
    cmd.arg("bench_ort.py")
        .arg("--dir")
        .arg(&models)
        .arg("--image")
        .arg(&image)
        .arg("--window")
        .arg(&window)
        .args(["--backbone-iters", &cfg.backbone_iters.to_string()])
        .args(["--head-iters", &cfg.head_iters.to_string()])
        .args(["--warmup", &cfg.warmup.to_string()])
        .env("OMP_NUM_THREADS", "1")
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    let out = cmd.output().context("spawning models/run bench_ort.py")?;
    if !out.status.success() {
        bail!(
            "models/run bench_ort.py failed ({}); run with SMPLCAST_BENCH_ORT=0 to skip \
             onnxruntime",
            out.status
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(last).with_context(|| format!("bench_ort.py output is not JSON: {last:?}"))
}

fn ort_samples(report: &Value) -> Samples {
    let mut s = Samples::new();
    if let Some(map) = report["samples_ms"].as_object() {
        for (k, v) in map {
            let v: Vec<f64> =
                v.as_array().into_iter().flatten().filter_map(Value::as_f64).collect();
            s.insert(k.clone(), v);
        }
    }
    s
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Version of a package in Cargo.lock (what the bench was built with).
fn locked_version(name: &str) -> Option<String> {
    let lock =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == format!("name = \"{name}\"") {
            let v = lines.next()?.trim().strip_prefix("version = \"")?.strip_suffix('"')?;
            return Some(v.to_string());
        }
    }
    None
}

/// Rows of the table: (label, measurement key).
const ROWS: &[(&str, &str)] = &[
    ("backbone f32", "backbone.onnx"),
    ("backbone int8", "backbone.int8.onnx"),
    ("head full f32", "temporal.onnx"),
    ("head full int8", "temporal.int8.onnx"),
    ("head incremental f32", "incremental"),
    ("  project (new frame)", "incremental.project"),
    ("  step (16-frame window)", "incremental.step"),
    ("head incremental f32, per track of 4", "incremental.per_track"),
];

/// Tracks stepped together in the batched incremental case.
const TRACKS: usize = 4;

fn ratio(a: Option<&Stats>, b: Option<&Stats>) -> Option<f64> {
    Some(a?.median / b?.median)
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.2}"))
}

fn fmt_stats(s: Option<&Stats>) -> String {
    s.map_or_else(|| "-".into(), |s| format!("{:8.2} [{:.2}–{:.2}]", s.median, s.p10, s.p90))
}

fn run() -> Result<ExitCode> {
    let cfg = Config::from_env()?;
    let needed = [
        "backbone.onnx",
        "backbone.int8.onnx",
        "temporal.onnx",
        "temporal.int8.onnx",
        "temporal_frame.onnx",
        "temporal_step.onnx",
    ];
    let missing: Vec<&str> =
        needed.iter().copied().filter(|f| !cfg.models.join(f).exists()).collect();
    if !missing.is_empty() {
        eprintln!(
            "model bench: {} lacks {}.\nGenerate the full-size (random-weight) models with\n  \
             {GENERATE}\nor point SMPLCAST_BENCH_MODELS at a model directory.",
            cfg.models.display(),
            missing.join(", ")
        );
        return Ok(ExitCode::from(2));
    }

    // Feature width from the head graph (C = 2048 for the published model).
    let feat = TemporalHead::load(&cfg.models.join("temporal.onnx"), 1)?.feature_len();
    let inputs = load_inputs(&cfg.models, feat)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"), PathBuf::from);
    eprintln!(
        "model bench: {} (C = {feat}); backbone {} iters, heads {} iters, {} warm-up; inputs {}",
        cfg.models.display(),
        cfg.backbone_iters,
        cfg.head_iters,
        cfg.warmup,
        inputs.source
    );

    let started = Instant::now();
    eprintln!("tract: backbone…");
    let mut tract = bench_backbone(&cfg, contiguous(&inputs.image))?;
    eprintln!("tract: temporal heads…");
    let heads = bench_heads(&cfg, contiguous(&inputs.window), feat)?;
    tract.extend(heads.samples);
    let ort_report = if cfg.ort {
        eprintln!("onnxruntime: models/run bench_ort.py…");
        Some(bench_ort(&cfg, &inputs, &target.join("bench-model-inputs"))?)
    } else {
        None
    };
    let ort = ort_report.as_ref().map(ort_samples).unwrap_or_default();
    let elapsed = started.elapsed().as_secs_f64();

    let stats = |s: &Samples| -> BTreeMap<String, Stats> {
        s.iter().map(|(k, v)| (k.clone(), Stats::of(v))).collect()
    };
    let (ts, os) = (stats(&tract), stats(&ort));

    // The table.
    let tract_version = locked_version("tract-onnx").unwrap_or_else(|| "?".into());
    let ort_version = ort_report
        .as_ref()
        .and_then(|r| r["version"].as_str().map(str::to_string))
        .unwrap_or_else(|| "-".into());
    println!();
    println!(
        "model bench, 1 thread, batch 1 — {} ({} CPUs); tract {tract_version}, \
         onnxruntime {ort_version}",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("times in ms: median [p10–p90]");
    println!("{:<26}{:>26}{:>26}{:>12}", "graph", "tract", "onnxruntime", "tract/ORT");
    for (label, key) in ROWS {
        let (t, o) = (ts.get(*key), os.get(*key));
        println!(
            "{label:<26}{:>26}{:>26}{:>12}",
            fmt_stats(t),
            fmt_stats(o),
            fmt_ratio(ratio(t, o))
        );
    }

    // The ratios (of medians).
    let r = |s: &BTreeMap<String, Stats>, a: &str, b: &str| ratio(s.get(a), s.get(b));
    let ratios = json!({
        "tract_over_ort": ROWS.iter()
            .map(|(_, k)| (k.to_string(), ratio(ts.get(*k), os.get(*k))))
            .collect::<BTreeMap<_, _>>(),
        "int8_over_f32": {
            "backbone": {"tract": r(&ts, "backbone.int8.onnx", "backbone.onnx"),
                         "onnxruntime": r(&os, "backbone.int8.onnx", "backbone.onnx")},
            "head_full": {"tract": r(&ts, "temporal.int8.onnx", "temporal.onnx"),
                          "onnxruntime": r(&os, "temporal.int8.onnx", "temporal.onnx")},
        },
        "incremental_per_track_of_4_over_full_f32": {
            "tract": r(&ts, "incremental.per_track", "temporal.onnx")},
        "incremental_over_full_f32": {"tract": r(&ts, "incremental", "temporal.onnx"),
                                      "onnxruntime": r(&os, "incremental", "temporal.onnx"),
                                      "goal_at_most": 0.25},
        "project_share_of_incremental": {
            "tract": r(&ts, "incremental.project", "incremental"),
            "onnxruntime": r(&os, "incremental.project", "incremental"),
        },
        "head_incremental_over_backbone_f32": {"tract": r(&ts, "incremental", "backbone.onnx")},
    });
    println!();
    println!("ratios (medians)                     tract   onnxruntime");
    let line = |label: &str, a: &str, b: &str| {
        println!("{label:<36}{:>6}{:>14}", fmt_ratio(r(&ts, a, b)), fmt_ratio(r(&os, a, b)));
    };
    line("int8 / f32, backbone", "backbone.int8.onnx", "backbone.onnx");
    line("int8 / f32, head (full)", "temporal.int8.onnx", "temporal.onnx");
    line("incremental / full, f32 (goal ≤ 0.15)", "incremental", "temporal.onnx");
    line("  project / incremental", "incremental.project", "incremental");
    line("  step / full", "incremental.step", "temporal.onnx");
    line("incremental per track of 4 / full, f32", "incremental.per_track", "temporal.onnx");
    println!(
        "incremental vs full head, max |Δ| on the same window: tract {:.2e}, onnxruntime {}",
        heads.incremental_vs_full,
        ort_report
            .as_ref()
            .and_then(|r| r["incremental_vs_full_max_abs"].as_f64())
            .map_or_else(|| "-".into(), |v| format!("{v:.2e}"))
    );
    println!("(whole bench {elapsed:.0} s)");

    let to_json = |st: &BTreeMap<String, Stats>, s: &Samples| -> Value {
        st.iter()
            .map(|(k, v)| {
                let mut j = v.json();
                j["samples_ms"] = json!(s[k]);
                (k.clone(), j)
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let mut ort_meta = ort_report.clone().unwrap_or(Value::Null);
    if let Some(m) = ort_meta.as_object_mut() {
        m.remove("samples_ms");
    }
    let report = json!({
        "machine": {"cpu": cpu_model(),
                    "cpus": std::thread::available_parallelism().map_or(0, |n| n.get())},
        "config": {"models": cfg.models, "backbone_iters": cfg.backbone_iters,
                   "head_iters": cfg.head_iters, "warmup": cfg.warmup, "batch": 1, "threads": 1,
                   "inputs": inputs.source},
        "versions": {"tract-onnx": tract_version, "onnxruntime": ort_version},
        "tract": to_json(&ts, &tract),
        "onnxruntime": {"meta": ort_meta, "results": to_json(&os, &ort)},
        "ratios": ratios,
        "incremental_vs_full_max_abs": {"tract": heads.incremental_vs_full,
            "onnxruntime": ort_report.as_ref().map(|r| r["incremental_vs_full_max_abs"].clone())},
        "elapsed_s": elapsed,
    });
    std::fs::create_dir_all(&target)?;
    let out = target.join("bench-model.json");
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("written {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench` (and any filter); this bench has no cases to filter.
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("model bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
