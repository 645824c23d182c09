//! The daemon: the wiring. Creates every queue, spawns every thread and task (the stages'
//! bodies are in [`crate::stages`]), owns the shutdown.
//!
//! ```text
//!  capture ─frames(2)─▶ find ─jobs(N)─▶ infer ×N ─features─▶ post ─poses(mqtt.queue)─▶ io
//!  source    drop-oldest detector  wait   crop → backbone  wait  reorder → window   drop-  publisher
//!  (paced)   or wait     tracker          → projection           → step → SMPL      oldest + stats
//! ```
//!
//! Threads: `capture` (the source, blocking), `find` (detector and tracker, in frame order),
//! `infer-0` … `infer-{N-1}` (`pipeline.workers`: preprocessing, backbone, per-frame
//! projection; frames in parallel), `post` (frames back in order, per-track window, temporal
//! step, SMPL decoding, wire encoding) and `io` (a current-thread tokio runtime: the publisher,
//! stats timer, SIGTERM/SIGINT).
//!
//! Queues: a live (paced) source drops the oldest waiting frame when inference is behind;
//! an unpaced one waits, so nothing is lost and a replay is reproducible. Features wait for
//! `post` (cheap, and a window must not lose frames silently). Pose messages drop the oldest
//! when the broker is slow or away. Every drop is counted and reported in stats.
//!
//! Shutdown (signal, or the source ending): capture stops; each stage drains its input queue
//! and closes its output; `post` flushes the windows (the last frames' results, as the
//! official demo does at a track's end); the publisher sends what is queued, then the retained
//! `offline`, and disconnects. The whole stop must finish within `pipeline.shutdown_timeout_s`,
//! else the daemon reports it and exits non-zero. A stage that fails or panics stops the
//! others the same way.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, SourceConfig};
use crate::detect::finder::Finder;
use crate::model::{Bundle, Target};
use crate::model::{Projector, Stepper};
use crate::mqtt::publish;
use crate::queue;
use crate::smpl::joints::Skeleton;
use crate::source::{files::Files, synthetic::Synthetic, FrameSource};
use crate::stages::capture::capture;
use crate::stages::crops::CropSaver;
use crate::stages::find::Find;
use crate::stages::infer::{Features, Infer};
use crate::stages::output::{Discard, Outbox, Publisher};
use crate::stages::post::Post;
use crate::telemetry::stats::{self, Counters, MqttCounters, Reporter};
use crate::telemetry::systemd;
use crate::telemetry::Notice;
use crate::window::assemble::Assembler;

/// Results waiting for the post thread, besides one per worker.
const FEATURE_QUEUE: usize = 4;

/// A started daemon. Dropping it does not stop it: call [`Running::stop`] or send a signal,
/// then [`Running::wait`].
pub struct Running {
    /// Cancelled by SIGTERM/SIGINT, by [`Running::stop`], or by a stage that failed: stops the
    /// source, after which the pipeline drains.
    shutdown: CancellationToken,
    /// Cancelled once the pipeline threads are done or the deadline passed: ends the io thread's
    /// tasks (the publisher has by then seen its queue close).
    io_stop: CancellationToken,
    stages: Vec<JoinHandle<Result<()>>>,
    io: JoinHandle<Result<()>>,
    counters: Arc<Counters>,
    mqtt_counters: Arc<MqttCounters>,
    gauges: Vec<queue::Gauge>,
    shutdown_timeout: Duration,
    /// The span the daemon was started in, entered again by [`Running::wait`].
    span: tracing::Span,
}

/// What a finished run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub frames_in: u64,
    pub frames_dropped: u64,
    /// Left out by the model's rate (`pipeline.model_fps`).
    pub frames_strided: u64,
    pub messages_out: u64,
    pub messages_dropped: u64,
}

/// The SMPL skeleton for joints, when `model.smpl_file` names one; says once which it is.
fn load_skeleton(file: Option<&Path>) -> Result<Option<Arc<Skeleton>>> {
    let Some(file) = file else {
        tracing::info!(
            "No SMPL model file ([model] smpl_file): messages carry θ, β and cameras, no joints."
        );
        return Ok(None);
    };
    let skeleton = Skeleton::load(file).with_context(|| {
        "[model] smpl_file: give the SMPL model .npz (e.g. SMPL_NEUTRAL.npz of the smplx \
         package), or remove the key to publish without joints"
            .to_string()
    })?;
    tracing::info!(file = %file.display(), "SMPL model loaded: messages carry 24 posed joints.");
    Ok(Some(Arc::new(skeleton)))
}

