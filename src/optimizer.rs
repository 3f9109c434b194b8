//! The optimizers, with Keras 3 semantics and defaults: Adam, AdamW (Adam with decoupled weight
//! decay, 0.004 by default) and SGD (momentum, Nesterov). Any of them may decay weights
//! (`var -= lr * wd * var` before the gradient step, except for excluded tensors) and clip
//! gradients per tensor (`clipnorm`) or all together (`global_clipnorm`). This module holds the
//! resolved settings, the names of their state in checkpoints, and the buffers and dispatches of
//! one update step (the kernels are in optimizer.wgsl).

use serde::{Deserialize, Serialize};

use crate::gpu::kernels::optimizer::{Tables, CHUNK};
use crate::gpu::kernels::{Dispatch, Kernels};
use crate::gpu::{GpuContext, GpuError, View};
use crate::model::ParamInfo;

/// The first part of every checkpoint name of optimizer state (`adam.m.<tensor>`,
/// `sgd.m.<tensor>`).
pub const STATE_NAMESPACES: [&str; 2] = ["adam", "sgd"];

/// Whether `name` (a tensor's, or a layer's, whose tensors are `<layer>.<suffix>`) lies where a
/// checkpoint keeps optimizer state.
pub fn is_state_name(name: &str) -> bool {
    STATE_NAMESPACES.iter().any(|ns| name.strip_prefix(ns).is_some_and(|rest| rest.starts_with('.')))
}

/// `[train] optimizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Adam,
    AdamW,
    Sgd,
}

impl Kind {
    /// Keras' default `weight_decay` (None, i.e. 0, for Adam and SGD).
    pub fn default_weight_decay(self) -> f32 {
        match self {
            Kind::AdamW => 0.004,
            Kind::Adam | Kind::Sgd => 0.0,
        }
    }
}

/// Gradient clipping: Keras' `clipnorm` (each tensor's gradient to at most this norm) or
/// `global_clipnorm` (all of them together); Keras allows one of them at a time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clip {
    Norm(f32),
    GlobalNorm(f32),
}

/// An optimizer's settings, defaults resolved. The default is Keras' Adam, which checkpoints
/// written before other optimizers existed hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    pub kind: Kind,
    /// SGD's momentum.
    pub momentum: f32,
    /// SGD's Nesterov form.
    pub nesterov: bool,
    /// Decoupled weight decay.
    pub weight_decay: f32,
    /// Tensors weight decay leaves alone (see [`OptimizerConfig::excludes`]).
    pub weight_decay_exclude: Vec<String>,
    pub clip: Option<Clip>,
}

/// Whether `pattern` names `info`: its full name (`dense_1.bias`), its name within the layer
/// (`bias`: every bias) or its layer's name (`batch_normalization_1`: all of that layer's).
/// Whole names rather than Keras' regular expressions, so an entry never catches more than it says.
pub fn names(pattern: &str, info: &ParamInfo) -> bool {
    let layer = &info.name[..info.name.len() - info.suffix.len() - 1];
    pattern == info.name || pattern == info.suffix || pattern == layer
}

impl OptimizerConfig {
    /// Arithmetic per trainable parameter of one update (optimizer.wgsl): Adam's two moments
    /// (3 + 4) and step (5); SGD's momentum (3) and step (1, Nesterov's 4); decay's 2.
    pub fn flops_per_parameter(&self) -> u64 {
        let step = match self.kind {
            Kind::Adam | Kind::AdamW => 12,
            Kind::Sgd if self.nesterov => 7,
            Kind::Sgd => 4,
        };
        step + 2 * (self.weight_decay > 0.0) as u64
    }

    /// Moment tensors per trainable tensor: Adam's m and v, SGD's momentum.
    pub fn moments(&self) -> usize {
        match self.kind {
            Kind::Adam | Kind::AdamW => 2,
            Kind::Sgd => 1,
        }
    }

    /// Checkpoint name of moment `k` of tensor `name`: `adam.m.<name>`, `adam.v.<name>` (Adam and
    /// AdamW keep the same state), `sgd.m.<name>`.
    pub fn moment_name(&self, k: usize, name: &str) -> String {
        format!("{}.{}.{name}", self.prefix(), ["m", "v"][k])
    }

