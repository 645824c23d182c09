//! Graph passes of our own, written with tract's public API and run between tract's declutter
//! and its code generation.
//!
//! [`quantized_unary_chains`]: the int8 graphs from `models/convert.py` (onnxruntime's
//! QOperator export with symmetric u8 activations, which tract's fast integer matmuls need)
//! leave every ReLU between two quantized convs in float: `QLinearConv → DequantizeLinear →
//! Relu → QuantizeLinear → QLinearConv`. tract turns such a chain into a 256-entry lookup
//! table only when every op in it is unary, but after declutter a ReLU is a binary `Max`
//! with a constant 0, so the chain stays: a dequantize, a max and a scalar quantize over every
//! activation (a quarter of the int8 backbone's time, docs/performance.md). This pass does
//! the same fusion for chains whose ops take one variable input and scalar constants: it runs
//! the chain itself on all 256 u8 values and wires tract's `LookupTable` in its place, so the
//! result is bit-identical by construction (and tested).
//!
//! [`vector_quantizers`]: the quantizes left after that (the residual stream's, after each
//! block's `Add` and ReLU) become our [`QuantizeU8`], the same function as a vectorised loop.

use anyhow::{ensure, Context};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::quant::{lookup_table, DequantizeLinearF32, QuantizeLinearU8};

use super::quantize::QuantizeU8;

/// What [`all`] did: lookup tables wired, quantizes replaced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fused {
    pub tables: usize,
    pub quantizers: usize,
}

/// Both passes, in order (tables first: they take the quantizes they can). `skip`: `tables` or
/// `quantizers` skips that pass, any other value both, `None` neither.
///
/// # Errors
/// As the passes.
pub fn all(model: &mut TypedModel, skip: Option<&str>) -> TractResult<Fused> {
    let skipped =
        |pass: &str| skip.is_some_and(|s| s == pass || !["tables", "quantizers"].contains(&s));
    let tables = if skipped("tables") { 0 } else { quantized_unary_chains(model)? };
    let quantizers = if skipped("quantizers") { 0 } else { vector_quantizers(model)? };
    Ok(Fused { tables, quantizers })
}

/// Replaces every f32 → u8 `QuantizeLinear` by [`QuantizeU8`]; returns how many.
///
/// # Errors
/// A tract failure while patching.
pub fn vector_quantizers(model: &mut TypedModel) -> TractResult<usize> {
    let mut found = Vec::new();
    for node in model.nodes() {
        let Some(op) = node.op_as::<ElementWiseOp>() else { continue };
        let Some(q) = op.0.downcast_ref::<QuantizeLinearU8>() else { continue };
        if model.outlet_fact(node.inputs[0])?.datum_type == f32::datum_type() {
            found.push((node.id, QuantizeU8 { scale: q.scale, zero_point: q.zero_point }));
        }
    }
    for (id, op) in &found {
        let node = model.node(*id);
        let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, op.clone())?;
        patch.apply(model)?;
    }
    Ok(found.len())
}

/// Replaces every `DequantizeLinear (u8) → unary ops → QuantizeLinear (u8)` chain by a lookup
/// table; returns how many.
///
/// # Errors
/// A tract failure while evaluating or patching (the model is then unchanged or partly fused,
/// and still correct).
pub fn quantized_unary_chains(model: &mut TypedModel) -> TractResult<usize> {
    let chains = find_chains(model)?;
    for chain in &chains {
        let table = table(model, chain)?;
        let mut patch = TypedModelPatch::default();
        let dq = model.node(chain[0]);
        let q = model.node(*chain.last().unwrap_or(&chain[0]));
        let input = patch.tap_model(model, dq.inputs[0])?;
        let lut = lookup_table(tract_linalg::routines::lut_u8(&table)?);
        let wire = patch.wire_node(format!("{}.lut", q.name), lut, &[input])?[0];
        patch.shunt_outside(model, OutletId::new(q.id, 0), wire)?;
        patch.apply(model)?;
    }
    Ok(chains.len())
}

/// Node ids of each chain: the dequantize, the ops between, the quantize.
fn find_chains(model: &TypedModel) -> TractResult<Vec<Vec<usize>>> {
    let mut chains = Vec::new();
    for dq in model.nodes() {
        if dq.op_as::<DequantizeLinearF32>().is_none()
            || model.outlet_fact(dq.inputs[0])?.datum_type != u8::datum_type()
        {
            continue;
        }
        let mut chain = vec![dq.id];
        let mut current = dq;
        while let Some(next) = model.single_succ(current.id)? {
            if is_quantize_u8(next) {
                if chain.len() > 1 {
                    chain.push(next.id);
                    chains.push(chain);
                }
                break;
            }
            if !is_unary_with_scalar_consts(model, next, current.id)? {
                break;
            }
            chain.push(next.id);
            current = next;
        }
    }
    Ok(chains)
}

