//! `gpu-cnn experiment`: does transfer pay? Trains the source model (or takes its checkpoint),
//! transfers it into the target layout with each strategy, trains the target from each transfer
//! and from scratch with the same seed and epochs, and writes every history, one chart of all
//! runs and a markdown table.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Deserialize;

use crate::checkpoint::Checkpoint;
use crate::config::{Config, ConfigError};
use crate::gpu::GpuContext;
use crate::run::{self, Overrides, Start};
use crate::train::{Callback, EpochLogs};
use crate::transfer::Strategy;

/// `configs/experiment.toml`. Paths are relative to the working folder, like `--data`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Config of the source model.
    pub source: PathBuf,
    /// Take this trained checkpoint instead of training the source.
    pub source_checkpoint: Option<PathBuf>,
    /// Config of the target model.
    pub target: PathBuf,
    #[serde(default = "all_strategies")]
    pub strategies: Vec<Strategy>,
    /// Epochs of every target run (default: the target config's).
    pub epochs: Option<u32>,
    /// Epochs of the source run (default: the source config's).
    pub source_epochs: Option<u32>,
    /// A folder with training_set/ and test_set/ for both models.
    pub data: Option<PathBuf>,
    /// At most this many images per split.
    pub limit: Option<usize>,
    /// Where the runs, chart and table go (default: checkpoints/experiment).
    pub out: Option<PathBuf>,
}

fn all_strategies() -> Vec<Strategy> {
    vec![Strategy::Prefix, Strategy::Grow]
}

impl ExperimentConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read { file: path.to_path_buf(), error })?;
        let exp: Self = toml::from_str(&text).map_err(|e| ConfigError::Parse { file: path.to_path_buf(), message: e.to_string().trim_end().to_string() })?;
        // Each strategy trains into its own folder, which one experiment cannot claim twice.
        if let Some(i) = (1..exp.strategies.len()).find(|&i| exp.strategies[..i].contains(&exp.strategies[i])) {
            let message = format!("{:?} is listed twice", exp.strategies[i]).to_lowercase();
            return Err(ConfigError::Invalid { file: path.to_path_buf(), field: "strategies".into(), line: String::new(), message });
        }
        Ok(exp)
    }
}

/// One trained run of the experiment.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub name: String,
    pub history: Vec<EpochLogs>,
    pub seconds: f64,
}

impl RunResult {
    fn best(&self) -> f64 {
        self.history.iter().map(|l| l.val_acc).fold(f64::NAN, f64::max)
    }
}

/// The markdown table: best val acc, first epoch reaching the source's best, val acc after the
/// first epoch, wall time.
pub fn table(source_best: f64, runs: &[RunResult]) -> String {
    let mut out = format!("| run | best val_acc | epoch reaching the source's best ({source_best:.4}) | val_acc after epoch 1 | wall time |\n|---|---|---|---|---|\n");
    for r in runs {
        let reach = r.history.iter().find(|l| l.val_acc >= source_best).map_or("never".to_string(), |l| l.epoch.to_string());
        let first = r.history.first().map_or(f64::NAN, |l| l.val_acc);
        out += &format!("| {} | {:.4} | {reach} | {first:.4} | {:.0} s |\n", r.name, r.best(), r.seconds);
    }
    out
}

