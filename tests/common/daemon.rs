//! The daemon as a process: `smplcast run --config FILE` in a scratch directory of its own,
//! stderr in a file there, started and stopped with real signals.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

use super::mqtt::root;

/// A daemon process with its config in a directory of its own; stderr goes to a file there.
pub struct Daemon {
    pub child: Child,
    pub dir: PathBuf,
}

pub fn send(child: &Child, signal: Signal) {
    let pid = Pid::from_raw(child.id() as i32).unwrap();
    kill_process(pid, signal).unwrap();
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smplcast-daemon-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Daemon {
    pub fn start(name: &str, config: &str) -> Daemon {
        Daemon::start_with_env(name, config, &[])
    }

    pub fn start_with_env(name: &str, config: &str, env: &[(&str, &OsStr)]) -> Daemon {
        Daemon::start_in(&scratch(name), config, env, &[])
    }

    /// A daemon with its config in `dir`, which may hold other files the config names, and
    /// more `args` after `run --config FILE`.
    pub fn start_in(dir: &Path, config: &str, env: &[(&str, &OsStr)], args: &[&OsStr]) -> Daemon {
        let dir = dir.to_path_buf();
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_smplcast"))
            .args(["run", "--config"])
            .arg(dir.join("config.toml"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, dir }
    }

    pub fn signal(&self, signal: Signal) {
        send(&self.child, signal);
    }

    /// Exit status and stderr, or a panic after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.stderr());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("daemon still running after {timeout:?}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (20 s at most) until start-up succeeded; panics with stderr if it exits first.
    pub fn wait_running(&mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.stderr().contains("Running.") {
            assert!(Instant::now() < deadline, "{what}: {}", self.stderr());
            assert!(self.child.try_wait().unwrap().is_none(), "{what}: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `smplcast: error:` line of a start-up that failed within `timeout`.
    pub fn start_up_error(&mut self, what: &str, timeout: Duration) -> String {
        let (status, stderr) = self.wait(timeout);
        assert!(!status.success(), "{what}: {stderr}");
        let error = stderr.lines().find(|l| l.starts_with("smplcast: error:"));
        error.unwrap_or_else(|| panic!("{what}: no error line in\n{stderr}")).to_string()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether this machine has an NVIDIA driver: the CUDA error paths are checked elsewhere.
pub fn gpu_here() -> bool {
    Path::new("/dev/nvidiactl").exists() || Path::new("/dev/nvmap").exists()
}

pub fn narrow() -> PathBuf {
    root().join("models/fixtures/narrow")
}

/// A config for `device` on the broker at `port`, with `extra` TOML appended to the given
/// sections (each section appears once: pass complete `[section]` blocks only for sections not
/// listed here).
pub fn config(device: &str, port: u16, source: &str, model_extra: &str, stats_s: f64) -> String {
    format!(
        "device_id = \"{device}\"\n[source]\n{source}\n[model]\ndir = {:?}\n{model_extra}\n\
         [mqtt]\nport = {port}\npose_qos = 1\nconnect_timeout_s = 5\n\
         [stats]\ninterval_s = {stats_s}\n",
        narrow().display().to_string()
    )
}

/// The resident set of process `pid`, in kB.
pub fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Bytes from the subscriber's hex.
pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}
