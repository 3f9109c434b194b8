//! `gpu-cnn bench kernels`: every kernel at the reference models' shapes (batch 32, 64x64x3
//! input, 32 filters, dense 32768 -> 128; Model 3's BatchNorm and pooling), timed with GPU
//! timestamp queries where the adapter has them, else by the wall clock around many dispatches
//! with one final wait.

use std::fmt::Write;
use std::time::{Duration, Instant};

use std::collections::VecDeque;
use std::sync::Arc;

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Serialize;

use crate::config::Config;
use crate::data::loader::{epoch_order, Augmentation, BatchStream};
use crate::data::synthetic;
use crate::gpu::kernels::optimizer::{StepParams, Tables, CHUNK};
use crate::gpu::kernels::batchnorm::{NormShape, Unstored, WindowSums};
use crate::gpu::kernels::matmul::GemmShape;
use crate::gpu::kernels::{Dispatch, Kernels};
use crate::model::{ConvShape, PoolShape};
use crate::gpu::{GpuContext, GpuError, View};
use crate::model::summary::thousands;
use crate::layers::Activation;
use crate::network::{Network, Pass};

/// One measured kernel launch (or launch pair, for split reductions).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelTiming {
    pub kernel: String,
    pub shape: String,
    pub ms_per_call: f64,
    /// For compute-bound kernels.
    pub gflops: Option<f64>,
    /// For memory-bound kernels: bytes read and written per call over the time.
    pub gbytes_per_s: Option<f64>,
    pub timer: &'static str,
}

/// How long each kernel is run for in one round (after one warm-up call), and how many rounds.
const BUDGET: Duration = Duration::from_millis(400);
const ROUNDS: usize = 4;

/// GPU time of each dispatch, each in its own timestamped pass (adapters with timestamps).
fn profile(ctx: &GpuContext, dispatches: &[&Dispatch]) -> Result<Vec<f64>, GpuError> {
    let n = dispatches.len() as u32;
    let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("profile"), ty: wgpu::QueryType::Timestamp, count: 2 * n });
    let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("profile timestamps"),
        size: 16 * n as u64,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    for (i, d) in dispatches.iter().enumerate() {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(d.kernel.entry()),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &queries,
                beginning_of_pass_write_index: Some(2 * i as u32),
                end_of_pass_write_index: Some(2 * i as u32 + 1),
            }),
        });
        d.record(&mut pass);
    }
    encoder.resolve_query_set(&queries, 0..2 * n, &resolved, 0);
    ctx.queue.submit([encoder.finish()]);
    let ticks: Vec<u64> = ctx.read(&View::whole(&resolved))?;
    let period = ctx.queue.get_timestamp_period() as f64;
    Ok(ticks.chunks(2).map(|t| t[1].saturating_sub(t[0]) as f64 * period * 1e-9).collect())
}

fn seconds_per_call(ctx: &GpuContext, dispatches: &[Dispatch]) -> Result<(f64, &'static str), GpuError> {
    let once = Instant::now();
    crate::gpu::kernels::submit(ctx, dispatches);
    ctx.wait();
    let warm = once.elapsed();
    let reps = (BUDGET.as_secs_f64() / warm.as_secs_f64().max(1e-6)).clamp(2.0, 200.0) as u32;
    if !ctx.timestamps {
        let start = Instant::now();
        for _ in 0..reps {
            crate::gpu::kernels::submit(ctx, dispatches);
        }
        ctx.wait();
        return Ok((start.elapsed().as_secs_f64() / reps as f64, "wall clock"));
    }
    let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("bench"), ty: wgpu::QueryType::Timestamp, count: 2 });
    let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("timestamps"),
        size: 16,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("bench"),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &queries,
                beginning_of_pass_write_index: Some(0),
                end_of_pass_write_index: Some(1),
            }),
        });
        for _ in 0..reps {
            dispatches.iter().for_each(|d| d.record(&mut pass));
        }
    }
    encoder.resolve_query_set(&queries, 0..2, &resolved, 0);
    ctx.queue.submit([encoder.finish()]);
    let ticks: Vec<u64> = ctx.read(&View::whole(&resolved))?;
    let ns = ticks[1].saturating_sub(ticks[0]) as f64 * ctx.queue.get_timestamp_period() as f64;
    Ok((ns * 1e-9 / reps as f64, "GPU timestamps"))
}

struct Case {
    kernel: &'static str,
    shape: String,
    dispatches: Vec<Dispatch>,
    flops: Option<f64>,
    bytes: Option<f64>,
}

