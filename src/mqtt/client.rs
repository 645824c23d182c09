//! The other clients of a broker: a [`Subscriber`] (`smplcast sub`, the demo's watcher, the
//! examples) and a [`Sender`] (`smplcast sub --replay`). Both reach the broker as the daemon
//! does ([`Broker::client`]: login, TLS), and both explain a first connection that fails with
//! the same [`Failure`] words as the daemon.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Packet};

use super::{Backoff, Broker, Failure, QoS};

/// A message received.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    /// 0, 1 or 2.
    pub qos: u8,
    pub retain: bool,
}

/// What a [`Subscriber`] gets next.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// The broker acknowledged a subscription: from now on, nothing published is missed.
    Subscribed,
    Message(Message),
}

/// Errors of the clients.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the MQTT broker at {broker} ({message}); {fix}")]
    Connect { broker: String, message: String, fix: &'static str },
    #[error("MQTT client request failed: {0}")]
    Client(#[from] rumqttc::ClientError),
}

impl Error {
    fn connect(broker: &Broker, e: &rumqttc::ConnectionError) -> Error {
        let failure = Failure::of(e);
        Error::Connect {
            broker: broker.describe(),
            message: failure.message,
            fix: Failure::fix(Some(failure.kind), broker.tls.is_some()),
        }
    }
}

/// A subscriber: a clean session that subscribes to its topics on every connection.
pub struct Subscriber {
    client: AsyncClient,
    events: EventLoop,
    broker: Broker,
    topics: Vec<(String, QoS)>,
    connected: bool,
    backoff: Backoff,
}

impl Subscriber {
    /// A subscriber of `topics` (filters, with their QoS) named `client_id`. It connects on the
    /// first [`Subscriber::next`].
    pub fn new(broker: &Broker, client_id: String, topics: Vec<(String, QoS)>) -> Subscriber {
        let (client, events) = broker.client(client_id, 64, None);
        Subscriber {
            client,
            events,
            broker: broker.clone(),
            topics,
            connected: false,
            backoff: Backoff::new(),
        }
    }

    /// The next subscription ack or message. After a lost connection it reconnects (with
    /// [`Backoff`]) and subscribes again.
    ///
    /// # Errors
    /// [`Error::Connect`] when the first connection fails: the broker, why, and what to fix.
    pub async fn next(&mut self) -> Result<Incoming, Error> {
        loop {
            match self.events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    self.connected = true;
                    self.backoff.reset();
                    for (topic, qos) in &self.topics {
                        self.client.subscribe(topic.clone(), *qos).await?;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => return Ok(Incoming::Subscribed),
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    return Ok(Incoming::Message(Message {
                        topic: p.topic,
                        payload: p.payload.to_vec(),
                        qos: p.qos as u8,
                        retain: p.retain,
                    }))
                }
                Ok(_) => {}
                Err(e) if !self.connected => return Err(Error::connect(&self.broker, &e)),
                Err(e) => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "MQTT connection lost; reconnecting.");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// A publisher of given messages, for replays.
pub struct Sender {
    client: AsyncClient,
    driver: tokio::task::JoinHandle<()>,
}

impl Sender {
    /// Connects to `broker` as `client_id`.
    ///
    /// # Errors
    /// [`Error::Connect`] when the first connection fails.
    pub async fn connect(broker: &Broker, client_id: String) -> Result<Sender, Error> {
        let (client, mut events) = broker.client(client_id, 64, None);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                Ok(_) => {}
                Err(e) => return Err(Error::connect(broker, &e)),
            }
        }
        // The event loop sends what `client` queues (until the disconnect is through).
        let driver = tokio::spawn(super::drive(events, |_| {}));
        Ok(Sender { client, driver })
    }

    /// Queues one message (QoS 0, 1 or 2; another number is sent at QoS 0).
    ///
    /// # Errors
    /// [`Error::Client`] when the client's event loop has ended.
    pub async fn publish(&self, m: Message) -> Result<(), Error> {
        let qos = rumqttc::qos(m.qos).unwrap_or(QoS::AtMostOnce);
        self.client.publish(m.topic, qos, m.retain, m.payload).await?;
        Ok(())
    }

    /// Sends what is queued and disconnects; a broker that never closes its side is given
    /// `grace`.
    ///
    /// # Errors
    /// [`Error::Client`] when the client's event loop has ended.
    pub async fn finish(self, grace: Duration) -> Result<(), Error> {
        self.client.disconnect().await?;
        let _ = tokio::time::timeout(grace, self.driver).await;
        Ok(())
    }
}
