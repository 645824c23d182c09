//! Camera images in the layouts sources deliver, and the fused sampler that turns a crop of any
//! of them into the backbone's input in one pass: colour conversion, crop, bilinear resize and
//! ImageNet normalisation, reading only the source pixels the 224 × 224 output needs.
//!
//! Layouts (V4L2 names): `RGB3` packed RGB24; `GREY` 8-bit luma; `YUYV` 4:2:2 packed
//! (Y0 U Y1 V per two pixels); `NV12` 4:2:0 (a Y plane, then an interleaved UV plane at half
//! size); `I420` 4:2:0 planar (a Y plane, then the U plane and the V plane, each ⌈w/2⌉ × ⌈h/2⌉
//! with half the Y stride, rounded up: GStreamer's I420, what software H.264 decoders output).
//! MJPEG is decoded to RGB24 by the source. YUV is converted as ITU-R BT.601 with
//! limited range (Y 16–235, Cb/Cr 16–240), what USB webcams send, and what OpenCV's
//! `COLOR_YUV2RGB_YUYV`/`_NV12`/`_I420` do; GREY is full-range luma (R = G = B = Y).
//! Odd widths and heights are allowed: the last column of a YUYV row uses its pair's chroma,
//! and NV12's chroma plane is ⌈w/2⌉ × ⌈h/2⌉.

use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// How the bytes of an [`Image`] are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    Rgb24,
    Grey,
    Yuyv,
    Nv12,
    I420,
}

impl PixelFormat {
    /// Bytes per row without padding.
    pub fn min_stride(self, width: u32) -> usize {
        let w = width as usize;
        match self {
            PixelFormat::Rgb24 => 3 * w,
            PixelFormat::Grey | PixelFormat::Nv12 | PixelFormat::I420 => w,
            PixelFormat::Yuyv => 4 * w.div_ceil(2),
        }
    }

    /// Bytes of a whole image with row stride `stride`.
    pub fn image_len(self, width: u32, height: u32, stride: usize) -> usize {
        let h = height as usize;
        match self {
            PixelFormat::Nv12 => {
                stride * h + stride.max(2 * (width as usize).div_ceil(2)) * h.div_ceil(2)
            }
            PixelFormat::I420 => stride * h + 2 * stride.div_ceil(2) * h.div_ceil(2),
            _ => stride * h,
        }
    }
}

/// An image: dimensions, layout, row stride (bytes, of the Y plane for NV12, whose UV plane
/// follows at `stride × height` with the same stride, and for I420, whose U and V planes
/// follow with stride `⌈stride/2⌉`) and the bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    pub data: Vec<u8>,
}

/// An image whose bytes do not fit its declared layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{format:?} {width}×{height} with stride {stride} needs {needed} bytes, got {got}")]
pub struct LayoutError {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    pub needed: usize,
    pub got: usize,
}

