//! `ResidualU8`: the end of a bottleneck block of the int8 backbone in one pass.
//!
//! onnxruntime's quantiser keeps ResNet's residual stream in f32, so every block ends in
//! `DequantizeLinear(conv3) + skip → Max 0 → QuantizeLinear`, and the skip is the previous
//! block's f32 output or, in a downsampling block, a second `DequantizeLinear`. tract runs each
//! step as its own node over the whole tensor: about 26 bytes of memory traffic an element,
//! 10–12 ms of the backbone on the development machine (docs/performance.md). This op reads
//! the u8 conv output and the skip once, and writes the f32 sum (when anything still reads
//! it) and its quantized u8 copy (when a conv reads it): 10 bytes an element.
//!
//! It computes each step exactly as tract's ops do, in the same order — dequantize
//! `(x - zero_point) as f32 × scale`, one f32 addition, the maximum with 0, then
//! [`super::quantize::quantize`] — so the graph's output is bit-identical (tested in
//! `model::fuse`).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::quantize::{quantize, QuantizeU8};

/// tract's `DequantizeLinearF32` on u8: `(x - zero_point) as f32 × scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dequantize {
    pub scale: f32,
    pub zero_point: i32,
}

/// `max(dequantize(a) + skip, 0)`, where the skip is f32 or, with `skip`, dequantized u8;
/// outputs the f32 result when `keep_f32`, then its quantized u8 copy when `quantize`.
#[derive(Clone, Debug, PartialEq)]
pub struct ResidualU8 {
    pub a: Dequantize,
    pub skip: Option<Dequantize>,
    pub keep_f32: bool,
    pub quantize: Option<QuantizeU8>,
}

// Scales are never NaN (as for tract's own quantize ops).
impl Eq for ResidualU8 {}

/// Elements per step: small enough for the f32 block to stay in L1, large enough to vectorise.
const BLOCK: usize = 256;

