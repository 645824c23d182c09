//! `smplcast bench` (the real binary, on the bundled narrow model) and `model.threads`: the
//! report has every stage, sane figures and the files asked for; multithreaded matrix products
//! give the single-threaded results. Speed itself is not tested here (docs/performance.md).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use smplcast::model::{self, Backbone, Streaming, IMAGE_SIZE, SEQ_LEN};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn narrow() -> PathBuf {
    root().join("models/fixtures/narrow")
}

fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_smplcast"))
        .arg("bench")
        .arg("--models")
        .arg(narrow())
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn bench_reports_every_stage_for_each_precision_thread_and_worker_count() {
    let dir = std::env::temp_dir().join(format!("smplcast-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, svg) = (dir.join("bench.json"), dir.join("bench.svg"));
    let text = bench(&[
        "--precision",
        "f32,int8",
        "--threads",
        "1,2",
        "--workers",
        "1,2",
        "--frames",
        "24",
        "--warmup",
        "4",
        "--json",
        json.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(text.contains("throughput ÷ the first run"), "{text}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let runs = report["runs"].as_array().unwrap();
    let which: Vec<String> = runs
        .iter()
        .map(|r| {
            format!("{} {}t {}w", r["precision"].as_str().unwrap(), r["threads"], r["workers"])
        })
        .collect();
    let want = ["f32 1t 1w", "f32 1t 2w", "f32 2t 1w", "f32 2t 2w"];
    let want: Vec<String> =
        ["f32", "int8"].iter().flat_map(|p| want.map(|w| w.replacen("f32", p, 1))).collect();
    assert_eq!(which, want);
    // Each 2-worker run against its 1-worker run.
    let scaling = report["scaling"].as_array().unwrap();
    let scaled: Vec<&str> = scaling.iter().map(|s| s["run"].as_str().unwrap()).collect();
    assert_eq!(scaled, ["cpu f32 1t 2w", "cpu f32 2t 2w", "cpu int8 1t 2w", "cpu int8 2t 2w"]);
    assert!(runs.iter().all(|r| r["device"] == "cpu"), "the default device");
    for s in scaling {
        let e = s["efficiency"].as_f64().unwrap();
        assert!(e > 0.0 && e < 1.5, "{s}");
        assert!(s["rss_mb_per_extra_worker"].as_f64().unwrap().is_finite(), "{s}");
    }
    assert!(text.contains("RSS per extra worker"), "{text}");
    let names = [
        "capture",
        "detect",
        "track",
        "preprocess",
        "backbone",
        "project",
        "step",
        "smpl",
        "encode",
        "publish",
    ];
    for r in runs {
        let stages = r["stages"].as_array().unwrap();
        let got: Vec<&str> = stages.iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(got, names, "{r}");
        let stage = |n: &str| stages.iter().find(|s| s["name"] == n).unwrap();
        let f = |v: &Value| v.as_f64().unwrap();
        // One person per frame (the whole frame), so one crop, backbone run and projection per
        // frame; the detector never runs.
        for n in ["preprocess", "backbone", "project", "capture"] {
            let calls = f(&stage(n)["calls_per_frame"]);
            assert!((0.9..=1.1).contains(&calls), "{n}: {calls} calls per frame\n{r}");
            assert!(f(&stage(n)["ms_per_call"]) > 0.0, "{n}\n{r}");
        }
        assert_eq!(f(&stage("detect")["calls_per_frame"]), 0.0);
        assert_eq!(f(&r["people_per_frame"]), 1.0);
        let shares: f64 = stages.iter().map(|s| f(&s["share"])).sum();
        assert!((shares - 1.0).abs() < 1e-6, "{shares}");
        let outside = f(&r["non_model_share"]);
        assert!(outside > 0.0 && outside < 1.0, "{outside}");
        // A one-person message of the narrow model is ~370 B (docs/WIRE.md sizes).
        let bytes = f(&r["bytes_per_person_frame"]);
        assert!((300.0..450.0).contains(&bytes), "{bytes}");
        assert!(f(&r["person_frames_per_s"]) > 0.0 && f(&r["rss_mb_steady"]) > 10.0, "{r}");
        let l = &r["latency"];
        assert!(l["messages"].as_u64().unwrap() >= 20, "{l}");
        let (p50, p99) = (f(&l["p50_ms"]), f(&l["p99_ms"]));
        // Each message waits for 7 frames of lookahead, paced at l["fps"].
        let lookahead_ms = 7.0 * 1e3 / f(&l["fps"]);
        assert!(p50 >= lookahead_ms * 0.9 && p99 >= p50, "{l}");
    }
    let drawing = std::fs::read_to_string(&svg).unwrap();
    assert!(drawing.starts_with("<svg") && drawing.trim_end().ends_with("</svg>"));
    // One bar segment per stage and run, plus the legend.
    assert_eq!(drawing.matches("<rect").count(), 8 * names.len() + names.len(), "{drawing}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_only_runs_one_part_in_a_loop() {
    for part in ["backbone", "project", "step", "head"] {
        let text = bench(&["--only", part, "--iterations", "3"]);
        let first = text.lines().next().unwrap();
        let runs = first.split('[').nth(1).unwrap().trim_end_matches(']');
        let ms: Vec<f64> = runs.split(", ").map(|v| v.parse().unwrap()).collect();
        assert_eq!(ms.len(), 3, "{text}");
        assert!(ms.iter().all(|&m| m > 0.0), "{text}");
        let rss = text.lines().nth(1).unwrap();
        let mb: f64 = rss
            .strip_prefix("RSS after the runs: ")
            .unwrap()
            .trim_end_matches(" MB")
            .parse()
            .unwrap();
        assert!(mb > 1.0, "{text}");
    }
    // `--device auto` runs where `model.device = "auto"` would, and says where.
    let gpu = Path::new("/dev/nvidiactl").exists() || Path::new("/dev/nvmap").exists();
    if !gpu {
        let text = bench(&["--only", "backbone", "--iterations", "1", "--device", "auto"]);
        assert!(text.starts_with("Backbone (f32, cpu): ms per run ["), "{text}");
    }
}

/// `--only source` reads frames and samples a crop from each, without the models: a directory
/// of images, and with GStreamer real footage (vtest.avi, fetched by the test command).
#[test]
fn bench_only_source_times_a_frame_read_and_its_crop() {
    let frames = root().join("tests/data/frames");
    let mut sources = vec![(frames, "images from")];
    if cfg!(feature = "gstreamer") {
        sources.push((root().join("models/.cache/vtest.avi"), "768×576 I420 unpaced, looping"));
    }
    for (source, says) in sources {
        let text =
            bench(&["--only", "source", "--source", source.to_str().unwrap(), "--iterations", "4"]);
        let line = text.lines().next().unwrap();
        assert!(line.starts_with("Source ") && line.contains(says), "{text}");
        let median: f64 =
            line.split(": ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        assert!(median > 0.0, "{text}");
        assert_eq!(line.split('[').nth(1).unwrap().matches(", ").count() + 1, 4, "{text}");
    }
    let err = Command::new(env!("CARGO_BIN_EXE_smplcast"))
        .args(["bench", "--only", "source"])
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("--only source needs --source FILE or DIR")
    );
}

/// The whole pipeline on a video file (GStreamer): throughput, and no latency run, since a
/// video cannot be paced at a chosen rate.
#[cfg(feature = "gstreamer")]
#[test]
fn bench_runs_the_pipeline_on_a_video_file() {
    let vtest = root().join("models/.cache/vtest.avi");
    let out = Command::new(env!("CARGO_BIN_EXE_smplcast"))
        .args(["bench", "--models", narrow().to_str().unwrap(), "--precision", "f32"])
        .args(["--source", vtest.to_str().unwrap(), "--frames", "10", "--warmup", "2"])
        .output()
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("person-frames/s") && stdout.contains("capture"), "{stdout}");
    assert!(stderr.contains("no latency run: a video file cannot be paced"), "{stderr}");
    assert!(!stdout.contains("latency capture"), "{stdout}");
}

/// `--batch` times the backbone at several crops per call, side by side; a batched call gives
/// each crop the features a call of its own gives.
#[test]
fn bench_only_backbone_compares_batch_sizes() {
    let text = bench(&["--only", "backbone", "--batch", "1,3", "--iterations", "2"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (line, batch) in lines.iter().zip(["1", "3"]) {
        let prefix = format!("Backbone (f32, cpu) batch {batch}: ");
        let per_crop: f64 =
            line.strip_prefix(&prefix).expect(&text).split(' ').next().unwrap().parse().unwrap();
        assert!(per_crop > 0.0, "{text}");
        let runs = line.split('[').nth(1).unwrap();
        assert_eq!(runs.matches(", ").count() + 1, 2, "two timed runs: {text}");
    }
    let err = Command::new(env!("CARGO_BIN_EXE_smplcast"))
        .args(["bench", "--only", "step", "--batch", "2"])
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("--batch is for --only backbone"));

    let file = narrow().join("backbone.onnx");
    let crop = |k: usize| -> Vec<f32> {
        (0..3 * IMAGE_SIZE * IMAGE_SIZE).map(|i| ((i * (k + 3)) % 97) as f32 / 48.0 - 1.0).collect()
    };
    let mut one = Backbone::load(&file, 1).unwrap();
    let mut three = Backbone::load(&file, 3).unwrap();
    let batched = three.run(&[crop(0), crop(1), crop(2)].concat()).unwrap();
    let c = one.feature_len();
    for k in 0..3 {
        let alone = one.run(&crop(k)).unwrap();
        let scale = alone.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = alone
            .iter()
            .zip(&batched[k * c..(k + 1) * c])
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff <= 1e-5 * scale.max(1.0), "crop {k}: {diff} of {scale}");
    }
}

/// `--profile` gives each part's time per tract op kind: the rows add up to the total, and
/// the matrix products are there.
#[test]
fn bench_only_profiles_each_part_by_op() {
    for part in ["backbone", "project", "step", "head"] {
        let text = bench(&["--only", part, "--iterations", "2", "--profile"]);
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(rows[0], ["op", "nodes", "ms/run", "share"], "{text}");
        let total_row = rows.iter().find(|r| r[0] == "total").expect(&text);
        let total: f64 = total_row[1].parse().unwrap();
        let ops: Vec<&Vec<&str>> = rows[1..].iter().take_while(|r| r[0] != "total").collect();
        let sum: f64 = ops.iter().map(|r| r[2].parse::<f64>().unwrap()).sum();
        assert!(total > 0.0 && (sum - total).abs() <= 1e-3 * ops.len() as f64, "{text}");
        assert!(ops.iter().any(|r| r[0].contains("MatMul") || r[0].contains("Conv")), "{text}");
    }
}

/// `model.threads` > 1 runs tract's matrix products on a pool: same results as one thread.
/// The narrow model's products are below tract's threading threshold; the full-size ones
/// (`SMPLCAST_FULL_MODELS`, set by the test command) are split across the pool.
#[test]
fn multithreaded_models_give_the_single_threaded_results() {
    let image: Vec<f32> = (0..3 * IMAGE_SIZE * IMAGE_SIZE)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    for dir in common::model_dirs() {
        let run = |threads: usize| {
            model::set_threads(threads).unwrap();
            let mut backbone = Backbone::load(&dir.join("backbone.onnx"), 1).unwrap();
            let mut streaming = Streaming::load(
                &dir.join("temporal_frame.onnx"),
                &dir.join("temporal_step.onnx"),
                1,
            )
            .unwrap();
            let feature = backbone.run(&image).unwrap();
            let caches: Vec<_> = (0..SEQ_LEN)
                .map(|k| {
                    let shifted: Vec<f32> = feature.iter().map(|v| v + k as f32 * 0.01).collect();
                    streaming.project(&shifted).unwrap().swap_remove(0)
                })
                .collect();
            let window = std::array::from_fn(|i| &caches[i]);
            let out = streaming.step(&[window]).unwrap().swap_remove(0);
            (feature, out)
        };
        let (feature_1, out_1) = run(1);
        let (feature_3, out_3) = run(3);
        model::set_threads(1).unwrap();
        let close = |a: &[f32], b: &[f32]| {
            let scale = a.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max) / scale
        };
        let d = close(&feature_1, &feature_3);
        assert!(d <= 1e-5, "{dir:?}: feature {d}");
        for (a, b) in [
            (&out_1.pose6d[..], &out_3.pose6d[..]),
            (&out_1.shape[..], &out_3.shape[..]),
            (&out_1.cam[..], &out_3.cam[..]),
        ] {
            assert!(close(a, b) <= 1e-5, "{dir:?}: {}", close(a, b));
        }
    }
}