/// A frame that does not decode to an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The decoder's own complaint about the bytes.
    #[error("corrupt {kind}: {detail}")]
    Corrupt { kind: &'static str, detail: String },
    #[error("{0} without a header")]
    NoHeader(&'static str),
    #[error("{kind} of {width}×{height} is too large")]
    TooLarge { kind: &'static str, width: usize, height: usize },
    #[error("{kind} decoded to {layout}, which smplcast does not take")]
    Unsupported { kind: &'static str, layout: String },
    #[error("truncated {kind}: {source}")]
    Truncated { kind: &'static str, source: LayoutError },
}

impl Image {
    /// Packed RGB24 without padding.
    pub fn rgb24(width: u32, height: u32, data: Vec<u8>) -> Self {
        Image { format: PixelFormat::Rgb24, width, height, stride: 3 * width as usize, data }
    }

    /// Checks that `data` holds the whole layout (a driver may hand over a short buffer).
    ///
    /// # Errors
    /// [`LayoutError`] when the stride is too small or the data too short.
    pub fn new(
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: usize,
        data: Vec<u8>,
    ) -> Result<Self, LayoutError> {
        let needed = format.image_len(width, height, stride);
        if stride < format.min_stride(width) || data.len() < needed {
            return Err(LayoutError { format, width, height, stride, needed, got: data.len() });
        }
        Ok(Image { format, width, height, stride, data })
    }

    /// The whole image as packed RGB24 (rounded, clamped): the reference the fused sampler is
    /// tested against, and a convenience for tools.
    pub fn to_rgb24(&self) -> Vec<u8> {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut out = Vec::with_capacity(w * h * 3);
        with_reader(self, |r| {
            for y in 0..h {
                for x in 0..w {
                    out.extend(r.rgb(x, y).map(|v| v.round().clamp(0.0, 255.0) as u8));
                }
            }
        });
        out
    }
}

/// RGB of pixel (x, y), in range, as f32 in 0..=255.
trait Reader {
    fn rgb(&self, x: usize, y: usize) -> [f32; 3];

    /// The bilinear blend of the four taps of `tx` × `ty` (a weight 0 tap is outside the image
    /// and black). Converts every tap, then blends.
    #[inline(always)]
    fn blend(&self, tx: &Tap, ty: &Tap) -> [f32; 3] {
        let mut acc = [0f32; 3];
        for (y, wy) in [(ty.i0, ty.w0), (ty.i1, ty.w1)] {
            if wy == 0.0 {
                continue;
            }
            for (x, wx) in [(tx.i0, tx.w0), (tx.i1, tx.w1)] {
                if wx == 0.0 {
                    continue;
                }
                let p = self.rgb(x, y);
                let w = wx * wy;
                acc[0] += p[0] * w;
                acc[1] += p[1] * w;
                acc[2] += p[2] * w;
            }
        }
        acc
    }
}

/// For Y'CbCr layouts: the bilinear blend of the four taps' Y, Cb and Cr, converted once (the
/// conversion is affine, so this equals converting each tap and blending, except where a tap
/// is out of gamut and gets clamped). Taps outside the image are black: the blend of the
/// inside taps, scaled by their total weight.
#[inline(always)]
fn blend_yuv(tx: &Tap, ty: &Tap, yuv_at: impl Fn(usize, usize) -> [f32; 3]) -> [f32; 3] {
    let mut acc = [0f32; 3];
    let mut total = 0.0;
    for (y, wy) in [(ty.i0, ty.w0), (ty.i1, ty.w1)] {
        for (x, wx) in [(tx.i0, tx.w0), (tx.i1, tx.w1)] {
            let w = wx * wy;
            let p = yuv_at(x, y);
            acc[0] += p[0] * w;
            acc[1] += p[1] * w;
            acc[2] += p[2] * w;
            total += w;
        }
    }
    if total == 0.0 {
        return [0.0; 3];
    }
    let inv = 1.0 / total;
    yuv_f32(acc[0] * inv, acc[1] * inv, acc[2] * inv).map(|v| v * total)
}

struct Rgb24<'a>(&'a [u8], usize);
struct Grey<'a>(&'a [u8], usize);
struct Yuyv<'a>(&'a [u8], usize);
struct Nv12<'a> {
    y: &'a [u8],
    uv: &'a [u8],
    stride: usize,
}
struct I420<'a> {
    y: &'a [u8],
    u: &'a [u8],
    v: &'a [u8],
    stride: usize,
    chroma_stride: usize,
}

impl Reader for Rgb24<'_> {
    #[inline(always)]
    fn rgb(&self, x: usize, y: usize) -> [f32; 3] {
        let i = y * self.1 + 3 * x;
        [f32::from(self.0[i]), f32::from(self.0[i + 1]), f32::from(self.0[i + 2])]
    }
}

impl Reader for Grey<'_> {
    #[inline(always)]
    fn rgb(&self, x: usize, y: usize) -> [f32; 3] {
        [f32::from(self.0[y * self.1 + x]); 3]
    }
}

