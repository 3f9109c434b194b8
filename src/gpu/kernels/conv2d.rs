//! Wrappers of conv2d.wgsl and its subgroup variants (conv2d_subgroup.wgsl).

use bytemuck::{Pod, Zeroable};

use super::{scratch_len, Bind, Dispatch, Kernel, Kernels, Splits, CONV_PIXELS, CONV_SUBGROUP_PIXELS, KERNEL_GRADIENT_SUBGROUP_UNITS};
use crate::gpu::View;
use crate::model::activation::Activation;
use crate::model::ConvShape;

/// Invocations of conv kernel `k` over a batch of h x w x c tensors (`pixel_tiles` in
/// conv2d.wgsl).
pub(super) fn pixel_tiles(k: Kernel, batch: u32, h: u32, w: u32, c: u32) -> u64 {
    let pixels = if k.uses_subgroups() { CONV_SUBGROUP_PIXELS } else { CONV_PIXELS };
    batch as u64 * h as u64 * w.div_ceil(pixels) as u64 * c.div_ceil(4) as u64
}

impl ConvShape {
    /// The uniform of an input gradient, which adds into dx with `accumulate`.
    pub(super) fn input_gradient_params(&self, accumulate: bool) -> ConvParams {
        ConvParams { accumulate: accumulate as u32, ..self.params(Splits { count: 1, chunk: 1 }) }
    }

    /// The uniform of conv2d.wgsl (and depthwise_conv2d.wgsl, which shares it).
    pub(super) fn params(&self, splits: Splits) -> ConvParams {
        ConvParams {
            batch: self.batch,
            in_h: self.in_h,
            in_w: self.in_w,
            in_c: self.in_c,
            out_h: self.out_h,
            out_w: self.out_w,
            out_c: self.out_c,
            k_h: self.k_h,
            k_w: self.k_w,
            stride: self.stride,
            pad_top: self.pad_top,
            pad_left: self.pad_left,
            _pad: 0,
            splits: splits.count,
            rows_per_split: splits.chunk,
            accumulate: 0,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct ConvParams {
    batch: u32,
    in_h: u32,
    in_w: u32,
    in_c: u32,
    out_h: u32,
    out_w: u32,
    out_c: u32,
    k_h: u32,
    k_w: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    _pad: u32,
    splits: u32,
    rows_per_split: u32,
    accumulate: u32,
}

impl Kernels {
    /// Whether the subgroup conv kernels apply to a channel count their lanes split: one
    /// channel quad per lane, whole subgroups (conv2d_subgroup.wgsl).
    fn shares_lanes(&self, channels: u32) -> bool {
        self.lanes.is_some_and(|s| channels.is_multiple_of(4 * s))
    }

    /// y [batch, out_h, out_w, out_c] = act(conv(x, w) + b); overwrites y.
    pub fn conv2d_forward(&self, s: &ConvShape, activation: Activation, x: &View, w: &View, b: &View, y: &View) -> Dispatch {
        let x_quads = s.in_c.is_multiple_of(4);
        let k = match self.shares_lanes(s.out_c) {
            true => Kernel::Conv2dForwardSubgroup { x_quads },
            false => Kernel::Conv2dForward { x_quads, out_quads: s.out_c.is_multiple_of(4) },
        };
        let u = self.uniform(k, &s.params(Splits { count: 1, chunk: 1 }));
        let mut binds = vec![
            (0, Bind::Uniform(&u)),
            (1, Bind::Storage(x)),
            (8, Bind::Quads(x)),
            (9, Bind::Quads(w)),
            (3, Bind::Storage(b)),
            (4, Bind::Storage(y)),
        ];
        if !k.uses_subgroups() {
            binds.push((2, Bind::Storage(w)));
        }
        self.dispatch_fused(k, activation, &binds, self.grid(pixel_tiles(k, s.batch, s.out_h, s.out_w, s.out_c)))
    }

    /// dx [batch, in_h, in_w, in_c] from dy at the pre-activation; overwrites dx.
    /// dx = the transposed conv of dy (`accumulate`: dx += it).
    pub fn conv2d_backward_input(&self, s: &ConvShape, dy: &View, w: &View, dx: &View, accumulate: bool) -> Dispatch {
        let out_quads = s.out_c.is_multiple_of(4);
        let k = match out_quads && self.shares_lanes(s.in_c) {
            true => Kernel::Conv2dBackwardInputSubgroup,
            false => Kernel::Conv2dBackwardInput { out_quads },
        };
        let u = self.uniform(k, &s.input_gradient_params(accumulate));
        let mut binds = vec![(0, Bind::Uniform(&u)), (10, Bind::Quads(dy)), (9, Bind::Quads(w)), (6, Bind::Storage(dx))];
        if !k.uses_subgroups() {
            binds.extend([(5, Bind::Storage(dy)), (2, Bind::Storage(w))]);
        }
        self.dispatch(k, &binds, self.grid(pixel_tiles(k, s.batch, s.in_h, s.in_w, s.in_c)))
    }

    /// Scratch elements [`Self::conv2d_backward_kernel`] needs for this shape.
    pub fn conv2d_backward_kernel_scratch(s: &ConvShape) -> u64 {
        scratch_len(Self::conv_kernel_splits(s), s.kernel_len())
    }

    /// Invocations of one split of the kernel gradient: taps x input-channel quads x output-channel quads.
    fn conv_kernel_tiles(s: &ConvShape) -> u64 {
        (s.k_h * s.k_w) as u64 * s.in_c.div_ceil(4) as u64 * s.out_c.div_ceil(4) as u64
    }

    fn conv_kernel_splits(s: &ConvShape) -> Splits {
        Splits::choose(Self::conv_kernel_tiles(s), s.output_rows() as u32)
    }

    /// dw [k_h, k_w, in_c, out_c] = sum over rows of x patches times dy; overwrites dw.
    /// One or two dispatches (split reduction, then `sum_partials` through `scratch`).
    pub fn conv2d_backward_kernel(&self, s: &ConvShape, x: &View, dy: &View, dw: &View, scratch: &View) -> Vec<Dispatch> {
        let x_quads = s.in_c.is_multiple_of(4);
        let k = match self.shares_lanes(s.out_c) {
            true => Kernel::Conv2dBackwardKernelSubgroup { x_quads },
            false => Kernel::Conv2dBackwardKernel { x_quads, out_quads: s.out_c.is_multiple_of(4) },
        };
        let splits = Self::conv_kernel_splits(s);
        let target = if splits.count > 1 { scratch } else { dw };
        let u = self.uniform(k, &s.params(splits));
        let n = splits.count as u64
            * match k.uses_subgroups() {
                true => ((s.k_h * s.k_w * s.in_c.div_ceil(4)).div_ceil(KERNEL_GRADIENT_SUBGROUP_UNITS) * s.out_c / 4) as u64,
                false => Self::conv_kernel_tiles(s),
            };
        let binds = [
            (0, Bind::Uniform(&u)),
            (1, Bind::Storage(x)),
            (8, Bind::Quads(x)),
            (5, Bind::Storage(dy)),
            (10, Bind::Quads(dy)),
            (7, Bind::Storage(target)),
        ];
        let mut out = vec![self.dispatch(k, &binds, self.grid(n))];
        if splits.count > 1 {
            out.push(self.sum_partials(splits.count, s.kernel_len(), None, Activation::Linear, scratch, dw));
        }
        out
    }
}