fn buffer(ctx: &GpuContext, len: u64) -> Result<View, GpuError> {
    let b = ctx.storage("bench", len)?;
    ctx.fill(&b, 0.01);
    Ok(b)
}

fn cases(ctx: &GpuContext, k: &Kernels) -> Result<Vec<Case>, GpuError> {
    let mut out = Vec::new();
    let scratch = buffer(ctx, 1 << 22)?;
    for (label, s) in [
        ("conv2d_1 32x64x64x3->32 3x3 same", ConvShape::keras(32, [64, 64, 3], 32, [3, 3], 1, true)),
        ("conv2d_2 32x32x32x32->32 3x3 same", ConvShape::keras(32, [32, 32, 32], 32, [3, 3], 1, true)),
    ] {
        let (x, w, b, y) = (buffer(ctx, s.input_len())?, buffer(ctx, s.kernel_len())?, buffer(ctx, s.out_c as u64)?, buffer(ctx, s.output_len())?);
        let flops = Some(2.0 * s.macs() as f64);
        out.push(Case { kernel: "conv2d_forward", shape: label.into(), dispatches: vec![k.conv2d_forward(&s, Activation::Relu, &x, &w, &b, &y)], flops, bytes: None });
        out.push(Case { kernel: "conv2d_backward_input", shape: label.into(), dispatches: vec![k.conv2d_backward_input(&s, &y, &w, &x, false)], flops, bytes: None });
        out.push(Case { kernel: "conv2d_backward_kernel", shape: label.into(), dispatches: k.conv2d_backward_kernel(&s, &x, &y, &w, &scratch), flops, bytes: None });
        let bytes = Some(4.0 * (s.output_len() + s.out_c as u64) as f64);
        out.push(Case { kernel: "column_sum (bias grad)", shape: label.into(), dispatches: k.column_sum(s.output_rows(), s.out_c, &y, &b, &scratch), flops: None, bytes });
    }
    // A MobileNet-style depthwise conv on Model 2's second conv input (9 multiply-adds per output).
    let s = ConvShape::keras(32, [32, 32, 32], 32, [3, 3], 1, true);
    let (label, flops) = ("32x32x32x32 depthwise 3x3 same", Some(2.0 * (s.output_len() * 9) as f64));
    let (x, w, b, y) = (buffer(ctx, s.input_len())?, buffer(ctx, s.depthwise_kernel_len())?, buffer(ctx, s.out_c as u64)?, buffer(ctx, s.output_len())?);
    out.push(Case { kernel: "depthwise_conv2d_forward", shape: label.into(), dispatches: vec![k.depthwise_conv2d_forward(&s, Activation::Relu, &x, &w, &b, &y)], flops, bytes: None });
    out.push(Case { kernel: "depthwise_conv2d_backward_input", shape: label.into(), dispatches: vec![k.depthwise_conv2d_backward_input(&s, &y, &w, &x, false)], flops, bytes: None });
    out.push(Case { kernel: "depthwise_conv2d_backward_kernel", shape: label.into(), dispatches: k.depthwise_conv2d_backward_kernel(&s, &x, &y, &w, &scratch), flops, bytes: None });
    let p = PoolShape { batch: 32, in_h: 64, in_w: 64, c: 32, pool: [2, 2], stride: [2, 2] };
    let (x, y, arg) = (buffer(ctx, p.input_len())?, buffer(ctx, p.output_len())?, buffer(ctx, p.output_len())?);
    let shape = "32x64x64x32 pool 2x2".to_string();
    let bytes = Some(4.0 * (p.input_len() + 2 * p.output_len()) as f64);
    out.push(Case { kernel: "maxpool2d_forward", shape: shape.clone(), dispatches: vec![k.maxpool2d_forward(&p, &x, None, &y, &arg)], flops: None, bytes });
    out.push(Case { kernel: "maxpool2d_backward", shape: shape.clone(), dispatches: vec![k.maxpool2d_backward(&p, &arg, &y, &x)], flops: None, bytes });
    let grad = buffer(ctx, p.input_len())?;
    out.push(Case { kernel: "activation_backward (relu)", shape: "32x64x64x32".into(), dispatches: vec![k.activation_backward(Activation::Relu, &x, &grad)], flops: None, bytes: Some(12.0 * p.input_len() as f64) });

    // Model 3's BatchNorms (after each conv, with its ReLU fused), each beside the yardstick
    // the BatchNorm issue holds it to: a ReLU backward plus a column sum over the same tensor.
    let step = ctx.uniform("step", &StepParams::adam(1e-3, 1, 32));
    for (side, c) in [(64, 32), (32, 32), (16, 64)] {
        let n = NormShape { batch: 32, pixels: side * side, channels: c, momentum: 0.99, epsilon: 1e-3, frozen: false };
        let shape = format!("32x{side}x{side}x{c}");
        let len = n.len() as f64;
        let (bx, by, bdy, bdx) = (buffer(ctx, n.len())?, buffer(ctx, n.len())?, buffer(ctx, n.len())?, buffer(ctx, n.len())?);
        let mut yardstick = vec![k.activation_backward(Activation::Relu, &bx, &bdx)];
        yardstick.extend(k.column_sum(n.rows(), c, &bdx, &by, &scratch));
        out.push(Case { kernel: "activation_backward (relu) + column_sum", shape: shape.clone(), dispatches: yardstick, flops: None, bytes: Some(16.0 * len) });
        let c = c as u64;
        let (ones, zeros, stats) = (buffer(ctx, c)?, buffer(ctx, c)?, buffer(ctx, Kernels::batchnorm_stats_len(&n))?);
        let moving = [buffer(ctx, c)?, buffer(ctx, c)?];
        let (dg, db) = (buffer(ctx, c)?, buffer(ctx, c)?);
        let mut forward = k.batchnorm_stats(&n, &step, &bx, &ones, &zeros, &moving, &stats, &scratch);
        forward.push(k.batchnorm_forward(&n, Activation::Relu, &bx, &stats, &by));
        let mut backward = k.batchnorm_backward_stats(&n, Activation::Relu, &step, &bx, &bdy, &ones, &stats, &dg, &db, &scratch);
        backward.push(k.batchnorm_backward_input(&n, Activation::Relu, &step, &bx, &bdy, &stats, &bdx));
        let shape = format!("batchnorm {shape}");
        out.push(Case { kernel: "batchnorm_stats", shape: shape.clone(), dispatches: forward[..2].to_vec(), flops: None, bytes: Some(4.0 * len) });
        out.push(Case { kernel: "batchnorm_forward (+ relu)", shape: shape.clone(), dispatches: forward[2..].to_vec(), flops: None, bytes: Some(8.0 * len) });
        out.push(Case { kernel: "batchnorm_backward_stats", shape: shape.clone(), dispatches: backward[..2].to_vec(), flops: None, bytes: Some(8.0 * len) });
        out.push(Case { kernel: "batchnorm_backward_input", shape: shape.clone(), dispatches: backward[2..].to_vec(), flops: None, bytes: Some(12.0 * len) });
        out.push(Case { kernel: "batchnorm layer, fwd + bwd", shape: shape.clone(), dispatches: [&forward[..], &backward].concat(), flops: None, bytes: Some(32.0 * len) });
        // In Model 3 each is followed by a max pool, which normalises on load: the layer then
        // runs no forward pass of its own, and the pool reads x instead of y.
        let p = PoolShape { batch: 32, in_h: side, in_w: side, c: c as u32, pool: [2, 2], stride: [2, 2] };
        let (py, parg, at_max) = (buffer(ctx, p.output_len())?, buffer(ctx, p.output_len())?, buffer(ctx, p.output_len())?);
        let bytes = Some(4.0 * (p.input_len() + 2 * p.output_len()) as f64);
        let sums = WindowSums { shape: n, gamma: ones.clone(), dgamma: dg.clone(), dbeta: db.clone() };
        let norm = Unstored { stats: stats.clone(), channels: c as u32, activation: Activation::Relu, sums: Some(sums) };
        let windows = p.out_h() * p.out_w();
        let window_sums = k.batchnorm_window_sums(&norm, windows, &step, &at_max, &py, &scratch);
        out.push(Case { kernel: "maxpool2d_forward", shape: format!("{shape} pool 2x2, stored"), dispatches: vec![k.maxpool2d_forward(&p, &by, None, &py, &parg)], flops: None, bytes });
        let pool = k.maxpool2d_forward(&p, &bx, Some((&norm, &at_max)), &py, &parg);
        out.push(Case { kernel: "maxpool2d_forward", shape: format!("{shape} pool 2x2, normalising"), dispatches: vec![pool.clone()], flops: None, bytes: Some(4.0 * (p.input_len() + 3 * p.output_len()) as f64) });
        out.push(Case { kernel: "batchnorm_window_sums", shape: shape.clone(), dispatches: window_sums.clone(), flops: None, bytes: Some(8.0 * p.output_len() as f64) });
        // The layer with its pool's forward: less the stored pool's row, what the layer adds.
        let layer = [&forward[..2], &[pool], &window_sums, &backward[2..]].concat();
        out.push(Case { kernel: "batchnorm layer before a pool", shape, dispatches: layer, flops: None, bytes: None });
    }

    // Model 3's pools.
    let a = PoolShape { batch: 32, in_h: 16, in_w: 16, c: 64, pool: [2, 2], stride: [2, 2] };
    let (ax, ay) = (buffer(ctx, a.input_len())?, buffer(ctx, a.output_len())?);
    let bytes = Some(4.0 * (a.input_len() + a.output_len()) as f64);
    out.push(Case { kernel: "avgpool2d_forward", shape: "32x16x16x64 pool 2x2".into(), dispatches: vec![k.avgpool2d_forward(&a, &ax, &ay)], flops: None, bytes });
    out.push(Case { kernel: "avgpool2d_backward", shape: "32x16x16x64 pool 2x2".into(), dispatches: vec![k.avgpool2d_backward(&a, &ay, &ax)], flops: None, bytes });
    let g = PoolShape { pool: [16, 16], stride: [16, 16], ..a };
    let bytes = Some(4.0 * (g.input_len() + g.output_len()) as f64);
    out.push(Case { kernel: "globalavgpool2d forward", shape: "32x16x16x64".into(), dispatches: vec![k.avgpool2d_forward(&g, &ax, &ay)], flops: None, bytes });
    out.push(Case { kernel: "globalavgpool2d backward", shape: "32x16x16x64".into(), dispatches: vec![k.avgpool2d_backward(&g, &ay, &ax)], flops: None, bytes });

    let (b, i, o) = (32u32, 32768u32, 128u32);
    let (x, w, bias, yv) = (buffer(ctx, (b * i) as u64)?, buffer(ctx, (i * o) as u64)?, buffer(ctx, o as u64)?, buffer(ctx, (b * o) as u64)?);
    let dense = "dense_1 32x32768->128";
    for (kernel, g, a, bm, c) in [
        ("gemm forward (x W + b, relu)", GemmShape::nn(b, o, i), &x, &w, &yv),
        ("gemm backward dx (dy W^T)", GemmShape::nt(b, i, o), &yv, &w, &x),
        ("gemm backward dW (x^T dy)", GemmShape::tn(i, o, b), &x, &yv, &w),
    ] {
        let with_bias = kernel.starts_with("gemm forward");
        let d = k.gemm(&g, a, bm, with_bias.then_some(&bias), if with_bias { Activation::Relu } else { Activation::Linear }, c, &scratch);
        out.push(Case { kernel, shape: dense.into(), dispatches: d, flops: Some(2.0 * g.macs() as f64), bytes: None });
    }
    let (logits, labels, grad, metrics) = (buffer(ctx, 32)?, ctx.upload("labels", &[1u32; 32])?, buffer(ctx, 32)?, buffer(ctx, 3)?);
    out.push(Case { kernel: "sigmoid_bce_loss", shape: "batch 32".into(), dispatches: vec![k.loss(32, 1, 0.0, &step, &logits, &labels, &grad, &metrics)], flops: None, bytes: Some(4.0 * 96.0) });
    let n = 4_195_457u64.next_multiple_of(CHUNK);
    let (pw, pg, pm, pv) = (buffer(ctx, n)?, buffer(ctx, n)?, buffer(ctx, n)?, buffer(ctx, n)?);
    let chunks = (n / CHUNK) as usize;
    let (decay, scale) = (ctx.upload("decay", &vec![0f32; chunks])?, ctx.upload("scale", &vec![1f32; chunks])?);
    let tables = Tables { decay: &decay, scale: &scale };
    out.push(Case { kernel: "adam_update", shape: "Model 1, 4,195,457 params".into(), dispatches: vec![k.adam_update(&step, &pw, &pg, &pm, &pv, &tables)], flops: None, bytes: Some(28.0 * n as f64) });
    Ok(out)
}

