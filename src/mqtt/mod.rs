//! MQTT: the one module that uses rumqttc. It chooses the topics, QoS and retain flags
//! (docs/WIRE.md); the rest of the daemon hands it domain values (encoded poses, notices).
//!
//! - [`Broker`]: a broker and how to reach it (host, port, login, TLS, protocol version);
//! - [`link`]: one connection in MQTT 5 or 3.1.1 ([`Broker::connect`]), used by the publisher,
//!   `smplcast sub`, the demo's watcher and the examples;
//! - [`Settings`]: where and how the daemon publishes (`[mqtt]`, built by `config`);
//! - `drive`: a client's event loop, shared by the publisher and the replay sender:
//!   reconnection with [`Backoff`], and the clean disconnect;
//! - [`Failure`]: what a failed connection means for the user, and the fix to print;
//! - [`publish`]: the daemon's publisher; [`tls`]: the rustls configuration of `[mqtt]`;
//!   [`homeassistant`]: its discovery configs.

use std::sync::Arc;
use std::time::Duration;

pub use rumqttc::QoS;

pub mod client;
pub mod homeassistant;
pub mod link;
pub mod publish;
pub mod tls;

/// Where and how the daemon publishes (`[mqtt]`).
#[derive(Clone, Debug)]
pub struct Settings {
    pub broker: Broker,
    /// Topic prefix, without trailing slash.
    pub prefix: String,
    pub device_id: String,
    /// QoS of pose messages (0 recommended: a stale pose is worth nothing).
    pub pose_qos: QoS,
    /// Capacity of rumqttc's request channel (messages waiting for the socket).
    pub client_cap: usize,
    /// A pose message that waited this long for the broker is stale: dropped, not sent.
    pub max_age: Duration,
    /// Retained messages published on every connection: Home Assistant's discovery configs
    /// ([`homeassistant::discovery`]), topic and JSON payload.
    pub discovery: Vec<(String, Vec<u8>)>,
}

impl Settings {
    pub fn topic(&self, leaf: &str) -> String {
        format!("{}/{}/{leaf}", self.prefix, self.device_id)
    }
}

/// A broker and how to reach it: what the daemon's `[mqtt]` and `smplcast sub` share.
#[derive(Clone, Debug)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub keep_alive: Duration,
    /// User name and password, for brokers that require a login.
    pub login: Option<Login>,
    /// TLS to the broker (`None`: plain TCP); built and checked by [`tls`].
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// MQTT 5 (with a fallback to 3.1.1 for brokers that refuse it) or 3.1.1.
    pub protocol: Protocol,
    /// MQTT 5: keep the session this many seconds after a disconnect (`None`: a clean session
    /// on every connection).
    pub session_expiry: Option<u32>,
}

/// A broker login.
#[derive(Clone, Debug)]
pub struct Login {
    pub username: String,
    pub password: Password,
}

pub use crate::secret::Password;
pub use link::{Protocol, Will};

impl Broker {
    /// A broker over plain TCP without a login (the demo's embedded one, a test's).
    pub fn plain(host: impl Into<String>, port: u16) -> Broker {
        Broker {
            host: host.into(),
            port,
            keep_alive: Duration::from_secs(10),
            login: None,
            tls: None,
            protocol: Protocol::V5,
            session_expiry: None,
        }
    }

    /// `host:port`, with `(TLS)` when it is.
    pub fn describe(&self) -> String {
        let tls = if self.tls.is_some() { " (TLS)" } else { "" };
        format!("{}:{}{tls}", self.host, self.port)
    }
}

/// Delays between connection attempts: from 100 ms, doubling up to [`Backoff::MAX`] (1 s, so
/// a stream is back within about a second of the broker).
#[derive(Debug)]
pub struct Backoff(Duration);

impl Backoff {
    pub const FIRST: Duration = Duration::from_millis(100);
    pub const MAX: Duration = Duration::from_secs(1);

    pub fn new() -> Backoff {
        Backoff(Self::FIRST)
    }

    /// After a successful connection.
    pub fn reset(&mut self) {
        self.0 = Self::FIRST;
    }

