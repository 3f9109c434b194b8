//! `conv2d` (Keras `Conv2D`): a 2D convolution over NHWC images with kernel
//! [kh, kw, in, out], optional bias and an activation (see [`Fused`]).

use serde::{Deserialize, Serialize};

use super::activation::Fused;
use super::{default_true, hidden_activation, image, kernel_and_bias, one, Activation, Build, Insertion, Kind, LayerKind, Loads, Pair, Tensor};
use crate::gpu::{GpuError, View};
use crate::model::shape::{ConvShape, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    #[default]
    Valid,
    Same,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv2d {
    pub filters: u32,
    pub kernel: Pair,
    /// One stride for both axes.
    #[serde(default = "one")]
    pub stride: u32,
    #[serde(default)]
    pub padding: Padding,
    #[serde(default)]
    pub activation: Activation,
    /// Keras' `use_bias`; off before a BatchNorm, whose mean cancels any bias.
    #[serde(default = "default_true")]
    pub use_bias: bool,
}

impl Conv2d {
    /// A stride-1 conv with bias, Keras' usual block.
    pub fn new(filters: u32, kernel: u32, padding: Padding, activation: Activation) -> Self {
        Self { filters, kernel: Pair([kernel, kernel]), stride: 1, padding, activation, use_bias: true }
    }

    pub fn shape(&self, batch: u32, input: [u32; 3]) -> ConvShape {
        ConvShape::keras(batch, input, self.filters, self.kernel.0, self.stride, self.padding == Padding::Same)
    }
}

impl Kind for Conv2d {
    fn stem(&self) -> &'static str {
        "conv2d"
    }
    fn class(&self) -> &'static str {
        "Conv2D"
    }
    fn output(&self, input: Shape, _: bool) -> Result<Shape, String> {
        let [h, w, c] = image(input)?;
        let [kh, kw] = self.kernel.0;
        if self.filters == 0 || kh == 0 || kw == 0 || self.stride == 0 {
            return Err("filters, kernel and stride must be at least 1".into());
        }
        hidden_activation(self.activation)?;
        if self.padding == Padding::Valid && (kh > h || kw > w) {
            return Err(format!("kernel {kh}x{kw} is larger than its {h}x{w} input with padding \"valid\""));
        }
        let s = self.shape(1, [h, w, c]);
        Ok(Shape::Image([s.out_h, s.out_w, self.filters]))
    }
    fn tensors(&self, input: Shape) -> Vec<Tensor> {
        kernel_and_bias(&self.kernel.0, input.channels(), self.filters, self.use_bias)
    }
    fn activation(&self) -> Activation {
        self.activation
    }
    fn non_negative(&self, _: bool) -> bool {
        self.activation == Activation::Relu
    }
    fn units(&self) -> Option<u32> {
        Some(self.filters)
    }
    fn same_but_width(&self, other: &LayerKind) -> bool {
        matches!(other, LayerKind::Conv2d(o) if Self { filters: o.filters, ..*self } == *o)
    }
    fn same_but_activation(&self, other: &LayerKind) -> bool {
        matches!(other, LayerKind::Conv2d(o) if Self { filters: o.filters, activation: o.activation, use_bias: o.use_bias, ..*self } == *o)
    }
    fn has_bias(&self) -> bool {
        self.use_bias
    }
    fn accumulates(&self) -> bool {
        true
    }
    /// The identity needs an odd kernel, stride 1 and 'same' padding, and at least as many
    /// filters as input channels.
    fn inserted(&self, input: Shape) -> Insertion {
        let (filters, kernel, c) = (self.filters, self.kernel.0, input.channels());
        if filters < c {
            Insertion::NoIdentity(Some(format!("an inserted conv needs at least as many filters as input channels ({filters} vs {c}) to start as the identity")))
        } else if kernel[0] % 2 == 0 || kernel[1] % 2 == 0 || self.stride != 1 || self.padding != Padding::Same {
            Insertion::NoIdentity(Some("an inserted conv needs an odd kernel, stride 1 and 'same' padding to start as the identity".into()))
        } else {
            Insertion::Conv { units: filters }
        }
    }
    fn spatial_arguments(&self) -> Vec<(&'static str, Vec<u32>)> {
        vec![("a kernel side", self.kernel.0.to_vec()), ("the stride", vec![self.stride])]
    }
    fn scratch(&self, batch: u32, input: Shape) -> u64 {
        let s = self.shape(batch, image(input).expect("validated spec"));
        crate::gpu::Kernels::conv2d_backward_kernel_scratch(&s).max(crate::gpu::Kernels::column_sum_scratch(s.output_rows(), self.filters))
    }
    fn flops(&self, input: Shape, output: Shape, trains: bool, input_grad: bool, _: Option<Loads>) -> [u64; 2] {
        let [kh, kw] = self.kernel.0;
        let macs = output.len() * (kh * kw * input.channels()) as u64;
        super::weighted_flops(macs, output.len(), self.use_bias, self.activation, trains, input_grad)
    }
    fn build(&self, b: &mut Build<'_>) -> Result<(), GpuError> {
        let s = self.shape(b.batch, image(b.input).expect("validated spec"));
        let (x, y, dx, dy) = (b.x, b.y, b.dx, b.backward_dy());
        record(b, Conv::Full, &s, "kernel", self.use_bias.then_some("bias"), self.activation, [x, y], [dx, dy], b.accumulate)
    }
}

