//! A model resident on the GPU. Parameters, gradients and the optimizer's moments each live in
//! one flat buffer (every tensor at a 256-byte aligned offset; the trainable tensors first, so one
//! update dispatch over that prefix serves the whole model and never touches the moving
//! statistics after it); activations and their gradients get a buffer per layer. The network
//! walks the layers and each kind records its own dispatches (`crate::layers`), all built once
//! here; a training step writes the batch and a 48-byte step uniform, records the prepared
//! dispatches into one compute pass and submits once, with no readback.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use rand::{rngs::StdRng, Rng, SeedableRng};
use thiserror::Error;

use crate::gpu::kernels::add::Route;
use crate::gpu::kernels::optimizer::StepParams;
use crate::gpu::kernels::{Dispatch, Kernels};
use crate::gpu::{GpuContext, GpuError, View};
use crate::layers::{Build, Init};
use crate::model::graph::Delivery;
use crate::model::{ModelSpec, ParamInfo, Shape};
use crate::optimizer::OptimizerConfig;

#[derive(Debug, Error)]
pub enum NetworkError {
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error("no parameter tensor named '{0}'")]
    UnknownTensor(String),
    #[error("tensor '{name}' has {expected} elements, got {got}")]
    Length { name: String, expected: u64, got: usize },
    #[error("{0}'s output is never stored (its max pool normalises on load)")]
    Unstored(String),
    #[error("a batch holds at most {capacity} images, got {got}")]
    BatchTooLarge { capacity: u32, got: usize },
    #[error("{got} pixel values for {rows} images of {per_image} values each")]
    ImageLength { got: usize, rows: usize, per_image: u64 },
}

/// Parameter-shaped tensors in slot order.
pub type Tensors = Vec<Vec<f32>>;

/// Offsets of bound views must be multiples of 256 bytes on every adapter.
const ALIGN: u64 = 64;

/// Where a parameter tensor sits in the flat buffers.
#[derive(Debug, Clone)]
pub struct Slot {
    pub info: ParamInfo,
    pub offset: u64,
}

/// Loss and accuracy summed on the GPU over the batches since the last reset.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Metrics {
    pub loss_sum: f64,
    pub correct: f64,
    pub count: f64,
}

impl Metrics {
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.count.max(1.0)
    }
    pub fn accuracy(&self) -> f64 {
        self.correct / self.count.max(1.0)
    }
}

/// Reads the metrics accumulator without stalling a step: when idle, the next step's encoder
/// also copies the accumulator into a staging buffer, which is then mapped asynchronously;
/// the trainer's non-blocking polls complete the map and `take` returns the copy.
struct MetricsProbe {
    staging: wgpu::Buffer,
    state: Arc<AtomicU8>,
    /// Set when the accumulator is reset while a copy is in flight: that copy is dropped.
    stale: AtomicBool,
}

const IDLE: u8 = 0;
const PENDING: u8 = 1;
const READY: u8 = 2;

impl MetricsProbe {
    fn new(ctx: &GpuContext) -> Self {
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("metrics probe"),
            size: 12,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self { staging, state: Arc::new(AtomicU8::new(IDLE)), stale: AtomicBool::new(false) }
    }

    /// Forgets any copy made before the accumulator was reset or rewritten.
    fn discard(&self) {
        self.stale.store(self.state.load(Ordering::Acquire) != IDLE, Ordering::Release);
    }

    fn take(&self) -> Option<Metrics> {
        if self.state.load(Ordering::Acquire) != READY {
            return None;
        }
        if self.stale.swap(false, Ordering::AcqRel) {
            self.staging.unmap();
            self.state.store(IDLE, Ordering::Release);
            return None;
        }
        let m = {
            let view = self.staging.get_mapped_range(..).ok()?;
            let v: &[f32] = bytemuck::cast_slice(&view);
            Metrics { loss_sum: v[0] as f64, correct: v[1] as f64, count: v[2] as f64 }
        };
        self.staging.unmap();
        self.state.store(IDLE, Ordering::Release);
        Some(m)
    }
}

