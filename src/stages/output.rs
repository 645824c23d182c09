//! The pipeline's output seam: what the io thread runs to take the encoded pose messages and
//! the [`Notice`]s away. The daemon's publisher is MQTT (`mqtt::publish::Mqtt`); without
//! `[mqtt]` it is [`Discard`]; in-process tests put a channel here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::queue;
use crate::telemetry::stats::MqttCounters;
use crate::telemetry::Notice;

/// An encoded pose message and when it was made (a publisher may drop it as stale).
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub bytes: Vec<u8>,
    pub made: Instant,
}

impl Outgoing {
    pub fn now(bytes: Vec<u8>) -> Self {
        Outgoing { bytes, made: Instant::now() }
    }
}

/// What a publisher takes from the pipeline.
pub struct Outbox {
    /// Encoded pose messages (drop-oldest: the queue counts what it drops). Closed when the
    /// pipeline has drained.
    pub poses: queue::Receiver<Outgoing>,
    /// Camera states and stats reports (drop-oldest).
    pub notices: queue::Receiver<Notice>,
    /// Cancelled when the publisher must end now: after the pipeline stopped, or when a stop
    /// overran its deadline.
    pub stop: CancellationToken,
}

/// The future a publisher runs on the io thread (a current-thread runtime: it need not be
/// `Send`).
pub type Running = Pin<Box<dyn Future<Output = anyhow::Result<()>>>>;

/// Where the pipeline's messages go.
pub trait Publisher: Send + Sync + 'static {
    /// Takes what arrives in `out` until its pose queue is closed and drained (then ends
    /// cleanly: the MQTT publisher says `offline`), or until `out.stop`.
    fn run(&self, out: Outbox) -> Running;

    /// Blocks start-up until messages can go out, while [`Publisher::run`] is under way on the
    /// io thread (`gone()`: it has ended). `shutdown` cancelled meanwhile is an error too.
    ///
    /// # Errors
    /// Why messages cannot go out, naming the setting to fix.
    fn wait_ready(
        &self,
        _shutdown: &CancellationToken,
        _gone: &dyn Fn() -> bool,
    ) -> anyhow::Result<()> {
        Ok(())
    }

    /// Its figures for the stats report (all zero where there is no broker).
    fn counters(&self) -> Arc<MqttCounters>;
}

/// No `[mqtt]`: messages are made (and counted) but go nowhere.
#[derive(Default)]
pub struct Discard {
    counters: Arc<MqttCounters>,
}

impl Publisher for Discard {
    fn run(&self, out: Outbox) -> Running {
        Box::pin(async move {
            let mut notices_open = true;
            loop {
                tokio::select! {
                    _ = out.stop.cancelled() => break,
                    pose = out.poses.recv_async() => if pose.is_err() { break },
                    n = out.notices.recv_async(), if notices_open => notices_open = n.is_ok(),
                }
            }
            Ok(())
        })
    }

    fn counters(&self) -> Arc<MqttCounters> {
        self.counters.clone()
    }
}
