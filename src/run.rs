//! One training run from a config: overrides, data, network, callbacks, output folder. Shared by
//! the CLI, the benchmarks and the tests so that they all exercise the same path.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::record::{Source, TrainState};
use crate::config::{Config, ConfigError};
use crate::data::layout::Split;
use crate::data::{folder, synthetic, DataError, Dataset};
use crate::files::{OutputError, RunFolder, RunOutputs};
use crate::gpu::{GpuContext, Kernels};
use crate::model::Shape;
use crate::network::Network;
use crate::train::callbacks::{EarlyStopping, LastCheckpoint, ModelCheckpoint, ReduceLrOnPlateau, LAST_CHECKPOINT, RUN_FILES};
use crate::train::history::HistoryWriter;
use crate::record::EpochLogs;
use crate::train::{fit, Callback, FitSettings};
use crate::transfer::Action;

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
    /// Applies the overrides to `cfg` (read from `file`) and validates the result with the
    /// config's own checks and messages, saying which flag set a refused value.
    pub fn apply(&self, cfg: &mut Config, file: &Path) -> Result<(), ConfigError> {
        if let Some(dir) = &self.data {
            cfg.data.train = dir.join(Split::Training.folder());
            cfg.data.test = dir.join(Split::Test.folder());
            cfg.data.synthetic = None;
        }
        if let Some(v) = self.epochs {
            cfg.set_epochs(v);
        }
        if let Some(v) = self.batch_size {
            cfg.train.batch_size = v;
        }
        if let Some(v) = self.seed {
            cfg.train.seed = v;
        }
        if self.limit.is_some() {
            cfg.train.limit = self.limit;
        }
        cfg.validate(file).map_err(|e| match e {
            ConfigError::Invalid { file, field, message, .. } => {
                let flag = match field.as_str() {
                    "train.epochs" if self.epochs.is_some() => " (set by --epochs)".into(),
                    "train.batch_size" if self.batch_size.is_some() => " (set by --batch-size)".into(),
                    "train.limit" if self.limit.is_some() => " (set by --limit)".into(),
                    // A warm-up that fits the config's epochs may not fit the flag's.
                    "train.schedule.warmup_epochs" => self.epochs.map_or(String::new(), |v| format!(" (with --epochs {v})")),
                    _ => String::new(),
                };
                ConfigError::Invalid { file, field, line: flag, message }
            }
            e => e,
        })
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
            // Classes alternate, so the first images keep limit / classes of each.
            let classes = synthetic::CLASSES.len();
            let limit = |n: usize| cfg.train.limit.map_or(n, |l| (crate::data::per_class(l, classes) * classes).min(n));
            let images = (limit(s.train) as u64).saturating_add(limit(s.test) as u64);
            crate::sizes::check_host_bytes("the synthetic set", images.saturating_mul(Shape::Image(shape).len()))?;
            (synthetic::generate(limit(s.train), shape, cfg.train.seed), synthetic::generate(limit(s.test), shape, cfg.train.seed ^ 0x5EED))
        }
        None => {
            let load = |dir: &Path| {
                folder::load(dir, shape, cfg.train.limit, cfg.data.corrupt, cfg.data.workers).map_err(|e| match e {
                    DataError::Missing(_) => anyhow::Error::new(e).context("cannot load the data (pass --data DIR, a folder with training_set/ and test_set/, or set [data] train and test)"),
                    e => e.into(),
                })
            };
            let train = load(&cfg.data.train)?;
            let test = load(&cfg.data.test)?;
            if test.classes != train.classes {
                return Err(DataError::ClassMismatch { dir: cfg.data.test.clone(), found: test.classes, expected: train.classes }.into());
            }
            (train, test)
        }
    };
    if train.classes.len() != cfg.model.classes() as usize {
        return Err(ClassCountError { model: cfg.model.classes(), found: train.classes.len(), dir: training_data(cfg), classes: train.classes.join(", ") }.into());
    }
    Ok((train, test))
}