/// Runs every case on `ctx` (those whose kernel or shape contains `only`, if given); where a
/// case takes a subgroup kernel, the plain kernel that adapters without subgroups run follows
/// it as a row of its own.
pub fn kernels(ctx: &GpuContext, only: Option<&str>) -> Result<Vec<KernelTiming>, GpuError> {
    let (k, plain) = (Kernels::new(ctx), Kernels::with_subgroups(ctx, false));
    k.compile_all();
    plain.compile_all();
    let mut results = Vec::new();
    let wanted = |c: &(Case, Case)| only.is_none_or(|o| c.0.kernel.contains(o) || c.0.shape.contains(o));
    for (case, plain_case) in cases(ctx, &k)?.into_iter().zip(cases(ctx, &plain)?).filter(wanted) {
        let subgroups = case.dispatches[0].kernel.uses_subgroups();
        let variants: Vec<_> = [(case, ""), (plain_case, " (no subgroups)")].into_iter().take(1 + subgroups as usize).collect();
        // The fastest of a few rounds, the variants interleaved: a shared machine's slow
        // spells then neither inflate a figure nor favour one variant.
        let mut best = vec![(f64::INFINITY, ""); variants.len()];
        for _ in 0..ROUNDS {
            for ((case, _), best) in variants.iter().zip(&mut best) {
                let (s, timer) = seconds_per_call(ctx, &case.dispatches)?;
                *best = (best.0.min(s), timer);
            }
        }
        for ((case, suffix), (s, timer)) in variants.into_iter().zip(best) {
            results.push(KernelTiming {
                kernel: format!("{}{suffix}", case.kernel),
                shape: case.shape,
                ms_per_call: s * 1e3,
                gflops: case.flops.map(|f| f / s / 1e9),
                gbytes_per_s: case.bytes.map(|b| b / s / 1e9),
                timer,
            });
        }
    }
    ctx.check_errors()?;
    Ok(results)
}

