//! The gpu-cnn command line: parses flags, calls the library, prints errors once.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use gpu_cnn::checkpoint::Checkpoint;
use gpu_cnn::config::Config;
use gpu_cnn::files::{check_output_file, OutputError};
use gpu_cnn::gpu::context::{parse_backends, AdapterChoice, GpuContext};
use gpu_cnn::gpu::Kernels;
use gpu_cnn::model::summary::{summary, thousands};
use gpu_cnn::run::{self, Overrides, Start};
use gpu_cnn::train::progress::Progress;
use gpu_cnn::train::{Callback, InterruptAfter, TrainError};

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
    /// N / classes images of each class per split (rounded down, at least one).
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
        /// Continue a run from a resumable checkpoint (its last.safetensors): same weights,
        /// Adam state, learning rate, schedule state and data order.
        #[arg(long, conflicts_with = "init")]
        resume: Option<PathBuf>,
        /// Start from a checkpoint's weights with a fresh optimizer (the layouts must match;
        /// see `gpu-cnn transfer` otherwise).
        #[arg(long)]
        init: Option<PathBuf>,
        /// Replace the files of a previous run in the run's folder.
        #[arg(long)]
        overwrite: bool,
        /// Hold these layers still (Keras `trainable = False`), comma-separated; `copied`
        /// names the layers the --init checkpoint's transfer copied unchanged.
        #[arg(long, value_delimiter = ',')]
        freeze: Vec<String>,
        /// Make every frozen layer trainable from epoch N + 1 (fresh Adam state).
        #[arg(long)]
        unfreeze_after: Option<u32>,
    },
    /// Loss, accuracy, per-class accuracy and confusion matrix of a checkpoint on a folder
    /// with one sub-folder per class.
    ///
    /// Example: gpu-cnn evaluate checkpoints/model1/best.safetensors --data dataset/test_set
    Evaluate {
        checkpoint: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
        batch_size: u32,
        /// One JSON object instead of the report.
        #[arg(long)]
        json: bool,
    },
    /// Class and probability of each image.
    ///
    /// Example: gpu-cnn predict checkpoints/model1/best.safetensors cat.jpg dog.png --json
    Predict {
        checkpoint: PathBuf,
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// One JSON array (file, class, probabilities) instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Move a trained checkpoint's parameters into a new model layout, layer by layer, and say
    /// what moved and why the rest could not.
    ///
    /// Example: gpu-cnn transfer --from checkpoints/model1/best.safetensors --to configs/model2.toml --out model2-init.safetensors --strategy grow
    Transfer {
        #[arg(long)]
        from: PathBuf,
        /// The target model's config.
        #[arg(long)]
        to: PathBuf,
        /// The new checkpoint (train it with `gpu-cnn train CONFIG --init OUT`).
        #[arg(long, required_unless_present = "dry_run")]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "prefix")]
        strategy: gpu_cnn::transfer::Strategy,
        /// Copy the overlapping slice where unit or channel counts differ.
        #[arg(long)]
        partial: bool,
        /// Print the plan, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also report both models' validation accuracy before training (DIR/test_set, or DIR
        /// itself if it holds class folders).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Replace an existing --out file.
        #[arg(long)]
        overwrite: bool,
    },
    /// The checkpoint as an ONNX model (opset 13): input as `predict` feeds it (pixels / 255,
    /// NHWC unless --layout nchw), output the class probabilities, class names in its metadata.
    ///
    /// Example: gpu-cnn export checkpoints/model2/best.safetensors -o model2.onnx
    Export {
        checkpoint: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// The input's axis order.
        #[arg(long, value_enum, default_value = "nhwc")]
        layout: gpu_cnn::interop::onnx::Layout,
        /// Replace an existing output file.
        #[arg(long)]
        overwrite: bool,
    },
    /// Weights from another framework as a gpu-cnn checkpoint.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Train a source model, transfer it into a target layout with each strategy, train the
    /// target from each transfer and from scratch; write every history, a chart and a table.
    ///
    /// Example: gpu-cnn experiment configs/experiment.toml --data ../shared/datasets/cifar10-catdog
    Experiment {
        config: PathBuf,
        #[command(flatten)]
        run: RunArgs,
        /// Replace the files of a previous experiment's runs in its folder.
        #[arg(long)]
        overwrite: bool,
        /// Run only this arm (`first`, a strategy, or `scratch`), e.g. one job of an array;
        /// with --seed, for one seed (which must be one of the experiment's `seeds`).
        #[arg(long)]
        arm: Option<String>,
        /// Rebuild results.md and comparison.png from the runs that have finished; train nothing.
        #[arg(long, conflicts_with_all = ["arm", "overwrite"])]
        report: bool,
    },
    /// Draw accuracy and loss curves (train and validation) of one or more runs.
    ///
    /// Example: gpu-cnn plot checkpoints/model1/history.json checkpoints/model2/history.json -o curves.png
    Plot {
        /// history.json files, or run folders holding one.
        #[arg(required = true)]
        histories: Vec<PathBuf>,
        /// Output file, .png or .svg.
        #[arg(short, long, default_value = "curves.png")]
        output: PathBuf,
        /// Replace an existing output file.
        #[arg(long)]
        overwrite: bool,
    },
    /// Put data on disk in the class-folder layout, and look at it.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Print a Keras-style table of a config's model, or of the model a checkpoint (.safetensors)
    /// holds, with its frozen layers.
    ///
    /// Example: gpu-cnn summary configs/model2.toml
    Summary { file: PathBuf },
    /// List GPU adapters and mark the one that would be used.
    ///
    /// Example: gpu-cnn devices --backend vulkan
    Devices,
    /// Benchmarks on the chosen adapter.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Args)]
struct CifarArgs {
    /// Comma-separated class names (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck).
    #[arg(long, value_delimiter = ',', required = true)]
    classes: Vec<String>,
    #[arg(long, default_value = "dataset")]
    out: PathBuf,
    /// seed: 80/20 split of the training batches (the write-up's 8,000 / 2,000 for cat,dog);
    /// official: training batches / test batch.
    #[arg(long, value_enum, default_value = "seed")]
    split: gpu_cnn::dataset::cifar::Split,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Download CIFAR-10 (binary version, checksum verified) and write the chosen classes.
    ///
    /// Example: gpu-cnn dataset fetch cifar10 --classes cat,dog --out dataset/
    Fetch {
        /// Only cifar10 for now.
        #[arg(value_parser = ["cifar10"])]
        name: String,
        #[command(flatten)]
        cifar: CifarArgs,
        /// Mirror of the archive.
        #[arg(long, default_value = gpu_cnn::dataset::fetch::CIFAR10_URL)]
        url: String,
        /// Expected MD5 of the archive.
        #[arg(long, default_value = gpu_cnn::dataset::fetch::CIFAR10_MD5)]
        md5: String,
        /// Seconds any one network wait may last: connecting, the response, each read of the
        /// download (a slow but moving download may take longer in all).
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// HTTP(S) proxy (default: HTTPS_PROXY / ALL_PROXY from the environment).
        #[arg(long)]
        proxy: Option<String>,
    },
    /// Same as fetch, from a local copy: the .tar.gz or its extracted cifar-10-batches-bin/.
    ///
    /// Example: gpu-cnn dataset import ~/Downloads/cifar-10-binary.tar.gz --classes cat,dog --out dataset/
    Import {
        source: PathBuf,
        #[command(flatten)]
        cifar: CifarArgs,
        /// Check the archive against the official MD5 (local copies may be re-packed).
        #[arg(long)]
        verify: bool,
    },
    /// Write the built-in synthetic two-class set (crosses, rings) as PNG class folders.
    ///
    /// Example: gpu-cnn dataset synth --out synthetic/
    Synth {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1200)]
        train: usize,
        #[arg(long, default_value_t = 400)]
        test: usize,
        /// Image side in pixels.
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(4..=1024))]
        size: u32,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Class counts, image sizes, formats and corrupt files; optionally contact sheets.
    ///
    /// Example: gpu-cnn dataset stats dataset/ --out sheet.png --augment configs/model1.toml
    Stats {
        dir: PathBuf,
        /// Contact sheet PNG of samples per class (of the training split).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write <out>-augmented.png: the same samples through this config's augmentation.
        #[arg(long, requires = "out")]
        augment: Option<PathBuf>,
        /// Replace existing contact sheets.
        #[arg(long)]
        overwrite: bool,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Keras weights (Keras 2 .h5 from save_weights or model.save, Keras 3 .weights.h5 or
    /// .keras) into a config's layout: layers matched by name, else by order; the report says
    /// what was copied and what was not.
    ///
    /// Example: gpu-cnn import keras classifier1.h5 --config configs/model1.toml -o model1-keras.safetensors
    Keras {
        file: PathBuf,
        /// The config whose model the weights fill.
        #[arg(long)]
        config: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// Class names in label order (default: class_0, class_1, ...); `evaluate` needs the
        /// data's folder names, e.g. cats,dogs.
        #[arg(long, value_delimiter = ',')]
        classes: Option<Vec<String>>,
        /// Replace an existing output file.
        #[arg(long)]
        overwrite: bool,
    },
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
        /// Only the kernels whose name or shape contains this, e.g. `batchnorm`.
        #[arg(long)]
        only: Option<String>,
    },
    /// Steady-state training and evaluation images/s of a config, and the augmentation
    /// pipeline's images/s on its own, with each kernel's share of a training step.
    ///
    /// Example: gpu-cnn bench train configs/model1.toml --json
    Train {
        config: PathBuf,
        #[arg(long)]
        json: bool,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        batch_size: Option<u32>,
        /// Measure with these layers frozen (as `train --freeze`).
        #[arg(long, value_delimiter = ',')]
        freeze: Vec<String>,
    },
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,wgpu_hal::gles=off")).init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn load_config(path: &std::path::Path, overrides: &Overrides) -> anyhow::Result<Config> {
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
fn with_commands(e: OutputError, last: Option<&std::path::Path>) -> anyhow::Error {
    if !matches!(e, OutputError::RunExists { .. }) {
        return e.into();
    }
    let resume = match last.filter(|l| l.is_file()) {
        Some(last) => format!("\n  continue it (with a larger --epochs if it finished): {}", resume_command(last)),
        None => String::new(),
    };
    anyhow::anyhow!("{e}; nothing was written{resume}\n  replace its files: {}", overwrite_command())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    gpu_cnn::interrupt::install().context("installing the signal handler")?;
    let backends = parse_backends(cli.backend.as_deref())?;
    let gpu = || GpuContext::new(&cli.adapter, backends);
    match cli.command {
        Command::Devices => print!("{}", gpu_cnn::devices::report(&cli.adapter, backends)),
        Command::Summary { file } => match file.extension().is_some_and(|e| e == "safetensors") {
            true => print!("{}", summary(&file.display().to_string(), &Checkpoint::load(&file)?.model)),
            false => {
                let cfg = Config::load(&file)?;
                print!("{}", summary(&cfg.name, &cfg.model));
            }
        },
        Command::Train { config, run: args, out, resume, init, overwrite, freeze, unfreeze_after } => {
            let mut cfg = load_config(&config, &args.overrides())?;
            let out = run::out_dir(&cfg, out.as_deref());
            let last = out.join(gpu_cnn::train::callbacks::LAST_CHECKPOINT);
            let inputs: Vec<(&std::path::Path, &str)> = std::iter::once((config.as_path(), "its config")).chain(init.as_deref().map(|p| (p, "--init"))).collect();
            let folder = run::claim_folder(&cfg, &out, resume.as_deref(), &inputs, overwrite).map_err(|e| with_commands(e, Some(&last)))?;
            let start = match (resume, init) {
                (Some(path), _) => Start::Resume(Checkpoint::load(&path)?, path),
                (_, Some(path)) => Start::Init(Checkpoint::load(&path)?, path),
                _ => Start::Fresh,
            };
            start.check_layout(&cfg)?;
            run::freeze(&mut cfg, &config, &freeze, unfreeze_after, &start)?;
            // Sizes are checked on the adapter before any data is loaded or memory allocated.
            let ctx = gpu()?;
            gpu_cnn::sizes::check_network(&ctx, &cfg.model, cfg.train.batch_size)?;
            let (train, test) = run::load_datasets(&cfg)?;
            println!("{}", run::describe(&train, "training"));
            println!("{}", run::describe(&test, "validation"));
            println!("Model \"{}\": {} parameters, batch {}, on {}", cfg.name, thousands(cfg.model.param_count()), cfg.train.batch_size, ctx.describe());
            if let Some(line) = run::describe_freezing(&cfg) {
                println!("{line}");
            }
            let stop = gpu_cnn::interrupt::listen();
            let mut extra: Vec<Box<dyn Callback>> = vec![Box::new(Progress::default())];
            if let Some(n) = std::env::var("GPU_CNN_INTERRUPT_AFTER_STEPS").ok().and_then(|v| v.parse().ok()) {
                extra.push(Box::new(InterruptAfter::new(n, stop.flag())));
            }
            match run::train(&ctx, &cfg, train, test, &folder, start, extra, Some(stop.flag())) {
                Ok((history, _)) => {
                    let best = history.iter().map(|l| l.val_acc).fold(f64::NAN, f64::max);
                    println!("Best val_acc {best:.4}; history in {}", out.join("history.csv").display());
                }
                Err(e) => match e.downcast_ref::<TrainError>() {
                    Some(interrupted @ TrainError::Interrupted { .. }) => {
                        eprintln!("{interrupted}; resumable checkpoint: {}", last.display());
                        eprintln!("Resume with: {}", resume_command(&last));
                        // Exiting skips destructors: release the folder's lock first.
                        drop(folder);
                        std::process::exit(gpu_cnn::interrupt::EXIT_STATUS);
                    }
                    _ => return Err(e),
                },
            }
        }
        Command::Transfer { from, to, out, strategy, partial, dry_run, data, overwrite } => {
            if let Some(out) = out.as_deref().filter(|_| !dry_run) {
                check_output_file(out, overwrite, &[(from.as_path(), "--from"), (to.as_path(), "--to")])?;
            }
            let source = Checkpoint::load(&from)?;
            let cfg = Config::load(&to)?;
            gpu_cnn::sizes::check_host(&cfg.model)?;
            let (mut plan, mut ckpt) = gpu_cnn::transfer::transfer(&source, &from, &cfg.model, cfg.train.seed, cfg.train.learning_rate, strategy, partial);
            println!("Transfer {} -> {} ({:?} strategy{})", from.display(), to.display(), strategy, if partial { ", partial" } else { "" });
            if let Some(dir) = data.as_deref().filter(|_| strategy == gpu_cnn::transfer::Strategy::Grow) {
                // Inserted batchnorms measured on (up to 1,024) training images.
                let train = if dir.join("training_set").is_dir() { dir.join("training_set") } else { dir.to_path_buf() };
                let images = gpu_cnn::data::folder::load(&train, cfg.model.input, Some(1024), gpu_cnn::data::folder::CorruptPolicy::Skip, 2)?;
                gpu_cnn::transfer::calibrate::calibrate(&gpu()?, &mut plan, &mut ckpt, images)?;
            }
            print!("{}", plan.table());
            if plan.moved == 0 {
                log::warn!("nothing came from the source: the new model starts as from scratch (see each layer's reason)");
            }
            if let Some(dir) = data {
                let dir = if dir.join("test_set").is_dir() { dir.join("test_set") } else { dir };
                let ctx = gpu()?;
                let before = gpu_cnn::predict::evaluate(&ctx, &source, &dir, 32, 2)?;
                let after = gpu_cnn::predict::evaluate(&ctx, &ckpt, &dir, 32, 2)?;
                println!("Validation accuracy before any training ({}): source {:.4}, new model {:.4}", dir.display(), before.accuracy, after.accuracy);
            }
            match (dry_run, out) {
                (false, Some(out)) => {
                    ckpt.save(&out)?;
                    println!("Wrote {} (train it with: gpu-cnn train {} --init {})", out.display(), to.display(), out.display());
                }
                _ => println!("Dry run: nothing written"),
            }
        }
        Command::Export { checkpoint, output, layout, overwrite } => {
            check_output_file(&output, overwrite, &[(checkpoint.as_path(), "the checkpoint")])?;
            let ckpt = Checkpoint::load(&checkpoint)?;
            let model = gpu_cnn::interop::onnx::save(&ckpt, layout, &output)?;
            let graph = model.graph.as_ref().expect("export builds a graph");
            println!("Wrote {} (ONNX opset {}, {} nodes, {} parameters)", output.display(), gpu_cnn::interop::onnx::OPSET, graph.node.len(), thousands(ckpt.model.param_count()));
            println!("{}", model.doc_string);
        }
        Command::Import(ImportCommand::Keras { file, config, output, classes, overwrite }) => {
            check_output_file(&output, overwrite, &[(file.as_path(), "the Keras file"), (config.as_path(), "--config")])?;
            let cfg = Config::load(&config)?;
            gpu_cnn::sizes::check_host(&cfg.model)?;
            let (plan, matched_by, format, ckpt) = gpu_cnn::interop::keras::checkpoint(&file, &cfg, classes)?;
            println!("Import {} ({}) -> {} (layers matched by {})", file.display(), format.describe(), config.display(), matched_by.describe());
            print!("{}", plan.table());
            ckpt.save(&output)?;
            println!("Wrote {} (train it with: gpu-cnn train {} --init {})", output.display(), config.display(), output.display());
        }
        Command::Experiment { config, run: args, overwrite, arm, report } => {
            let exp = gpu_cnn::experiment::ExperimentConfig::load(&config)?;
            let overrides = args.overrides();
            let done = if report {
                gpu_cnn::experiment::report(&exp, &overrides)?
            } else {
                let ctx = gpu()?;
                let progress = || -> Vec<Box<dyn Callback>> { vec![Box::new(Progress::default())] };
                match gpu_cnn::experiment::run(&ctx, &exp, &overrides, overwrite, arm.as_deref(), args.seed, &progress) {
                    Ok(done) => done,
                    // Every run folder is released by now: the same command resumes the sweep.
                    Err(e) if gpu_cnn::interrupt::requested() => {
                        eprintln!("{e}; run the same command again to resume");
                        std::process::exit(gpu_cnn::interrupt::EXIT_STATUS);
                    }
                    Err(e) => return Err(e.downcast::<OutputError>().map_or_else(|e| e, |e| with_commands(e, None))),
                }
            };
            println!("\n{}", done.markdown);
            match &done.chart {
                Some(chart) => println!("Chart: {}; table: {}", chart.display(), done.table.display()),
                None => println!("No chart drawn (no strategy arm or scratch has finished); table: {}", done.table.display()),
            }
        }
        Command::Plot { histories, output, overwrite } => {
            let inputs: Vec<(&std::path::Path, &str)> = histories.iter().map(|h| (h.as_path(), "a history")).collect();
            check_output_file(&output, overwrite, &inputs)?;
            let mut runs = Vec::new();
            for path in &histories {
                let file = if path.is_dir() { path.join("history.json") } else { path.clone() };
                let name = file.parent().and_then(|p| p.file_name()).map_or("run".into(), |n| n.to_string_lossy().into_owned());
                runs.push((name, gpu_cnn::train::history::read(&file).map_err(anyhow::Error::msg)?));
            }
            let refs: Vec<(&str, &[gpu_cnn::record::EpochLogs])> = runs.iter().map(|(n, h)| (n.as_str(), h.as_slice())).collect();
            gpu_cnn::plot::plot(&refs, &output).map_err(anyhow::Error::msg)?;
            println!("Wrote {}", output.display());
        }
        Command::Dataset(cmd) => dataset(cmd)?,
        Command::Evaluate { checkpoint, data, batch_size, json } => {
            let ckpt = Checkpoint::load(&checkpoint)?;
            let ctx = gpu()?;
            let report = gpu_cnn::predict::evaluate(&ctx, &ckpt, &data, batch_size, 2)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.report());
            }
        }
        Command::Predict { checkpoint, images, json } => {
            let ckpt = Checkpoint::load(&checkpoint)?;
            let ctx = gpu()?;
            let (predictions, unreadable) = gpu_cnn::predict::predict(&ctx, &ckpt, &images, 32)?;
            if json {
                println!("{}", serde_json::to_string(&predictions)?);
            } else {
                for p in &predictions {
                    let prob = p.probabilities[&p.class].as_f64().unwrap_or(f64::NAN);
                    println!("{}: {} ({prob:.4})", p.file.display(), p.class);
                }
            }
            // The readable images are predicted; the others are named, and the exit status says so.
            unreadable.iter().for_each(|e| eprintln!("{e}"));
            if !unreadable.is_empty() {
                anyhow::bail!("{} of {} images could not be read", unreadable.len(), images.len());
            }
        }
        Command::Bench(Bench::Kernels { json, only }) => {
            let ctx = gpu()?;
            let results = gpu_cnn::bench::kernels(&ctx, only.as_deref())?;
            if json {
                println!("{}", gpu_cnn::bench::to_json(&ctx, &results));
            } else {
                print!("{}", gpu_cnn::bench::table(&ctx, &results));
            }
        }
        Command::Bench(Bench::Train { config, json, batch_size, freeze }) => {
            let mut cfg = load_config(&config, &Overrides { batch_size, ..Default::default() })?;
            run::freeze(&mut cfg, &config, &freeze, None, &Start::Fresh)?;
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

/// This process's command line with `--resume <last>` in place of any --resume/--init, and
/// without the freezing flags (a resumed run keeps the schedule its checkpoint records, and
/// refuses them).
fn resume_command(last: &std::path::Path) -> String {
    const DROPPED: [&str; 4] = ["--resume", "--init", "--freeze", "--unfreeze-after"];
    let mut args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        if DROPPED.contains(&args[i].as_str()) {
            args.drain(i..(i + 2).min(args.len()));
        } else if DROPPED.iter().any(|f| args[i].starts_with(&format!("{f}="))) {
            args.remove(i);
        } else {
            i += 1;
        }
    }
    args.push("--resume".into());
    args.push(last.display().to_string());
    args.join(" ")
}

fn dataset(cmd: DatasetCommand) -> anyhow::Result<()> {
    use gpu_cnn::dataset::{cifar, fetch, stats};
    let export = |batches: &cifar::Batches, source: &str, a: &CifarArgs| -> anyhow::Result<()> {
        if cifar::export(batches, source, &a.classes, a.split, a.seed, &a.out)? {
            println!("Wrote {} ({:?} split)", a.out.display(), a.split);
            print!("{}", stats::report(&stats::stats(&a.out)?));
        } else {
            println!("{} already holds this dataset: nothing to do", a.out.display());
        }
        Ok(())
    };
    match cmd {
        DatasetCommand::Fetch { name, cifar: a, url, md5, timeout, proxy } => {
            cifar::class_indices(&a.classes)?;
            let split = match a.split {
                cifar::Split::Seed => format!("seed {}", a.seed),
                cifar::Split::Official => "official".into(),
            };
            if gpu_cnn::dataset::Marker::complete(&a.out, &name, &a.classes, &split)? {
                println!("{} already holds {name} ({}, {split} split): nothing to do", a.out.display(), a.classes.join(","));
                return Ok(());
            }
            let archive = a.out.join("cifar-10-binary.tar.gz");
            let d = fetch::Download { url: url.clone(), md5: Some(md5), timeout: std::time::Duration::from_secs(timeout), proxy };
            if fetch::fetch(&d, &archive)? {
                println!("Downloaded {url} (checksum verified)");
            }
            export(&cifar::read(&archive)?, &name, &a)?;
        }
        DatasetCommand::Import { source, cifar: a, verify } => {
            cifar::class_indices(&a.classes)?;
            if verify && source.is_file() {
                let actual = fetch::md5_file(&source)?;
                if actual != fetch::CIFAR10_MD5 {
                    let hint = " (not the official archive; leave out --verify to import a re-packed copy)";
                    return Err(gpu_cnn::dataset::DatasetError::Checksum { path: source, expected: fetch::CIFAR10_MD5.into(), actual, hint }.into());
                }
            }
            export(&cifar::read(&source)?, "cifar10", &a)?;
        }
        DatasetCommand::Synth { out, train, test, size, seed } => {
            // The images are generated in memory, then copied for encoding.
            let bytes = (train as u64).saturating_add(test as u64).saturating_mul(size as u64 * size as u64 * 3 * 2);
            gpu_cnn::sizes::check_host_bytes("the synthetic set", bytes)?;
            if gpu_cnn::dataset::synth(&out, train, test, size, seed)? {
                println!("Wrote the synthetic set to {}", out.display());
                print!("{}", stats::report(&stats::stats(&out)?));
            } else {
                println!("{} already holds this synthetic set: nothing to do", out.display());
            }
        }
        DatasetCommand::Stats { dir, out, augment, overwrite } => {
            let augmented = out.as_ref().map(|out| out.with_file_name(format!("{}-augmented.png", out.file_stem().unwrap_or_default().to_string_lossy())));
            for path in out.iter().chain(augmented.iter().filter(|_| augment.is_some())) {
                check_output_file(path, overwrite, &[])?;
            }
            print!("{}", stats::report(&stats::stats(&dir)?));
            if let Some(out) = out {
                let (_, first) = stats::splits(&dir).into_iter().next().expect("splits() names at least the folder itself");
                let (w, h) = stats::contact_sheet(&first, &out, None)?;
                println!("Contact sheet: {} ({w}x{h})", out.display());
                if let (Some(cfg), Some(path)) = (augment, augmented) {
                    let cfg = Config::load(&cfg)?;
                    stats::contact_sheet(&first, &path, Some(&cfg.augment))?;
                    println!("Augmented sheet: {}", path.display());
                }
            }
        }
    }
    Ok(())
}
