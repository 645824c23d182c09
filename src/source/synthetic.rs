//! The built-in source: a deterministic moving test pattern (a bright "body" swaying over a
//! gradient, with two swinging "arms"), of any size, at a fixed rate or unpaced. The same frame
//! index always gives the same bytes, so runs are reproducible without a camera.

use super::{CaptureTime, Error, Frame, FrameSource, Pacer};
use crate::pixels::Image;

/// Writes frame `index` of the pattern into `rgb` as packed RGB8 of `width × height`.
///
/// The background's red and blue depend on the column only and its green on the row only, and
/// the body and arms lie within 0.3 of the centre in both directions. So a background row is
/// built once per green value and copied, and the body/arm test runs only in the box around
/// the centre. Byte for byte the same as evaluating every pixel (the test against
/// [`tests::render_per_pixel`]), and several times faster (`smplcast bench`, capture stage).
pub fn render(index: u64, width: u32, height: u32, rgb: &mut Vec<u8>) {
    let (w, h) = (width as usize, height as usize);
    rgb.clear();
    rgb.resize(w * h * 3, 0);
    let p = Pattern::at(index, w, h);
    let byte = |c: f32| (c * 255.0).round().clamp(0.0, 255.0) as u8;
    // Per column: u, and the background's red and blue; the foreground colour is constant.
    let columns: Vec<(f32, u8, u8)> = (0..w)
        .map(|x| {
            let u = p.u0 + (x as f32 + 0.5) * p.scale;
            let uc = u.clamp(0.0, 1.0);
            (u, byte(0.2 + 0.6 * uc * 1.0 + 0.75 * 0.0), byte(0.5 - 0.3 * uc * 1.0 + 0.4 * 0.0))
        })
        .collect();
    let fg = [byte(0.2 + 0.0 + 0.75), byte(0.3 + 0.0 + 0.6), byte(0.5 - 0.0 + 0.4)];
    // Columns that can hold foreground (|u − cx| < REACH), with a pixel of margin: the exact
    // test below decides.
    let column_of = |u: f32| ((u - p.u0) / p.scale - 0.5).clamp(0.0, w as f32);
    let near = column_of(p.cx - Pattern::REACH).floor() as usize
        ..(column_of(p.cx + Pattern::REACH).ceil() as usize + 1).min(w);
    let mut background: Vec<u8> = Vec::with_capacity(w * 3);
    let mut background_green = None;
    for (y, row) in rgb.chunks_exact_mut(w * 3).enumerate() {
        let v = (y as f32 + 0.5) * p.scale;
        let dy = v - p.cy;
        let green = byte(0.3 + 0.4 * v * 1.0 + 0.6 * 0.0);
        if background_green != Some(green) {
            background.clear();
            background.extend(columns.iter().flat_map(|&(_, red, blue)| [red, green, blue]));
            background_green = Some(green);
        }
        row.copy_from_slice(&background);
        if dy.abs() >= Pattern::REACH {
            continue;
        }
        let pixels = row[near.start * 3..near.end * 3].chunks_exact_mut(3);
        for (px, &(u, _, _)) in pixels.zip(&columns[near.clone()]) {
            if p.foreground(u - p.cx, dy) {
                px.copy_from_slice(&fg);
            }
        }
    }
}

/// The pattern's geometry at one frame.
struct Pattern {
    scale: f32,
    u0: f32,
    cx: f32,
    cy: f32,
    swing: f32,
}

impl Pattern {
    /// No foreground at |dx| or |dy| ≥ this: the body's half-height, the arms' half-length.
    const REACH: f32 = 0.3;

    fn at(index: u64, width: usize, height: usize) -> Self {
        let t = index as f32 / 25.0;
        // Pattern coordinates: v spans the height, u keeps the aspect ratio, centred.
        let scale = 1.0 / height.max(1) as f32;
        Pattern {
            scale,
            u0: 0.5 - 0.5 * width as f32 * scale,
            cx: 0.5 + 0.15 * (0.7 * t).sin(),
            cy: 0.5 + 0.05 * (1.3 * t).cos(),
            swing: 0.25 * (2.0 * t).sin(),
        }
    }

    /// The body (an ellipse) or an arm (a swinging bar) covers this offset from the centre.
    fn foreground(&self, dx: f32, dy: f32) -> bool {
        let body = (dx / 0.12).powi(2) + (dy / 0.3).powi(2) < 1.0;
        let arm = (dy + self.swing * dx.abs()).abs() < 0.03 && dx.abs() < 0.3;
        body || arm
    }
}

