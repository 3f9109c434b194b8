//! The training loop ([`Trainer`]) and what listens to it ([`Callback`]): the loop never prints;
//! progress, history files, checkpoints and plateau cuts are callbacks. The per-step learning
//! rate is a pure function of the global step ([`schedule`]), which a resume knows exactly.

pub mod callbacks;
pub mod history;
pub mod progress;
pub mod schedule;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use thiserror::Error;

use crate::record::{EpochLogs, TrainState};
use crate::data::augment::AugmentConfig;
use crate::data::loader::{epoch_order, mix, Augmentation, BatchStream};
use crate::data::Dataset;
use crate::gpu::{GpuContext, Kernels};
use crate::network::{Metrics, Network, NetworkError, Pass};
use schedule::Schedule;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("the training loss became {value} in epoch {epoch}, step {step}: training stopped (lower the learning rate?); the last good checkpoint is kept")]
    NotFinite { value: f64, epoch: u32, step: usize },
    #[error("{0}")]
    Callback(String),
    /// Stopped by a signal after `step` steps of epoch `epoch` (0: after the whole epoch).
    #[error("Interrupted after {}", if *step == 0 { format!("epoch {epoch}") } else { format!("step {step} of epoch {epoch}") })]
    Interrupted { epoch: u32, step: usize },
    #[error("{path}: cannot write: {error}")]
    Write { path: std::path::PathBuf, error: std::io::Error },
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error("growing the model: {0}")]
    Growth(String),
}

/// Where a step stands, for progress displays.
#[derive(Debug, Clone, Copy)]
pub struct StepProgress {
    pub epoch: u32,
    pub epochs: u32,
    pub step: usize,
    pub steps: usize,
    /// Running loss and accuracy of this epoch, when a fresh copy has reached the host.
    pub running: Option<Metrics>,
    pub images_per_s: f64,
}

/// What callbacks may change between epochs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Control {
    /// The rate the schedule runs from: `learning_rate`, less reduce-LR-on-plateau's cuts.
    pub lr: f32,
    pub stop: bool,
}

/// Listens to training. All methods default to doing nothing.
pub trait Callback {
    /// Key of this callback's state in a resumable checkpoint.
    fn name(&self) -> &'static str {
        "callback"
    }
    /// State to carry across a resume, if any.
    fn state(&self) -> Option<serde_json::Value> {
        None
    }
    fn restore(&mut self, _state: &serde_json::Value) {}
    /// Called with the whole resumable state after every epoch (once all `on_epoch_end` calls
    /// are done) and when training is interrupted.
    fn on_state(&mut self, _ctx: &GpuContext, _net: &Network, _state: &TrainState) -> Result<(), TrainError> {
        Ok(())
    }
    fn on_epoch_begin(&mut self, _epoch: u32, _epochs: u32, _steps: usize) {}
    fn on_batch_end(&mut self, _progress: &StepProgress) {}
    /// Called after validation; may change the learning rate or stop training.
    fn on_epoch_end(&mut self, _ctx: &GpuContext, _net: &Network, _logs: &EpochLogs, _history: &[EpochLogs], _control: &mut Control) -> Result<(), TrainError> {
        Ok(())
    }
}

/// Raises the interrupt flag after a number of training steps, as a Ctrl-C would: the CLI's
/// test hook `GPU_CNN_INTERRUPT_AFTER_STEPS=N` and the resume tests use it.
pub struct InterruptAfter {
    steps: usize,
    seen: usize,
    flag: Arc<AtomicBool>,
}

impl InterruptAfter {
    pub fn new(steps: usize, flag: Arc<AtomicBool>) -> Self {
        Self { steps, seen: 0, flag }
    }
}

