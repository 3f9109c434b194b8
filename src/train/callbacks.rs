//! Keras' callbacks: `ModelCheckpoint`, `ReduceLROnPlateau` and `EarlyStopping` with Keras'
//! decision rules (their `update` methods are pure, and tested against Keras' algorithm), and the
//! resumable `last` checkpoint written after every epoch.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::schedule::rescale;
use super::{Callback, Control, TrainError};
use crate::record::EpochLogs;
use crate::checkpoint::Checkpoint;
use crate::record::TrainState;
use crate::gpu::GpuContext;
use crate::network::Network;

/// Whether a monitored value should go down or up; `auto` is max for names with "acc".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Auto,
    Min,
    Max,
}

impl Mode {
    pub fn resolve(self, monitor: &str) -> Mode {
        match self {
            Mode::Auto if monitor.contains("acc") => Mode::Max,
            Mode::Auto => Mode::Min,
            m => m,
        }
    }
    fn worst(self) -> f64 {
        if self == Mode::Max { f64::NEG_INFINITY } else { f64::INFINITY }
    }
    /// Keras' monitor_op with min_delta: `current < best - d` (min) or `current > best + d` (max).
    fn improves(self, current: f64, best: f64, min_delta: f64) -> bool {
        match self {
            Mode::Max => current > best + min_delta,
            _ => current < best - min_delta,
        }
    }
}

fn checkpoint_error(e: crate::checkpoint::CheckpointError) -> TrainError {
    TrainError::Callback(e.to_string())
}

/// The widest padding or most decimals a file name field may ask for (a name stays short).
const MAX_DIGITS: usize = 20;

/// Fills `{key}` / `{key:spec}` from the epoch's logs: `{epoch:02}` pads with zeros, `{val_acc:.2}`
/// prints 2 decimals, `{name}` is the run's name.
pub fn format_path(pattern: &str, name: &str, logs: &EpochLogs) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').ok_or_else(|| format!("unclosed '{{' in \"{pattern}\""))? + open;
        let field = &rest[open + 1..close];
        let (key, spec) = field.split_once(':').unwrap_or((field, ""));
        let spec = spec.trim_end_matches(['d', 'f']);
        match key {
            "name" => out.push_str(name),
            "epoch" => {
                let width: usize = spec.trim_start_matches('0').parse().unwrap_or(0);
                if width > MAX_DIGITS {
                    return Err(format!("width {width} in {{{field}}} is above {MAX_DIGITS}"));
                }
                out.push_str(&format!("{:0width$}", logs.epoch));
            }
            _ => {
                let v = logs.get(key).ok_or_else(|| format!("unknown field {{{key}}} in \"{pattern}\" (epoch, name, loss, acc, val_loss, val_acc, lr)"))?;
                match spec.strip_prefix('.').map(str::parse::<usize>) {
                    Some(Ok(p)) if p <= MAX_DIGITS => out.push_str(&format!("{v:.p$}")),
                    Some(Ok(p)) => return Err(format!("{p} decimals in {{{field}}} is above {MAX_DIGITS}")),
                    Some(Err(_)) => return Err(format!("bad format spec in {{{field}}}")),
                    None => out.push_str(&v.to_string()),
                }
            }
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The resumable checkpoint in a run's folder.
pub const LAST_CHECKPOINT: &str = "last.safetensors";
/// The files every run writes into its folder, besides the best-model checkpoint.
pub const RUN_FILES: [&str; 4] = ["history.csv", "history.json", "curves.png", LAST_CHECKPOINT];

/// Checks a best-model `filepath` pattern before training: its fields are known, and the
/// names it gives stay inside the run folder and are none of the run's own files.
pub fn check_checkpoint_pattern(pattern: &str, name: &str) -> Result<(), String> {
    let logs = EpochLogs { epoch: 1, loss: 0.5, acc: 0.5, val_loss: 0.5, val_acc: 0.5, lr: 1e-3, step_size: 1e-3, train_seconds: 0.0, eval_seconds: 0.0, train_images_per_s: 0.0, flops: 0.0, wall_seconds: 0.0, grown: None };
    let file = format_path(pattern, name, &logs)?;
    let path = Path::new(&file);
    if file.is_empty() || path.is_absolute() || path.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Err(format!("\"{pattern}\" must name a file inside the run folder (no absolute path, '.' or '..')"));
    }
    let named = pattern.replace("{name}", name);
    let own = RUN_FILES.iter().chain([&crate::files::LOCK_FILE]).find(|f| crate::files::matches_pattern(&named, f));
    if let Some(own) = own {
        return Err(format!("\"{pattern}\" can name {own}, which the run writes itself"));
    }
    Ok(())
}

/// `[callbacks.checkpoint]`: Keras `ModelCheckpoint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    pub enabled: bool,
    pub monitor: String,
    pub mode: Mode,
    /// Save only when the monitored value strictly improves (Keras: no min_delta).
    pub save_best_only: bool,
    /// Relative paths are inside the run's folder; `{epoch:02}`, `{val_acc:.2}`, `{name}`, ...
    pub filepath: String,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self { enabled: true, monitor: "val_acc".into(), mode: Mode::Auto, save_best_only: true, filepath: "best.safetensors".into() }
    }
}