/// What one submission runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Forward and loss, dropout off: evaluation.
    Evaluate,
    /// Forward, loss and backward, no update (gradient checks).
    Gradients,
    /// Forward, loss, backward and the optimizer's update.
    Train,
}

/// How a network trains: its optimizer and the loss's label smoothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Training {
    pub optimizer: OptimizerConfig,
    /// Keras' `label_smoothing` (0: none).
    pub label_smoothing: f32,
}

pub struct Network {
    pub spec: ModelSpec,
    /// Images per batch the buffers hold.
    pub batch: u32,
    pub slots: Vec<Slot>,
    params: View,
    grads: View,
    /// The optimizer's state over the trainable prefix (Adam's m and v, SGD's momentum).
    moments: Vec<View>,
    pub training: Training,
    input: View,
    labels: View,
    /// Each value: the input, then each layer's output (flatten aliases its input); None where
    /// a batchnorm leaves it to its max pool to compute on load.
    activations: Vec<Option<View>>,
    step: wgpu::Buffer,
    metrics: View,
    forward: Vec<Dispatch>,
    backward: Vec<Dispatch>,
    update: Vec<Dispatch>,
    probe: MetricsProbe,
    /// Optimizer steps taken.
    pub t: u32,
    /// Training steps of the run taken (dropout's mask index): set by the trainer on a
    /// resume, kept when layers are unfrozen, where `t` starts again.
    pub steps: u32,
    rows: u32,
    seed: u64,
}

/// Each tensor's initial values, flat: glorot-uniform kernels (limit sqrt(6 / (fan_in +
/// fan_out))), zero biases, unit gammas and moving variances, as Keras.
pub fn initial_flat(slots: &[Slot], total: u64, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = vec![0f32; total as usize];
    for s in slots {
        let values = &mut data[s.offset as usize..(s.offset + s.info.len()) as usize];
        match s.info.init {
            Init::Glorot { fan_in, fan_out } => {
                let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
                values.iter_mut().for_each(|w| *w = rng.random_range(-limit..=limit));
            }
            Init::Ones => values.fill(1.0),
            Init::Zeros => {}
        }
    }
    data
}

/// Where each tensor of `spec` sits in the flat buffers (trainable ones first), the length of
/// the trainable prefix, and the total length.
pub fn layout(spec: &ModelSpec) -> (Vec<Slot>, u64, u64) {
    let infos = spec.params();
    let mut offsets = vec![0; infos.len()];
    let mut total = 0;
    let mut trainable = 0;
    for pass in [true, false] {
        for (i, info) in infos.iter().enumerate().filter(|(_, p)| p.trainable == pass) {
            offsets[i] = total;
            total += info.len().div_ceil(ALIGN) * ALIGN;
        }
        if pass {
            trainable = total;
        }
    }
    let slots = infos.into_iter().zip(offsets).map(|(info, offset)| Slot { info, offset }).collect();
    (slots, trainable, total)
}

/// The tensors `Network::new` starts from for this spec and seed, tensor by tensor.
pub fn initial_params(spec: &ModelSpec, seed: u64) -> Vec<Vec<f32>> {
    let (slots, _, total) = layout(spec);
    let flat = initial_flat(&slots, total, seed);
    slots.iter().map(|s| flat[s.offset as usize..(s.offset + s.info.len()) as usize].to_vec()).collect()
}

fn fnv(seed: u64, i: usize) -> u32 {
    let h = (seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0x1000_0000_01b3);
    (h ^ (h >> 32)) as u32
}

impl Network {
    /// [`Network::training`] with Keras' default Adam and no label smoothing.
    pub fn new(ctx: &GpuContext, kernels: &Kernels, spec: &ModelSpec, batch: u32, seed: u64) -> Result<Self, NetworkError> {
        Self::training(ctx, kernels, spec, batch, seed, &Training::default())
    }

