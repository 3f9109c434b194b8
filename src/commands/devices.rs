//! `gpu-cnn devices`: the GPU adapters this machine offers.

use super::Env;

/// List GPU adapters and mark the one that would be used.
///
/// Example: gpu-cnn devices --backend vulkan
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_: Args, env: &Env) -> anyhow::Result<()> {
    out!("{}", crate::devices::report(&env.adapter, env.backends));
    Ok(())
}