pub struct ModelCheckpoint {
    pub config: CheckpointConfig,
    pub dir: PathBuf,
    pub name: String,
    pub classes: Vec<String>,
    pub best: f64,
}

impl ModelCheckpoint {
    pub fn new(config: CheckpointConfig, dir: PathBuf, name: String, classes: Vec<String>) -> Self {
        let best = config.mode.resolve(&config.monitor).worst();
        Self { config, dir, name, classes, best }
    }

    /// Whether this epoch is saved (strict improvement when save_best_only); updates `best`.
    pub fn update(&mut self, current: f64) -> bool {
        if !self.config.save_best_only {
            return true;
        }
        let improved = self.config.mode.resolve(&self.config.monitor).improves(current, self.best, 0.0);
        if improved {
            self.best = current;
        }
        improved
    }
}

impl Callback for ModelCheckpoint {
    fn name(&self) -> &'static str {
        "model_checkpoint"
    }
    fn state(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "best": self.best }))
    }
    fn restore(&mut self, state: &serde_json::Value) {
        if let Some(b) = state["best"].as_f64() {
            self.best = b;
        }
    }
    fn on_epoch_end(&mut self, ctx: &GpuContext, net: &Network, logs: &EpochLogs, history: &[EpochLogs], control: &mut Control) -> Result<(), TrainError> {
        let Some(current) = logs.get(&self.config.monitor) else {
            log::warn!("ModelCheckpoint: '{}' is not available, nothing saved", self.config.monitor);
            return Ok(());
        };
        let previous = self.best;
        if !self.update(current) {
            return Ok(());
        }
        let file = format_path(&self.config.filepath, &self.name, logs).map_err(TrainError::Callback)?;
        let path = self.dir.join(file);
        let state = TrainState { epoch: logs.epoch, lr: control.lr, history: history.to_vec(), name: Some(self.name.clone()), ..Default::default() };
        Checkpoint::capture(ctx, net, &self.classes, state, false).and_then(|c| c.save(&path)).map_err(checkpoint_error)?;
        if self.config.save_best_only {
            outln!("Epoch {}: {} improved from {previous:.5} to {current:.5}, saving model to {}", logs.epoch, self.config.monitor, path.display());
        }
        Ok(())
    }
}

/// `[callbacks.reduce_lr]`: Keras `ReduceLROnPlateau`, with Keras' defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReduceLrConfig {
    pub monitor: String,
    pub mode: Mode,
    pub factor: f32,
    pub patience: u32,
    pub min_lr: f32,
    pub min_delta: f64,
    pub cooldown: u32,
}

