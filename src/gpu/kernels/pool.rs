//! Wrappers of pool.wgsl (max and average pooling).

use bytemuck::{Pod, Zeroable};

use super::batchnorm::Unstored;
use super::{Bind, Dispatch, Kernel, Kernels};
use crate::model::activation::Activation;
use crate::gpu::View;
use crate::model::PoolShape;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PoolParams {
    batch: u32,
    in_h: u32,
    in_w: u32,
    c: u32,
    out_h: u32,
    out_w: u32,
    pool_h: u32,
    pool_w: u32,
    stride_h: u32,
    stride_w: u32,
    /// 1 to pool a batchnorm's unstored output (its activation fused as the pipeline's).
    norm: u32,
    norm_at: u32,
}

impl Kernels {
    /// y = window max, argmax = flat x index of the first maximum; overwrites both. With `norm`,
    /// `x` is the input of a batchnorm whose unstored output is pooled (normalised on load),
    /// and the second view receives x at each maximum (per y). Channel quads when the channel
    /// count allows (`*_quads` kernels), else one channel each.
    pub fn maxpool2d_forward(&self, s: &PoolShape, x: &View, norm: Option<(&Unstored, &View)>, y: &View, argmax: &View) -> Dispatch {
        let quads = s.c.is_multiple_of(4);
        let k = if quads { Kernel::Maxpool2dForwardQuads } else { Kernel::Maxpool2dForward };
        let mut params = pool_params(s);
        let (coef, at_max, activation) = match norm {
            Some((n, at_max)) => {
                assert_eq!(n.channels, s.c, "a batchnorm's output pooled over its own channels");
                (params.norm, params.norm_at) = (1, n.scale_at());
                (&n.stats, at_max, n.activation)
            }
            None => (x, y, Activation::Linear),
        };
        let u = self.uniform(k, &params);
        let binds = match quads {
            true => [(7, Bind::Quads(x)), (8, Bind::Quads(y)), (9, Bind::Quads(argmax)), (14, Bind::Quads(coef)), (16, Bind::Quads(at_max))],
            false => [(1, Bind::Storage(x)), (2, Bind::Storage(y)), (3, Bind::Storage(argmax)), (13, Bind::Storage(coef)), (15, Bind::Storage(at_max))],
        };
        let binds: Vec<_> = std::iter::once((0, Bind::Uniform(&u))).chain(binds).collect();
        self.dispatch_fused(k, activation, &binds, self.grid(s.output_len() / if quads { 4 } else { 1 }))
    }

    /// dx = dy routed back to the argmax positions; overwrites dx. A scatter over channel
    /// quads when windows do not overlap and the channel count allows, else a gather.
    pub fn maxpool2d_backward(&self, s: &PoolShape, argmax: &View, dy: &View, dx: &View) -> Dispatch {
        let scatter = s.c.is_multiple_of(4) && s.stride[0] >= s.pool[0] && s.stride[1] >= s.pool[1];
        let k = if scatter { Kernel::Maxpool2dBackwardQuads } else { Kernel::Maxpool2dBackward };
        let u = self.uniform(k, &pool_params(s));
        let (binds, invocations) = match scatter {
            true => ([(10, Bind::Quads(argmax)), (11, Bind::Quads(dy)), (12, Bind::Quads(dx))], s.output_len() / 4),
            false => ([(4, Bind::Storage(argmax)), (5, Bind::Storage(dy)), (6, Bind::Storage(dx))], s.input_len()),
        };
        let binds: Vec<_> = std::iter::once((0, Bind::Uniform(&u))).chain(binds).collect();
        self.dispatch(k, &binds, self.grid(invocations))
    }

    /// y = window mean (global average pooling when the window is the whole image); overwrites y.
    pub fn avgpool2d_forward(&self, s: &PoolShape, x: &View, y: &View) -> Dispatch {
        let k = Kernel::Avgpool2dForward;
        let u = self.uniform(k, &pool_params(s));
        self.dispatch(k, &[(0, Bind::Uniform(&u)), (1, Bind::Storage(x)), (2, Bind::Storage(y))], self.grid(s.output_len()))
    }

    /// dx = dy spread evenly over each window (a gather, overlapping windows allowed); overwrites dx.
    pub fn avgpool2d_backward(&self, s: &PoolShape, dy: &View, dx: &View) -> Dispatch {
        let k = Kernel::Avgpool2dBackward;
        let u = self.uniform(k, &pool_params(s));
        self.dispatch(k, &[(0, Bind::Uniform(&u)), (5, Bind::Storage(dy)), (6, Bind::Storage(dx))], self.grid(s.input_len()))
    }
}

fn pool_params(s: &PoolShape) -> PoolParams {
    PoolParams {
        batch: s.batch,
        in_h: s.in_h,
        in_w: s.in_w,
        c: s.c,
        out_h: s.out_h(),
        out_w: s.out_w(),
        pool_h: s.pool[0],
        pool_w: s.pool[1],
        stride_h: s.stride[0],
        stride_w: s.stride[1],
        norm: 0,
        norm_at: 0,
    }
}
