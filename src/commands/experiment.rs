//! `gpu-cnn experiment`: a chain of stages and its comparison with scratch, over seeds.

use std::path::PathBuf;

use super::{with_commands, Env, RunArgs};
use crate::files::OutputError;
use crate::train::progress::Progress;
use crate::train::Callback;

/// Train a chain of models, each grown from the one before, against the last trained from
/// scratch, over seeds; compare them in compute.
///
/// The chain is the experiment TOML's `stages = ["a.toml", "b.toml", { config = "c.toml",
/// freeze = ["copied"], unfreeze_after = 5 }]`. The first stage trains from scratch (or comes
/// from a given checkpoint); each later stage starts from the previous one's best checkpoint,
/// transferred with each of `strategies` (one arm each), with its own epochs, learning rate,
/// schedule and freezing; the last stage also trains from scratch (the `scratch` arm). All of
/// it repeats for each of `seeds`. Every run has its own folder
/// (<out>/seed-<s>/<arm>/<k>-<model>/), so arms and seeds can run on separate machines
/// (--arm, --seed); results.md and comparison.png (validation accuracy against cumulative
/// training FLOPs and wall time) are rebuilt from the runs that finished (--report). The
/// older two-stage `source` / `target` form still reads.
///
/// Example: gpu-cnn experiment configs/experiment.toml --data dataset
#[derive(clap::Args)]
pub struct Args {
    /// The experiment's config (TOML).
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
}

pub fn run(a: Args, env: &Env) -> anyhow::Result<()> {
    let exp = crate::experiment::ExperimentConfig::load(&a.config)?;
    let overrides = a.run.overrides()?;
    let done = if a.report {
        crate::experiment::report(&exp, &overrides)?
    } else {
        // The experiment's own `data` folder, checked as --data is (before anything trains).
        if let Some(dir) = exp.data.as_deref().filter(|_| overrides.data.is_none()) {
            crate::data::layout::splits(dir)?;
        }
        let ctx = env.gpu()?;
        let progress = || -> Vec<Box<dyn Callback>> { vec![Box::new(Progress::default())] };
        match crate::experiment::run(&ctx, &exp, &overrides, a.overwrite, a.arm.as_deref(), a.run.seed, &progress) {
            Ok(done) => done,
            // Every run folder is released by now: the same command resumes the sweep.
            Err(e) if crate::interrupt::requested() => {
                errln!("{e}; run the same command again to resume");
                std::process::exit(crate::interrupt::EXIT_STATUS);
            }
            Err(e) => return Err(e.downcast::<OutputError>().map_or_else(|e| e, |e| with_commands(e, None))),
        }
    };
    outln!("\n{}", done.markdown);
    match &done.chart {
        Some(chart) => outln!("Chart: {}; table: {}", chart.display(), done.table.display()),
        None => outln!("No chart drawn (no strategy arm or scratch has finished); table: {}", done.table.display()),
    }
    Ok(())
}
