//! The other clients of a broker: a [`Subscriber`] (`smplcast sub`, the demo's watcher, the
//! examples) and a [`Sender`] (`smplcast sub --replay`). Both reach the broker as the daemon
//! does ([`Broker::connect`]: login, TLS, MQTT 5 or 3.1.1), and both explain a first
//! connection that fails with the same [`Failure`] words as the daemon.

use std::time::Duration;

use super::link::{Client, Event, Events, Props, RequestError};
use super::{Backoff, Broker, Failure, QoS};

pub use super::link::Message;

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
    #[error(transparent)]
    Client(#[from] RequestError),
    #[error("the MQTT broker at {broker} refused the subscription to {filter}{hint}")]
    Refused { broker: String, filter: String, hint: &'static str },
}

impl Error {
    fn connect(broker: &Broker, failure: Failure) -> Error {
        Error::Connect {
            broker: broker.describe(),
            message: failure.message,
            fix: Failure::fix(Some(failure.kind), broker.tls.is_some()),
        }
    }
}

/// A subscriber: a clean session that subscribes to its topics on every connection.
pub struct Subscriber {
    client: Client,
    events: Events,
    broker: Broker,
    topics: Vec<(String, QoS)>,
    /// Subscriptions acknowledged on this connection (the broker answers in order).
    answered: usize,
    connected: bool,
    backoff: Backoff,
}

impl Subscriber {
    /// A subscriber of `topics` (filters, with their QoS) named `client_id`. It connects on the
    /// first [`Subscriber::next`].
    pub fn new(broker: &Broker, client_id: String, topics: Vec<(String, QoS)>) -> Subscriber {
        let (client, events) = broker.connect(client_id, 64, None);
        Subscriber {
            client,
            events,
            broker: broker.clone(),
            topics,
            answered: 0,
            connected: false,
            backoff: Backoff::new(),
        }
    }

    /// The next subscription ack or message. After a lost connection it reconnects (with
    /// [`Backoff`]) and subscribes again.
    ///
    /// # Errors
    /// [`Error::Connect`] when the first connection fails: the broker, why, and what to fix;
    /// [`Error::Refused`] when the broker refuses a subscription.
    pub async fn next(&mut self) -> Result<Incoming, Error> {
        loop {
            match self.events.poll().await {
                Ok(Event::Connected { .. }) => {
                    self.connected = true;
                    self.answered = 0;
                    self.backoff.reset();
                    for (topic, qos) in &self.topics {
                        self.client.subscribe(topic, *qos).await?;
                    }
                }
                Ok(Event::Subscribed { granted }) => {
                    let filter = self.topics.get(self.answered).map(|t| t.0.clone());
                    self.answered += 1;
                    if !granted {
                        let filter = filter.unwrap_or_default();
                        let hint = if filter.starts_with("$share/") {
                            " (a shared subscription: the broker may not support them, or \
                             speaks MQTT 3.1.1 only)"
                        } else {
                            " (check the broker's access rules)"
                        };
                        let broker = self.broker.describe();
                        return Err(Error::Refused { broker, filter, hint });
                    }
                    return Ok(Incoming::Subscribed);
                }
                Ok(Event::Message(m)) => return Ok(Incoming::Message(m)),
                Ok(_) => {}
                Err(e) if !self.connected => return Err(Error::connect(&self.broker, e)),
                Err(e) => {
                    let delay = self.backoff.next_delay();
                    let error = &e.message;
                    tracing::warn!(%error, retry_in = ?delay, "MQTT connection lost; reconnecting.");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// A publisher of given messages, for replays.
pub struct Sender {
    client: Client,
    driver: tokio::task::JoinHandle<()>,
}

impl Sender {
    /// Connects to `broker` as `client_id`.
    ///
    /// # Errors
    /// [`Error::Connect`] when the first connection fails.
    pub async fn connect(broker: &Broker, client_id: String) -> Result<Sender, Error> {
        let (client, mut events) = broker.connect(client_id, 64, None);
        loop {
            match events.poll().await {
                Ok(Event::Connected { .. }) => break,
                Ok(_) => {}
                Err(e) => return Err(Error::connect(broker, e)),
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
        self.client.publish(&m.topic, qos, m.retain, m.payload, &Props::default()).await?;
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