impl Default for ReduceLrConfig {
    fn default() -> Self {
        Self { monitor: "val_loss".into(), mode: Mode::Auto, factor: 0.1, patience: 10, min_lr: 0.0, min_delta: 1e-4, cooldown: 0 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReduceLrOnPlateau {
    pub config: ReduceLrConfig,
    pub best: f64,
    pub wait: u32,
    pub cooldown_counter: u32,
}

impl ReduceLrOnPlateau {
    pub fn new(config: ReduceLrConfig) -> Self {
        let best = config.mode.resolve(&config.monitor).worst();
        Self { config, best, wait: 0, cooldown_counter: 0 }
    }

    /// Keras' rule at an epoch's end: returns the learning rate for the next epoch.
    pub fn update(&mut self, current: f64, lr: f32) -> f32 {
        let mode = self.config.mode.resolve(&self.config.monitor);
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.wait = 0;
        }
        if mode.improves(current, self.best, self.config.min_delta) {
            self.best = current;
            self.wait = 0;
        } else if self.cooldown_counter == 0 {
            self.wait += 1;
            if self.wait >= self.config.patience && lr > self.config.min_lr {
                self.cooldown_counter = self.config.cooldown;
                self.wait = 0;
                return (lr * self.config.factor).max(self.config.min_lr);
            }
        }
        lr
    }
}

impl Callback for ReduceLrOnPlateau {
    fn name(&self) -> &'static str {
        "reduce_lr_on_plateau"
    }
    fn state(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter }))
    }
    fn restore(&mut self, s: &serde_json::Value) {
        self.best = s["best"].as_f64().unwrap_or(self.best);
        self.wait = s["wait"].as_u64().unwrap_or(0) as u32;
        self.cooldown_counter = s["cooldown_counter"].as_u64().unwrap_or(0) as u32;
    }
    fn on_epoch_end(&mut self, _: &GpuContext, _: &Network, logs: &EpochLogs, _: &[EpochLogs], control: &mut Control) -> Result<(), TrainError> {
        let Some(current) = logs.get(&self.config.monitor) else {
            log::warn!("ReduceLROnPlateau: '{}' is not available", self.config.monitor);
            return Ok(());
        };
        // Keras' rule acts on the rate in force, the schedule's at the epoch's last step; the
        // cut scales the rate the schedule runs from, so it lowers every later step alike.
        let in_force = logs.lr as f32;
        let lr = self.update(current, in_force);
        if lr != in_force {
            outln!("Epoch {}: ReduceLROnPlateau reducing learning rate to {lr:e}", logs.epoch);
            control.lr = rescale(control.lr, in_force, lr);
        }
        Ok(())
    }
}

/// `[callbacks.early_stopping]`: Keras `EarlyStopping`, with Keras' defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EarlyStoppingConfig {
    pub monitor: String,
    pub mode: Mode,
    pub patience: u32,
    pub min_delta: f64,
    /// On stopping, put back the weights of the best epoch.
    pub restore_best_weights: bool,
}

impl Default for EarlyStoppingConfig {
    fn default() -> Self {
        Self { monitor: "val_loss".into(), mode: Mode::Auto, patience: 0, min_delta: 0.0, restore_best_weights: false }
    }
}

pub struct EarlyStopping {
    pub config: EarlyStoppingConfig,
    pub best: f64,
    pub wait: u32,
    best_weights: Option<Vec<Vec<f32>>>,
}

/// What EarlyStopping decided at an epoch's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopDecision {
    pub improved: bool,
    pub stop: bool,
}

impl EarlyStopping {
    pub fn new(config: EarlyStoppingConfig) -> Self {
        let best = config.mode.resolve(&config.monitor).worst();
        Self { config, best, wait: 0, best_weights: None }
    }

    /// Keras' rule at the end of 1-based `epoch`: wait grows each epoch and resets on an
    /// improvement; an epoch that does not improve stops training once wait >= patience,
    /// never the first epoch.
    pub fn update(&mut self, epoch: u32, current: f64) -> StopDecision {
        let mode = self.config.mode.resolve(&self.config.monitor);
        self.wait += 1;
        let improved = mode.improves(current, self.best, self.config.min_delta);
        if improved {
            self.best = current;
            self.wait = 0;
        }
        StopDecision { improved, stop: !improved && self.wait >= self.config.patience && epoch > 1 }
    }
}

