//! Preprocessing benchmark: a 640×480 camera frame → the backbone's [3, 224, 224] tensor for
//! one person, on one core, every variant measured side by side in one run.
//!
//! ```text
//! cargo bench --bench preprocess
//! ```
//!
//! Variants (all crop the same square, side 440 px, around a 200×400 person box at the frame
//! centre, to 224×224, and normalise with ImageNet mean/std):
//! - `yuyv fused`: what the daemon does for a YUYV camera: `pixels::crop_normalised` samples
//!   the YUYV bytes directly (BT.601 conversion per tap, bilinear, normalise) in one pass.
//! - `rgb24 fused`: the same pass over an RGB24 frame.
//! - `nv12 fused`, `grey fused`: the other raw layouts.
//! - `yuyv → rgb → fir → norm`: the alternative: convert the whole frame to RGB24 (a tight
//!   loop), crop + resize with fast_image_resize (SIMD, bilinear convolution, which also
//!   antialiases), then normalise into planar f32.
//! - `mjpeg decode`, `mjpeg decode + fused`: an MJPEG camera (zune-jpeg, 640×480, q 85).
//!
//! Method: `SMPLCAST_BENCH_WARMUP` (default 20) untimed rounds, then `SMPLCAST_BENCH_ITERS`
//! (default 300) rounds; each round runs every variant once, in an order that reverses every
//! other round. Median, p10 and p90 per variant are printed with the ratio to `yuyv fused`.

use std::hint::black_box;
use std::time::Instant;

use fast_image_resize as fir;
use smplcast::model::preprocess::{MEAN, STD};
use smplcast::pixels::{crop_normalised, decode_jpeg, Image, PixelFormat};

const SIZE: usize = 224;
const CROP: (f32, f32, f32) = (320.0, 240.0, 440.0);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// BT.601 limited-range encoding, for making test frames from RGB.
fn rgb_to_yuv(p: &[u8]) -> (u8, u8, u8) {
    let (r, g, b) = (f32::from(p[0]), f32::from(p[1]), f32::from(p[2]));
    let y = 16.0 + 0.256_788 * r + 0.504_129 * g + 0.097_906 * b;
    let u = 128.0 - 0.148_223 * r - 0.290_993 * g + 0.439_216 * b;
    let v = 128.0 + 0.439_216 * r - 0.367_788 * g - 0.071_427 * b;
    (y.round() as u8, u.round() as u8, v.round() as u8)
}

fn to_yuyv(rgb: &Image) -> Image {
    let (w, h) = (rgb.width as usize, rgb.height as usize);
    let mut out = Vec::with_capacity(w * h * 2);
    for row in rgb.data.chunks_exact(w * 3) {
        for pair in row.chunks_exact(6) {
            let (y0, u0, v0) = rgb_to_yuv(&pair[..3]);
            let (y1, u1, v1) = rgb_to_yuv(&pair[3..]);
            out.extend([
                y0,
                ((u16::from(u0) + u16::from(u1)) / 2) as u8,
                y1,
                ((u16::from(v0) + u16::from(v1)) / 2) as u8,
            ]);
        }
    }
    Image {
        format: PixelFormat::Yuyv,
        width: rgb.width,
        height: rgb.height,
        stride: 2 * w,
        data: out,
    }
}

fn to_nv12(rgb: &Image) -> Image {
    let (w, h) = (rgb.width as usize, rgb.height as usize);
    let mut y = vec![0u8; w * h];
    let mut uv = vec![0u8; w * h / 2];
    for j in 0..h {
        for i in 0..w {
            let (yy, u, v) = rgb_to_yuv(&rgb.data[(j * w + i) * 3..][..3]);
            y[j * w + i] = yy;
            if j % 2 == 0 && i % 2 == 0 {
                uv[(j / 2) * w + i] = u;
                uv[(j / 2) * w + i + 1] = v;
            }
        }
    }
    y.extend(uv);
    Image { format: PixelFormat::Nv12, width: rgb.width, height: rgb.height, stride: w, data: y }
}

/// The alternative pipeline's first step: the whole YUYV frame to RGB24, a tight loop.
fn yuyv_to_rgb(img: &Image, out: &mut Vec<u8>) {
    out.clear();
    for row in img.data.chunks_exact(img.stride) {
        for px in row.chunks_exact(4) {
            let (u, v) = (f32::from(px[1]) - 128.0, f32::from(px[3]) - 128.0);
            for y in [px[0], px[2]] {
                let c = 1.164_383 * f32::from(y.saturating_sub(16));
                out.extend([
                    (c + 1.596_027 * v).clamp(0.0, 255.0) as u8,
                    (c - 0.391_762 * u - 0.812_968 * v).clamp(0.0, 255.0) as u8,
                    (c + 2.017_232 * u).clamp(0.0, 255.0) as u8,
                ]);
            }
        }
    }
}

