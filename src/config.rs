//! The TOML configuration: schema, documented defaults and validation. Every error names the
//! file, the field and, where toml knows it, the line.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::console::clipped;
use crate::data::augment::AugmentConfig;
use crate::data::folder::CorruptPolicy;
use crate::layers::LayerKind;
use crate::model::{ModelSpec, SpecError};
use crate::network::Training;
use crate::record::{EpochLogs, TrainState};
use crate::optimizer::{Clip, Kind, OptimizerConfig};
use crate::train::callbacks::{CheckpointConfig, EarlyStoppingConfig, ReduceLrConfig};
use crate::train::schedule::Schedule;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {error}")]
    Read { file: PathBuf, error: std::io::Error },
    // Messages echo what the file holds (a key, a value, the line toml quotes): clipped, since
    // that may be megabytes.
    #[error("{file}: {}", clipped(message))]
    Parse { file: PathBuf, message: String },
    #[error("{file}: field `{}`{line}: {}", clipped(field), clipped(message))]
    Invalid { file: PathBuf, field: String, line: String, message: String },
}

/// A whole run: model, data, augmentation, training settings and callbacks.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The run's name (default: the file's stem): output goes to `checkpoints/<name>/`.
    pub name: String,
    pub model: ModelSpec,
    pub data: DataConfig,
    pub augment: AugmentConfig,
    pub train: TrainConfig,
    pub callbacks: CallbacksConfig,
    /// `[[grow]]`: the models the run grows into, in order ([`crate::grow`]).
    pub growth: Vec<crate::grow::Growth>,
}

/// `[callbacks]`: Keras' callbacks. The best-model checkpoint is on by default; the others are
/// on when their table is present (each field defaults to Keras' default).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CallbacksConfig {
    pub checkpoint: CheckpointConfig,
    pub reduce_lr: Option<ReduceLrConfig>,
    pub early_stopping: Option<EarlyStoppingConfig>,
}

/// `[data]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Folder with one sub-folder of images per class (Keras `flow_from_directory`).
    pub train: PathBuf,
    /// Validation folder, same layout.
    pub test: PathBuf,
    /// Use the built-in synthetic two-class set instead of folders.
    pub synthetic: Option<SyntheticConfig>,
    /// What an undecodable image does: "skip" (warn and leave it out) or "fail".
    pub corrupt: CorruptPolicy,
    /// Threads that decode images and augment batches.
    pub workers: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self { train: "dataset/training_set".into(), test: "dataset/test_set".into(), synthetic: None, corrupt: CorruptPolicy::Skip, workers: default_workers() }
    }
}

/// One thread a core: two workers augment about 8,500 images/s, which an H200 outruns with every
/// shipped model (13,000-39,000 trained), while a 2-core CPU adapter keeps the two it had. At
/// most 16 (about 68,000 images/s), since each holds up to three batches.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(16))
}

/// `[data.synthetic]`: sizes of the generated set.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticConfig {
    pub train: usize,
    pub test: usize,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self { train: 1200, test: 400 }
    }
}

