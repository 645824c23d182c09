//! `smplcast demo` and `smplcast check-models`. The demo is the daemon ([`smplcast::daemon`]) on a
//! built-in configuration: the synthetic source, the bundled models, and an embedded MQTT
//! broker (rumqttd on loopback) unless `--mqtt HOST:PORT` names another. A subscriber of its
//! own prints one line per second of what it receives next to the daemon's stats.
//!
//! Threads: the daemon's (capture, infer, post, io), the embedded broker's, and `demo-watch`
//! (a small tokio runtime for the watching subscriber). The calling thread prints.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use crate::cli::broker;
use smplcast::config::{Config, ModelConfig, People, SourceConfig};
use smplcast::model::Bundle;
use smplcast::mqtt::client::{Incoming, Subscriber};
use smplcast::mqtt::{self, QoS};
use smplcast::{daemon, wire};

pub fn default_models() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let full = root.join("models/generated/full");
    if full.join("backbone.onnx").is_file() {
        full
    } else {
        root.join("models/fixtures/narrow")
    }
}

/// What `demo` runs: the `demo` command's flags.
#[derive(clap::Args)]
pub struct DemoOptions {
    /// Model directory (from `models/run convert.py`); default: models/generated/full when
    /// it exists, else the bundled narrow test model.
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Use the int8 backbone (backbone.int8.onnx).
    #[arg(long)]
    pub int8: bool,
    /// Frames to run (0: until interrupted).
    #[arg(long, default_value_t = 100)]
    pub frames: u64,
    /// Publish to this MQTT broker (HOST:PORT) instead of the embedded one.
    #[arg(long, value_parser = parse_broker, conflicts_with = "no_mqtt")]
    pub mqtt: Option<(String, u16)>,
    /// Publish nothing: run the model only.
    #[arg(long)]
    pub no_mqtt: bool,
    /// Device id in topics and messages.
    #[arg(long, default_value = "demo")]
    pub device: String,
    /// Source frame rate (0: as fast as the model goes, nothing dropped).
    #[arg(long, default_value_t = 0.0)]
    pub fps: f64,
    /// Your SMPL model file (.npz, e.g. SMPL_NEUTRAL.npz of the smplx package): adds 24
    /// posed 3D joints per person to the messages.
    #[arg(long, value_name = "FILE")]
    pub smpl_file: Option<PathBuf>,
    /// Also serve the live viewer (docs/VIEWER.md) at this address, for the embedded
    /// broker: open http://127.0.0.1:8090/ in a browser.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8090")]
    pub view: Option<std::net::SocketAddr>,
    /// Find and track people with this detector instead of taking the whole frame as one
    /// person; without FILE, the daemon's default (models/nanodet/nanodet.onnx). Use with
    /// `--images`: the synthetic pattern has nobody in it.
    #[arg(long, value_name = "FILE", num_args = 0..=1,
          default_missing_value = smplcast::config::DEFAULT_DETECTOR)]
    pub detector: Option<PathBuf>,
    /// Replay this directory of PNG/JPEG frames (in name order) instead of the synthetic
    /// pattern: once, or in a loop with `--frames 0`.
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
}

impl DemoOptions {
    /// The model directory: `--models`, or the default.
    pub fn dir(&self) -> PathBuf {
        self.models.clone().unwrap_or_else(default_models)
    }
}

pub fn parse_broker(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s.rsplit_once(':').ok_or("expected HOST:PORT, e.g. 127.0.0.1:1883")?;
    let port = port.parse().map_err(|_| format!("port {port:?} is not a number 1-65535"))?;
    Ok((host.to_string(), port))
}

/// The demo's configuration: the daemon's defaults with the demo's flags.
fn config(opts: &DemoOptions, broker: Option<mqtt::Broker>) -> Config {
    let source = match &opts.images {
        None => SourceConfig::Synthetic {
            width: 640,
            height: 480,
            fps: opts.fps,
            frames: (opts.frames > 0).then_some(opts.frames),
        },
        // Once through, or round and round until interrupted with `--frames 0`.
        Some(dir) => {
            SourceConfig::Files { path: dir.clone(), fps: opts.fps, looping: opts.frames == 0 }
        }
    };
    let model = ModelConfig {
        dir: opts.dir(),
        int8: opts.int8,
        half_floats: false,
        threads: 1,
        device: smplcast::model::Device::Cpu,
        smpl_file: opts.smpl_file.clone(),
    };
    let people = match &opts.detector {
        None => People::Region(None),
        Some(file) => People::detected(file.clone()),
    };
    let mut config = Config::builtin(&opts.device, source, model, people, broker);
    // Stats on `<prefix>/demo/stats` every second, as often as the demo prints its own line.
    config.stats_interval = Some(Duration::from_secs(1));
    config
}