    /// Checkpoint metadata key of the optimizer's step count.
    pub fn step_key(&self) -> &'static str {
        match self.kind {
            Kind::Adam | Kind::AdamW => "adam_step",
            Kind::Sgd => "sgd_step",
        }
    }

    fn prefix(&self) -> &'static str {
        match self.kind {
            Kind::Adam | Kind::AdamW => STATE_NAMESPACES[0],
            Kind::Sgd => STATE_NAMESPACES[1],
        }
    }

    /// Whether weight decay leaves `info` alone.
    pub fn excludes(&self, info: &ParamInfo) -> bool {
        self.weight_decay_exclude.iter().any(|p| names(p, info))
    }

    /// The size of the step the optimizer takes at rate `lr` on its 1-based step `t`: Adam's
    /// bias-corrected lr * sqrt(1 - beta2^t) / (1 - beta1^t), SGD's lr.
    pub fn step_size(&self, lr: f32, t: u32) -> f64 {
        match self.kind {
            Kind::Adam | Kind::AdamW => crate::gpu::kernels::optimizer::StepParams::adam(lr, t.max(1), 0).lr_t as f64,
            Kind::Sgd => lr as f64,
        }
    }

    /// Allocates the optimizer's state for the trainable tensors `trainable` (with their offsets
    /// in the flat buffers; they fill `params[..len]` and `grads[..len]`, `len` a multiple of
    /// [`CHUNK`]) and records one update step: the clip kernels, if any, then the update.
    pub fn build(&self, ctx: &GpuContext, kernels: &Kernels, step: &wgpu::Buffer, trainable: &[(&ParamInfo, u64)], params: &View, grads: &View) -> Result<Update, GpuError> {
        let len = params.len;
        assert!(len.is_multiple_of(CHUNK), "the trainable tensors fill whole chunks");
        let chunks = (len / CHUNK).max(1);
        // Each tensor's chunks, in order: it starts on one and its padding fills its last.
        let mut decay = vec![0f32; chunks as usize];
        let mut ranges = Vec::new();
        for &(info, offset) in trainable {
            let (first, end) = (offset / CHUNK, (offset + info.len()).div_ceil(CHUNK));
            let wd = if self.excludes(info) { 0.0 } else { self.weight_decay };
            decay[first as usize..end as usize].fill(wd);
            ranges.extend([first as u32, end as u32]);
        }
        let decay = ctx.upload("weight decay per chunk", &decay)?;
        let scale = ctx.upload("gradient clip scale per chunk", &vec![1f32; chunks as usize])?;
        let tables = Tables { decay: &decay, scale: &scale };
        let mut dispatches = Vec::new();
        if let Some(clip) = self.clip {
            let partial = ctx.storage("gradient norm partial sums", chunks)?;
            dispatches.push(kernels.grad_norm_partials(grads, &partial));
            dispatches.push(match clip {
                Clip::Norm(norm) => kernels.clip_by_norm(norm, &partial, &ctx.upload("chunks per tensor", &ranges)?, &scale),
                Clip::GlobalNorm(norm) => kernels.clip_by_global_norm(norm, &partial, &scale),
            });
        }
        let moments = (0..self.moments()).map(|k| ctx.storage(["first moments", "second moments"][k], len)).collect::<Result<Vec<_>, _>>()?;
        dispatches.push(match self.kind {
            Kind::Adam | Kind::AdamW => kernels.adam_update(step, params, grads, &moments[0], &moments[1], &tables),
            Kind::Sgd => kernels.sgd_update(step, self.momentum, self.nesterov, params, grads, &moments[0], &tables),
        });
        Ok(Update { moments, dispatches })
    }
}

/// One optimizer step as a network records it: its state and dispatches.
pub struct Update {
    /// Adam's m and v, or SGD's momentum, over the trainable prefix of the flat buffers.
    pub moments: Vec<View>,
    pub dispatches: Vec<Dispatch>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The FLOPs a step counts per parameter follow the optimizer that runs, not Adam's always.
    #[test]
    fn an_update_counts_its_own_optimizers_arithmetic() {
        let sgd = |nesterov, weight_decay| OptimizerConfig { kind: Kind::Sgd, momentum: 0.9, nesterov, weight_decay, ..Default::default() };
        assert_eq!(OptimizerConfig::default().flops_per_parameter(), 12);
        assert_eq!(OptimizerConfig { kind: Kind::AdamW, weight_decay: 0.004, ..Default::default() }.flops_per_parameter(), 14);
        assert_eq!([sgd(false, 0.0), sgd(true, 0.0), sgd(true, 5e-4)].map(|o| o.flops_per_parameter()), [4, 7, 9]);
    }
}
