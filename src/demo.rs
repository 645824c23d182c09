//! `smplcast demo` and `smplcast check-models`: the model core on the built-in synthetic source,
//! publishing every result to an MQTT broker: an embedded one (rumqttd on loopback) unless
//! `--mqtt HOST:PORT` names another, with a subscriber that reports what it receives.
//!
//! Threads: the calling thread runs capture (synthetic), the model, the window and encoding;
//! an `io` thread runs a small tokio runtime for the publisher, the watching subscriber and
//! Ctrl-C; the embedded broker has its own thread. The pose queue between inference and the
//! publisher is drop-oldest (64), so a slow broker never stalls inference. The daemon's
//! pipeline (sources, tracking, stats) replaces this loop with the pipeline issue.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use crate::model::{Backbone, Streaming, IMAGE_SIZE, SEQ_LEN};
use crate::window::{TrackWindow, LOOKAHEAD};
use crate::{broker, encode, publish, queue, synthetic, wire};

/// Pose messages waiting for the publisher.
const POSE_QUEUE: usize = 64;

pub fn default_models() -> PathBuf {
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
    /// `model.json`'s `model_id` ("unknown" without one).
    model_id: String,
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
    let manifest: serde_json::Value = std::fs::read_to_string(dir.join("model.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let model_id = manifest["model_id"].as_str().unwrap_or("unknown").to_string();
    if manifest["trained"] == false {
        tracing::warn!(dir = %dir.display(), "Model weights are random (untrained): poses are meaningless.");
    }
    tracing::info!(
        dir = %dir.display(),
        backbone = %backbone.precision(),
        feature = backbone.feature_len(),
        "Model loaded."
    );
    Ok(Loaded { backbone, streaming, model_id })
}

/// What `demo` runs; see the `Demo` command's flags.
pub struct DemoOptions {
    pub dir: PathBuf,
    pub int8: bool,
    pub frames: u64,
    /// External broker; `None` starts the embedded one (unless `no_mqtt`).
    pub mqtt: Option<(String, u16)>,
    /// Run the model only, publish nothing.
    pub no_mqtt: bool,
    pub device: String,
}

pub fn parse_broker(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s.rsplit_once(':').ok_or("expected HOST:PORT, e.g. 127.0.0.1:1883")?;
    let port = port.parse().map_err(|_| format!("port {port:?} is not a number 1-65535"))?;
    Ok((host.to_string(), port))
}

/// Capture time of a frame: (UTC µs since the epoch, CLOCK_MONOTONIC ns).
fn now_times() -> (i64, u64) {
    let utc = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    let mono = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let mono_ns = u64::try_from(mono.tv_sec).unwrap_or(0) * 1_000_000_000
        + u64::try_from(mono.tv_nsec).unwrap_or(0);
    (utc, mono_ns)
}

/// Runs the I/O side on its own thread: Ctrl-C cancels `shutdown`; with a broker, the
/// publisher runs until `shutdown` and then says `offline`.
/// What the demo's own subscriber has received.
#[derive(Debug, Default)]
struct Received {
    messages: AtomicU64,
    bytes: AtomicU64,
    last_seq: AtomicU64,
    undecodable: AtomicU64,
}

/// Subscribes to the pose topic and counts and decodes what arrives, until `shutdown`.
async fn watch(
    settings: publish::Settings,
    received: Arc<Received>,
    subscribed: std::sync::mpsc::Sender<()>,
    shutdown: CancellationToken,
) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let id = format!("smplcast-demo-watch-{}", std::process::id());
    let (client, mut eventloop) =
        AsyncClient::new(MqttOptions::new(id, &settings.host, settings.port), 16);
    if client.subscribe(settings.topic("pose"), QoS::AtMostOnce).await.is_err() {
        return;
    }
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                let _ = subscribed.send(());
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                received.messages.fetch_add(1, Ordering::Relaxed);
                received.bytes.fetch_add(p.payload.len() as u64, Ordering::Relaxed);
                match wire::decode(&p.payload) {
                    Ok(msg) => received.last_seq.store(msg.seq, Ordering::Relaxed),
                    Err(_) => {
                        received.undecodable.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn spawn_io(
    mqtt: Option<publish::Settings>,
    pose_rx: queue::Receiver<Vec<u8>>,
    counters: Arc<publish::Counters>,
    received: Arc<Received>,
    subscribed: std::sync::mpsc::Sender<()>,
    shutdown: CancellationToken,
) -> Result<std::thread::JoinHandle<Result<()>>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let thread = std::thread::Builder::new().name("io".into()).spawn(move || {
        rt.block_on(async move {
            let on_signal = shutdown.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    on_signal.cancel();
                }
            });
            match mqtt {
                Some(settings) => {
                    tokio::spawn(watch(settings.clone(), received, subscribed, shutdown.clone()));
                    publish::run(settings, pose_rx, counters, shutdown).await?;
                }
                None => shutdown.cancelled().await,
            }
            Ok(())
        })
    })?;
    Ok(thread)
}

