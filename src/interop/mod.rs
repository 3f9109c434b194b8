//! Models in and out of other frameworks: ONNX export ([`onnx`]), Keras weight import
//! ([`keras`]) and the config of a saved Keras model ([`keras_config`]).

pub mod keras;
pub mod keras_config;
pub mod onnx;

const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Whether `bytes` start as a file [`keras::KerasFile::read`] reads (HDF5, or a zip as
/// `.keras` is): a checkpoint's loader says how to convert one.
pub fn looks_like_keras(bytes: &[u8]) -> bool {
    bytes.starts_with(HDF5_MAGIC) || bytes.starts_with(ZIP_MAGIC)
}
