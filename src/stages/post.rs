//! The post stage: each track's window, the temporal step when a window is ready, SMPL
//! decoding and wire encoding; encoded messages to the publisher's queue (drop-oldest).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::output::Outgoing;
use super::{Inferred, POLL};
use crate::model::{HeadOutput, Stepper};
use crate::queue;
use crate::telemetry::stats::Counters;
use crate::window::assemble::{self, Assembler};
use crate::wire;

/// The post thread's state: the temporal step and the per-track windows.
pub struct Post {
    pub stepper: Stepper,
    pub assembler: Assembler,
}

impl Post {
    pub fn run(
        self,
        feature_rx: queue::Receiver<Inferred>,
        pose_tx: queue::Sender<Outgoing>,
        counters: &Counters,
    ) -> Result<()> {
        let Post { mut stepper, mut assembler } = self;
        let stages = &counters.stages;
        // Time in `step` during the current assembler call: the rest of it is `smpl`.
        let stepping = std::cell::Cell::new(Duration::ZERO);
        let mut step = |w: &crate::window::ReadyWindow| -> assemble::Result<HeadOutput> {
            let t0 = Instant::now();
            let out = stepper.step(&[w.refs()]).map(|mut o| o.swap_remove(0));
            let took = t0.elapsed();
            stages.step.add(took);
            stepping.set(stepping.get() + took);
            Ok(out?)
        };
        let mut assemble = |next: Option<Inferred>| -> Result<Vec<wire::PoseMsg>> {
            let t0 = Instant::now();
            stepping.set(Duration::ZERO);
            let msgs = match next {
                Some(Inferred::Frame(frame)) => assembler.push(*frame, &mut step)?,
                // The source lost its input (a gap), or inference is done (`None`): every
                // track ends, and the frames still waiting for lookahead get results now.
                Some(Inferred::Gap) | None => assembler.end_all(&mut step)?,
            };
            stages.smpl.add(t0.elapsed().saturating_sub(stepping.get()));
            Ok(msgs)
        };
        let send = |msgs: Vec<wire::PoseMsg>| -> Result<()> {
            for msg in msgs {
                let bytes = stages.encode.time(|| wire::encode(&msg));
                Counters::add(&counters.messages_out, 1);
                Counters::add(&counters.bytes_out, bytes.len() as u64);
                Counters::add(&counters.people_out, msg.people.len() as u64);
                // Drop-oldest: never blocks on the broker; drops are counted by the queue.
                if pose_tx.send(Outgoing::now(bytes)).is_err() {
                    bail!("the publisher stopped taking messages");
                }
            }
            Ok(())
        };
        while let Ok(next) = feature_rx.recv_timeout(POLL) {
            let Some(next) = next else { continue };
            let t0 = Instant::now();
            send(assemble(Some(next))?)?;
            Counters::add(&counters.post_ns, t0.elapsed().as_nanos() as u64);
        }
        send(assemble(None)?)
    }
}