impl Callback for EarlyStopping {
    fn name(&self) -> &'static str {
        "early_stopping"
    }
    fn state(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "best": self.best, "wait": self.wait }))
    }
    fn restore(&mut self, s: &serde_json::Value) {
        self.best = s["best"].as_f64().unwrap_or(self.best);
        self.wait = s["wait"].as_u64().unwrap_or(0) as u32;
    }
    fn on_epoch_end(&mut self, ctx: &GpuContext, net: &Network, logs: &EpochLogs, _: &[EpochLogs], control: &mut Control) -> Result<(), TrainError> {
        let Some(current) = logs.get(&self.config.monitor) else {
            log::warn!("EarlyStopping: '{}' is not available", self.config.monitor);
            return Ok(());
        };
        let decision = self.update(logs.epoch, current);
        let names: Vec<String> = net.slots.iter().map(|s| s.info.name.clone()).collect();
        // Only weights seen improving are kept (after a resume, the best ones may predate it).
        if self.config.restore_best_weights && decision.improved {
            self.best_weights = Some(names.iter().map(|n| net.read_param(ctx, n)).collect::<Result<_, _>>()?);
        }
        if decision.stop {
            outln!("Epoch {}: early stopping ({} did not improve for {} epochs)", logs.epoch, self.config.monitor, self.wait);
            control.stop = true;
            match &self.best_weights {
                Some(weights) => {
                    outln!("Restoring the weights of the best epoch ({} = {:.5})", self.config.monitor, self.best);
                    for (n, w) in names.iter().zip(weights) {
                        net.write_param(ctx, n, w)?;
                    }
                }
                None if self.config.restore_best_weights => {
                    outln!("The best epoch came before this run was resumed: its weights are in the best-model checkpoint, not restored here");
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// Writes `last.safetensors`, a resumable checkpoint (weights, Adam state, training state), after
/// every epoch and when training is interrupted.
pub struct LastCheckpoint {
    pub path: PathBuf,
    pub classes: Vec<String>,
}

impl Callback for LastCheckpoint {
    fn name(&self) -> &'static str {
        "last_checkpoint"
    }
    fn on_state(&mut self, ctx: &GpuContext, net: &Network, state: &TrainState) -> Result<(), TrainError> {
        Checkpoint::capture(ctx, net, &self.classes, state.clone(), true).and_then(|c| c.save(&self.path)).map_err(checkpoint_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::schedule::Schedule;

    fn logs(epoch: u32, val_acc: f64) -> EpochLogs {
        EpochLogs { epoch, loss: 0.5, acc: 0.8, val_loss: 0.61234, val_acc, lr: 1e-3, step_size: 1e-3, train_seconds: 1.0, eval_seconds: 0.1, train_images_per_s: 1.0, flops: 0.0, wall_seconds: 0.0, grown: None }
    }

    #[test]
    fn filenames_are_formatted_like_keras() {
        let p = "checkpoints/{name}-weights-improvement-{epoch:02}-{val_acc:.2}.safetensors";
        assert_eq!(format_path(p, "model1", &logs(3, 0.7456)).unwrap(), "checkpoints/model1-weights-improvement-03-0.75.safetensors");
        assert_eq!(format_path("w-{epoch:03d}-{val_loss:.3f}", "m", &logs(12, 0.5)).unwrap(), "w-012-0.612");
        assert_eq!(format_path("{epoch}.st", "m", &logs(7, 0.5)).unwrap(), "7.st");
        assert!(format_path("{bogus}", "m", &logs(1, 0.5)).unwrap_err().contains("unknown field"));
        assert!(format_path("{epoch", "m", &logs(1, 0.5)).is_err());
        assert!(format_path("{epoch:0999999999999}", "m", &logs(1, 0.5)).unwrap_err().contains("above 20"));
        assert!(format_path("{val_acc:.999999999}", "m", &logs(1, 0.5)).unwrap_err().contains("above 20"));
    }

    #[test]
    fn checkpoint_saves_on_strict_improvement_only() {
        let mut c = ModelCheckpoint::new(CheckpointConfig::default(), PathBuf::new(), "m".into(), vec![]);
        let saved: Vec<bool> = [0.6, 0.7, 0.7, 0.65, 0.71].iter().map(|&v| c.update(v)).collect();
        assert_eq!(saved, [true, true, false, false, true]);
        let mut c = ModelCheckpoint::new(CheckpointConfig { monitor: "val_loss".into(), ..Default::default() }, PathBuf::new(), "m".into(), vec![]);
        assert_eq!([0.9, 0.8, 0.85].map(|v| c.update(v)), [true, true, false]);
    }

    /// Keras 2 `ReduceLROnPlateau(monitor='val_loss', factor=0.5, patience=2, cooldown=1,
    /// min_lr=0.0002, min_delta=1e-4)` on this val_loss series, traced by hand through Keras'
    /// `on_epoch_end`: two epochs without improvement after epoch 2 halve the rate at the end of
    /// epoch 4; epoch 5 ends the one-epoch cooldown and (as in Keras, which tests the cooldown
    /// after counting it down) already counts as waiting, so the next cut ends epoch 6, the
    /// next epoch 8, where min_lr caps it; at min_lr it stays.
    #[test]
    fn reduce_lr_follows_keras() {
        let mut r = ReduceLrOnPlateau::new(ReduceLrConfig { factor: 0.5, patience: 2, cooldown: 1, min_lr: 2e-4, ..Default::default() });
        let series = [1.0, 0.9, 0.95, 0.92, 0.91, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99];
        let mut lr = 1e-3f32;
        let mut lrs = Vec::new();
        for v in series {
            lr = r.update(v, lr);
            lrs.push(lr);
        }
        assert_eq!(lrs, [1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4, 2e-4, 2e-4, 2e-4, 2e-4, 2e-4]);
        // min_delta: an improvement smaller than 1e-4 does not count.
        let mut r = ReduceLrOnPlateau::new(ReduceLrConfig { patience: 1, ..Default::default() });
        assert_eq!(r.update(0.5, 1e-3), 1e-3);
        assert_eq!(r.update(0.49995, 1e-3), 1e-3 * 0.1);
    }

    /// With a schedule the rule reads the rate in force (a cosine's at each epoch's last step)
    /// and a cut scales the rate the schedule runs from, as `on_epoch_end` does: min_lr bounds
    /// the rate in force at a cut, and there is no cut once the schedule is below it.
    #[test]
    fn reduce_lr_scales_a_schedule() {
        let s = Schedule::Cosine { alpha: 0.0, warmup_epochs: 0 };
        let mut r = ReduceLrOnPlateau::new(ReduceLrConfig { factor: 0.5, patience: 1, min_lr: 2e-4, ..Default::default() });
        let mut base = 1e-3f32;
        let mut bases = Vec::new();
        for epoch in 1..=4 {
            let in_force = s.lr(epoch * 10 - 1, 10, 80, base);
            let lr = r.update(1.0, in_force);
            if lr != in_force {
                base = rescale(base, in_force, lr);
            }
            bases.push(base);
        }
        // Epoch 1 improves on +inf; epoch 2 halves the rate in force (8.7e-4), so the base;
        // epoch 3's cut of 3.5e-4 stops at min_lr; epoch 4's rate (1.5e-4) is below min_lr.
        assert_eq!(bases[..2], [1e-3, 5e-4]);
        assert!((s.lr(29, 10, 80, bases[2]) - 2e-4).abs() < 1e-10 && bases[2] < 5e-4 * 0.6, "{bases:?}");
        assert_eq!(bases[3], bases[2]);
        assert!(s.lr(39, 10, 80, bases[3]) < 2e-4);
    }

    /// Keras 2 `EarlyStopping(monitor='val_acc', patience=2)`: stops at the end of the second
    /// epoch in a row without improvement.
    #[test]
    fn early_stopping_follows_keras() {
        let mut e = EarlyStopping::new(EarlyStoppingConfig { monitor: "val_acc".into(), patience: 2, ..Default::default() });
        let stops: Vec<bool> = [0.6, 0.7, 0.69, 0.72, 0.71, 0.70, 0.9].iter().enumerate().map(|(i, &v)| e.update(i as u32 + 1, v).stop).collect();
        assert_eq!(stops, [false, false, false, false, false, true, false]);
        // patience 0 never stops after the first epoch, and stops at the first non-improvement.
        let mut e = EarlyStopping::new(EarlyStoppingConfig::default());
        assert!(!e.update(1, 1.0).stop);
        assert!(!e.update(2, 0.9).stop);
        assert!(e.update(3, 0.95).stop);
    }
}
