//! The running side of a GStreamer source: start-up, frames, losses and restarts.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::launch::{self, Input};
use super::rate::MeasuredRate;
use super::{frame, Kind, Settings};
use crate::source::{Error, Frame, FrameSource, Retry};

/// How long start-up, and each restart, of a live pipeline waits for the first frame (RTSP:
/// connect, describe, set up, then the first key frame). A file gets the stall timeout.
const FIRST_FRAME: Duration = Duration::from_secs(10);
/// Restarts back off from 250 ms to this, so that a camera that is back is seen within about
/// a second.
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// How long one wait on the appsink lasts before the bus is looked at again.
const SLICE: Duration = Duration::from_millis(100);

/// A running pipeline and what its first frames said.
struct Running {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    bus: gst::Bus,
    /// The first frame, pulled by start-up.
    pending: Option<gst::Sample>,
    /// A live pipeline (its state change said NO_PREROLL): it recovers instead of ending.
    live: bool,
    info: gst_video::VideoInfo,
    /// No frame of this run delivered yet (its DISCONT flag is the start, not a gap).
    fresh: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// A GStreamer source.
pub struct Stream {
    settings: Settings,
    /// Where frames come from, for messages: the redacted URL, the file, the description.
    what: String,
    running: Option<Running>,
    /// While lost: why, and when to try again.
    retry: Retry,
    /// The last layout and rate seen (for `describe` while lost).
    last: Option<(gst_video::VideoInfo, bool)>,
    ended: bool,
    segment: u64,
    next_id: u64,
    /// A live stream's rate from its frames' capture times, when its caps give none.
    measured: MeasuredRate,
}

impl Stream {
    /// Builds and starts the pipeline and waits for its first frame.
    ///
    /// # Errors
    /// [`Error::Pipeline`] naming the input and the fix.
    pub fn open(settings: Settings) -> Result<Self, Error> {
        let what = match &settings.kind {
            Kind::Pipeline(p) => format!("pipeline \"{}\"", launch::redact(p.trim())),
            Kind::Rtsp { url, .. } => format!("RTSP {}", launch::redact(url)),
            Kind::Video { path, .. } => format!("video {}", path.display()),
        };
        let running =
            start(&settings).map_err(|reason| Error::Pipeline { input: what.clone(), reason })?;
        let stream = Stream {
            last: Some((running.info.clone(), running.live)),
            running: Some(running),
            settings,
            what,
            retry: Retry::new(Duration::from_millis(250), MAX_BACKOFF),
            ended: false,
            segment: 0,
            next_id: 0,
            measured: MeasuredRate::default(),
        };
        tracing::info!(source = %stream.describe(), "Streaming.");
        Ok(stream)
    }

    /// Whether a failure or an end is a loss to recover from (RTSP, a live pipeline), not the
    /// end of the input (a file).
    fn recovers(&self) -> bool {
        match self.settings.kind {
            Kind::Rtsp { .. } => true,
            Kind::Video { .. } => false,
            Kind::Pipeline(_) => self.last.as_ref().is_some_and(|(_, live)| *live),
        }
    }

    fn lose(&mut self, reason: String) -> Error {
        tracing::warn!(source = %self.what, %reason, "Source lost; restarting.");
        self.running = None;
        self.retry.lost(reason.clone());
        Error::Gone { input: self.what.clone(), reason }
    }

    /// While lost: waits (at most 250 ms, so the caller sees a shutdown) and restarts when the
    /// backoff has passed.
    fn restart(&mut self) -> Result<(), Error> {
        if !self.retry.wait() {
            return Err(self.still_gone());
        }
        match start(&self.settings) {
            Ok(running) => {
                tracing::info!(source = %self.what, "Source back; streaming.");
                self.last = Some((running.info.clone(), running.live));
                self.running = Some(running);
                self.retry.back();
                self.segment += 1;
                Ok(())
            }
            Err(reason) => {
                self.retry.failed(reason);
                Err(self.still_gone())
            }
        }
    }

