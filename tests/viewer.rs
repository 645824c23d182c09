//! The live viewer in a real browser: `smplcast demo --view` (embedded broker with its
//! WebSocket listener, the viewer served) and headless Chromium (Debian's `chromium`, which
//! scripts/test.sh installs), driven over the DevTools protocol. The page must connect,
//! receive messages, draw a skeleton; the screenshot is saved as
//! target/test-artifacts/viewer.png and must show the skeleton's pixels.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use base64::Engine;
use serde_json::{json, Value};

use common::mqtt::root;

/// Kills a child process when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The demo with its viewer and `extra` flags; returns it and the viewer's URL once printed.
fn demo(name: &str, extra: &[&str]) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smplcast"))
        .args(["demo", "--frames", "0", "--fps", "10", "--view", "127.0.0.1:0", "--models"])
        .arg(root().join("models/fixtures/narrow"))
        .args(extra)
        .env("RUST_LOG", "info,rumqttd=debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(artifacts().join(format!("viewer-demo-{name}.log"))).unwrap())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut demo = Killed(child);
    // Read on after the URL: a closed pipe would end the demo at its next line.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("viewer on ") {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(url) => (demo, url),
        Err(_) => panic!("the demo did not serve the viewer: {:?}", demo.0.try_wait()),
    }
}

/// Headless Chromium on `url` with DevTools on a free port; returns it and the page's
/// DevTools WebSocket URL.
fn chromium(url: &str, profile: &Path) -> (Killed, String) {
    let child = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--window-size=1000,700", "--remote-debugging-port=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium not found: `apt-get install chromium` (scripts/test.sh does)");
    let browser = Killed(child);
    let port_file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            if let Some(port) = text.lines().next().and_then(|l| l.trim().parse::<u16>().ok()) {
                // The page target's own endpoint.
                if let Some(ws) = page_target(port) {
                    return (browser, ws);
                }
            }
        }
        assert!(Instant::now() < deadline, "chromium did not open DevTools in 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn page_target(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    // Chromium keeps the connection open: read the headers, then Content-Length bytes.
    let mut reader = BufReader::new(s);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let targets: Vec<Value> = serde_json::from_slice(&body).ok()?;
    targets
        .iter()
        .find(|t| t["type"] == "page")
        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        .map(str::to_string)
}

/// A DevTools session on one page.
struct DevTools {
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next: u64,
}

impl DevTools {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let request = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket.send(tungstenite::Message::Text(request)).unwrap();
        loop {
            let message = self.socket.read().unwrap();
            let tungstenite::Message::Text(text) = message else { continue };
            let reply: Value = serde_json::from_str(&text).unwrap();
            if reply["id"] == id {
                return reply["result"].clone();
            }
        }
    }

    /// The page's own report of what it received and drew (`#test-state`).
    fn state(&mut self) -> Value {
        let expression = "document.getElementById('test-state').textContent";
        let r = self
            .call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true }));
        serde_json::from_str(r["result"]["value"].as_str().unwrap_or("")).unwrap_or(Value::Null)
    }
}

fn artifacts() -> PathBuf {
    let dir = root().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The page in headless Chromium on the demo with `extra` flags: its state once it has decoded
/// at least 10 messages, and the session to take a screenshot with.
fn page(name: &str, extra: &[&str]) -> (Value, DevTools, Killed, Killed) {
    let (demo, url) = demo(name, extra);
    let profile =
        std::env::temp_dir().join(format!("smplcast-chromium-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let (browser, ws) = chromium(&url, &profile);
    let (socket, _) = tungstenite::connect(ws.as_str()).unwrap();
    let mut devtools = DevTools { socket, next: 0 };
    let deadline = Instant::now() + Duration::from_secs(60);
    let state = loop {
        let state = devtools.state();
        if state["messages"].as_u64().unwrap_or(0) >= 10 {
            break state;
        }
        assert!(Instant::now() < deadline, "the page received no messages in 60 s: {state}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(state["undecodable"], 0, "{state}");
    assert_eq!(state["people"], 1, "{state}");
    assert_eq!(state["drawnBones"], 23, "{state}");
    assert!(state["rate"].as_f64().unwrap() > 1.0, "{state}");
    (state, devtools, demo, browser)
}

#[test]
fn the_viewer_connects_receives_and_draws_a_skeleton() {
    let (state, mut devtools, _demo, _browser) = page("theta", &[]);
    // The demo has no SMPL file: the skeleton is the approximate one, and says so.
    assert_eq!(state["exact"], false, "{state}");

    let shot = devtools.call("Page.captureScreenshot", json!({ "format": "png" }));
    let png =
        base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
    std::fs::write(artifacts().join("viewer.png"), &png).unwrap();
    let mut decoder =
        zune_png::PngDecoder::new(zune_png::zune_core::bytestream::ZCursor::new(&png));
    let pixels = decoder.decode_raw().unwrap();
    let (w, h) = decoder.dimensions().unwrap();
    let channels = pixels.len() / (w * h);
    // Pixels of track 0's colour (#88c0d0) in the 3D view, away from the HUD (top left) and
    // the image inset (bottom right), which use it too.
    let skeleton = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let hud = x < 360 && y < 200;
            let inset = x > w - 340 && y > h - 260;
            !hud && !inset
        })
        .filter(|&(x, y)| {
            let p = &pixels[(y * w + x) * channels..][..3];
            let near = |a: u8, b: u8| a.abs_diff(b) < 40;
            near(p[0], 0x88) && near(p[1], 0xc0) && near(p[2], 0xd0)
        })
        .count();
    assert!(
        skeleton > 100,
        "{skeleton} skeleton pixels in the screenshot (target/test-artifacts/viewer.png)"
    );
}

/// With an SMPL model file (a synthetic one, models/gen_joints_vectors.py) the page draws the
/// joints the messages carry, not the approximate skeleton.
#[test]
fn with_joints_in_the_messages_the_viewer_draws_them() {
    let dir = std::env::temp_dir().join(format!("smplcast-viewer-smpl-{}", std::process::id()));
    let smpl = common::synthetic_smpl_file(&dir);
    let (state, ..) = page("joints", &["--smpl-file", smpl.to_str().unwrap()]);
    assert_eq!(state["exact"], true, "{state}");
}
