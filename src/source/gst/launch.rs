//! What a GStreamer source runs: the pipeline description of each kind, the appsink that ends
//! it, and the start-up errors that name the missing element and the Debian package with it.

/// The name of the appsink the daemon reads frames from.
pub const SINK: &str = "smplcast_sink";
/// The name of a shortcut's source element, whose location and login are set as properties
/// (never written into the description, which GStreamer's own logs may show).
pub const SRC: &str = "smplcast_src";

/// Raw layouts the fused sampler reads without a conversion, in order of preference. A
/// `videoconvert` before the appsink is a passthrough when the pipeline already delivers one
/// of them, and converts only when it does not (BGRx from `nvvidconv`, 10-bit from a decoder).
pub const CAPS: &str = "video/x-raw,format=(string){ NV12, I420, YUY2, RGB, GRAY8 }";

/// What feeds the pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A description the user wrote, ending in raw video (`... ! nvvidconv`).
    Pipeline(String),
    /// An RTSP camera; the login is set on the element, not written here.
    Rtsp { tcp: bool, latency_ms: u32 },
    /// A video file, decoded by whatever decoder GStreamer ranks first (hardware where present).
    Video,
}

/// The whole description: the input, then the conversion and the appsink. `sync`: the appsink
/// waits for each frame's time on the pipeline clock (a paced file, a live camera); without it
/// frames come as fast as the pipeline takes them. At most 4 frames wait in the appsink; a
/// slow reader blocks the pipeline there, so memory stays bounded and nothing is dropped
/// unseen (a live source's drops happen in the daemon's counted frame queue).
pub fn description(input: &Input, sync: bool) -> String {
    let head = match input {
        Input::Pipeline(p) => p.trim().trim_end_matches('!').trim().to_string(),
        // Audio streams stay unlinked: the caps filter takes the video stream only.
        Input::Rtsp { tcp, latency_ms } => format!(
            "rtspsrc name={SRC} protocols={} latency={latency_ms} \
             ! application/x-rtp,media=video ! decodebin",
            if *tcp { "tcp" } else { "udp" }
        ),
        Input::Video => format!("filesrc name={SRC} ! decodebin"),
    };
    format!(
        "{head} ! videoconvert ! appsink name={SINK} caps=\"{CAPS}\" sync={sync} \
         max-buffers=4 drop=false enable-last-sample=false"
    )
}

/// The Debian package (or the board's own) that provides a GStreamer element, for start-up
/// errors; `None` for an element this table does not know.
pub fn package_of(element: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &[&str])] = &[
        (
            "gstreamer1.0-plugins-base",
            &[
                "videotestsrc",
                "videoconvert",
                "videoscale",
                "videorate",
                "decodebin",
                "uridecodebin",
                "decodebin3",
                "uridecodebin3",
                "playbin",
                "appsink",
                "appsrc",
                "theoradec",
                "oggdemux",
                "tcpclientsrc",
                "udpsrc",
            ],
        ),
        ("libgstreamer1.0-0", &["filesrc", "queue", "fakesink", "capsfilter", "identity", "tee"]),
        (
            "gstreamer1.0-plugins-good",
            &[
                "rtspsrc",
                "rtph264depay",
                "rtph265depay",
                "rtpjpegdepay",
                "qtdemux",
                "matroskademux",
                "avidemux",
                "v4l2src",
                "jpegdec",
                "vp8dec",
                "vp9dec",
                "souphttpsrc",
                "flvdemux",
                "multifilesrc",
                "v4l2h264dec",
            ],
        ),
        (
            "gstreamer1.0-plugins-bad",
            &["h264parse", "h265parse", "tsdemux", "srtsrc", "nvh264dec", "vah264dec", "av1parse"],
        ),
        ("gstreamer1.0-plugins-ugly", &["x264enc", "mpeg2dec", "asfdemux"]),
        ("gstreamer1.0-libav", &["avdec_h264", "avdec_h265", "avdec_mjpeg", "avdec_mpeg4"]),
        ("gstreamer1.0-libcamera (Raspberry Pi OS)", &["libcamerasrc"]),
        (
            "JetPack's nvidia-l4t-gstreamer (Jetson only)",
            &["nvarguscamerasrc", "nvvidconv", "nvv4l2decoder", "nvjpegdec"],
        ),
    ];
    TABLE.iter().find(|(_, els)| els.contains(&element)).map(|(pkg, _)| *pkg)
}