impl Callback for InterruptAfter {
    fn on_batch_end(&mut self, _: &StepProgress) {
        self.seen += 1;
        if self.seen == self.steps {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
}

/// The settings a fit needs beyond the network and the data.
#[derive(Debug, Clone)]
pub struct FitSettings {
    pub epochs: u32,
    /// The run's steps: `epochs` whole ones, or fewer where a budget cuts the last epoch short.
    pub steps: usize,
    pub batch_size: u32,
    pub seed: u64,
    pub augment: AugmentConfig,
    pub workers: usize,
    pub schedule: Schedule,
    /// Frozen layers become trainable from epoch N + 1.
    pub unfreeze_after: Option<u32>,
    /// Set (by Ctrl-C) to stop after the current step with a resumable checkpoint.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// The models the run grows into, each before the first step of its epoch + 1.
    pub growth: Vec<crate::grow::Growth>,
}

/// Submissions allowed in flight before the host waits for the oldest: enough to keep the GPU
/// fed while the next batch is written, few enough to bound staging memory.
const IN_FLIGHT: usize = 2;

/// Runs `pass` over `ds` in its stored order (no augmentation) and returns the summed metrics.
pub fn evaluate(ctx: &GpuContext, net: &mut Network, ds: Arc<Dataset>, workers: usize) -> Result<Metrics, TrainError> {
    net.reset_metrics(ctx);
    let order: Vec<usize> = (0..ds.len()).collect();
    let mut inflight = VecDeque::new();
    for batch in BatchStream::new(ds, order, net.batch as usize, None, workers, 0) {
        net.upload(ctx, &batch.images, &batch.labels)?;
        inflight.push_back(net.run(ctx, Pass::Evaluate, 0.0));
        pace(ctx, &mut inflight);
    }
    Ok(net.read_metrics(ctx)?)
}

fn pace(ctx: &GpuContext, inflight: &mut VecDeque<wgpu::SubmissionIndex>) {
    let _ = ctx.device.poll(wgpu::PollType::Poll);
    while inflight.len() > IN_FLIGHT {
        let oldest = inflight.pop_front().expect("non-empty");
        let _ = ctx.device.poll(wgpu::PollType::Wait { submission_index: Some(oldest), timeout: None });
    }
}

fn interrupted(settings: &FitSettings) -> bool {
    settings.interrupt.as_ref().is_some_and(|f| f.load(Ordering::SeqCst))
}

fn snapshot(callbacks: &[Box<dyn Callback>], mut state: TrainState) -> TrainState {
    state.callbacks = callbacks.iter().filter_map(|c| c.state().map(|s| (c.name().to_string(), s))).collect();
    state
}

/// `net` grown into `target` with its weights and optimizer state carried
/// ([`crate::transfer::grow_checkpoint`]), inserted batchnorms set from their input's statistics
/// on (evenly spread, so the same every time) training images: the same run goes on, its step
/// counts counting on.
fn grow(ctx: &GpuContext, kernels: &Kernels, net: &Network, growth: &crate::grow::Growth, seed: u64, train: &Dataset) -> Result<Network, TrainError> {
    let (target, now) = (&growth.model, crate::checkpoint::Checkpoint::capture(ctx, net, &[], TrainState::default(), true)?);
    let (mut plan, mut grown) = crate::transfer::grow_checkpoint(&now, target, seed, growth.blocks);
    crate::transfer::calibrate::calibrate(ctx, &mut plan, &mut grown, train.spread(crate::transfer::calibrate::IMAGES)).map_err(|e| TrainError::Growth(format!("{e:#}")))?;
    let mut next = Network::training(ctx, kernels, target, net.batch, seed, &net.training)?;
    grown.apply(ctx, &mut next, true)?;
    next.steps = net.steps;
    Ok(next)
}

/// Trains `net` from `start` (`TrainState::default()` with the seed and learning rate for a
/// fresh run; a checkpoint's state to resume, even mid-epoch) up to `settings.epochs`; returns
/// the whole history.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    ctx: &GpuContext,
    kernels: &Kernels,
    net: &mut Network,
    train: Arc<Dataset>,
    test: Arc<Dataset>,
    settings: &FitSettings,
    start: TrainState,
    callbacks: &mut [Box<dyn Callback>],
) -> Result<Vec<EpochLogs>, TrainError> {
    for c in callbacks.iter_mut() {
        if let Some(s) = start.callbacks.get(c.name()) {
            c.restore(s);
        }
    }
    let mut control = Control { lr: start.lr, stop: false };
    let mut history = start.history;
    let (data, name, source) = (start.data, start.name, start.source);
    let batch = settings.batch_size as usize;
    let steps = train.len().div_ceil(batch);
    let mut skip = start.step;
    // Dropout's masks follow the run's step, which a resume knows exactly.
    net.steps = (start.epoch as usize * steps + start.step) as u32;
    // The rate of a 0-based global step: a function of the step, the schedule's base and the
    // epoch the schedule last started from (0, or a growth that restarts it), so a resumed run
    // repeats it exactly.
    let lr = |step: usize, (origin, schedule): (u32, Schedule), control: &Control| schedule.lr(step - origin as usize * steps, steps, settings.steps - origin as usize * steps, control.lr);
    // The growths so far, as the history marks them on their model's first epoch.
    let grown = |history: &[EpochLogs]| history.iter().filter(|l| l.grown.is_some()).zip(&settings.growth).map(|(l, g)| (l.epoch - 1, g)).collect::<Vec<_>>();
    // The resumable state after `step` steps of epoch `epoch + 1` (0: at the epoch's end).
    let state_at = |epoch: u32, step: usize, partial_metrics: [f32; 3], partial_seconds: f64, control: &Control, history: &[EpochLogs]| TrainState {
        epoch,
        step,
        partial_metrics,
        partial_seconds,
        lr: control.lr,
        stopped: control.stop,
        seed: settings.seed,
        batch_size: settings.batch_size,
        train_images: train.len(),
        data: data.clone(),
        name: name.clone(),
        epochs: Some(settings.epochs),
        source: source.clone(),
        history: history.to_vec(),
        unfreeze_after: settings.unfreeze_after,
        callbacks: Default::default(),
    };
    for epoch in start.epoch + 1..=settings.epochs {
        // The next growth of the plan (the history marks each on its model's first epoch):
        // at its set epoch, or on a plateau of the run so far, decided at the epoch's start
        // from the history, so that a resumed run decides as the uninterrupted one did. A
        // resume inside the epoch it grew at has the grown model already.
        let before = grown(&history);
        let (done, since) = (before.len(), before.last().map_or(0, |(at, _)| *at));
        let growth = settings.growth.get(done).filter(|g| match (skip, g.after_epoch, g.on_plateau) {
            (0, _, Some(plateau)) => plateau.reached(&history, since),
            (0, Some(after), None) => after + 1 == epoch,
            (0, None, None) => false,
            _ => net.spec == g.model,
        });
        if let (Some(g), 0) = (growth, skip) {
            *net = grow(ctx, kernels, net, g, settings.seed, &train)?;
        }
        let origin = before.iter().copied().chain(growth.map(|g| (epoch - 1, g))).rev().find_map(|(at, g)| Some((at, g.schedule.restarted(settings.schedule)?))).unwrap_or((0, settings.schedule));
        if settings.unfreeze_after.is_some_and(|n| epoch > n) && !net.spec.frozen().is_empty() {
            log::info!("epoch {epoch}: unfreezing {} (the optimizer starts afresh)", net.spec.frozen().join(", "));
            *net = net.unfrozen(ctx, kernels)?;
        }
        let first = (epoch - 1) as usize * steps;
        // The epoch's steps: all, or those a budget leaves for the run's last.
        let this = steps.min(settings.steps - first);
        callbacks.iter_mut().for_each(|c| c.on_epoch_begin(epoch, settings.epochs, this));
        if skip > 0 {
            net.write_metrics(ctx, start.partial_metrics);
        } else {
            net.reset_metrics(ctx);
        }
        let started = Instant::now();
        // A resumed epoch's time includes that of its steps before the interruption.
        let resumed_seconds = if skip > 0 { start.partial_seconds } else { 0.0 };
        let order = epoch_order(train.len(), settings.seed, epoch);
        let augment = Augmentation { config: settings.augment, seed: mix(settings.seed ^ mix(0xA0 + epoch as u64)) };
        let mut inflight = VecDeque::new();
        let mut seen = 0;
        for (i, b) in BatchStream::new(train.clone(), order, batch, Some(augment), settings.workers, skip).take(this - skip).enumerate() {
            let step = skip + i + 1;
            seen += b.labels.len();
            net.upload(ctx, &b.images, &b.labels)?;
            inflight.push_back(net.run(ctx, Pass::Train, lr(first + step - 1, origin, &control)));
            pace(ctx, &mut inflight);
            let running = net.running_metrics();
            if let Some(m) = running {
                if !m.loss_sum.is_finite() {
                    return Err(TrainError::NotFinite { value: m.loss_sum, epoch, step });
                }
            }
            let progress = StepProgress { epoch, epochs: settings.epochs, step, steps: this, running, images_per_s: seen as f64 / started.elapsed().as_secs_f64() };
            callbacks.iter_mut().for_each(|c| c.on_batch_end(&progress));
            if interrupted(settings) {
                let m = net.read_metrics(ctx)?;
                let state = snapshot(callbacks, state_at(epoch - 1, step, [m.loss_sum as f32, m.correct as f32, m.count as f32], resumed_seconds + started.elapsed().as_secs_f64(), &control, &history));
                for c in callbacks.iter_mut() {
                    c.on_state(ctx, net, &state)?;
                }
                return Err(TrainError::Interrupted { epoch, step });
            }
        }
        skip = 0;
        let train_metrics = net.read_metrics(ctx)?;
        let train_seconds = resumed_seconds + started.elapsed().as_secs_f64();
        let images = (this * batch).min(train.len());
        if !train_metrics.loss().is_finite() {
            return Err(TrainError::NotFinite { value: train_metrics.loss(), epoch, step: this });
        }
        let eval_start = Instant::now();
        let val = evaluate(ctx, net, test.clone(), settings.workers)?;
        let last_lr = lr((first + this).saturating_sub(1), origin, &control);
        let eval_seconds = eval_start.elapsed().as_secs_f64();
        let (flops, wall) = history.last().map_or((0.0, 0.0), |l: &EpochLogs| (l.flops, l.wall_seconds));
        let logs = EpochLogs {
            epoch,
            loss: train_metrics.loss(),
            acc: train_metrics.accuracy(),
            val_loss: val.loss(),
            val_acc: val.accuracy(),
            lr: last_lr as f64,
            step_size: net.step_size(last_lr),
            train_seconds,
            eval_seconds,
            train_images_per_s: images as f64 / train_seconds,
            flops: flops + net.spec.train_flops(images as u64, this as u64, net.training.optimizer.flops_per_parameter()) as f64,
            wall_seconds: wall + train_seconds + eval_seconds,
            grown: growth.map(|g| g.changes.join("; ")),
        };
        history.push(logs.clone());
        for c in callbacks.iter_mut() {
            c.on_epoch_end(ctx, net, &logs, &history, &mut control)?;
        }
        let state = snapshot(callbacks, state_at(epoch, 0, [0.0; 3], 0.0, &control, &history));
        for c in callbacks.iter_mut() {
            c.on_state(ctx, net, &state)?;
        }
        if control.stop {
            break;
        }
        // Ctrl-C during the epoch's last step or its evaluation: the state just saved resumes.
        if interrupted(settings) && epoch < settings.epochs {
            return Err(TrainError::Interrupted { epoch, step: 0 });
        }
    }
    Ok(history)
}
