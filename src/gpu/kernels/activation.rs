//! Wrappers of activation.wgsl (ReLU, sigmoid, softmax, dropout).

use bytemuck::{Pod, Zeroable};

use super::{Bind, Dispatch, Kernel, Kernels};
use crate::gpu::View;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ElementwiseParams {
    len: u32,
    cols: u32,
    seed: u32,
    rate: f32,
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

    /// y = max(x, 0) over `len` elements; overwrites y.
    pub fn relu_forward(&self, len: u64, x: &View, y: &View) -> Dispatch {
        let p = ElementwiseParams { len: len as u32, cols: 1, seed: 0, rate: 0.0 };
        self.elementwise(Kernel::ReluForward, p, [(2, x), (3, y)], None, len)
    }

    /// In place: grad *= (act > 0), act being the ReLU's output.
    pub fn relu_backward(&self, act: &View, grad: &View) -> Dispatch {
        assert_eq!(act.len, grad.len, "relu_backward: activation and gradient differ in length");
        let k = Kernel::ReluBackward;
        let binds = [(4, Bind::Quads(act)), (5, Bind::Quads(grad))];
        self.dispatch(k, &binds, self.grid(grad.len.div_ceil(4)))
    }

    /// y = sigmoid(x); overwrites y.
    pub fn sigmoid_forward(&self, len: u64, x: &View, y: &View) -> Dispatch {
        let p = ElementwiseParams { len: len as u32, cols: 1, seed: 0, rate: 0.0 };
        self.elementwise(Kernel::SigmoidForward, p, [(2, x), (3, y)], None, len)
    }

    /// y [rows, cols] = row-wise softmax of x; overwrites y.
    pub fn softmax_forward(&self, rows: u64, cols: u32, x: &View, y: &View) -> Dispatch {
        let p = ElementwiseParams { len: (rows * cols as u64) as u32, cols, seed: 0, rate: 0.0 };
        self.elementwise(Kernel::SoftmaxForward, p, [(2, x), (3, y)], None, rows)
    }

    /// Inverted dropout with a mask drawn from (seed, step.t, index); overwrites y. The backward
    /// pass is the same call with the gradients as x and y.
    pub fn dropout_mask(&self, len: u64, rate: f32, seed: u32, step: &wgpu::Buffer, x: &View, y: &View) -> Dispatch {
        let p = ElementwiseParams { len: len as u32, cols: 1, seed, rate };
        self.elementwise(Kernel::DropoutMask, p, [(2, x), (3, y)], Some(step), len)
    }
}
