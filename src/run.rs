//! One training run from a config: overrides, data, network, callbacks, output folder. Shared by
//! the CLI, the benchmarks and the tests so that they all exercise the same path.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::checkpoint::{Checkpoint, CheckpointError, TrainState};
use crate::config::Config;
use crate::data::{folder, synthetic, DataError, Dataset};
use crate::gpu::{GpuContext, Kernels};
use crate::network::Network;
use crate::train::callbacks::{EarlyStopping, LastCheckpoint, ModelCheckpoint, ReduceLrOnPlateau};
use crate::train::history::HistoryWriter;
use crate::train::{fit, Callback, EpochLogs, FitSettings};

/// Command-line overrides of a config (`--data`, `--epochs`, ...).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// A folder holding `training_set/` and `test_set/`.
    pub data: Option<PathBuf>,
    pub epochs: Option<u32>,
    pub batch_size: Option<u32>,
    pub seed: Option<u64>,
    pub limit: Option<usize>,
}

impl Overrides {
    pub fn apply(&self, cfg: &mut Config) {
        if let Some(dir) = &self.data {
            cfg.data.train = dir.join("training_set");
            cfg.data.test = dir.join("test_set");
            cfg.data.synthetic = None;
        }
        if let Some(v) = self.epochs {
            cfg.train.epochs = v.max(1);
        }
        if let Some(v) = self.batch_size {
            cfg.train.batch_size = v.max(1);
        }
        if let Some(v) = self.seed {
            cfg.train.seed = v;
        }
        if self.limit.is_some() {
            cfg.train.limit = self.limit;
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the model's output head predicts {model} classes but {dir} has {found} ({classes})")]
pub struct ClassCountError {
    pub model: u32,
    pub found: usize,
    pub dir: String,
    pub classes: String,
}

/// The training and validation sets a config names (generated when `[data.synthetic]` is set).
pub fn load_datasets(cfg: &Config) -> anyhow::Result<(Dataset, Dataset)> {
    let shape = cfg.model.input;
    let (train, test) = match cfg.data.synthetic {
        Some(s) => {
            let limit = |n: usize| cfg.train.limit.map_or(n, |l| l.min(n));
            (synthetic::generate(limit(s.train), shape, cfg.train.seed), synthetic::generate(limit(s.test), shape, cfg.train.seed ^ 0x5EED))
        }
        None => {
            let load = |dir: &Path| folder::load(dir, shape, cfg.train.limit, cfg.data.corrupt, cfg.data.workers);
            let train = load(&cfg.data.train)?;
            let test = load(&cfg.data.test)?;
            if test.classes != train.classes {
                return Err(DataError::ClassMismatch { dir: cfg.data.test.clone(), found: test.classes, expected: train.classes }.into());
            }
            (train, test)
        }
    };
    if train.classes.len() != cfg.model.classes() as usize {
        let dir = if cfg.data.synthetic.is_some() { "the synthetic set".to_string() } else { cfg.data.train.display().to_string() };
        return Err(ClassCountError { model: cfg.model.classes(), found: train.classes.len(), dir, classes: train.classes.join(", ") }.into());
    }
    Ok((train, test))
}

/// A Keras-style line about a loaded split.
pub fn describe(ds: &Dataset, split: &str) -> String {
    format!("Found {} images belonging to {} classes ({}): {split}", ds.len(), ds.classes.len(), ds.classes.join(", "))
}

/// The run folder: `--out`, else `checkpoints/<config name>/`.
pub fn out_dir(cfg: &Config, out: Option<&Path>) -> PathBuf {
    out.map_or_else(|| Path::new("checkpoints").join(&cfg.name), Path::to_path_buf)
}

pub fn fit_settings(cfg: &Config, interrupt: Option<Arc<AtomicBool>>) -> FitSettings {
    FitSettings {
        epochs: cfg.train.epochs,
        batch_size: cfg.train.batch_size,
        seed: cfg.train.seed,
        augment: cfg.augment,
        workers: cfg.data.workers,
        schedule: cfg.train.schedule,
        interrupt,
    }
}

/// Builds the network for `cfg` and reports how long kernel compilation and allocation took.
pub fn build_network(ctx: &GpuContext, kernels: &Kernels, cfg: &Config) -> anyhow::Result<(Network, f64)> {
    let start = Instant::now();
    let net = Network::new(ctx, kernels, &cfg.model, cfg.train.batch_size, cfg.train.seed)?;
    Ok((net, start.elapsed().as_secs_f64()))
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: was saved with batch size {} on {} training images; this run has batch size {} on {}: an exact resume needs the same (use --init to start from its weights instead)", then.0, then.1, now.0, now.1)]
pub struct ResumeMismatch {
    pub path: PathBuf,
    pub then: (u32, usize),
    pub now: (u32, usize),
}

/// How a run begins.
pub enum Start {
    /// Glorot-uniform weights (seeded), fresh optimizer.
    Fresh,
    /// A checkpoint's weights with a fresh optimizer (`--init`).
    Init(Checkpoint),
    /// Everything a resumable checkpoint holds: weights, Adam state, epoch, step, schedule
    /// states, history and seed (`--resume`).
    Resume(Checkpoint, PathBuf),
}

/// The run's standard listeners: history files, best-model checkpoint, the configured
/// schedules, and the resumable `last.safetensors`.
pub fn standard_callbacks(cfg: &Config, classes: &[String], out: &Path) -> Vec<Box<dyn Callback>> {
    let mut cbs: Vec<Box<dyn Callback>> = vec![Box::new(HistoryWriter { dir: out.to_path_buf(), name: cfg.name.clone() })];
    if cfg.callbacks.checkpoint.enabled {
        cbs.push(Box::new(ModelCheckpoint::new(cfg.callbacks.checkpoint.clone(), out.to_path_buf(), cfg.name.clone(), classes.to_vec())));
    }
    if let Some(r) = &cfg.callbacks.reduce_lr {
        cbs.push(Box::new(ReduceLrOnPlateau::new(r.clone())));
    }
    if let Some(e) = &cfg.callbacks.early_stopping {
        cbs.push(Box::new(EarlyStopping::new(e.clone())));
    }
    cbs.push(Box::new(LastCheckpoint { path: out.join("last.safetensors"), classes: classes.to_vec() }));
    cbs
}

/// Trains `cfg` from `start` with the standard listeners, `extra` first (progress display),
/// writing into `out`; returns the history and the trained network.
#[allow(clippy::too_many_arguments)]
pub fn train(
    ctx: &GpuContext,
    cfg: &Config,
    train: Dataset,
    test: Dataset,
    out: &Path,
    start: Start,
    extra: Vec<Box<dyn Callback>>,
    interrupt: Option<Arc<AtomicBool>>,
) -> anyhow::Result<(Vec<EpochLogs>, Network)> {
    let kernels = Kernels::new(ctx);
    let mut cfg = cfg.clone();
    let mut state = TrainState { lr: cfg.train.learning_rate, seed: cfg.train.seed, batch_size: cfg.train.batch_size, train_images: train.len(), ..Default::default() };
    if let Start::Resume(ckpt, path) = &start {
        if ckpt.optimizer.is_none() || ckpt.state.lr <= 0.0 {
            return Err(CheckpointError::NotResumable(path.clone()).into());
        }
        // The data order, augmentation and dropout masks all derive from the seed.
        if ckpt.state.seed != cfg.train.seed {
            log::warn!("resuming with the checkpoint's seed {} (the config says {})", ckpt.state.seed, cfg.train.seed);
            cfg.train.seed = ckpt.state.seed;
        }
        if (ckpt.state.batch_size, ckpt.state.train_images) != (cfg.train.batch_size, train.len()) {
            return Err(ResumeMismatch { path: path.clone(), then: (ckpt.state.batch_size, ckpt.state.train_images), now: (cfg.train.batch_size, train.len()) }.into());
        }
        state = ckpt.state.clone();
    }
    let (mut net, _) = build_network(ctx, &kernels, &cfg)?;
    match &start {
        Start::Fresh => {}
        Start::Init(ckpt) => ckpt.apply(ctx, &mut net, false)?,
        Start::Resume(ckpt, _) => ckpt.apply(ctx, &mut net, true)?,
    }
    let settings = fit_settings(&cfg, interrupt);
    let cfg = &cfg;
    let mut callbacks = extra;
    callbacks.extend(standard_callbacks(cfg, &train.classes, out));
    let history = fit(ctx, &mut net, Arc::new(train), Arc::new(test), &settings, state, &mut callbacks)?;
    Ok((history, net))
}
