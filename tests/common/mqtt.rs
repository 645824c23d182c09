//! MQTT test helpers: a real mosquitto on a free loopback port and the third-party Python
//! subscriber (tests/subscriber/sub.py: paho-mqtt + smplcast_sub.py, written from docs/WIRE.md
//! alone). scripts/test.sh installs mosquitto and the Python venv.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The test harness's Python (tests/.venv: paho-mqtt, cbor2, numpy), which `tests/run`
/// creates; the test command runs it first.
pub fn python() -> PathBuf {
    let python = root().join("tests/.venv/bin/python");
    assert!(python.is_file(), "no test venv: run `tests/run -m pytest tests/subscriber` once");
    python
}

pub struct Broker {
    child: Child,
    pub port: u16,
}

impl Broker {
    pub fn start() -> Broker {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Broker::start_on(port)
    }

    /// A broker on a given port (a restart after [`Broker::kill`]).
    pub fn start_on(port: u16) -> Broker {
        Broker::spawn(port, Command::new("mosquitto").args(["-p", &port.to_string()]))
    }

    /// A broker with extra mosquitto.conf lines (written to `dir`), e.g. a password file.
    pub fn start_with_config(dir: &Path, conf: &str) -> Broker {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let file = dir.join("mosquitto.conf");
        std::fs::write(&file, format!("listener {port} 127.0.0.1\n{conf}\n")).unwrap();
        Broker::spawn(port, Command::new("mosquitto").arg("-c").arg(file))
    }

    fn spawn(port: u16, command: &mut Command) -> Broker {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto not found: `apt-get install mosquitto` (scripts/test.sh does)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { child, port }
    }
}

impl Broker {
    /// Kills the broker at once (SIGKILL): its clients see the connection drop.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python subscriber, its JSON lines delivered through a channel.
pub struct Subscriber {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Subscriber {
    pub fn start(port: u16, device: &str, timeout_s: u32) -> Subscriber {
        Subscriber::start_with(port, device, timeout_s, &[])
    }

    /// With more arguments of tests/subscriber/sub.py (`--camera`).
    pub fn start_with(port: u16, device: &str, timeout_s: u32, args: &[&str]) -> Subscriber {
        let mut child = Command::new(python())
            .arg(root().join("tests/subscriber/sub.py"))
            .args(["--port", &port.to_string(), "--device", device])
            .args(["--timeout", &timeout_s.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str(&line).expect("subscriber prints JSON"));
            }
        });
        Subscriber { child, lines }
    }

    /// Lines until `pred` holds for one (returned last), or panics after `timeout`.
    pub fn until(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    let done = pred(&v);
                    seen.push(v);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("subscriber: condition not met in {timeout:?}; saw {seen:?}"),
            }
        }
    }
}

