//! `batchnorm` (Keras `BatchNormalization`, axis -1): per channel over batch, height and width
//! (or per feature after a dense layer). Training normalises with the batch's mean and biased
//! variance and updates the moving statistics on the GPU, `moving = moving * momentum +
//! batch_stat * (1 - momentum)` as Keras 3; evaluation and prediction use the moving ones.
//! Every reduction is split and summed in a fixed order: no float atomics, repeatable runs.

use serde::{Deserialize, Serialize};

use super::{default_true, hidden_activation, Activation, Build, Init, Insertion, Kind, LayerKind, Loads, Role, Tensor};
use crate::gpu::kernels::batchnorm::{NormShape, Unstored, WindowSums};
use crate::gpu::{GpuError, Kernels};
use crate::model::shape::Shape;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNorm {
    #[serde(default = "momentum")]
    pub momentum: f32,
    #[serde(default = "epsilon")]
    pub epsilon: f32,
    /// Keras' `center`: learn the offset beta.
    #[serde(default = "default_true")]
    pub center: bool,
    /// Keras' `scale`: learn the factor gamma.
    #[serde(default = "default_true")]
    pub scale: bool,
    /// Fused after the normalisation, as conv2d's.
    #[serde(default)]
    pub activation: Activation,
}

fn momentum() -> f32 {
    0.99
}
fn epsilon() -> f32 {
    1e-3
}

impl Default for BatchNorm {
    fn default() -> Self {
        Self { momentum: momentum(), epsilon: epsilon(), center: true, scale: true, activation: Activation::Linear }
    }
}

impl BatchNorm {
    /// The kernels' geometry; a frozen layer always normalises with its moving statistics.
    pub fn shape(&self, batch: u32, input: Shape, frozen: bool) -> NormShape {
        let channels = input.channels();
        NormShape { batch, pixels: (input.len() / channels as u64) as u32, channels, momentum: self.momentum, epsilon: self.epsilon, frozen }
    }
}

impl Kind for BatchNorm {
    fn stem(&self) -> &'static str {
        "batch_normalization"
    }
    fn class(&self) -> &'static str {
        "BatchNormalization"
    }
    fn output(&self, input: Shape, _: bool) -> Result<Shape, String> {
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(format!("momentum {} must be in [0, 1)", self.momentum));
        }
        if !(self.epsilon > 0.0 && self.epsilon.is_finite()) {
            return Err(format!("epsilon {} must be positive", self.epsilon));
        }
        hidden_activation(self.activation)?;
        Ok(input)
    }
    fn tensors(&self, input: Shape) -> Vec<Tensor> {
        let c = vec![input.channels()];
        let tensor = |suffix, init, trainable| Tensor { suffix, shape: c.clone(), init, trainable, role: Role::PerUnit };
        let mut out = Vec::new();
        if self.scale {
            out.push(tensor("gamma", Init::Ones, true));
        }
        if self.center {
            out.push(tensor("beta", Init::Zeros, true));
        }
        out.push(tensor("moving_mean", Init::Zeros, false));
        out.push(tensor("moving_variance", Init::Ones, false));
        out
    }
    fn activation(&self) -> Activation {
        self.activation
    }
    fn non_negative(&self, _: bool) -> bool {
        self.activation == Activation::Relu
    }
    fn same_but_width(&self, other: &LayerKind) -> bool {
        *other == LayerKind::BatchNorm(*self)
    }
    fn inserted(&self, _: Shape) -> Insertion {
        Insertion::Norm { center: self.center }
    }
    fn can_leave_unstored(&self) -> bool {
        true
    }
    fn scratch(&self, batch: u32, input: Shape) -> u64 {
        Kernels::batchnorm_scratch(&self.shape(batch, input, false))
    }
    /// Per element: the split Welford sums (6) in training, the scale and shift (2), the
    /// activation. Backward, in each of its two kernels that runs (the dgamma/dbeta sums when it
    /// trains, dx = a g + b x + c when a gradient goes down): 4, plus the activation's
    /// derivative recomputed from x (3 for a ReLU's mask: the scale, shift and sign).
    /// Left unstored, the scale, shift and activation run on each element the next layer loads, and
    /// the sums over the windows where its gradient arrives.
    fn flops(&self, input: Shape, _: Shape, trains: bool, input_grad: bool, unstored: Option<Loads>) -> [u64; 2] {
        let n = input.len();
        let Loads { elements, windows } = unstored.unwrap_or(Loads { elements: n, windows: n });
        let [f, g] = self.activation.flops();
        // f' from the pre-activation: ReLUs' from its sign alone, the others' from f(z) where
        // f' is expressed by the output.
        let grad = match self.activation {
            Activation::Linear => 0,
            Activation::Relu | Activation::LeakyRelu => 2 + g,
            a if a.grad_from_output() => 2 + f + g,
            _ => 2 + g,
        };
        let (sums, dx) = (trains as u64 * (4 + grad) * windows, input_grad as u64 * (4 + grad) * n);
        [trains as u64 * 6 * n + (2 + f) * elements, sums + dx]
    }
    fn build(&self, b: &mut Build<'_>) -> Result<(), GpuError> {
        let s = self.shape(b.batch, b.input, !b.trainable);
        let k = b.kernels;
        let stats = b.ctx.storage(&format!("{} statistics", b.name), Kernels::batchnorm_stats_len(&s))?;
        // Without `scale` or `center` the kernels see a constant gamma of ones or beta of zeros
        // (and write their gradients to a throwaway): one kernel serves every variant.
        let c = s.channels as usize;
        let (gamma, dgamma) = match self.scale {
            true => (b.param("gamma"), b.grad("gamma")),
            false => (b.ctx.upload(&format!("{} unit gamma", b.name), &vec![1f32; c])?, b.ctx.storage(&format!("{} unused dgamma", b.name), c as u64)?),
        };
        let (beta, dbeta) = match self.center {
            true => (b.param("beta"), b.grad("beta")),
            false => (b.ctx.storage(&format!("{} zero beta", b.name), c as u64)?, b.ctx.storage(&format!("{} unused dbeta", b.name), c as u64)?),
        };
        let moving = [b.param("moving_mean"), b.param("moving_variance")];
        let activation = self.activation;
        b.forward.extend(k.batchnorm_stats(&s, b.step, b.x, &gamma, &beta, &moving, &stats, b.scratch));
        if b.leave_unstored {
            // The max pool after it normalises on load and takes the gradient sums.
            let sums = b.trainable.then(|| WindowSums { shape: s, gamma: gamma.clone(), dgamma: dgamma.clone(), dbeta: dbeta.clone() });
            b.unstored = Some(Unstored { stats: stats.clone(), channels: s.channels, activation, sums });
        } else {
            b.forward.push(k.batchnorm_forward(&s, activation, b.x, &stats, b.y));
        }
        let Some(dy) = b.backward_dy() else { return Ok(()) };
        // The activation's derivative is applied inside both backward kernels. Frozen, the forward left
        // inference-mode dx coefficients (dx = gamma * inv * dy).
        if b.trainable && !b.leave_unstored {
            b.backward.extend(k.batchnorm_backward_stats(&s, activation, b.step, b.x, dy, &gamma, &stats, &dgamma, &dbeta, b.scratch));
        }
        if let Some(dx) = b.dx {
            b.backward.push(k.batchnorm_backward_input(&s, activation, b.step, b.x, dy, &stats, dx));
        }
        Ok(())
    }
}
