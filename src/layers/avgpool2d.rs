//! `avgpool2d` (Keras `AveragePooling2D`): window means, pool and stride as `maxpool2d`,
//! `valid` padding with floor semantics.

use serde::{Deserialize, Serialize};

use super::maxpool2d::{pool_shape, two_by_two};
use super::{Build, Kind, LayerKind, Loads, Pair};
use crate::gpu::GpuError;
use crate::model::shape::{PoolShape, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvgPool2d {
    #[serde(default = "two_by_two")]
    pub pool: Pair,
    /// Defaults to the pool size, as in Keras.
    #[serde(default)]
    pub stride: Option<Pair>,
}

impl AvgPool2d {
    pub fn shape(&self, batch: u32, input: Shape) -> Result<PoolShape, String> {
        pool_shape(batch, input, self.pool, self.stride)
    }
}

impl Kind for AvgPool2d {
    fn stem(&self) -> &'static str {
        "average_pooling2d"
    }
    fn class(&self) -> &'static str {
        "AveragePooling2D"
    }
    fn output(&self, input: Shape, _: bool) -> Result<Shape, String> {
        let s = self.shape(1, input)?;
        Ok(Shape::Image([s.out_h(), s.out_w(), s.c]))
    }
    fn same_but_width(&self, other: &LayerKind) -> bool {
        matches!(other, LayerKind::AvgPool2d(o) if self.pool == o.pool && self.stride.unwrap_or(self.pool) == o.stride.unwrap_or(o.pool))
    }
    fn spatial_arguments(&self) -> Vec<(&'static str, Vec<u32>)> {
        vec![("a pool side", self.pool.0.to_vec()), ("a stride", self.stride.unwrap_or(self.pool).0.to_vec())]
    }
    /// Per output, the window's sum and one scale (area operations), forward and backward.
    fn flops(&self, _: Shape, output: Shape, _: bool, input_grad: bool, _: Option<Loads>) -> [u64; 2] {
        let area = output.len() * (self.pool.0[0] * self.pool.0[1]) as u64;
        [area, input_grad as u64 * area]
    }
    fn build(&self, b: &mut Build<'_>) -> Result<(), GpuError> {
        let s = self.shape(b.batch, b.input).expect("validated spec");
        b.forward.push(b.kernels.avgpool2d_forward(&s, b.x, b.y));
        if let (Some(dx), Some(dy)) = (b.dx, b.dy) {
            b.backward.push(b.kernels.avgpool2d_backward(&s, dy, dx));
        }
        Ok(())
    }
}