impl Subscriber {
    /// Every line until the subscriber exits (it lingers briefly after `offline`: MQTT orders
    /// messages per topic, so poses sent before `offline` may arrive after it), or `timeout`.
    pub fn rest(&self, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Ok(v) =
            self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            seen.push(v);
        }
        seen
    }

    /// Like [`Subscriber::until`], but awaits between polls so a current-thread runtime keeps
    /// driving the publisher; lines are appended to `lines`.
    pub async fn until_async(
        &self,
        lines: &mut Vec<Value>,
        timeout: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !done(lines) {
            lines.extend(self.lines.try_iter());
            assert!(
                Instant::now() < deadline,
                "subscriber: condition not met in {timeout:?}; saw {lines:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn is_status(v: &Value, s: &str) -> bool {
    v["status"] == s
}

/// A subscriber that connects now reads the retained status `offline` at once.
pub fn assert_retained_offline(port: u16, device: &str) {
    let late = Subscriber::start(port, device, 3);
    let seen = late.until(Duration::from_secs(10), |v| v["status"].is_string());
    let last = seen.last().unwrap();
    assert_eq!((last["status"].as_str(), last["retain"].as_bool()), (Some("offline"), Some(true)));
}

/// What a [`Relay`] saw a client send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    /// CONNECT: the protocol level (4: 3.1.1, 5: MQTT 5), clean start, the session expiry.
    Connect {
        level: u8,
        clean: bool,
        session_expiry: Option<u32>,
    },
    /// PUBLISH: its topic (empty when the alias names it) and topic alias.
    Publish {
        topic: String,
        alias: Option<u16>,
    },
    Other(u8),
}

/// A TCP relay between clients and a broker that decodes what the clients send (the MQTT 5
/// and 3.1.1 packet formats, as far as CONNECT and PUBLISH go), and can cut the connections.
pub struct Relay {
    pub port: u16,
    sent: std::sync::Arc<std::sync::Mutex<Vec<Sent>>>,
    streams: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Relay {
    pub fn start(broker_port: u16) -> Relay {
        use std::sync::{Arc, Mutex};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let (sent2, streams2) = (sent.clone(), streams.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let broker = TcpStream::connect(("127.0.0.1", broker_port)).unwrap();
                let mut all = streams2.lock().unwrap();
                all.push(client.try_clone().unwrap());
                all.push(broker.try_clone().unwrap());
                let (c2, b2) = (client.try_clone().unwrap(), broker.try_clone().unwrap());
                let sent = sent2.clone();
                std::thread::spawn(move || copy_decoding(client, broker, &sent));
                std::thread::spawn(move || {
                    let (mut from, mut to) = (b2, c2);
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Relay { port, sent, streams }
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }

    /// Cuts every connection through the relay (both sides see it close).
    pub fn cut(&self) {
        for s in self.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn copy_decoding(mut from: TcpStream, mut to: TcpStream, sent: &std::sync::Mutex<Vec<Sent>>) {
    use std::io::{Read, Write};
    let (mut buf, mut chunk, mut level) = (Vec::new(), [0u8; 8192], 4u8);
    while let Ok(n) = from.read(&mut chunk) {
        if n == 0 || to.write_all(&chunk[..n]).is_err() {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some((packet, used)) = split_packet(&buf) {
            let decoded = decode(packet, level);
            if let Sent::Connect { level: l, .. } = decoded {
                level = l;
            }
            sent.lock().unwrap().push(decoded);
            buf.drain(..used);
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// A variable byte integer at `b[*at..]`, advancing `at`.
fn varint(b: &[u8], at: &mut usize) -> Option<usize> {
    let (mut value, mut shift) = (0usize, 0);
    loop {
        let byte = *b.get(*at)?;
        *at += 1;
        value |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
        shift += 7;
    }
}

/// The first whole packet of `b` and its length.
fn split_packet(b: &[u8]) -> Option<(&[u8], usize)> {
    let mut at = 1;
    let len = varint(b, &mut at)?;
    (b.len() >= at + len).then(|| (&b[..at + len], at + len))
}

fn decode(p: &[u8], level: u8) -> Sent {
    let u16_at = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]);
    let u32_at = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    let mut at = 1;
    varint(p, &mut at).unwrap();
    // MQTT 5 properties from `at`: (identifier, offset of its value); skips by type.
    let props = |mut at: usize| {
        let len = varint(p, &mut at).unwrap();
        let (end, mut found) = (at + len, Vec::new());
        while at < end {
            let id = p[at];
            at += 1;
            found.push((id, at));
            at += match id {
                0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => 1,
                0x13 | 0x21 | 0x22 | 0x23 => 2,
                0x02 | 0x11 | 0x18 | 0x27 => 4,
                0x0B => {
                    let mut v = at;
                    varint(p, &mut v).unwrap();
                    v - at
                }
                0x26 => {
                    let k = 2 + usize::from(u16_at(at));
                    k + 2 + usize::from(u16_at(at + k))
                }
                _ => 2 + usize::from(u16_at(at)), // strings and binary data
            };
        }
        found
    };
    match p[0] >> 4 {
        1 => {
            let level = p[at + 6];
            let clean = p[at + 7] & 0x02 != 0;
            let session_expiry = (level == 5)
                .then(|| props(at + 10).into_iter().find(|(id, _)| *id == 0x11))
                .flatten()
                .map(|(_, v)| u32_at(v));
            Sent::Connect { level, clean, session_expiry }
        }
        3 => {
            let len = usize::from(u16_at(at));
            let topic = String::from_utf8_lossy(&p[at + 2..at + 2 + len]).into_owned();
            let mut after = at + 2 + len;
            if (p[0] >> 1) & 3 > 0 {
                after += 2; // packet id
            }
            let alias = (level == 5)
                .then(|| props(after).into_iter().find(|(id, _)| *id == 0x23))
                .flatten()
                .map(|(_, v)| u16_at(v));
            Sent::Publish { topic, alias }
        }
        other => Sent::Other(other),
    }
}

/// rumqttd with a 3.1.1 listener only, in this process: a broker that refuses MQTT 5. Returns
/// its port once it listens.
pub fn rumqttd_v311() -> u16 {
    use std::collections::HashMap;
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let server = rumqttd::ServerSettings {
        name: "v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: rumqttd::ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 1 << 20,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 16,
            max_outgoing_packet_count: 200,
            max_segment_size: 1 << 20,
            max_segment_count: 4,
            ..rumqttd::RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..rumqttd::Config::default()
    };
    std::thread::spawn(move || {
        if let Err(e) = rumqttd::Broker::new(config).start() {
            eprintln!("rumqttd stopped: {e}");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(listen).is_err() {
        assert!(Instant::now() < deadline, "rumqttd did not listen on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    port
}
