//! A live stream's frame rate measured from its capture times, for streams whose caps give none
//! (`framerate=0/1`: an RTSP camera whose SDP and SPS state no rate, some pipelines). Without a
//! rate the model's rate cannot be a stride of the camera's (`pipeline.model_fps`), the
//! messages state no `win.fps`, and a slow pipeline drops frames at random.

/// Frames whose intervals are measured: 15 intervals, half a second at 30 fps.
const FRAMES: usize = 16;

/// Collects the first [`FRAMES`] capture times of one segment (a gap starts again) and gives
/// the rate of their intervals: jitter averages out, and a frame released late does not move it.
#[derive(Debug, Default)]
pub struct MeasuredRate {
    times: Vec<u64>,
    segment: u64,
    fps: Option<f64>,
}

impl MeasuredRate {
    /// Adds a frame's capture time (monotonic ns) in `segment`; the rate once measured.
    pub fn add(&mut self, mono_ns: u64, segment: u64) -> Option<f64> {
        if self.fps.is_some() {
            return self.fps;
        }
        if segment != self.segment {
            self.times.clear();
            self.segment = segment;
        }
        self.times.push(mono_ns);
        if self.times.len() == FRAMES {
            let mut intervals: Vec<u64> =
                self.times.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
            intervals.sort_unstable();
            // The mean of the intervals within a quarter of the median: the jitter of the
            // timestamps averages out, and a frame released late (two intervals far off) is
            // left out.
            let median = intervals[intervals.len() / 2];
            let near: Vec<u64> =
                intervals.into_iter().filter(|d| d.abs_diff(median) <= median / 4).collect();
            let mean = near.iter().sum::<u64>() as f64 / near.len() as f64;
            // Frames with one timestamp (a source that stamps with the read time): no rate.
            self.fps = (median > 0).then(|| 1e9 / mean);
            self.times.clear();
        }
        self.fps
    }

    pub fn fps(&self) -> Option<f64> {
        self.fps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_averages_out_a_late_frame_is_left_out_and_a_gap_starts_again() {
        let ms: i64 = 1_000_000;
        let mut rate = MeasuredRate::default();
        let mut t = 1_000 * ms;
        // A few frames, then a gap: they do not count.
        for _ in 0..5 {
            assert_eq!(rate.add(t as u64, 0), None);
            t += 40 * ms;
        }
        // 25 fps with ±3 ms of jitter and one frame released 200 ms late.
        for i in 0..FRAMES {
            let jitter = [0, 3, -3][i % 3] * ms;
            let late = if i == 7 { 200 * ms } else { 0 };
            let fps = rate.add((t + jitter + late) as u64, 1);
            assert_eq!(fps.is_some(), i == FRAMES - 1, "frame {i}: {fps:?}");
            t += 40 * ms;
        }
        let fps = rate.fps().unwrap();
        assert!((fps - 25.0).abs() < 1.0, "{fps}");
        assert_eq!(rate.add(t as u64, 2), Some(fps), "measured once, then kept");
        let mut stuck = MeasuredRate::default();
        assert!((0..FRAMES).all(|_| stuck.add(5, 0).is_none()), "no rate from equal times");
    }
}
