//! V4L2 cameras (the `v4l` crate; feature `v4l2`): open by path or stable name
//! (`/dev/v4l/by-id/…`), negotiate format, size and rate (an unmeetable request is an error
//! that lists what the device offers), stream with a few mmap buffers, and copy each frame out
//! at once (the buffer goes back to the driver on the next call) with the kernel's monotonic
//! timestamp. MJPEG frames are decoded to RGB24 here; a corrupt one is [`Error::Frame`]
//! (counted and skipped). The raw layouts go on as they are: the crop samples them directly.
//!
//! Unplugging: an error from the stream (ENODEV, EIO, or no frame within the stall timeout)
//! closes the device and the source reports [`Error::Gone`] on every call until it can open
//! and negotiate the device again, retrying with a backoff that doubles up to 10 s. Each
//! successful (re)start begins a new segment ([`Frame::segment`]), so no window mixes frames
//! from before and after a gap.

use std::path::{Path, PathBuf};
use std::time::Duration;

use v4l::buffer::Type;
use v4l::capability::Flags as CapFlags;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::{Device, FourCC, Fraction};

use super::{CaptureTime, Error, Frame, FrameSource, Retry};
use crate::pixels::{DecodeError, Image, PixelFormat};

/// What to ask the camera for.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `/dev/videoN` or a stable link such as `/dev/v4l/by-id/usb-…-video-index0`.
    pub device: PathBuf,
    pub width: u32,
    pub height: u32,
    /// Frames per second; 0: the device's current rate.
    pub fps: f64,
    /// FourCC (`YUYV`, `MJPG`, `NV12`, `GREY`, `RGB3`), or `None`: the first of those the
    /// device offers at the size, in that order.
    pub format: Option<String>,
    /// mmap buffers (2–32).
    pub buffers: u32,
    /// No frame for this long: the camera counts as gone.
    pub stall_timeout: Duration,
}

/// Layouts we read, in the order `format = "auto"` prefers them (raw before MJPEG: no decode).
pub const FORMATS: [&str; 5] = ["YUYV", "NV12", "RGB3", "GREY", "MJPG"];

/// The longest wait between reopening attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A negotiated, streaming camera.
struct Open {
    /// Kept for the stream's lifetime (the stream shares its handle).
    _device: Device,
    stream: Stream<'static>,
    layout: Layout,
}

/// What the driver agreed to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Layout {
    pub fourcc: [u8; 4],
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    /// Frame interval the driver reports, seconds.
    pub interval: f64,
}

impl Layout {
    pub fn fourcc(&self) -> String {
        fourcc_str(&self.fourcc)
    }
}

/// The V4L2 source.
pub struct Camera {
    settings: Settings,
    open: Option<Open>,
    /// Why the camera is not streaming, while it is not, and when to try again.
    retry: Retry,
    /// +1 at every (re)start of streaming.
    segment: u64,
    next_id: u64,
}

impl Camera {
    /// Opens and negotiates the camera, and starts streaming.
    ///
    /// # Errors
    /// [`Error::Device`] naming the device and the fix: missing, not a capture device, or a
    /// format, size or rate it does not offer (with the list of what it offers).
    pub fn open(settings: Settings) -> Result<Self, Error> {
        let open = start(&settings)?;
        tracing::info!(
            device = %settings.device.display(),
            format = %open.layout.fourcc(),
            width = open.layout.width,
            height = open.layout.height,
            fps = 1.0 / open.layout.interval,
            "Camera streaming."
        );
        Ok(Camera {
            settings,
            open: Some(open),
            retry: Retry::new(Duration::from_millis(500), MAX_BACKOFF),
            segment: 0,
            next_id: 0,
        })
    }

    /// What the driver agreed to, while streaming.
    pub fn layout(&self) -> Option<Layout> {
        self.open.as_ref().map(|o| o.layout)
    }

    fn lose(&mut self, reason: String) -> Error {
        tracing::warn!(device = %self.settings.device.display(), %reason, "Camera lost; retrying.");
        self.open = None;
        self.retry.lost(reason.clone());
        Error::Gone { input: self.input(), reason }
    }

    /// While gone: waits (at most 250 ms, so the caller can see a shutdown) and tries to
    /// reopen when the backoff has passed.
    fn reopen(&mut self) -> Result<(), Error> {
        if !self.retry.wait() {
            return Err(self.still_gone());
        }
        match start(&self.settings) {
            Ok(open) => {
                tracing::info!(device = %self.settings.device.display(), "Camera back; streaming.");
                self.open = Some(open);
                self.retry.back();
                self.segment += 1;
                Ok(())
            }
            Err(e) => {
                self.retry.failed(e.to_string());
                Err(self.still_gone())
            }
        }
    }