pub fn table(ctx: &GpuContext, results: &[KernelTiming]) -> String {
    let mut out = format!("adapter: {}\ntimer: {}\n", ctx.describe(), results.first().map_or("-", |r| r.timer));
    let _ = writeln!(out, "{:<30} {:<36} {:>10} {:>9} {:>8}", "kernel", "shape", "ms/call", "GFLOP/s", "GB/s");
    for r in results {
        let num = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        let _ = writeln!(out, "{:<30} {:<36} {:>10.3} {:>9} {:>8}", r.kernel, r.shape, r.ms_per_call, num(r.gflops), num(r.gbytes_per_s));
    }
    out
}

pub fn to_json(ctx: &GpuContext, results: &[KernelTiming]) -> String {
    serde_json::json!({ "adapter": ctx.describe(), "kernels": results }).to_string()
}

/// One kernel's share of a training step.
#[derive(Debug, Clone, Serialize)]
pub struct KernelShare {
    pub kernel: &'static str,
    pub calls: usize,
    pub ms: f64,
    pub share: f64,
}

/// What `gpu-cnn bench train` measures.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub adapter: String,
    pub config: String,
    pub batch_size: u32,
    pub params: u64,
    /// Kernel compilation and allocation, before the first step.
    pub build_seconds: f64,
    pub train_images_per_s: f64,
    /// Host time to prepare one training step: write the step uniform, record every dispatch
    /// and finish the command buffer (what the host adds to each step; the GPU's work and the
    /// driver's submission excluded).
    pub host_ms_per_step: f64,
    pub eval_images_per_s: f64,
    pub augment_images_per_s: f64,
    pub augment_workers: usize,
    /// Per-kernel GPU time of one training step (empty without timestamp queries).
    pub step_profile: Vec<KernelShare>,
}