    fn still_gone(&self) -> Error {
        Error::Gone { input: self.what.clone(), reason: self.retry.reason() }
    }

    /// The input ended, or failed in a way a file does not recover from.
    fn end(&mut self) {
        self.ended = true;
        self.running = None;
    }

    fn deliver(&mut self, sample: &gst::Sample) -> Result<Option<Frame>, Error> {
        let id = self.next_id;
        self.next_id += 1;
        let paced = self.is_live();
        let Some(running) = self.running.as_mut() else { return Err(self.still_gone()) };
        let what = &self.what;
        let bad = |reason: String| bad_frame(what, reason);
        let buffer = sample.buffer().ok_or_else(|| bad("a sample without a buffer".into()))?;
        if buffer.flags().contains(gst::BufferFlags::DISCONT) && !running.fresh {
            self.segment += 1; // lost packets, a seek: the motion before is not continuous
        }
        running.fresh = false;
        if buffer.flags().contains(gst::BufferFlags::CORRUPTED) {
            return Err(bad(format!("frame {id} is flagged corrupted by the decoder; skipped")));
        }
        let info = frame::info(sample).map_err(&bad)?;
        if info.width() != running.info.width() || info.height() != running.info.height() {
            self.segment += 1; // a new size mid-stream: boxes and tracks do not carry over
        }
        running.info = info;
        let image = frame::image(sample, &running.info).map_err(&bad)?;
        let base = if paced { running.pipeline.base_time() } else { None };
        let time = frame::capture_time(sample, base);
        if paced && caps_rate(&running.info).is_none() && self.measured.fps().is_none() {
            if let Some(fps) = self.measured.add(time.mono_ns, self.segment) {
                tracing::info!(
                    source = %self.what,
                    fps = format_args!("{fps:.2}"),
                    "The stream's caps give no frame rate: measured from its timestamps."
                );
            }
        }
        Ok(Some(Frame { id, image, time, segment: self.segment }))
    }
}

impl FrameSource for Stream {
    fn next_frame(&mut self) -> Result<Option<Frame>, Error> {
        if self.ended {
            return Ok(None);
        }
        if self.running.is_none() {
            self.restart()?;
        }
        let stall = self.settings.stall_timeout;
        let looping = matches!(self.settings.kind, Kind::Video { looping: true, .. });
        let deadline = Instant::now() + stall;
        let recovers = self.recovers();
        loop {
            let Some(running) = self.running.as_mut() else { return Err(self.still_gone()) };
            if let Some(sample) = running.pending.take() {
                return self.deliver(&sample);
            }
            match next_message(&running.bus) {
                Some(Message::Error(reason)) if recovers => return Err(self.lose(reason)),
                Some(Message::Error(reason)) => {
                    self.end();
                    let reason = format!("{reason}; the source ends here");
                    return Err(bad_frame(&self.what, reason));
                }
                Some(Message::Warning(reason)) => {
                    return Err(bad_frame(&self.what, reason));
                }
                Some(Message::Eos) if looping => {
                    let seek = running.pipeline.seek_simple(
                        gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                        gst::ClockTime::ZERO,
                    );
                    if let Err(e) = seek {
                        self.end();
                        let reason = format!("cannot loop: the seek to the start failed ({e})");
                        return Err(bad_frame(&self.what, reason));
                    }
                    running.fresh = true;
                    self.segment += 1; // the motion jumps back to the start
                    continue;
                }
                Some(Message::Eos) if recovers => {
                    return Err(self.lose("the stream ended (end of stream)".into()));
                }
                Some(Message::Eos) => {
                    self.end();
                    return Ok(None);
                }
                None => {}
            }
            if let Some(sample) = running.sink.try_pull_sample(clock(SLICE)) {
                return self.deliver(&sample);
            }
            if Instant::now() > deadline {
                let reason = format!("no frame for {} s", stall.as_secs_f64());
                if recovers {
                    return Err(self.lose(reason));
                }
                // A file whose pipeline stalls (damaged data a demuxer waits on) ends.
                self.end();
                let reason = format!("{reason}; the source ends here");
                return Err(bad_frame(&self.what, reason));
            }
        }
    }

