//! Replays a directory of PNG/JPEG images as camera frames, in file-name order, at a fixed rate
//! or as fast as the pipeline takes them; optionally looping. Decoding uses zune-png and
//! zune-jpeg. An image that cannot be read is reported as [`Error::Frame`] (the capture thread
//! counts and skips it); frame ids still advance, so the gap is visible downstream.

use std::path::{Path, PathBuf};

use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use super::{CaptureTime, Error, Frame, FrameSource, Pacer};
use crate::pixels::{DecodeError, Image};

/// The image-directory source.
#[derive(Debug)]
pub struct Files {
    dir: PathBuf,
    paths: Vec<PathBuf>,
    fps: f64,
    looping: bool,
    next: u64,
    pacer: Pacer,
}

impl Files {
    /// Lists the images of `dir` (`.png`, `.jpg`, `.jpeg`, any case), sorted by name.
    ///
    /// # Errors
    /// [`Error::Dir`] when `dir` cannot be listed, [`Error::Empty`] when it has no images.
    pub fn open(dir: &Path, fps: f64, looping: bool) -> Result<Self, Error> {
        let dir_error = |source| Error::Dir { path: dir.to_path_buf(), source };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(dir_error)? {
            let path = entry.map_err(dir_error)?.path();
            if Format::of(&path).is_some() && path.is_file() {
                paths.push(path);
            }
        }
        if paths.is_empty() {
            return Err(Error::Empty { path: dir.to_path_buf() });
        }
        paths.sort();
        Ok(Files { dir: dir.to_path_buf(), paths, fps, looping, next: 0, pacer: Pacer::new(fps) })
    }

    /// Images in one pass.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Never true: [`Files::open`] refuses an empty directory.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

impl FrameSource for Files {
    fn next_frame(&mut self) -> Result<Option<Frame>, Error> {
        let n = self.paths.len() as u64;
        if !self.looping && self.next >= n {
            return Ok(None);
        }
        let path = &self.paths[(self.next % n) as usize];
        let id = self.next;
        self.next += 1;
        let decoded = decode(path);
        self.pacer.wait();
        let time = CaptureTime::now();
        Ok(Some(Frame { id, image: decoded?, time, segment: 0 }))
    }

    fn is_live(&self) -> bool {
        self.pacer.is_paced()
    }

    fn fps(&self) -> Option<f64> {
        (self.fps > 0.0).then_some(self.fps)
    }

    fn describe(&self) -> String {
        let rate = if self.fps > 0.0 { format!("{} fps", self.fps) } else { "unpaced".into() };
        let looping = if self.looping { ", looping" } else { "" };
        format!("{} images from {} at {rate}{looping}", self.paths.len(), self.dir.display())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Png,
    Jpeg,
}

impl Format {
    fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "png" => Some(Format::Png),
            "jpg" | "jpeg" => Some(Format::Jpeg),
            _ => None,
        }
    }
}

