//! Wrappers of loss.wgsl (sigmoid + binary and softmax + categorical cross-entropy).

use bytemuck::{Pod, Zeroable};

use super::{Bind, Dispatch, Kernel, Kernels};
use crate::gpu::View;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LossParams {
    capacity: u32,
    classes: u32,
    smoothing: f32,
    _pad: u32,
}

impl Kernels {
    /// Sigmoid + binary cross-entropy (classes == 1) or softmax + categorical cross-entropy
    /// from logits [capacity, classes], with Keras' `label_smoothing` (0: none): overwrites
    /// grad, adds [loss sum, correct, rows] to metrics. One workgroup.
    #[allow(clippy::too_many_arguments)]
    pub fn loss(&self, capacity: u32, classes: u32, smoothing: f32, step: &wgpu::Buffer, logits: &View, labels: &View, grad: &View, metrics: &View) -> Dispatch {
        let k = if classes == 1 { Kernel::SigmoidBceLoss } else { Kernel::SoftmaxCeLoss };
        let u = self.uniform(k, &LossParams { capacity, classes, smoothing, _pad: 0 });
        let binds = [
            (0, Bind::Uniform(&u)),
            (1, Bind::Uniform(step)),
            (2, Bind::Storage(logits)),
            (3, Bind::Storage(labels)),
            (4, Bind::Storage(grad)),
            (5, Bind::Storage(metrics)),
        ];
        self.dispatch(k, &binds, [1, 1, 1])
    }
}
