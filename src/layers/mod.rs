//! The layer kinds. Each kind is one module that owns everything about it: its config schema
//! and defaults (serde, parsed once from TOML and from checkpoint metadata alike), its Keras
//! name stem and class, shape inference, the tensors it owns (shape, initialiser, trainable or
//! not), the forward and backward dispatches it records, and the questions transfer asks of it.
//! This file is the registry: one line per kind in [`kinds!`], and the [`Kind`] trait every
//! module implements.

pub mod activation;
pub mod add;
pub mod avgpool2d;
pub mod batchnorm;
pub mod conv2d;
pub mod dense;
pub mod depthwise_conv2d;
pub mod dropout;
pub mod flatten;
pub mod globalavgpool2d;
pub mod globalmaxpool2d;
pub mod maxpool2d;
pub mod separable_conv2d;

use serde::{Deserialize, Serialize};

use crate::gpu::kernels::batchnorm::Unstored;
use crate::gpu::{Dispatch, GpuContext, GpuError, Kernels, View};
use crate::model::graph::Delivery;
use crate::model::shape::Shape;

pub use activation::Activation;
pub use conv2d::Padding;

/// Declares the layer kinds: variant, module type and the config's `type` name, one line each.
macro_rules! kinds {
    ($($variant:ident($ty:ty) = $tag:literal,)*) => {
        /// A layer's kind and settings, tagged by `type` in configs and checkpoints.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        pub enum LayerKind {
            $(#[serde(rename = $tag)] $variant($ty),)*
        }

        impl LayerKind {
            /// Every config `type` name.
            pub const TYPES: &'static [&'static str] = &[$($tag),*];

            /// Reads a config's layer table (`type` and the kind's fields; `name` and
            /// `trainable` taken out). Each kind's fields are read straight into its struct, so
            /// an error names its field (serde's tagged enums buffer the table and lose it).
            pub fn from_table(mut table: toml::Table) -> Result<Self, String> {
                let tag = match table.remove("type") {
                    Some(toml::Value::String(tag)) => tag,
                    Some(other) => return Err(format!("`type` must be a string, got {other}")),
                    None => return Err(format!("a layer needs `type` ({})", Self::TYPES.join(", "))),
                };
                match tag.as_str() {
                    $($tag => toml::Value::Table(table).try_into::<$ty>().map(Self::$variant).map_err(field_error),)*
                    other => Err(format!("unknown variant `{other}`, expected one of {}", Self::TYPES.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", "))),
                }
            }

            /// The kind's module, behind the trait every kind implements.
            pub fn ops(&self) -> &dyn Kind {
                match self {
                    $(Self::$variant(k) => k,)*
                }
            }
        }
    };
}

/// A layer field's error as "`field`: message" (toml names the key only in its display).
fn field_error(e: toml::de::Error) -> String {
    let text = e.to_string();
    match text.lines().find_map(|l| l.strip_prefix("in `").and_then(|k| k.strip_suffix('`'))) {
        Some(key) => format!("`{key}`: {}", e.message()),
        None => e.message().to_string(),
    }
}

kinds! {
    Conv2d(conv2d::Conv2d) = "conv2d",
    MaxPool2d(maxpool2d::MaxPool2d) = "maxpool2d",
    AvgPool2d(avgpool2d::AvgPool2d) = "avgpool2d",
    GlobalAvgPool2d(globalavgpool2d::GlobalAvgPool2d) = "globalavgpool2d",
    GlobalMaxPool2d(globalmaxpool2d::GlobalMaxPool2d) = "globalmaxpool2d",
    BatchNorm(batchnorm::BatchNorm) = "batchnorm",
    Activation(activation::ActivationLayer) = "activation",
    Flatten(flatten::Flatten) = "flatten",
    Dense(dense::Dense) = "dense",
    Dropout(dropout::Dropout) = "dropout",
    Add(add::Add) = "add",
    DepthwiseConv2d(depthwise_conv2d::DepthwiseConv2d) = "depthwise_conv2d",
    SeparableConv2d(separable_conv2d::SeparableConv2d) = "separable_conv2d",
}

/// How a tensor is initialised, as Keras does for its role.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Init {
    /// Uniform in +-sqrt(6 / (fan_in + fan_out)).
    Glorot { fan_in: u64, fan_out: u64 },
    Zeros,
    Ones,
}

