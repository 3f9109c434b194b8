//! `separable_conv2d` (Keras `SeparableConv2D`): a depthwise conv (no bias, no activation)
//! into a buffer the layer owns, then a 1x1 pointwise conv with bias and fused ReLU. Tensors in
//! Keras' order: `depthwise_kernel` [kh, kw, C, m], `pointwise_kernel` [1, 1, C * m, filters],
//! `bias` [filters]. Both halves run the depthwise and conv2d kernels.

use serde::{Deserialize, Serialize};

use super::conv2d::{record, Conv};
use super::depthwise_conv2d::DepthwiseConv2d;
use super::{bias, default_true, glorot, image, one, Activation, Build, Insertion, Kind, LayerKind, Loads, Pair, Padding, Role, Tensor};
use crate::gpu::GpuError;
use crate::model::shape::{ConvShape, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeparableConv2d {
    pub filters: u32,
    pub kernel: Pair,
    /// One stride for both axes (the depthwise conv's).
    #[serde(default = "one")]
    pub stride: u32,
    #[serde(default)]
    pub padding: Padding,
    #[serde(default = "one")]
    pub depth_multiplier: u32,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default = "default_true")]
    pub use_bias: bool,
}

impl SeparableConv2d {
    /// A stride-1 separable conv with multiplier 1 and a bias.
    pub fn new(filters: u32, kernel: u32, padding: Padding, activation: Activation) -> Self {
        Self { filters, kernel: Pair([kernel, kernel]), stride: 1, padding, depth_multiplier: 1, activation, use_bias: true }
    }

    /// Its depthwise half: no bias, no activation.
    fn depthwise(&self) -> DepthwiseConv2d {
        DepthwiseConv2d { kernel: self.kernel, stride: self.stride, padding: self.padding, depth_multiplier: self.depth_multiplier, activation: Activation::Linear, use_bias: false }
    }

    /// The geometry of both halves: the depthwise conv, and the pointwise conv on its output.
    pub fn shapes(&self, batch: u32, input: [u32; 3]) -> [ConvShape; 2] {
        let d = self.depthwise().shape(batch, input);
        [d, ConvShape::keras(batch, [d.out_h, d.out_w, d.out_c], self.filters, [1, 1], 1, false)]
    }
}