/// Runs the whole experiment; `extra` makes the progress display for each run. Every output
/// is claimed before the first run starts; a previous experiment's files are replaced only
/// when `overwrite`.
pub fn run(ctx: &GpuContext, exp: &ExperimentConfig, overrides: &Overrides, overwrite: bool, progress: &dyn Fn() -> Vec<Box<dyn Callback>>) -> anyhow::Result<(f64, Vec<RunResult>, PathBuf)> {
    let out = exp.out.clone().unwrap_or_else(|| PathBuf::from("checkpoints/experiment"));
    let shared = Overrides { data: overrides.data.clone().or(exp.data.clone()), limit: overrides.limit.or(exp.limit), seed: overrides.seed, ..Default::default() };
    let load = |path: &Path, epochs: Option<u32>| -> anyhow::Result<Config> {
        let mut cfg = Config::load(path)?;
        Overrides { epochs: overrides.epochs.or(epochs), ..shared.clone() }.apply(&mut cfg, path)?;
        Ok(cfg)
    };
    let mut results = Vec::new();
    let target = load(&exp.target, exp.epochs)?;
    let source = match exp.source_checkpoint {
        Some(_) => None,
        None => Some(load(&exp.source, exp.source_epochs)?),
    };
    let names: Vec<String> = exp.strategies.iter().map(|s| format!("{s:?}").to_lowercase()).chain(["scratch".to_string()]).collect();
    let mut folders = std::collections::HashMap::new();
    if let Some(cfg) = &source {
        folders.insert("source".to_string(), run::claim_folder(cfg, &out.join("source"), None, None, overwrite)?);
    }
    for name in &names {
        let dir = out.join(name);
        folders.insert(name.clone(), run::claim_folder(&target, &dir, None, None, overwrite)?);
        if name != "scratch" {
            crate::files::check_output_file(&dir.join("init.safetensors"), overwrite, &[])?;
        }
    }
    for file in ["results.md", "comparison.png"] {
        crate::files::check_output_file(&out.join(file), overwrite, &[])?;
    }

    let (source_ckpt, source_path, source_best) = match &exp.source_checkpoint {
        Some(path) => {
            let ckpt = Checkpoint::load(path)?;
            let best = ckpt.state.history.iter().map(|l| l.val_acc).fold(f64::NAN, f64::max);
            (ckpt, path.clone(), best)
        }
        None => {
            let cfg = source.as_ref().expect("loaded above when there is no source checkpoint");
            let (train, test) = run::load_datasets(cfg)?;
            println!("== source: {} ({})", cfg.name, run::describe(&train, "training"));
            let dir = &folders["source"];
            let started = Instant::now();
            let (history, _) = run::train(ctx, cfg, train, test, dir, Start::Fresh, progress(), None)?;
            let result = RunResult { name: format!("source {}", cfg.name), history, seconds: started.elapsed().as_secs_f64() };
            let best = result.best();
            results.push(result);
            // The best model if the source's config saves one there, else the last epoch's.
            let best_path = dir.join("best.safetensors");
            let path = if best_path.is_file() { best_path } else { dir.join("last.safetensors") };
            (Checkpoint::load(&path)?, path, best)
        }
    };

    let (train, test) = run::load_datasets(&target)?;
    let mut starts: Vec<(String, Start)> = Vec::new();
    for (&strategy, name) in exp.strategies.iter().zip(names) {
        let (plan, ckpt) = crate::transfer::transfer(&source_ckpt, &source_path, &target.model, target.train.seed, target.train.learning_rate, strategy, false);
        println!("== transfer ({name}): {:.1}% of the target's parameters from the source", 100.0 * plan.fraction());
        print!("{}", plan.table());
        let path = out.join(&name).join("init.safetensors");
        ckpt.save(&path)?;
        starts.push((name, Start::Init(ckpt)));
    }
    starts.push(("scratch".into(), Start::Fresh));
    for (name, start) in starts {
        println!("== target {} from {name}", target.name);
        let started = Instant::now();
        let (history, _) = run::train(ctx, &target, train.clone(), test.clone(), &folders[&name], start, progress(), None)?;
        results.push(RunResult { name: format!("{} from {name}", target.name), history, seconds: started.elapsed().as_secs_f64() });
    }

    let md = table(source_best, &results);
    crate::files::write_atomic(&out.join("results.md"), md.as_bytes())?;
    let runs: Vec<(&str, &[EpochLogs])> = results.iter().map(|r| (r.name.as_str(), r.history.as_slice())).collect();
    crate::plot::plot(&runs, &out.join("comparison.png")).map_err(anyhow::Error::msg)?;
    Ok((source_best, results, out))
}
