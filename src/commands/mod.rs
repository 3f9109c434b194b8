//! The command line: one module per command, each owning its arguments, help text and `run`
//! (cargo's `src/bin/cargo/commands/` is the model). `main.rs` only parses and dispatches; the
//! tests parse the README's commands with [`Cli`].

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::files::OutputError;
use crate::gpu::context::{parse_backends, AdapterChoice, GpuContext};
use crate::run::Overrides;

pub mod bench;
pub mod dataset;
pub mod devices;
pub mod evaluate;
pub mod experiment;
pub mod export;
pub mod grow;
pub mod import;
pub mod plot;
pub mod predict;
pub mod summary;
pub mod train;
pub mod transfer;

#[derive(Parser)]
#[command(name = "gpu-cnn", version, about = "Train CNN image classifiers on the GPU with hand-written WGSL kernels")]
pub struct Cli {
    /// Adapter: an index from `gpu-cnn devices`, a name substring, `cpu` or `gpu`.
    #[arg(long, global = true, env = "GPU_CNN_ADAPTER", default_value = "auto")]
    adapter: AdapterChoice,
    /// Graphics API: vulkan, metal, dx12 or gl (default: all).
    #[arg(long, global = true, env = "GPU_CNN_BACKEND")]
    backend: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Train(train::Args),
    Evaluate(evaluate::Args),
    Predict(predict::Args),
    Transfer(transfer::Args),
    Grow(grow::Args),
    Export(export::Args),
    #[command(subcommand)]
    Import(import::Command),
    Experiment(experiment::Args),
    Plot(plot::Args),
    #[command(subcommand)]
    Dataset(dataset::Command),
    Summary(summary::Args),
    Devices(devices::Args),
    #[command(subcommand)]
    Bench(bench::Command),
}

/// What every command may need besides its own arguments: the adapter the user chose.
pub struct Env {
    adapter: AdapterChoice,
    backends: wgpu::Backends,
}

impl Env {
    pub fn gpu(&self) -> anyhow::Result<GpuContext> {
        Ok(GpuContext::new(&self.adapter, self.backends)?)
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    crate::interrupt::install().context("installing the signal handler")?;
    let env = Env { backends: parse_backends(cli.backend.as_deref())?, adapter: cli.adapter };
    match cli.command {
        Command::Train(args) => train::run(args, &env),
        Command::Evaluate(args) => evaluate::run(args, &env),
        Command::Predict(args) => predict::run(args, &env),
        Command::Transfer(args) => transfer::run(args, &env),
        Command::Grow(args) => grow::run(args),
        Command::Export(args) => export::run(args),
        Command::Import(cmd) => import::run(cmd),
        Command::Experiment(args) => experiment::run(args, &env),
        Command::Plot(args) => plot::run(args),
        Command::Dataset(cmd) => dataset::run(cmd),
        Command::Summary(args) => summary::run(args),
        Command::Devices(args) => devices::run(args, &env),
        Command::Bench(cmd) => bench::run(cmd, &env),
    }
}

/// The run settings `train` and `experiment` take on top of a config.
#[derive(clap::Args)]
pub struct RunArgs {
    /// A folder with training_set/ and test_set/, each with one sub-folder of images per
    /// class (overrides [data]).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Train this many epochs (overrides [train] epochs).
    #[arg(long)]
    epochs: Option<u32>,
    /// Images per step (overrides [train] batch_size).
    #[arg(long)]
    batch_size: Option<u32>,
    /// Seed of weights, data order and augmentation (overrides [train] seed).
    #[arg(long)]
    seed: Option<u64>,
    /// A quick run on part of the data: N / classes images of each class (rounded down, at
    /// least one) in the training set and, alike, in the validation set.
    #[arg(long)]
    limit: Option<usize>,
}

impl RunArgs {
    /// The overrides, with `--data` checked to be a folder with both splits (before any image
    /// is read).
    fn overrides(&self) -> anyhow::Result<Overrides> {
        if let Some(dir) = &self.data {
            crate::data::layout::splits(dir)?;
        }
        Ok(Overrides { data: self.data.clone(), epochs: self.epochs, batch_size: self.batch_size, seed: self.seed, limit: self.limit })
    }
}

fn load_config(path: &Path, overrides: &Overrides) -> anyhow::Result<Config> {
    let mut cfg = Config::load(path)?;
    overrides.apply(&mut cfg, path)?;
    Ok(cfg)
}

/// This process's command line with `--overwrite` added.
fn overwrite_command() -> String {
    std::env::args().chain(["--overwrite".to_string()]).collect::<Vec<_>>().join(" ")
}

/// A folder that holds a previous run is refused with the commands that continue it (when
/// `last` is its resumable checkpoint) or replace it.
fn with_commands(e: OutputError, last: Option<&Path>) -> anyhow::Error {
    if !matches!(e, OutputError::RunExists { .. }) {
        return e.into();
    }
    let resume = match last.filter(|l| l.is_file()) {
        Some(last) => format!("\n  continue it (with a larger --epochs if it finished): {}", train::resume_command(last)),
        None => String::new(),
    };
    anyhow::anyhow!("{e}; nothing was written{resume}\n  replace its files: {}", overwrite_command())
}