    /// Allocates every buffer, initialises the parameters (seeded glorot-uniform) and builds
    /// the forward, backward and update dispatches for batches of up to `batch` images, trained
    /// as `training` says.
    pub fn training(ctx: &GpuContext, kernels: &Kernels, spec: &ModelSpec, batch: u32, seed: u64, training: &Training) -> Result<Self, NetworkError> {
        let shapes = spec.shapes().expect("validated spec");
        let (slots, trainable, total) = layout(spec);
        let params = ctx.upload("parameters", &initial_flat(&slots, total, seed))?;
        let grads = ctx.storage("gradients", total)?;

        let b = batch as u64;
        let input = ctx.storage("input batch", b * Shape::Image(spec.input).len())?;
        let labels = ctx.storage("labels", b)?;
        let step = ctx.uniform("step", &StepParams::adam(1e-3, 1, batch));
        let metrics = ctx.storage("metrics", 3)?;
        let inputs = spec.input_shapes();
        let scratch_len = spec.layers.iter().zip(&inputs).map(|(l, &input)| l.kind.ops().scratch(batch, input)).max().unwrap_or(0);
        let scratch = ctx.storage("reduction scratch", scratch_len.max(1))?;

        // Activation and gradient buffers per value: 0 is the input, i + 1 the output of layer
        // i (see `crate::model::graph`). Gradients are needed from the first trainable layer's
        // output on: nothing runs backward below it. The head's output gradient is the loss
        // kernel's output, always.
        let graph = spec.graph();
        let first_trainable = slots.iter().filter(|s| s.info.trainable).map(|s| s.info.layer).min().unwrap_or(spec.layers.len() - 1);
        let plan = graph.gradients(&spec.layers, first_trainable + 1);
        let mut grads_of: Vec<Option<View>> = vec![None; spec.layers.len() + 1];
        for v in (1..=spec.layers.len()).rev() {
            grads_of[v] = match plan.buffer[v] {
                Some(own) if own == v => Some(ctx.storage(&format!("{} output gradient", spec.layers[v - 1].name), b * shapes[v - 1].len())?),
                Some(shared) => grads_of[shared].clone(),
                None => None,
            };
        }
        let mut acts = vec![input.clone()];
        let mut stored = vec![true];
        let unstored_at = spec.unstored();
        let mut unstored = None;
        let mut forward = Vec::new();
        let mut backward = Vec::new();
        for (i, (layer, shape)) in spec.layers.iter().zip(&shapes).enumerate() {
            let ops = layer.kind.ops();
            let (reads, delivery) = (&graph.inputs[i], &plan.delivery[i]);
            // A batchnorm before a max pool stores no output: the pool reads the batchnorm's
            // input (aliased here) and normalises it on load.
            let leave_unstored = unstored_at[i].is_some();
            stored.push(!leave_unstored);
            acts.push(if ops.is_view() || leave_unstored { acts[reads[0]].clone() } else { ctx.storage(&format!("{} output", layer.name), b * shape.len())? });
            let dy = grads_of[i + 1].as_ref();
            // A share staged for an input with several readers: written where the layer
            // writes (its output gradient, for a layer that works in place), then delivered.
            let staged = match delivery[0] {
                Delivery::Staged { add } if ops.is_view() || ops.gradient_in_place() => Some((dy.expect("a staged share has a gradient").clone(), add)),
                Delivery::Staged { add } => Some((ctx.storage(&format!("{} input gradient share", layer.name), b * inputs[i].len())?, add)),
                _ => None,
            };
            let gradient = |v: usize, d: Delivery| grads_of[v].as_ref().filter(|_| d != Delivery::None);
            let tensors = slots
                .iter()
                .filter(|s| s.info.layer == i)
                .map(|s| (s.info.suffix, params.slice(s.offset, s.info.len()), grads.slice(s.offset, s.info.len())))
                .collect();
            let mut build = Build {
                ctx,
                kernels,
                name: &layer.name,
                batch,
                input: inputs[i],
                trainable: layer.trainable,
                x: &acts[reads[0]],
                y: &acts[i + 1],
                dx: staged.as_ref().map(|s| &s.0).or(gradient(reads[0], delivery[0])),
                dy,
                accumulate: delivery[0] == Delivery::Add,
                merged: match ops.merges() {
                    true => reads.iter().zip(delivery).map(|(&v, &d)| (&acts[v], gradient(v, d), d)).collect(),
                    false => Vec::new(),
                },
                x_unstored: unstored.take(),
                leave_unstored,
                unstored: None,
                step: &step,
                scratch: &scratch,
                seed: fnv(seed, i),
                tensors,
                forward: Vec::new(),
                backward: Vec::new(),
            };
            ops.build(&mut build)?;
            let Build { forward: f, backward: mut back, unstored: left, .. } = build;
            assert_eq!(left.is_some(), leave_unstored, "{} leaves its output unstored exactly when asked", layer.name);
            unstored = left;
            if let (Some((share, add)), Some(dx)) = (&staged, &grads_of[reads[0]]) {
                back.push(kernels.add_backward(Route { in_place: false, accumulate: *add }, None, share, dx));
            }
            forward.extend(f);
            if i + 1 == spec.layers.len() {
                let dy = dy.expect("the head has parameters");
                forward.push(kernels.loss(batch, spec.logits(), training.label_smoothing, &step, &acts[i + 1], &labels, dy, &metrics));
            }
            // Backward runs from the last layer to the first.
            backward.splice(0..0, back);
        }
        let updated: Vec<_> = slots.iter().filter(|s| s.info.trainable).map(|s| (&s.info, s.offset)).collect();
        let update = training.optimizer.build(ctx, kernels, &step, &updated, &params.slice(0, trainable), &grads.slice(0, trainable))?;
        ctx.check_errors()?;
        let activations = acts.into_iter().zip(stored).map(|(a, s)| s.then_some(a)).collect();
        let (moments, update) = (update.moments, update.dispatches);
        Ok(Self { spec: spec.clone(), batch, slots, params, grads, moments, training: training.clone(), input, labels, activations, step, metrics, forward, backward, update, probe: MetricsProbe::new(ctx), t: 0, steps: 0, rows: batch, seed })
    }