/// The skip input of [`residual`].
pub enum Skip<'a> {
    F32(&'a [f32]),
    U8(&'a [u8], Dequantize),
}

/// The kernel: `ys[i] = max(dq(a[i]) + skip[i], 0)` block by block, each block quantized into
/// `qs` while it is in cache. `ys` may be `None` when only the u8 result is read.
pub fn residual(
    a: &[u8],
    dq: Dequantize,
    skip: &Skip,
    mut ys: Option<&mut [f32]>,
    mut qs: Option<(&mut [u8], &QuantizeU8)>,
) {
    let mut scratch = [0f32; BLOCK];
    for start in (0..a.len()).step_by(BLOCK) {
        let end = (start + BLOCK).min(a.len());
        let block = match ys.as_deref_mut() {
            Some(ys) => &mut ys[start..end],
            None => &mut scratch[..end - start],
        };
        let a = &a[start..end];
        match skip {
            Skip::F32(skip) => {
                for ((y, a), s) in block.iter_mut().zip(a).zip(&skip[start..end]) {
                    *y = relu(dequantize(*a, dq) + s);
                }
            }
            Skip::U8(skip, sq) => {
                for ((y, a), s) in block.iter_mut().zip(a).zip(&skip[start..end]) {
                    *y = relu(dequantize(*a, dq) + dequantize(*s, *sq));
                }
            }
        }
        if let Some((qs, q)) = qs.as_mut() {
            quantize(block, &mut qs[start..end], q.scale, q.zero_point);
        }
    }
}

#[inline(always)]
fn dequantize(x: u8, dq: Dequantize) -> f32 {
    (i32::from(x) - dq.zero_point) as f32 * dq.scale
}

#[inline(always)]
fn relu(x: f32) -> f32 {
    x.max(0.0)
}

impl Op for ResidualU8 {
    fn name(&self) -> StaticName {
        "ResidualU8".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "a: {:?} skip: {:?} f32 out: {} quantize: {:?}",
            self.a, self.skip, self.keep_f32, self.quantize
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for ResidualU8 {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let shape = inputs[0].shape();
        let a = inputs[0].try_as_plain_ram()?.as_slice::<u8>()?;
        let skip = match self.skip {
            Some(dq) => Skip::U8(inputs[1].try_as_plain_ram()?.as_slice::<u8>()?, dq),
            None => Skip::F32(inputs[1].try_as_plain_ram()?.as_slice::<f32>()?),
        };
        let n = a.len();
        let mut ys = if self.keep_f32 { vec![0f32; n] } else { Vec::new() };
        let mut qs = if self.quantize.is_some() { vec![0u8; n] } else { Vec::new() };
        residual(
            a,
            self.a,
            &skip,
            self.keep_f32.then_some(&mut ys[..]),
            self.quantize.as_ref().map(|q| (&mut qs[..], q)),
        );
        let mut outputs = tvec!();
        if self.keep_f32 {
            outputs.push(tract_ndarray::ArrayD::from_shape_vec(shape, ys)?.into_tvalue());
        }
        if self.quantize.is_some() {
            outputs.push(tract_ndarray::ArrayD::from_shape_vec(shape, qs)?.into_tvalue());
        }
        Ok(outputs)
    }

    op_out_of_plan!();
}

impl TypedOp for ResidualU8 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let skip_type = if self.skip.is_some() { u8::datum_type() } else { f32::datum_type() };
        ensure!(inputs[0].datum_type == u8::datum_type(), "ResidualU8 takes u8");
        ensure!(inputs[1].datum_type == skip_type, "ResidualU8's skip is {skip_type:?}");
        ensure!(inputs[0].shape == inputs[1].shape, "ResidualU8 does not broadcast");
        let shape = inputs[0].shape.clone();
        let mut facts = tvec!();
        if self.keep_f32 {
            facts.push(f32::datum_type().fact(shape.clone()));
        }
        if self.quantize.is_some() {
            facts.push(u8::datum_type().fact(shape));
        }
        Ok(facts)
    }

    // Element-wise: tract's layout passes may move axes through it.
    fn axes_mapping(
        &self,
        inputs: &[&TypedFact],
        outputs: &[&TypedFact],
    ) -> TractResult<AxesMapping> {
        AxesMapping::natural(inputs, outputs)
    }

    fn change_axes(
        &self,
        model: &TypedModel,
        node: &TypedNode,
        _io: InOut,
        change: &AxisOp,
    ) -> TractResult<Option<AxisChangeConsequence>> {
        Ok(Some(AxisChangeConsequence::new(model, node, None, change)))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel against the three steps written out, on lengths around the block size, with
    /// both kinds of skip.
    #[test]
    fn matches_the_steps_it_replaces() {
        let dq = Dequantize { scale: 0.071, zero_point: 3 };
        let sq = Dequantize { scale: 0.17, zero_point: 200 };
        let q = QuantizeU8 { scale: 1.0 / 0.148, zero_point: 0 };
        for n in [0, 1, 255, 256, 257, 1000] {
            let a: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
            let s8: Vec<u8> = (0..n).map(|i| (i * 101 % 256) as u8).collect();
            let s32: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 9.0).collect();
            for skip in [Skip::F32(&s32), Skip::U8(&s8, sq)] {
                let want: Vec<f32> = (0..n)
                    .map(|i| {
                        let s = match &skip {
                            Skip::F32(s) => s[i],
                            Skip::U8(s, sq) => (i32::from(s[i]) - sq.zero_point) as f32 * sq.scale,
                        };
                        ((i32::from(a[i]) - dq.zero_point) as f32 * dq.scale + s).max(0.0)
                    })
                    .collect();
                let mut want_q = vec![0u8; n];
                quantize(&want, &mut want_q, q.scale, q.zero_point);
                let (mut ys, mut qs) = (vec![f32::NAN; n], vec![7u8; n]);
                residual(&a, dq, &skip, Some(&mut ys), Some((&mut qs, &q)));
                assert_eq!(ys, want, "n {n}");
                assert_eq!(qs, want_q, "n {n}");
                let mut only_q = vec![7u8; n];
                residual(&a, dq, &skip, None, Some((&mut only_q, &q)));
                assert_eq!(only_q, want_q, "n {n}, u8 output only");
                // Both sides of the ReLU are exercised.
                assert!(n < 256 || want.iter().any(|y| *y > 0.0) && want.contains(&0.0));
            }
        }
    }
}