/// How transfer maps a tensor when units are replicated (Net2Net).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// [..., in, out]: rows follow the input's units, columns the layer's own.
    Kernel,
    /// [units]: one value per output unit (bias, gamma, beta, moving statistics).
    PerUnit,
    /// [..., channels, multiplier]: a depthwise kernel, one filter per output unit
    /// c * multiplier + j, each reading only its input channel c.
    Depthwise,
}

/// One tensor a layer owns, `<layer>.<suffix>` in checkpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub suffix: &'static str,
    pub shape: Vec<u32>,
    pub init: Init,
    /// Updated by the optimizer; non-trainable tensors (moving statistics) are written by their
    /// layer's own kernels.
    pub trainable: bool,
    pub role: Role,
}

/// One number for both axes, or `[height, width]`; stored as the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pair(pub [u32; 2]);

impl<'de> Deserialize<'de> for Pair {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(u32),
            Two([u32; 2]),
        }
        Ok(match Raw::deserialize(d).map_err(|_| serde::de::Error::custom("expected a number or [height, width]"))? {
            Raw::One(v) => Pair([v, v]),
            Raw::Two(v) => Pair(v),
        })
    }
}

/// What every layer kind answers. Shapes are per example; `is_last` marks the output head.
pub trait Kind {
    /// Keras' name stem for automatic names (`conv2d` gives `conv2d_1`, ...).
    fn stem(&self) -> &'static str;
    /// Keras' class name, for summaries and reports.
    fn class(&self) -> &'static str;
    /// The output shape for `input`, or why the layer does not fit it.
    fn output(&self, input: Shape, is_last: bool) -> Result<Shape, String>;
    /// The tensors it owns for `input`, in Keras' weight order.
    fn tensors(&self, _input: Shape) -> Vec<Tensor> {
        Vec::new()
    }
    /// The activation applied to its output (the head's decides the loss).
    fn activation(&self) -> Activation {
        Activation::Linear
    }
    /// Whether its output is non-negative, given whether its input is (ReLU-safe identities).
    fn non_negative(&self, input_non_negative: bool) -> bool {
        input_non_negative || self.activation() == Activation::Relu
    }
    /// Output units (filters or dense units) of a layer that sets its own width.
    fn units(&self) -> Option<u32> {
        None
    }
    /// Whether `other` is this layer up to its width (widening pairs such layers).
    fn same_but_width(&self, other: &LayerKind) -> bool;
    /// Whether `other` is this layer up to its width, activation and bias (a conv or dense layer
    /// whose ReLU, and bias, growth moves to a batchnorm inserted after it).
    fn same_but_activation(&self, _other: &LayerKind) -> bool {
        false
    }
    /// Whether it adds a bias (conv2d, dense).
    fn has_bias(&self) -> bool {
        false
    }
    /// What it starts as when growth inserts it where the source has no counterpart, on `input`.
    fn inserted(&self, _input: Shape) -> Insertion {
        Insertion::NoIdentity(None)
    }
    /// It reads two inputs of one shape and sums them (`add`); every other kind reads one.
    fn merges(&self) -> bool {
        false
    }
    /// Its backward can add its input gradient into what other readers of its input wrote
    /// ([`Build::accumulate`]); kinds that cannot have their share staged and added for them.
    fn accumulates(&self) -> bool {
        false
    }
    /// Its output's channels are its input's, one for one (a batchnorm, an activation, a pool,
    /// an add): widening what it reads widens it alike.
    fn keeps_channels(&self) -> bool {
        self.units().is_none() && !self.is_view()
    }
    /// Flatten: the output is the input's buffer seen with another shape.
    fn is_view(&self) -> bool {
        false
    }
    /// It can leave its output unstored for a next layer that [`Kind::loads_unstored`]
    /// (batchnorm: the max pool after it normalises on load, saving a write and a read).
    fn can_leave_unstored(&self) -> bool {
        false
    }
    /// It can compute its input on load from the layer before (see [`Build::x_unstored`]),
    /// for its `output`: what it then computes per image.
    fn loads_unstored(&self, _output: Shape) -> Option<Loads> {
        None
    }
    /// Its backward works in place: its input gradient is its output gradient's buffer.
    fn gradient_in_place(&self) -> bool {
        false
    }
    /// Its spatial arguments (kernel, pool, stride sides), which `crate::sizes` bounds before
    /// any shape is inferred from them.
    fn spatial_arguments(&self) -> Vec<(&'static str, Vec<u32>)> {
        Vec::new()
    }
    /// Reduction scratch (elements) its dispatches need for batches of `batch`.
    fn scratch(&self, _batch: u32, _input: Shape) -> u64 {
        0
    }
    /// Floating-point operations per image of a training step, [forward, backward], for
    /// `input` -> `output`: what [`Kind::build`] records, so a frozen layer counts what it runs.
    /// `trains`: it computes its weight gradients (a batchnorm: uses batch statistics);
    /// `input_grad`: it passes a gradient to the layer before; `unstored`: it leaves its output
    /// unstored for the next layer, which loads it so. A multiply-add counts 2, any other
    /// arithmetic operation or comparison 1.
    fn flops(&self, _input: Shape, _output: Shape, _trains: bool, _input_grad: bool, _unstored: Option<Loads>) -> [u64; 2] {
        [0, 0]
    }
    /// Records its forward and backward dispatches.
    fn build(&self, b: &mut Build<'_>) -> Result<(), GpuError>;
    /// Buffers it owns besides its output and gradient (a separable conv's depthwise output),
    /// as names and elements per image, so that `crate::sizes` checks them with the outputs.
    fn buffers(&self, _input: Shape) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// What a layer that [`Kind::loads_unstored`] computes of the layer before's output, per
/// image: `elements` computed on load, and `windows` where its gradient arrives (a max pool's
/// maxima, where a batchnorm's gradient sums then run).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loads {
    pub elements: u64,
    pub windows: u64,
}

/// What a layer inserted by growth starts as (Net2Net's function-preserving insertions); the
/// grow planner (`crate::transfer`) checks what the layers around it allow.
#[derive(Debug, Clone, PartialEq)]
pub enum Insertion {
    /// A conv that starts as the identity, `units` wide (filters past its input channels
    /// replicate channels).
    Conv { units: u32 },
    /// A batchnorm: the identity in inference mode; `center`: it has a beta that can take over
    /// the source's bias.
    Norm { center: bool },
    /// An activation layer: the identity where its input is non-negative.
    Activation,
    /// A non-overlapping pool of this window: the next dense layer's kernel maps through it.
    Pool { window: [u32; 2] },
    /// No effect in inference (dropout).
    Transparent,
    /// No function-preserving insertion; why, where the kind knows.
    NoIdentity(Option<String>),
}

/// What a layer's [`Kind::build`] records into: its buffers and tensors, and the dispatch lists.
pub struct Build<'a> {
    pub ctx: &'a GpuContext,
    pub kernels: &'a Kernels,
    pub name: &'a str,
    /// Images per batch the buffers hold.
    pub batch: u32,
    pub input: Shape,
    pub x: &'a View,
    pub y: &'a View,
    /// Keras' `trainable`: a frozen layer records no weight gradients (and a frozen batchnorm
    /// runs in inference mode).
    pub trainable: bool,
    /// Gradients at the input (None when nothing before needs them) and at the output.
    pub dx: Option<&'a View>,
    pub dy: Option<&'a View>,
    /// `dx` is added into, not overwritten: the input has other readers whose backward ran
    /// first (only asked of kinds that [`Kind::accumulates`]).
    pub accumulate: bool,
    /// A merge layer's inputs, all of them in order, with their gradients and how each is
    /// delivered (`x` and `dx` are the first's).
    pub merged: Vec<(&'a View, Option<&'a View>, Delivery)>,
    /// Set when the layer before left its output unstored: `x` then holds that layer's input,
    /// and this says how to compute the output from it.
    pub x_unstored: Option<Unstored>,
    /// Asks the layer to leave its output unstored ([`Kind::can_leave_unstored`]): it then
    /// records no output pass, sets [`Build::unstored`], and `y` aliases `x`.
    pub leave_unstored: bool,
    pub unstored: Option<Unstored>,
    /// The per-step uniform (`Step` in common.wgsl).
    pub step: &'a wgpu::Buffer,
    pub scratch: &'a View,
    /// This layer's seed (dropout masks).
    pub seed: u32,
    /// This layer's tensors by suffix: (values, gradient).
    pub tensors: Vec<(&'static str, View, View)>,
    pub forward: Vec<Dispatch>,
    /// In execution order (the network runs layers' backward lists from the last layer).
    pub backward: Vec<Dispatch>,
}

impl<'a> Build<'a> {
    fn tensor(&self, suffix: &str) -> &(&'static str, View, View) {
        self.tensors.iter().find(|t| t.0 == suffix).unwrap_or_else(|| panic!("{} has no tensor '{suffix}'", self.name))
    }
    pub fn param(&self, suffix: &str) -> View {
        self.tensor(suffix).1.clone()
    }
    pub fn grad(&self, suffix: &str) -> View {
        self.tensor(suffix).2.clone()
    }
    pub fn has(&self, suffix: &str) -> bool {
        self.tensors.iter().any(|t| t.0 == suffix)
    }
    /// The output gradient of a layer with parameters, when it has backward work: its own
    /// weight gradients, or an input gradient for the layers before it.
    pub fn backward_dy(&self) -> Option<&'a View> {
        self.dy.filter(|_| self.trainable || self.dx.is_some())
    }
}

