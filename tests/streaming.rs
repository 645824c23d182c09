//! The incremental window (frame projections cached per track + one step per result) against
//! the full-window temporal graph, over long sequences that include a track's start and end.

mod common;

use common::{model_dirs, Rng};
use smplcast::model::{HeadOutput, Streaming, TemporalHead, CENTRE, SEQ_LEN};
use smplcast::window::TrackWindow;

/// A smooth random sequence of `len` features of size `c`, elements of order `scale`.
fn sequence(len: usize, c: usize, scale: f32, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    let mut f: Vec<f32> = (0..c).map(|_| rng.next().abs() * 2.0).collect();
    (0..len)
        .map(|_| {
            for v in f.iter_mut() {
                *v = (*v + 0.2 * rng.next()).abs();
            }
            f.iter().map(|v| v * scale).collect()
        })
        .collect()
}

fn max_diff(a: &HeadOutput, b: &HeadOutput) -> f32 {
    let pairs = a.pose6d.iter().zip(&b.pose6d).chain(a.shape.iter().zip(&b.shape));
    pairs.chain(a.cam.iter().zip(&b.cam)).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// Streams `feats` through a TrackWindow; checks every result against the full-window graph on
/// the window the module documents (own feature repeated at the start and end, else t−8..=t+7).
fn check_stream(dir: &std::path::Path, feats: &[Vec<f32>]) -> f32 {
    let mut streaming =
        Streaming::load(&dir.join("temporal_frame.onnx"), &dir.join("temporal_step.onnx"), 1)
            .unwrap();
    let mut full = TemporalHead::load(&dir.join("temporal.onnx"), 1).unwrap();
    let mut window = TrackWindow::new();
    let mut ready = Vec::new();
    for (t, f) in feats.iter().enumerate() {
        let cache = streaming.project(f).unwrap().remove(0);
        ready.extend(window.push(t as u64, cache));
    }
    ready.extend(window.flush());
    assert_eq!(ready.len(), feats.len(), "one result per frame");
    let mut worst = 0f32;
    for (t, r) in ready.iter().enumerate() {
        assert_eq!(r.frame_id, t as u64);
        let stream = streaming.step(&[r.refs()]).unwrap().remove(0);
        let frames: Vec<&Vec<f32>> = if r.repeated {
            vec![&feats[t]; SEQ_LEN]
        } else {
            feats[t - CENTRE..t - CENTRE + SEQ_LEN].iter().collect()
        };
        let flat: Vec<f32> = frames.into_iter().flatten().copied().collect();
        let reference = full.run(&flat).unwrap().remove(0);
        let scale = reference.pose6d.iter().chain(&reference.shape).chain(&reference.cam);
        let scale = scale.fold(1f32, |m, v| m.max(v.abs()));
        let d = max_diff(&stream, &reference) / scale;
        assert!(d <= 1e-5, "{}: frame {t} (repeated: {}): diff {d}", dir.display(), r.repeated);
        worst = worst.max(d);
    }
    worst
}

#[test]
fn incremental_window_equals_full_window_graph() {
    for dir in model_dirs() {
        let c = TemporalHead::load(&dir.join("temporal.onnx"), 1).unwrap().feature_len();
        // Small scale: MoCA softmaxes are far from one-hot. Real scale: ResNet-like magnitudes.
        for (scale, seed) in [((c as f32).powf(-0.5), 1), (1.0, 2)] {
            let feats = sequence(70, c, scale, seed);
            let worst = check_stream(&dir, &feats);
            eprintln!("{}: feature scale {scale:.3}: max diff / scale {worst:.2e}", dir.display());
        }
        // Tracks shorter than a window: every frame is repeated-window.
        check_stream(&dir, &sequence(11, c, 1.0, 3));
    }
}

#[test]
fn batched_tracks_equal_each_alone() {
    for dir in model_dirs() {
        let (frame, step) = (dir.join("temporal_frame.onnx"), dir.join("temporal_step.onnx"));
        let mut one = Streaming::load(&frame, &step, 1).unwrap();
        let mut two = Streaming::load(&frame, &step, 2).unwrap();
        let c = one.dims().feat;
        let (a, b) = (sequence(20, c, 0.05, 4), sequence(20, c, 0.05, 5));
        let (mut wa, mut wb) = (TrackWindow::new(), TrackWindow::new());
        for t in 0..20 {
            let both: Vec<f32> = a[t].iter().chain(&b[t]).copied().collect();
            let mut caches = two.project(&both).unwrap();
            // Equal up to rounding: a batch of two may take other SIMD kernels (AVX-512 packs
            // differently from one row), which reorders sums (seen: 6e-8).
            let alone = one.project(&b[t]).unwrap().remove(0);
            let (x, y) = (&caches[1], &alone);
            let fields = [(&x.x, &y.x), (&x.theta, &y.theta), (&x.phi, &y.phi), (&x.fx, &y.fx)];
            let fields = fields.into_iter().chain([(&x.fm, &y.fm), (&x.rx, &y.rx), (&x.rm, &y.rm)]);
            let worst = fields
                .flat_map(|(u, v)| {
                    assert_eq!(u.len(), v.len());
                    u.iter().zip(v).map(|(p, q)| (p - q).abs())
                })
                .fold(0f32, f32::max);
            assert!(worst <= 1e-5, "frame {t}: batched projection differs from alone by {worst}");
            let cb = caches.pop().unwrap();
            let ca = caches.pop().unwrap();
            if let (Some(ra), Some(rb)) = (wa.push(t as u64, ca), wb.push(t as u64, cb)) {
                let together = two.step(&[ra.refs(), rb.refs()]).unwrap();
                for (k, r) in [ra, rb].iter().enumerate() {
                    let alone = one.step(&[r.refs()]).unwrap().remove(0);
                    assert!(max_diff(&together[k], &alone) <= 1e-5, "track {k} frame {t}");
                }
            }
        }
    }
}
