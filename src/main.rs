//! The gpu-cnn command line: parses flags, calls the library, prints errors once.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use gpu_cnn::config::Config;
use gpu_cnn::gpu::context::{parse_backends, AdapterChoice, GpuContext};
use gpu_cnn::gpu::Kernels;
use gpu_cnn::model::summary::{summary, thousands};
use gpu_cnn::run::{self, Overrides};
use gpu_cnn::train::progress::Progress;

#[derive(Parser)]
#[command(name = "gpu-cnn", version, about = "Train CNN image classifiers on the GPU with hand-written WGSL kernels")]
struct Cli {
    /// Adapter: an index from `gpu-cnn devices`, a name substring, `cpu` or `gpu`.
    #[arg(long, global = true, env = "GPU_CNN_ADAPTER", default_value = "auto")]
    adapter: AdapterChoice,
    /// Graphics API: vulkan, metal, dx12 or gl (default: all).
    #[arg(long, global = true, env = "GPU_CNN_BACKEND")]
    backend: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct RunArgs {
    /// Folder holding training_set/ and test_set/ (overrides [data]).
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long)]
    epochs: Option<u32>,
    #[arg(long)]
    batch_size: Option<u32>,
    #[arg(long)]
    seed: Option<u64>,
    /// At most N images per split, balanced across classes.
    #[arg(long)]
    limit: Option<usize>,
}

impl RunArgs {
    fn overrides(&self) -> Overrides {
        Overrides { data: self.data.clone(), epochs: self.epochs, batch_size: self.batch_size, seed: self.seed, limit: self.limit }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Train a model from a TOML config.
    ///
    /// Example: gpu-cnn train configs/model1.toml --data ../shared/datasets/cifar10-catdog --epochs 10
    Train {
        config: PathBuf,
        #[command(flatten)]
        run: RunArgs,
        /// The run's folder for history and checkpoints (default: checkpoints/<config name>/).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print a Keras-style table of a config's model.
    ///
    /// Example: gpu-cnn summary configs/model2.toml
    Summary { config: PathBuf },
    /// List GPU adapters and mark the one that would be used.
    ///
    /// Example: gpu-cnn devices --backend vulkan
    Devices,
    /// Benchmarks on the chosen adapter.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Subcommand)]
enum Bench {
    /// Time per call and GFLOP/s (or GB/s) of every kernel at the reference models' shapes.
    ///
    /// Example: gpu-cnn bench kernels --json
    Kernels {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Steady-state training and evaluation images/s of a config, and the augmentation
    /// pipeline's images/s on its own, with each kernel's share of a training step.
    ///
    /// Example: gpu-cnn bench train configs/model1.toml --json
    Train {
        config: PathBuf,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        batch_size: Option<u32>,
    },
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,wgpu_hal::gles=off")).init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn load_config(path: &PathBuf, overrides: &Overrides) -> anyhow::Result<Config> {
    let mut cfg = Config::load(path)?;
    overrides.apply(&mut cfg);
    Ok(cfg)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let backends = parse_backends(cli.backend.as_deref())?;
    let gpu = || GpuContext::new(&cli.adapter, backends);
    match cli.command {
        Command::Devices => print!("{}", gpu_cnn::devices::report(&cli.adapter, backends)),
        Command::Summary { config } => {
            let cfg = Config::load(&config)?;
            print!("{}", summary(&cfg.name, &cfg.model));
        }
        Command::Train { config, run: args, out } => {
            let cfg = load_config(&config, &args.overrides())?;
            let (train, test) = run::load_datasets(&cfg)?;
            println!("{}", run::describe(&train, "training"));
            println!("{}", run::describe(&test, "validation"));
            let ctx = gpu()?;
            let out = run::out_dir(&cfg, out.as_deref());
            println!("Model \"{}\": {} parameters, batch {}, on {}", cfg.name, thousands(cfg.model.param_count()), cfg.train.batch_size, ctx.describe());
            let (history, _) = run::train(&ctx, &cfg, train, test, &out, vec![Box::new(Progress::default())])?;
            let best = history.iter().map(|l| l.val_acc).fold(f64::NAN, f64::max);
            println!("Best val_acc {best:.4}; history in {}", out.join("history.csv").display());
        }
        Command::Bench(Bench::Kernels { json }) => {
            let ctx = gpu()?;
            let results = gpu_cnn::bench::kernels(&ctx)?;
            if json {
                println!("{}", gpu_cnn::bench::to_json(&ctx, &results));
            } else {
                print!("{}", gpu_cnn::bench::table(&ctx, &results));
            }
        }
        Command::Bench(Bench::Train { config, json, batch_size }) => {
            let cfg = load_config(&config, &Overrides { batch_size, ..Default::default() })?;
            let ctx = gpu()?;
            let kernels = Kernels::new(&ctx);
            let report = gpu_cnn::bench::train(&ctx, &kernels, &cfg).with_context(|| format!("benchmarking {}", config.display()))?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
    }
    Ok(())
}
