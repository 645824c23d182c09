//! One ONNX graph loaded with tract, checked against the interface smplcast expects.
//!
//! Loading reads the file, checks the declared inputs (names, ranks, sizes) before tract sees the
//! graph, fixes the batch size, optimises, then checks the outputs tract infers. Every failure
//! names the file and the expected interface, so a wrong, truncated or foreign file is reported
//! at start-up rather than as a shape error in the frame loop.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::Path;

use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::prelude::*;

use super::{Error, Result};

/// Time per op kind over profiled runs, and how many nodes ran.
pub type OpProfile = BTreeMap<String, (std::time::Duration, u64)>;

/// One dimension of a graph interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dim {
    /// The batch axis: declared symbolic (`N`) or with the loaded batch size.
    Batch,
    /// A size the architecture fixes (3 colour channels, 224 pixels, 16 frames, 144 numbers).
    Fixed(usize),
    /// A width that depends on the model variant, bound on first sight and checked after:
    /// `C` feature size, `I` MoCA projection size, `H` HAFI hidden size.
    Var(char),
}

/// A named input or output with its dimensions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Port {
    pub name: &'static str,
    pub dims: &'static [Dim],
}

/// The inputs and outputs a graph must have, in order.
#[derive(Debug)]
pub(crate) struct Interface {
    pub graph: &'static str,
    pub inputs: &'static [Port],
    pub outputs: &'static [Port],
}

/// Sizes of `Dim::Var` dimensions, bound while checking one or more graphs of a model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Widths(BTreeMap<char, usize>);

impl Widths {
    /// The bound size of a variable dimension.
    ///
    /// # Panics
    /// If `var` was not bound: the interfaces in `model` bind every variable they use before
    /// the graph that uses it is accepted, so this is a broken invariant.
    pub fn get(&self, var: char) -> usize {
        match self.0.get(&var) {
            Some(&n) => n,
            None => panic!("width {var} read before any graph bound it"),
        }
    }

    /// Binds `var` to `n` before a graph is loaded: for a graph that declares that dimension
    /// symbolic (the detector's input size, chosen by the caller).
    pub fn bind(&mut self, var: char, n: usize) {
        self.0.insert(var, n);
    }

    fn unify(&mut self, dim: Dim, batch: usize, found: usize) -> bool {
        match dim {
            Dim::Batch => found == batch,
            Dim::Fixed(n) => found == n,
            Dim::Var(v) => *self.0.entry(v).or_insert(found) == found,
        }
    }

    fn render(&self, port: &Port, batch: Option<usize>) -> String {
        let dims: Vec<String> = port
            .dims
            .iter()
            .map(|d| match d {
                Dim::Batch => batch.map_or("N".into(), |b| b.to_string()),
                Dim::Fixed(n) => n.to_string(),
                Dim::Var(v) => self.0.get(v).map_or(v.to_string(), |n| n.to_string()),
            })
            .collect();
        format!("{} [{}]", port.name, dims.join(", "))
    }

    fn render_all(&self, ports: &[Port], batch: Option<usize>) -> String {
        let ports: Vec<String> = ports.iter().map(|p| self.render(p, batch)).collect();
        ports.join(", ")
    }
}

/// Numeric precision of a graph, read from its operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    /// An f32 graph loaded in half precision ([`super::set_half_floats`]).
    F16,
    Int8,
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Int8 => "int8",
        })
    }
}

thread_local! {
    /// [`super::with_device`].
    pub(super) static DEVICE: std::cell::Cell<super::Target> =
        const { std::cell::Cell::new(super::Target::Cpu) };
    /// [`super::set_half_floats`].
    pub(super) static HALF_FLOATS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// [`super::profile_ops`]: the time per op kind of the graphs run on this thread, when on.
    pub(super) static PROFILE: std::cell::RefCell<Option<OpProfile>> =
        const { std::cell::RefCell::new(None) };
}

/// A loaded, optimised graph with a reusable execution state.
pub(crate) struct Graph {
    pub precision: Precision,
    /// Where it runs: the CPU, or the GPU (tract-cuda), see [`super::with_device`].
    pub target: super::Target,
    /// Runs in f16: inputs are cast to it, outputs back to f32.
    half: bool,
    graph: &'static str,
    /// Reused across calls so tract does not re-allocate its buffers every frame. A plan of
    /// tract's default runtime on the CPU (a `TypedSimpleState`), or of its CUDA runtime.
    state: Box<dyn State>,
}

