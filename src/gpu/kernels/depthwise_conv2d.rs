//! Wrappers of depthwise_conv2d.wgsl (Keras `DepthwiseConv2D`), which shares conv2d.wgsl's
//! uniform, bindings and tiles. The geometry is a [`ConvShape`] whose out_c is in_c times the
//! depth multiplier; the kernel is [k_h, k_w, in_c, multiplier] (see
//! [`ConvShape::depthwise_kernel_len`]).

use super::conv2d::pixel_tiles;
use super::{scratch_len, Bind, Dispatch, Kernel, Kernels, Splits};
use crate::gpu::View;
use crate::model::activation::Activation;
use crate::model::ConvShape;

impl ConvShape {
    /// Whether the depthwise kernels load by quads: multiplier 1 (output channel o reads input
    /// channel o) and channels a multiple of 4.
    fn depthwise_quads(&self) -> bool {
        self.out_c == self.in_c && self.in_c.is_multiple_of(4)
    }
}

impl Kernels {
    /// y [batch, out_h, out_w, out_c] = act(depthwise(x, w) + b); overwrites y.
    pub fn depthwise_conv2d_forward(&self, s: &ConvShape, activation: Activation, x: &View, w: &View, b: &View, y: &View) -> Dispatch {
        let k = Kernel::DepthwiseConv2dForward { quads: s.depthwise_quads() };
        let u = self.uniform(k, &s.params(Splits { count: 1, chunk: 1 }));
        let binds = [
            (0, Bind::Uniform(&u)),
            (1, Bind::Storage(x)),
            (8, Bind::Quads(x)),
            (2, Bind::Storage(w)),
            (9, Bind::Quads(w)),
            (3, Bind::Storage(b)),
            (4, Bind::Storage(y)),
        ];
        self.dispatch_fused(k, activation, &binds, self.grid(pixel_tiles(k, s.batch, s.out_h, s.out_w, s.out_c)))
    }

    /// dx [batch, in_h, in_w, in_c] from dy at the pre-activation; overwrites dx
    /// (`accumulate`: adds into it).
    pub fn depthwise_conv2d_backward_input(&self, s: &ConvShape, dy: &View, w: &View, dx: &View, accumulate: bool) -> Dispatch {
        let k = Kernel::DepthwiseConv2dBackwardInput { quads: s.depthwise_quads() };
        let u = self.uniform(k, &s.input_gradient_params(accumulate));
        let binds = [(0, Bind::Uniform(&u)), (5, Bind::Storage(dy)), (10, Bind::Quads(dy)), (2, Bind::Storage(w)), (9, Bind::Quads(w)), (6, Bind::Storage(dx))];
        self.dispatch(k, &binds, self.grid(pixel_tiles(k, s.batch, s.in_h, s.in_w, s.in_c)))
    }

    /// Scratch elements [`Self::depthwise_conv2d_backward_kernel`] needs for this shape.
    pub fn depthwise_conv2d_backward_kernel_scratch(s: &ConvShape) -> u64 {
        scratch_len(Self::depthwise_kernel_splits(s), s.depthwise_kernel_len())
    }

    /// Invocations of one split of the kernel gradient: taps x output-channel quads.
    fn depthwise_kernel_tiles(s: &ConvShape) -> u64 {
        (s.k_h * s.k_w) as u64 * s.out_c.div_ceil(4) as u64
    }

    fn depthwise_kernel_splits(s: &ConvShape) -> Splits {
        Splits::choose(Self::depthwise_kernel_tiles(s), s.output_rows() as u32)
    }

    /// dw [k_h, k_w, in_c, multiplier] = sum over rows of x patches times dy; overwrites dw.
    /// One or two dispatches (split reduction, then `sum_partials` through `scratch`).
    pub fn depthwise_conv2d_backward_kernel(&self, s: &ConvShape, x: &View, dy: &View, dw: &View, scratch: &View) -> Vec<Dispatch> {
        let k = Kernel::DepthwiseConv2dBackwardKernel { quads: s.depthwise_quads() };
        let splits = Self::depthwise_kernel_splits(s);
        let target = if splits.count > 1 { scratch } else { dw };
        let u = self.uniform(k, &s.params(splits));
        let binds = [(0, Bind::Uniform(&u)), (1, Bind::Storage(x)), (8, Bind::Quads(x)), (5, Bind::Storage(dy)), (10, Bind::Quads(dy)), (7, Bind::Storage(target))];
        let mut out = vec![self.dispatch(k, &binds, self.grid(splits.count as u64 * Self::depthwise_kernel_tiles(s)))];
        if splits.count > 1 {
            out.push(self.sum_partials(splits.count, s.depthwise_kernel_len(), None, Activation::Linear, scratch, dw));
        }
        out
    }
}
