//! Multi-person tracking, SORT-style (Bewley et al., "Simple Online and Realtime Tracking",
//! ICIP 2016; the MPS-Net demo tracks with SORT): one constant-velocity Kalman filter per
//! track over the box centre, area and aspect ratio; detections are matched to the tracks'
//! predicted boxes by IoU with the Hungarian method (pathfinding's Kuhn–Munkres); a match needs
//! IoU ≥ `iou_threshold`. Unmatched detections start tentative tracks, which are confirmed
//! after `min_hits` consecutive hits; a track unmatched for more than `max_age` frames ends.
//! Pure; runs on the inference thread.
//!
//! A confirmed track the detector did not see this frame (a missed detection, or a frame between
//! detector runs, [`Tracker::predict`]) coasts on its prediction and is still reported, marked
//! `predicted`, for up to `max_coast` missed detector runs in a row: the person's temporal window
//! stays continuous through a detector's blink, and a prediction that has drifted for longer is
//! not passed off as a person (the track lives on, up to `max_age`, to take the person back). Reported boxes
//! are clipped to the image by moving the sides that stick out, never by shifting the box; a
//! track whose box has left the image is not reported.
//! When more than `max_people` confirmed tracks are visible, [`Keep`] chooses whom to report;
//! the others keep being tracked (their ids stay stable) but are not reported that frame.
//!
//! Ids are unique for the tracker's lifetime: [`Tracker::reset`] (a source gap, a scene cut)
//! ends every track but never reuses an id.
//!
//! Short tracks: a new track is reported once `min_hits` consecutive detector runs have
//! matched it (3 by default: 0.3 s at 10 fps). The official MPS-Net demo, which runs offline
//! on whole videos, drops tracks shorter than 25 frames after the fact; live, a track's length
//! is not known in advance, so the daemon delays a newcomer by `min_hits` runs instead of
//! 25 frames (2.5 s at 10 fps), which would hide everyone who passes through quickly.
//!
//! Port notes: the filter's matrices and noise settings follow SORT's `KalmanBoxTracker`
//! (GPL-3.0 reference implementation, read for the numbers, not copied).

use nalgebra::{SMatrix, SVector};

use super::Detection;
use crate::geom::BBox;

type State = SVector<f32, 7>;
type Cov = SMatrix<f32, 7, 7>;
type Meas = SVector<f32, 4>;

/// Whom to report when more than `max_people` confirmed tracks are visible.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// The largest boxes (closest people, best crops).
    Largest,
    /// The boxes nearest the image centre.
    Central,
    /// The longest-lived tracks (stable output: a newcomer does not displace anyone).
    Longest,
}

/// Tracker settings (config `[tracker]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Frames a track survives without a matching detection.
    pub max_age: u32,
    /// Detector runs in a row that may miss a confirmed person before they stop being
    /// reported (they are still tracked, up to `max_age`): while coasting, the box is a
    /// prediction, which drifts.
    pub max_coast: u32,
    /// Consecutive hits before a new track is reported.
    pub min_hits: u32,
    /// Least IoU between a detection and a track's predicted box to match them.
    pub iou_threshold: f32,
    /// Most people reported per frame.
    pub max_people: usize,
    pub keep: Keep,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_age: 10,
            max_coast: 2,
            min_hits: 3,
            iou_threshold: 0.3,
            max_people: 4,
            keep: Keep::Largest,
        }
    }
}

/// A reported person this frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tracked {
    pub id: u32,
    /// The matched detection's box, or the prediction while coasting.
    pub bbox: BBox,
    /// The matched detection's score; while coasting, the last one.
    pub score: f32,
    /// Coasting: not detected this frame (missed, or the detector did not run); the box is
    /// the prediction.
    pub predicted: bool,
}

/// One frame's outcome.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Update {
    /// Reported people, by ascending id.
    pub people: Vec<Tracked>,
    /// Ids of tracks that ended this frame (their windows flush).
    pub ended: Vec<u32>,
}