/// BT.601 limited range Y'CbCr → R'G'B' (0..=255). Footroom (Y < 16) reads as black luma, as
/// in OpenCV.
#[inline(always)]
fn yuv_f32(y: f32, u: f32, v: f32) -> [f32; 3] {
    let c = 1.164_383 * (y - 16.0).max(0.0);
    let (d, e) = (u - 128.0, v - 128.0);
    [
        (c + 1.596_027 * e).clamp(0.0, 255.0),
        (c - 0.391_762 * d - 0.812_968 * e).clamp(0.0, 255.0),
        (c + 2.017_232 * d).clamp(0.0, 255.0),
    ]
}

/// A Y'CbCr layout: the raw Y, Cb and Cr of pixel (x, y), in range.
trait YuvLayout {
    fn raw(&self, x: usize, y: usize) -> [f32; 3];
}

impl YuvLayout for Yuyv<'_> {
    #[inline(always)]
    fn raw(&self, x: usize, y: usize) -> [f32; 3] {
        let pair = y * self.1 + 4 * (x / 2);
        [self.0[pair + 2 * (x % 2)], self.0[pair + 1], self.0[pair + 3]].map(f32::from)
    }
}

impl YuvLayout for Nv12<'_> {
    #[inline(always)]
    fn raw(&self, x: usize, y: usize) -> [f32; 3] {
        let c = (y / 2) * self.stride + 2 * (x / 2);
        [self.y[y * self.stride + x], self.uv[c], self.uv[c + 1]].map(f32::from)
    }
}

impl YuvLayout for I420<'_> {
    #[inline(always)]
    fn raw(&self, x: usize, y: usize) -> [f32; 3] {
        let c = (y / 2) * self.chroma_stride + x / 2;
        [self.y[y * self.stride + x], self.u[c], self.v[c]].map(f32::from)
    }
}

/// Reads a [`YuvLayout`] as RGB; blends in Y'CbCr ([`blend_yuv`]).
struct Yuv<L>(L);

impl<L: YuvLayout> Reader for Yuv<L> {
    #[inline(always)]
    fn rgb(&self, x: usize, y: usize) -> [f32; 3] {
        let [y, u, v] = self.0.raw(x, y);
        yuv_f32(y, u, v)
    }

    #[inline(always)]
    fn blend(&self, tx: &Tap, ty: &Tap) -> [f32; 3] {
        blend_yuv(tx, ty, |x, y| self.0.raw(x, y))
    }
}

/// Calls `f` with the reader of `image`'s layout (monomorphised per layout: the sampling loops
/// inline the pixel access).
fn with_reader<R>(image: &Image, f: impl FnOnce(&dyn ReaderDispatch) -> R) -> R {
    let (d, s) = (&image.data[..], image.stride);
    match image.format {
        PixelFormat::Rgb24 => f(&Rgb24(d, s)),
        PixelFormat::Grey => f(&Grey(d, s)),
        PixelFormat::Yuyv => f(&Yuv(Yuyv(d, s))),
        PixelFormat::Nv12 => {
            let (y, uv) = d.split_at(s * image.height as usize);
            f(&Yuv(Nv12 { y, uv, stride: s }))
        }
        PixelFormat::I420 => {
            let (y, chroma) = d.split_at(s * image.height as usize);
            let chroma_stride = s.div_ceil(2);
            let (u, v) = chroma.split_at(chroma_stride * (image.height as usize).div_ceil(2));
            f(&Yuv(I420 { y, u, v, stride: s, chroma_stride }))
        }
    }
}

/// Object-safe face of [`Reader`] for [`with_reader`]; the hot loop goes through
/// [`ReaderDispatch::sample`], which is generic inside.
trait ReaderDispatch {
    fn rgb(&self, x: usize, y: usize) -> [f32; 3];
    fn sample(&self, plan: &Plan, out: &mut [f32]);
}

impl<T: Reader> ReaderDispatch for T {
    fn rgb(&self, x: usize, y: usize) -> [f32; 3] {
        Reader::rgb(self, x, y)
    }

    fn sample(&self, plan: &Plan, out: &mut [f32]) {
        sample(self, plan, out);
    }
}

