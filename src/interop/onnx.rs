//! `gpu-cnn export`: a checkpoint as an ONNX model (opset 13) that takes what `predict` feeds
//! the network (images resized to the model's input, pixels / 255, NHWC; or NCHW on request)
//! and gives class probabilities. The graph runs in ONNX's NCHW: one Transpose after an NHWC
//! input, and one before each flatten so that the dense kernels keep Keras' (h, w, c) row order
//! and are written unchanged. Conv kernels are transposed to ONNX's [out, in, kh, kw].

use std::path::Path;

use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto, AttributeProto, GraphProto, Message, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

use crate::checkpoint::Checkpoint;
use crate::files::OutputError;
use crate::layers::{Activation, LayerKind};
use crate::model::{ConvShape, Shape};

/// The operator set: every kind's op is in it, and every current runtime runs it.
pub const OPSET: i64 = 13;
/// The IR version opset 13 shipped with (older runtimes refuse newer IR versions).
const IR_VERSION: i64 = 7;
pub const INPUT: &str = "input";
pub const OUTPUT: &str = "probabilities";

/// The input tensor's axis order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// [N, height, width, channels], as `predict` and Keras hold images.
    Nhwc,
    /// [N, channels, height, width], as PyTorch holds them.
    Nchw,
}

impl Layout {
    fn dims(self, [h, w, c]: [u32; 3]) -> [u32; 3] {
        match self {
            Self::Nhwc => [h, w, c],
            Self::Nchw => [c, h, w],
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::Nhwc => "NHWC",
            Self::Nchw => "NCHW",
        }
    }
}

fn attribute(name: &str, kind: AttributeType, set: impl FnOnce(&mut AttributeProto)) -> AttributeProto {
    let mut a = AttributeProto { name: name.into(), type_: kind.into(), ..Default::default() };
    set(&mut a);
    a
}
fn ints(name: &str, values: &[u32]) -> AttributeProto {
    attribute(name, AttributeType::INTS, |a| a.ints = values.iter().map(|&v| v as i64).collect())
}
fn int(name: &str, value: i64) -> AttributeProto {
    attribute(name, AttributeType::INT, |a| a.i = value)
}

fn value_info(name: &str, dims: &[Option<u32>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Some(v) => tensor_shape_proto::dimension::Value::DimValue(*v as i64),
                None => tensor_shape_proto::dimension::Value::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    let tensor = type_proto::Tensor { elem_type: DataType::FLOAT as i32, shape: Some(TensorShapeProto { dim, ..Default::default() }).into(), ..Default::default() };
    ValueInfoProto { name: name.into(), type_: Some(TypeProto { value: Some(type_proto::Value::TensorType(tensor)), ..Default::default() }).into(), ..Default::default() }
}

/// The graph as it is built: nodes in order, weights as initialisers.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    weights: Vec<TensorProto>,
}

impl Graph {
    /// Adds `op` on `inputs`, named `name`, whose one output is also called `name`.
    fn node(&mut self, op: &str, name: String, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let node = NodeProto {
            op_type: op.into(),
            name: name.clone(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.clone()],
            attribute,
            ..Default::default()
        };
        self.nodes.push(node);
        name
    }

    fn weight(&mut self, name: String, dims: &[u32], data: &[f32]) -> String {
        let raw_data = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let dims = dims.iter().map(|&d| d as i64).collect();
        self.weights.push(TensorProto { name: name.clone(), dims, data_type: DataType::FLOAT as i32, raw_data, ..Default::default() });
        name
    }
}

/// Keras' [kh, kw, in, out] as ONNX's [out, in, kh, kw].
fn conv_kernel(k: &[f32], [kh, kw, ci, co]: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0.0; k.len()];
    for y in 0..kh {
        for x in 0..kw {
            for i in 0..ci {
                for o in 0..co {
                    out[((o * ci + i) * kh + y) * kw + x] = k[((y * kw + x) * ci + i) * co + o];
                }
            }
        }
    }
    out
}

