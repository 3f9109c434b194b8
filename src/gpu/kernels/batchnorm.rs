//! Wrappers of batchnorm.wgsl.

use bytemuck::{Pod, Zeroable};

use super::{Bind, Dispatch, Kernel, Kernels, Splits};
use crate::gpu::View;
use crate::model::activation::Activation;

/// Rows per invocation of the element-wise kernels on the quad path (`ROWS` in batchnorm.wgsl).
const ELEMENTWISE_ROWS: u64 = 32;

/// Geometry of a batch normalisation: x seen as [batch * pixels, channels].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormShape {
    /// Images the buffers hold.
    pub batch: u32,
    /// Rows per image: h * w after a conv, 1 after a dense layer.
    pub pixels: u32,
    pub channels: u32,
    pub momentum: f32,
    pub epsilon: f32,
    /// Inference mode in every pass (Keras' frozen BatchNormalization): moving statistics,
    /// never updated.
    pub frozen: bool,
}

impl NormShape {
    pub fn rows(&self) -> u64 {
        self.batch as u64 * self.pixels as u64
    }
    pub fn len(&self) -> u64 {
        self.rows() * self.channels as u64
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Invocations of the element-wise kernels: a channel quad down `ELEMENTWISE_ROWS` rows each
    /// when channels % 4 == 0, else a quad of consecutive elements each.
    fn elementwise_invocations(&self) -> u64 {
        match self.channels.is_multiple_of(4) {
            true => self.rows().div_ceil(ELEMENTWISE_ROWS) * (self.channels / 4) as u64,
            false => self.len().div_ceil(4),
        }
    }
    /// Invocations of each split of the reductions: a channel quad each when channels % 4 == 0.
    fn reduction_lanes(&self) -> u64 {
        match self.channels.is_multiple_of(4) {
            true => self.channels as u64 / 4,
            false => self.channels as u64,
        }
    }
    fn splits(&self) -> Splits {
        Splits::choose(self.reduction_lanes(), self.rows() as u32)
    }
    fn params(&self) -> NormParams {
        let splits = self.splits();
        NormParams {
            pixels: self.pixels,
            channels: self.channels,
            capacity_rows: self.rows() as u32,
            splits: splits.count,
            rows_per_split: splits.chunk,
            _pad: 0,
            frozen: self.frozen as u32,
            counted_pixels: self.pixels,
            momentum: self.momentum,
            epsilon: self.epsilon,
            _pad2: [0; 2],
        }
    }
}

/// A batchnorm's output left unstored: the max pool after it reads the batchnorm's input and
/// computes act(x * scale + shift) on load, with the per-channel scale and shift the forward
/// leaves in `stats` (from [`Kernels::batchnorm_stats`]). The pool's backward puts gradient
/// only at its windows' maxima, so the batchnorm's gradient sums run there
/// ([`Kernels::batchnorm_window_sums`], recorded by the pool), over a quarter of the tensor
/// for 2x2 windows.
#[derive(Clone)]
pub struct Unstored {
    pub stats: View,
    pub channels: u32,
    pub activation: Activation,
    /// What the sums need, when the batchnorm trains.
    pub sums: Option<WindowSums>,
}

#[derive(Clone)]
pub struct WindowSums {
    pub shape: NormShape,
    pub gamma: View,
    pub dgamma: View,
    pub dbeta: View,
}

impl Unstored {
    /// Where the scale starts in `stats` (`SCALE` in batchnorm.wgsl); the shift follows.
    pub fn scale_at(&self) -> u32 {
        2 * self.channels
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct NormParams {
    pixels: u32,
    channels: u32,
    capacity_rows: u32,
    splits: u32,
    rows_per_split: u32,
    _pad: u32,
    frozen: u32,
    counted_pixels: u32,
    momentum: f32,
    epsilon: f32,
    _pad2: [u32; 2],
}

impl Kernels {
    /// Scratch elements the batchnorm reductions need.
    pub fn batchnorm_scratch(s: &NormShape) -> u64 {
        3 * s.splits().count as u64 * s.channels as u64
    }

    /// Elements of a batchnorm layer's per-channel statistics and coefficients.
    pub fn batchnorm_stats_len(s: &NormShape) -> u64 {
        7 * s.channels as u64
    }

    /// The forward pass's per-channel scale and shift into `stats`: in training (step.training
    /// != 0, not frozen) from the batch mean and biased variance, with the moving statistics
    /// `moving` = [mean, variance] updated in place; in inference from the moving statistics,
    /// with the inference-mode dx coefficients too. Two dispatches (split Welford sums in
    /// `scratch`, training only, so not recorded when frozen; then their ordered merge).
    #[allow(clippy::too_many_arguments)]
    pub fn batchnorm_stats(&self, s: &NormShape, step: &wgpu::Buffer, x: &View, gamma: &View, beta: &View, moving: &[View; 2], stats: &View, scratch: &View) -> Vec<Dispatch> {
        let p = s.params();
        let k = Kernel::BatchnormStatsPartial;
        let u = self.uniform(k, &p);
        let binds = [(0, Bind::Uniform(&u)), (1, Bind::Uniform(step)), (2, Bind::Storage(x)), (9, Bind::Storage(scratch)), (13, Bind::Quads(x))];
        let partial = (!s.frozen).then(|| self.dispatch(k, &binds, self.grid(p.splits as u64 * s.reduction_lanes())));
        let k = Kernel::BatchnormStatsFinish;
        let binds = [
            (0, Bind::Uniform(&u)),
            (1, Bind::Uniform(step)),
            (4, Bind::Storage(gamma)),
            (5, Bind::Storage(beta)),
            (6, Bind::Storage(&moving[0])),
            (7, Bind::Storage(&moving[1])),
            (8, Bind::Storage(stats)),
            (9, Bind::Storage(scratch)),
        ];
        partial.into_iter().chain([self.dispatch(k, &binds, self.grid(p.channels as u64))]).collect()
    }

    /// y = act(x * scale + shift) with the coefficients [`Self::batchnorm_stats`] left in
    /// `stats`; overwrites y (by quads).
    pub fn batchnorm_forward(&self, s: &NormShape, activation: Activation, x: &View, stats: &View, y: &View) -> Dispatch {
        let k = Kernel::BatchnormForward;
        let u = self.uniform(k, &s.params());
        let binds = [(0, Bind::Uniform(&u)), (13, Bind::Quads(x)), (15, Bind::Quads(stats)), (16, Bind::Quads(y))];
        self.dispatch_fused(k, activation, &binds, self.grid(s.elementwise_invocations()))
    }

    /// dgamma = sum g * x_hat and dbeta = sum g over the valid rows (overwritten), where g is dy
    /// times the fused activation's derivative (recomputed from x: no pass of its own), and
    /// dx's coefficients into `stats` for [`Self::batchnorm_backward_input`]. Two dispatches
    /// through `scratch`.
    #[allow(clippy::too_many_arguments)]
    pub fn batchnorm_backward_stats(&self, s: &NormShape, activation: Activation, step: &wgpu::Buffer, x: &View, dy: &View, gamma: &View, stats: &View, dgamma: &View, dbeta: &View, scratch: &View) -> Vec<Dispatch> {
        self.backward_sums(s.params(), activation, s, step, x, dy, gamma, stats, dgamma, dbeta, scratch)
    }

    /// [`Self::batchnorm_backward_stats`] for an [`Unstored`] output pooled in windows of
    /// `windows` per image: over the windows' maxima, `at_max` the input there and `dy` the
    /// pool's output gradient, [batch, windows, channels]. Nothing when the batchnorm does not
    /// train. Its scratch fits in the batchnorm's (fewer rows, no more splits).
    pub fn batchnorm_window_sums(&self, u: &Unstored, windows: u32, step: &wgpu::Buffer, at_max: &View, dy: &View, scratch: &View) -> Vec<Dispatch> {
        let Some(w) = &u.sums else { return Vec::new() };
        let pooled = NormShape { pixels: windows, ..w.shape };
        let p = NormParams { counted_pixels: w.shape.pixels, ..pooled.params() };
        self.backward_sums(p, u.activation, &pooled, step, at_max, dy, &w.gamma, &u.stats, &w.dgamma, &w.dbeta, scratch)
    }

    #[allow(clippy::too_many_arguments)]
    fn backward_sums(&self, p: NormParams, activation: Activation, s: &NormShape, step: &wgpu::Buffer, x: &View, dy: &View, gamma: &View, stats: &View, dgamma: &View, dbeta: &View, scratch: &View) -> Vec<Dispatch> {
        let k = Kernel::BatchnormBackwardPartial;
        let u = self.uniform(k, &p);
        let binds = [
            (0, Bind::Uniform(&u)),
            (1, Bind::Uniform(step)),
            (2, Bind::Storage(x)),
            (3, Bind::Storage(dy)),
            (9, Bind::Storage(scratch)),
            (13, Bind::Quads(x)),
            (14, Bind::Quads(dy)),
            (15, Bind::Quads(stats)),
        ];
        let partial = self.dispatch_fused(k, activation, &binds, self.grid(p.splits as u64 * s.reduction_lanes()));
        let k = Kernel::BatchnormBackwardFinish;
        let binds = [
            (0, Bind::Uniform(&u)),
            (1, Bind::Uniform(step)),
            (4, Bind::Storage(gamma)),
            (8, Bind::Storage(stats)),
            (9, Bind::Storage(scratch)),
            (11, Bind::Storage(dgamma)),
            (12, Bind::Storage(dbeta)),
        ];
        vec![partial, self.dispatch(k, &binds, self.grid(p.channels as u64))]
    }

    /// dx = gamma / sqrt(var + eps) * (g - mean(g) - x_hat * mean(g * x_hat)) on the valid
    /// rows, 0 on the rest, g as in [`Self::batchnorm_backward_stats`]; overwrites dx (by quads).
    #[allow(clippy::too_many_arguments)]
    pub fn batchnorm_backward_input(&self, s: &NormShape, activation: Activation, step: &wgpu::Buffer, x: &View, dy: &View, stats: &View, dx: &View) -> Dispatch {
        let k = Kernel::BatchnormBackwardInput;
        let u = self.uniform(k, &s.params());
        let binds = [(0, Bind::Uniform(&u)), (1, Bind::Uniform(step)), (13, Bind::Quads(x)), (14, Bind::Quads(dy)), (15, Bind::Quads(stats)), (16, Bind::Quads(dx))];
        self.dispatch_fused(k, activation, &binds, self.grid(s.elementwise_invocations()))
    }
}