/// The plugin package for a codec's caps (a decoder decodebin could not find), by caps name.
pub fn package_for_codec(caps_name: &str) -> &'static str {
    match caps_name {
        "video/x-h264" | "video/x-h265" | "video/mpeg" | "video/x-divx" | "video/x-msmpeg"
        | "video/x-wmv" | "video/x-xvid" => "gstreamer1.0-libav",
        "video/x-vp8" | "video/x-vp9" | "image/jpeg" | "video/x-dv" => "gstreamer1.0-plugins-good",
        "video/x-av1" => "gstreamer1.0-plugins-bad (dav1d) or gstreamer1.0-libav",
        _ => "gstreamer1.0-libav or gstreamer1.0-plugins-bad",
    }
}

/// "element X: not installed; …" for each element the parser could not make.
pub fn missing_elements(names: &[String]) -> String {
    let each: Vec<String> = names
        .iter()
        .map(|name| match package_of(name) {
            Some(pkg) => format!("GStreamer element `{name}` is not installed; install {pkg}"),
            None => format!(
                "GStreamer element `{name}` is not installed; `gst-inspect-1.0 {name}` tells \
                 whether it exists, and the plugin set that has it must be installed"
            ),
        })
        .collect();
    each.join("; ")
}

/// `text` with the `user:password@` of every URL in it taken out (`rtsp://u:p@host/x` →
/// `rtsp://host/x`), for logs and state messages.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail.find(['/', ' ', '"', '\'', '!']).unwrap_or(tail.len());
        let authority = &tail[..end];
        out.push_str(authority.rsplit_once('@').map_or(authority, |(_, host)| host));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_end_in_the_daemons_appsink() {
        let p = description(&Input::Pipeline("videotestsrc ! ".into()), true);
        assert!(p.starts_with("videotestsrc ! videoconvert ! appsink name=smplcast_sink"), "{p}");
        assert!(p.contains("sync=true") && p.contains("max-buffers=4 drop=false"), "{p}");
        let r = description(&Input::Rtsp { tcp: false, latency_ms: 150 }, true);
        assert!(r.starts_with("rtspsrc name=smplcast_src protocols=udp latency=150 "), "{r}");
        assert!(!r.contains("location"), "the URL is a property, not text: {r}");
        let v = description(&Input::Video, false);
        assert!(v.starts_with("filesrc name=smplcast_src ! decodebin ! videoconvert"), "{v}");
        assert!(v.contains("sync=false"), "{v}");
    }

    #[test]
    fn missing_elements_name_their_package() {
        let m = missing_elements(&["x264enc".into(), "nvarguscamerasrc".into(), "zzz".into()]);
        assert!(m.contains("`x264enc` is not installed; install gstreamer1.0-plugins-ugly"), "{m}");
        assert!(m.contains("nvidia-l4t-gstreamer"), "{m}");
        assert!(m.contains("gst-inspect-1.0 zzz"), "{m}");
        assert_eq!(package_for_codec("video/x-h264"), "gstreamer1.0-libav");
    }

    #[test]
    fn urls_lose_their_login() {
        assert_eq!(redact("rtsp://admin:s3cret@10.0.0.2:554/live"), "rtsp://10.0.0.2:554/live");
        assert_eq!(redact("rtsp://cam.local/a@b"), "rtsp://cam.local/a@b");
        assert_eq!(redact("rtsp://u:p@h"), "rtsp://h");
        assert_eq!(
            redact("rtspsrc location=rtsp://a:b@h/x ! decodebin ! x location=\"rtsp://c@d\""),
            "rtspsrc location=rtsp://h/x ! decodebin ! x location=\"rtsp://d\""
        );
    }
}
