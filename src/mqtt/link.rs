//! One connection to a broker, in MQTT 5 or 3.1.1, behind one [`Client`] (requests) and one
//! [`Events`] (the socket: connection, acks, messages). rumqttc has a client per protocol
//! version; this module is the only place that tells them apart, so the publisher, `smplcast
//! sub`, the replay sender and the demo's watcher have one code path for both.
//!
//! MQTT 5 is the default ([`Protocol::V5`]). While no MQTT 5 connection has been accepted yet,
//! a broker that closes the connection after our CONNECT, answers with something that is not an
//! MQTT 5 CONNACK, or refuses the protocol version is taken for a 3.1.1-only broker: the
//! connection is rebuilt as 3.1.1 ([`Event::FellBack`], with a warning naming the broker and the
//! `mqtt.protocol` setting) and stays 3.1.1 until restart.

use std::sync::{Arc, RwLock};

use rumqttc::v5;
use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::{AsyncClient, EventLoop, LastWill, MqttOptions, TlsConfiguration, Transport};

use super::{Broker, Failure, QoS};

/// The MQTT protocol version (`mqtt.protocol`: `"5"` or `"3.1.1"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    V5,
    V311,
}

impl Protocol {
    /// `"5"` or `"3.1.1"`, as the setting spells it.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "5" | "5.0" => Some(Protocol::V5),
            "3.1.1" | "4" => Some(Protocol::V311),
            _ => None,
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::V5 => "MQTT 5",
            Protocol::V311 => "MQTT 3.1.1",
        })
    }
}

/// The MQTT 5 properties of a message (a 3.1.1 connection sends none of them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Props {
    pub content_type: Option<&'static str>,
    /// 0: bytes, 1: UTF-8 text.
    pub payload_format: Option<u8>,
    /// Seconds after which a broker drops the message instead of delivering it.
    pub expiry_s: Option<u32>,
    /// A topic alias. With an empty topic, the alias alone names the topic.
    pub alias: Option<u16>,
    pub user: Vec<(String, String)>,
}

impl Props {
    fn v5(&self) -> Option<p5::PublishProperties> {
        (*self != Props::default()).then(|| p5::PublishProperties {
            payload_format_indicator: self.payload_format,
            message_expiry_interval: self.expiry_s,
            topic_alias: self.alias,
            user_properties: self.user.clone(),
            content_type: self.content_type.map(str::to_owned),
            ..Default::default()
        })
    }
}

/// A retained message the broker publishes for a client that goes away without saying so.
pub struct Will {
    pub topic: String,
    pub payload: &'static str,
}

/// A message received.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    /// 0, 1 or 2.
    pub qos: u8,
    pub retain: bool,
}

/// What [`Events::poll`] saw.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The broker accepted the connection; `alias_max`: the topic aliases it takes (0 in 3.1.1).
    Connected {
        alias_max: u16,
        session_present: bool,
    },
    /// A QoS 1 publish acknowledged, or a QoS 2 one completed.
    Acked,
    /// A subscription answered: `granted` is false when the broker refused it.
    Subscribed {
        granted: bool,
    },
    Message(Message),
    /// Our DISCONNECT went out.
    DisconnectSent,
    /// The broker refused MQTT 5: the connection is 3.1.1 from now on.
    FellBack {
        reason: String,
    },
    Other,
}

/// A request the client could not queue: its event loop has ended.
#[derive(Debug, thiserror::Error)]
#[error("MQTT client request failed: {0}")]
pub struct RequestError(String);

#[derive(Clone)]
enum Inner {
    V4(AsyncClient),
    V5(v5::AsyncClient),
}

/// The requests side of a connection; clones share it (and follow a fallback to 3.1.1).
#[derive(Clone)]
pub struct Client(Arc<RwLock<Inner>>);

fn qos5(qos: QoS) -> QoS5 {
    match qos {
        QoS::AtMostOnce => QoS5::AtMostOnce,
        QoS::AtLeastOnce => QoS5::AtLeastOnce,
        QoS::ExactlyOnce => QoS5::ExactlyOnce,
    }
}

fn failed(e: impl std::fmt::Display) -> RequestError {
    RequestError(e.to_string())
}

impl Client {
    fn inner(&self) -> Inner {
        match self.0.read() {
            Ok(inner) => inner.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn protocol(&self) -> Protocol {
        match self.inner() {
            Inner::V4(_) => Protocol::V311,
            Inner::V5(_) => Protocol::V5,
        }
    }

    /// Queues a message without waiting.
    ///
    /// # Errors
    /// When the request channel is full or the event loop has ended.
    pub fn try_publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
        props: &Props,
    ) -> Result<(), RequestError> {
        match self.inner() {
            Inner::V4(c) => c.try_publish(topic, qos, retain, payload).map_err(failed),
            Inner::V5(c) => match props.v5() {
                Some(p) => c.try_publish_with_properties(topic, qos5(qos), retain, payload, p),
                None => c.try_publish(topic, qos5(qos), retain, payload),
            }
            .map_err(failed),
        }
    }

    /// Queues a message, waiting for room in the request channel.
    ///
    /// # Errors
    /// When the event loop has ended.
    pub async fn publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
        props: &Props,
    ) -> Result<(), RequestError> {
        match self.inner() {
            Inner::V4(c) => c.publish(topic, qos, retain, payload).await.map_err(failed),
            Inner::V5(c) => match props.v5() {
                Some(p) => c.publish_with_properties(topic, qos5(qos), retain, payload, p).await,
                None => c.publish(topic, qos5(qos), retain, payload).await,
            }
            .map_err(failed),
        }
    }

