//! `depthwise_conv2d` (Keras `DepthwiseConv2D`): one k x k filter per input channel, times
//! `depth_multiplier`, over NHWC images; kernel [kh, kw, C, m], output channel c * m + j,
//! optional bias [C * m] and fused ReLU.

use serde::{Deserialize, Serialize};

use super::conv2d::{record, Conv};
use super::{bias, default_true, glorot, hidden_activation, image, one, Activation, Build, Insertion, Kind, LayerKind, Loads, Pair, Padding, Role, Tensor};
use crate::gpu::GpuError;
use crate::model::shape::{ConvShape, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepthwiseConv2d {
    pub kernel: Pair,
    /// One stride for both axes.
    #[serde(default = "one")]
    pub stride: u32,
    #[serde(default)]
    pub padding: Padding,
    /// Filters per input channel.
    #[serde(default = "one")]
    pub depth_multiplier: u32,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default = "default_true")]
    pub use_bias: bool,
}

impl DepthwiseConv2d {
    /// A stride-1 depthwise conv with multiplier 1 and a bias.
    pub fn new(kernel: u32, padding: Padding, activation: Activation) -> Self {
        Self { kernel: Pair([kernel, kernel]), stride: 1, padding, depth_multiplier: 1, activation, use_bias: true }
    }

    /// The geometry the kernels take: out_c = in_c * depth_multiplier.
    pub fn shape(&self, batch: u32, input: [u32; 3]) -> ConvShape {
        ConvShape::keras(batch, input, input[2] * self.depth_multiplier, self.kernel.0, self.stride, self.padding == Padding::Same)
    }

    /// The output shape, or why the layer does not fit `input` (shared with separable_conv2d).
    pub fn check(&self, input: Shape) -> Result<Shape, String> {
        let [h, w, c] = image(input)?;
        let [kh, kw] = self.kernel.0;
        if kh == 0 || kw == 0 || self.stride == 0 || self.depth_multiplier == 0 {
            return Err("kernel, stride and depth_multiplier must be at least 1".into());
        }
        hidden_activation(self.activation)?;
        if self.padding == Padding::Valid && (kh > h || kw > w) {
            return Err(format!("kernel {kh}x{kw} is larger than its {h}x{w} input with padding \"valid\""));
        }
        let s = self.shape(1, [h, w, c]);
        Ok(Shape::Image([s.out_h, s.out_w, s.out_c]))
    }

    /// Keras' `depthwise_kernel` [kh, kw, C, m], glorot-uniform with Keras' fans (its
    /// `compute_fans` reads the shape as any kernel's: fan_in kh * kw * C, fan_out kh * kw * m).
    pub fn kernel_tensor(&self, input: Shape) -> Tensor {
        let shape = vec![self.kernel.0[0], self.kernel.0[1], input.channels(), self.depth_multiplier];
        Tensor { suffix: "depthwise_kernel", init: glorot(&shape), shape, trainable: true, role: Role::Depthwise }
    }

    /// Its kernel sides, stride and multiplier, for [`Kind::spatial_arguments`].
    pub fn arguments(&self) -> Vec<(&'static str, Vec<u32>)> {
        vec![("a kernel side", self.kernel.0.to_vec()), ("the stride", vec![self.stride]), ("the depth multiplier", vec![self.depth_multiplier])]
    }

    /// Scratch of its kernel gradient, and of a bias gradient over its output channels.
    pub fn scratch_of(s: &ConvShape) -> u64 {
        crate::gpu::Kernels::depthwise_conv2d_backward_kernel_scratch(s).max(crate::gpu::Kernels::column_sum_scratch(s.output_rows(), s.out_c))
    }

    /// Multiply-adds per image into `output` (one per tap per output value).
    pub fn macs(&self, output: Shape) -> u64 {
        output.len() * (self.kernel.0[0] * self.kernel.0[1]) as u64
    }
}