impl TrainReport {
    pub fn table(&self) -> String {
        let mut out = format!(
            "adapter: {}\nconfig: {} ({} parameters), batch {}\nready in {:.2} s (kernel compilation and allocation)\n\
             training:     {:>9.1} images/s (host: {:.3} ms to record a step)\nevaluation:   {:>9.1} images/s\naugmentation: {:>9.1} images/s ({} workers)\n",
            self.adapter, self.config, thousands(self.params), self.batch_size, self.build_seconds,
            self.train_images_per_s, self.host_ms_per_step, self.eval_images_per_s, self.augment_images_per_s, self.augment_workers
        );
        if !self.step_profile.is_empty() {
            let _ = writeln!(out, "\none training step, by kernel (GPU timestamps, each dispatch in its own pass):");
            for k in &self.step_profile {
                let _ = writeln!(out, "  {:<24} {:>3} calls {:>9.2} ms {:>5.1}%", k.kernel, k.calls, k.ms, 100.0 * k.share);
            }
        }
        out
    }
}

/// Steady-state throughput is measured in rounds of this long each (after warm-up), and the
/// fastest round reported, as for the kernels.
const TRAIN_ROUND: Duration = Duration::from_secs(2);

fn images_per_s(ctx: &GpuContext, net: &mut Network, pass: Pass) -> f64 {
    let batch = net.batch as f64;
    let mut inflight = VecDeque::new();
    let mut step = |inflight: &mut VecDeque<_>| {
        inflight.push_back(net.run(ctx, pass, 1e-3));
        while inflight.len() > 2 {
            let _ = ctx.device.poll(wgpu::PollType::Wait { submission_index: inflight.pop_front(), timeout: None });
        }
    };
    for _ in 0..2 {
        step(&mut inflight);
    }
    ctx.wait();
    let mut best = 0f64;
    for _ in 0..ROUNDS {
        inflight.clear();
        let (start, mut steps) = (Instant::now(), 0);
        while steps < 3 || start.elapsed() < TRAIN_ROUND {
            step(&mut inflight);
            steps += 1;
        }
        ctx.wait();
        best = best.max(steps as f64 * batch / start.elapsed().as_secs_f64());
    }
    best
}