/// An ONNX `Conv` of `x` by weights `w` in `group`s, with Keras' padding for `s` (the odd pixel
/// at the bottom / right).
fn conv_node(g: &mut Graph, name: String, x: &str, s: &ConvShape, w: &str, bias: Option<&str>, group: u32) -> String {
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    let bottom = ((s.out_h - 1) * s.stride + s.k_h).saturating_sub(s.in_h + s.pad_top);
    let right = ((s.out_w - 1) * s.stride + s.k_w).saturating_sub(s.in_w + s.pad_left);
    let mut attrs = vec![ints("kernel_shape", &[s.k_h, s.k_w]), ints("strides", &[s.stride; 2]), ints("pads", &[s.pad_top, s.pad_left, bottom, right])];
    if group > 1 {
        attrs.push(int("group", group as i64));
    }
    g.node("Conv", name, &inputs, attrs)
}

/// The checkpoint as an ONNX model whose input has `layout`.
pub fn export(ckpt: &Checkpoint, layout: Layout) -> Result<ModelProto, ExportError> {
    let spec = &ckpt.model;
    let infos = spec.params();
    let mut g = Graph::default();
    let mut x = INPUT.to_string();
    if layout == Layout::Nhwc {
        x = g.node("Transpose", "input_to_nchw".into(), &[&x], vec![ints("perm", &[0, 3, 1, 2])]);
    }
    // Each value's ONNX name: the input, then each layer's output.
    let mut values = vec![x];
    let graph = spec.graph();
    for ((i, layer), input) in spec.layers.iter().enumerate().zip(spec.input_shapes()) {
        let name = layer.name.as_str();
        let x = values[graph.input(i)].clone();
        // This layer's tensors as initialisers, by suffix.
        let find = |suffix: &str| infos.iter().position(|p| p.layer == i && p.suffix == suffix);
        let tensor = |g: &mut Graph, suffix: &str| find(suffix).map(|k| g.weight(infos[k].name.clone(), &infos[k].shape, &ckpt.params[k]));
        // A conv kernel of geometry `s` in `group`s, Keras' [kh, kw, in / group, out] (a
        // depthwise kernel [kh, kw, in, m] is that with one group per input channel), as an
        // initialiser in ONNX's [out, in / group, kh, kw].
        let kernel = |g: &mut Graph, suffix: &str, s: &ConvShape, group: u32| {
            let k = find(suffix).expect("a conv layer has its kernels");
            let dims = [s.k_h, s.k_w, s.in_c / group, s.out_c];
            g.weight(infos[k].name.clone(), &[dims[3], dims[2], dims[0], dims[1]], &conv_kernel(&ckpt.params[k], dims.map(|v| v as usize)))
        };
        let x = match &layer.kind {
            LayerKind::Conv2d(c) => {
                let Shape::Image(image) = input else { unreachable!("validated spec") };
                let s = c.shape(1, image);
                let w = kernel(&mut g, "kernel", &s, 1);
                let bias = tensor(&mut g, "bias");
                conv_node(&mut g, name.into(), &x, &s, &w, bias.as_deref(), 1)
            }
            // A `Conv` with one group per input channel.
            LayerKind::DepthwiseConv2d(d) => {
                let Shape::Image(image) = input else { unreachable!("validated spec") };
                let s = d.shape(1, image);
                let w = kernel(&mut g, "depthwise_kernel", &s, s.in_c);
                let bias = tensor(&mut g, "bias");
                conv_node(&mut g, name.into(), &x, &s, &w, bias.as_deref(), s.in_c)
            }
            // The depthwise `Conv`, then a 1x1 `Conv`.
            LayerKind::SeparableConv2d(c) => {
                let Shape::Image(image) = input else { unreachable!("validated spec") };
                let [d, p] = c.shapes(1, image);
                let w = kernel(&mut g, "depthwise_kernel", &d, d.in_c);
                let middle = conv_node(&mut g, format!("{name}/depthwise"), &x, &d, &w, None, d.in_c);
                let w = kernel(&mut g, "pointwise_kernel", &p, 1);
                let bias = tensor(&mut g, "bias");
                conv_node(&mut g, name.into(), &middle, &p, &w, bias.as_deref(), 1)
            }
            LayerKind::MaxPool2d(p) => {
                let s = p.shape(1, input).expect("validated spec");
                g.node("MaxPool", name.into(), &[&x], vec![ints("kernel_shape", &s.pool), ints("strides", &s.stride)])
            }
            LayerKind::AvgPool2d(p) => {
                let s = p.shape(1, input).expect("validated spec");
                g.node("AveragePool", name.into(), &[&x], vec![ints("kernel_shape", &s.pool), ints("strides", &s.stride)])
            }
            LayerKind::GlobalAvgPool2d(_) => {
                let pooled = g.node("GlobalAveragePool", name.into(), &[&x], vec![]);
                g.node("Flatten", format!("{name}/flatten"), &[&pooled], vec![int("axis", 1)])
            }
            LayerKind::GlobalMaxPool2d(_) => {
                let pooled = g.node("GlobalMaxPool", name.into(), &[&x], vec![]);
                g.node("Flatten", format!("{name}/flatten"), &[&pooled], vec![int("axis", 1)])
            }
            LayerKind::BatchNorm(b) => {
                // Inference form: the moving statistics; constant gamma / beta where Keras has none.
                let c = input.channels() as usize;
                let gamma = tensor(&mut g, "gamma").unwrap_or_else(|| g.weight(format!("{name}.gamma"), &[c as u32], &vec![1.0; c]));
                let beta = tensor(&mut g, "beta").unwrap_or_else(|| g.weight(format!("{name}.beta"), &[c as u32], &vec![0.0; c]));
                let mean = tensor(&mut g, "moving_mean").expect("batchnorm has moving statistics");
                let var = tensor(&mut g, "moving_variance").expect("batchnorm has moving statistics");
                let epsilon = attribute("epsilon", AttributeType::FLOAT, |a| a.f = b.epsilon);
                g.node("BatchNormalization", name.into(), &[&x, &gamma, &beta, &mean, &var], vec![epsilon])
            }
            LayerKind::Flatten(_) if matches!(input, Shape::Image(_)) => {
                let nhwc = g.node("Transpose", format!("{name}/to_nhwc"), &[&x], vec![ints("perm", &[0, 2, 3, 1])]);
                g.node("Flatten", name.into(), &[&nhwc], vec![int("axis", 1)])
            }
            LayerKind::Dense(_) => {
                let w = tensor(&mut g, "kernel").expect("a dense layer has a kernel");
                let mut inputs = vec![x.as_str(), w.as_str()];
                let bias = tensor(&mut g, "bias");
                inputs.extend(bias.as_deref());
                g.node("Gemm", name.into(), &inputs, vec![])
            }
            LayerKind::Add(_) => {
                let [a, b] = [0, 1].map(|k| values[graph.inputs[i][k]].clone());
                g.node("Add", name.into(), &[&a, &b], vec![])
            }
            // Flatten of a flat input, dropout (inference), and an activation layer (below) add no op.
            LayerKind::Flatten(_) | LayerKind::Dropout(_) | LayerKind::Activation(_) => x,
        };
        let x = match layer.kind.ops().activation() {
            Activation::Linear => x,
            Activation::Softmax => g.node("Softmax", OUTPUT.into(), &[&x], vec![int("axis", 1)]),
            Activation::Sigmoid if i + 1 == spec.layers.len() => {
                // One logit: [1 - p, p], as `predict` reports a sigmoid head.
                let p = g.node("Sigmoid", format!("{name}/sigmoid"), &[&x], vec![]);
                let one = g.weight(format!("{name}/one"), &[1], &[1.0]);
                let q = g.node("Sub", format!("{name}/one_minus"), &[&one, &p], vec![]);
                g.node("Concat", OUTPUT.into(), &[&q, &p], vec![int("axis", 1)])
            }
            a => hidden_activation(&mut g, name, a, &x),
        };
        values.push(x);
    }
    let [h, w, c] = layout.dims(spec.input);
    let classes = spec.classes();
    let doc = doc_string(ckpt, layout);
    let graph = GraphProto {
        name: "gpu-cnn".into(),
        node: g.nodes,
        initializer: g.weights,
        input: vec![value_info(INPUT, &[None, Some(h), Some(w), Some(c)])],
        output: vec![value_info(OUTPUT, &[None, Some(classes)])],
        doc_string: doc.clone(),
        ..Default::default()
    };
    // Values are named after layers, next to the graph's own names: a layer named `input`
    // would make a graph no runtime loads.
    let mut seen = std::collections::HashSet::from([INPUT]);
    let outputs = graph.initializer.iter().map(|t| &t.name).chain(graph.node.iter().flat_map(|n| &n.output));
    if let Some(name) = outputs.into_iter().find(|n| !seen.insert(n.as_str())) {
        return Err(ExportError::Name(name.clone()));
    }
    let meta = |key: &str, value: String| StringStringEntryProto { key: key.into(), value, ..Default::default() };
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET, ..Default::default() }],
        producer_name: "gpu-cnn".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: doc,
        graph: Some(graph).into(),
        metadata_props: vec![
            meta("classes", serde_json::to_string(&ckpt.classes).expect("strings serialise")),
            meta("input_layout", layout.name().into()),
            meta("input_scale", "pixel / 255".into()),
        ],
        ..Default::default()
    })
}