/// One output coordinate's two source taps: indices (clamped into the image) and weights
/// (0 for a tap outside the image, which therefore reads as black).
#[derive(Clone, Copy, Debug)]
struct Tap {
    i0: usize,
    i1: usize,
    w0: f32,
    w1: f32,
}

fn taps(origin: f32, step: f32, n: usize, len: usize) -> Vec<Tap> {
    (0..n)
        .map(|i| {
            let s = origin + (i as f32 + 0.5) * step - 0.5;
            let f = s.floor();
            let (a, frac) = (f as isize, s - f);
            let inside = |k: isize| k >= 0 && (k as usize) < len;
            let clamp = |k: isize| k.clamp(0, len as isize - 1) as usize;
            Tap {
                i0: clamp(a),
                i1: clamp(a + 1),
                w0: if inside(a) { 1.0 - frac } else { 0.0 },
                w1: if inside(a + 1) { frac } else { 0.0 },
            }
        })
        .collect()
}

/// Where each output pixel samples, and the normalisation.
struct Plan {
    xs: Vec<Tap>,
    ys: Vec<Tap>,
    /// Per channel: out = v · scale + offset (v in 0..=255).
    scale: [f32; 3],
    offset: [f32; 3],
}

#[inline(always)]
fn sample<R: Reader + ?Sized>(r: &R, plan: &Plan, out: &mut [f32]) {
    let n = plan.xs.len();
    let plane = n * plan.ys.len();
    let (red, rest) = out.split_at_mut(plane);
    let (green, blue) = rest.split_at_mut(plane);
    for (oy, ty) in plan.ys.iter().enumerate() {
        let row = oy * n;
        for (ox, tx) in plan.xs.iter().enumerate() {
            let acc = r.blend(tx, ty);
            red[row + ox] = acc[0] * plan.scale[0] + plan.offset[0];
            green[row + ox] = acc[1] * plan.scale[1] + plan.offset[1];
            blue[row + ox] = acc[2] * plan.scale[2] + plan.offset[2];
        }
    }
}

/// Samples the square crop centred at (`cx`, `cy`) with side `side` (image pixels) of `image`
/// into `out`: [3, `size`, `size`] f32, planar RGB, `(v / 255 − mean) / std` per channel.
/// Bilinear, pixel centres aligned; outside the image is black.
pub fn crop_normalised(
    image: &Image,
    (cx, cy, side): (f32, f32, f32),
    size: usize,
    mean: [f32; 3],
    std: [f32; 3],
    out: &mut Vec<f32>,
) {
    let step = side / size as f32;
    let grid =
        Grid { origin: [cx - side / 2.0, cy - side / 2.0], step: [step; 2], size: [size, size] };
    sample_grid(image, grid, mean, std, out);
}

/// A rectangle of output pixels laid over an image: output pixel (i, j) covers the image from
/// `origin + (i · step[0], j · step[1])` to one step further (image pixels).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    pub origin: [f32; 2],
    pub step: [f32; 2],
    /// Output width and height.
    pub size: [usize; 2],
}

/// Samples `grid` of `image` into `out`: [3, height, width] f32, planar RGB,
/// `(v / 255 − mean) / std` per channel. Bilinear, pixel centres aligned; outside the image is
/// black.
pub fn sample_grid(image: &Image, grid: Grid, mean: [f32; 3], std: [f32; 3], out: &mut Vec<f32>) {
    let [w, h] = grid.size;
    out.clear();
    out.resize(3 * w * h, 0.0);
    let plan = Plan {
        xs: taps(grid.origin[0], grid.step[0], w, image.width as usize),
        ys: taps(grid.origin[1], grid.step[1], h, image.height as usize),
        scale: std.map(|s| 1.0 / (255.0 * s)),
        offset: [0, 1, 2].map(|c| -mean[c] / std[c]),
    };
    with_reader(image, |r| r.sample(&plan, out));
}

