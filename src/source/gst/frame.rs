//! A GStreamer sample as a [`Frame`]'s parts: its pixels copied into an owned [`Image`] in a
//! layout the fused sampler reads, and its capture time on both clocks.

use gstreamer as gst;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use crate::pixels::{Image, PixelFormat};
use crate::source::CaptureTime;

/// The sampler's layout for a GStreamer raw format (the appsink's caps allow only these).
pub fn layout(format: gst_video::VideoFormat) -> Option<PixelFormat> {
    use gst_video::VideoFormat as F;
    Some(match format {
        F::Nv12 => PixelFormat::Nv12,
        F::I420 => PixelFormat::I420,
        F::Yuy2 => PixelFormat::Yuyv,
        F::Rgb => PixelFormat::Rgb24,
        F::Gray8 => PixelFormat::Grey,
        _ => return None,
    })
}

/// The frame's layout as the sample's caps describe it.
///
/// # Errors
/// A sentence for the log: no caps, caps that are not raw video, a format the sampler does not
/// read.
pub fn info(sample: &gst::SampleRef) -> Result<gst_video::VideoInfo, String> {
    let caps = sample.caps().ok_or("a frame without caps")?;
    gst_video::VideoInfo::from_caps(caps).map_err(|e| format!("caps {caps}: {e}"))
}

/// Copies the frame of `sample` into an owned image, plane by plane and row by row: GStreamer's
/// planes may be padded and placed apart, the image's follow each other (NV12's chroma at the Y
/// stride, I420's at half of it).
///
/// # Errors
/// A sentence for the log: an unmappable or short buffer, a layout the sampler does not read.
pub fn image(sample: &gst::SampleRef, info: &gst_video::VideoInfo) -> Result<Image, String> {
    let buffer = sample.buffer().ok_or("a sample without a buffer")?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info)
        .map_err(|_| "cannot map the frame's buffer".to_string())?;
    let format = layout(info.format())
        .ok_or_else(|| format!("{:?} is not a layout smplcast reads", info.format()))?;
    let (w, h) = (info.width(), info.height());
    let (wu, hu) = (w as usize, h as usize);
    // NV12's chroma rows are 2⌈w/2⌉ bytes: an odd width gets an even stride.
    let stride =
        if format == PixelFormat::Nv12 { 2 * wu.div_ceil(2) } else { format.min_stride(w) };
    // (row bytes, rows, stride in the image) of each plane.
    let planes: Vec<(usize, usize, usize)> = match format {
        PixelFormat::Nv12 => vec![(wu, hu, stride), (2 * wu.div_ceil(2), hu.div_ceil(2), stride)],
        PixelFormat::I420 => {
            let chroma = (wu.div_ceil(2), hu.div_ceil(2), stride.div_ceil(2));
            vec![(wu, hu, stride), chroma, chroma]
        }
        _ => vec![(stride, hu, stride)],
    };
    let mut data = Vec::with_capacity(format.image_len(w, h, stride));
    for (plane, &(row, rows, out_stride)) in planes.iter().enumerate() {
        let src = frame.plane_data(plane as u32).map_err(|e| format!("plane {plane}: {e}"))?;
        let src_stride = usize::try_from(frame.plane_stride()[plane]).unwrap_or(0);
        if src_stride < row || src.len() < (rows - 1) * src_stride + row {
            return Err(format!(
                "plane {plane} of a {w}×{h} {:?} frame: {} bytes with stride {src_stride}, too short",
                info.format(),
                src.len()
            ));
        }
        for r in 0..rows {
            data.extend_from_slice(&src[r * src_stride..r * src_stride + row]);
            data.resize(data.len() + out_stride - row, 0);
        }
    }
    Image::new(format, w, h, stride, data).map_err(|e| e.to_string())
}

/// When the frame was captured. `synced`: the pipeline runs on the system's monotonic clock and
/// the appsink waits for each frame's time, so the buffer's timestamp, as running time plus the
/// pipeline's base time, is that clock's reading at capture (V4L2: the driver's timestamp;
/// RTSP: when the packets arrived, smoothed by the jitter buffer). UTC is derived from it by the
/// frame's age on the monotonic clock. Unsynced (an unpaced file), or without a usable
/// timestamp: now.
pub fn capture_time(sample: &gst::SampleRef, base_time: Option<gst::ClockTime>) -> CaptureTime {
    let now = CaptureTime::now();
    let running = || {
        let pts = sample.buffer()?.pts()?;
        let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
        segment.to_running_time(pts)
    };
    let (Some(base), Some(running)) = (base_time, running()) else { return now };
    let mono_ns = (base + running).nseconds();
    let age_ns = now.mono_ns.saturating_sub(mono_ns);
    // Ahead of now, or older than any pipeline's latency: not a capture time.
    if mono_ns > now.mono_ns || age_ns > 10_000_000_000 {
        return now;
    }
    CaptureTime { mono_ns, utc_us: now.utc_us - (age_ns / 1000) as i64 }
}