/// What a daemon is built from: the source, the person finder, the models and where the
/// messages go. [`Parts::load`] makes them from a config; in-process tests swap any of them
/// (a scripted source or detector, a backbone of chosen speed, a channel publisher).
pub struct Parts {
    pub source: Box<dyn FrameSource>,
    pub finder: Finder,
    pub backbone: Box<dyn Features>,
    pub projector: Projector,
    pub stepper: Stepper,
    /// Carried in every message (`model.json`'s `model_id`).
    pub model_id: String,
    /// Posed joints in the messages, when `model.smpl_file` names the SMPL model.
    pub skeleton: Option<Arc<Skeleton>>,
    pub publisher: Arc<dyn Publisher>,
}

impl Parts {
    /// Loads the models, the person detector and the SMPL model, and opens the source.
    ///
    /// # Errors
    /// Unreadable or wrong models, a source that cannot be opened: each naming the input and
    /// the fix.
    pub fn load(config: &Config) -> Result<Parts> {
        let dir = &config.model.dir;
        let half = config.model.half_floats;
        if half && !crate::model::native_half_floats() {
            tracing::warn!(
                "[model] half_floats: this CPU has no native f16 arithmetic, so tract emulates \
                 it, several times slower than f32. It pays on ARMv8.2 cores (Pi 5, Jetson Orin) \
                 only."
            );
        }
        let target = crate::model::device::select(config.model.device)?;
        if target == Target::Cuda {
            // The first start on a machine compiles tract's GPU kernels (about a minute on a
            // server GPU; cached after, see the unit's CacheDirectory=).
            systemd::waiting(
                "loading the models on the GPU (the first start compiles kernels)",
                Duration::from_secs(600),
            );
        }
        let bundle = crate::model::with_device(target, || {
            crate::model::with_half_floats(half, || Bundle::load(dir, config.model.int8))
        })
        .with_context(|| {
            format!("loading the models of [model] dir = {:?}", dir.display().to_string())
        })?;
        if !bundle.trained {
            tracing::warn!(dir = %dir.display(), "Model weights are random (untrained): poses are meaningless.");
        }
        let skeleton = load_skeleton(config.model.smpl_file.as_deref())?;
        tracing::info!(
            dir = %dir.display(),
            backbone = %bundle.backbone.precision(),
            head = %bundle.streaming.precision(),
            backbone_on = %bundle.backbone.target(),
            head_on = %bundle.streaming.target(),
            feature = bundle.backbone.feature_len(),
            model_id = %bundle.model_id,
            "Models loaded."
        );
        // Loading peaks at about three times the weights; give what it freed back (memory.rs).
        let before = crate::telemetry::memory::rss_bytes();
        if crate::telemetry::memory::release_freed() {
            let mb = |b: Option<u64>| b.map_or(0, |b| b >> 20);
            tracing::debug!(
                before_mb = mb(before),
                after_mb = mb(crate::telemetry::memory::rss_bytes()),
                "Freed memory returned."
            );
        }
        crate::model::set_threads(config.model.threads).with_context(|| {
            format!("starting {} threads for [model] threads", config.model.threads)
        })?;
        let finder = crate::model::with_device(target, || Finder::new(&config.people))?;
        let source = open_source(&config.source)?;
        tracing::info!(source = %source.describe(), "Source opened.");
        let publisher: Arc<dyn Publisher> = match &config.mqtt {
            Some(m) => Arc::new(publish::Mqtt::new(m.settings.clone(), m.connect_timeout)),
            None => Arc::new(Discard::default()),
        };
        let Bundle { backbone, streaming, model_id, .. } = bundle;
        let (projector, stepper) = streaming.into_parts();
        Ok(Parts {
            source,
            finder,
            backbone: Box::new(backbone),
            projector,
            stepper,
            model_id,
            skeleton,
            publisher,
        })
    }
}