/// `[train]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: u32,
    pub batch_size: u32,
    /// The optimizer's learning rate (Adam's beta1 0.9, beta2 0.999, eps 1e-7 as Keras).
    pub learning_rate: f32,
    /// "adam", "adamw" or "sgd", with Keras 3 semantics and defaults.
    pub optimizer: Kind,
    /// SGD's momentum (Keras: 0).
    pub momentum: f32,
    /// SGD's Nesterov momentum.
    pub nesterov: bool,
    /// Decoupled weight decay, `var -= lr * wd * var` before each step (Keras: 0.004 for AdamW,
    /// none for Adam and SGD).
    pub weight_decay: Option<f32>,
    /// Tensors weight decay leaves alone, each named by its weight name (`bias`, `gamma`: every
    /// such tensor), its layer (`dense_1`) or in full (`dense_1.kernel`).
    pub weight_decay_exclude: Vec<String>,
    /// Clips each tensor's gradient to this norm (Keras `clipnorm`).
    pub clipnorm: Option<f32>,
    /// Clips all gradients together to this norm (Keras `global_clipnorm`).
    pub global_clipnorm: Option<f32>,
    /// Targets y (1 - s) + s / 2 (binary) or y (1 - s) + s / classes (categorical).
    pub label_smoothing: f32,
    /// Seeds initialisation, shuffling, augmentation and dropout.
    pub seed: u64,
    /// limit / classes images of each class per split, rounded down, at least one (quick runs).
    pub limit: Option<usize>,
    /// A budget in training FLOPs: the run trains the most of its `epochs` that fit in it
    /// (each epoch's model in force counted), its schedule spanning those.
    pub budget_flops: Option<f64>,
    /// `[train.schedule]`: how the learning rate moves over the run, step by step.
    pub schedule: Schedule,
    /// Makes every frozen layer trainable from epoch N + 1, with fresh Adam state (a Keras
    /// recompile with a new optimizer).
    pub unfreeze_after: Option<u32>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 32,
            learning_rate: 1e-3,
            optimizer: Kind::Adam,
            momentum: 0.0,
            nesterov: false,
            weight_decay: None,
            weight_decay_exclude: Vec::new(),
            clipnorm: None,
            global_clipnorm: None,
            label_smoothing: 0.0,
            seed: 42,
            limit: None,
            budget_flops: None,
            schedule: Schedule::Constant,
            unfreeze_after: None,
        }
    }
}

impl TrainConfig {
    /// The optimizer these fields describe, Keras' defaults filled in.
    pub fn optimizer(&self) -> OptimizerConfig {
        let clip = match (self.clipnorm, self.global_clipnorm) {
            (Some(n), _) => Some(Clip::Norm(n)),
            (None, Some(n)) => Some(Clip::GlobalNorm(n)),
            (None, None) => None,
        };
        OptimizerConfig {
            kind: self.optimizer,
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay.unwrap_or(self.optimizer.default_weight_decay()),
            weight_decay_exclude: self.weight_decay_exclude.clone(),
            clip,
        }
    }

    /// How a network trains with these settings.
    pub fn training(&self) -> Training {
        Training { optimizer: self.optimizer(), label_smoothing: self.label_smoothing }
    }

    /// The optimizer fields' checks against `model`'s tensors, as (field, message).
    fn check_optimizer(&self, model: &ModelSpec) -> Result<(), (&'static str, String)> {
        if self.optimizer != Kind::Sgd {
            if self.momentum != 0.0 {
                return Err(("train.momentum", "momentum applies to optimizer = \"sgd\"".into()));
            }
            if self.nesterov {
                return Err(("train.nesterov", "nesterov applies to optimizer = \"sgd\"".into()));
            }
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(("train.momentum", format!("expected a value in [0, 1], got {}", self.momentum)));
        }
        if let Some(wd) = self.weight_decay.filter(|wd| !(*wd >= 0.0 && wd.is_finite())) {
            return Err(("train.weight_decay", format!("expected a number >= 0, got {wd}")));
        }
        let params = model.params();
        if let Some(p) = self.weight_decay_exclude.iter().find(|p| !params.iter().any(|i| crate::optimizer::names(p, i))) {
            let mut weights: Vec<&str> = params.iter().map(|i| i.suffix).collect();
            weights.sort_unstable();
            weights.dedup();
            return Err(("train.weight_decay_exclude", format!("\"{p}\" names no tensor of the model (name a weight: {}; a layer; or a tensor, `dense_1.bias`)", weights.join(", "))));
        }
        for (field, norm) in [("train.clipnorm", self.clipnorm), ("train.global_clipnorm", self.global_clipnorm)] {
            if let Some(n) = norm.filter(|n| !(*n > 0.0 && n.is_finite())) {
                return Err((field, format!("expected a positive number, got {n}")));
            }
        }
        if self.clipnorm.is_some() && self.global_clipnorm.is_some() {
            return Err(("train.global_clipnorm", "set clipnorm or global_clipnorm, not both (as Keras)".into()));
        }
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return Err(("train.label_smoothing", format!("expected a value in [0, 1], got {}", self.label_smoothing)));
        }
        Ok(())
    }
}