    fn still_gone(&self) -> Error {
        Error::Gone { input: self.input(), reason: self.retry.reason() }
    }

    /// The camera as `Error::Gone` names it.
    fn input(&self) -> String {
        format!("camera {}", self.settings.device.display())
    }
}

impl FrameSource for Camera {
    fn next_frame(&mut self) -> Result<Option<Frame>, Error> {
        if self.open.is_none() {
            self.reopen()?;
        }
        let Some(open) = self.open.as_mut() else { return Err(self.still_gone()) };
        let (buf, meta) = match open.stream.next() {
            Ok(next) => next,
            Err(e) => {
                let why = match e.raw_os_error() {
                    Some(19) => "device removed (ENODEV)".to_string(),
                    Some(5) => "I/O error (EIO)".to_string(),
                    _ if e.kind() == std::io::ErrorKind::TimedOut => format!(
                        "no frame for {:?} (source.stall_timeout_s)",
                        self.settings.stall_timeout
                    ),
                    _ => format!("capture failed: {e}"),
                };
                return Err(self.lose(why));
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        // time_t is 32-bit on armv7: widen (a no-op on 64-bit targets).
        #[allow(clippy::useless_conversion)]
        let time = kernel_time(i64::from(meta.timestamp.sec), i64::from(meta.timestamp.usec));
        let used = (meta.bytesused as usize).min(buf.len());
        let l = open.layout;
        let image = to_image(&l, &buf[..used]).map_err(|reason| Error::Frame {
            path: self.settings.device.clone(),
            reason: format!("frame {id} (kernel sequence {}): {reason}", meta.sequence),
        })?;
        Ok(Some(Frame { id, image, time, segment: self.segment }))
    }

    fn is_live(&self) -> bool {
        true
    }

    fn fps(&self) -> Option<f64> {
        self.layout().map(|l| 1.0 / l.interval).filter(|f| f.is_finite() && *f > 0.0)
    }

    fn describe(&self) -> String {
        match self.layout() {
            Some(l) => format!(
                "V4L2 {} {} {}×{} at {:.2} fps",
                self.settings.device.display(),
                l.fourcc(),
                l.width,
                l.height,
                1.0 / l.interval
            ),
            None => format!("V4L2 {} (not streaming)", self.settings.device.display()),
        }
    }
}

/// The capture time of a buffer stamped `sec`.`usec` on CLOCK_MONOTONIC: that instant, and the
/// UTC time it corresponds to now.
fn kernel_time(sec: i64, usec: i64) -> CaptureTime {
    let now = CaptureTime::now();
    let mono_ns = (sec.max(0) as u64) * 1_000_000_000 + (usec.max(0) as u64) * 1_000;
    if mono_ns == 0 || mono_ns > now.mono_ns {
        return now; // a driver without (monotonic) timestamps
    }
    let age_us = ((now.mono_ns - mono_ns) / 1_000) as i64;
    CaptureTime { utc_us: now.utc_us - age_us, mono_ns }
}

/// Copies (or decodes) one buffer into an owned image.
fn to_image(l: &Layout, bytes: &[u8]) -> Result<Image, DecodeError> {
    let format = match &l.fourcc {
        b"MJPG" | b"JPEG" => return crate::pixels::decode_jpeg(bytes),
        b"YUYV" => PixelFormat::Yuyv,
        b"NV12" => PixelFormat::Nv12,
        b"RGB3" => PixelFormat::Rgb24,
        b"GREY" => PixelFormat::Grey,
        other => {
            let layout = String::from_utf8_lossy(other).into_owned();
            return Err(DecodeError::Unsupported { kind: "camera frame", layout });
        }
    };
    Image::new(format, l.width, l.height, l.stride as usize, bytes.to_vec())
        .map_err(|source| DecodeError::Truncated { kind: "camera frame", source })
}

/// Why no format of a camera suits `[source]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("format {0:?} is not a FourCC")]
    NotFourcc(String),
    #[error("does not offer {name}; it offers {offered}")]
    NotOffered { name: String, offered: String },
    #[error("offers none of {wanted} at {width}×{height}; it offers {offered}")]
    NoneUsable { wanted: String, width: u32, height: u32, offered: String },
}

fn device_error(device: &Path, reason: String) -> Error {
    Error::Device { device: device.to_path_buf(), reason }
}

/// Opens, negotiates and starts streaming.
fn start(s: &Settings) -> Result<Open, Error> {
    let fail = |reason: String| device_error(&s.device, reason);
    let device = Device::with_path(&s.device).map_err(|e| {
        fail(match e.kind() {
            std::io::ErrorKind::NotFound => {
                "no such device; list cameras with `smplcast devices`".into()
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied; add the user to the `video` group".into()
            }
            _ => format!("cannot open: {e}"),
        })
    })?;
    let caps = device.query_caps().map_err(|e| fail(format!("not a V4L2 device ({e})")))?;
    if !caps.capabilities.contains(CapFlags::VIDEO_CAPTURE) {
        return Err(fail(format!("{} ({}) is not a video capture device", caps.card, caps.driver)));
    }
    let offered = offers(&device).map_err(|e| fail(format!("cannot list its formats: {e}")))?;
    let fourcc = choose_format(s, &offered).map_err(|e| fail(e.to_string()))?;
    let sizes: Vec<&Offer> = offered.iter().filter(|o| o.fourcc == fourcc).collect();
    if !sizes.iter().any(|o| o.size.fits(s.width, s.height)) {
        return Err(fail(format!(
            "{} has no {}×{}; it offers {}",
            fourcc_str(&fourcc),
            s.width,
            s.height,
            sizes.iter().map(|o| o.size.to_string()).collect::<Vec<_>>().join(", ")
        )));
    }
    let mut fmt = device.format().map_err(|e| fail(format!("cannot read its format: {e}")))?;
    fmt.width = s.width;
    fmt.height = s.height;
    fmt.fourcc = FourCC::new(&fourcc);
    fmt.stride = 0; // the driver picks the row padding
    let fmt = device.set_format(&fmt).map_err(|e| fail(format!("cannot set the format: {e}")))?;
    if (fmt.width, fmt.height, fmt.fourcc.repr) != (s.width, s.height, fourcc) {
        return Err(fail(format!(
            "asked for {} {}×{}, the driver set {} {}×{}",
            fourcc_str(&fourcc),
            s.width,
            s.height,
            fmt.fourcc,
            fmt.width,
            fmt.height
        )));
    }
    if s.fps > 0.0 {
        let rates = intervals(&device, fourcc, s.width, s.height);
        let want = 1.0 / s.fps;
        if !rates.is_empty() && !rates.iter().any(|r| r.fits(want)) {
            return Err(fail(format!(
                "{} {}×{} has no {} fps; it offers {}",
                fourcc_str(&fourcc),
                s.width,
                s.height,
                s.fps,
                rates.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )));
        }
        let frac = Fraction::new(1000, (s.fps * 1000.0).round() as u32);
        let got = device
            .set_params(&Parameters::new(frac))
            .map_err(|e| fail(format!("cannot set {} fps: {e}", s.fps)))?;
        let set = seconds(got.interval);
        if (set - want).abs() > 0.01 * want {
            return Err(fail(format!(
                "asked for {} fps, the driver set {:.3} fps",
                s.fps,
                1.0 / set
            )));
        }
    }
    let interval = device.params().map(|p| seconds(p.interval)).unwrap_or(0.0);
    let layout =
        Layout { fourcc, width: fmt.width, height: fmt.height, stride: fmt.stride, interval };
    let mut stream = Stream::with_buffers(&device, Type::VideoCapture, s.buffers)
        .map_err(|e| fail(format!("cannot map {} buffers: {e}", s.buffers)))?;
    stream.set_timeout(s.stall_timeout);
    Ok(Open { _device: device, stream, layout })
}

fn fourcc_str(f: &[u8; 4]) -> String {
    f.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '?' }).collect()
}