/// Loads the models, opens the source, connects to the broker and starts the pipeline:
/// [`start_with`] the [`Parts::load`]ed parts.
///
/// # Errors
/// Everything that can be wrong at start-up, each naming the input and the fix: unreadable or
/// wrong models, a source that cannot be opened, a broker that does not accept a connection
/// within `mqtt.connect_timeout_s` (0: start-up waits for it as long as it takes). Nothing is
/// left running on error.
pub fn start(config: &Config) -> Result<Running> {
    // Every event of this daemon, on every thread it starts, carries its device id (a journal
    // field under systemd: telemetry::log).
    let _daemon = tracing::info_span!("daemon", device_id = %config.device_id).entered();
    tracing::info!(config = %config.summary(), "Starting.");
    start_with(config, Parts::load(config)?)
}

/// Starts the pipeline on `parts`, with the queues, timers and limits of `config` (its
/// source, model and `[mqtt]` sections are what [`Parts::load`] reads; they are not used
/// here).
///
/// # Errors
/// A publisher that cannot get ready ([`Publisher::wait_ready`]), a thread that cannot be
/// started. Nothing is left running on error.
pub fn start_with(config: &Config, parts: Parts) -> Result<Running> {
    let Parts { source, finder, backbone, projector, stepper, model_id, skeleton, publisher } =
        parts;
    // The workers: one more state each over the same weights.
    let workers = config.workers.max(1);
    let crops = match &config.save_crops {
        Some((dir, max)) => Some(Arc::new(CropSaver::new(dir, *max)?)),
        None => None,
    };
    let first = Infer { backbone, projector, crop_scale: config.crop_scale, crops };
    let mut infers = Vec::with_capacity(workers);
    for _ in 1..workers {
        infers.push(first.fork().context("making an inference worker (pipeline.workers)")?);
    }
    infers.insert(0, first);
    let shutdown = CancellationToken::new();
    let io_stop = CancellationToken::new();
    let counters = Arc::new(Counters::default());
    let mqtt_counters = publisher.counters();
    // Frames for inference: drop-oldest for a live source, wait for an unpaced one.
    let (frame_tx, frame_rx) = queue::bounded("frames", config.frame_queue);
    // Frames and their people for the workers: `find` waits while they are all busy (so the
    // frame queue is where frames drop).
    let (job_tx, job_rx) = queue::bounded("jobs", workers);
    // Per-frame model outputs for the post thread: they wait (post is fast; windows need every
    // frame they are told about).
    let (feature_tx, feature_rx) = queue::bounded("features", FEATURE_QUEUE + workers);
    // Encoded pose messages for the publisher: drop-oldest (a stale pose is worth nothing).
    let pose_cap = config.mqtt.as_ref().map_or(64, |m| m.queue);
    let (pose_tx, pose_rx) = queue::bounded("poses", pose_cap);
    // Stats reports and camera states for the publisher: a few waiting, drop-oldest.
    let (notice_tx, notice_rx) = queue::bounded("notices", 8);
    let gauges = vec![frame_tx.gauge(), job_tx.gauge(), feature_tx.gauge(), pose_tx.gauge()];

    let outbox = Outbox { poses: pose_rx, notices: notice_rx, stop: io_stop.clone() };
    let io = spawn_io(
        config.stats_interval,
        publisher.clone(),
        outbox,
        notice_tx.clone(),
        Reporter::new(counters.clone(), mqtt_counters.clone(), gauges.clone()),
        shutdown.clone(),
    )?;
    if let Err(e) = publisher.wait_ready(&shutdown, &|| io.is_finished()) {
        io_stop.cancel();
        shutdown.cancel();
        return Err(e);
    }

    let live = source.is_live();
    let rate = config.model_rate;
    let find = Find { finder };
    let assembler = Assembler::new(config.device_id.clone(), model_id).with_skeleton(skeleton);
    let post = Post { stepper, assembler };
    let mut stages = vec![
        spawn_stage("capture", &shutdown, {
            let (counters, shutdown) = (counters.clone(), shutdown.clone());
            move || capture(source, live, rate, frame_tx, notice_tx, &counters, &shutdown)
        })?,
        spawn_stage("find", &shutdown, {
            let (counters, feature_tx) = (counters.clone(), feature_tx.clone());
            move || find.run(frame_rx, job_tx, feature_tx, &counters)
        })?,
    ];
    for (k, infer) in infers.into_iter().enumerate() {
        let (counters, job_rx, feature_tx) = (counters.clone(), job_rx.clone(), feature_tx.clone());
        let run = move || infer.run(job_rx, feature_tx, &counters);
        stages.push(spawn_stage(&format!("infer-{k}"), &shutdown, run)?);
    }
    drop((job_rx, feature_tx)); // the queues close when their stages are done
    stages.push(spawn_stage("post", &shutdown, {
        let counters = counters.clone();
        move || post.run(feature_rx, pose_tx, &counters)
    })?);
    tracing::info!("Running.");
    systemd::ready();
    Ok(Running {
        shutdown,
        io_stop,
        stages,
        io,
        counters,
        mqtt_counters,
        gauges,
        shutdown_timeout: config.shutdown_timeout,
        span: tracing::Span::current(),
    })
}

