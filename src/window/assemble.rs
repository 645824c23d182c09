//! From per-person window results to per-frame pose messages, on the post thread.
//!
//! Every tracked person has a [`TrackWindow`]; a person's result for frame `t` comes when the
//! person's frame `t + 7` arrives (or at once for a track's first frames, or when the track
//! ends and its window is flushed). A frame's message carries every person seen in that frame,
//! so it waits until each of them has its result, and messages go out in frame order.
//! Tracks end when the tracker says so, at a source gap ([`Assembler::end_all`]) and at
//! shutdown; their waiting frames then get their results at once, as at a track's end in the
//! official demo. Pure apart from the `step` it is given (the temporal head), so it is tested
//! without a model.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::geom::BBox;
use crate::geom::Crop;
use crate::model::{FrameCache, HeadOutput, SEQ_LEN};
use crate::smpl::encode;
use crate::smpl::joints::Skeleton;
use crate::source::CaptureTime;
use crate::window::{ReadyWindow, TrackWindow, LOOKAHEAD};
use crate::wire;

/// One person in one frame, with the frame's model outputs for them.
pub struct PersonIn {
    pub id: u32,
    pub bbox: BBox,
    pub score: f32,
    /// The tracker's prediction, not a detection ([`crate::detect::track::Tracked`]).
    pub predicted: bool,
    pub crop: Crop,
    pub cache: FrameCache,
}

/// One processed frame.
pub struct FrameIn {
    pub frame_id: u64,
    pub time: CaptureTime,
    /// The model's frame rate (`pipeline.model_fps`); `None` for an unpaced source.
    pub fps: Option<f32>,
    /// Image size [width, height].
    pub image: [u32; 2],
    pub people: Vec<PersonIn>,
    /// Tracks that ended before this frame.
    pub ended: Vec<u32>,
}

/// What a person's result needs besides the head output.
#[derive(Clone, Copy)]
struct PersonMeta {
    seen: encode::Seen,
    crop: Crop,
}

struct Track {
    window: TrackWindow,
    /// Per frame in the window: frame id and what the message says about the person.
    meta: VecDeque<(u64, PersonMeta)>,
}

struct Pending {
    frame_id: u64,
    time: CaptureTime,
    fps: Option<f32>,
    image: [u32; 2],
    /// People of this frame still waiting for their result.
    waiting: usize,
    people: Vec<wire::Person>,
    /// Largest lookahead among the results (the message's latency).
    lookahead: u8,
}

/// Per-track windows and the frames waiting for their people's results.
pub struct Assembler {
    device_id: String,
    model_id: String,
    tracks: BTreeMap<u32, Track>,
    frames: VecDeque<Pending>,
    seq: u64,
    /// Adds joints to each person when set.
    skeleton: Option<Arc<Skeleton>>,
}

/// What goes wrong in assembly: the head failed, or the bookkeeping broke an invariant (a
/// bug, reported instead of a panic).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Head(#[from] crate::model::Error),
    #[error("frame {frame} still waits for {waiting} results after every track ended")]
    Stuck { frame: u64, waiting: usize },
    #[error("no track {0} for its own result")]
    NoTrack(u32),
    #[error("track {track}: no metadata for frame {frame}")]
    NoMeta { track: u32, frame: u64 },
    #[error("track {track}: frame {frame} is not waiting for results")]
    NotWaiting { track: u32, frame: u64 },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Runs the temporal head on one ready window.
pub trait Step {
    /// # Errors
    /// Whatever the head's run fails with.
    fn step(&mut self, window: &ReadyWindow) -> Result<HeadOutput>;
}

impl<F: FnMut(&ReadyWindow) -> Result<HeadOutput>> Step for F {
    fn step(&mut self, window: &ReadyWindow) -> Result<HeadOutput> {
        self(window)
    }
}

impl Assembler {
    pub fn new(device_id: String, model_id: String) -> Self {
        Assembler {
            device_id,
            model_id,
            tracks: BTreeMap::new(),
            frames: VecDeque::new(),
            seq: 0,
            skeleton: None,
        }
    }

    /// Adds each person's posed joints, from this SMPL skeleton, to the messages.
    #[must_use]
    pub fn with_skeleton(mut self, skeleton: Option<Arc<Skeleton>>) -> Self {
        self.skeleton = skeleton;
        self
    }

