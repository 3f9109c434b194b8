//! What a run has done, shared by the training loop, checkpoints, histories and reports: each
//! epoch's logs and the state that continues a run exactly. A leaf module, so that `train` may
//! write checkpoints while checkpoints carry its state.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One epoch's record, with Keras' key names plus timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLogs {
    /// 1-based.
    pub epoch: u32,
    pub loss: f64,
    pub acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    /// Learning rate of the epoch's last step (the schedule's, after any plateau cuts).
    pub lr: f64,
    /// The optimizer's effective step size at the epoch's end: Adam's (and AdamW's)
    /// lr * sqrt(1 - beta2^t) / (1 - beta1^t), SGD's lr.
    pub step_size: f64,
    /// Seconds spent training (not evaluating).
    pub train_seconds: f64,
    pub eval_seconds: f64,
    pub train_images_per_s: f64,
    /// Training FLOPs since the run began, through this epoch ([`crate::model::ModelSpec::train_flops`]).
    #[serde(default)]
    pub flops: f64,
    /// Training and evaluation seconds since the run began, through this epoch.
    #[serde(default)]
    pub wall_seconds: f64,
    /// The growth (`[[grow]]`) the model went through before this epoch, as its operators
    /// tell it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grown: Option<String>,
}

impl EpochLogs {
    /// A monitored quantity by its Keras name.
    pub fn get(&self, name: &str) -> Option<f64> {
        Some(match name {
            "loss" => self.loss,
            "acc" | "accuracy" => self.acc,
            "val_loss" => self.val_loss,
            "val_acc" | "val_accuracy" => self.val_acc,
            "lr" => self.lr,
            _ => return None,
        })
    }
}

/// Where training stands, enough to continue exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The run's name (its config's `name`), which titles the model in `summary` (absent in
    /// checkpoints from before it was recorded).
    #[serde(default)]
    pub name: Option<String>,
    /// Completed epochs.
    pub epoch: u32,
    /// Steps done in epoch `epoch + 1` (non-zero only for an interrupted epoch).
    pub step: usize,
    /// The metrics accumulator at that step: [loss sum, correct, count].
    pub partial_metrics: [f32; 3],
    /// Training seconds of those steps, which the epoch's time includes after a resume.
    #[serde(default)]
    pub partial_seconds: f64,
    /// The rate the schedule runs from (`learning_rate` less plateau cuts).
    pub lr: f32,
    pub seed: u64,
    /// Batch size and training-set size the step count refers to (an exact resume needs both).
    pub batch_size: u32,
    pub train_images: usize,
    /// What it trained on ([`crate::run::data_source`]), so a run on other data is not taken for
    /// this one (absent in checkpoints from before it was recorded).
    #[serde(default)]
    pub data: Option<String>,
    /// The epochs the run was asked for (a resume with more raises them), so a longer run is not
    /// taken for a shorter one (absent in checkpoints from before it was recorded).
    #[serde(default)]
    pub epochs: Option<u32>,
    /// The trained checkpoint the run's weights began from (none for a run from scratch, and in
    /// checkpoints from before it was recorded).
    #[serde(default)]
    pub source: Option<Source>,
    pub history: Vec<EpochLogs>,
    /// The run's `unfreeze_after`: the frozen layers (the checkpoint's model says which) become
    /// trainable after this epoch, also on resume.
    #[serde(default)]
    pub unfreeze_after: Option<u32>,
    /// Early stopping ended the run at `epoch`: it is finished, though `epoch` may be short of
    /// the run's `epochs` (an experiment keeps such a run rather than resuming it).
    #[serde(default)]
    pub stopped: bool,
    /// Each stateful callback's state, by its name.
    pub callbacks: HashMap<String, serde_json::Value>,
}

impl TrainState {
    /// Whether the run is over for `epochs`: it trained them, or early stopping ended it.
    pub fn finished(&self, epochs: u32) -> bool {
        self.epoch >= epochs || self.stopped
    }

    /// The epochs the run was asked for: as recorded, else (older checkpoints) those it trained.
    pub fn budget(&self) -> u32 {
        self.epochs.unwrap_or(self.epoch)
    }
}

/// A checkpoint file as a run began from it: its path then, and the MD5 of its bytes. The
/// bytes, not path, size or modification time: they stay the same when an experiment's folder
/// is moved or copied to another machine, and change with anything that changes the file
/// (trained again, resumed to a new best, replaced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub path: String,
    pub md5: String,
}
