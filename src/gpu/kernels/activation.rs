//! Wrappers of activation.wgsl (the hidden activations, sigmoid, softmax, dropout).

use bytemuck::{Pod, Zeroable};

use super::{Bind, Dispatch, Kernel, Kernels};
use crate::gpu::View;
use crate::model::activation::Activation;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ElementwiseParams {
    len: u32,
    cols: u32,
    seed: u32,
    rate: f32,
}

impl ElementwiseParams {
    fn new(len: u64, cols: u32, seed: u32, rate: f32) -> Self {
        Self { len: len as u32, cols, seed, rate }
    }
}

impl Kernels {
    fn elementwise(&self, k: Kernel, p: ElementwiseParams, io: [(u32, &View); 2], step: Option<&wgpu::Buffer>, invocations: u64) -> Dispatch {
        let u = self.uniform(k, &p);
        let mut binds = vec![(0, Bind::Uniform(&u)), (io[0].0, Bind::Storage(io[0].1)), (io[1].0, Bind::Storage(io[1].1))];
        if let Some(step) = step {
            binds.push((1, Bind::Uniform(step)));
        }
        self.dispatch(k, &binds, self.grid(invocations))
    }

    /// y = f(x) over `len` elements for a hidden activation; overwrites y.
    pub fn activation_forward(&self, activation: Activation, len: u64, x: &View, y: &View) -> Dispatch {
        let k = Kernel::ActivationForward;
        let u = self.uniform(k, &ElementwiseParams::new(len, 1, 0, 0.0));
        self.dispatch_fused(k, activation, &[(0, Bind::Uniform(&u)), (4, Bind::Quads(x)), (5, Bind::Quads(y))], self.grid(len.div_ceil(4)))
    }

    /// In place: grad *= f'(z), from `saved`: the activation's output where
    /// [`Activation::grad_from_output`], else its input z.
    pub fn activation_backward(&self, activation: Activation, saved: &View, grad: &View) -> Dispatch {
        assert_eq!(saved.len, grad.len, "activation_backward: saved tensor and gradient differ in length");
        let binds = [(4, Bind::Quads(saved)), (5, Bind::Quads(grad))];
        self.dispatch_fused(Kernel::ActivationBackward, activation, &binds, self.grid(grad.len.div_ceil(4)))
    }

    /// y = sigmoid(x); overwrites y.
    pub fn sigmoid_forward(&self, len: u64, x: &View, y: &View) -> Dispatch {
        let p = ElementwiseParams::new(len, 1, 0, 0.0);
        self.elementwise(Kernel::SigmoidForward, p, [(2, x), (3, y)], None, len)
    }

    /// y [rows, cols] = row-wise softmax of x; overwrites y.
    pub fn softmax_forward(&self, rows: u64, cols: u32, x: &View, y: &View) -> Dispatch {
        let p = ElementwiseParams::new(rows * cols as u64, cols, 0, 0.0);
        self.elementwise(Kernel::SoftmaxForward, p, [(2, x), (3, y)], None, rows)
    }

    /// Inverted dropout with a mask drawn from (seed, step.t, index); overwrites y. The backward
    /// pass is the same call with the gradients as x and y.
    pub fn dropout_mask(&self, len: u64, rate: f32, seed: u32, step: &wgpu::Buffer, x: &View, y: &View) -> Dispatch {
        let p = ElementwiseParams::new(len, 1, seed, rate);
        self.elementwise(Kernel::DropoutMask, p, [(2, x), (3, y)], Some(step), len)
    }
}
