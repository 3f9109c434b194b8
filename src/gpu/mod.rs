//! Everything that talks to wgpu: adapter choice and device ([`context`]), buffers
//! ([`buffers`]) and the typed wrappers of the WGSL kernels ([`kernels`]).

pub mod buffers;
pub mod context;
pub mod kernels;

pub use buffers::View;
pub use context::{AdapterChoice, GpuContext, GpuError};
pub use kernels::{Dispatch, Kernels};