    /// The delay before the next attempt; the one after is longer.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        delay
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

/// What [`drive`] reports from the event loop.
pub(crate) enum Seen<'a> {
    Event(&'a link::Event),
    /// A connection attempt failed, or the connection broke; a retry follows.
    Failed(&'a Failure),
}

/// Drives a client's event loop (its socket: connection, sending, acknowledgements) and
/// shows `on` everything it sees. After an error it reconnects, with [`Backoff`]. After the
/// client's DISCONNECT it reads on until the broker closes the connection, then returns:
/// closing first, with an acknowledgement still unread, makes the kernel reset the
/// connection, and the broker drops what it has not read yet (the last messages).
pub(crate) async fn drive(mut events: link::Events, mut on: impl FnMut(Seen<'_>)) {
    let (mut disconnecting, mut backoff) = (false, Backoff::new());
    loop {
        match events.poll().await {
            Ok(event) => {
                match &event {
                    link::Event::Connected { .. } => backoff.reset(),
                    link::Event::DisconnectSent => disconnecting = true,
                    _ => {}
                }
                on(Seen::Event(&event));
            }
            Err(_) if disconnecting => return,
            Err(e) => {
                on(Seen::Failed(&e));
                let delay = backoff.next_delay();
                let error = &e.message;
                tracing::warn!(%error, retry_in = ?delay, "MQTT connection failed; retrying.");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// A failed connection attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// rumqttc's error, as text.
    pub message: String,
}

/// What a failed connection attempt means for the user: which settings to look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// No answer, a reset or a closed connection: the broker is down or elsewhere.
    Unreachable,
    /// The broker answered CONNECT with a refusal (bad login, not authorised).
    Refused,
    /// The broker's certificate did not verify: another CA, or a host it does not name.
    BrokerCertificate,
    /// The broker rejected our client certificate, or wanted one and got none.
    ClientCertificate,
    /// Another TLS failure, e.g. TLS to a plain listener.
    Handshake,
}

impl Failure {
    /// A failed MQTT 3.1.1 connection.
    pub fn of(e: &rumqttc::ConnectionError) -> Self {
        let refused = matches!(e, rumqttc::ConnectionError::ConnectionRefused(_));
        let tls = matches!(e, rumqttc::ConnectionError::Tls(_));
        Failure::classify(e, refused, tls)
    }

    /// A failed MQTT 5 connection.
    pub fn of_v5(e: &rumqttc::v5::ConnectionError) -> Self {
        use rumqttc::v5::{ConnectionError as C, StateError as S};
        let refused = matches!(e, C::ConnectionRefused(_) | C::MqttState(S::ConnFail { .. }));
        Failure::classify(e, refused, matches!(e, C::Tls(_)))
    }

    fn classify(e: &(dyn std::error::Error + 'static), refused: bool, tls: bool) -> Self {
        use rustls::AlertDescription as Alert;
        let kind = match (refused, tls_error(e)) {
            (true, _) => FailureKind::Refused,
            (_, Some(rustls::Error::InvalidCertificate(_))) => FailureKind::BrokerCertificate,
            (
                _,
                Some(rustls::Error::AlertReceived(
                    Alert::CertificateRequired
                    | Alert::BadCertificate
                    | Alert::UnknownCA
                    | Alert::CertificateUnknown
                    | Alert::CertificateExpired
                    | Alert::CertificateRevoked
                    | Alert::UnsupportedCertificate
                    | Alert::AccessDenied,
                )),
            ) => FailureKind::ClientCertificate,
            (_, Some(_)) => FailureKind::Handshake,
            _ if tls => FailureKind::Handshake,
            _ => FailureKind::Unreachable,
        };
        Failure { kind, message: e.to_string() }
    }

    /// What to fix, in the words of the daemon's `[mqtt]` keys (`smplcast sub` has flags of
    /// the same names). `tls`: whether TLS was configured.
    pub fn fix(kind: Option<FailureKind>, tls: bool) -> &'static str {
        match kind {
            Some(FailureKind::Refused) => {
                "the broker refused this client: fix [mqtt] username and password_file \
                 (or password_credential), or the broker's access rules"
            }
            Some(FailureKind::BrokerCertificate) => {
                "the broker's certificate was not accepted: set [mqtt] ca_file to the CA \
                 that signed it, and host to a name (or IP) the certificate holds"
            }
            Some(FailureKind::ClientCertificate) => {
                "the broker wants a client certificate it trusts: set [mqtt] \
                 client_cert_file and client_key_file to one its CA signed"
            }
            Some(FailureKind::Handshake) => {
                "the TLS handshake failed: make [mqtt] port the broker's TLS listener"
            }
            _ if tls => "start the broker or fix [mqtt] host and port (the broker's TLS listener)",
            _ => {
                "start the broker or fix [mqtt] host and port (and tls, if the broker \
                 requires it)"
            }
        }
    }
}

/// The rustls error behind `e`, if any. rustls reports through `std::io::Error`, whose
/// `source()` skips the error it wraps, so each I/O error is also opened with `get_ref`.
fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner = err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        if let Some(tls) = inner.and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return Some(tls);
        }
        next = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new();
        let delays: Vec<u64> = (0..6).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}