    /// Takes one frame; returns the messages that are complete, in frame order.
    ///
    /// # Errors
    /// A failing `step`, or broken bookkeeping (a bug: a result for a frame not waiting).
    pub fn push(&mut self, frame: FrameIn, step: &mut impl Step) -> Result<Vec<wire::PoseMsg>> {
        for id in &frame.ended {
            self.end(*id, step)?;
        }
        self.frames.push_back(Pending {
            frame_id: frame.frame_id,
            time: frame.time,
            fps: frame.fps,
            image: frame.image,
            waiting: frame.people.len(),
            people: Vec::with_capacity(frame.people.len()),
            lookahead: 0,
        });
        for p in frame.people {
            let track = self
                .tracks
                .entry(p.id)
                .or_insert_with(|| Track { window: TrackWindow::new(), meta: VecDeque::new() });
            let seen =
                encode::Seen { bbox: p.bbox.as_array(), score: p.score, predicted: p.predicted };
            let meta = PersonMeta { seen, crop: p.crop };
            track.meta.push_back((frame.frame_id, meta));
            if track.meta.len() > SEQ_LEN + 1 {
                track.meta.pop_front();
            }
            if let Some(ready) = track.window.push(frame.frame_id, p.cache) {
                self.result(p.id, &ready, step)?;
            }
        }
        Ok(self.complete())
    }

    /// Ends every track (a source gap, or shutdown) and returns every remaining message.
    ///
    /// # Errors
    /// As [`Assembler::push`].
    pub fn end_all(&mut self, step: &mut impl Step) -> Result<Vec<wire::PoseMsg>> {
        let ids: Vec<u32> = self.tracks.keys().copied().collect();
        for id in ids {
            self.end(id, step)?;
        }
        let out = self.complete();
        if let Some(stuck) = self.frames.front() {
            return Err(Error::Stuck { frame: stuck.frame_id, waiting: stuck.waiting });
        }
        Ok(out)
    }

    /// Ends the tracks `ids` (a frame that was skipped named them as ended): their windows
    /// flush, and the messages that completes are returned.
    ///
    /// # Errors
    /// The head's failure, or a broken invariant ([`Error`]).
    pub fn end_tracks(&mut self, ids: &[u32], step: &mut impl Step) -> Result<Vec<wire::PoseMsg>> {
        for id in ids {
            self.end(*id, step)?;
        }
        Ok(self.complete())
    }

    /// Flushes and forgets track `id`.
    fn end(&mut self, id: u32, step: &mut impl Step) -> Result<()> {
        let Some(mut track) = self.tracks.remove(&id) else { return Ok(()) };
        for ready in track.window.flush() {
            self.finish(id, &track, &ready, step)?;
        }
        Ok(())
    }

    fn result(&mut self, id: u32, ready: &ReadyWindow, step: &mut impl Step) -> Result<()> {
        let Some(track) = self.tracks.remove(&id) else {
            return Err(Error::NoTrack(id));
        };
        let r = self.finish(id, &track, ready, step);
        self.tracks.insert(id, track);
        r
    }

    /// Runs the head for `ready` and files the person into the frame's message.
    fn finish(
        &mut self,
        id: u32,
        track: &Track,
        ready: &ReadyWindow,
        step: &mut impl Step,
    ) -> Result<()> {
        let Some((_, meta)) = track.meta.iter().find(|(f, _)| *f == ready.frame_id) else {
            return Err(Error::NoMeta { track: id, frame: ready.frame_id });
        };
        let Some(pending) = self.frames.iter_mut().find(|p| p.frame_id == ready.frame_id) else {
            return Err(Error::NotWaiting { track: id, frame: ready.frame_id });
        };
        let out = step.step(ready)?;
        let skeleton = self.skeleton.as_deref();
        let person = encode::person(id, meta.seen, meta.crop, pending.image, &out, skeleton);
        pending.people.push(person);
        pending.waiting = pending.waiting.saturating_sub(1);
        let lookahead = if ready.repeated { 0 } else { LOOKAHEAD as u8 };
        pending.lookahead = pending.lookahead.max(lookahead);
        Ok(())
    }