type Declared = Vec<(String, i32, Vec<Option<usize>>)>;

fn declared(proto: &tract_onnx::pb::ModelProto) -> Option<(Declared, Vec<String>)> {
    let graph = proto.graph.as_ref()?;
    let inits: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs = graph
        .input
        .iter()
        .filter(|i| !inits.contains(i.name.as_str()))
        .map(|i| {
            let (elem, dims) = match i.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(TypeValue::TensorType(t)) => {
                    let dims = t.shape.as_ref().map_or(vec![], |s| {
                        s.dim
                            .iter()
                            .map(|d| match d.value {
                                Some(DimValue::DimValue(n)) => usize::try_from(n).ok(),
                                _ => None,
                            })
                            .collect()
                    });
                    (t.elem_type, dims)
                }
                None => (0, vec![]),
            };
            (i.name.clone(), elem, dims)
        })
        .collect();
    let outputs = graph.output.iter().map(|o| o.name.clone()).collect();
    Some((inputs, outputs))
}

/// Whether the ONNX file at `path` declares `port` as its first input (name and rank).
pub(crate) fn declares_input(path: &Path, port: Port) -> bool {
    let Ok(bytes) = std::fs::read(path) else { return false };
    let Ok(proto) = tract_onnx::onnx().proto_model_for_read(&mut bytes.as_slice()) else {
        return false;
    };
    declared(&proto).is_some_and(|(inputs, _)| {
        inputs
            .first()
            .is_some_and(|(name, _, dims)| name == port.name && dims.len() == port.dims.len())
    })
}

fn render_declared(inputs: &Declared) -> String {
    let mut s = String::new();
    for (k, (name, _, dims)) in inputs.iter().enumerate() {
        let dims: Vec<String> =
            dims.iter().map(|d| d.map_or("N".into(), |n| n.to_string())).collect();
        let sep = if k == 0 { "" } else { ", " };
        let _ = write!(s, "{sep}{name} [{}]", dims.join(", "));
    }
    s
}

const INT8_OPS: &[&str] =
    &["QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"];
const ONNX_FLOAT: i32 = 1;

