//! `globalavgpool2d` (Keras `GlobalAveragePooling2D`): the mean of each channel over height
//! and width, [h, w, c] -> [c]; replaces a large flatten + dense with a small head.

use serde::{Deserialize, Serialize};

use super::{image, Build, Insertion, Kind, LayerKind, Loads};
use crate::gpu::GpuError;
use crate::model::shape::{PoolShape, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GlobalAvgPool2d {}

impl Kind for GlobalAvgPool2d {
    fn stem(&self) -> &'static str {
        "global_average_pooling2d"
    }
    fn class(&self) -> &'static str {
        "GlobalAveragePooling2D"
    }
    fn output(&self, input: Shape, _: bool) -> Result<Shape, String> {
        Ok(Shape::Flat(image(input)?[2]))
    }
    fn same_but_width(&self, other: &LayerKind) -> bool {
        matches!(other, LayerKind::GlobalAvgPool2d(_))
    }
    fn inserted(&self, _: Shape) -> Insertion {
        Insertion::NoIdentity(Some("no function-preserving map from a flattened grid to its average".into()))
    }
    /// One operation per input element each way (the channel sums and their scale).
    fn flops(&self, input: Shape, _: Shape, _: bool, input_grad: bool, _: Option<Loads>) -> [u64; 2] {
        [input.len(), input_grad as u64 * input.len()]
    }
    fn build(&self, b: &mut Build<'_>) -> Result<(), GpuError> {
        // An average pool whose one window is the whole image.
        let [h, w, c] = image(b.input).expect("validated spec");
        let s = PoolShape { batch: b.batch, in_h: h, in_w: w, c, pool: [h, w], stride: [h, w] };
        b.forward.push(b.kernels.avgpool2d_forward(&s, b.x, b.y));
        if let (Some(dx), Some(dy)) = (b.dx, b.dy) {
            b.backward.push(b.kernels.avgpool2d_backward(&s, dy, dx));
        }
        Ok(())
    }
}
