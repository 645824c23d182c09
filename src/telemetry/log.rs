//! Where the log goes. Under systemd, whose journal reads the service's stderr, events go to
//! journald natively instead: each field of an event (and of the `daemon` span around it, the
//! device id) becomes a journal field, so `journalctl -u smplcast -o json` shows `DEVICE_ID`,
//! `ERROR`, `REASON`, … and `journalctl -u smplcast DEVICE_ID=cam0` filters on them. Anywhere
//! else (a terminal, a pipe, a file) the log is text on stderr.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Installs the global log subscriber: `RUST_LOG` filters (default `info,rumqttd=off`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,rumqttd=off".into());
    let journal = stderr_is_journal()
        .then(tracing_journald::layer)
        .and_then(Result::ok)
        // Our fields as they are named (ERROR, not F_ERROR): none of them is a journal field.
        .map(|layer| layer.with_field_prefix(None).boxed());
    let text = journal.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed()
    });
    tracing_subscriber::registry().with(filter).with(journal).with(text).init();
}

/// Whether stderr is the stream systemd connected to the journal: `$JOURNAL_STREAM` names its
/// device and inode (systemd.exec(5)); a child with stderr redirected elsewhere does not match.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else { return false };
    std::fs::File::from(fd).metadata().is_ok_and(|m| names(&stream.to_string_lossy(), &m))
}

/// Whether `stream` (`DEVICE:INODE`, both decimal) names the file of `meta`.
fn names(stream: &str, meta: &std::fs::Metadata) -> bool {
    let parsed =
        stream.split_once(':').and_then(|(dev, ino)| Some((dev.parse().ok()?, ino.parse().ok()?)));
    parsed == Some((meta.dev(), meta.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_names_device_and_inode() {
        let meta = std::fs::metadata("Cargo.toml").unwrap();
        assert!(names(&format!("{}:{}", meta.dev(), meta.ino()), &meta));
        assert!(!names(&format!("{}:{}", meta.dev(), meta.ino() + 1), &meta));
        assert!(!names(&meta.dev().to_string(), &meta));
        assert!(!names("x:1", &meta));
    }
}