    fn is_live(&self) -> bool {
        match &self.settings.kind {
            Kind::Video { paced, .. } => *paced,
            _ => true,
        }
    }

    /// A live stream's rate: its caps', else the one measured from its first frames (`None`
    /// until then).
    fn fps(&self) -> Option<f64> {
        let (info, _) = self.last.as_ref()?;
        if !self.is_live() {
            return None;
        }
        caps_rate(info).or(self.measured.fps())
    }

    fn describe(&self) -> String {
        let Some((info, _)) = &self.last else { return self.what.clone() };
        let rate = match (self.fps(), &self.settings.kind) {
            (Some(fps), _) => format!(" at {fps:.3} fps"),
            (None, Kind::Video { .. }) => " unpaced".into(),
            (None, _) => String::new(),
        };
        let looping = if matches!(self.settings.kind, Kind::Video { looping: true, .. }) {
            ", looping"
        } else {
            ""
        };
        let state = if self.running.is_none() && !self.ended { " (not streaming)" } else { "" };
        format!(
            "{} {}×{} {:?}{rate}{looping}{state}",
            self.what,
            info.width(),
            info.height(),
            info.format()
        )
    }
}

/// The frame rate the caps state; `None` for `0/1` (variable or unknown).
fn caps_rate(info: &gst_video::VideoInfo) -> Option<f64> {
    let rate = info.fps();
    (rate.numer() > 0 && rate.denom() > 0)
        .then(|| f64::from(rate.numer()) / f64::from(rate.denom()))
}

/// A frame (or a stretch of the input) that could not be read: counted and skipped.
fn bad_frame(what: &str, reason: String) -> Error {
    Error::Frame { path: PathBuf::from(what), reason }
}

/// The reason for a codec decodebin found no decoder for, with the package to install.
fn no_decoder(caps: &str) -> String {
    format!("no GStreamer decoder for {caps}; install {}", launch::package_for_codec(caps))
}

fn clock(d: Duration) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(d.as_nanos() as u64)
}

/// What the bus said that matters to the source.
enum Message {
    Error(String),
    Warning(String),
    Eos,
}

/// The next error, warning or end of stream on the bus, without waiting. A decoder GStreamer
/// lacks is posted as a `missing-plugin` element message before the error; it names the codec.
fn next_message(bus: &gst::Bus) -> Option<Message> {
    use gst::MessageView;
    let mut missing: Option<String> = None;
    while let Some(msg) = bus.pop_filtered(&[
        gst::MessageType::Error,
        gst::MessageType::Warning,
        gst::MessageType::Eos,
        gst::MessageType::Element,
    ]) {
        match msg.view() {
            MessageView::Error(e) => {
                return Some(Message::Error(explain(&e.error(), e.src(), missing.as_deref())));
            }
            MessageView::Warning(w) => {
                let from = factory(w.src());
                let reason = format!("GStreamer warning from {from}: {}", w.error());
                // A decoder's or demuxer's warning is data it could not read: a bad frame.
                // Others (a source's read error before its end of stream) are logged.
                let klass = w
                    .src()
                    .and_then(|s| s.downcast_ref::<gst::Element>())
                    .and_then(|e| e.factory())
                    .map(|f| f.metadata(gst::ELEMENT_METADATA_KLASS).unwrap_or("").to_string())
                    .unwrap_or_default();
                if klass.contains("Decoder") || klass.contains("Demuxer") {
                    return Some(Message::Warning(reason));
                }
                tracing::warn!(%reason, "GStreamer warning.");
            }
            MessageView::Eos(_) => return Some(Message::Eos),
            MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "missing-plugin") {
                    let detail = s.get::<gst::Caps>("detail").ok();
                    let caps = detail
                        .as_ref()
                        .and_then(|c| c.structure(0))
                        .map(|s| s.name().to_string())
                        .unwrap_or_else(|| s.get::<String>("name").unwrap_or_default());
                    missing = Some(caps);
                }
            }
            _ => {}
        }
    }
    missing.map(|caps| Message::Error(no_decoder(&caps)))
}