// ---- the raw file, before validation ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    name: Option<String>,
    model: RawModel,
    #[serde(default)]
    data: DataConfig,
    #[serde(default)]
    augment: AugmentConfig,
    #[serde(default)]
    train: TrainConfig,
    #[serde(default)]
    callbacks: CallbacksConfig,
    #[serde(default)]
    grow: Vec<crate::grow::GrowConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    input: [u32; 3],
    /// Each layer's table: `type`, an optional `name`, and its kind's fields.
    layers: Vec<toml::Spanned<toml::Table>>,
}

/// One layer's table as (name, kind, trainable, inputs): the kind's own serde schema reads
/// everything but `name`, `trainable` and `inputs`, which every kind has.
fn parse_layer(mut table: toml::Table) -> Result<(Option<String>, LayerKind, bool, Vec<String>), String> {
    let name = match table.remove("name") {
        Some(toml::Value::String(n)) => Some(n),
        Some(other) => return Err(format!("`name` must be a string, got {other}")),
        None => None,
    };
    let trainable = match table.remove("trainable") {
        Some(toml::Value::Boolean(t)) => t,
        Some(other) => return Err(format!("`trainable` must be true or false, got {other}")),
        None => true,
    };
    let inputs = match table.remove("inputs") {
        None => Vec::new(),
        Some(toml::Value::String(one)) => vec![one],
        Some(toml::Value::Array(names)) if names.iter().all(toml::Value::is_str) => names.into_iter().filter_map(|n| n.as_str().map(String::from)).collect(),
        Some(other) => return Err(format!("`inputs` must be a layer's name or a list of them (\"input\": the model's input), got {other}")),
    };
    Ok((name, LayerKind::from_table(table)?, trainable, inputs))
}

/// Each `[[grow]]` entry's model, grown from the one before (names as the model stands then).
fn grown_models(path: &Path, text: &str, config: &Config, plan: &[crate::grow::GrowConfig]) -> Result<Vec<crate::grow::Growth>, ConfigError> {
    let invalid = |i: usize, message: String| ConfigError::Invalid { file: path.to_path_buf(), field: format!("grow[{i}]"), line: String::new(), message };
    let (mut text, mut model) = (text.to_string(), config.model.clone());
    let mut growth = Vec::new();
    for (i, g) in plan.iter().enumerate() {
        let after_epoch = g.epoch(config.train.epochs).map_err(|m| invalid(i, m))?;
        if config.train.unfreeze_after.is_some() || config.model.layers.iter().any(|l| !l.trainable) {
            return Err(invalid(i, "a growing run trains every layer: freezing and [[grow]] do not go together".into()));
        }
        let ops = g.ops().map_err(|m| invalid(i, m))?;
        let grown = crate::grow::grow(&text, &model, &ops).map_err(|e| invalid(i, e.to_string()))?;
        model = Config::parse(path, &grown.text)?.model;
        text = grown.text;
        growth.push(crate::grow::Growth { after_epoch, at_fraction: g.at_fraction, on_plateau: g.on_plateau, schedule: g.schedule, blocks: g.blocks, model: model.clone(), changes: grown.changes });
    }
    Ok(growth)
}