fn seconds(f: Fraction) -> f64 {
    if f.denominator == 0 {
        0.0
    } else {
        f64::from(f.numerator) / f64::from(f.denominator)
    }
}

fn choose_format(s: &Settings, offered: &[Offer]) -> Result<[u8; 4], FormatError> {
    let has =
        |f: &[u8; 4]| offered.iter().any(|o| &o.fourcc == f && o.size.fits(s.width, s.height));
    let listed = || {
        let mut all: Vec<String> = offered.iter().map(|o| fourcc_str(&o.fourcc)).collect();
        all.dedup();
        all.join(", ")
    };
    match &s.format {
        Some(name) => {
            let f: [u8; 4] =
                name.as_bytes().try_into().map_err(|_| FormatError::NotFourcc(name.clone()))?;
            if offered.iter().any(|o| o.fourcc == f) {
                Ok(f)
            } else {
                Err(FormatError::NotOffered { name: name.clone(), offered: listed() })
            }
        }
        None => FORMATS
            .iter()
            .filter_map(|n| <[u8; 4]>::try_from(n.as_bytes()).ok())
            .find(has)
            .ok_or_else(|| FormatError::NoneUsable {
                wanted: FORMATS.join(", "),
                width: s.width,
                height: s.height,
                offered: listed(),
            }),
    }
}