impl Kind for DepthwiseConv2d {
    fn stem(&self) -> &'static str {
        "depthwise_conv2d"
    }
    fn class(&self) -> &'static str {
        "DepthwiseConv2D"
    }
    fn output(&self, input: Shape, _: bool) -> Result<Shape, String> {
        self.check(input)
    }
    fn tensors(&self, input: Shape) -> Vec<Tensor> {
        let kernel = self.kernel_tensor(input);
        if self.use_bias { vec![kernel, bias(input.channels() * self.depth_multiplier)] } else { vec![kernel] }
    }
    fn activation(&self) -> Activation {
        self.activation
    }
    fn non_negative(&self, _: bool) -> bool {
        self.activation == Activation::Relu
    }
    /// Its width follows its input's (times the multiplier): widening replicates its filters
    /// with their input channels.
    /// Output channel c * m + j follows input channel c: one for one only at multiplier 1.
    fn keeps_channels(&self) -> bool {
        self.depth_multiplier == 1
    }
    fn same_but_width(&self, other: &LayerKind) -> bool {
        matches!(other, LayerKind::DepthwiseConv2d(o) if o == self)
    }
    fn has_bias(&self) -> bool {
        self.use_bias
    }
    fn accumulates(&self) -> bool {
        true
    }
    /// The identity: each channel's centre tap 1, which needs an odd kernel, stride 1, 'same'
    /// padding and one filter per channel.
    fn inserted(&self, input: Shape) -> Insertion {
        let kernel = self.kernel.0;
        if kernel[0].is_multiple_of(2) || kernel[1].is_multiple_of(2) || self.stride != 1 || self.padding != Padding::Same || self.depth_multiplier != 1 {
            Insertion::NoIdentity(Some("an inserted depthwise conv needs an odd kernel, stride 1, 'same' padding and depth_multiplier 1 to start as the identity".into()))
        } else {
            Insertion::Conv { units: input.channels() }
        }
    }
    fn spatial_arguments(&self) -> Vec<(&'static str, Vec<u32>)> {
        self.arguments()
    }
    fn scratch(&self, batch: u32, input: Shape) -> u64 {
        Self::scratch_of(&self.shape(batch, image(input).expect("validated spec")))
    }
    fn flops(&self, _: Shape, output: Shape, trains: bool, input_grad: bool, _: Option<Loads>) -> [u64; 2] {
        super::weighted_flops(self.macs(output), output.len(), self.use_bias, self.activation, trains, input_grad)
    }
    fn build(&self, b: &mut Build<'_>) -> Result<(), GpuError> {
        let s = self.shape(b.batch, image(b.input).expect("validated spec"));
        let (x, y, dx, dy) = (b.x, b.y, b.dx, b.backward_dy());
        record(b, Conv::Depthwise, &s, "depthwise_kernel", self.use_bias.then_some("bias"), self.activation, [x, y], [dx, dy], b.accumulate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shapes, Keras' tensors and fans, and FLOPs worked out by hand for a 5x7x3 input, 3x3
    /// kernel, multiplier 2, 'same', ReLU: output 5x7x6 = 210 values of 9 multiply-adds each.
    #[test]
    fn shapes_tensors_and_flops_by_hand() {
        let d = DepthwiseConv2d { depth_multiplier: 2, ..DepthwiseConv2d::new(3, Padding::Same, Activation::Relu) };
        let input = Shape::Image([5, 7, 3]);
        let out = d.output(input, false).unwrap();
        assert_eq!(out, Shape::Image([5, 7, 6]));
        let t = d.tensors(input);
        assert_eq!((t[0].suffix, t[0].shape.clone(), t[0].init), ("depthwise_kernel", vec![3, 3, 3, 2], crate::layers::Init::Glorot { fan_in: 27, fan_out: 18 }));
        assert_eq!((t[1].suffix, t[1].shape.clone()), ("bias", vec![6]));
        // Forward: 2 x 1890 multiply-adds, 210 bias adds, 210 ReLUs = 4200. Backward: the ReLU
        // mask 210, kernel gradient 3780, bias column sum 210, input gradient 3780 = 7980.
        assert_eq!(d.flops(input, out, true, true, None), [4200, 7980]);
        // Frozen, first layer: no backward work; stride 2 'valid': 2x3x6.
        assert_eq!(d.flops(input, out, false, false, None), [4200, 0]);
        let strided = DepthwiseConv2d { stride: 2, padding: Padding::Valid, ..d };
        assert_eq!(strided.output(input, false).unwrap(), Shape::Image([2, 3, 6]));
        assert!(DepthwiseConv2d { depth_multiplier: 0, ..d }.output(input, false).unwrap_err().contains("depth_multiplier"));
        assert!(d.output(Shape::Flat(4), false).is_err());
        assert!(matches!(d.inserted(input), Insertion::NoIdentity(Some(_))));
        assert_eq!(DepthwiseConv2d::new(3, Padding::Same, Activation::Linear).inserted(input), Insertion::Conv { units: 3 });
    }
}
