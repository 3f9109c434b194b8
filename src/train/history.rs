//! The run's history as CSV and JSON (one record per epoch, Keras key names), rewritten
//! atomically after every epoch so an interrupted run keeps what it did.

use std::path::{Path, PathBuf};

use super::{Callback, Control, TrainError};
use crate::record::EpochLogs;
use crate::gpu::GpuContext;
use crate::network::Network;

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    crate::files::write_atomic(path, bytes).map_err(|error| TrainError::Write { path: path.to_path_buf(), error })
}

pub fn to_csv(history: &[EpochLogs]) -> String {
    let mut out = String::from("epoch,loss,acc,val_loss,val_acc,lr,step_size,train_seconds,eval_seconds,train_images_per_s,flops,wall_seconds,grown\n");
    for l in history {
        // The growth's words hold no comma or quote (layer names, numbers, `;`).
        out += &format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:e},{:e},{:.3},{:.3},{:.1},{:e},{:.3},{}\n",
            l.epoch, l.loss, l.acc, l.val_loss, l.val_acc, l.lr, l.step_size, l.train_seconds, l.eval_seconds, l.train_images_per_s, l.flops, l.wall_seconds, l.grown.as_deref().unwrap_or("")
        );
    }
    out
}

/// Reads a history.json written by a run.
pub fn read(path: &Path) -> Result<Vec<EpochLogs>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => format!("{}: not a gpu-cnn history (a run folder's history.json)", path.display()),
        _ => format!("{}: {e}", path.display()),
    })?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not a gpu-cnn history: {e}", path.display()))
}

/// Keeps `history.csv`, `history.json` and the chart `curves.png` in the run folder up to date.
pub struct HistoryWriter {
    pub dir: PathBuf,
    /// The run's name, for the chart's legend.
    pub name: String,
}

impl HistoryWriter {
    pub fn write(&self, history: &[EpochLogs]) -> Result<(), TrainError> {
        write_atomic(&self.dir.join("history.csv"), to_csv(history).as_bytes())?;
        let json = serde_json::to_string_pretty(history).expect("plain data");
        write_atomic(&self.dir.join("history.json"), json.as_bytes())?;
        // A chart that cannot be drawn (no font on this machine, say) is not worth stopping for.
        if let Err(e) = crate::plot::plot(&[(&self.name, history)], &self.dir.join("curves.png")) {
            log::warn!("{e}");
        }
        Ok(())
    }
}

impl Callback for HistoryWriter {
    fn on_epoch_end(&mut self, _: &GpuContext, _: &Network, _: &EpochLogs, history: &[EpochLogs], _: &mut Control) -> Result<(), TrainError> {
        self.write(history)
    }
}