/// One format and one size (or size range) the device offers.
#[derive(Debug)]
pub struct Offer {
    pub fourcc: [u8; 4],
    pub description: String,
    pub size: Size,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Size {
    Discrete(u32, u32),
    Range { min: (u32, u32), max: (u32, u32), step: (u32, u32) },
}

impl Size {
    fn fits(&self, w: u32, h: u32) -> bool {
        match *self {
            Size::Discrete(a, b) => (a, b) == (w, h),
            Size::Range { min, max, step } => {
                let ok = |v: u32, lo: u32, hi: u32, st: u32| {
                    v >= lo && v <= hi && (st <= 1 || (v - lo).is_multiple_of(st))
                };
                ok(w, min.0, max.0, step.0) && ok(h, min.1, max.1, step.1)
            }
        }
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Size::Discrete(w, h) => write!(f, "{w}×{h}"),
            Size::Range { min, max, step } => {
                write!(f, "{}×{} to {}×{} (step {}/{})", min.0, min.1, max.0, max.1, step.0, step.1)
            }
        }
    }
}

/// A frame rate (or range) offered for one format and size, as intervals in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Discrete(f64),
    Range { min: f64, max: f64 },
}

impl Rate {
    fn fits(&self, interval: f64) -> bool {
        match *self {
            Rate::Discrete(i) => (i - interval).abs() <= 0.01 * interval,
            Rate::Range { min, max } => interval >= min * 0.99 && interval <= max * 1.01,
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fps = |i: f64| if i > 0.0 { 1.0 / i } else { 0.0 };
        match *self {
            Rate::Discrete(i) => write!(f, "{:.3} fps", fps(i)),
            Rate::Range { min, max } => write!(f, "{:.3}–{:.3} fps", fps(max), fps(min)),
        }
    }
}

/// Every format and size of `device`.
pub fn offers(device: &Device) -> std::io::Result<Vec<Offer>> {
    let mut out = Vec::new();
    for desc in device.enum_formats()? {
        let sizes = device.enum_framesizes(desc.fourcc).unwrap_or_default();
        for fs in sizes {
            let size = match fs.size {
                FrameSizeEnum::Discrete(d) => Size::Discrete(d.width, d.height),
                FrameSizeEnum::Stepwise(s) => Size::Range {
                    min: (s.min_width, s.min_height),
                    max: (s.max_width, s.max_height),
                    step: (s.step_width, s.step_height),
                },
            };
            out.push(Offer {
                fourcc: desc.fourcc.repr,
                description: desc.description.clone(),
                size,
            });
        }
    }
    Ok(out)
}

/// The frame rates of one format and size (empty when the driver does not say).
pub fn intervals(device: &Device, fourcc: [u8; 4], width: u32, height: u32) -> Vec<Rate> {
    device
        .enum_frameintervals(FourCC::new(&fourcc), width, height)
        .unwrap_or_default()
        .into_iter()
        .map(|i| match i.interval {
            FrameIntervalEnum::Discrete(f) => Rate::Discrete(seconds(f)),
            FrameIntervalEnum::Stepwise(s) => {
                Rate::Range { min: seconds(s.min), max: seconds(s.max) }
            }
        })
        .collect()
}

/// `smplcast devices`: every V4L2 node with its card, formats, sizes and rates, as text.
pub fn list_devices() -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut nodes: Vec<PathBuf> =
        v4l::context::enum_devices().into_iter().map(|n| n.path().to_path_buf()).collect();
    nodes.sort();
    if nodes.is_empty() {
        return "no V4L2 devices (/dev/video*)\n".into();
    }
    let links = stable_links();
    for path in nodes {
        let _ = write!(out, "{}", path.display());
        for link in links.iter().filter(|(_, target)| *target == path) {
            let _ = write!(out, "  ({})", link.0.display());
        }
        out.push('\n');
        let device = match Device::with_path(&path) {
            Ok(d) => d,
            Err(e) => {
                let _ = writeln!(out, "  cannot open: {e}");
                continue;
            }
        };
        match device.query_caps() {
            Ok(c) if c.capabilities.contains(CapFlags::VIDEO_CAPTURE) => {
                let _ = writeln!(out, "  {} (driver {}, bus {})", c.card, c.driver, c.bus);
            }
            Ok(c) => {
                let _ = writeln!(out, "  {} (driver {}): not a capture device", c.card, c.driver);
                continue;
            }
            Err(e) => {
                let _ = writeln!(out, "  not a V4L2 device: {e}");
                continue;
            }
        }
        for o in offers(&device).unwrap_or_default() {
            let readable = FORMATS.contains(&fourcc_str(&o.fourcc).as_str());
            let _ = write!(
                out,
                "  {} {:<28} {}",
                fourcc_str(&o.fourcc),
                format!("({})", o.description),
                o.size
            );
            if let Size::Discrete(w, h) = o.size {
                let rates = intervals(&device, o.fourcc, w, h);
                let rates: Vec<String> = rates.iter().map(ToString::to_string).collect();
                let _ = write!(out, "  {}", rates.join(", "));
            }
            if !readable {
                out.push_str("  [not supported by smplcast]");
            }
            out.push('\n');
        }
    }
    out
}