/// What the demo's own subscriber has received.
#[derive(Debug, Default)]
pub(crate) struct Received {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub undecodable: AtomicU64,
    /// The last message decoded.
    pub last: Mutex<Option<wire::PoseMsg>>,
    /// With `record`: per message decoded, its frame number and the milliseconds from the
    /// frame's capture (`mono_ns`) to its arrival here (the bench; the demo runs unbounded).
    pub record: bool,
    pub latencies: Mutex<Vec<(u64, f64)>>,
}

/// Subscribes to the pose topic and counts and decodes what arrives, until `stop`.
async fn watch(
    settings: mqtt::Settings,
    received: Arc<Received>,
    subscribed: std::sync::mpsc::Sender<()>,
    stop: CancellationToken,
) {
    let id = format!("smplcast-demo-watch-{}", std::process::id());
    let topics = vec![(settings.topic("pose"), QoS::AtMostOnce)];
    let mut subscriber = Subscriber::new(&settings.broker, id, topics);
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return,
            next = subscriber.next() => next,
        };
        match next {
            Ok(Incoming::Subscribed) => {
                let _ = subscribed.send(());
            }
            Ok(Incoming::Message(p)) => {
                received.messages.fetch_add(1, Ordering::Relaxed);
                received.bytes.fetch_add(p.payload.len() as u64, Ordering::Relaxed);
                match wire::decode(&p.payload) {
                    Ok(msg) => {
                        let now = smplcast::source::CaptureTime::now().mono_ns;
                        let ms = now.saturating_sub(msg.mono_ns) as f64 / 1e6;
                        if let (true, Ok(mut l)) = (received.record, received.latencies.lock()) {
                            l.push((msg.frame, ms));
                        }
                        if let Ok(mut last) = received.last.lock() {
                            *last = Some(msg);
                        }
                    }
                    Err(_) => {
                        received.undecodable.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "The demo's subscriber cannot connect.");
                return;
            }
        }
    }
}

/// Starts the watching subscriber on its own thread; returns once it is subscribed (or 5 s).
pub(crate) fn spawn_watch(
    settings: mqtt::Settings,
    received: Arc<Received>,
    stop: CancellationToken,
) -> Result<(std::thread::JoinHandle<()>, bool)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (subscribed_tx, subscribed) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("demo-watch".into())
        .spawn(move || rt.block_on(watch(settings, received, subscribed_tx, stop)))?;
    let ready = subscribed.recv_timeout(Duration::from_secs(5)).is_ok();
    if !ready {
        tracing::warn!(
            "The demo's subscriber is not subscribed yet; its counts may miss the first messages."
        );
    }
    Ok((thread, ready))
}