#[derive(Clone, Debug)]
struct Track {
    id: u32,
    x: State,
    p: Cov,
    score: f32,
    /// Frames since the last matching detection.
    since_update: u32,
    /// Consecutive detector runs that matched it.
    streak: u32,
    /// Consecutive detector runs that missed it.
    misses: u32,
    /// Frames since the track started.
    age: u64,
    confirmed: bool,
}

/// The SORT tracker.
#[derive(Clone, Debug)]
pub struct Tracker {
    settings: Settings,
    tracks: Vec<Track>,
    next_id: u32,
}

fn to_z(b: &BBox) -> Meas {
    let (w, h) = (b.width.max(1e-3), b.height.max(1e-3));
    Meas::new(b.left + w / 2.0, b.top + h / 2.0, w * h, w / h)
}

fn to_box(x: &State) -> BBox {
    let (s, r) = (x[2].max(1e-6), x[3].max(1e-6));
    let w = (s * r).sqrt();
    let h = s / w;
    BBox { left: x[0] - w / 2.0, top: x[1] - h / 2.0, width: w, height: h }
}

/// Constant velocity in centre and area; aspect ratio constant.
fn transition() -> Cov {
    let mut f = Cov::identity();
    f[(0, 4)] = 1.0;
    f[(1, 5)] = 1.0;
    f[(2, 6)] = 1.0;
    f
}

fn observation() -> SMatrix<f32, 4, 7> {
    let mut h = SMatrix::<f32, 4, 7>::zeros();
    for i in 0..4 {
        h[(i, i)] = 1.0;
    }
    h
}

impl Track {
    fn new(id: u32, d: &Detection) -> Self {
        let z = to_z(&d.bbox);
        let x = State::from_column_slice(&[z[0], z[1], z[2], z[3], 0.0, 0.0, 0.0]);
        // SORT: uncertain velocities (×1000), then everything ×10.
        let mut p = Cov::identity() * 10.0;
        for i in 4..7 {
            p[(i, i)] *= 1000.0;
        }
        Track {
            id,
            x,
            p,
            score: d.score,
            since_update: 0,
            streak: 1,
            misses: 0,
            age: 0,
            confirmed: false,
        }
    }

    fn predict(&mut self) {
        if self.x[2] + self.x[6] <= 0.0 {
            self.x[6] = 0.0; // the area must stay positive
        }
        let f = transition();
        let mut q = Cov::identity();
        q[(6, 6)] *= 0.01;
        for i in 4..7 {
            q[(i, i)] *= 0.01;
        }
        self.x = f * self.x;
        self.p = f * self.p * f.transpose() + q;
        self.age += 1;
        self.since_update += 1;
    }

    fn correct(&mut self, d: &Detection) {
        let h = observation();
        let mut r = SMatrix::<f32, 4, 4>::identity();
        r[(2, 2)] *= 10.0;
        r[(3, 3)] *= 10.0;
        let y = to_z(&d.bbox) - h * self.x;
        let s = h * self.p * h.transpose() + r;
        // S is a covariance plus R (positive definite): the inverse exists; if numerics ever
        // break it, keep the prediction rather than panic.
        if let Some(s_inv) = s.try_inverse() {
            let k = self.p * h.transpose() * s_inv;
            self.x += k * y;
            self.p = (Cov::identity() - k * h) * self.p;
        }
        self.score = d.score;
        self.since_update = 0;
        self.streak += 1;
        self.misses = 0;
    }

    fn bbox(&self) -> BBox {
        to_box(&self.x)
    }
}

impl Tracker {
    pub fn new(settings: Settings) -> Self {
        Tracker { settings, tracks: Vec::new(), next_id: 0 }
    }

