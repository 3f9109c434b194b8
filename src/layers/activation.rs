//! Activations: the [`Activation`] a conv, dense or batchnorm layer fuses into its output, and
//! `activation` (Keras `Activation("relu")`), the same as a layer of its own so that
//! conv -> batchnorm -> relu can be written.

use serde::{Deserialize, Serialize};

use super::{Build, Insertion, Kind, LayerKind, Loads};
use crate::gpu::GpuError;
use crate::model::shape::Shape;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Linear,
    Relu,
    /// Output head only: fused with binary cross-entropy.
    Sigmoid,
    /// Output head only: fused with categorical cross-entropy.
    Softmax,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationLayer {
    pub activation: Activation,
}

impl Kind for ActivationLayer {
    fn stem(&self) -> &'static str {
        "activation"
    }
    fn class(&self) -> &'static str {
        "Activation"
    }
    fn output(&self, input: Shape, _: bool) -> Result<Shape, String> {
        match self.activation {
            Activation::Relu => Ok(input),
            a => Err(format!("an activation layer takes \"relu\" (got {a:?}); sigmoid and softmax belong to the last dense layer")),
        }
    }
    fn activation(&self) -> Activation {
        self.activation
    }
    fn same_but_width(&self, other: &LayerKind) -> bool {
        *other == LayerKind::Activation(*self)
    }
    fn inserted(&self, _: Shape) -> Insertion {
        Insertion::Activation
    }
    fn gradient_in_place(&self) -> bool {
        true
    }
    fn flops(&self, input: Shape, _: Shape, _: bool, input_grad: bool, _: Option<Loads>) -> [u64; 2] {
        [input.len(), input_grad as u64 * input.len()]
    }
    fn build(&self, b: &mut Build<'_>) -> Result<(), GpuError> {
        b.forward.push(b.kernels.relu_forward(b.batch as u64 * b.input.len(), b.x, b.y));
        if let Some(dy) = b.dy {
            // dy and dx are one buffer (gradient_in_place).
            b.backward.push(b.kernels.relu_backward(b.y, dy));
        }
        Ok(())
    }
}