/// The factory name of a message's element (`rtspsrc`, `avdec_h264`), or its object name.
fn factory(src: Option<&gst::Object>) -> String {
    let Some(src) = src else { return "the pipeline".into() };
    src.downcast_ref::<gst::Element>()
        .and_then(|e| e.factory())
        .map_or_else(|| src.name().to_string(), |f| f.name().to_string())
}

/// A GStreamer error as a reason with its fix.
fn explain(error: &gst::glib::Error, src: Option<&gst::Object>, missing: Option<&str>) -> String {
    if let Some(caps) = missing {
        return no_decoder(caps);
    }
    let element = factory(src);
    let msg = error.message();
    if let Some(e) = error.kind::<gst::ResourceError>() {
        return match e {
            gst::ResourceError::NotAuthorized => format!(
                "the server refused the login ({msg}); check source.username and the password \
                 in source.password_file or source.password_credential"
            ),
            gst::ResourceError::NotFound if element == "filesrc" => {
                format!("no such file ({msg}); fix source.path")
            }
            gst::ResourceError::NotFound => format!("not found ({msg}, from {element})"),
            gst::ResourceError::OpenRead
            | gst::ResourceError::OpenReadWrite
            | gst::ResourceError::Read
                if element == "rtspsrc" =>
            {
                format!(
                    "cannot reach the camera ({msg}); check source.url and that the camera is on \
                     and reachable from here"
                )
            }
            _ => format!("{msg} (from {element})"),
        };
    }
    if let Some(e) = error.kind::<gst::StreamError>() {
        return match e {
            gst::StreamError::TypeNotFound
            | gst::StreamError::WrongType
            | gst::StreamError::Demux
            | gst::StreamError::Format => {
                format!("not a video GStreamer can read ({msg}, from {element})")
            }
            gst::StreamError::CodecNotFound | gst::StreamError::Decode => format!(
                "cannot decode it ({msg}, from {element}); a decoder for its codec may be \
                 missing: install gstreamer1.0-libav"
            ),
            _ => format!("{msg} (from {element})"),
        };
    }
    format!("{msg} (from {element})")
}

