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