/// Reads and decodes one image: PNG to RGB24, JPEG to RGB24 (or GREY for a grey JPEG).
///
/// # Errors
/// [`Error::Frame`] naming the file: unreadable, corrupt, or a PNG pixel format other than
/// 8/16-bit grey, grey + alpha, RGB or RGBA.
pub fn decode(path: &Path) -> Result<Image, Error> {
    let fail = |reason: String| Error::Frame { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    match Format::of(path) {
        Some(Format::Jpeg) => crate::pixels::decode_jpeg(&bytes).map_err(|e| fail(e.to_string())),
        Some(Format::Png) => decode_png(&bytes).map_err(|e| fail(e.to_string())),
        None => Err(fail("not a .png, .jpg or .jpeg file".into())),
    }
}

fn decode_png(bytes: &[u8]) -> Result<Image, DecodeError> {
    const KIND: &str = "PNG";
    let corrupt = |detail: String| DecodeError::Corrupt { kind: KIND, detail };
    let options = DecoderOptions::default().png_set_strip_to_8bit(true);
    let mut d = zune_png::PngDecoder::new_with_options(ZCursor::new(bytes), options);
    let pixels = d.decode_raw().map_err(|e| corrupt(format!("{e:?}")))?;
    let (w, h) = d.dimensions().ok_or(DecodeError::NoHeader(KIND))?;
    let space = d.colorspace().ok_or(corrupt("unknown pixel format".into()))?;
    let channels = space.num_components();
    if pixels.len() != w * h * channels {
        return Err(corrupt(format!("decoded {} bytes for {w}×{h}×{channels}", pixels.len())));
    }
    let rgb = match space {
        ColorSpace::RGB => pixels,
        ColorSpace::RGBA => pixels.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        ColorSpace::Luma | ColorSpace::LumaA => {
            pixels.chunks_exact(channels).flat_map(|p| [p[0]; 3]).collect()
        }
        other => return Err(DecodeError::Unsupported { kind: KIND, layout: format!("{other:?}") }),
    };
    let size = |v: usize| {
        u32::try_from(v).map_err(|_| DecodeError::TooLarge { kind: KIND, width: w, height: h })
    };
    Ok(Image::rgb24(size(w)?, size(h)?, rgb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixels::PixelFormat;

    fn frames() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/frames")
    }

    fn sum(rgb: &[u8]) -> u64 {
        rgb.iter().map(|&v| u64::from(v)).sum()
    }

    /// Reference figures from Pillow (tests/data/frames/make.py's venv):
    /// `np.asarray(Image.open(f).convert("RGB")).sum()` and the pixel at (x 100, y 70).
    #[test]
    fn decodes_png_jpeg_grey_and_rgba_like_pillow() {
        let img = decode(&frames().join("frame_000.png")).unwrap();
        let rgb = img.data;
        assert_eq!((img.width, img.height, sum(&rgb)), (192, 144, 10_561_935));
        let at = |rgb: &[u8], x: usize, y: usize| rgb[(y * 192 + x) * 3..][..3].to_vec();
        assert_eq!(at(&rgb, 100, 70), [5, 3, 2]);
        let grey = decode(&frames().join("frame_005.png")).unwrap().data;
        assert_eq!((sum(&grey), at(&grey, 100, 70)), (10_615_257, vec![4, 4, 4]));
        let rgba = decode(&frames().join("frame_007.png")).unwrap().data;
        assert_eq!((sum(&rgba), at(&rgba, 100, 70)), (10_420_498, vec![114, 101, 118]));
        // JPEG decoders differ in IDCT rounding: within 0.5 % of Pillow's sum.
        let img = decode(&frames().join("frame_001.jpg")).unwrap();
        assert_eq!((img.format, img.width, img.height), (PixelFormat::Rgb24, 192, 144));
        let jpeg = img.data;
        let rel = (sum(&jpeg) as f64 - 10_501_227.0).abs() / 10_501_227.0;
        assert!(rel < 0.005, "JPEG sum off by {rel}");
    }

    #[test]
    fn corrupt_frame_is_an_error_naming_the_file_and_the_replay_goes_on() {
        let err = decode(&frames().join("frame_010.jpg")).unwrap_err().to_string();
        assert!(err.contains("frame_010.jpg") && err.contains("JPEG"), "{err}");
        let mut src = Files::open(&frames(), 0.0, false).unwrap();
        assert_eq!(src.len(), 20);
        let mut ids = Vec::new();
        let mut bad = 0;
        loop {
            match src.next_frame() {
                Ok(Some(f)) => ids.push(f.id),
                Ok(None) => break,
                Err(_) => bad += 1,
            }
        }
        assert_eq!(bad, 1);
        assert_eq!(ids, (0..20).filter(|&i| i != 10).collect::<Vec<u64>>());
        assert!(src.describe().contains("20 images"));
    }

    #[test]
    fn missing_or_empty_directories_say_what_to_do() {
        let err = Files::open(Path::new("/nonexistent/frames"), 0.0, false).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/frames: cannot read"), "{err}");
        let empty = std::env::temp_dir().join(format!("smplcast-empty-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let err = Files::open(&empty, 0.0, false).unwrap_err().to_string();
        assert!(err.contains("no .png, .jpg or .jpeg images"), "{err}");
        std::fs::remove_dir_all(empty).unwrap();
    }

    #[test]
    fn looping_goes_on_with_new_ids() {
        let mut src = Files::open(&frames(), 0.0, true).unwrap();
        let ids: Vec<u64> = std::iter::from_fn(|| Some(src.next_frame()))
            .take(45)
            .flatten()
            .flatten()
            .map(|f| f.id)
            .collect();
        // Image 10 fails in each pass: ids 10 and 30 (of 0..45) are missing.
        let want: Vec<u64> = (0..45).filter(|i| i % 20 != 10).collect();
        assert_eq!(ids, want);
    }
}