/// Keras' kernel [taps..., inputs, units] (glorot-uniform, fans over the taps) and, with
/// `use_bias`, a zero bias: the tensors of conv2d (taps kh, kw) and dense (no taps).
pub fn kernel_and_bias(taps: &[u32], inputs: u32, units: u32, use_bias: bool) -> Vec<Tensor> {
    let shape: Vec<u32> = taps.iter().copied().chain([inputs, units]).collect();
    let kernel = Tensor { suffix: "kernel", init: glorot(&shape), shape, trainable: true, role: Role::Kernel };
    if use_bias { vec![kernel, bias(units)] } else { vec![kernel] }
}

/// A zero bias of `units`.
pub fn bias(units: u32) -> Tensor {
    Tensor { suffix: "bias", shape: vec![units], init: Init::Zeros, trainable: true, role: Role::PerUnit }
}

/// Keras' glorot-uniform for a kernel of `shape` (its `compute_fans`): fan_in is the last axis
/// but one, fan_out the last, each times the product of the axes before (the taps). In 64 bits:
/// a config's sizes are checked only after its tensors are listed.
pub fn glorot(shape: &[u32]) -> Init {
    let n = shape.len();
    let area: u64 = shape[..n - 2].iter().map(|&t| t as u64).product();
    Init::Glorot { fan_in: area * shape[n - 2] as u64, fan_out: area * shape[n - 1] as u64 }
}

