//! What a model is, independent of the GPU: layers, Keras names, shapes and parameters.

pub mod spec;
pub mod summary;

pub use spec::{Activation, Layer, LayerKind, ModelSpec, Padding, ParamInfo, Shape, SpecError};
