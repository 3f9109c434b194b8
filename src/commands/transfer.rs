//! `gpu-cnn transfer`: a trained checkpoint's parameters moved into a new model layout.

use std::path::PathBuf;

use super::Env;
use crate::checkpoint::Checkpoint;
use crate::config::Config;
use crate::data::layout::{self, Split};
use crate::files::check_output_file;
use crate::predict::EvalOptions;
use crate::transfer::Strategy;

/// Move a trained checkpoint's parameters into a new model layout, layer by layer, and say
/// what moved and why the rest could not.
///
/// Example: gpu-cnn transfer --from checkpoints/model1/best.safetensors --to configs/model2.toml --out model2-init.safetensors --strategy grow
#[derive(clap::Args)]
pub struct Args {
    /// The trained source checkpoint (.safetensors).
    #[arg(long)]
    from: PathBuf,
    /// The target model's config.
    #[arg(long)]
    to: PathBuf,
    /// The new checkpoint (train it with `gpu-cnn train CONFIG --init OUT`).
    #[arg(long, required_unless_present = "dry_run")]
    out: Option<PathBuf>,
    /// How source layers are paired with the target's.
    #[arg(long, value_enum, default_value = "prefix")]
    strategy: Strategy,
    /// Copy the overlapping slice where unit or channel counts differ.
    #[arg(long)]
    partial: bool,
    /// Print the plan, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also report both models' validation accuracy before training, on a folder with
    /// training_set/ and test_set/ (its test_set/; --strategy grow measures inserted batchnorms
    /// on its training_set/) or on a class folder.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Replace an existing --out file.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(a: Args, env: &Env) -> anyhow::Result<()> {
    if let Some(out) = a.out.as_deref().filter(|_| !a.dry_run) {
        check_output_file(out, a.overwrite, &[(a.from.as_path(), "--from"), (a.to.as_path(), "--to")])?;
    }
    let source = Checkpoint::load(&a.from)?;
    let cfg = Config::load(&a.to)?;
    crate::sizes::check_host(&cfg.model)?;
    let (mut plan, mut ckpt) = crate::transfer::transfer(&source, &a.from, &cfg.model, cfg.train.seed, cfg.train.learning_rate, a.strategy, a.partial);
    ckpt.state.name = Some(cfg.name.clone());
    outln!("Transfer {} -> {} ({:?} strategy{})", a.from.display(), a.to.display(), a.strategy, if a.partial { ", partial" } else { "" });
    if let Some(dir) = a.data.as_deref().filter(|_| a.strategy == Strategy::Grow) {
        // Inserted batchnorms measured on (up to 1,024) training images.
        let train = layout::class_folder(dir, Split::Training)?;
        let images = crate::data::folder::load(&train, cfg.model.input, Some(1024), crate::data::folder::CorruptPolicy::Skip, 2)?;
        let set = crate::transfer::calibrate::calibrate(&env.gpu()?, &mut plan, &mut ckpt, images)?;
        if !set.is_empty() {
            outln!("Inserted batchnorms ({}) measured on {}", set.join(", "), train.display());
        }
    }
    out!("{}", plan.table());
    if plan.moved == 0 {
        log::warn!("nothing came from the source: the new model starts as from scratch (see each layer's reason)");
    }
    if let Some(dir) = a.data {
        let dir = layout::class_folder(&dir, Split::Test)?;
        let ctx = env.gpu()?;
        let before = crate::predict::evaluate(&ctx, &source, &dir, 32, 2, EvalOptions::default())?;
        let after = crate::predict::evaluate(&ctx, &ckpt, &dir, 32, 2, EvalOptions::default())?;
        outln!("Validation accuracy before any training ({}): source {:.4}, new model {:.4}", dir.display(), before.accuracy, after.accuracy);
    }
    match (a.dry_run, a.out) {
        (false, Some(out)) => {
            ckpt.save(&out)?;
            outln!("Wrote {} (train it with: gpu-cnn train {} --init {})", out.display(), a.to.display(), out.display());
        }
        _ => outln!("Dry run: nothing written"),
    }
    Ok(())
}