    /// This network with every layer trainable (the same tensors, on the GPU) and a fresh
    /// optimizer state, as Keras after unfreezing and recompiling with a new optimizer.
    pub fn unfrozen(&self, ctx: &GpuContext, kernels: &Kernels) -> Result<Self, NetworkError> {
        let mut net = Self::training(ctx, kernels, &self.spec.unfrozen(), self.batch, self.seed, &self.training)?;
        net.steps = self.steps;
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        for (new, old) in net.slots.iter().zip(&self.slots) {
            let (a, b) = (self.params.slice(old.offset, old.info.len()), net.params.slice(new.offset, new.info.len()));
            encoder.copy_buffer_to_buffer(&a.buffer, a.offset * 4, &b.buffer, b.offset * 4, old.info.len() * 4);
        }
        ctx.queue.submit([encoder.finish()]);
        Ok(net)
    }

    fn slot(&self, name: &str) -> Result<&Slot, NetworkError> {
        self.slots.iter().find(|s| s.info.name == name).ok_or_else(|| NetworkError::UnknownTensor(name.to_string()))
    }

    /// Writes a batch: `images` holds `labels.len()` NHWC images with values in [0, 1].
    pub fn upload(&mut self, ctx: &GpuContext, images: &[f32], labels: &[u32]) -> Result<(), NetworkError> {
        let per_image = Shape::Image(self.spec.input).len();
        if labels.len() > self.batch as usize {
            return Err(NetworkError::BatchTooLarge { capacity: self.batch, got: labels.len() });
        }
        if images.len() as u64 != labels.len() as u64 * per_image {
            return Err(NetworkError::ImageLength { got: images.len(), rows: labels.len(), per_image });
        }
        ctx.queue.write_buffer(&self.input.buffer, 0, bytemuck::cast_slice(images));
        ctx.queue.write_buffer(&self.labels.buffer, 0, bytemuck::cast_slice(labels));
        self.rows = labels.len() as u32;
        Ok(())
    }