/// `/dev/v4l/by-id` and `/dev/v4l/by-path` links and their targets.
fn stable_links() -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for dir in ["/dev/v4l/by-id", "/dev/v4l/by-path"] {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            if let Ok(target) = std::fs::canonicalize(e.path()) {
                out.push((e.path(), target));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/frames")
    }

    use crate::pixels::decode_jpeg;

    #[test]
    fn mjpeg_frames_decode_and_corrupt_ones_are_errors() {
        let good = std::fs::read(frames().join("frame_001.jpg")).unwrap();
        let img = decode_jpeg(&good).unwrap();
        assert_eq!((img.format, img.width, img.height), (PixelFormat::Rgb24, 192, 144));
        let corrupt = std::fs::read(frames().join("frame_010.jpg")).unwrap();
        assert!(decode_jpeg(&corrupt).unwrap_err().to_string().contains("JPEG"));
        // Every truncation and a few bit flips: an error or an image, never a panic.
        for n in (0..good.len()).step_by(97) {
            let _ = decode_jpeg(&good[..n]);
        }
        for i in (0..good.len()).step_by(31) {
            let mut bad = good.clone();
            bad[i] ^= 0x5a;
            let _ = decode_jpeg(&bad);
        }
    }

    #[test]
    fn sizes_and_rates_match_requests() {
        assert!(Size::Discrete(640, 480).fits(640, 480));
        assert!(!Size::Discrete(640, 480).fits(320, 240));
        let r = Size::Range { min: (16, 16), max: (1920, 1080), step: (2, 2) };
        assert!(r.fits(640, 480) && !r.fits(641, 480) && !r.fits(2000, 480));
        assert!(
            Rate::Discrete(1.0 / 30.0).fits(1.0 / 30.0)
                && !Rate::Discrete(1.0 / 30.0).fits(1.0 / 25.0)
        );
        assert!(Rate::Range { min: 1.0 / 60.0, max: 1.0 }.fits(1.0 / 25.0));
        assert_eq!(Rate::Discrete(0.04).to_string(), "25.000 fps");
    }

    #[test]
    fn auto_format_prefers_raw_and_errors_list_the_offer() {
        let offer = |f: &[u8; 4], w, h| Offer {
            fourcc: *f,
            description: String::new(),
            size: Size::Discrete(w, h),
        };
        let offered =
            [offer(b"MJPG", 640, 480), offer(b"YUYV", 640, 480), offer(b"YUYV", 320, 240)];
        let mut s = Settings {
            device: "/dev/video0".into(),
            width: 640,
            height: 480,
            fps: 0.0,
            format: None,
            buffers: 4,
            stall_timeout: Duration::from_secs(2),
        };
        assert_eq!(&choose_format(&s, &offered).unwrap(), b"YUYV");
        s.format = Some("MJPG".into());
        assert_eq!(&choose_format(&s, &offered).unwrap(), b"MJPG");
        s.format = Some("NV12".into());
        assert_eq!(
            choose_format(&s, &offered).unwrap_err().to_string(),
            "does not offer NV12; it offers MJPG, YUYV"
        );
    }

    #[test]
    fn kernel_timestamps_map_to_utc_in_the_past() {
        let now = CaptureTime::now();
        let ns = now.mono_ns - 40_000_000; // 40 ms ago
        let t = kernel_time((ns / 1_000_000_000) as i64, ((ns % 1_000_000_000) / 1_000) as i64);
        assert_eq!(t.mono_ns, ns / 1000 * 1000);
        let age = now.utc_us - t.utc_us;
        assert!((39_000..60_000).contains(&age), "{age} µs");
        assert!(kernel_time(0, 0).mono_ns >= now.mono_ns, "no timestamp: now");
    }
}