/// Opens the configured source (the daemon's, and `smplcast bench --only source`'s).
///
/// # Errors
/// The source's start-up error, naming the input and the fix.
pub fn open_source(config: &SourceConfig) -> Result<Box<dyn FrameSource>> {
    Ok(match config {
        SourceConfig::Synthetic { width, height, fps, frames } => {
            Box::new(Synthetic::new(*width, *height, *fps, *frames))
        }
        SourceConfig::Files { path, fps, looping } => {
            Box::new(Files::open(path, *fps, *looping).context("opening [source]")?)
        }
        #[cfg(feature = "v4l2")]
        SourceConfig::V4l2 { device, width, height, fps, format, buffers, stall_timeout } => {
            let settings = crate::source::v4l2::Settings {
                device: device.clone(),
                width: *width,
                height: *height,
                fps: *fps,
                format: format.clone(),
                buffers: *buffers,
                stall_timeout: *stall_timeout,
            };
            Box::new(crate::source::v4l2::Camera::open(settings).context("opening [source]")?)
        }
        #[cfg(not(feature = "v4l2"))]
        SourceConfig::V4l2 { .. } => {
            bail!("source.kind = \"v4l2\": this smplcast was built without V4L2 support")
        }
        #[cfg(feature = "gstreamer")]
        SourceConfig::Gstreamer(settings) => Box::new(
            crate::source::gst::Stream::open(settings.clone()).context("opening [source]")?,
        ),
        #[cfg(not(feature = "gstreamer"))]
        SourceConfig::Gstreamer(_) => {
            bail!("[source]: this smplcast was built without GStreamer support")
        }
    })
}

impl Running {
    /// Asks the daemon to stop (as SIGTERM does).
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// A token cancelled when the daemon is stopping.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The pipeline's and the publisher's counters (the bench reads the stage timers).
    pub fn counters(&self) -> (Arc<Counters>, Arc<MqttCounters>) {
        (self.counters.clone(), self.mqtt_counters.clone())
    }

    /// A stats reporter of its own over this daemon's counters (for the demo's live line).
    pub fn reporter(&self) -> Reporter {
        Reporter::new(self.counters.clone(), self.mqtt_counters.clone(), self.gauges.clone())
    }