/// Mean host time to prepare a training step, over command buffers that are never submitted.
fn host_ms_per_step(ctx: &GpuContext, net: &Network) -> f64 {
    const STEPS: u32 = 200;
    let start = Instant::now();
    for _ in 0..STEPS {
        net.prepare(ctx, 1e-3);
        drop(net.encode(ctx, Pass::Train).finish());
    }
    start.elapsed().as_secs_f64() * 1e3 / STEPS as f64
}

/// Steady-state training and evaluation throughput of `cfg`'s model on random images, the
/// augmentation pipeline's throughput on its own, and a per-kernel profile of one step.
pub fn train(ctx: &GpuContext, kernels: &Kernels, cfg: &Config) -> anyhow::Result<TrainReport> {
    let (mut net, build_seconds) = crate::run::build_network(ctx, kernels, cfg)?;
    let per_image = cfg.model.input.iter().product::<u32>() as usize;
    let batch = cfg.train.batch_size as usize;
    let mut rng = StdRng::seed_from_u64(cfg.train.seed);
    let images: Vec<f32> = (0..batch * per_image).map(|_| rng.random_range(0.0..1.0)).collect();
    let labels: Vec<u32> = (0..batch).map(|_| rng.random_range(0..cfg.model.classes())).collect();
    net.upload(ctx, &images, &labels)?;
    let train_images_per_s = images_per_s(ctx, &mut net, Pass::Train);
    let eval_images_per_s = images_per_s(ctx, &mut net, Pass::Evaluate);
    let host_ms_per_step = host_ms_per_step(ctx, &net);

    let mut step_profile: Vec<KernelShare> = Vec::new();
    if ctx.timestamps {
        net.prepare(ctx, 1e-3);
        let dispatches: Vec<_> = net.dispatches(Pass::Train).collect();
        let times = profile(ctx, &dispatches)?;
        let total: f64 = times.iter().sum();
        for (d, t) in dispatches.iter().zip(&times) {
            match step_profile.iter_mut().find(|k| k.kernel == d.kernel.entry()) {
                Some(k) => {
                    k.calls += 1;
                    k.ms += t * 1e3;
                }
                None => step_profile.push(KernelShare { kernel: d.kernel.entry(), calls: 1, ms: t * 1e3, share: 0.0 }),
            }
        }
        step_profile.iter_mut().for_each(|k| k.share = k.ms / (total * 1e3));
        step_profile.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    }

    let pool = Arc::new(synthetic::generate(512, cfg.model.input, 1));
    let augment = Augmentation { config: cfg.augment, seed: 7 };
    let start = Instant::now();
    let mut done = 0;
    let mut epoch = 1;
    while start.elapsed() < Duration::from_secs(2) {
        let stream = BatchStream::new(pool.clone(), epoch_order(pool.len(), 1, epoch), batch, Some(augment), cfg.data.workers, 0);
        done += stream.map(|b| b.labels.len()).sum::<usize>();
        epoch += 1;
    }
    let augment_images_per_s = done as f64 / start.elapsed().as_secs_f64();
    ctx.check_errors()?;
    Ok(TrainReport {
        adapter: ctx.describe(),
        config: cfg.name.clone(),
        batch_size: cfg.train.batch_size,
        params: cfg.model.param_count(),
        build_seconds,
        train_images_per_s,
        host_ms_per_step,
        eval_images_per_s,
        augment_images_per_s,
        augment_workers: cfg.data.workers,
        step_profile,
    })
}