impl Graph {
    /// Loads `path`, checks it against `iface` with batch size `batch`, binding or checking the
    /// variable widths in `widths`, and prepares it to run.
    ///
    /// # Errors
    /// [`Error::Read`] when the file cannot be read, [`Error::Parse`] when it is not an ONNX
    /// graph tract can run, [`Error::Interface`] when its inputs or outputs differ from `iface`.
    pub fn load(path: &Path, iface: &Interface, batch: usize, widths: &mut Widths) -> Result<Self> {
        let bytes =
            std::fs::read(path).map_err(|source| Error::Read { path: path.into(), source })?;
        let parse = |reason: String| Error::Parse { path: path.into(), graph: iface.graph, reason };
        if bytes.is_empty() {
            return Err(parse("the file is empty".into()));
        }
        let onnx = tract_onnx::onnx();
        let proto = onnx
            .proto_model_for_read(&mut bytes.as_slice())
            .map_err(|e| parse(format!("not an ONNX protobuf ({e})")))?;
        let (inputs, outputs) =
            declared(&proto).ok_or_else(|| parse("the ONNX file holds no graph".into()))?;

        let interface_err = |widths: &Widths, found: String| Error::Interface {
            path: path.into(),
            graph: iface.graph,
            expected: format!(
                "inputs {} -> outputs {}",
                widths.render_all(iface.inputs, None),
                widths.render_all(iface.outputs, None)
            ),
            found,
        };
        let out_names: Vec<&str> = iface.outputs.iter().map(|p| p.name).collect();
        let names_ok = inputs.len() == iface.inputs.len()
            && inputs.iter().zip(iface.inputs).all(|((name, elem, dims), port)| {
                name == port.name && *elem == ONNX_FLOAT && dims.len() == port.dims.len()
            })
            && outputs == out_names;
        if !names_ok {
            let found =
                format!("inputs {} -> outputs {}", render_declared(&inputs), outputs.join(", "));
            return Err(interface_err(widths, found));
        }
        // Declared sizes: the batch axis may be symbolic, and so may a width the caller bound
        // beforehand; every other size must match.
        for ((_, _, dims), port) in inputs.iter().zip(iface.inputs) {
            for (found, dim) in dims.iter().zip(port.dims) {
                let ok = match (found, dim) {
                    (None, Dim::Batch) => true,
                    (None, Dim::Var(v)) => widths.0.contains_key(v),
                    (None, Dim::Fixed(_)) => false,
                    (Some(n), Dim::Batch) => *n == batch,
                    (Some(n), d) => widths.unify(*d, batch, *n),
                };
                if !ok {
                    return Err(interface_err(
                        widths,
                        format!("inputs {}", render_declared(&inputs)),
                    ));
                }
            }
        }

        let precision = if proto
            .graph
            .iter()
            .flat_map(|g| &g.node)
            .any(|n| INT8_OPS.contains(&n.op_type.as_str()))
        {
            Precision::Int8
        } else {
            Precision::F32
        };
        let mut model = onnx
            .model_for_proto_model(&proto)
            .map_err(|e| parse(format!("tract cannot read the graph: {e:#}")))?;
        for (ix, port) in iface.inputs.iter().enumerate() {
            let shape: Vec<usize> = port
                .dims
                .iter()
                .map(|d| match d {
                    Dim::Batch => batch,
                    Dim::Fixed(n) => *n,
                    Dim::Var(v) => widths.get(*v),
                })
                .collect();
            model = model
                .with_input_fact(ix, f32::fact(&shape).into())
                .map_err(|e| parse(format!("cannot set input {}: {e:#}", port.name)))?;
        }
        let optimise = |e: TractError| parse(format!("tract cannot analyse or optimise it: {e:#}"));
        let mut typed = model.into_typed().and_then(|m| m.into_decluttered()).map_err(optimise)?;
        // SMPLCAST_NO_FUSE skips our passes, for the A/B figures of docs/performance.md: `tables`
        // or `quantizers` skips one, any other value both.
        let skip = std::env::var("SMPLCAST_NO_FUSE").ok();
        let fused = super::fuse::all(&mut typed, skip.as_deref()).map_err(optimise)?;
        if fused != super::fuse::Fused::default() {
            tracing::debug!(
                graph = iface.graph,
                tables = fused.tables,
                quantizers = fused.quantizers,
                "Quantized chains fused into tables; quantizes vectorised."
            );
        }
        let half = precision == Precision::F32 && HALF_FLOATS.get();
        let precision = if half {
            let to_f16 = tract_onnx::tract_core::transform::get_transform("f32_to_f16")
                .map_err(optimise)?
                .ok_or_else(|| parse("tract has no f32_to_f16 transform".into()))?;
            to_f16.transform(&mut typed).map_err(optimise)?;
            Precision::F16
        } else {
            precision
        };
        let mut found_out = Vec::new();
        let mut ok = true;
        for (ix, port) in iface.outputs.iter().enumerate() {
            let fact = typed.output_fact(ix).map_err(|e| parse(format!("{e:#}")))?;
            let shape = fact.shape.as_concrete().map(<[usize]>::to_vec);
            found_out.push(format!("{} {:?} {:?}", port.name, shape, fact.datum_type));
            let float = if half { f16::datum_type() } else { f32::datum_type() };
            ok &= fact.datum_type == float
                && shape.is_some_and(|s| {
                    s.len() == port.dims.len()
                        && s.iter().zip(port.dims).all(|(n, d)| widths.unify(*d, batch, *n))
                });
        }
        if !ok {
            return Err(interface_err(widths, format!("outputs {}", found_out.join(", "))));
        }
        let (target, runnable) = prepare(typed, path, iface.graph).map_err(optimise)?;
        let state = runnable.spawn().map_err(|e| parse(format!("{e:#}")))?;
        Ok(Graph { precision, target, half, graph: iface.graph, state })
    }

    /// Another execution state over the same optimised graph (the weights are shared, not
    /// copied): one per worker thread.
    ///
    /// # Errors
    /// [`Error::Run`] if tract cannot make the state.
    pub fn fork(&self) -> Result<Self> {
        let state = self.state.runnable().spawn().map_err(|e| self.run_err(e))?;
        Ok(Graph { state, graph: self.graph, ..*self })
    }

