//! The Adam step: its uniform (`Step` in common.wgsl, shared by every kernel that reads the
//! step) and the wrapper of adam.wgsl.

use bytemuck::{Pod, Zeroable};

use super::{Bind, Dispatch, Kernel, Kernels};
use crate::gpu::View;

/// adam_update's arithmetic per parameter: the two moments (3 + 4) and the step (5).
pub const FLOPS_PER_PARAMETER: u64 = 12;

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
    /// Adam step, 1-based.
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
    /// (`seq` = `t`: a network that unfreezes sets the run's step itself).
    pub fn adam(lr: f32, t: u32, rows: u32) -> Self {
        let (beta1, beta2) = (0.9f64, 0.999f64);
        let lr_t = lr as f64 * (1.0 - beta2.powi(t as i32)).sqrt() / (1.0 - beta1.powi(t as i32));
        Self { lr, beta1: beta1 as f32, beta2: beta2 as f32, eps: 1e-7, lr_t: lr_t as f32, t, rows, training: 1, seq: t, _pad: [0; 3] }
    }
}

impl Kernels {
    /// One Adam step over every parameter: updates params, m and v in place.
    pub fn adam_update(&self, step: &wgpu::Buffer, params: &View, grads: &View, m: &View, v: &View) -> Dispatch {
        let k = Kernel::AdamUpdate;
        let binds = [
            (0, Bind::Uniform(step)),
            (1, Bind::Quads(params)),
            (2, Bind::Quads(grads)),
            (3, Bind::Quads(m)),
            (4, Bind::Quads(v)),
        ];
        self.dispatch(k, &binds, self.grid(params.len.div_ceil(4)))
    }
}