/// Builds the pipeline, starts it and waits for its first frame (or its first error).
fn start(settings: &Settings) -> Result<Running, String> {
    gst::init().map_err(|e| format!("cannot initialise GStreamer: {e}"))?;
    let (input, sync) = match &settings.kind {
        Kind::Pipeline(p) => (Input::Pipeline(p.clone()), true),
        Kind::Rtsp { tcp, latency_ms, .. } => {
            (Input::Rtsp { tcp: *tcp, latency_ms: *latency_ms }, true)
        }
        Kind::Video { paced, .. } => (Input::Video, *paced),
    };
    let description = launch::description(&input, sync);
    let mut context = gst::ParseContext::new();
    let element =
        gst::parse::launch_full(&description, Some(&mut context), gst::ParseFlags::FATAL_ERRORS)
            .map_err(|e| {
                let missing = context.missing_elements();
                if !missing.is_empty() {
                    return launch::missing_elements(&missing);
                }
                match e.kind::<gst::ParseError>() {
                    Some(
                        gst::ParseError::Syntax
                        | gst::ParseError::Empty
                        | gst::ParseError::EmptyBin,
                    ) => {
                        format!(
                            "pipeline syntax error: {}; fix source.pipeline (test it with \
                     `gst-launch-1.0 PIPELINE ! videoconvert ! fakesink`)",
                            e.message()
                        )
                    }
                    _ => format!("cannot build the pipeline: {}; fix source.pipeline", e.message()),
                }
            })?;
    let pipeline = element
        .downcast::<gst::Pipeline>()
        .map_err(|_| "the description does not make a pipeline".to_string())?;
    let sink = pipeline
        .by_name(launch::SINK)
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("the pipeline has no appsink")?;
    if let Some(src) = pipeline.by_name(launch::SRC) {
        match &settings.kind {
            Kind::Rtsp { url, login, .. } => {
                src.set_property("location", url);
                // A server that does not answer is an error within 2 s, not the default 20 s.
                src.set_property("tcp-timeout", 2_000_000u64);
                if let Some(login) = login {
                    src.set_property("user-id", &login.user);
                    src.set_property("user-pw", &login.password.0);
                }
            }
            Kind::Video { path, .. } => src.set_property("location", path),
            Kind::Pipeline(_) => {}
        }
    }
    // Timestamps on the system's monotonic clock (frame::capture_time).
    pipeline.use_clock(Some(&gst::SystemClock::obtain()));
    let bus = pipeline.bus().ok_or("the pipeline has no bus")?;
    let mut running = Running {
        pipeline,
        sink,
        bus,
        pending: None,
        live: false,
        info: gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, 16, 16)
            .build()
            .map_err(|e| e.to_string())?,
        fresh: true,
    };
    match running.pipeline.set_state(gst::State::Playing) {
        Ok(gst::StateChangeSuccess::NoPreroll) => running.live = true,
        Ok(_) => {}
        Err(_) => {
            return Err(match next_message(&running.bus) {
                Some(Message::Error(reason)) => reason,
                _ => "the pipeline did not start".into(),
            });
        }
    }
    let wait = match settings.kind {
        Kind::Video { .. } => settings.stall_timeout,
        _ => FIRST_FRAME.max(settings.stall_timeout),
    };
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match next_message(&running.bus) {
            Some(Message::Error(reason)) => return Err(reason),
            Some(Message::Eos) => return Err("no video frame before the end of the stream".into()),
            Some(Message::Warning(w)) => tracing::warn!(warning = %w, "GStreamer at start-up."),
            None => {}
        }
        if let Some(sample) = running.sink.try_pull_sample(clock(SLICE)) {
            running.info = frame::info(&sample)?;
            if frame::layout(running.info.format()).is_none() {
                return Err(format!(
                    "{:?} frames; smplcast reads NV12, I420, YUY2, RGB, GRAY8",
                    running.info.format()
                ));
            }
            running.pending = Some(sample);
            return Ok(running);
        }
    }
    Err(format!("no frame within {} s", wait.as_secs_f64()))
}

/// `smplcast devices`: the cameras GStreamer's device monitor sees (V4L2, libcamera, Argus where
/// their plugins are installed), with their caps.
pub fn list_devices() -> String {
    use std::fmt::Write;
    if let Err(e) = gst::init() {
        return format!("GStreamer: cannot initialise ({e})\n");
    }
    let monitor = gst::DeviceMonitor::new();
    monitor.add_filter(Some("Video/Source"), None);
    if monitor.start().is_err() {
        return "GStreamer: the device monitor did not start\n".into();
    }
    let devices = monitor.devices();
    monitor.stop();
    let mut out = String::new();
    if devices.is_empty() {
        out.push_str("GStreamer: no video sources\n");
    }
    for d in devices {
        let _ = writeln!(out, "GStreamer: {} ({})", d.display_name(), d.device_class());
        if let Some(props) = d.properties() {
            for key in ["device.path", "api.v4l2.path", "object.path", "device.api"] {
                if let Ok(v) = props.get::<String>(key) {
                    let _ = writeln!(out, "  {key} = {v}");
                }
            }
        }
        if let Some(caps) = d.caps() {
            for s in caps.iter().take(12) {
                let _ = writeln!(out, "  {s}");
            }
            if caps.size() > 12 {
                let _ = writeln!(out, "  … {} more", caps.size() - 12);
            }
        }
    }
    out
}
