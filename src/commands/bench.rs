//! `gpu-cnn bench`: kernel and training speed on the chosen adapter.

use std::path::PathBuf;

use anyhow::Context;

use super::{load_config, Env};
use crate::gpu::Kernels;
use crate::run::{self, Overrides, Start};

/// Benchmarks on the chosen adapter.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Time per call and GFLOP/s (or GB/s) of every kernel at the reference models' shapes.
    ///
    /// Example: gpu-cnn bench kernels --json
    Kernels {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Only the kernels whose name or shape contains this, e.g. `batchnorm`.
        #[arg(long)]
        only: Option<String>,
    },
    /// Steady-state training and evaluation images/s of a config, and the augmentation
    /// pipeline's images/s on its own, with each kernel's share of a training step.
    ///
    /// Example: gpu-cnn bench train configs/model1.toml --json
    Train {
        /// The model and training config (TOML).
        config: PathBuf,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Images per step (default: the config's).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        batch_size: Option<u32>,
        /// Measure with these layers frozen (as `train --freeze`).
        #[arg(long, value_delimiter = ',')]
        freeze: Vec<String>,
    },
}

pub fn run(cmd: Command, env: &Env) -> anyhow::Result<()> {
    match cmd {
        Command::Kernels { json, only } => {
            let ctx = env.gpu()?;
            let results = crate::bench::kernels(&ctx, only.as_deref())?;
            match json {
                true => outln!("{}", crate::bench::to_json(&ctx, &results)),
                false => out!("{}", crate::bench::table(&ctx, &results)),
            }
        }
        Command::Train { config, json, batch_size, freeze } => {
            let mut cfg = load_config(&config, &Overrides { batch_size, ..Default::default() })?;
            run::freeze(&mut cfg, &config, &freeze, None, &Start::Fresh)?;
            let ctx = env.gpu()?;
            let kernels = Kernels::new(&ctx);
            let report = crate::bench::train(&ctx, &kernels, &cfg).with_context(|| format!("benchmarking {}", config.display()))?;
            match json {
                true => outln!("{}", serde_json::to_string(&report)?),
                false => out!("{}", report.table()),
            }
        }
    }
    Ok(())
}