    /// Advances one frame with this frame's detections. Degenerate ones (a box that is not
    /// finite or less than a pixel wide or tall, a score that is not a number) are ignored.
    pub fn update(&mut self, detections: &[Detection], image: [u32; 2]) -> Update {
        let usable = |d: &&Detection| {
            let b = d.bbox;
            [b.left, b.top, b.width, b.height].iter().all(|v| v.is_finite())
                && b.width >= 1.0
                && b.height >= 1.0
                && !d.score.is_nan()
        };
        let detections: Vec<Detection> = detections.iter().filter(usable).copied().collect();
        let detections = detections.as_slice();
        for t in &mut self.tracks {
            t.predict();
        }
        let matches = self.associate(detections);
        let mut matched_det = vec![false; detections.len()];
        let mut matched_track = vec![false; self.tracks.len()];
        for &(ti, di) in &matches {
            self.tracks[ti].correct(&detections[di]);
            matched_det[di] = true;
            matched_track[ti] = true;
        }
        for (t, _) in self.tracks.iter_mut().zip(&matched_track).filter(|(_, m)| !**m) {
            t.streak = 0; // a detector run that did not see it
            t.misses += 1;
        }
        for (di, d) in detections.iter().enumerate() {
            if !matched_det[di] {
                self.tracks.push(Track::new(self.next_id, d));
                self.next_id = self.next_id.wrapping_add(1);
            }
        }
        let min_hits = self.settings.min_hits;
        for t in &mut self.tracks {
            if t.since_update == 0 && t.streak >= min_hits {
                t.confirmed = true;
            }
        }
        self.finish(image)
    }

    /// Advances one frame without running the detector: tracks coast on their predictions.
    pub fn predict(&mut self, image: [u32; 2]) -> Update {
        for t in &mut self.tracks {
            t.predict(); // coasting is not a miss: the streak stays
        }
        self.finish(image)
    }

    /// Ends every track (a source gap, a scene cut): all confirmed ids are in `ended`. Ids
    /// are not reused.
    pub fn reset(&mut self) -> Vec<u32> {
        let mut ended: Vec<u32> =
            self.tracks.drain(..).filter(|t| t.confirmed).map(|t| t.id).collect();
        ended.sort_unstable();
        ended
    }

    /// Ends stale tracks and reports the confirmed ones whose box is in the image.
    fn finish(&mut self, image: [u32; 2]) -> Update {
        let max_age = self.settings.max_age;
        let mut ended = Vec::new();
        self.tracks.retain(|t| {
            let keep = t.since_update <= max_age;
            if !keep && t.confirmed {
                ended.push(t.id);
            }
            keep
        });
        let mut shown: Vec<(&Track, BBox)> = self
            .tracks
            .iter()
            .filter(|t| t.confirmed && t.misses <= self.settings.max_coast)
            .filter_map(|t| t.bbox().clip(image[0], image[1]).map(|b| (t, b)))
            .collect();
        let (cx, cy) = (image[0] as f32 / 2.0, image[1] as f32 / 2.0);
        let rank = |(t, b): &(&Track, BBox)| -> f32 {
            match self.settings.keep {
                Keep::Largest => -(b.width * b.height),
                Keep::Central => {
                    let (dx, dy) = (b.left + b.width / 2.0 - cx, b.top + b.height / 2.0 - cy);
                    dx * dx + dy * dy
                }
                Keep::Longest => -(t.age as f32),
            }
        };
        shown.sort_by(|a, b| rank(a).total_cmp(&rank(b)).then(a.0.id.cmp(&b.0.id)));
        shown.truncate(self.settings.max_people);
        let mut people: Vec<Tracked> = shown
            .iter()
            .map(|(t, bbox)| Tracked {
                id: t.id,
                bbox: *bbox,
                score: t.score,
                predicted: t.since_update > 0,
            })
            .collect();
        people.sort_by_key(|p| p.id);
        ended.sort_unstable();
        Update { people, ended }
    }