pub fn run(opts: DemoOptions) -> Result<()> {
    anyhow::ensure!(
        opts.view.is_none() || (opts.mqtt.is_none() && !opts.no_mqtt),
        "--view serves the viewer for the embedded broker; with your own broker, run \
         `smplcast view --ws ws://BROKER:PORT` beside the demo (docs/VIEWER.md)"
    );
    let mut viewer = None;
    let broker = match (&opts.mqtt, opts.no_mqtt) {
        (_, true) => None,
        (Some((host, port)), false) => Some(mqtt::Broker::plain(host.clone(), *port)),
        (None, false) => {
            let ports = broker::start()?;
            let port = ports.mqtt;
            crate::say!("embedded MQTT broker on 127.0.0.1:{port} (`smplcast sub --port {port}`)");
            if let Some(listen) = opts.view {
                let settings = crate::cli::view::Settings {
                    listen,
                    ws: format!("ws://127.0.0.1:{}", ports.ws),
                    prefix: "smplcast".into(),
                    device: opts.device.clone(),
                };
                let server = crate::cli::view::serve(&settings)?;
                crate::say!("viewer on {} (MQTT over WebSocket: {})", server.url(), settings.ws);
                viewer = Some(server);
            }
            Some(broker::client(port))
        }
    };
    let config = config(&opts, broker);
    let received = Arc::new(Received::default());
    let watch_stop = CancellationToken::new();
    // The watcher and whether it subscribed before the daemon started (then it must see every
    // message of a finite run).
    let (watcher, watching_all) = match &config.mqtt {
        Some(m) => {
            let (thread, ready) =
                spawn_watch(m.settings.clone(), received.clone(), watch_stop.clone())?;
            (Some(thread), ready)
        }
        None => (None, false),
    };

    let running = daemon::start(&config)?;
    let stopping = running.shutdown_token();
    let mut reporter = running.reporter();
    let publishing = watcher.is_some();
    let line = |reporter: &mut smplcast::telemetry::stats::Reporter| {
        let r = reporter.report();
        crate::say!(
            "{:6.1} s  frames in {:5} ({:4.1}/s, {} dropped)  results {:5} ({:4.1}/s)  \
             inference {:6.1} ms  {}",
            r.uptime_s,
            r.frames_in,
            r.fps_in,
            r.frames_dropped,
            r.messages_out,
            r.fps_out,
            r.inference_ms,
            subscriber_summary(publishing, &received),
        )
    };
    // One line per second until the daemon stops (source ended, or Ctrl-C).
    let mut next = Instant::now() + Duration::from_secs(1);
    let waiter =
        std::thread::Builder::new().name("demo-wait".into()).spawn(move || running.wait())?;
    while !waiter.is_finished() {
        if Instant::now() >= next {
            if !line(&mut reporter) && !stopping.is_cancelled() {
                tracing::info!("stdout was closed: stopping, as on Ctrl-C.");
                stopping.cancel();
            }
            next += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let summary = waiter.join().map_err(|_| anyhow::anyhow!("the daemon panicked"))??;
    // Let the watching subscriber see the last messages.
    let deadline = Instant::now() + Duration::from_secs(2);
    while publishing
        && received.messages.load(Ordering::Relaxed) < summary.messages_out
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    watch_stop.cancel();
    if let Some(w) = watcher {
        let _ = w.join();
    }
    let _ = line(&mut reporter);
    crate::say!(
        "{} frames in, {} dropped, {} results out{}",
        summary.frames_in,
        summary.frames_dropped,
        summary.messages_out,
        if stopping.is_cancelled() { " (stopped)" } else { "" }
    );
    if opts.frames > 0 && !stopping.is_cancelled() {
        anyhow::ensure!(
            summary.messages_out == summary.frames_in - summary.frames_dropped,
            "every frame must get one result"
        );
        let (got, bad) = (
            received.messages.load(Ordering::Relaxed),
            received.undecodable.load(Ordering::Relaxed),
        );
        anyhow::ensure!(
            !watching_all || (got == summary.messages_out && bad == 0),
            "the demo's subscriber received {got} of {} messages ({bad} undecodable)",
            summary.messages_out
        );
    }
    drop(viewer);
    Ok(())
}

fn subscriber_summary(publishing: bool, received: &Received) -> String {
    if !publishing {
        return "MQTT off".into();
    }
    let got = received.messages.load(Ordering::Relaxed);
    let avg = received.bytes.load(Ordering::Relaxed) / got.max(1);
    let last = received.last.lock().ok().and_then(|l| l.clone());
    let what = last.map_or(String::new(), |m| {
        let p = m.people.first();
        format!(
            ", last seq {} frame {} people {} root θ [{}]",
            m.seq,
            m.frame,
            m.people.len(),
            p.map_or("-".into(), |p| format!(
                "{:+.2} {:+.2} {:+.2}",
                p.pose[0], p.pose[1], p.pose[2]
            ))
        )
    });
    format!(
        "| subscriber: {got} msgs, {avg} B each{what}, {} undecodable",
        received.undecodable.load(Ordering::Relaxed)
    )
}

pub fn check_models(dir: &Path) -> Result<()> {
    let bundle = Bundle::load(dir, false).with_context(|| format!("{}", dir.display()))?;
    crate::say!(
        "{}: backbone {} ({}-d features), model id {}{}",
        dir.display(),
        bundle.backbone.precision(),
        bundle.backbone.feature_len(),
        bundle.model_id,
        if bundle.trained { "" } else { " (untrained)" }
    );
    if let Ok(b) = smplcast::model::Backbone::load(&dir.join("backbone.int8.onnx"), 1) {
        crate::say!("{}: backbone.int8.onnx {}", dir.display(), b.precision());
    }
    crate::say!("{}: streaming temporal head {:?}", dir.display(), bundle.streaming.dims());
    Ok(())
}