    /// Waits until the source ends or a stop is requested, then for the pipeline to drain and
    /// the publisher to say `offline`, within the shutdown timeout.
    ///
    /// # Errors
    /// A stage that failed or panicked, or a stop that took longer than the timeout.
    pub fn wait(self) -> Result<Summary> {
        let _span = self.span.clone().entered();
        let mut deadline = None;
        let mut problems = Vec::new();
        let mut stages: Vec<_> = self.stages.into_iter().map(Some).collect();
        // Stages end in pipeline order; a stop request starts the clock.
        while stages.iter().any(Option::is_some) {
            if deadline.is_none() && self.shutdown.is_cancelled() {
                deadline = Some(Instant::now() + self.shutdown_timeout);
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                problems.push(format!(
                    "the pipeline did not stop within {:?} (pipeline.shutdown_timeout_s); \
                     results in flight are lost",
                    self.shutdown_timeout
                ));
                break;
            }
            for slot in stages.iter_mut() {
                if slot.as_ref().is_some_and(JoinHandle::is_finished) {
                    if let Some(handle) = slot.take() {
                        let name = handle.thread().name().unwrap_or("stage").to_string();
                        match handle.join() {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => problems.push(format!("{name}: {e:#}")),
                            Err(_) => problems.push(format!("{name}: panicked")),
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // The pose queue is closed now and the publisher flushes it, says `offline` and
        // disconnects. After a timeout the stages may still hold it: stop the publisher.
        if stages.iter().any(Option::is_some) {
            self.io_stop.cancel();
        }
        let io_deadline = Instant::now() + publish::FLUSH_DEADLINE + Duration::from_secs(1);
        while !self.io.is_finished() && Instant::now() < io_deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.io_stop.cancel();
        if self.io.is_finished() {
            match self.io.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => problems.push(format!("io: {e:#}")),
                Err(_) => problems.push("io: panicked".into()),
            }
        } else {
            problems.push("io: the MQTT publisher did not finish its flush".into());
        }
        let mut reporter =
            Reporter::new(self.counters.clone(), self.mqtt_counters.clone(), self.gauges.clone());
        let r = reporter.report();
        let summary = Summary {
            frames_in: r.frames_in,
            frames_dropped: r.frames_dropped,
            frames_strided: r.frames_strided,
            messages_out: r.messages_out,
            messages_dropped: r.messages_dropped,
        };
        tracing::info!(
            frames_in = summary.frames_in,
            frames_dropped = summary.frames_dropped,
            frames_strided = summary.frames_strided,
            messages_out = summary.messages_out,
            messages_dropped = summary.messages_dropped,
            mqtt_queued = self.mqtt_counters.queued.load(Ordering::Relaxed),
            "Stopped."
        );
        if problems.is_empty() {
            Ok(summary)
        } else {
            bail!("{}", problems.join("; "))
        }
    }
}

/// Spawns a named pipeline thread. If it fails or panics, `shutdown` is cancelled so the other
/// stages stop too.
fn spawn_stage(
    name: &str,
    shutdown: &CancellationToken,
    body: impl FnOnce() -> Result<()> + Send + 'static,
) -> Result<JoinHandle<Result<()>>> {
    /// Cancels the token when dropped during a panic or after a failure.
    struct StopOthers(CancellationToken, bool);
    impl Drop for StopOthers {
        fn drop(&mut self) {
            if self.1 || std::thread::panicking() {
                self.0.cancel();
            }
        }
    }
    let shutdown = shutdown.clone();
    let span = tracing::Span::current();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _span = span.entered();
            let mut guard = StopOthers(shutdown, false);
            let result = body();
            if let Err(e) = &result {
                tracing::error!(error = format!("{e:#}"), "Pipeline stage failed; stopping.");
                guard.1 = true;
            }
            result
        })
        .with_context(|| format!("cannot start the {name} thread"))?;
    Ok(thread)
}

/// The `io` thread: a current-thread tokio runtime with the signal handler, the systemd
/// notifier, the stats timer and the publisher.
fn spawn_io(
    stats_interval: Option<Duration>,
    publisher: Arc<dyn Publisher>,
    outbox: Outbox,
    notice_tx: queue::Sender<Notice>,
    reporter: Reporter,
    shutdown: CancellationToken,
) -> Result<JoinHandle<Result<()>>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let span = tracing::Span::current();
    let thread = std::thread::Builder::new()
        .name("io".into())
        .spawn(move || {
            // The current-thread runtime polls its tasks here, inside the span.
            let _span = span.entered();
            rt.block_on(async move {
                let io_stop = outbox.stop.clone();
                tokio::spawn(on_signal(shutdown.clone()));
                tokio::spawn(systemd::run(reporter.fresh(), shutdown, io_stop.clone()));
                if let Some(every) = stats_interval {
                    tokio::spawn(stats::every(every, reporter, notice_tx, io_stop));
                }
                publisher.run(outbox).await
            })
        })
        .context("cannot start the io thread")?;
    Ok(thread)
}

/// Cancels `shutdown` on SIGTERM or SIGINT. A second signal exits at once.
async fn on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::error!("Cannot install the SIGTERM/SIGINT handlers; stop with SIGKILL.");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "Stopping.");
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::warn!("Second signal: exiting without flushing.");
    std::process::exit(130);
}

/// `smplcast check-config`: loads and checks a config file, and that its models load.
///
/// # Errors
/// The config's problems, or the models'.
pub fn check_config(file: &Path) -> Result<Config> {
    let config = Config::load(file)?;
    crate::model::with_half_floats(config.model.half_floats, || {
        Bundle::load(&config.model.dir, config.model.int8)
    })
    .with_context(|| {
        format!("{}: [model] dir = {:?}", file.display(), config.model.dir.display().to_string())
    })?;
    Ok(config)
}
