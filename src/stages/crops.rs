//! `smplcast run --save-crops DIR`: a sample of the person crops the backbone sees, saved as
//! PNG files, to calibrate the int8 backbone on the user's own scene
//! (`models/run convert.py --calib-dir DIR`, docs/MODEL.md).
//!
//! One crop per track per second of capture time at most, until `max` files: a sample spread
//! over people and time, not 30 near-copies of one pose. Files are 224 × 224 RGB, named
//! `t{track:05}-f{frame:09}.png`, so that sorting by name sorts by track, then time. Saving
//! runs on the inference workers; a crop that cannot be written is logged once, never fatal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};

use crate::model::preprocess;

/// Capture time between two crops of one track, nanoseconds.
const EVERY_NS: u64 = 1_000_000_000;

/// Where crops go and how many more may.
#[derive(Debug)]
pub struct CropSaver {
    dir: PathBuf,
    max: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    saved: usize,
    /// Per track: the capture time of its last saved crop.
    last: HashMap<u32, u64>,
    failed: bool,
}

impl CropSaver {
    /// Crops into `dir` (made if missing), at most `max`.
    ///
    /// # Errors
    /// `dir` cannot be made, or already holds crops (a new sample would mix with an old one).
    pub fn new(dir: &Path, max: usize) -> Result<CropSaver> {
        std::fs::create_dir_all(dir).with_context(|| {
            format!("--save-crops {}: cannot make the directory", dir.display())
        })?;
        let old = std::fs::read_dir(dir)
            .with_context(|| format!("--save-crops {}: cannot read it", dir.display()))?
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
            .count();
        anyhow::ensure!(
            old == 0,
            "--save-crops {}: it already holds {old} .png files; give an empty or new directory \
             (a sample of one scene at a time)",
            dir.display()
        );
        tracing::info!(dir = %dir.display(), max, "Saving person crops (one per track per second).");
        Ok(CropSaver { dir: dir.to_path_buf(), max, state: Mutex::default() })
    }

    /// Offers one person's crop (`tensor`, as the backbone takes it): saved when this track
    /// has had none for a second of capture time and the sample is not full.
    pub fn offer(&self, track: u32, frame: u64, mono_ns: u64, tensor: &[f32]) {
        let Ok(mut state) = self.state.lock() else { return };
        if state.saved >= self.max
            || state.last.get(&track).is_some_and(|&t| mono_ns < t.saturating_add(EVERY_NS))
        {
            return;
        }
        state.last.insert(track, mono_ns);
        state.saved += 1;
        let full = state.saved == self.max;
        drop(state);
        let path = self.dir.join(format!("t{track:05}-f{frame:09}.png"));
        if let Err(e) = write_png(&path, &preprocess::tensor_to_rgb(tensor)) {
            let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !std::mem::replace(&mut state.failed, true) {
                tracing::error!(file = %path.display(), error = %e, "Cannot save a person crop.");
            }
        } else if full {
            tracing::info!(dir = %self.dir.display(), crops = self.max, "Person crops saved.");
        }
    }
}

fn write_png(path: &Path, rgb: &[u8]) -> std::io::Result<()> {
    use zune_png::zune_core::bit_depth::BitDepth;
    use zune_png::zune_core::colorspace::ColorSpace;
    use zune_png::zune_core::options::EncoderOptions;
    let side = crate::model::IMAGE_SIZE;
    let options = EncoderOptions::new(side, side, ColorSpace::RGB, BitDepth::Eight);
    let mut out = Vec::new();
    zune_png::PngEncoder::new(rgb, options)
        .encode(&mut out)
        .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    std::fs::write(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("smplcast-crops-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn one_crop_per_track_per_second_up_to_the_bound_and_readable_back() {
        let dir = scratch("sample");
        let saver = CropSaver::new(&dir, 3).unwrap();
        let side = crate::model::IMAGE_SIZE;
        let tensor: Vec<f32> = (0..3 * side * side).map(|i| (i % 97) as f32 / 97.0 - 0.5).collect();
        // Track 1 at 0, 0.5 and 1.0 s; track 2 at 0.2 s; track 1 again at 2 s (over the bound).
        for (track, frame, ns) in [
            (1, 0, 0),
            (1, 15, 500_000_000),
            (2, 6, 200_000_000),
            (1, 30, EVERY_NS),
            (1, 60, 2 * EVERY_NS),
        ] {
            saver.offer(track, frame, ns, &tensor);
        }
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["t00001-f000000000.png", "t00001-f000000030.png", "t00002-f000000006.png"]
        );
        let png = std::fs::read(dir.join(&names[0])).unwrap();
        let mut decoder = zune_png::PngDecoder::new(std::io::Cursor::new(png));
        let pixels = decoder.decode_raw().unwrap();
        assert_eq!(decoder.dimensions(), Some((side, side)));
        assert_eq!(pixels, preprocess::tensor_to_rgb(&tensor), "the crop as the backbone saw it");
        // A directory that already holds a sample is refused, by name.
        let err = CropSaver::new(&dir, 3).unwrap_err().to_string();
        assert!(err.contains("already holds 3 .png files"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