    /// Records and submits one pass over the uploaded batch (one queue submission, no wait).
    /// `Pass::Train` takes one optimizer step at learning rate `lr`.
    pub fn run(&mut self, ctx: &GpuContext, pass: Pass, lr: f32) -> wgpu::SubmissionIndex {
        let t = if pass == Pass::Train { self.t + 1 } else { self.t.max(1) };
        let mut step = StepParams::adam(lr, t, self.rows);
        step.training = u32::from(pass != Pass::Evaluate);
        step.seq = self.steps + 1;
        ctx.queue.write_buffer(&self.step, 0, bytemuck::bytes_of(&step));
        let mut encoder = self.encode(ctx, pass);
        if pass == Pass::Train {
            self.t += 1;
            self.steps += 1;
        }
        let probe = self.probe.state.load(Ordering::Acquire) == IDLE;
        if probe {
            encoder.copy_buffer_to_buffer(&self.metrics.buffer, 0, &self.probe.staging, 0, 12);
        }
        let index = ctx.queue.submit([encoder.finish()]);
        if probe {
            self.probe.state.store(PENDING, Ordering::Release);
            let state = self.probe.state.clone();
            self.probe.staging.map_async(wgpu::MapMode::Read, .., move |r| {
                state.store(if r.is_ok() { READY } else { IDLE }, Ordering::Release);
            });
        }
        index
    }

    /// An encoder holding one compute pass with `pass`'s prebuilt dispatches.
    pub fn encode(&self, ctx: &GpuContext, pass: Pass) -> wgpu::CommandEncoder {
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        {
            let mut cp = encoder.begin_compute_pass(&Default::default());
            self.dispatches(pass).for_each(|d| d.record(&mut cp));
        }
        encoder
    }

    /// The dispatches one pass records, in order.
    pub fn dispatches(&self, pass: Pass) -> impl Iterator<Item = &Dispatch> {
        let backward: &[Dispatch] = if pass == Pass::Evaluate { &[] } else { &self.backward };
        let update: &[Dispatch] = if pass == Pass::Train { &self.update } else { &[] };
        self.forward.iter().chain(backward).chain(update)
    }

    /// Writes the step uniform a pass would use, without running it (profiling).
    pub fn prepare(&self, ctx: &GpuContext, lr: f32) {
        let step = StepParams { seq: self.steps + 1, ..StepParams::adam(lr, self.t + 1, self.rows) };
        ctx.queue.write_buffer(&self.step, 0, bytemuck::bytes_of(&step));
    }

    /// The newest running metrics that have reached the host since the last call, if any.
    /// Never waits: the trainer's non-blocking polls complete the asynchronous copies.
    pub fn running_metrics(&self) -> Option<Metrics> {
        self.probe.take()
    }

    /// Zeroes the on-GPU loss/accuracy accumulator.
    pub fn reset_metrics(&self, ctx: &GpuContext) {
        self.probe.discard();
        ctx.queue.write_buffer(&self.metrics.buffer, 0, bytemuck::cast_slice(&[0f32; 3]));
    }

    /// Sets the accumulator (resuming an interrupted epoch).
    pub fn write_metrics(&self, ctx: &GpuContext, values: [f32; 3]) {
        self.probe.discard();
        ctx.queue.write_buffer(&self.metrics.buffer, 0, bytemuck::cast_slice(&values));
    }

    /// Reads the accumulator (waits for the GPU: call at epoch ends).
    pub fn read_metrics(&self, ctx: &GpuContext) -> Result<Metrics, NetworkError> {
        let m: Vec<f32> = ctx.read(&self.metrics)?;
        Ok(Metrics { loss_sum: m[0] as f64, correct: m[1] as f64, count: m[2] as f64 })
    }