impl Kind for SeparableConv2d {
    fn stem(&self) -> &'static str {
        "separable_conv2d"
    }
    fn class(&self) -> &'static str {
        "SeparableConv2D"
    }
    fn output(&self, input: Shape, _: bool) -> Result<Shape, String> {
        if self.filters == 0 {
            return Err("filters must be at least 1".into());
        }
        super::hidden_activation(self.activation)?;
        let [h, w, _] = image(self.depthwise().check(input)?)?;
        Ok(Shape::Image([h, w, self.filters]))
    }
    fn tensors(&self, input: Shape) -> Vec<Tensor> {
        let pointwise = vec![1, 1, input.channels() * self.depth_multiplier, self.filters];
        let mut t = vec![
            self.depthwise().kernel_tensor(input),
            Tensor { suffix: "pointwise_kernel", init: glorot(&pointwise), shape: pointwise, trainable: true, role: Role::Kernel },
        ];
        if self.use_bias {
            t.push(bias(self.filters));
        }
        t
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
        matches!(other, LayerKind::SeparableConv2d(o) if Self { filters: o.filters, ..*self } == *o)
    }
    fn has_bias(&self) -> bool {
        self.use_bias
    }
    fn accumulates(&self) -> bool {
        true
    }
    fn inserted(&self, _: Shape) -> Insertion {
        Insertion::NoIdentity(Some("an inserted separable conv cannot start as the identity here; insert a depthwise_conv2d and a 1x1 conv2d instead".into()))
    }
    fn spatial_arguments(&self) -> Vec<(&'static str, Vec<u32>)> {
        self.depthwise().arguments()
    }
    fn scratch(&self, batch: u32, input: Shape) -> u64 {
        let [d, p] = self.shapes(batch, image(input).expect("validated spec"));
        let pointwise = crate::gpu::Kernels::conv2d_backward_kernel_scratch(&p).max(crate::gpu::Kernels::column_sum_scratch(p.output_rows(), p.out_c));
        DepthwiseConv2d::scratch_of(&d).max(pointwise)
    }
    /// The depthwise half's (no bias, no ReLU) plus the pointwise conv's, which passes a
    /// gradient down whenever the depthwise half has backward work.
    fn flops(&self, input: Shape, output: Shape, trains: bool, input_grad: bool, _: Option<Loads>) -> [u64; 2] {
        let depthwise = self.depthwise();
        let middle = depthwise.check(input).expect("validated spec");
        let d = super::weighted_flops(depthwise.macs(middle), middle.len(), false, Activation::Linear, trains, input_grad);
        let macs = output.len() * middle.channels() as u64;
        let p = super::weighted_flops(macs, output.len(), self.use_bias, self.activation, trains, trains || input_grad);
        [d[0] + p[0], d[1] + p[1]]
    }
    fn buffers(&self, input: Shape) -> Vec<(&'static str, u64)> {
        vec![("its depthwise output (per image)", self.depthwise().check(input).expect("validated spec").len())]
    }
    fn build(&self, b: &mut Build<'_>) -> Result<(), GpuError> {
        let [d, p] = self.shapes(b.batch, image(b.input).expect("validated spec"));
        let middle = b.ctx.storage(&format!("{} depthwise output", b.name), d.output_len())?;
        let (x, y, dx, dy) = (b.x, b.y, b.dx, b.backward_dy());
        // The depthwise output's gradient, when the depthwise half has backward work.
        let middle_grad = match dy.is_some() {
            true => Some(b.ctx.storage(&format!("{} depthwise output gradient", b.name), d.output_len())?),
            false => None,
        };
        let first = b.backward.len();
        record(b, Conv::Depthwise, &d, "depthwise_kernel", None, Activation::Linear, [x, &middle], [dx, middle_grad.as_ref()], b.accumulate)?;
        let depthwise_backward = b.backward.len() - first;
        record(b, Conv::Full, &p, "pointwise_kernel", self.use_bias.then_some("bias"), self.activation, [&middle, y], [middle_grad.as_ref(), dy], false)?;
        // Backward runs the pointwise half first.
        b.backward[first..].rotate_left(depthwise_backward);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 6x5x3 input, 3x3 kernel, stride 2 'same', multiplier 2, 4 filters, ReLU, by hand: the
    /// depthwise half gives 3x3x6 (54 values of 9 multiply-adds: 486), the pointwise 3x3x4 (36
    /// values of 6: 216).
    #[test]
    fn shapes_tensors_and_flops_by_hand() {
        let s = SeparableConv2d { stride: 2, depth_multiplier: 2, ..SeparableConv2d::new(4, 3, Padding::Same, Activation::Relu) };
        let input = Shape::Image([6, 5, 3]);
        let out = s.output(input, false).unwrap();
        assert_eq!(out, Shape::Image([3, 3, 4]));
        let t = s.tensors(input);
        let shapes: Vec<_> = t.iter().map(|t| (t.suffix, t.shape.clone(), t.init)).collect();
        use crate::layers::Init::{Glorot, Zeros};
        assert_eq!(shapes, [
            ("depthwise_kernel", vec![3, 3, 3, 2], Glorot { fan_in: 27, fan_out: 18 }),
            ("pointwise_kernel", vec![1, 1, 6, 4], Glorot { fan_in: 6, fan_out: 4 }),
            ("bias", vec![4], Zeros),
        ]);
        // Forward: 2 x 486 + 2 x 216 multiply-adds, 36 bias adds, 36 ReLUs = 1476. Backward:
        // the ReLU mask 36, pointwise kernel gradient 432 and bias 36, its input gradient 432;
        // depthwise kernel gradient 972 and input gradient 972 = 2880.
        assert_eq!(s.flops(input, out, true, true, None), [1476, 2880]);
        // Frozen, first layer: nothing backward.
        assert_eq!(s.flops(input, out, false, false, None), [1476, 0]);
        // Training but the first layer: no input gradient (972 less).
        assert_eq!(s.flops(input, out, true, false, None), [1476, 1908]);
    }
}