    /// # Errors
    /// When the event loop has ended.
    pub async fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), RequestError> {
        match self.inner() {
            Inner::V4(c) => c.subscribe(filter, qos).await.map_err(failed),
            Inner::V5(c) => c.subscribe(filter, qos5(qos)).await.map_err(failed),
        }
    }

    /// # Errors
    /// When the event loop has ended.
    pub async fn disconnect(&self) -> Result<(), RequestError> {
        match self.inner() {
            Inner::V4(c) => c.disconnect().await.map_err(failed),
            Inner::V5(c) => c.disconnect().await.map_err(failed),
        }
    }
}

/// How a connection is made: what a fallback needs to make it again.
struct Recipe {
    broker: Broker,
    client_id: String,
    cap: usize,
    will: Option<Will>,
}

enum Loop {
    V4(Box<EventLoop>),
    V5(Box<v5::EventLoop>),
}

/// The socket side of a connection: poll it to connect, send and receive.
pub struct Events {
    events: Loop,
    client: Client,
    recipe: Recipe,
    /// Whether a connection has been accepted (no fallback after that).
    accepted: bool,
}

impl Broker {
    /// A client of this broker named `client_id`, with a request channel of `cap` messages,
    /// in `self.protocol`; the connection is made on the first [`Events::poll`]. The session is
    /// clean unless `session_expiry` is set (MQTT 5 only: a 3.1.1 session is always clean).
    pub fn connect(&self, client_id: String, cap: usize, will: Option<Will>) -> (Client, Events) {
        let recipe = Recipe { broker: self.clone(), client_id, cap: cap.max(1), will };
        let (inner, events) = recipe.make(self.protocol);
        let client = Client(Arc::new(RwLock::new(inner)));
        (client.clone(), Events { events, client, recipe, accepted: false })
    }
}

/// Pose messages are a few kB; room for a recording's largest.
const MAX_PACKET: usize = 1 << 20;

impl Recipe {
    fn make(&self, protocol: Protocol) -> (Inner, Loop) {
        let b = &self.broker;
        let transport = b
            .tls
            .as_ref()
            .map(|tls| Transport::tls_with_config(TlsConfiguration::Rustls(tls.clone())));
        match protocol {
            Protocol::V311 => {
                let mut opts = MqttOptions::new(&self.client_id, &b.host, b.port);
                opts.set_keep_alive(b.keep_alive)
                    .set_clean_session(true)
                    .set_max_packet_size(MAX_PACKET, MAX_PACKET);
                if let Some(will) = &self.will {
                    let (topic, payload) = (will.topic.clone(), will.payload);
                    opts.set_last_will(LastWill::new(topic, payload, QoS::AtLeastOnce, true));
                }
                if let Some(login) = &b.login {
                    opts.set_credentials(login.username.clone(), login.password.0.clone());
                }
                if let Some(t) = transport {
                    opts.set_transport(t);
                }
                let (c, e) = AsyncClient::new(opts, self.cap);
                (Inner::V4(c), Loop::V4(Box::new(e)))
            }
            Protocol::V5 => {
                let mut opts = v5::MqttOptions::new(&self.client_id, &b.host, b.port);
                opts.set_keep_alive(b.keep_alive)
                    .set_clean_start(b.session_expiry.is_none())
                    .set_session_expiry_interval(b.session_expiry)
                    .set_max_packet_size(Some(MAX_PACKET as u32));
                if let Some(will) = &self.will {
                    let props = p5::LastWillProperties {
                        delay_interval: None,
                        payload_format_indicator: Some(1),
                        message_expiry_interval: None,
                        content_type: Some("text/plain".into()),
                        response_topic: None,
                        correlation_data: None,
                        user_properties: Vec::new(),
                    };
                    let (topic, payload) = (will.topic.clone(), will.payload);
                    let will =
                        p5::LastWill::new(topic, payload, QoS5::AtLeastOnce, true, Some(props));
                    opts.set_last_will(will);
                }
                if let Some(login) = &b.login {
                    opts.set_credentials(login.username.clone(), login.password.0.clone());
                }
                if let Some(t) = transport {
                    opts.set_transport(t);
                }
                let (c, e) = v5::AsyncClient::new(opts, self.cap);
                (Inner::V5(c), Loop::V5(Box::new(e)))
            }
        }
    }
}

