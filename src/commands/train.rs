//! `gpu-cnn train`: train a model from a TOML config.

use std::path::{Path, PathBuf};

use super::{load_config, with_commands, Env, RunArgs};
use crate::checkpoint::Checkpoint;
use crate::data::layout::Split;
use crate::model::summary::thousands;
use crate::run::{self, Start};
use crate::train::progress::Progress;
use crate::train::{Callback, InterruptAfter, TrainError};

/// Train a model from a TOML config.
///
/// Example: gpu-cnn train configs/model1.toml --data dataset --epochs 10
#[derive(clap::Args)]
pub struct Args {
    /// The model and training config (TOML).
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
}

pub fn run(a: Args, env: &Env) -> anyhow::Result<()> {
    let mut cfg = load_config(&a.config, &a.run.overrides()?)?;
    let out = run::out_dir(&cfg, a.out.as_deref());
    let last = out.join(crate::train::callbacks::LAST_CHECKPOINT);
    let inputs: Vec<(&Path, &str)> = std::iter::once((a.config.as_path(), "its config")).chain(a.init.as_deref().map(|p| (p, "--init"))).collect();
    let folder = run::claim_folder(&cfg, &out, a.resume.as_deref(), &inputs, a.overwrite).map_err(|e| with_commands(e, Some(&last)))?;
    let start = match (a.resume, a.init) {
        (Some(path), _) => Start::Resume(Checkpoint::load(&path)?, path),
        (_, Some(path)) => Start::Init(Checkpoint::load(&path)?, path),
        _ => Start::Fresh,
    };
    start.check_layout(&cfg)?;
    let freeze_note = run::freeze(&mut cfg, &a.config, &a.freeze, a.unfreeze_after, &start)?;
    // Sizes are checked on the adapter before any data is loaded or memory allocated.
    let ctx = env.gpu()?;
    for model in std::iter::once(&cfg.model).chain(cfg.growth.iter().map(|g| &g.model)) {
        crate::sizes::check_network(&ctx, model, cfg.train.batch_size)?;
    }
    let (train, test) = run::load_datasets(&cfg)?;
    outln!("{}", run::describe(&train, Split::Training, &cfg));
    outln!("{}", run::describe(&test, Split::Test, &cfg));
    outln!("Model \"{}\": {} parameters, batch {}, on {}", cfg.name, thousands(cfg.model.param_count()), cfg.train.batch_size, ctx.describe());
    if let Start::Init(_, path) = &start {
        outln!("Starting from the weights of {} (fresh optimizer)", path.display());
    }
    for line in freeze_note.into_iter().chain(run::describe_freezing(&cfg)) {
        outln!("{line}");
    }
    for g in &cfg.growth {
        let when = match (g.after_epoch, g.on_plateau) {
            (Some(epoch), _) => format!("after epoch {epoch}"),
            (None, p) => p.map_or(String::new(), |p| format!("on a plateau (validation loss improving by less than {} per 10^12 FLOPs over {} epochs)", p.min_delta, p.patience)),
        };
        let restart = match g.schedule {
            crate::grow::AtGrowth::Continue => "",
            crate::grow::AtGrowth::Restart => " (the learning-rate schedule starts over)",
            crate::grow::AtGrowth::RestartAtPeak => " (the learning-rate schedule starts over at its peak)",
        };
        let fresh = if g.blocks == crate::transfer::NewBlocks::Fresh { " (new residual blocks start as initialised, not adding 0)" } else { "" };
        outln!("Grows {when}{restart}{fresh} to {} parameters: {}", thousands(g.model.param_count()), g.changes.join("; "));
    }
    let stop = crate::interrupt::listen();
    let mut extra: Vec<Box<dyn Callback>> = vec![Box::new(Progress::default())];
    if let Some(n) = std::env::var("GPU_CNN_INTERRUPT_AFTER_STEPS").ok().and_then(|v| v.parse().ok()) {
        extra.push(Box::new(InterruptAfter::new(n, stop.flag())));
    }
    match run::train(&ctx, &cfg, train, test, &folder, start, extra, Some(stop.flag())) {
        Ok((history, _)) => {
            let best = history.iter().map(|l| l.val_acc).fold(f64::NAN, f64::max);
            outln!("Best val_acc {best:.4}; history in {}", out.join("history.csv").display());
            Ok(())
        }
        Err(e) => match e.downcast_ref::<TrainError>() {
            Some(interrupted @ TrainError::Interrupted { .. }) => {
                errln!("{interrupted}; resumable checkpoint: {}", last.display());
                errln!("Resume with: {}", resume_command(&last));
                // Exiting skips destructors: release the folder's lock first.
                drop(folder);
                std::process::exit(crate::interrupt::EXIT_STATUS);
            }
            _ => Err(e),
        },
    }
}

/// This process's command line with `--resume <last>` in place of any --resume/--init, and
/// without the freezing flags (a resumed run keeps the schedule its checkpoint records, and
/// refuses them).
pub(super) fn resume_command(last: &Path) -> String {
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
