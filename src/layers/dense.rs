//! `dense` (Keras `Dense`): y = act(x W + b) with kernel [in, out]; the output head when its
//! activation is sigmoid or softmax.

use serde::{Deserialize, Serialize};

use super::activation::Fused;
use super::{default_true, hidden_activation, kernel_and_bias, Activation, Build, Kind, LayerKind, Loads, Tensor};
use crate::gpu::kernels::matmul::GemmShape;
use crate::gpu::{GpuError, Kernels};
use crate::model::shape::Shape;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dense {
    pub units: u32,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default = "default_true")]
    pub use_bias: bool,
}

impl Dense {
    pub fn new(units: u32, activation: Activation) -> Self {
        Self { units, activation, use_bias: true }
    }

    /// The three GEMMs: forward x W, input gradient dy W^T, kernel gradient x^T dy.
    fn gemms(&self, batch: u32, n: u32) -> [GemmShape; 3] {
        [GemmShape::nn(batch, self.units, n), GemmShape::nt(batch, n, self.units), GemmShape::tn(n, self.units, batch)]
    }

    /// The activation it applies itself: a sigmoid or softmax makes it the head, whose
    /// activation is fused with the loss (it outputs logits).
    fn applied(&self) -> Activation {
        match self.activation {
            Activation::Sigmoid | Activation::Softmax => Activation::Linear,
            a => a,
        }
    }
}

impl Kind for Dense {
    fn stem(&self) -> &'static str {
        "dense"
    }
    fn class(&self) -> &'static str {
        "Dense"
    }
    fn output(&self, input: Shape, is_last: bool) -> Result<Shape, String> {
        if let Shape::Image(_) = input {
            return Err("a dense layer needs a flat input: add a flatten or globalavgpool2d layer before it".into());
        }
        if self.units == 0 {
            return Err("units must be at least 1".into());
        }
        if !is_last {
            hidden_activation(self.activation)?;
            if self.activation == Activation::Sigmoid {
                return Err("activation \"sigmoid\" on a dense layer makes it the output head, so only the last one takes it; add an activation layer after a hidden one".into());
            }
        }
        Ok(Shape::Flat(self.units))
    }
    fn tensors(&self, input: Shape) -> Vec<Tensor> {
        kernel_and_bias(&[], input.channels(), self.units, self.use_bias)
    }
    fn activation(&self) -> Activation {
        self.activation
    }
    fn non_negative(&self, _: bool) -> bool {
        self.activation == Activation::Relu
    }
    fn units(&self) -> Option<u32> {
        Some(self.units)
    }
    fn same_but_width(&self, other: &LayerKind) -> bool {
        matches!(other, LayerKind::Dense(o) if Self { units: o.units, ..*self } == *o)
    }
    fn same_but_activation(&self, other: &LayerKind) -> bool {
        matches!(other, LayerKind::Dense(_))
    }
    fn has_bias(&self) -> bool {
        self.use_bias
    }
    fn scratch(&self, batch: u32, input: Shape) -> u64 {
        let gemms = self.gemms(batch, input.channels()).map(|g| Kernels::gemm_scratch(&g));
        gemms.into_iter().max().unwrap_or(0).max(Kernels::column_sum_scratch(batch as u64, self.units))
    }
    fn flops(&self, input: Shape, _: Shape, trains: bool, input_grad: bool, _: Option<Loads>) -> [u64; 2] {
        let units = self.units as u64;
        super::weighted_flops(input.len() * units, units, self.use_bias, self.applied(), trains, input_grad)
    }
    fn build(&self, b: &mut Build<'_>) -> Result<(), GpuError> {
        let [forward, input_grad, kernel_grad] = self.gemms(b.batch, b.input.channels());
        let act = Fused::new(self.applied(), b, b.y)?;
        let (k, w) = (b.kernels, b.param("kernel"));
        let bias = self.use_bias.then(|| b.param("bias"));
        act.forward(b, k.gemm(&forward, b.x, &w, bias.as_ref(), act.store(), act.out(), b.scratch));
        let Some(dy) = b.backward_dy() else { return Ok(()) };
        act.backward(b, dy);
        if b.trainable {
            b.backward.extend(k.gemm(&kernel_grad, b.x, dy, None, Activation::Linear, &b.grad("kernel"), b.scratch));
            if self.use_bias {
                b.backward.extend(k.column_sum(b.batch as u64, self.units, dy, &b.grad("bias"), b.scratch));
            }
        }
        if let Some(dx) = b.dx {
            b.backward.extend(k.gemm(&input_grad, dy, &w, None, Activation::Linear, dx, b.scratch));
        }
        Ok(())
    }
}