/// The synthetic source.
#[derive(Debug)]
pub struct Synthetic {
    width: u32,
    height: u32,
    fps: f64,
    /// Frames to produce; `None`: endless.
    frames: Option<u64>,
    next: u64,
    pacer: Pacer,
}

impl Synthetic {
    /// `fps` = 0: unpaced. `frames`: stop after this many (`None`: never).
    pub fn new(width: u32, height: u32, fps: f64, frames: Option<u64>) -> Self {
        Synthetic { width, height, fps, frames, next: 0, pacer: Pacer::new(fps) }
    }
}

impl FrameSource for Synthetic {
    fn next_frame(&mut self) -> Result<Option<Frame>, Error> {
        if self.frames.is_some_and(|n| self.next >= n) {
            return Ok(None);
        }
        self.pacer.wait();
        let time = CaptureTime::now();
        let mut rgb = Vec::new();
        render(self.next, self.width, self.height, &mut rgb);
        let image = Image::rgb24(self.width, self.height, rgb);
        let frame = Frame { id: self.next, image, time, segment: 0 };
        self.next += 1;
        Ok(Some(frame))
    }

    fn is_live(&self) -> bool {
        self.pacer.is_paced()
    }

    fn fps(&self) -> Option<f64> {
        (self.fps > 0.0).then_some(self.fps)
    }

    fn describe(&self) -> String {
        let rate = if self.fps > 0.0 { format!("{} fps", self.fps) } else { "unpaced".into() };
        format!("synthetic {}×{} {rate}", self.width, self.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pattern as first written: every colour evaluated per pixel.
    pub(super) fn render_per_pixel(index: u64, width: u32, height: u32, rgb: &mut Vec<u8>) {
        let (w, h) = (width as usize, height as usize);
        rgb.clear();
        rgb.resize(w * h * 3, 0);
        let t = index as f32 / 25.0;
        let scale = 1.0 / h.max(1) as f32;
        let u0 = 0.5 - 0.5 * w as f32 * scale;
        let (cx, cy) = (0.5 + 0.15 * (0.7 * t).sin(), 0.5 + 0.05 * (1.3 * t).cos());
        let swing = 0.25 * (2.0 * t).sin();
        for (y, row) in rgb.chunks_exact_mut(w * 3).enumerate() {
            let v = (y as f32 + 0.5) * scale;
            let dy = v - cy;
            for (x, px) in row.chunks_exact_mut(3).enumerate() {
                let u = u0 + (x as f32 + 0.5) * scale;
                let dx = u - cx;
                let body = (dx / 0.12).powi(2) + (dy / 0.3).powi(2) < 1.0;
                let arm = (dy + swing * dx.abs()).abs() < 0.03 && dx.abs() < 0.3;
                let fg = f32::from(u8::from(body || arm));
                let c = [
                    0.2 + 0.6 * u.clamp(0.0, 1.0) * (1.0 - fg) + 0.75 * fg,
                    0.3 + 0.4 * v * (1.0 - fg) + 0.6 * fg,
                    0.5 - 0.3 * u.clamp(0.0, 1.0) * (1.0 - fg) + 0.4 * fg,
                ];
                for (out, c) in px.iter_mut().zip(c) {
                    *out = (c * 255.0).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }

    #[test]
    fn fast_render_is_byte_identical_to_the_per_pixel_one() {
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        for (w, h) in [(640, 480), (160, 120), (33, 17), (1, 1), (480, 640)] {
            for index in [0, 1, 7, 100, 1234].into_iter().chain((0..200).step_by(7)) {
                render(index, w, h, &mut fast);
                render_per_pixel(index, w, h, &mut slow);
                assert!(fast == slow, "frame {index} at {w}×{h} differs");
            }
        }
    }

    #[test]
    fn deterministic_and_moving() {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        render(7, 64, 48, &mut a);
        render(7, 64, 48, &mut b);
        render(8, 64, 48, &mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 64 * 48 * 3);
        // The body is brighter than the background somewhere near the middle.
        let px = |x: usize, y: usize| a[(y * 64 + x) * 3];
        assert!((0..64).any(|x| px(x, 24) > 200) && px(0, 0) < 100);
    }

    #[test]
    fn source_counts_ids_and_ends() {
        let mut s = Synthetic::new(32, 16, 0.0, Some(3));
        let ids: Vec<u64> = std::iter::from_fn(|| s.next_frame().unwrap()).map(|f| f.id).collect();
        assert_eq!(ids, [0, 1, 2]);
        assert!(!s.is_live());
        assert!(Synthetic::new(32, 16, 30.0, None).is_live());
    }
}
