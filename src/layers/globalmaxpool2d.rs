//! `globalmaxpool2d` (Keras `GlobalMaxPooling2D`): the maximum of each channel over height and
//! width, [h, w, c] -> [c]; the backward pass routes each gradient to its channel's first
//! maximum, as `maxpool2d` does (it is that pool with one window over the whole image).

use serde::{Deserialize, Serialize};

use super::maxpool2d::MaxPool2d;
use super::{image, Build, Insertion, Kind, LayerKind, Loads, Pair};
use crate::gpu::GpuError;
use crate::model::shape::Shape;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GlobalMaxPool2d {}

impl GlobalMaxPool2d {
    /// The max pool whose one window is the whole `input` image.
    fn pool(input: Shape) -> Result<MaxPool2d, String> {
        let [h, w, _] = image(input)?;
        Ok(MaxPool2d { pool: Pair([h, w]), stride: None })
    }
}

impl Kind for GlobalMaxPool2d {
    fn stem(&self) -> &'static str {
        "global_max_pooling2d"
    }
    fn class(&self) -> &'static str {
        "GlobalMaxPooling2D"
    }
    fn output(&self, input: Shape, _: bool) -> Result<Shape, String> {
        Ok(Shape::Flat(image(input)?[2]))
    }
    fn same_but_width(&self, other: &LayerKind) -> bool {
        matches!(other, LayerKind::GlobalMaxPool2d(_))
    }
    fn inserted(&self, _: Shape) -> Insertion {
        Insertion::NoIdentity(Some("no function-preserving map from a flattened grid to its maximum".into()))
    }
    /// Forward, h * w - 1 comparisons per channel; backward, one add per channel at its argmax.
    fn flops(&self, input: Shape, output: Shape, trains: bool, input_grad: bool, unstored: Option<Loads>) -> [u64; 2] {
        let pool = Self::pool(input).expect("validated spec");
        pool.flops(input, Shape::Image([1, 1, output.channels()]), trains, input_grad, unstored)
    }
    fn build(&self, b: &mut Build<'_>) -> Result<(), GpuError> {
        Self::pool(b.input).expect("validated spec").build(b)
    }
}
