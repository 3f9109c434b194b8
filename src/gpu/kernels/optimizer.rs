//! The optimizer step: its per-step uniform (`Step` in common.wgsl, shared by every kernel that
//! reads the step) and the wrappers of optimizer.wgsl: the Adam and SGD updates and the gradient
//! clipping that may precede them.

use bytemuck::{Pod, Zeroable};

use super::{Bind, Dispatch, Kernel, Kernels};
use crate::gpu::View;

/// Parameters per entry of the update kernels' per-chunk tables (`CHUNK_QUADS` quads): tensors
/// start on multiples of it, so a chunk belongs to one tensor.
pub const CHUNK: u64 = 64;

/// The per-step uniform (`Step` in common.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct StepParams {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// The bias-corrected step size lr * sqrt(1 - beta2^t) / (1 - beta1^t).
    pub lr_t: f32,
    /// Optimizer step, 1-based.
    pub t: u32,
    /// Valid rows in this batch.
    pub rows: u32,
    /// 0 makes dropout the identity.
    pub training: u32,
    /// Training step of the run, 1-based: it varies dropout's masks, and unlike `t` does not
    /// start again when layers are unfrozen.
    pub seq: u32,
    /// The uniform is a whole number of 16-byte rows.
    pub _pad: [u32; 3],
}

impl StepParams {
    /// Keras' Adam defaults (beta1 0.9, beta2 0.999, eps 1e-7) at 1-based step `t`, training
    /// (`seq` = `t`: a network that unfreezes sets the run's step itself). SGD reads `lr` only.
    pub fn adam(lr: f32, t: u32, rows: u32) -> Self {
        let (beta1, beta2) = (0.9f64, 0.999f64);
        let lr_t = lr as f64 * (1.0 - beta2.powi(t as i32)).sqrt() / (1.0 - beta1.powi(t as i32));
        Self { lr, beta1: beta1 as f32, beta2: beta2 as f32, eps: 1e-7, lr_t: lr_t as f32, t, rows, training: 1, seq: t, _pad: [0; 3] }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SgdParams {
    momentum: f32,
    nesterov: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ClipParams {
    norm: f32,
    chunks: u32,
    _pad: [u32; 2],
}

/// The per-chunk tables the update kernels read: `decay` (each chunk's weight decay, 0 where
/// excluded) and `scale` (its gradient's clip factor, 1 unless a clip kernel writes it), each
/// `params.len / CHUNK` long.
pub struct Tables<'a> {
    pub decay: &'a View,
    pub scale: &'a View,
}

impl Kernels {
    /// One Adam step over every parameter (`params`, `grads`, `m`, `v` of one length, a multiple
    /// of [`CHUNK`]), with decoupled weight decay and clip factors from `tables`: updates params,
    /// m and v in place.
    pub fn adam_update(&self, step: &wgpu::Buffer, params: &View, grads: &View, m: &View, v: &View, tables: &Tables) -> Dispatch {
        let k = Kernel::AdamUpdate;
        let binds = [
            (0, Bind::Uniform(step)),
            (1, Bind::Quads(params)),
            (2, Bind::Quads(grads)),
            (3, Bind::Quads(m)),
            (4, Bind::Quads(v)),
            (5, Bind::Storage(tables.decay)),
            (6, Bind::Storage(tables.scale)),
        ];
        self.dispatch(k, &binds, self.grid(params.len.div_ceil(4)))
    }

    /// One SGD step (Keras 3: momentum, optionally Nesterov) over every parameter, with decoupled
    /// weight decay and clip factors from `tables`: updates params and m in place.
    #[allow(clippy::too_many_arguments)]
    pub fn sgd_update(&self, step: &wgpu::Buffer, momentum: f32, nesterov: bool, params: &View, grads: &View, m: &View, tables: &Tables) -> Dispatch {
        let k = Kernel::SgdUpdate;
        let u = self.uniform(k, &SgdParams { momentum, nesterov: nesterov as u32, _pad: [0; 2] });
        let binds = [
            (0, Bind::Uniform(step)),
            (1, Bind::Quads(params)),
            (2, Bind::Quads(grads)),
            (3, Bind::Quads(m)),
            (5, Bind::Storage(tables.decay)),
            (6, Bind::Storage(tables.scale)),
            (7, Bind::Uniform(&u)),
        ];
        self.dispatch(k, &binds, self.grid(params.len.div_ceil(4)))
    }

    /// The sum of squares of each [`CHUNK`] of `grads` (a multiple of it long) into `partial`
    /// (one per chunk): overwrites partial.
    pub fn grad_norm_partials(&self, grads: &View, partial: &View) -> Dispatch {
        let k = Kernel::GradNormPartials;
        let chunks = grads.len / CHUNK;
        let u = self.uniform(k, &ClipParams { norm: 0.0, chunks: chunks as u32, _pad: [0; 2] });
        let binds = [(2, Bind::Quads(grads)), (8, Bind::Uniform(&u)), (9, Bind::Storage(partial))];
        self.dispatch(k, &binds, self.grid(chunks))
    }

    /// Keras `clipnorm`: from `partial` (see [`Kernels::grad_norm_partials`]), each tensor's
    /// chunks `ranges` ([first, end) per tensor, flat) get the scale norm / max(||g_t||, norm):
    /// overwrites those entries of scale. One workgroup per tensor.
    pub fn clip_by_norm(&self, norm: f32, partial: &View, ranges: &View, scale: &View) -> Dispatch {
        let k = Kernel::ClipByNorm;
        let u = self.uniform(k, &ClipParams { norm, chunks: partial.len as u32, _pad: [0; 2] });
        let binds = [(6, Bind::Storage(scale)), (8, Bind::Uniform(&u)), (9, Bind::Storage(partial)), (10, Bind::Storage(ranges))];
        let tensors = (ranges.len / 2) as u32;
        assert!(tensors <= self.max_groups, "{tensors} tensors exceed the adapter's grid");
        self.dispatch(k, &binds, [tensors, 1, 1])
    }

    /// Keras `global_clipnorm`: from `partial`, every chunk's scale is norm / max(||g||, norm),
    /// with ||g|| over all chunks together: overwrites scale. One workgroup.
    pub fn clip_by_global_norm(&self, norm: f32, partial: &View, scale: &View) -> Dispatch {
        let k = Kernel::ClipByGlobalNorm;
        let u = self.uniform(k, &ClipParams { norm, chunks: partial.len as u32, _pad: [0; 2] });
        let binds = [(6, Bind::Storage(scale)), (8, Bind::Uniform(&u)), (9, Bind::Storage(partial))];
        self.dispatch(k, &binds, [1, 1, 1])
    }
}