/// Which conv kernels [`record`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conv {
    /// conv2d.wgsl: kernel [kh, kw, in, out].
    Full,
    /// depthwise_conv2d.wgsl: kernel [kh, kw, in, multiplier].
    Depthwise,
}

/// Records one conv of `b`'s layer from `x` into `y`: the forward pass with the tensor named
/// `bias` (or a zero vector) and the fused ReLU; backward from `dy` (None: no backward work),
/// the ReLU's mask, the gradients of `kernel` and `bias` when the layer trains, and `dx` when
/// given (added into with `accumulate`, see [`Build::accumulate`]). conv2d, depthwise_conv2d
/// and both halves of separable_conv2d record through this.
#[allow(clippy::too_many_arguments)]
pub fn record(b: &mut Build<'_>, conv: Conv, s: &ConvShape, kernel: &str, bias: Option<&str>, activation: Activation, [x, y]: [&View; 2], [dx, dy]: [Option<&View>; 2], accumulate: bool) -> Result<(), GpuError> {
    let w = b.param(kernel);
    // Without a bias the forward kernel adds a zero vector: one kernel serves both.
    let bias_values = match bias {
        Some(suffix) => b.param(suffix),
        None => b.ctx.storage(&format!("{} zero bias", b.name), s.out_c as u64)?,
    };
    let act = Fused::new(activation, b, y)?;
    let k = b.kernels;
    let forward = match conv {
        Conv::Full => k.conv2d_forward(s, act.store(), x, &w, &bias_values, act.out()),
        Conv::Depthwise => k.depthwise_conv2d_forward(s, act.store(), x, &w, &bias_values, act.out()),
    };
    act.forward(b, [forward]);
    let Some(dy) = dy else { return Ok(()) };
    act.backward(b, dy);
    if b.trainable {
        let dw = b.grad(kernel);
        b.backward.extend(match conv {
            Conv::Full => k.conv2d_backward_kernel(s, x, dy, &dw, b.scratch),
            Conv::Depthwise => k.depthwise_conv2d_backward_kernel(s, x, dy, &dw, b.scratch),
        });
        if let Some(suffix) = bias {
            b.backward.extend(k.column_sum(s.output_rows(), s.out_c, dy, &b.grad(suffix), b.scratch));
        }
    }
    if let Some(dx) = dx {
        b.backward.push(match conv {
            Conv::Full => k.conv2d_backward_input(s, dy, &w, dx, accumulate),
            Conv::Depthwise => k.depthwise_conv2d_backward_input(s, dy, &w, dx, accumulate),
        });
    }
    Ok(())
}