impl Events {
    /// The next event. After an error, polling again reconnects (the caller waits between
    /// attempts).
    ///
    /// # Errors
    /// A failed connection attempt, or a broken connection: what it means and what to fix.
    pub async fn poll(&mut self) -> Result<Event, Failure> {
        let result = match &mut self.events {
            Loop::V4(e) => e.poll().await.map(v4_event).map_err(|e| Failure::of(&e)),
            Loop::V5(e) => match e.poll().await {
                Ok(event) => Ok(v5_event(event)),
                Err(e) if !self.accepted && refuses_v5(&e) => return Ok(self.fall_back(&e)),
                Err(e) => Err(Failure::of_v5(&e)),
            },
        };
        if let Ok(Event::Connected { .. }) = result {
            self.accepted = true;
        }
        result
    }

    fn fall_back(&mut self, e: &v5::ConnectionError) -> Event {
        let reason = e.to_string();
        tracing::warn!(
            broker = %self.recipe.broker.describe(), %reason,
            "The MQTT broker refused MQTT 5: connecting with MQTT 3.1.1 until restart \
             (set mqtt.protocol = \"3.1.1\" to go straight to it)."
        );
        let (inner, events) = self.recipe.make(Protocol::V311);
        match self.client.0.write() {
            Ok(mut c) => *c = inner,
            Err(poisoned) => *poisoned.into_inner() = inner,
        }
        self.events = events;
        Event::FellBack { reason }
    }
}

/// Whether a failed first MQTT 5 connection looks like a broker that speaks 3.1.1 only: it
/// closed the connection after the CONNECT, or answered with what an MQTT 5 client cannot read,
/// or refused the version. A refused TCP connection (nobody listening) is not one.
fn refuses_v5(e: &v5::ConnectionError) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, UnexpectedEof};
    use v5::{ConnectionError as C, StateError as S};
    let closed = |e: &std::io::Error| {
        matches!(e.kind(), ConnectionAborted | ConnectionReset | UnexpectedEof)
    };
    match e {
        C::ConnectionRefused(code) => matches!(
            code,
            p5::ConnectReturnCode::UnsupportedProtocolVersion
                | p5::ConnectReturnCode::RefusedProtocolVersion
        ),
        C::NotConnAck(_) => true,
        C::MqttState(S::ConnectionAborted | S::Deserialization(_)) => true,
        C::MqttState(S::Io(io)) | C::Io(io) => closed(io),
        _ => false,
    }
}

fn v4_event(event: rumqttc::Event) -> Event {
    use rumqttc::{Event as E, Outgoing, Packet};
    match event {
        E::Incoming(Packet::ConnAck(ack)) => {
            Event::Connected { alias_max: 0, session_present: ack.session_present }
        }
        E::Incoming(Packet::PubAck(_) | Packet::PubComp(_)) => Event::Acked,
        E::Incoming(Packet::SubAck(ack)) => Event::Subscribed {
            granted: ack
                .return_codes
                .iter()
                .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_))),
        },
        E::Incoming(Packet::Publish(p)) => Event::Message(Message {
            topic: p.topic,
            payload: p.payload.to_vec(),
            qos: p.qos as u8,
            retain: p.retain,
        }),
        E::Outgoing(Outgoing::Disconnect) => Event::DisconnectSent,
        _ => Event::Other,
    }
}

fn v5_event(event: v5::Event) -> Event {
    use p5::Packet;
    use v5::Event as E;
    match event {
        E::Incoming(Packet::ConnAck(ack)) => Event::Connected {
            alias_max: ack.properties.and_then(|p| p.topic_alias_max).unwrap_or(0),
            session_present: ack.session_present,
        },
        E::Incoming(Packet::PubAck(_) | Packet::PubComp(_)) => Event::Acked,
        E::Incoming(Packet::SubAck(ack)) => Event::Subscribed {
            granted: ack
                .return_codes
                .iter()
                .all(|c| matches!(c, p5::SubscribeReasonCode::Success(_))),
        },
        E::Incoming(Packet::Publish(p)) => Event::Message(Message {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            payload: p.payload.to_vec(),
            qos: p.qos as u8,
            retain: p.retain,
        }),
        E::Outgoing(rumqttc::Outgoing::Disconnect) => Event::DisconnectSent,
        _ => Event::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_settings_parse() {
        assert_eq!(Protocol::parse("5"), Some(Protocol::V5));
        assert_eq!(Protocol::parse("3.1.1"), Some(Protocol::V311));
        assert_eq!(Protocol::parse("3"), None);
    }

    #[test]
    fn a_refused_tcp_connection_is_not_a_3_1_1_broker() {
        let io = |kind| v5::ConnectionError::Io(std::io::Error::from(kind));
        assert!(!refuses_v5(&io(std::io::ErrorKind::ConnectionRefused)));
        assert!(refuses_v5(&io(std::io::ErrorKind::UnexpectedEof)));
        assert!(refuses_v5(&v5::ConnectionError::ConnectionRefused(
            p5::ConnectReturnCode::UnsupportedProtocolVersion
        )));
        assert!(!refuses_v5(&v5::ConnectionError::ConnectionRefused(
            p5::ConnectReturnCode::NotAuthorized
        )));
    }

    #[test]
    fn empty_props_send_no_property_block() {
        assert_eq!(Props::default().v5(), None);
        let p = Props { alias: Some(1), ..Props::default() }.v5().unwrap();
        assert_eq!(p.topic_alias, Some(1));
    }
}