/// Decodes a JPEG (or an MJPEG frame: zune-jpeg supplies the default Huffman tables MJPEG
/// omits) to RGB24, or GREY for a grey JPEG.
///
/// # Errors
/// [`DecodeError`] for a corrupt or truncated frame.
pub fn decode_jpeg(bytes: &[u8]) -> Result<Image, DecodeError> {
    const KIND: &str = "JPEG";
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut d = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let pixels =
        d.decode().map_err(|e| DecodeError::Corrupt { kind: KIND, detail: format!("{e:?}") })?;
    let (width, height) = d.dimensions().ok_or(DecodeError::NoHeader(KIND))?;
    let too_large = || DecodeError::TooLarge { kind: KIND, width, height };
    let (w, h) = (
        u32::try_from(width).map_err(|_| too_large())?,
        u32::try_from(height).map_err(|_| too_large())?,
    );
    match d.output_colorspace() {
        Some(ColorSpace::RGB) => Image::new(PixelFormat::Rgb24, w, h, 3 * w as usize, pixels),
        Some(ColorSpace::Luma) => Image::new(PixelFormat::Grey, w, h, w as usize, pixels),
        other => return Err(DecodeError::Unsupported { kind: KIND, layout: format!("{other:?}") }),
    }
    .map_err(|source| DecodeError::Truncated { kind: KIND, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference conversions by OpenCV 4.13 (`cv2.cvtColor`), written by
    /// models/gen_pixel_vectors.py into tests/data/pixels.json.
    #[derive(serde::Deserialize)]
    struct Vectors {
        yuyv: Case,
        nv12: Case,
        i420: Case,
    }

    #[derive(serde::Deserialize)]
    struct Case {
        width: u32,
        height: u32,
        input: Vec<u8>,
        rgb: Vec<u8>,
    }

    fn vectors() -> Vectors {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pixels.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn max_diff(a: &[u8], b: &[u8]) -> u8 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0)
    }

    #[test]
    fn yuyv_nv12_and_i420_match_opencv() {
        let v = vectors();
        for (format, case) in [
            (PixelFormat::Yuyv, &v.yuyv),
            (PixelFormat::Nv12, &v.nv12),
            (PixelFormat::I420, &v.i420),
        ] {
            let stride = format.min_stride(case.width);
            let img =
                Image::new(format, case.width, case.height, stride, case.input.clone()).unwrap();
            let d = max_diff(&img.to_rgb24(), &case.rgb);
            assert!(d <= 1, "{format:?}: off by {d} from OpenCV");
        }
    }

    #[test]
    fn odd_widths_and_padded_strides_read_the_same_pixels() {
        let v = vectors();
        for (format, case) in [
            (PixelFormat::Yuyv, &v.yuyv),
            (PixelFormat::Nv12, &v.nv12),
            (PixelFormat::I420, &v.i420),
        ] {
            let full = Image::new(
                format,
                case.width,
                case.height,
                format.min_stride(case.width),
                case.input.clone(),
            )
            .unwrap();
            let rgb = full.to_rgb24();
            // The same bytes seen as an image one column and one row narrower (odd sizes).
            let (w, h) = (case.width - 1, case.height - 1);
            let mut data = case.input.clone();
            if matches!(format, PixelFormat::Nv12 | PixelFormat::I420) {
                // The chroma planes move up by one row of Y (12 rows and 11 have the same
                // number of chroma rows).
                let (s, hh) = (full.stride, case.height as usize);
                let chroma = data[s * hh..].to_vec();
                data.truncate(s * h as usize);
                data.extend(chroma);
            }
            let odd = Image::new(format, w, h, full.stride, data).unwrap();
            let got = odd.to_rgb24();
            for y in 0..h as usize {
                for x in 0..w as usize {
                    let (a, b) = ((y * w as usize + x) * 3, (y * case.width as usize + x) * 3);
                    assert_eq!(got[a..a + 3], rgb[b..b + 3], "{format:?} ({x},{y})");
                }
            }
        }
    }

    #[test]
    fn short_buffers_are_refused() {
        let e = Image::new(PixelFormat::Yuyv, 640, 480, 1280, vec![0; 1280 * 479]).unwrap_err();
        assert_eq!((e.needed, e.got), (1280 * 480, 1280 * 479));
        assert!(Image::new(PixelFormat::Nv12, 5, 3, 5, vec![0; 15 + 6 * 2]).is_ok());
        assert!(Image::new(PixelFormat::I420, 5, 3, 5, vec![0; 15 + 2 * 3 * 2]).is_ok());
        assert!(Image::new(PixelFormat::I420, 5, 3, 5, vec![0; 15 + 2 * 3 * 2 - 1]).is_err());
        assert!(Image::new(PixelFormat::Rgb24, 4, 4, 11, vec![0; 44]).is_err(), "stride < 3w");
    }

    /// In-gamut Y'CbCr (camera-like: Y 60–200, chroma within ±20 of neutral) of `w` × `h`,
    /// as YUYV, NV12 and I420, from a deterministic pseudo-random sequence.
    fn in_gamut(w: u32, h: u32) -> (Image, Image, Image) {
        let mut state = 12345u32;
        let mut next = |lo: u32, span: u32| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (lo + (state >> 16) % span) as u8
        };
        let (wu, hu) = (w as usize, h as usize);
        let luma: Vec<u8> = (0..wu * hu).map(|_| next(60, 141)).collect();
        let chroma: Vec<u8> = (0..wu * hu).map(|_| next(108, 41)).collect();
        let mut yuyv = Vec::new();
        for y in 0..hu {
            for x in (0..wu).step_by(2) {
                let i = y * wu + x;
                yuyv.extend([luma[i], chroma[i], luma[i + 1], chroma[i + 1]]);
            }
        }
        let mut nv12 = luma.clone();
        for y in (0..hu).step_by(2) {
            nv12.extend_from_slice(&chroma[y * wu..(y + 1) * wu]);
        }
        // The same chroma samples, planar: U from the even, V from the odd positions.
        let mut i420 = luma.clone();
        for plane in 0..2 {
            for y in (0..hu).step_by(2) {
                i420.extend(chroma[y * wu..(y + 1) * wu].iter().skip(plane).step_by(2));
            }
        }
        (
            Image::new(PixelFormat::Yuyv, w, h, 2 * wu, yuyv).unwrap(),
            Image::new(PixelFormat::Nv12, w, h, wu, nv12).unwrap(),
            Image::new(PixelFormat::I420, w, h, wu, i420).unwrap(),
        )
    }

    #[test]
    fn fused_sampling_equals_converting_first() {
        // Sampling a YUV layout directly (blend Y'CbCr, convert once) equals sampling its RGB24
        // conversion, up to that conversion's rounding (≤ 0.5 level), for in-gamut colours:
        // any crop, inside or overlapping the border.
        let (yuyv, nv12, i420) = in_gamut(16, 12);
        assert_eq!(i420.to_rgb24(), nv12.to_rgb24(), "the same samples, planar and interleaved");
        for img in [yuyv, nv12, i420] {
            let rgb = Image::rgb24(img.width, img.height, img.to_rgb24());
            for crop in [(8.0, 6.0, 10.0), (1.0, 2.5, 9.0), (14.5, 1.0, 5.0), (8.0, 6.0, 30.0)] {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                crop_normalised(&img, crop, 8, [0.0; 3], [1.0; 3], &mut a);
                crop_normalised(&rgb, crop, 8, [0.0; 3], [1.0; 3], &mut b);
                let d = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
                assert!(d * 255.0 <= 0.5 + 1e-3, "{:?} {crop:?}: {}", img.format, d * 255.0);
            }
        }
    }

    #[test]
    fn grey_is_full_range_luma() {
        let img = Image::new(PixelFormat::Grey, 3, 1, 3, vec![0, 128, 255]).unwrap();
        assert_eq!(img.to_rgb24(), [0, 0, 0, 128, 128, 128, 255, 255, 255]);
    }
}
