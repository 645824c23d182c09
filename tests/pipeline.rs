//! The pipeline in-process: the daemon built by `daemon::start_with` from the parts of a real
//! config (the synthetic source, the bundled narrow models, the finder), with two parts
//! swapped through its seams: a stand-in backbone of chosen speed, and a publisher that hands
//! every message to the test over a channel. No broker, no child process: the subject here is
//! the pipeline's own logic (queues, drops and their counts, ordering, shutdown and its
//! deadline, a failing stage). tests/daemon.rs proves the product end to end.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smplcast::config::Config;
use smplcast::daemon::{self, Parts, Summary};
use smplcast::model::Backbone;
use smplcast::stages::infer::Features;
use smplcast::stages::output::{Outbox, Publisher, Running};
use smplcast::telemetry::stats::{MqttCounters, Report};
use smplcast::telemetry::Notice;
use smplcast::wire::{self, PoseMsg};

fn narrow() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/fixtures/narrow")
}

/// A stand-in for the ResNet-50: `delay`, 2 × or 3 × `delay` per crop in turn (so that parallel
/// workers finish out of order), features made from the crop's pixels.
#[derive(Clone)]
struct StandIn {
    len: usize,
    delay: Duration,
    calls: Arc<AtomicU64>,
    panic_on: Option<u64>,
}

impl Features for StandIn {
    fn features(&mut self, crop: &[f32]) -> smplcast::model::Result<Vec<f32>> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        assert!(self.panic_on != Some(call), "the stand-in backbone panics on call {call}");
        std::thread::sleep(self.delay * (1 + (call % 3) as u32));
        let mean = crop.iter().sum::<f32>() / crop.len().max(1) as f32;
        Ok((0..self.len).map(|i| mean * ((i % 7) as f32 - 3.0)).collect())
    }

    fn fork(&self) -> smplcast::model::Result<Box<dyn Features>> {
        Ok(Box::new(StandIn { calls: self.calls.clone(), ..*self }))
    }
}

/// What the channel publisher hands over.
enum Got {
    Pose(Box<PoseMsg>),
    Stats(Box<Report>),
    Camera,
    /// Its `run` ended: `clean` when the pose queue closed, not by `stop`.
    Ended {
        clean: bool,
    },
}

/// A publisher that decodes each pose message and passes everything to the test.
struct Channel {
    tx: mpsc::Sender<Got>,
    counters: Arc<MqttCounters>,
}

impl Publisher for Channel {
    fn run(&self, out: Outbox) -> Running {
        let tx = self.tx.clone();
        Box::pin(async move {
            let mut notices_open = true;
            let clean = loop {
                tokio::select! {
                    _ = out.stop.cancelled() => break false,
                    pose = out.poses.recv_async() => match pose {
                        Ok(p) => { let _ = tx.send(Got::Pose(Box::new(wire::decode(&p.bytes)?))); }
                        Err(_) => break true,
                    },
                    n = out.notices.recv_async(), if notices_open => match n {
                        Ok(Notice::Stats(r)) => { let _ = tx.send(Got::Stats(Box::new(r))); }
                        Ok(Notice::Camera(_)) => { let _ = tx.send(Got::Camera); }
                        Err(_) => notices_open = false,
                    },
                }
            };
            let _ = tx.send(Got::Ended { clean });
            Ok(())
        })
    }

    fn counters(&self) -> Arc<MqttCounters> {
        self.counters.clone()
    }
}

/// A daemon on `toml` (the narrow models, no `[mqtt]`), with a stand-in backbone of `delay`
/// per crop (panicking on call `panic_on`) and the channel publisher.
struct Rig {
    running: daemon::Running,
    got: mpsc::Receiver<Got>,
    calls: Arc<AtomicU64>,
}

impl Rig {
    fn start(toml: &str, delay: Duration, panic_on: Option<u64>) -> Rig {
        let text = format!("[model]\ndir = {:?}\n{toml}", narrow().display().to_string());
        let config = Config::from_toml(&text, &narrow()).unwrap();
        let mut parts = Parts::load(&config).unwrap();
        let len = Backbone::load(&narrow().join("backbone.onnx"), 1).unwrap().feature_len();
        let calls = Arc::new(AtomicU64::new(0));
        parts.backbone = Box::new(StandIn { len, delay, calls: calls.clone(), panic_on });
        let (tx, got) = mpsc::channel();
        parts.publisher = Arc::new(Channel { tx, counters: Arc::default() });
        let running = daemon::start_with(&config, parts).unwrap();
        Rig { running, got, calls }
    }