struct Alternative {
    rgb: Vec<u8>,
    resizer: fir::Resizer,
    dst: fir::images::TypedImage<'static, fir::pixels::U8x3>,
}

impl Alternative {
    fn run(&mut self, img: &Image, out: &mut Vec<f32>) {
        yuyv_to_rgb(img, &mut self.rgb);
        // Typed: only the RGB24 kernels are compiled (the untyped `resize` instantiates every
        // pixel type's, 30 s more CPU to build the bench); it runs the same code.
        let src = fir::images::TypedImageRef::<fir::pixels::U8x3>::from_buffer(
            img.width, img.height, &self.rgb,
        )
        .expect("RGB24 frame");
        let (cx, cy, side) = CROP;
        let options = fir::ResizeOptions::new()
            .crop(
                f64::from(cx - side / 2.0),
                f64::from(cy - side / 2.0),
                f64::from(side),
                f64::from(side),
            )
            .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear));
        self.resizer.resize_typed(&src, &mut self.dst, &options).expect("resize");
        out.clear();
        out.resize(3 * SIZE * SIZE, 0.0);
        let plane = SIZE * SIZE;
        for (i, px) in self.dst.pixels().iter().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = (f32::from(px.0[c]) / 255.0 - MEAN[c]) / STD[c];
            }
        }
    }
}

fn main() {
    let (warmup, iters) = (env("SMPLCAST_BENCH_WARMUP", 20), env("SMPLCAST_BENCH_ITERS", 300));
    let jpeg =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/data/astronaut_640x480.jpg"))
            .expect("benches/data/astronaut_640x480.jpg");
    let rgb = decode_jpeg(&jpeg).expect("the bench JPEG decodes");
    assert_eq!((rgb.width, rgb.height, rgb.format), (640, 480, PixelFormat::Rgb24));
    let yuyv = to_yuyv(&rgb);
    let nv12 = to_nv12(&rgb);
    let grey = Image {
        format: PixelFormat::Grey,
        width: 640,
        height: 480,
        stride: 640,
        data: yuyv.data.iter().step_by(2).copied().collect(),
    };
    let mut alt = Alternative {
        rgb: Vec::new(),
        resizer: fir::Resizer::new(),
        dst: fir::images::TypedImage::new(SIZE as u32, SIZE as u32),
    };
    let mut out = Vec::new();
    type Variant<'a> = (&'static str, Box<dyn FnMut(&mut Vec<f32>) + 'a>);
    let mut variants: Vec<Variant> = vec![
        ("yuyv fused", Box::new(|o| crop_normalised(&yuyv, CROP, SIZE, MEAN, STD, o))),
        ("rgb24 fused", Box::new(|o| crop_normalised(&rgb, CROP, SIZE, MEAN, STD, o))),
        ("nv12 fused", Box::new(|o| crop_normalised(&nv12, CROP, SIZE, MEAN, STD, o))),
        ("grey fused", Box::new(|o| crop_normalised(&grey, CROP, SIZE, MEAN, STD, o))),
        ("yuyv → rgb → fir → norm", Box::new(|o| alt.run(&yuyv, o))),
        (
            "mjpeg decode",
            Box::new(|_| {
                black_box(decode_jpeg(black_box(&jpeg)).expect("decodes"));
            }),
        ),
        (
            "mjpeg decode + fused",
            Box::new(|o| {
                let img = decode_jpeg(black_box(&jpeg)).expect("decodes");
                crop_normalised(&img, CROP, SIZE, MEAN, STD, o);
            }),
        ),
    ];
    let n = variants.len();
    let mut times = vec![Vec::with_capacity(iters); n];
    for round in 0..warmup + iters {
        let order: Vec<usize> =
            if round % 2 == 0 { (0..n).collect() } else { (0..n).rev().collect() };
        for k in order {
            let t = Instant::now();
            (variants[k].1)(&mut out);
            black_box(&out);
            if round >= warmup {
                times[k].push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let stats: Vec<(f64, f64, f64)> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            let q = |p: f64| t[((t.len() - 1) as f64 * p).round() as usize];
            (q(0.5), q(0.1), q(0.9))
        })
        .collect();
    println!("640×480 frame → [3, 224, 224] tensor, one core, {iters} rounds (ms)");
    println!("{:<26} {:>8} {:>8} {:>8} {:>10}", "variant", "median", "p10", "p90", "÷ yuyv fused");
    for (k, (name, _)) in variants.iter().enumerate() {
        let (m, lo, hi) = stats[k];
        println!("{name:<26} {m:>8.3} {lo:>8.3} {hi:>8.3} {:>10.2}", m / stats[0].0);
    }
}