/// The FLOPs of a conv or dense layer: `macs` multiply-adds per image into `outputs` values,
/// plus the bias add and the activation where present; backward, the activation's derivative,
/// the kernel gradient (and bias column sum) when it trains, the input gradient when one is
/// passed on.
pub fn weighted_flops(macs: u64, outputs: u64, bias: bool, activation: Activation, trains: bool, input_grad: bool) -> [u64; 2] {
    let [f, g] = activation.flops().map(|per| outputs * per);
    let b = outputs * bias as u64;
    let backward = match trains || input_grad {
        true => g + trains as u64 * (2 * macs + b) + input_grad as u64 * 2 * macs,
        false => 0,
    };
    [2 * macs + b + f, backward]
}

/// `Err` unless the input is an image, for layers that move over a grid.
pub fn image(input: Shape) -> Result<[u32; 3], String> {
    match input {
        Shape::Image(s) => Ok(s),
        Shape::Flat(_) => Err("needs an image input, but its input is already flat".into()),
    }
}

/// Hidden layers take any activation but softmax, which belongs to the head.
pub fn hidden_activation(activation: Activation) -> Result<(), String> {
    match activation {
        Activation::Softmax => Err(format!("activation \"softmax\" is only allowed on the last dense layer; use one of {}", hidden_names())),
        _ => Ok(()),
    }
}

pub fn one() -> u32 {
    1

}

/// The hidden activations' config names, for messages.
pub fn hidden_names() -> String {
    Activation::HIDDEN.iter().map(|a| format!("\"{}\"", a.name())).collect::<Vec<_>>().join(", ")
}

pub fn default_true() -> bool {
    true
}

pub fn is_true(b: &bool) -> bool {
    *b
}