    /// Runs the graph on f32 inputs laid out as the interface says (row-major). While
    /// [`super::profile_ops`] is on for this thread, each node's time is added to its profile.
    ///
    /// # Errors
    /// [`Error::Run`] if tract fails (an input of the wrong length included).
    pub fn run(&mut self, inputs: &[(&[usize], &[f32])]) -> Result<TVec<TValue>> {
        let values = self.values(inputs)?;
        let profile = PROFILE.take();
        let cpu = self.state.downcast_mut::<TypedSimpleState>();
        let (Some(mut profile), Some(cpu)) = (profile, cpu) else {
            let out = self.state.run(values).map_err(|e| self.run_err(e))?;
            return self.to_f32(out);
        };
        let out = cpu.run_plan_with_eval(values, |ctx, state, node, input| {
            let t0 = std::time::Instant::now();
            let out = tract_onnx::tract_core::plan::eval(ctx, state, node, input);
            let entry = profile.entry(node.op().name().to_string()).or_default();
            entry.0 += t0.elapsed();
            entry.1 += 1;
            out
        });
        PROFILE.set(Some(profile));
        self.to_f32(out.map_err(|e| self.run_err(e))?)
    }

    fn run_err(&self, e: anyhow::Error) -> Error {
        Error::Run { graph: self.graph, reason: format!("{e:#}") }
    }

    /// The inputs as tensors, in f16 for a half-precision graph.
    fn values(&self, inputs: &[(&[usize], &[f32])]) -> Result<TVec<TValue>> {
        let mut values = TVec::new();
        for (shape, data) in inputs {
            let mut t = Tensor::from_shape(shape, data).map_err(|e| self.run_err(e))?;
            if self.half {
                t = t.cast_to::<f16>().map_err(|e| self.run_err(e))?.into_owned();
            }
            values.push(t.into_tvalue());
        }
        Ok(values)
    }

    /// The outputs of a half-precision graph back in f32; others as they are.
    fn to_f32(&self, out: TVec<TValue>) -> Result<TVec<TValue>> {
        if !self.half {
            return Ok(out);
        }
        out.into_iter()
            .map(|v| {
                let t = v.cast_to::<f32>().map_err(|e| self.run_err(e))?.into_owned();
                Ok(t.into_tvalue())
            })
            .collect()
    }

    /// Name of the graph (backbone, temporal, ...), for errors and logs.
    pub fn name(&self) -> &'static str {
        self.graph
    }
}

/// The decluttered graph made runnable where [`super::with_device`] says: optimised for
/// tract's CPU runtime, or handed to its CUDA runtime, which moves what it can run to the GPU.
/// A graph the CUDA runtime cannot prepare runs on the CPU, with a warning that says why.
#[cfg_attr(not(any(feature = "cuda", feature = "cuda12")), allow(unused_variables))]
fn prepare(
    typed: TypedModel,
    path: &Path,
    graph: &'static str,
) -> TractResult<(super::Target, Box<dyn Runnable>)> {
    #[cfg(any(feature = "cuda", feature = "cuda12"))]
    if DEVICE.get() == super::Target::Cuda {
        let t0 = std::time::Instant::now();
        match super::device::gpu::prepare(typed.clone()) {
            Ok(runnable) => {
                tracing::info!(
                    graph,
                    seconds = format_args!("{:.1}", t0.elapsed().as_secs_f64()),
                    "Graph prepared on the GPU."
                );
                return Ok((super::Target::Cuda, runnable));
            }
            Err(reason) => tracing::warn!(
                graph,
                file = %path.display(),
                %reason,
                "This graph runs on the CPU: tract's CUDA runtime cannot prepare it."
            ),
        }
    }
    let plan = typed.into_optimized()?.into_runnable()?;
    Ok((super::Target::Cpu, Box::new(plan)))
}

/// Copies an f32 output of `run` out as a slice.
///
/// # Errors
/// [`Error::Run`] if the output is not f32.
pub(crate) fn f32_slice<'a>(graph: &'static str, v: &'a TValue) -> Result<&'a [f32]> {
    let err = |e: anyhow::Error| Error::Run { graph, reason: format!("{e:#}") };
    v.try_as_plain_ram().map_err(err)?.as_slice::<f32>().map_err(err)
}
