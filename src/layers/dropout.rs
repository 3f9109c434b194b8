//! `dropout` (Keras `Dropout`): inverted dropout in training, the identity otherwise; the mask
//! is drawn on the GPU from (layer seed, step, index), so backward reuses it without storing it.

use serde::{Deserialize, Serialize};

use super::{Build, Insertion, Kind, LayerKind, Loads};
use crate::gpu::GpuError;
use crate::model::shape::Shape;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dropout {
    pub rate: f32,
}

impl Kind for Dropout {
    fn stem(&self) -> &'static str {
        "dropout"
    }
    fn class(&self) -> &'static str {
        "Dropout"
    }
    fn output(&self, input: Shape, _: bool) -> Result<Shape, String> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(format!("rate {} must be in [0, 1)", self.rate));
        }
        Ok(input)
    }
    fn same_but_width(&self, other: &LayerKind) -> bool {
        matches!(other, LayerKind::Dropout(_))
    }
    fn inserted(&self, _: Shape) -> Insertion {
        Insertion::Transparent
    }
    /// The mask's multiply per element, each way (training steps only: evaluation skips it).
    fn flops(&self, input: Shape, _: Shape, _: bool, input_grad: bool, _: Option<Loads>) -> [u64; 2] {
        [input.len(), input_grad as u64 * input.len()]
    }
    fn build(&self, b: &mut Build<'_>) -> Result<(), GpuError> {
        let len = b.batch as u64 * b.input.len();
        b.forward.push(b.kernels.dropout_mask(len, self.rate, b.seed, b.step, b.x, b.y));
        if let (Some(dx), Some(dy)) = (b.dx, b.dy) {
            b.backward.push(b.kernels.dropout_mask(len, self.rate, b.seed, b.step, dy, dx));
        }
        Ok(())
    }
}