/// The nodes of hidden activation `a` on `x` (opset 13: silu as x * Sigmoid(x), gelu in its
/// exact erf form); returns its output.
fn hidden_activation(g: &mut Graph, name: &str, a: Activation, x: &str) -> String {
    let alpha = |value: f32| vec![attribute("alpha", AttributeType::FLOAT, |at| at.f = value)];
    match a {
        Activation::Relu => g.node("Relu", format!("{name}/relu"), &[x], vec![]),
        Activation::LeakyRelu => g.node("LeakyRelu", format!("{name}/leaky_relu"), &[x], alpha(0.2)),
        Activation::Elu => g.node("Elu", format!("{name}/elu"), &[x], alpha(1.0)),
        Activation::Tanh => g.node("Tanh", format!("{name}/tanh"), &[x], vec![]),
        Activation::Sigmoid => g.node("Sigmoid", format!("{name}/sigmoid"), &[x], vec![]),
        Activation::Silu => {
            let s = g.node("Sigmoid", format!("{name}/silu_sigmoid"), &[x], vec![]);
            g.node("Mul", format!("{name}/silu"), &[x, &s], vec![])
        }
        Activation::Gelu => {
            // x * 0.5 * (1 + erf(x / sqrt(2)))
            let [scale, one, half] = [("inv_sqrt2", std::f32::consts::FRAC_1_SQRT_2), ("one", 1.0), ("half", 0.5)].map(|(n, v)| g.weight(format!("{name}/gelu_{n}"), &[1], &[v]));
            let scaled = g.node("Mul", format!("{name}/gelu_scaled"), &[x, &scale], vec![]);
            let erf = g.node("Erf", format!("{name}/gelu_erf"), &[&scaled], vec![]);
            let cdf = g.node("Add", format!("{name}/gelu_one_plus"), &[&erf, &one], vec![]);
            let halved = g.node("Mul", format!("{name}/gelu_cdf"), &[&cdf, &half], vec![]);
            g.node("Mul", format!("{name}/gelu"), &[x, &halved], vec![])
        }
        Activation::Linear | Activation::Softmax => unreachable!("handled by the caller"),
    }
}