    /// Waits for the pipeline to end; what it returned and everything the publisher got.
    fn wait(self) -> (anyhow::Result<Summary>, u64, Vec<Got>) {
        let (counters, _) = self.running.counters();
        let result = self.running.wait();
        let inferred = counters.frames_inferred.load(Ordering::SeqCst);
        (result, inferred, self.got.try_iter().collect())
    }

    /// A live source for `run_for`, then a stop: what the run did, the frames inferred and
    /// everything the publisher got.
    fn run_for(toml: &str, delay: Duration, run_for: Duration) -> (Summary, u64, Vec<Got>) {
        let rig = Rig::start(toml, delay, None);
        std::thread::sleep(run_for);
        rig.running.stop();
        let (result, inferred, got) = rig.wait();
        (result.unwrap(), inferred, got)
    }
}

fn poses(got: &[Got]) -> Vec<&PoseMsg> {
    got.iter().filter_map(|g| if let Got::Pose(p) = g { Some(p.as_ref()) } else { None }).collect()
}

fn reports(got: &[Got]) -> Vec<&Report> {
    got.iter().filter_map(|g| if let Got::Stats(r) = g { Some(r.as_ref()) } else { None }).collect()
}

#[test]
fn a_model_slower_than_a_live_source_drops_frames_before_inference_and_counts_them() {
    // 50 fps in, 100–300 ms per frame in inference on 2 workers: at most ~10 fps through.
    // Every frame is offered to the model (model_fps = 0), so the queue drops the rest.
    let toml = "[source]\nkind = \"synthetic\"\nwidth = 160\nheight = 120\nfps = 50\n\
                [stats]\ninterval_s = 0.5\n[pipeline]\nworkers = 2\nmodel_fps = 0\n";
    let (summary, inferred, got) =
        Rig::run_for(toml, Duration::from_millis(100), Duration::from_millis(3000));

    // Nothing is lost uncounted: every frame captured was inferred or dropped (and counted).
    assert!(summary.frames_dropped > 10, "{summary:?}");
    assert_eq!(summary.frames_in, inferred + summary.frames_dropped, "{summary:?}");
    let poses = poses(&got);
    assert_eq!(
        poses.len() as u64,
        summary.messages_out,
        "every message made reached the publisher"
    );
    assert_eq!(summary.messages_dropped, 0, "poses are not what is dropped: {summary:?}");
    // Frames dropped before inference leave gaps in frame ids, never in seq.
    let seq: Vec<u64> = poses.iter().map(|p| p.seq).collect();
    assert_eq!(seq, (0..seq.len() as u64).collect::<Vec<_>>());
    let frames: Vec<u64> = poses.iter().map(|p| p.frame).collect();
    assert!(frames.windows(2).all(|w| w[1] > w[0]), "in capture order: {frames:?}");
    assert!(frames.windows(2).any(|w| w[1] > w[0] + 1), "gaps: {frames:?}");

    // The stats reports say so as it happens.
    let reports = reports(&got);
    assert!(reports.len() >= 4, "a report every 0.5 s for 3 s: {}", reports.len());
    // The last one of a whole interval before the stop (at 3 s).
    let last = reports.iter().rev().find(|r| r.uptime_s < 2.95).unwrap();
    assert!(last.frames_dropped > 10 && last.frames_dropped == last.queues["frames"].dropped);
    assert!(last.fps_out < 0.75 * last.fps_in, "{last:?}");
    assert!(last.inference_ms >= 100.0, "{last:?}");
    assert!(last.queues["frames"].len <= 2, "bounded: {last:?}");
    assert!(got.iter().any(|g| matches!(g, Got::Camera)), "the camera's state");
    assert!(matches!(got.last(), Some(Got::Ended { clean: true })), "the publisher drained");
}

#[test]
fn a_model_rate_keeps_every_kth_frame_and_every_message_says_the_rate() {
    // A 60 fps camera, the model at 20 fps: every 3rd frame, from the first.
    let toml = "[source]\nkind = \"synthetic\"\nwidth = 160\nheight = 120\nfps = 60\n\
                [stats]\ninterval_s = 0.5\n[pipeline]\nworkers = 2\nmodel_fps = 20\n";
    let (summary, inferred, got) =
        Rig::run_for(toml, Duration::from_millis(1), Duration::from_millis(1500));
    assert_eq!(
        summary.frames_in,
        inferred + summary.frames_dropped + summary.frames_strided,
        "every frame inferred, dropped or left out by the rate: {summary:?}"
    );
    assert!(summary.frames_strided >= 2 * inferred - 2, "2 of 3 left out: {summary:?}");
    assert_eq!(summary.frames_dropped, 0, "the model keeps up at 20 fps: {summary:?}");
    let poses = poses(&got);
    assert!(poses.len() > 15, "{}", poses.len());
    let frames: Vec<u64> = poses.iter().map(|p| p.frame).collect();
    assert!(frames.iter().all(|f| f % 3 == 0), "every 3rd frame: {frames:?}");
    assert!(frames.windows(2).all(|w| w[1] == w[0] + 3), "none missing: {frames:?}");
    assert!(poses.iter().all(|p| p.win.fps == Some(20.0)), "the rate in every message");
    let last = *reports(&got).last().expect("a stats report");
    assert_eq!((last.model_fps, last.frames_strided > 0), (Some(20.0), true), "{last:?}");
}

