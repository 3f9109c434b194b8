//! Models in and out of other frameworks: ONNX export ([`onnx`]) and Keras weight import
//! ([`keras`]).

pub mod keras;
pub mod onnx;
