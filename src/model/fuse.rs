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
//!
//! [`residual_blocks`]: each block's end, `Dequantize(conv) + skip → Max 0 → QuantizeU8`,
//! becomes one [`ResidualU8`] that reads and writes each element once.

use anyhow::{ensure, Context};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::{BinMiniOp, TypedBinOp};
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::math::{Add, Max};
use tract_onnx::tract_core::ops::quant::{lookup_table, DequantizeLinearF32, QuantizeLinearU8};

use super::quantize::QuantizeU8;
use super::residual::{Dequantize, ResidualU8};

/// What [`all`] did: lookup tables wired, quantizes replaced, residual block ends fused.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fused {
    pub tables: usize,
    pub quantizers: usize,
    pub residuals: usize,
}

/// The passes, by the names `skip` takes.
pub const PASSES: [&str; 3] = ["tables", "quantizers", "residuals"];

/// All passes, in order: tables first (they take the quantizes they can), then the quantizes
/// (the residual pass takes those of the block ends). `skip`: a pass's name skips that pass,
/// any other value all of them, `None` none.
///
/// # Errors
/// As the passes.
pub fn all(model: &mut TypedModel, skip: Option<&str>) -> TractResult<Fused> {
    let skipped = |pass: &str| skip.is_some_and(|s| s == pass || !PASSES.contains(&s));
    let tables = if skipped("tables") { 0 } else { quantized_unary_chains(model)? };
    let quantizers = if skipped("quantizers") { 0 } else { vector_quantizers(model)? };
    let residuals = if skipped("residuals") { 0 } else { residual_blocks(model)? };
    Ok(Fused { tables, quantizers, residuals })
}

/// Replaces every `Max(Add(Dequantize(u8), skip), 0)`, with the quantize that reads it, by
/// one [`ResidualU8`]; returns how many. The skip is f32 or another dequantized u8.
///
/// # Errors
/// A tract failure while patching.
pub fn residual_blocks(model: &mut TypedModel) -> TractResult<usize> {
    let mut count = 0;
    // One at a time: each block's skip is the previous block's output, which the patch moves.
    while let Some((block, op)) = find_residual(model)? {
        let mut patch = TypedModelPatch::default();
        let inputs = [patch.tap_model(model, block.a)?, patch.tap_model(model, block.skip)?];
        let name = format!("{}.residual", model.node(block.max).name);
        let outputs = patch.wire_node(name, op.clone(), &inputs)?;
        if op.keep_f32 {
            patch.shunt_outside(model, OutletId::new(block.max, 0), outputs[0])?;
        }
        if let Some(quantize) = block.quantize {
            patch.shunt_outside(model, OutletId::new(quantize, 0), outputs[outputs.len() - 1])?;
        }
        patch.apply(model)?;
        count += 1;
    }
    Ok(count)
}

/// A block end [`residual_blocks`] fuses: the u8 conv output, the skip, the `Max` node and the
/// quantize reading it, if any.
struct BlockEnd {
    a: OutletId,
    skip: OutletId,
    max: usize,
    quantize: Option<usize>,
}

fn find_residual(model: &TypedModel) -> TractResult<Option<(BlockEnd, ResidualU8)>> {
    let outputs = model.output_outlets()?;
    for max in model.nodes() {
        if !is_bin_op::<Max>(max) || max.inputs.len() != 2 {
            continue;
        }
        let Some(&sum) = max.inputs.iter().find(|i| is_bin_op::<Add>(model.node(i.node))) else {
            continue;
        };
        let zero = max.inputs.iter().find(|i| **i != sum).map(|i| model.outlet_fact(*i));
        let is_zero = zero
            .transpose()?
            .and_then(|f| f.konst.as_ref())
            .is_some_and(|k| k.len() == 1 && k.cast_to_scalar::<f32>().is_ok_and(|v| v == 0.0));
        let add = model.node(sum.node);
        if !is_zero || add.outputs[0].successors.len() != 1 || add.inputs.len() != 2 {
            continue;
        }
        let (p, q) = (add.inputs[0], add.inputs[1]);
        let ((a, a_dq), skip, skip_dq) = match (dequantized(model, p)?, dequantized(model, q)?) {
            (Some(a), Some((skip, dq))) => (a, skip, Some(dq)),
            (Some(a), None) => (a, q, None),
            (None, Some(a)) => (a, p, None),
            (None, None) => continue,
        };
        let sum_fact = model.outlet_fact(sum)?;
        if model.outlet_fact(a)?.shape != sum_fact.shape
            || model.outlet_fact(skip)?.shape != sum_fact.shape
        {
            continue;
        }
        let readers = &max.outputs[0].successors;
        let quantize = readers
            .iter()
            .map(|r| model.node(r.node))
            .find_map(|n| n.op_as::<QuantizeU8>().map(|op| (n.id, op.clone())));
        let keep_f32 = readers.len() > usize::from(quantize.is_some())
            || outputs.contains(&OutletId::new(max.id, 0));
        let op = ResidualU8 {
            a: a_dq,
            skip: skip_dq,
            keep_f32,
            quantize: quantize.as_ref().map(|(_, op)| op.clone()),
        };
        let block = BlockEnd { a, skip, max: max.id, quantize: quantize.map(|(id, _)| id) };
        return Ok(Some((block, op)));
    }
    Ok(None)
}

fn is_bin_op<T: BinMiniOp>(node: &TypedNode) -> bool {
    node.op_as::<TypedBinOp>().is_some_and(|op| op.0.is::<T>())
}

/// The u8 input and parameters of a u8 → f32 dequantize read only at `outlet`.
fn dequantized(
    model: &TypedModel,
    outlet: OutletId,
) -> TractResult<Option<(OutletId, Dequantize)>> {
    let node = model.node(outlet.node);
    let Some(op) = node.op_as::<DequantizeLinearF32>() else { return Ok(None) };
    if model.outlet_fact(node.inputs[0])?.datum_type != u8::datum_type()
        || node.outputs[0].successors.len() != 1
    {
        return Ok(None);
    }
    Ok(Some((node.inputs[0], Dequantize { scale: op.scale, zero_point: op.zero_point })))
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
        // The outputs of 15 blocks (the 16th feeds the average pool), the max pool's and the
        // image's.
        assert_eq!(n.quantizers, 17);
        // Every block's end, the last one without a quantize.
        assert_eq!(n.residuals, 16);
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