fn line_of(text: &str, offset: usize) -> String {
    format!(" (line {})", text[..offset.min(text.len())].matches('\n').count() + 1)
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| match error.kind() {
            std::io::ErrorKind::InvalidData => ConfigError::Parse { file: path.to_path_buf(), message: "not UTF-8 text; a config is a TOML file (see configs/)".into() },
            _ => ConfigError::Read { file: path.to_path_buf(), error },
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text` as if read from `path` (which names the file in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let file = path.to_path_buf();
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse { file: file.clone(), message: e.to_string().trim_end().to_string() })?;
        let invalid = |field: &str, line: String, message: String| ConfigError::Invalid { file: file.clone(), field: field.to_string(), line, message };

        let (mut layers, mut lines) = (Vec::new(), Vec::new());
        for (i, spanned) in raw.model.layers.into_iter().enumerate() {
            lines.push(line_of(text, spanned.span().start));
            let layer = parse_layer(spanned.into_inner()).map_err(|m| invalid(&format!("model.layers[{i}]"), lines[i].clone(), m))?;
            // Its tensors would collide with another layer's optimizer state in a checkpoint
            // (the safetensors writer panics on two tensors of one name).
            if let Some(name) = layer.0.as_deref().filter(|n| crate::optimizer::is_state_name(n)) {
                let spaces = crate::optimizer::STATE_NAMESPACES.map(|ns| format!("`{ns}.`")).join(" or ");
                let message = format!("\"{name}\": names starting with {spaces} are where a checkpoint keeps optimizer state (`adam.m.<layer>.kernel`, ...); rename the layer");
                return Err(invalid(&format!("model.layers[{i}].name"), lines[i].clone(), message));
            }
            layers.push(layer);
        }
        // A name's error names the layer that gave it (the second of two alike).
        let given: Vec<Option<String>> = layers.iter().map(|l| l.0.clone()).collect();
        let spec_error = |e: SpecError| match &e {
            SpecError::DuplicateName(n) => match given.iter().rposition(|g| g.as_ref() == Some(n)) {
                Some(i) => invalid(&format!("model.layers[{i}].name"), lines[i].clone(), e.to_string()),
                None => invalid("model", String::new(), e.to_string()),
            },
            _ => invalid("model", String::new(), e.to_string()),
        };
        crate::model::spec::check_input(raw.model.input).map_err(|e| invalid("model.input", String::new(), e.to_string()))?;
        crate::sizes::check_arguments(raw.model.input, layers.iter().enumerate().map(|(i, (n, k, _, _))| (n.clone().unwrap_or_else(|| format!("model.layers[{i}]")), k))).map_err(|e| invalid("model", String::new(), e.to_string()))?;
        let trainable: Vec<bool> = layers.iter().map(|l| l.2).collect();
        let mut model = ModelSpec::connected(raw.model.input, layers.into_iter().map(|(n, k, _, inputs)| (n, k, inputs)).collect()).map_err(spec_error)?;
        model.layers.iter_mut().zip(trainable).for_each(|(l, t)| l.trainable = t);
        crate::sizes::check_model(&model).map_err(|e| invalid("model", String::new(), e.to_string()))?;
        let name = raw.name.unwrap_or_else(|| path.file_stem().map_or("run".into(), |s| s.to_string_lossy().into_owned()));
        let config = Self { name, model, data: raw.data, augment: raw.augment, train: raw.train, callbacks: raw.callbacks, growth: Vec::new() };
        let growth = grown_models(path, text, &config, &raw.grow)?;
        let config = Self { growth, ..config };
        config.validate(path)?;
        Ok(config)
    }

    /// The model in force in the run whose checkpoint holds `state` and `model`: growths on a
    /// plateau happened where the run decided.
    pub fn model_resumed(&self, state: &TrainState, model: &ModelSpec) -> ModelSpec {
        let mut resolved = self.clone();
        resolved.resolve_growth(&state.history, model);
        resolved.model_at(state.epoch, state.step).clone()
    }

    /// The epochs of the growths on a plateau that the run `history` (and, resumed inside an
    /// epoch, its checkpoint's `model`) shows happened: each growth is marked on the first
    /// epoch of its model.
    fn resolve_growth(&mut self, history: &[EpochLogs], model: &ModelSpec) {
        let mut marked = history.iter().filter(|l| l.grown.is_some()).map(|l| l.epoch - 1);
        for g in &mut self.growth {
            let at = marked.next();
            if g.on_plateau.is_some() {
                g.after_epoch = at;
            }
        }
        // Grown at the start of the epoch in progress, which the history does not hold yet.
        let epoch = history.len() as u32;
        if let Some(g) = self.growth.iter_mut().find(|g| g.after_epoch.is_none()).filter(|g| g.model == *model) {
            g.after_epoch = Some(epoch);
        }
    }

    /// The steps of an epoch of `images` training images (the last batch may be short).
    pub fn steps_per_epoch(&self, images: usize) -> usize {
        images.div_ceil(self.train.batch_size as usize)
    }

    /// The training FLOPs of 0-based epoch `epoch` on `images` images: its model in force, and
    /// the optimizer's steps.
    pub fn epoch_flops(&self, epoch: u32, images: usize) -> f64 {
        let steps = self.steps_per_epoch(images) as u64;
        self.model_at(epoch, 1).train_flops(images as u64, steps, self.train.optimizer().flops_per_parameter()) as f64
    }

    /// The run that `train.budget_flops` pays for on `images` training images: its epochs and
    /// steps, the last epoch cut short at the last step the budget pays for (each epoch's model
    /// in force, the optimizer's steps counted), at most `train.epochs`, a valid run (growths at
    /// a fraction and the warm-up moving with its length). Without a budget, the whole run.
    pub fn budget_run(&self, images: usize, file: &Path) -> Result<(u32, usize), ConfigError> {
        let per_epoch = self.steps_per_epoch(images);
        let Some(budget) = self.train.budget_flops else { return Ok((self.train.epochs, self.train.epochs as usize * per_epoch)) };
        // The steps of its last epoch a run of `epochs` affords, if its others fit.
        let last_steps = |epochs: u32| {
            let mut c = self.clone();
            c.set_epochs(epochs);
            let left = budget - (0..epochs - 1).map(|e| c.epoch_flops(e, images)).sum::<f64>();
            let steps = ((left / c.epoch_flops(epochs - 1, images) * per_epoch as f64).floor() as usize).min(per_epoch);
            (steps > 0 && c.validate(file).is_ok()).then_some(steps)
        };
        (1..=self.train.epochs).rev().find_map(|e| Some((e, (e as usize - 1) * per_epoch + last_steps(e)?))).ok_or_else(|| ConfigError::Invalid {
            file: file.to_path_buf(),
            field: "train.budget_flops".into(),
            line: String::new(),
            message: format!("{budget:e} FLOPs do not pay for one step of {images} images' epoch in a valid run"),
        })
    }

    /// Sets the run's length, moving the growths given as a fraction of it.
    pub fn set_epochs(&mut self, epochs: u32) {
        self.train.epochs = epochs;
        for g in &mut self.growth {
            if let Some(f) = g.at_fraction {
                g.after_epoch = Some((f * epochs as f64).round() as u32);
            }
        }
    }

    /// The model in force after `epoch` whole epochs and `step` steps of the next: a growth
    /// after epoch N happens before the first step of epoch N + 1.
    pub fn model_at(&self, epoch: u32, step: usize) -> &ModelSpec {
        let passed = |g: &&crate::grow::Growth| g.after_epoch.is_some_and(|a| a < epoch || (a == epoch && step > 0));
        self.growth.iter().rev().find(passed).map_or(&self.model, |g| &g.model)
    }

    /// Checks everything but the model (which `ModelSpec::new` checks): the config file and
    /// command-line overrides share these checks and their messages.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::Invalid { file: path.to_path_buf(), field: field.to_string(), line: String::new(), message };
        // The name names the run folder under checkpoints/: it must stay one plain folder name.
        if self.name.is_empty() || self.name == "." || self.name == ".." || self.name.contains(['/', '\\', '\0']) {
            return Err(invalid("name", format!("\"{}\" cannot name a folder: use a plain name without '/', '\\' or '..'", self.name)));
        }
        let t = &self.train;
        if t.batch_size == 0 {
            return Err(invalid("train.batch_size", "expected at least 1".into()));
        }
        if t.epochs == 0 {
            return Err(invalid("train.epochs", "expected at least 1".into()));
        }
        if t.limit == Some(0) {
            return Err(invalid("train.limit", "expected at least 1".into()));
        }
        if t.unfreeze_after == Some(0) {
            return Err(invalid("train.unfreeze_after", "expected at least 1 (epochs trained frozen); to train everything from the start, freeze nothing".into()));
        }
        if !(t.learning_rate > 0.0 && t.learning_rate.is_finite()) {
            return Err(invalid("train.learning_rate", format!("expected a positive number, got {}", t.learning_rate)));
        }
        if let Some(b) = t.budget_flops {
            if !(b > 0.0 && b.is_finite()) {
                return Err(invalid("train.budget_flops", format!("expected a positive number of FLOPs, got {b}")));
            }
            if self.growth.iter().any(|g| g.on_plateau.is_some()) {
                return Err(invalid("train.budget_flops", "counts each epoch's model in advance, but a growth on a plateau has no epoch until the run finds it: give the growth after_epoch or at_fraction".into()));
            }
        }
        let mut last = 0;
        for (i, g) in self.growth.iter().enumerate() {
            let Some(after) = g.after_epoch.filter(|_| g.on_plateau.is_none()) else { continue };
            if i > 0 && self.growth[i - 1].on_plateau.is_some() {
                return Err(invalid(&format!("grow[{i}]"), "a growth at a set epoch cannot follow one on a plateau (whose epoch the run decides): put it first, or grow on a plateau too".into()));
            }
            if after <= last || after >= t.epochs {
                let given = g.at_fraction.map_or(String::new(), |f| format!(" (at_fraction = {f} of {} epochs)", t.epochs));
                return Err(invalid(&format!("grow[{i}]"), format!("after_epoch = {after}{given}: expected an epoch after the previous growth's ({last}) and before the run's last ({})", t.epochs)));
            }
            // A restarted schedule runs over the epochs left, its warm-up included.
            if let Some(Err((field, message))) = g.schedule.restarted(t.schedule).map(|s| s.validate(t.epochs - after)) {
                return Err(invalid(&format!("grow[{i}].schedule"), format!("restarts train.schedule over the {} epochs after the growth, where its {field}: {message}", t.epochs - after)));
            }
            last = after;
        }
        if let Err((field, message)) = t.schedule.validate(t.epochs) {
            return Err(invalid(&format!("train.schedule.{field}"), message));
        }
        if let Err((field, message)) = t.check_optimizer(&self.model) {
            return Err(invalid(field, message));
        }
        if self.data.workers == 0 {
            return Err(invalid("data.workers", "expected at least 1".into()));
        }
        if let Some(s) = self.data.synthetic {
            for (field, n) in [("data.synthetic.train", s.train), ("data.synthetic.test", s.test)] {
                if n == 0 {
                    return Err(invalid(field, "expected at least 1".into()));
                }
            }
        }
        let a = &self.augment;
        for (field, v, max) in [
            ("augment.shear_range", a.shear_range, 90.0),
            ("augment.zoom_range", a.zoom_range, 0.99),
            ("augment.width_shift_range", a.width_shift_range, 1.0),
            ("augment.height_shift_range", a.height_shift_range, 1.0),
            ("augment.brightness_range", a.brightness_range, 1.0),
            ("augment.contrast_range", a.contrast_range, 1.0),
        ] {
            if !(0.0..=max).contains(&v) {
                return Err(invalid(field, format!("expected a value in [0, {max}], got {v}")));
            }
        }
        let [h, w, _] = self.model.input;
        if a.crop_padding >= h.min(w) {
            return Err(invalid("augment.crop_padding", format!("expected fewer pixels than the input's side ({}), got {}", h.min(w), a.crop_padding)));
        }
        let cb = &self.callbacks;
        let monitors = [
            ("callbacks.checkpoint.monitor", Some(&cb.checkpoint.monitor)),
            ("callbacks.reduce_lr.monitor", cb.reduce_lr.as_ref().map(|r| &r.monitor)),
            ("callbacks.early_stopping.monitor", cb.early_stopping.as_ref().map(|e| &e.monitor)),
        ];
        for (field, monitor) in monitors {
            if let Some(m) = monitor.filter(|m| !["loss", "acc", "val_loss", "val_acc", "accuracy", "val_accuracy"].contains(&m.as_str())) {
                return Err(invalid(field, format!("unknown metric \"{m}\": expected loss, acc, val_loss or val_acc")));
            }
        }
        if let Some(r) = &cb.reduce_lr {
            if !(r.factor > 0.0 && r.factor < 1.0) {
                return Err(invalid("callbacks.reduce_lr.factor", format!("expected a value in (0, 1), got {}", r.factor)));
            }
        }
        if cb.checkpoint.enabled {
            crate::train::callbacks::check_checkpoint_pattern(&cb.checkpoint.filepath, &self.name).map_err(|m| invalid("callbacks.checkpoint.filepath", m))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("configs/test.toml"), text)
    }

    const MODEL: &str = r#"
[model]
input = [16, 16, 3]
layers = [
  { type = "conv2d", filters = 4, kernel = 3, padding = "same", activation = "relu" },
  { type = "maxpool2d" },
  { type = "flatten" },
  { type = "dense", units = 1, activation = "sigmoid" },
]
"#;

    #[test]
    fn defaults_are_keras_like() {
        let c = parse(MODEL).unwrap();
        assert_eq!(c.name, "test");
        assert_eq!(c.train, TrainConfig::default());
        assert_eq!(c.train.batch_size, 32);
        assert_eq!(c.augment, AugmentConfig::default());
        assert_eq!(c.model.layers[1].name, "max_pooling2d_1");
        assert_eq!(c.model.param_count(), 3 * 3 * 3 * 4 + 4 + 8 * 8 * 4 + 1);
    }

    #[test]
    fn errors_name_file_field_and_line() {
        let e = parse(&MODEL.replace("filters = 4", "filters = 4, units = 3")).unwrap_err().to_string();
        assert!(e.contains("configs/test.toml") && e.contains("model.layers[0]") && e.contains("(line 5)") && e.contains("`units`"), "{e}");

        let e = parse(&MODEL.replace("filters = 4", "filters = -3")).unwrap_err().to_string();
        assert!(e.contains("field `model.layers[0]` (line 5): `filters`: invalid value: integer `-3`, expected u32"), "{e}");

        let e = parse(&MODEL.replace("\"maxpool2d\"", "\"maxpool\"")).unwrap_err().to_string();
        assert!(e.contains("model.layers[1]") && e.contains("unknown variant `maxpool`") && e.contains("avgpool2d"), "{e}");

        let e = parse(&MODEL.replace("type = \"flatten\"", "type = \"batchnorm\", momentum = 1.5 }, { type = \"flatten\"")).unwrap_err().to_string();
        assert!(e.contains("field `model`") && e.contains("batch_normalization_1") && e.contains("momentum"), "{e}");

        let e = parse(&format!("{MODEL}\n[train]\nbatch_sise = 3\n")).unwrap_err().to_string();
        assert!(e.contains("configs/test.toml") && e.contains("batch_sise") && e.contains("line 12"), "{e}");

        let e = parse(&format!("{MODEL}\n[train]\nbatch_size = 0\n")).unwrap_err().to_string();
        assert!(e.contains("train.batch_size") && e.contains("at least 1"), "{e}");

        let e = parse(&format!("{MODEL}\n[train]\nlearning_rate = \"fast\"\n")).unwrap_err().to_string();
        assert!(e.contains("learning_rate") && e.contains("line 12"), "{e}");

        let e = parse(&MODEL.replace("activation = \"sigmoid\"", "activation = \"relu\"")).unwrap_err().to_string();
        assert!(e.contains("field `model`") && e.contains("sigmoid"), "{e}");

        let e = parse(&format!("{MODEL}\n[augment]\nzoom_range = 2.0\n")).unwrap_err().to_string();
        assert!(e.contains("augment.zoom_range"), "{e}");

        let e = parse(&MODEL.replace("[16, 16, 3]", "[16, 16, 4]")).unwrap_err().to_string();
        assert!(e.contains("model.input") && e.contains("1 (grayscale) or 3 (RGB)"), "{e}");

        let e = parse(&format!("{MODEL}\n[callbacks.reduce_lr]\nmonitor = \"val_accurcy\"\n")).unwrap_err().to_string();
        assert!(e.contains("callbacks.reduce_lr.monitor") && e.contains("val_accurcy"), "{e}");
    }

    #[test]
    fn optimizer_fields_resolve_keras_defaults_and_refuse_what_keras_refuses() {
        let train = |fields: &str| parse(&format!("{MODEL}\n[train]\n{fields}\n"));
        let adamw = train("optimizer = \"adamw\"").unwrap().train.optimizer();
        assert_eq!((adamw.kind, adamw.weight_decay, adamw.clip), (Kind::AdamW, 0.004, None));
        let sgd = train("optimizer = \"sgd\"\nmomentum = 0.9\nnesterov = true\nclipnorm = 2.0\nweight_decay_exclude = [\"bias\", \"dense_1\"]").unwrap().train.optimizer();
        assert_eq!((sgd.weight_decay, sgd.clip), (0.0, Some(Clip::Norm(2.0))));
        let params = parse(MODEL).unwrap().model.params();
        let excluded: Vec<&str> = params.iter().filter(|p| sgd.excludes(p)).map(|p| p.name.as_str()).collect();
        assert_eq!(excluded, ["conv2d_1.bias", "dense_1.kernel", "dense_1.bias"]);
        assert_eq!(parse(MODEL).unwrap().train.optimizer(), OptimizerConfig::default(), "Adam unless told");
        for (fields, field, says) in [
            ("momentum = 0.9", "train.momentum", "applies to optimizer = \"sgd\""),
            ("optimizer = \"sgd\"\nmomentum = 1.5", "train.momentum", "[0, 1]"),
            ("optimizer = \"adamw\"\nweight_decay = -1.0", "train.weight_decay", ">= 0"),
            ("clipnorm = 1.0\nglobal_clipnorm = 1.0", "train.global_clipnorm", "not both"),
            ("global_clipnorm = 0.0", "train.global_clipnorm", "positive"),
            ("label_smoothing = 1.5", "train.label_smoothing", "[0, 1]"),
            ("weight_decay_exclude = [\"gamma\"]", "train.weight_decay_exclude", "bias, kernel"),
            ("optimizer = \"rmsprop\"", "optimizer", "adamw"),
        ] {
            let e = train(fields).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains(says), "{fields}: {e}");
        }
        let e = parse(&format!("{MODEL}\n[augment]\ncrop_padding = 16\n")).unwrap_err().to_string();
        assert!(e.contains("augment.crop_padding"), "{e}");
    }

    #[test]
    fn reference_configs_describe_the_write_ups_models() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let m1 = Config::load(&root.join("configs/model1.toml")).unwrap();
        assert_eq!(m1.model, ModelSpec::model1(64));
        let m2 = Config::load(&root.join("configs/model2.toml")).unwrap();
        assert_eq!(m2.model, ModelSpec::model2(64));
        for c in [&m1, &m2] {
            assert_eq!((c.train.batch_size, c.train.learning_rate), (32, 1e-3));
            assert!(c.augment.horizontal_flip && c.augment.shear_range > 0.0 && c.augment.zoom_range > 0.0);
        }
        Config::load(&root.join("configs/quickstart.toml")).unwrap();
    }
}