fn is_quantize_u8(node: &TypedNode) -> bool {
    node.op_as::<ElementWiseOp>()
        .is_some_and(|op| op.0.downcast_ref::<QuantizeLinearU8>().is_some())
}

/// One input from `from`, every other input a constant of one element, output shaped like the
/// input: then the node maps each value on its own.
fn is_unary_with_scalar_consts(
    model: &TypedModel,
    node: &TypedNode,
    from: usize,
) -> TractResult<bool> {
    let mut variable = 0;
    for input in &node.inputs {
        let fact = model.outlet_fact(*input)?;
        if input.node == from {
            variable += 1;
        } else if fact.konst.as_ref().is_none_or(|k| k.len() != 1) {
            return Ok(false);
        }
    }
    let input = model.outlet_fact(OutletId::new(from, 0))?;
    let output = model.outlet_fact(OutletId::new(node.id, 0))?;
    Ok(variable == 1 && node.outputs.len() == 1 && output.shape == input.shape)
}

/// The chain evaluated on every u8 value, with the chain's own ops.
fn table(model: &TypedModel, chain: &[usize]) -> TractResult<Vec<u8>> {
    let mut adhoc = TypedModel::default();
    let mut wire = adhoc.add_source("values", u8::fact([256]))?;
    for (k, &id) in chain.iter().enumerate() {
        let node = model.node(id);
        let mut inputs = TVec::new();
        for (i, input) in node.inputs.iter().enumerate() {
            if k == 0 || input.node == chain[k - 1] {
                inputs.push(wire);
            } else {
                let konst = model.outlet_fact(*input)?.konst.clone().context("a constant")?;
                // Scalars of the chain's rank broadcast against the [256] values.
                let scalar = konst.into_tensor().into_shape(&[1])?;
                inputs.push(adhoc.add_const(format!("{}.{i}", node.name), scalar)?);
            }
        }
        wire = adhoc.wire_node(&node.name, node.op.clone(), &inputs)?[0];
    }
    adhoc.select_output_outlets(&[wire])?;
    let values = tensor1(&(0u8..=255).collect::<Vec<u8>>());
    let out = adhoc.into_runnable()?.run(tvec!(values.into_tvalue()))?.remove(0);
    let table = out.to_plain_array_view::<u8>()?.iter().copied().collect::<Vec<u8>>();
    ensure!(table.len() == 256, "a lookup table of {} entries", table.len());
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(fuse: bool) -> (Arc<TypedRunnableModel>, Fused) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/fixtures/narrow/backbone.int8.onnx");
        let mut model = tract_onnx::onnx()
            .model_for_path(path)
            .unwrap()
            .with_input_fact(0, f32::fact([1, 3, 224, 224]).into())
            .unwrap()
            .into_typed()
            .unwrap()
            .into_decluttered()
            .unwrap();
        let fused = all(&mut model, (!fuse).then_some("all")).unwrap();
        (model.into_optimized().unwrap().into_runnable().unwrap(), fused)
    }

    /// Every ReLU between quantized convs becomes a table, every other quantize our vectorised
    /// one, and the output is bit-identical.
    #[test]
    fn fused_graph_gives_identical_output() {
        let (plain, _) = load(false);
        let (fused, n) = load(true);
        // ResNet-50: the two inner ReLUs of each of the 16 bottleneck blocks. (The stem's ReLU
        // reaches its quantize through the max pool, which is not element-wise.)
        assert_eq!(n.tables, 32);
        // The 16 residual outputs and the image's quantize.
        assert_eq!(n.quantizers, 17);
        let image: Vec<f32> =
            (0..3 * 224 * 224).map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0).collect();
        let input = || tvec!(Tensor::from_shape(&[1, 3, 224, 224], &image).unwrap().into_tvalue());
        let a = plain.run(input()).unwrap().remove(0);
        let b = fused.run(input()).unwrap().remove(0);
        let f = |v: &TValue| {
            v.to_plain_array_view::<f32>().unwrap().iter().copied().collect::<Vec<f32>>()
        };
        let (a, b) = (f(&a), f(&b));
        assert_eq!(a, b);
        assert!(a.iter().any(|v| *v != 0.0));
    }
}
