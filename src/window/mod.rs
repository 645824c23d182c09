//! Per-track rolling window of the last 16 frames, caching each frame's backbone feature and its
//! temporal projections ([`FrameCache`]) so a new frame costs one projection and one step.
//!
//! Runs on the post thread (`stages::post`), one `TrackWindow` per tracked person. Window semantics follow
//! the official MPS-Net demo (`demo.py` with `FeatureDataset`): the result for frame `t` of a
//! track comes from the window of frames `t−8 ..= t+7` (centre index 8), so it is ready when
//! frame `t+7` arrives: a lookahead of [`LOOKAHEAD`] frames.
//!
//! - **Track start.** The first 8 frames (`t < 8`) have no 8 frames of history. As in the demo,
//!   each is estimated from a window made of its own feature repeated 16 times, and is ready as
//!   soon as it arrives. Frames 8..=14 then wait for their lookahead; from the 16th frame on,
//!   each push yields the result for the frame 7 before it. Every frame gets exactly one result,
//!   in order.
//! - **Track end.** [`TrackWindow::flush`] yields the frames still waiting for lookahead (the last
//!   7, or all frames after the 8th of a track shorter than 16), each with its own feature
//!   repeated, as the demo does for a track's last 7 frames. A caller that prefers to drop them
//!   simply discards what `flush` returns.
//!
//! No queue here: at most 16 frames per track are held, and old frames leave as new ones arrive.

pub mod assemble;

use std::collections::VecDeque;
use std::sync::Arc;

use crate::model::{FrameCache, CENTRE, SEQ_LEN};

/// Frames a result waits for after its own frame arrives.
pub const LOOKAHEAD: usize = SEQ_LEN - 1 - CENTRE;

/// A window ready for the temporal step: the frame its result belongs to and the 16 frames'
/// caches in time order.
#[derive(Clone, Debug)]
pub struct ReadyWindow {
    /// Caller's id of the frame the result is for.
    pub frame_id: u64,
    /// Whether the window is the frame's own feature repeated (track start or end).
    pub repeated: bool,
    /// The window's frames, oldest first.
    pub frames: [Arc<FrameCache>; SEQ_LEN],
}

impl ReadyWindow {
    fn repeated(frame_id: u64, cache: &Arc<FrameCache>) -> Self {
        ReadyWindow { frame_id, repeated: true, frames: std::array::from_fn(|_| cache.clone()) }
    }

    /// The frames as references, the form [`crate::model::Streaming::step`] takes.
    pub fn refs(&self) -> [&FrameCache; SEQ_LEN] {
        std::array::from_fn(|k| &*self.frames[k])
    }
}

/// The rolling window of one track.
#[derive(Debug, Default)]
pub struct TrackWindow {
    /// The last (up to) 16 frames, oldest first, with their ids.
    frames: VecDeque<(u64, Arc<FrameCache>)>,
    /// Frames pushed since the track started.
    pushed: u64,
    /// Frames whose result has been handed out, counting from the track start.
    done: u64,
}

impl TrackWindow {
    /// An empty window for a new track.
    pub fn new() -> Self {
        Self::default()
    }

    /// Frames pushed since the track started.
    pub fn len(&self) -> u64 {
        self.pushed
    }

    /// True before the first frame.
    pub fn is_empty(&self) -> bool {
        self.pushed == 0
    }

    /// Adds the next frame of the track; returns the window whose result is now ready, if any.
    pub fn push(&mut self, frame_id: u64, cache: FrameCache) -> Option<ReadyWindow> {
        let cache = Arc::new(cache);
        if self.frames.len() == SEQ_LEN {
            self.frames.pop_front();
        }
        self.frames.push_back((frame_id, cache.clone()));
        self.pushed += 1;
        if self.pushed <= CENTRE as u64 {
            self.done += 1;
            return Some(ReadyWindow::repeated(frame_id, &cache));
        }
        if self.frames.len() == SEQ_LEN {
            self.done += 1;
            return Some(ReadyWindow {
                frame_id: self.frames[CENTRE].0,
                repeated: false,
                frames: std::array::from_fn(|k| self.frames[k].1.clone()),
            });
        }
        None
    }

    /// Ends the track: the frames still waiting for their lookahead, each as a repeated window
    /// (see the module docs), oldest first. The window is empty afterwards.
    pub fn flush(&mut self) -> Vec<ReadyWindow> {
        let waiting = usize::try_from(self.pushed - self.done).unwrap_or(usize::MAX);
        let skip = self.frames.len().saturating_sub(waiting);
        let out =
            self.frames.iter().skip(skip).map(|(id, c)| ReadyWindow::repeated(*id, c)).collect();
        *self = Self::default();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(v: f32) -> FrameCache {
        FrameCache { x: vec![v], ..FrameCache::default() }
    }

    fn ids(w: &ReadyWindow) -> Vec<f32> {
        w.frames.iter().map(|c| c.x[0]).collect()
    }

    #[test]
    fn every_frame_gets_one_result_in_order() {
        for len in [1u64, 7, 8, 9, 15, 16, 17, 40] {
            let mut w = TrackWindow::new();
            let mut got = Vec::new();
            for t in 0..len {
                got.extend(w.push(t, cache(t as f32)));
            }
            got.extend(w.flush());
            let frames: Vec<u64> = got.iter().map(|r| r.frame_id).collect();
            assert_eq!(frames, (0..len).collect::<Vec<_>>(), "track of {len} frames");
            for r in &got {
                let t = r.frame_id as usize;
                let centred = t >= CENTRE && t + LOOKAHEAD < len as usize;
                assert_eq!(r.repeated, !centred, "frame {t} of {len}");
                let want: Vec<f32> = if centred {
                    (t - CENTRE..t - CENTRE + SEQ_LEN).map(|k| k as f32).collect()
                } else {
                    vec![t as f32; SEQ_LEN]
                };
                assert_eq!(ids(r), want, "window of frame {t} of {len}");
            }
        }
    }

    #[test]
    fn start_results_are_immediate_then_lag_by_the_lookahead() {
        let mut w = TrackWindow::new();
        for t in 0..40u64 {
            let r = w.push(t, cache(t as f32));
            match t {
                0..=7 => assert_eq!(r.map(|r| r.frame_id), Some(t)),
                8..=14 => assert!(r.is_none(), "frame {t} has no lookahead yet"),
                _ => assert_eq!(r.map(|r| r.frame_id), Some(t - LOOKAHEAD as u64)),
            }
        }
        assert_eq!(LOOKAHEAD, 7);
    }

    #[test]
    fn flush_resets_for_a_new_track() {
        let mut w = TrackWindow::new();
        for t in 0..20 {
            w.push(t, cache(1.0));
        }
        assert_eq!(w.flush().len(), LOOKAHEAD);
        assert!(w.is_empty());
        assert!(w.flush().is_empty());
        assert_eq!(w.push(100, cache(2.0)).map(|r| r.frame_id), Some(100));
    }
}
