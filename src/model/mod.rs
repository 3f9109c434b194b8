//! What a model is, independent of the GPU: layers, Keras names, shapes and parameters.

pub mod activation;
pub mod graph;
pub mod shape;
pub mod spec;
pub mod summary;

pub use shape::{ConvShape, PoolShape, Shape};
pub use spec::{Layer, ModelSpec, ParamInfo, SpecError};