pub fn run(opts: DemoOptions) -> Result<()> {
    let dir = &opts.dir;
    let Loaded { mut backbone, mut streaming, model_id } = load(dir, opts.int8)?;

    let shutdown = CancellationToken::new();
    let (pose_tx, pose_rx) = queue::bounded("poses", POSE_QUEUE);
    let counters = Arc::new(publish::Counters::default());
    let broker = match (&opts.mqtt, opts.no_mqtt) {
        (_, true) => None,
        (Some(external), false) => Some(external.clone()),
        (None, false) => {
            let port = broker::start()?;
            println!("embedded MQTT broker on 127.0.0.1:{port} (`smplcast sub --port {port}`)");
            Some(("127.0.0.1".to_string(), port))
        }
    };
    let mqtt = broker.map(|(host, port)| publish::Settings {
        host,
        port,
        prefix: "smplcast".into(),
        device_id: opts.device.clone(),
        pose_qos: publish::QoS::AtMostOnce,
        keep_alive: Duration::from_secs(10),
        client_cap: 64,
    });
    let publishing = mqtt.is_some();
    let received = Arc::new(Received::default());
    let (subscribed_tx, subscribed) = std::sync::mpsc::channel();
    let io = spawn_io(
        mqtt,
        pose_rx,
        counters.clone(),
        received.clone(),
        subscribed_tx,
        shutdown.clone(),
    )?;
    if publishing && subscribed.recv_timeout(Duration::from_secs(5)).is_err() {
        tracing::warn!(
            "The demo's subscriber is not subscribed yet; its counts may miss the first messages."
        );
    }

    // The synthetic source gives the crop itself: the "image" is the 224×224 crop, the person
    // region is the full frame (track 0), until the pipeline issue brings real sources.
    let side = IMAGE_SIZE as u32;
    let crop = encode::Crop { cx: side as f32 / 2.0, cy: side as f32 / 2.0, side: side as f32 };
    let mut window = TrackWindow::new();
    let mut image = Vec::new();
    let mut times = std::collections::VecDeque::new();
    let (mut last, mut seq, mut bb_time, mut head_time) =
        (Instant::now(), 0u64, Duration::ZERO, Duration::ZERO);
    let mut frame = 0u64;
    while (opts.frames == 0 || frame < opts.frames) && !shutdown.is_cancelled() {
        times.push_back((frame, now_times()));
        if times.len() > SEQ_LEN {
            times.pop_front();
        }
        synthetic::crop(frame, &mut image);
        let t0 = Instant::now();
        let feature = backbone.run(&image)?;
        let t1 = Instant::now();
        let cache = streaming.project(&feature)?.remove(0);
        let mut ready: Vec<_> = window.push(frame, cache).into_iter().collect();
        if opts.frames != 0 && frame + 1 == opts.frames {
            ready.extend(window.flush());
        }
        for r in &ready {
            let out = streaming.step(&[r.refs()])?.remove(0);
            let (utc_us, mono_ns) =
                times.iter().find(|(f, _)| *f == r.frame_id).map_or_else(now_times, |(_, t)| *t);
            let person = encode::person(
                0,
                1.0,
                [0.0, 0.0, side as f32, side as f32],
                crop,
                [side, side],
                &out,
            );
            let theta0 = [person.pose[0], person.pose[1], person.pose[2]];
            let msg = wire::PoseMsg {
                v: wire::SCHEMA_VERSION,
                dev: opts.device.clone(),
                seq,
                frame: r.frame_id,
                utc_us,
                mono_ns,
                model: model_id.clone(),
                win: wire::Window {
                    len: SEQ_LEN as u8,
                    lookahead: if r.repeated { 0 } else { LOOKAHEAD as u8 },
                },
                img: [side, side],
                people: vec![person],
            };
            if publishing {
                // Drop-oldest queue: never blocks inference; drops are counted.
                pose_tx.send(wire::encode(&msg))?;
            }
            seq += 1;
            let end = opts.frames != 0 && r.frame_id + 1 == opts.frames;
            if last.elapsed() >= Duration::from_secs(1) || end {
                let n = (frame + 1) as f64;
                println!(
                    "frame {frame:>5}  result for frame {:>5}  backbone {:6.1} ms  head {:5.2} ms  \
                     root θ [{:+.3} {:+.3} {:+.3}]  β0 {:+.3}  cam s {:.3}  {}",
                    r.frame_id,
                    bb_time.as_secs_f64() * 1e3 / n,
                    head_time.as_secs_f64() * 1e3 / n,
                    theta0[0],
                    theta0[1],
                    theta0[2],
                    out.shape[0],
                    out.cam[0],
                    mqtt_summary(publishing, &counters, &received),
                );
                last = Instant::now();
            }
        }
        bb_time += t1 - t0;
        head_time += t1.elapsed();
        frame += 1;
    }
    // Let the watching subscriber see the last messages before the publisher disconnects.
    let deadline = Instant::now() + Duration::from_secs(2);
    while publishing
        && received.messages.load(Ordering::Relaxed) < seq
        && Instant::now() < deadline
        && !shutdown.is_cancelled()
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(pose_tx);
    shutdown.cancel();
    io.join().map_err(|_| anyhow::anyhow!("the io thread panicked"))??;
    println!(
        "{frame} frames in, {seq} results out; {}",
        mqtt_summary(publishing, &counters, &received)
    );
    anyhow::ensure!(seq == frame || opts.frames == 0, "every frame must get one result");
    Ok(())
}

fn mqtt_summary(publishing: bool, counters: &publish::Counters, received: &Received) -> String {
    if !publishing {
        return "MQTT off".into();
    }
    let got = received.messages.load(Ordering::Relaxed);
    let avg = received.bytes.load(Ordering::Relaxed) / got.max(1);
    format!(
        "MQTT: {} sent, {} dropped; subscriber got {got} ({avg} B each, last seq {}, {} undecodable)",
        counters.queued.load(Ordering::Relaxed),
        counters.publish_dropped.load(Ordering::Relaxed),
        received.last_seq.load(Ordering::Relaxed),
        received.undecodable.load(Ordering::Relaxed),
    )
}

pub fn check_models(dir: &Path) -> Result<()> {
    let Loaded { backbone, streaming, .. } = load(dir, false)?;
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