    /// Hungarian matching of tracks (predicted boxes) to detections on IoU; pairs below the
    /// threshold are not matches. Returns (track index, detection index).
    fn associate(&self, detections: &[Detection]) -> Vec<(usize, usize)> {
        if self.tracks.is_empty() || detections.is_empty() {
            return Vec::new();
        }
        let boxes: Vec<BBox> = self.tracks.iter().map(Track::bbox).collect();
        let iou_of = |ti: usize, di: usize| boxes[ti].iou(&detections[di].bbox);
        // Kuhn–Munkres wants rows ≤ columns and integer weights: IoU in millionths.
        let weight = |v: f32| (v * 1e6).round() as i64;
        let transpose = self.tracks.len() > detections.len();
        let (rows, cols) = if transpose {
            (detections.len(), self.tracks.len())
        } else {
            (self.tracks.len(), detections.len())
        };
        let matrix = pathfinding::matrix::Matrix::from_fn(rows, cols, |(r, c)| {
            if transpose {
                weight(iou_of(c, r))
            } else {
                weight(iou_of(r, c))
            }
        });
        let (_, assignment) = pathfinding::kuhn_munkres::kuhn_munkres(&matrix);
        assignment
            .into_iter()
            .enumerate()
            .map(|(r, c)| if transpose { (c, r) } else { (r, c) })
            .filter(|&(ti, di)| iou_of(ti, di) >= self.settings.iou_threshold)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(cx: f32, cy: f32, w: f32, h: f32) -> Detection {
        Detection {
            bbox: BBox { left: cx - w / 2.0, top: cy - h / 2.0, width: w, height: h },
            score: 0.9,
        }
    }

    /// Runs `frames` frames; `people(f)` gives (ground-truth identity, detection) pairs.
    /// Returns, per identity, the reported ids in order (None when unreported), and the number
    /// of id switches (an identity reported under a different id than last time).
    fn run(
        settings: Settings,
        frames: usize,
        people: impl Fn(usize) -> Vec<(usize, Detection)>,
    ) -> (Vec<Vec<Option<u32>>>, usize, Vec<u32>) {
        let mut t = Tracker::new(settings);
        let mut seen: Vec<Vec<Option<u32>>> = Vec::new();
        let mut ended = Vec::new();
        for f in 0..frames {
            let truth = people(f);
            let dets: Vec<Detection> = truth.iter().map(|(_, d)| *d).collect();
            let up = t.update(&dets, [1280, 720]);
            ended.extend(up.ended);
            for (gt, d) in &truth {
                if seen.len() <= *gt {
                    seen.resize(gt + 1, Vec::new());
                }
                // The reported person whose box best overlaps this identity's detection.
                let id = up
                    .people
                    .iter()
                    .filter(|p| p.bbox.iou(&d.bbox) > 0.5)
                    .max_by(|a, b| a.bbox.iou(&d.bbox).total_cmp(&b.bbox.iou(&d.bbox)))
                    .map(|p| p.id);
                seen[*gt].push(id);
            }
        }
        let switches = seen
            .iter()
            .map(|ids| {
                let ids: Vec<u32> = ids.iter().flatten().copied().collect();
                ids.windows(2).filter(|w| w[0] != w[1]).count()
            })
            .sum();
        (seen, switches, ended)
    }

    #[test]
    fn crossing_people_keep_their_ids() {
        // Two people walk towards each other and cross (their boxes overlap for several frames).
        let (seen, switches, _) = run(Settings::default(), 60, |f| {
            let x = f as f32 * 12.0;
            vec![(0, det(200.0 + x, 400.0, 120.0, 300.0)), (1, det(920.0 - x, 410.0, 110.0, 290.0))]
        });
        assert_eq!(switches, 0, "{seen:?}");
        let first = |g: usize| seen[g].iter().flatten().next().copied();
        assert_ne!(first(0), first(1));
        // Reported from the third frame on (min_hits 3), every frame.
        assert!(seen.iter().all(
            |ids| ids[..2].iter().all(Option::is_none) && ids[2..].iter().all(Option::is_some)
        ));
    }

    #[test]
    fn short_occlusion_keeps_the_id_long_one_gives_a_new_one() {
        let walk = |f: usize| det(300.0 + f as f32 * 8.0, 400.0, 120.0, 300.0);
        // Missing for 5 frames (< max_age 10): same id after.
        let (seen, switches, ended) = run(Settings::default(), 40, |f| {
            if (15..20).contains(&f) {
                vec![]
            } else {
                vec![(0, walk(f))]
            }
        });
        assert_eq!(switches, 0, "{seen:?}");
        assert!(ended.is_empty());
        // Missing for 15 frames (> max_age): the track ends and a new id starts.
        let (seen, switches, ended) = run(Settings::default(), 50, |f| {
            if (15..30).contains(&f) {
                vec![]
            } else {
                vec![(0, walk(f))]
            }
        });
        assert_eq!(switches, 1, "{seen:?}");
        assert_eq!(ended, [0]);
    }

    #[test]
    fn entry_and_exit() {
        // One person throughout; another enters at frame 10 and leaves at frame 30.
        let (seen, switches, ended) = run(Settings::default(), 50, |f| {
            let mut v = vec![(0, det(300.0, 400.0, 120.0, 300.0))];
            if (10..30).contains(&f) {
                v.push((1, det(900.0 - f as f32 * 5.0, 380.0, 100.0, 260.0)));
            }
            v
        });
        assert_eq!(switches, 0);
        assert_eq!(seen[1].iter().flatten().next(), Some(&1));
        assert_eq!(ended, [1], "the leaver's track ends (max_age after its last detection)");
    }

    #[test]
    fn max_people_keeps_whom_the_policy_says() {
        let frame = |_f: usize| {
            vec![
                (0, det(200.0, 360.0, 80.0, 200.0)),   // small, off-centre, first
                (1, det(640.0, 360.0, 100.0, 250.0)),  // central
                (2, det(1000.0, 400.0, 200.0, 500.0)), // large
            ]
        };
        let one = |keep| Settings { max_people: 1, keep, ..Settings::default() };
        let reported = |keep| {
            let (seen, _, _) = run(one(keep), 6, frame);
            seen.iter().map(|ids| ids[5].is_some()).collect::<Vec<_>>()
        };
        assert_eq!(reported(Keep::Largest), [false, false, true]);
        assert_eq!(reported(Keep::Central), [false, true, false]);
        // All started together: the lowest id is the tie-break of equal ages.
        assert_eq!(reported(Keep::Longest), [true, false, false]);
    }

    #[test]
    fn coasting_between_detector_runs() {
        let mut t = Tracker::new(Settings::default());
        for f in 0..5 {
            t.update(&[det(300.0 + f as f32 * 10.0, 400.0, 120.0, 300.0)], [1280, 720]);
        }
        // Two frames without the detector: the track is reported, moving on.
        let a = t.predict([1280, 720]);
        let b = t.predict([1280, 720]);
        assert_eq!((a.people.len(), b.people.len()), (1, 1));
        let cx = |u: &Update| u.people[0].bbox.left + u.people[0].bbox.width / 2.0;
        assert!(cx(&b) > cx(&a) && (cx(&b) - cx(&a) - 10.0).abs() < 2.0, "{} {}", cx(&a), cx(&b));
        let up = t.update(&[det(370.0, 400.0, 120.0, 300.0)], [1280, 720]);
        assert_eq!(up.people[0].id, 0);
        // Detector every other frame: a newcomer is confirmed after min_hits detector runs.
        let mut t = Tracker::new(Settings::default());
        let mut reported = Vec::new();
        for f in 0..8 {
            let up = if f % 2 == 0 {
                t.update(&[det(300.0 + f as f32 * 10.0, 400.0, 120.0, 300.0)], [1280, 720])
            } else {
                t.predict([1280, 720])
            };
            reported.push(up.people.len());
        }
        assert_eq!(reported, [0, 0, 0, 0, 1, 1, 1, 1]);
    }

    #[test]
    fn a_missed_detection_is_reported_as_predicted() {
        let mut t = Tracker::new(Settings::default());
        let walk = |f: usize| det(300.0 + f as f32 * 10.0, 400.0, 120.0, 300.0);
        for f in 0..5 {
            let up = t.update(&[walk(f)], [1280, 720]);
            assert!(up.people.iter().all(|p| !p.predicted));
        }
        // The detector misses the person for two frames: still reported, predicted, moving on.
        let a = t.update(&[], [1280, 720]);
        let b = t.update(&[], [1280, 720]);
        for up in [&a, &b] {
            assert_eq!(up.people.len(), 1);
            assert!(up.people[0].predicted && up.people[0].id == 0);
        }
        assert!(b.people[0].bbox.left > a.people[0].bbox.left);
        let c = t.update(&[walk(7)], [1280, 720]);
        assert!(!c.people[0].predicted && c.people[0].id == 0);
        // Missed three runs in a row (max_coast 2): left out, still tracked, back as the same.
        for _ in 0..2 {
            assert_eq!(t.update(&[], [1280, 720]).people.len(), 1);
        }
        assert!(t.update(&[], [1280, 720]).people.is_empty());
        assert_eq!(t.update(&[walk(11)], [1280, 720]).people[0].id, 0);
    }

    #[test]
    fn boxes_at_the_edge_are_clipped_by_shrinking() {
        let mut t = Tracker::new(Settings::default());
        // A person half out of the image on the left and the top.
        let b = BBox { left: -60.0, top: -20.0, width: 120.0, height: 300.0 };
        let mut up = Update::default();
        for _ in 0..4 {
            up = t.update(&[Detection { bbox: b, score: 0.9 }], [640, 480]);
        }
        let p = up.people[0].bbox;
        assert!((p.left, p.top) == (0.0, 0.0), "{p:?}");
        assert!((p.width - 60.0).abs() < 1.0 && (p.height - 280.0).abs() < 1.0, "{p:?}");
        // Walking out to the right: once the prediction is outside, nobody is reported.
        let mut t = Tracker::new(Settings::default());
        for f in 0..20 {
            let x = 560.0 + f as f32 * 40.0;
            let seen = if x < 640.0 { vec![det(x, 240.0, 80.0, 200.0)] } else { vec![] };
            let up = t.update(&seen, [640, 480]);
            for p in &up.people {
                assert!(p.bbox.left + p.bbox.width <= 640.0 && p.bbox.width >= 1.0, "{p:?}");
            }
            if x > 800.0 {
                assert!(up.people.is_empty(), "frame {f}: {:?}", up.people);
            }
        }
    }

    #[test]
    fn ids_are_never_reused_after_a_reset() {
        let mut t = Tracker::new(Settings::default());
        for _ in 0..3 {
            t.update(&[det(300.0, 300.0, 100.0, 200.0)], [1280, 720]);
        }
        assert_eq!(t.reset(), [0], "the confirmed track ends");
        let mut up = Update::default();
        for _ in 0..3 {
            up = t.update(&[det(300.0, 300.0, 100.0, 200.0)], [1280, 720]);
        }
        assert_eq!(up.people[0].id, 1, "the same place after a reset: a new id");
    }

    #[test]
    fn degenerate_detections_are_ignored() {
        let mut t = Tracker::new(Settings::default());
        let bad = [
            Detection { bbox: BBox { left: 0.0, top: 0.0, width: 0.0, height: 10.0 }, score: 0.9 },
            Detection { bbox: BBox { left: 5.0, top: 5.0, width: -3.0, height: 10.0 }, score: 0.9 },
            Detection {
                bbox: BBox { left: f32::NAN, top: 0.0, width: 9.0, height: 9.0 },
                score: 0.9,
            },
            Detection { score: f32::NAN, ..det(100.0, 100.0, 50.0, 100.0) },
        ];
        for _ in 0..5 {
            assert!(t.update(&bad, [640, 480]).people.is_empty());
        }
        assert!(t.tracks.is_empty());
    }
}