    /// The leading frames whose people all have results, as messages.
    fn complete(&mut self) -> Vec<wire::PoseMsg> {
        let mut out = Vec::new();
        while self.frames.front().is_some_and(|p| p.waiting == 0) {
            let Some(mut p) = self.frames.pop_front() else { break };
            p.people.sort_by_key(|person| person.id);
            out.push(wire::PoseMsg {
                v: wire::SCHEMA_VERSION,
                dev: self.device_id.clone(),
                seq: self.seq,
                frame: p.frame_id,
                utc_us: p.time.utc_us,
                mono_ns: p.time.mono_ns,
                model: self.model_id.clone(),
                win: wire::Window { len: SEQ_LEN as u8, lookahead: p.lookahead, fps: p.fps },
                img: p.image,
                people: p.people,
            });
            self.seq += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(v: f32) -> FrameCache {
        FrameCache { x: vec![v], ..FrameCache::default() }
    }

    fn person(id: u32, frame: u64) -> PersonIn {
        PersonIn {
            id,
            bbox: BBox { left: 10.0 * id as f32, top: 0.0, width: 50.0, height: 100.0 },
            score: 0.9,
            predicted: false,
            crop: Crop { cx: 35.0, cy: 50.0, side: 110.0 },
            cache: cache(frame as f32 * 1000.0 + id as f32),
        }
    }

    fn frame(id: u64, people: &[u32], ended: &[u32]) -> FrameIn {
        FrameIn {
            frame_id: id,
            time: CaptureTime { utc_us: id as i64, mono_ns: id },
            fps: Some(7.5),
            image: [640, 480],
            people: people.iter().map(|&p| person(p, id)).collect(),
            ended: ended.to_vec(),
        }
    }

    /// A fake head that encodes which frame and person the window was centred on, so the test
    /// can check every result went to the right frame and person.
    fn head() -> impl FnMut(&ReadyWindow) -> Result<HeadOutput> {
        |w: &ReadyWindow| {
            let centre = w.refs()[crate::model::CENTRE].x[0];
            let mut shape = [0.0; 10];
            shape[0] = centre;
            Ok(HeadOutput { pose6d: [0.0; 144], shape, cam: [1.0, 0.0, 0.0] })
        }
    }

    #[test]
    fn two_people_one_message_per_frame_in_order() {
        let mut a = Assembler::new("d".into(), "m".into());
        let mut step = head();
        let mut msgs = Vec::new();
        // Person 1 throughout; person 2 from frame 5 to 24, then ended.
        for f in 0..40u64 {
            let people: Vec<u32> = if (5..25).contains(&f) { vec![1, 2] } else { vec![1] };
            let ended: Vec<u32> = if f == 25 { vec![2] } else { vec![] };
            msgs.extend(a.push(frame(f, &people, &ended), &mut step).unwrap());
        }
        msgs.extend(a.end_all(&mut step).unwrap());
        let frames: Vec<u64> = msgs.iter().map(|m| m.frame).collect();
        assert_eq!(frames, (0..40).collect::<Vec<_>>(), "every frame once, in order");
        assert!(msgs.iter().enumerate().all(|(i, m)| m.seq == i as u64));
        for m in &msgs {
            let ids: Vec<u32> = m.people.iter().map(|p| p.id).collect();
            let want: Vec<u32> = if (5..25).contains(&m.frame) { vec![1, 2] } else { vec![1] };
            assert_eq!(ids, want, "frame {}", m.frame);
            for p in &m.people {
                // Each result is this person's own frame (its window's centre).
                let centre = m.frame as f32 * 1000.0 + p.id as f32;
                assert!(
                    (p.shape[0] - centre).abs() < 1.0,
                    "frame {} person {}: {}",
                    m.frame,
                    p.id,
                    p.shape[0]
                );
            }
        }
    }

    #[test]
    fn a_new_track_does_not_hold_back_nor_reorder_messages() {
        let mut a = Assembler::new("d".into(), "m".into());
        let mut step = head();
        let mut out = Vec::new();
        for f in 0..20u64 {
            let people: Vec<u32> = if f >= 12 { vec![1, 7] } else { vec![1] };
            out.push(
                a.push(frame(f, &people, &[]), &mut step)
                    .unwrap()
                    .iter()
                    .map(|m| m.frame)
                    .collect::<Vec<_>>(),
            );
        }
        // Person 1's frames 0-7 are immediate (track start), then each arrives 7 frames late;
        // person 7 starting at frame 12 is immediate, so frame 12 waits only for person 1.
        assert_eq!(out[0], [0]);
        assert_eq!(out[7], [7]);
        assert!(out[8..15].iter().all(Vec::is_empty));
        assert_eq!(out[15], [8]);
        assert_eq!(out[19], [12]);
    }

    #[test]
    fn frames_without_people_still_get_their_message_in_order() {
        let mut a = Assembler::new("d".into(), "m".into());
        let mut step = head();
        let mut msgs = Vec::new();
        for f in 0..12u64 {
            let people: Vec<u32> = if f < 10 { vec![3] } else { vec![] };
            let ended: Vec<u32> = if f == 11 { vec![3] } else { vec![] };
            msgs.extend(a.push(frame(f, &people, &ended), &mut step).unwrap());
        }
        let frames: Vec<(u64, usize)> = msgs.iter().map(|m| (m.frame, m.people.len())).collect();
        assert_eq!(frames.len(), 12, "{frames:?}");
        assert_eq!(frames[10..], [(10, 0), (11, 0)]);
        assert!(a.end_all(&mut step).unwrap().is_empty());
    }
}
