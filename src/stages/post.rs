//! The post stage: the workers' frames back in order, then each track's window, the temporal
//! step when a window is ready, SMPL decoding and wire encoding; encoded messages to the
//! publisher's queue (drop-oldest).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::output::Outgoing;
use super::{Inferred, Numbered, POLL};
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
        feature_rx: queue::Receiver<Numbered>,
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
                Some(Inferred::Skipped { ended }) => assembler.end_tracks(&ended, &mut step)?,
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
        // What arrived ahead of its turn (a worker finished a later frame first): at most one
        // per worker and job slot, as `find` waits for the workers.
        let mut ahead: BTreeMap<u64, Inferred> = BTreeMap::new();
        let mut turn = 0u64;
        while let Ok(next) = feature_rx.recv_timeout(POLL) {
            let Some(Numbered { seq, item }) = next else { continue };
            ahead.insert(seq, item);
            while let Some(item) = ahead.remove(&turn) {
                turn += 1;
                let t0 = Instant::now();
                send(assemble(Some(item))?)?;
                Counters::add(&counters.post_ns, t0.elapsed().as_nanos() as u64);
            }
        }
        // The queue closed: a number can only be missing if a worker failed; the rest go in
        // order.
        for (_, item) in std::mem::take(&mut ahead) {
            send(assemble(Some(item))?)?;
        }
        send(assemble(None)?)
    }
}
