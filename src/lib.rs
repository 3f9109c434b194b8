//! gpu-cnn: convolutional image classifiers trained on the GPU with hand-written WGSL kernels.

// Everything printed goes through `console` (control characters escaped, a closed stdout a stop
// request); first, so its macros are in scope everywhere.
#![warn(clippy::print_stdout, clippy::print_stderr)]
#[macro_use]
pub mod console;
pub mod bench;
pub mod config;
pub mod checkpoint;
pub mod commands;
pub mod data;
pub mod dataset;
pub mod experiment;
pub mod files;
pub mod devices;
pub mod gpu;
pub mod grow;
pub mod interrupt;
pub mod interop;
pub mod layers;
pub mod model;
pub mod network;
pub mod optimizer;
pub mod plot;
pub mod record;
pub mod predict;
pub mod run;
pub mod sizes;
pub mod train;
pub mod transfer;
pub mod verdict;
