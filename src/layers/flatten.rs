//! `flatten` (Keras `Flatten`): the NHWC map as one vector in (h, w, c) order. No kernel: its
//! output and gradient are its input's buffers.

use serde::{Deserialize, Serialize};

use super::{Build, Kind, LayerKind};
use crate::gpu::GpuError;
use crate::model::shape::Shape;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Flatten {}

impl Kind for Flatten {
    fn stem(&self) -> &'static str {
        "flatten"
    }
    fn class(&self) -> &'static str {
        "Flatten"
    }
    fn output(&self, input: Shape, _: bool) -> Result<Shape, String> {
        let len = u32::try_from(input.len()).map_err(|_| format!("flattens {} values, more than 32-bit indices reach", input.len()))?;
        Ok(Shape::Flat(len))
    }
    fn same_but_width(&self, other: &LayerKind) -> bool {
        matches!(other, LayerKind::Flatten(_))
    }
    fn is_view(&self) -> bool {
        true
    }
    fn build(&self, _: &mut Build<'_>) -> Result<(), GpuError> {
        Ok(())
    }
}