#[test]
fn an_unpaced_source_waits_for_a_slow_model_and_every_frame_gets_its_result() {
    // A replay: the source waits for inference, so nothing is dropped and every frame of
    // the 40 gets a result, the last ones when the source ends and the windows flush.
    let toml = "[source]\nkind = \"synthetic\"\nwidth = 160\nheight = 120\nfps = 0\nframes = 40\n\
                [pipeline]\nworkers = 2\n";
    let rig = Rig::start(toml, Duration::from_millis(5), None);
    let (result, inferred, got) = rig.wait();
    let summary = result.unwrap();
    assert_eq!((summary.frames_in, summary.frames_dropped, inferred), (40, 0, 40), "{summary:?}");
    let frames: Vec<u64> = poses(&got).iter().map(|p| p.frame).collect();
    assert_eq!(frames, (0..40).collect::<Vec<_>>());
    assert!(poses(&got).iter().all(|p| p.win.fps.is_none()), "an unpaced source has no rate");
    assert!(matches!(got.last(), Some(Got::Ended { clean: true })));
}

#[test]
fn workers_give_the_messages_one_worker_gives_in_frame_order() {
    // The same replay on 1 and on 3 workers (a stand-in of uneven speed, so that the workers
    // finish out of order): the same frames, people and poses, in the same order.
    let run = |workers: u32| {
        let toml = format!(
            "[source]\nkind = \"synthetic\"\nwidth = 160\nheight = 120\nfps = 0\nframes = 30\n\
             [pipeline]\nworkers = {workers}\n"
        );
        let rig = Rig::start(&toml, Duration::from_millis(4), None);
        let (result, inferred, got) = rig.wait();
        let summary = result.unwrap();
        assert_eq!((summary.frames_in, summary.frames_dropped, inferred), (30, 0, 30));
        let poses: Vec<(u64, u64, Vec<wire::Person>)> =
            poses(&got).iter().map(|p| (p.seq, p.frame, p.people.clone())).collect();
        poses
    };
    let one = run(1);
    let three = run(3);
    assert_eq!(one.iter().map(|p| p.1).collect::<Vec<_>>(), (0..30).collect::<Vec<_>>());
    assert!(one.iter().all(|p| p.2.len() == 1));
    assert!(one == three, "3 workers changed the messages");
}

#[test]
fn a_stop_that_overruns_its_deadline_is_reported_and_the_publisher_still_ends() {
    // Inference takes 10 s per frame; the stop may take 0.5 s.
    let toml = "[source]\nkind = \"synthetic\"\nwidth = 160\nheight = 120\nfps = 30\n\
                [pipeline]\nshutdown_timeout_s = 0.5\nworkers = 2\n";
    let rig = Rig::start(toml, Duration::from_secs(10), None);
    let until = Instant::now() + Duration::from_secs(10);
    while rig.calls.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < until, "no frame reached inference");
        std::thread::sleep(Duration::from_millis(10));
    }
    let asked = Instant::now();
    rig.running.stop();
    let (result, _, got) = rig.wait();
    let error = format!("{:#}", result.unwrap_err());
    assert!(error.contains("did not stop within 500ms"), "{error}");
    assert!(error.contains("pipeline.shutdown_timeout_s"), "names the setting: {error}");
    // The deadline, plus the publisher's flush (stopped at once here), plus polling.
    assert!(asked.elapsed() < Duration::from_secs(2), "the deadline holds: {:?}", asked.elapsed());
    assert!(matches!(got.last(), Some(Got::Ended { clean: false })), "stopped, not drained");
}

#[test]
fn a_panicking_stage_stops_the_others_and_is_reported() {
    let toml = "[source]\nkind = \"synthetic\"\nwidth = 160\nheight = 120\nfps = 30\n\
                [pipeline]\nworkers = 1\n";
    let rig = Rig::start(toml, Duration::ZERO, Some(5));
    let (result, inferred, got) = rig.wait(); // no stop asked: the panic stops it
    let error = format!("{:#}", result.unwrap_err());
    // find, whose worker is gone, says so after it.
    assert!(error.starts_with("infer-0: panicked"), "{error}");
    assert_eq!(inferred, 5);
    assert!(matches!(got.last(), Some(Got::Ended { clean: true })), "post drained, then io");
}
