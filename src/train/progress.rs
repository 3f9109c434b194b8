//! A progress bar per epoch (step, ETA, running loss and accuracy, images/s) on a terminal, plain
//! lines at each quarter of an epoch otherwise; one summary line per epoch either way.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use super::{Callback, Control, StepProgress, TrainError};
use crate::record::EpochLogs;
use crate::gpu::GpuContext;
use crate::network::{Metrics, Network};

pub struct Progress {
    bar: Option<ProgressBar>,
    terminal: bool,
    last: Option<Metrics>,
    epochs: u32,
}

impl Default for Progress {
    fn default() -> Self {
        Self { bar: None, terminal: std::io::stdout().is_terminal(), last: None, epochs: 0 }
    }
}

/// The Keras-style epoch line.
pub fn epoch_line(l: &EpochLogs, epochs: u32) -> String {
    format!(
        "Epoch {}/{epochs} - {:.1}s - loss: {:.4} - acc: {:.4} - val_loss: {:.4} - val_acc: {:.4} - lr: {:.2e} - step size: {:.2e} - {:.0} img/s",
        l.epoch, l.train_seconds + l.eval_seconds, l.loss, l.acc, l.val_loss, l.val_acc, l.lr, l.step_size, l.train_images_per_s
    )
}

impl Callback for Progress {
    fn on_epoch_begin(&mut self, epoch: u32, epochs: u32, steps: usize) {
        self.last = None;
        self.epochs = epochs;
        if self.terminal {
            let bar = ProgressBar::new(steps as u64);
            bar.set_style(ProgressStyle::with_template("Epoch {prefix} [{bar:30}] {pos}/{len} ETA {eta} {msg}").expect("valid template").progress_chars("=> "));
            bar.set_prefix(format!("{epoch}/{epochs}"));
            self.bar = Some(bar);
        }
    }

    fn on_batch_end(&mut self, p: &StepProgress) {
        if p.running.is_some() {
            self.last = p.running;
        }
        let metrics = self.last.map_or(String::new(), |m| format!("loss {:.4} acc {:.4} ", m.loss(), m.accuracy()));
        match &self.bar {
            Some(bar) => {
                bar.set_position(p.step as u64);
                bar.set_message(format!("{metrics}{:.0} img/s", p.images_per_s));
            }
            None if p.step * 4 / p.steps != (p.step - 1) * 4 / p.steps && p.step < p.steps => {
                outln!("Epoch {}/{} step {}/{}: {metrics}{:.0} img/s", p.epoch, p.epochs, p.step, p.steps, p.images_per_s);
            }
            None => {}
        }
    }

    fn on_epoch_end(&mut self, _: &GpuContext, _: &Network, logs: &EpochLogs, _: &[EpochLogs], _: &mut Control) -> Result<(), TrainError> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if let Some(g) = &logs.grown {
            outln!("Grown before epoch {}: {g}", logs.epoch);
        }
        outln!("{}", epoch_line(logs, self.epochs));
        Ok(())
    }
}