/// What the model takes and gives, for its doc string and the export report.
pub fn doc_string(ckpt: &Checkpoint, layout: Layout) -> String {
    let [h, w, c] = ckpt.model.input;
    let dims = layout.dims(ckpt.model.input);
    let colour = if c == 1 { "grey (PIL's convert(\"L\") luma)" } else { "RGB" };
    format!(
        "gpu-cnn classifier. Input '{INPUT}': float32 [N, {}, {}, {}] ({}), {colour} pixels / 255 in [0, 1], each image resized to {w}x{h} \
         (nearest neighbour) as `gpu-cnn predict` does. Output '{OUTPUT}': float32 [N, {}], class probabilities in the order {}.",
        dims[0],
        dims[1],
        dims[2],
        layout.name(),
        ckpt.classes.len(),
        ckpt.classes.join(", ")
    )
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the ONNX graph would name two values '{0}' (a layer named like the graph's input or output, or like another layer's op); rename that layer")]
    Name(String),
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Writes the ONNX model of `ckpt` to `path` atomically (the caller checked that it may).
pub fn save(ckpt: &Checkpoint, layout: Layout, path: &Path) -> Result<ModelProto, ExportError> {
    let model = export(ckpt, layout)?;
    let bytes = model.write_to_bytes().expect("an in-memory ONNX model serialises");
    crate::files::write_atomic(path, &bytes).map_err(|error| OutputError::Write { path: path.to_path_buf(), error })?;
    Ok(model)
}