    /// The input of layer `i` (a merge layer: its first) for the last batch's rows.
    pub fn read_input(&self, ctx: &GpuContext, i: usize) -> Result<Vec<f32>, NetworkError> {
        let v = self.spec.graph().input(i);
        let per = self.spec.value_shape(v).len();
        let act = self.activations[v].as_ref().ok_or_else(|| NetworkError::Unstored(self.spec.layers[v - 1].name.clone()))?;
        Ok(ctx.read(&act.slice(0, self.rows as u64 * per))?)
    }

    /// The logits of the last batch, [rows, logits].
    pub fn read_logits(&self, ctx: &GpuContext) -> Result<Vec<f32>, NetworkError> {
        let out = self.activations.last().expect("a layer").as_ref().expect("the head's output is stored");
        let per = self.spec.logits() as u64;
        Ok(ctx.read(&out.slice(0, self.rows as u64 * per))?)
    }

    fn read_slot(&self, ctx: &GpuContext, buffer: &View, name: &str) -> Result<Vec<f32>, NetworkError> {
        let s = self.slot(name)?;
        Ok(ctx.read(&buffer.slice(s.offset, s.info.len()))?)
    }

    /// The size of the step the optimizer takes at rate `lr` now (see
    /// [`OptimizerConfig::step_size`]).
    pub fn step_size(&self, lr: f32) -> f64 {
        self.training.optimizer.step_size(lr, self.t)
    }

    /// Every tensor in slot order (and, when `moments`, the optimizer's moments of the trainable
    /// ones: Adam's m and v, or SGD's momentum and no second), with one readback per flat buffer.
    pub fn read_all(&self, ctx: &GpuContext, moments: bool) -> Result<(Tensors, Option<(Tensors, Tensors)>), NetworkError> {
        let split = |flat: Vec<f32>, trainable_only: bool| {
            let slots = self.slots.iter().filter(|s| s.info.trainable || !trainable_only);
            slots.map(|s| flat[s.offset as usize..(s.offset + s.info.len()) as usize].to_vec()).collect::<Vec<_>>()
        };
        let params = split(ctx.read(&self.params)?, false);
        if !moments {
            return Ok((params, None));
        }
        let m = split(ctx.read(&self.moments[0])?, true);
        let v = match self.moments.get(1) {
            Some(v) => split(ctx.read(v)?, true),
            None => Vec::new(),
        };
        Ok((params, Some((m, v))))
    }

    pub fn read_param(&self, ctx: &GpuContext, name: &str) -> Result<Vec<f32>, NetworkError> {
        self.read_slot(ctx, &self.params, name)
    }

    pub fn read_grad(&self, ctx: &GpuContext, name: &str) -> Result<Vec<f32>, NetworkError> {
        self.read_slot(ctx, &self.grads, name)
    }

    fn write_slot(&self, ctx: &GpuContext, buffer: &View, name: &str, data: &[f32]) -> Result<(), NetworkError> {
        let s = self.slot(name)?;
        if data.len() as u64 != s.info.len() {
            return Err(NetworkError::Length { name: name.to_string(), expected: s.info.len(), got: data.len() });
        }
        ctx.queue.write_buffer(&buffer.buffer, (buffer.offset + s.offset) * 4, bytemuck::cast_slice(data));
        Ok(())
    }

    pub fn write_param(&self, ctx: &GpuContext, name: &str, data: &[f32]) -> Result<(), NetworkError> {
        self.write_slot(ctx, &self.params, name, data)
    }

    /// Writes tensor `name`'s optimizer moments (`v` empty for SGD, which has one).
    pub fn write_moments(&self, ctx: &GpuContext, name: &str, m: &[f32], v: &[f32]) -> Result<(), NetworkError> {
        self.write_slot(ctx, &self.moments[0], name, m)?;
        match self.moments.get(1) {
            Some(second) => self.write_slot(ctx, second, name, v),
            None => Ok(()),
        }
    }
}