/// The class names of the training data `cfg` names (sorted folder names, or the synthetic
/// set's), without loading it.
pub fn data_classes(cfg: &Config) -> Result<Vec<String>, DataError> {
    match cfg.data.synthetic {
        Some(_) => Ok(synthetic::CLASSES.iter().map(|c| c.to_string()).collect()),
        None => Ok(folder::scan(&cfg.data.train)?.into_iter().map(|(name, _)| name).collect()),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: was trained on classes {checkpoint:?}, but {dir} has {data:?}: the class names differ, so its accuracy there says nothing of this data (start from a checkpoint trained on these classes)")]
pub struct SourceClassesError {
    pub path: PathBuf,
    pub checkpoint: Vec<String>,
    pub data: Vec<String>,
    pub dir: String,
}

/// Fails unless the checkpoint at `path`, trained on `checkpoint` classes, was trained on the
/// classes of `cfg`'s data (`data`).
pub fn check_source_classes(path: &Path, checkpoint: &[String], cfg: &Config, data: &[String]) -> Result<(), SourceClassesError> {
    if checkpoint == data {
        return Ok(());
    }
    Err(SourceClassesError { path: path.to_path_buf(), checkpoint: checkpoint.to_vec(), data: data.to_vec(), dir: training_data(cfg) })
}

/// The training data `cfg` names, for messages.
fn training_data(cfg: &Config) -> String {
    match cfg.data.synthetic {
        Some(_) => "the synthetic set".into(),
        None => cfg.data.train.display().to_string(),
    }
}

/// The training data `cfg` names, as a run records it: the folder (or the synthetic set) and
/// `--limit`. A folder goes by its last two names (`cifar10-catdog/training_set`), which stay
/// the same when the data or the repository moves or is copied to another machine; image count
/// and classes are checked on their own.
pub fn data_source(cfg: &Config) -> String {
    let set = match cfg.data.synthetic {
        Some(s) => format!("the synthetic set of {} images", s.train),
        None => {
            let mut names = Vec::new();
            for c in std::path::absolute(&cfg.data.train).unwrap_or_else(|_| cfg.data.train.clone()).components() {
                match c {
                    std::path::Component::Normal(n) => names.push(n.to_string_lossy().into_owned()),
                    std::path::Component::ParentDir => drop(names.pop()),
                    _ => {}
                }
            }
            names[names.len().saturating_sub(2)..].join("/")
        }
    };
    match cfg.train.limit {
        Some(n) => format!("{set}, --limit {n}"),
        None => set,
    }
}

/// A Keras-style line about a loaded split of `cfg`'s data: its folder, and what a limit kept.
pub fn describe(ds: &Dataset, split: Split, cfg: &Config) -> String {
    let (name, folder) = match split {
        Split::Training => ("training", &cfg.data.train),
        Split::Test => ("validation", &cfg.data.test),
    };
    let source = if cfg.data.synthetic.is_some() { String::new() } else { format!(" in {}", folder.display()) };
    let limit = cfg.train.limit.map_or(String::new(), |n| format!(" (limit {n}: at most {} of each class, in both splits)", crate::data::per_class(n, ds.classes.len())));
    format!("Found {} images belonging to {} classes ({}){source}: {name}{limit}", ds.len(), ds.classes.len(), ds.classes.join(", "))
}

/// The run folder: `--out`, else `checkpoints/<config name>/`.
pub fn out_dir(cfg: &Config, out: Option<&Path>) -> PathBuf {
    out.map_or_else(|| Path::new("checkpoints").join(&cfg.name), Path::to_path_buf)
}

/// Claims `dir` for a run of `cfg` (see [`RunFolder::claim`]): a run that resumes continues
/// the run in the folder, where its checkpoint must be; any other refuses a folder holding a run
/// unless `overwrite`. The run's `inputs` (path, what it is: its config, an `--init` checkpoint) are
/// never written over, even when they lie in the folder under a name the run writes, and the
/// folder never lies inside its data.
pub fn claim_folder(cfg: &Config, dir: &Path, resume: Option<&Path>, inputs: &[(&Path, &str)], overwrite: bool) -> Result<RunFolder, OutputError> {
    let named = cfg.callbacks.checkpoint.filepath.replace("{name}", &cfg.name);
    let pattern = cfg.callbacks.checkpoint.enabled.then_some(named.as_str());
    let outputs = RunOutputs { files: &RUN_FILES, patterns: pattern.as_slice() };
    for (input, what) in inputs {
        if let Some(name) = crate::files::relative_in(input, dir) {
            if outputs.writes(&name) {
                return Err(OutputError::OwnInput { path: input.to_path_buf(), what: what.to_string() });
            }
        }
    }
    // Its best-model files and history are there: elsewhere they would be missing or another run's.
    // (One that is not there is reported when it is read.)
    if let Some(checkpoint) = resume.filter(|p| p.is_file() && crate::files::relative_in(p, dir).is_none_or(|name| name.contains('/'))) {
        return Err(OutputError::ResumeElsewhere { checkpoint: checkpoint.to_path_buf(), dir: dir.to_path_buf() });
    }
    let data: Vec<&Path> = match cfg.data.synthetic {
        Some(_) => Vec::new(),
        None => vec![&cfg.data.train, &cfg.data.test],
    };
    RunFolder::claim(dir, &outputs, &data, resume.is_some(), overwrite)
}

pub fn fit_settings(cfg: &Config, steps: usize, interrupt: Option<Arc<AtomicBool>>) -> FitSettings {
    FitSettings {
        epochs: cfg.train.epochs,
        steps,
        batch_size: cfg.train.batch_size,
        seed: cfg.train.seed,
        augment: cfg.augment,
        workers: cfg.data.workers,
        schedule: cfg.train.schedule,
        unfreeze_after: cfg.train.unfreeze_after,
        interrupt,
        growth: cfg.growth.clone(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    #[error("--freeze and --unfreeze-after do not apply to --resume: a resumed run keeps the freezing it was saved with")]
    Resume,
    #[error("--freeze copied needs --init with a checkpoint written by `gpu-cnn transfer` (its provenance says which layers were copied)")]
    NoProvenance,
    #[error("--freeze copied: the --init checkpoint's transfer copied no layer unchanged")]
    NothingCopied,
    #[error("--freeze and --unfreeze-after do not apply to {0}: a run with [[grow]] trains every layer")]
    Grows(PathBuf),
}

/// Applies `--freeze` (layer names, or `copied`: the layers the --init checkpoint's transfer
/// copied unchanged) and `--unfreeze-after` to `cfg`, with the config's checks. With `copied`,
/// returns a line naming the layers with parameters the transfer changed, which stay trainable.
pub fn freeze(cfg: &mut Config, file: &Path, names: &[String], unfreeze_after: Option<u32>, start: &Start) -> anyhow::Result<Option<String>> {
    if names.is_empty() && unfreeze_after.is_none() {
        return Ok(None);
    }
    if matches!(start, Start::Resume(..)) {
        return Err(FreezeError::Resume.into());
    }
    if !cfg.growth.is_empty() {
        return Err(FreezeError::Grows(file.to_path_buf()).into());
    }
    let mut names = names.to_vec();
    let mut note = None;
    if let Some(i) = names.iter().position(|n| n == "copied") {
        let Start::Init(Checkpoint { provenance: Some(p), .. }, _) = start else { return Err(FreezeError::NoProvenance.into()) };
        let actions = crate::transfer::layer_actions(p);
        let copied: Vec<String> = actions.iter().filter(|(_, a)| *a == Action::Copied).map(|(n, _)| n.clone()).collect();
        if copied.is_empty() {
            return Err(FreezeError::NothingCopied.into());
        }
        let changed: Vec<String> = actions.iter().filter(|(_, a)| !matches!(a, Action::Copied | Action::NoParameters)).map(|(n, a)| format!("{n} ({})", a.label())).collect();
        if !changed.is_empty() {
            note = Some(format!("--freeze copied: {} copied unchanged; not frozen, as the transfer changed them: {}", copied.join(", "), changed.join(", ")));
        }
        names.splice(i..=i, copied);
    }
    let invalid = |field: &str, message: String| ConfigError::Invalid { file: file.to_path_buf(), field: field.to_string(), line: String::new(), message };
    cfg.model = cfg.model.freeze(&names).map_err(|m| invalid("model.layers", format!("{m} (set by --freeze)")))?;
    if unfreeze_after.is_some() {
        cfg.train.unfreeze_after = unfreeze_after;
    }
    cfg.validate(file).map_err(|e| match e {
        ConfigError::Invalid { file, field, message, .. } if field == "train.unfreeze_after" => ConfigError::Invalid { file, field, line: " (set by --unfreeze-after)".into(), message },
        e => e,
    })?;
    Ok(note)
}

/// A line about the run's frozen layers, if any.
pub fn describe_freezing(cfg: &Config) -> Option<String> {
    let frozen = cfg.model.frozen();
    let until = cfg.train.unfreeze_after.map_or(String::new(), |n| format!(" through epoch {n}"));
    let trainable = cfg.model.trainable_count();
    let idle = match (trainable, cfg.train.unfreeze_after) {
        (0, Some(n)) => format!("; nothing trains before epoch {}", n + 1),
        (0, None) => "; nothing trains: every layer is frozen".into(),
        _ => String::new(),
    };
    (!frozen.is_empty()).then(|| format!("Frozen{until}: {} ({} trainable parameters{idle})", frozen.join(", "), crate::model::summary::thousands(trainable)))
}

/// Builds the network for `cfg` (its sizes checked first) and reports how long kernel
/// compilation and allocation took.
pub fn build_network(ctx: &GpuContext, kernels: &Kernels, cfg: &Config) -> anyhow::Result<(Network, f64)> {
    crate::sizes::check_network(ctx, &cfg.model, cfg.train.batch_size)?;
    let start = Instant::now();
    let net = Network::training(ctx, kernels, &cfg.model, cfg.train.batch_size, cfg.train.seed, &cfg.train.training())?;
    Ok((net, start.elapsed().as_secs_f64()))
}

#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("{path}: was trained on classes {checkpoint:?}, but this run's data has {data:?}: resuming needs the same classes (use --init to start from its weights instead)")]
    Classes { path: PathBuf, checkpoint: Vec<String>, data: Vec<String> },
    #[error("{path}: has already trained {done} epochs, and this run stops at epoch {epochs}: nothing to do (pass a larger --epochs)")]
    Done { path: PathBuf, done: u32, epochs: u32 },
    #[error("{path}: was trained on {then}, but this run's data is {now}: an exact resume needs the same (use --init to start from its weights instead)")]
    Data { path: PathBuf, then: String, now: String },
    #[error("{path}: was trained with the optimizer {then}, but this run's [train] asks for {now}: an exact resume needs the same (use --init to start from its weights instead)")]
    Optimizer { path: PathBuf, then: String, now: String },
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
    Init(Checkpoint, PathBuf),
    /// Everything a resumable checkpoint holds: weights, optimizer state, epoch, step, schedule
    /// states, history and seed (`--resume`).
    Resume(Checkpoint, PathBuf),
}

impl Start {
    /// Fails unless the checkpoint it starts from (if any) has `cfg`'s layout.
    pub fn check_layout(&self, cfg: &Config) -> Result<(), CheckpointError> {
        match self {
            Start::Fresh => Ok(()),
            Start::Init(ckpt, path) => ckpt.check_layout(&cfg.model, path),
            // A growing run's checkpoint holds the model in force when it was saved.
            Start::Resume(ckpt, path) => ckpt.check_layout(&cfg.model_resumed(&ckpt.state, &ckpt.model), path),
        }
    }
}

/// The trained checkpoint a run from `ckpt` (read from `path`) takes its weights from: the
/// source an untrained one records (a transfer's output, as an experiment writes it), else
/// `path` itself.
fn start_source(ckpt: &Checkpoint, path: &Path) -> Result<Source, crate::dataset::DatasetError> {
    match &ckpt.state.source {
        Some(source) if ckpt.state.epoch == 0 => Ok(source.clone()),
        _ => source_of(path),
    }
}

/// The checkpoint file at `path` as a [`Source`] (its bytes' MD5 read now).
pub fn source_of(path: &Path) -> Result<Source, crate::dataset::DatasetError> {
    Ok(Source { path: path.display().to_string(), md5: crate::dataset::fetch::md5_file(path)? })
}

/// The run's standard listeners: history files, best-model checkpoint, the configured
/// schedules, and the resumable `last.safetensors`.
pub fn standard_callbacks(cfg: &Config, classes: &[String], out: &RunFolder) -> Vec<Box<dyn Callback>> {
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
    cbs.push(Box::new(LastCheckpoint { path: out.join(LAST_CHECKPOINT), classes: classes.to_vec() }));
    cbs
}

/// Trains `cfg` from `start` with the standard listeners, `extra` first (progress display),
/// writing into the claimed folder `out`; returns the history and the trained network.
#[allow(clippy::too_many_arguments)]
pub fn train(
    ctx: &GpuContext,
    cfg: &Config,
    train: Dataset,
    test: Dataset,
    out: &RunFolder,
    start: Start,
    extra: Vec<Box<dyn Callback>>,
    interrupt: Option<Arc<AtomicBool>>,
) -> anyhow::Result<(Vec<EpochLogs>, Network)> {
    let kernels = Kernels::new(ctx);
    let mut cfg = cfg.clone();
    let (epochs, steps) = cfg.budget_run(train.len(), Path::new(&format!("{}'s config", cfg.name)))?;
    if let Some(budget) = cfg.train.budget_flops {
        let per_epoch = cfg.steps_per_epoch(train.len());
        let cut = match steps - (epochs as usize - 1) * per_epoch {
            last if last < per_epoch => format!(", the last cut after {last} of its {per_epoch} steps"),
            _ => String::new(),
        };
        outln!("Budget {budget:.3e} training FLOPs: {epochs} of {} epochs{cut}", cfg.train.epochs);
        cfg.set_epochs(epochs);
    }
    let mut state = TrainState { lr: cfg.train.learning_rate, seed: cfg.train.seed, batch_size: cfg.train.batch_size, train_images: train.len(), data: Some(data_source(&cfg)), name: Some(cfg.name.clone()), unfreeze_after: cfg.train.unfreeze_after, ..Default::default() };
    start.check_layout(&cfg)?;
    if let Start::Init(ckpt, path) = &start {
        state.source = Some(start_source(ckpt, path)?);
    }
    if let Start::Resume(ckpt, path) = &start {
        if ckpt.optimizer.is_none() || ckpt.state.lr <= 0.0 {
            return Err(CheckpointError::NotResumable(path.clone()).into());
        }
        // The data order, augmentation and dropout masks all derive from the seed.
        if ckpt.state.seed != cfg.train.seed {
            log::warn!("resuming with the checkpoint's seed {} (this run asks for {})", ckpt.state.seed, cfg.train.seed);
            cfg.train.seed = ckpt.state.seed;
        }
        if (ckpt.state.batch_size, ckpt.state.train_images) != (cfg.train.batch_size, train.len()) {
            return Err(ResumeMismatch { path: path.clone(), then: (ckpt.state.batch_size, ckpt.state.train_images), now: (cfg.train.batch_size, train.len()) }.into());
        }
        if let Some(then) = ckpt.state.data.clone().filter(|d| *d != data_source(&cfg)) {
            return Err(ResumeError::Data { path: path.clone(), then, now: data_source(&cfg) }.into());
        }
        let (then, now) = (&ckpt.optimizer.as_ref().expect("checked above").config, cfg.train.optimizer());
        if *then != now {
            let json = |o| serde_json::to_string(o).unwrap_or_default();
            return Err(ResumeError::Optimizer { path: path.clone(), then: json(then), now: json(&now) }.into());
        }
        if ckpt.classes != train.classes {
            return Err(ResumeError::Classes { path: path.clone(), checkpoint: ckpt.classes.clone(), data: train.classes.clone() }.into());
        }
        if ckpt.state.epoch >= cfg.train.epochs {
            return Err(ResumeError::Done { path: path.clone(), done: ckpt.state.epoch, epochs: cfg.train.epochs }.into());
        }
        // A growing run resumes with the model in force when it was saved.
        cfg.model = cfg.model_resumed(&ckpt.state, &ckpt.model);
        // Freezing resumes as it was: the checkpoint's trainable layers and unfreeze epoch.
        cfg.model.layers.iter_mut().zip(&ckpt.model.layers).for_each(|(l, c)| l.trainable = c.trainable);
        cfg.train.unfreeze_after = ckpt.state.unfreeze_after;
        state = ckpt.state.clone();
        // Checkpoints from before runs recorded their data take this run's.
        state.data.get_or_insert_with(|| data_source(&cfg));
        state.name.get_or_insert_with(|| cfg.name.clone());
    }
    let (mut net, _) = build_network(ctx, &kernels, &cfg)?;
    match &start {
        Start::Fresh => {}
        Start::Init(ckpt, _) => ckpt.apply(ctx, &mut net, false)?,
        Start::Resume(ckpt, _) => ckpt.apply(ctx, &mut net, true)?,
    }
    let settings = fit_settings(&cfg, steps, interrupt);
    let cfg = &cfg;
    let mut callbacks = extra;
    callbacks.extend(standard_callbacks(cfg, &train.classes, out));
    let history = fit(ctx, &kernels, &mut net, Arc::new(train), Arc::new(test), &settings, state, &mut callbacks)?;
    Ok((history, net))
}
