//! `smplcast sub`: subscribes to the pose, status and stats topics and prints each message as one JSON
//! line, for debugging a deployment from a terminal; with `--record FILE` it also writes every
//! message, raw, to a recording that `--replay FILE` ([`replay`]) republishes.
//!
//! Pose payloads are decoded with [`smplcast::wire::decode`]; payloads that do not decode are
//! printed as an `error` line, never dropped silently (and recorded as received).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use smplcast::mqtt::client::{self, Incoming, Message, Sender, Subscriber};
use smplcast::mqtt::{Broker, QoS};
use smplcast::wire;

/// What to subscribe to.
#[derive(Clone, Debug)]
pub struct Settings {
    pub broker: Broker,
    pub prefix: String,
    /// Device id, or `+` for every device.
    pub device: String,
    /// Stop after this many pose messages.
    pub count: Option<u64>,
    /// Also write every message to this recording.
    pub record: Option<PathBuf>,
    /// A consumer group: the pose topic as the shared subscription `$share/GROUP/…`.
    pub share: Option<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Line<'a> {
    Pose { topic: &'a str, pose: wire::PoseMsg },
    Status { topic: &'a str, status: &'a str, retained: bool },
    Stats { topic: &'a str, stats: serde_json::Value },
    Error { topic: &'a str, error: String },
}

/// Errors that end the subscriber.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Names the broker, why, and the flag to fix (the flags are named like the daemon's
    /// `[mqtt]` keys).
    #[error(transparent)]
    Mqtt(#[from] client::Error),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
    #[error("recording {path}: {source}")]
    Recording { path: PathBuf, source: wire::RecordingError },
}

/// A recording being written.
struct Recorder {
    path: PathBuf,
    out: BufWriter<File>,
    start: Instant,
}

impl Recorder {
    fn create(path: &Path) -> Result<Self, Error> {
        let failed = |source| Error::Recording { path: path.to_owned(), source };
        let file = File::create(path).map_err(|e| failed(e.into()))?;
        let mut out = BufWriter::new(file);
        let started_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let header = wire::Header { smplcast_recording: wire::RECORDING_VERSION, started_unix_ns };
        wire::write_header(&mut out, &header).map_err(failed)?;
        out.flush().map_err(|e| failed(e.into()))?;
        Ok(Recorder { path: path.to_owned(), out, start: Instant::now() })
    }

    /// Appends and flushes one message, so a recorder cut off loses at most the message it was
    /// writing.
    fn write(&mut self, publish: &Message) -> Result<(), Error> {
        let message = wire::Recorded {
            t_ns: u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            topic: publish.topic.clone(),
            qos: publish.qos,
            retain: publish.retain,
            payload: publish.payload.clone(),
        };
        let failed = |source| Error::Recording { path: self.path.clone(), source };
        wire::write_message(&mut self.out, &message).map_err(failed)?;
        self.out.flush().map_err(|e| failed(e.into()))
    }
}

/// Prints messages to `out` until `shutdown`, until `settings.count` poses were printed, or until
/// the reader of `out` goes (a broken pipe).
///
/// # Errors
/// [`Error::Mqtt`] when the broker cannot be reached at all (the first connection attempt
/// fails), [`Error::Output`] when `out` fails.
pub async fn run(
    settings: Settings,
    mut out: impl Write,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let mut recorder = settings.record.as_deref().map(Recorder::create).transpose()?;
    let id = format!("smplcast-sub-{}", std::process::id());
    let base = format!("{}/{}", settings.prefix, settings.device);
    let pose = match &settings.share {
        // QoS 1 for a group: a member that leaves does not take the messages in flight to it
        // with it (the broker gives them to another).
        Some(group) => (format!("$share/{group}/{base}/pose"), QoS::AtLeastOnce),
        None => (format!("{base}/pose"), QoS::AtMostOnce),
    };
    let topics = vec![
        pose,
        (format!("{base}/status"), QoS::AtLeastOnce),
        (format!("{base}/stats"), QoS::AtMostOnce),
    ];
    let mut subscriber = Subscriber::new(&settings.broker, id, topics);
    let mut poses = 0u64;
    loop {
        let publish = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = subscriber.next() => match next? {
                Incoming::Message(m) => m,
                Incoming::Subscribed => continue,
            },
        };
        if let Some(recorder) = recorder.as_mut() {
            recorder.write(&publish)?;
        }
        let topic = publish.topic.as_str();
        let line = if topic.ends_with("/status") {
            let status = std::str::from_utf8(&publish.payload).unwrap_or("<not UTF-8>");
            Line::Status { topic, status, retained: publish.retain }
        } else if topic.ends_with("/stats") {
            match serde_json::from_slice(&publish.payload) {
                Ok(stats) => Line::Stats { topic, stats },
                Err(e) => Line::Error { topic, error: format!("stats are not JSON: {e}") },
            }
        } else {
            match wire::decode(&publish.payload) {
                Ok(pose) => {
                    poses += 1;
                    Line::Pose { topic, pose }
                }
                Err(e) => Line::Error { topic, error: e.to_string() },
            }
        };
        let written = serde_json::to_writer(&mut out, &line)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        match written {
            // Whoever read the lines has gone (`smplcast sub | head`): done, as on Ctrl-C.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            written => written?,
        }
        if settings.count.is_some_and(|n| poses >= n) {
            break;
        }
    }
    Ok(())
}

/// What to replay, and where.
#[derive(Clone, Debug)]
pub struct Replay {
    pub broker: Broker,
    pub file: PathBuf,
    /// Playback speed: 1 keeps the recorded timing, 2 plays twice as fast, 0 sends each
    /// message as soon as the previous one is queued.
    pub speed: f64,
}

/// What a replay did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replayed {
    pub messages: u64,
    /// The recording ended in an incomplete message (its recorder was cut off).
    pub truncated: bool,
}

/// Republishes a recording: each message on its recorded topic with its QoS and retain flag,
/// its payload byte for byte, at its recorded time ÷ `speed` after the start.
///
/// # Errors
/// [`Error::Recording`] for a file that cannot be read, is not a recording or is damaged
/// (messages before the damage are published); [`Error::Mqtt`] when the broker cannot be
/// reached.
pub async fn replay(settings: &Replay, shutdown: CancellationToken) -> Result<Replayed, Error> {
    let failed = |source| Error::Recording { path: settings.file.clone(), source };
    let file = File::open(&settings.file).map_err(|e| failed(e.into()))?;
    let mut reader = wire::Reader::new(file).map_err(failed)?;
    let id = format!("smplcast-replay-{}", std::process::id());
    let sender = Sender::connect(&settings.broker, id).await?;
    let start = tokio::time::Instant::now();
    let mut messages = 0;
    for message in reader.by_ref() {
        let message = message.map_err(failed)?;
        if settings.speed > 0.0 {
            let at = Duration::from_nanos(message.t_ns).div_f64(settings.speed);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep_until(start + at) => {}
            }
        }
        let wire::Recorded { topic, qos, retain, payload, .. } = message;
        sender.publish(Message { topic, payload, qos, retain }).await?;
        messages += 1;
    }
    sender.finish(Duration::from_secs(5)).await?;
    Ok(Replayed { messages, truncated: reader.truncated })
}
