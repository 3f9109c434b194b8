//! Every WGSL kernel against its CPU reference (f64), on random inputs, at odd sizes that are
//! multiples of no tile or workgroup size, batch 1, 3 input channels, and the reference
//! models' shapes. Outputs and scratch are poisoned with NaN before each run.
//!
//! Tolerance: the largest |gpu - reference| over the largest |reference| of the tensor, 1e-5
//! for all f32 arithmetic (sums of up to 131,072 terms stay well inside it; WGSL only promises
//! exp() to 3 + 2|x| ULP, so transcendental kernels need more than a few ULP). Kernels that only
//! move or select values (max-pool, relu) must be exact. Activations are checked against f64
//! references (libm's erf for gelu) through every kernel that applies them.

mod common;

use common::{assert_close, gpu, input, kernel_paths, poisoned, random, reference as cpu, run};
use gpu_cnn::gpu::kernels::optimizer::{StepParams, Tables, CHUNK};
use gpu_cnn::gpu::kernels::batchnorm::{NormShape, Unstored, WindowSums};
use gpu_cnn::gpu::kernels::matmul::GemmShape;
use gpu_cnn::gpu::kernels::{Kernel, Kernels};
use gpu_cnn::layers::Activation;
use gpu_cnn::model::{ConvShape, PoolShape};
use gpu_cnn::gpu::View;

const TOL: f64 = 1e-5;
const EXACT: f64 = 0.0;

/// The activations a conv or dense kernel fuses into its store (their derivative follows from
/// the output); silu and gelu run as `activation_forward` passes of their own there.
const FUSED: [Activation; 6] = [Activation::Linear, Activation::Relu, Activation::LeakyRelu, Activation::Elu, Activation::Tanh, Activation::Sigmoid];

/// The tolerance through activation `a`: twice TOL where it exponentiates (its f32 exp, and
/// f' taken from the rounded output, add a few ULP to the arithmetic before).
fn tol(a: Activation) -> f64 {
    if matches!(a, Activation::Linear | Activation::Relu | Activation::LeakyRelu) { TOL } else { 2.0 * TOL }
}

/// `activate` applied to a linear reference.
fn activated(a: Activation, linear: &[f64]) -> Vec<f64> {
    linear.iter().map(|&z| cpu::activate(a, z)).collect()
}

/// (batch, [h, w, c], filters, [kh, kw], stride, same)
type ConvCase = (u32, [u32; 3], u32, [u32; 2], u32, bool);

const CONV_SHAPES: &[ConvCase] = &[
    (1, [5, 7, 3], 5, [3, 3], 1, true),
    (2, [9, 6, 4], 6, [2, 2], 2, true),
    (3, [11, 10, 5], 7, [5, 3], 2, false),
    (2, [8, 8, 3], 1, [1, 1], 1, false),
    (1, [6, 5, 9], 3, [4, 4], 1, true),
    (2, [7, 7, 2], 13, [3, 3], 2, true),
    // out_c % 4 == 0: the quad kernels, with x read by scalars (in_c odd) or by quads.
    (1, [5, 7, 3], 8, [3, 3], 1, true),
    (2, [5, 6, 6], 12, [3, 3], 1, false),
    (2, [7, 9, 8], 4, [3, 3], 2, true),
    (1, [6, 5, 12], 8, [4, 2], 1, false),
];

/// Shapes whose channel count `c`, 4 x the adapter's subgroup lanes (32 on lavapipe's default 8
/// lanes, 128 on 32-lane GPUs), takes the subgroup kernels: 3 or 5 input channels (fewer than a
/// subgroup's reach), 4 or 12 (x quads; 27 kernel units, not a multiple of 4), c input channels
/// for the input gradient; with stride 2, 'valid' padding, and widths that leave part of the last
/// pixel tile empty (some of them more than one tile wide).
fn subgroup_conv_shapes(c: u32) -> [ConvCase; 8] {
    [
        (1, [5, 7, 3], c, [3, 3], 1, true),
        (2, [6, 5, 12], c, [3, 3], 1, false),
        (2, [7, 9, c], 12, [3, 3], 2, true),
        (1, [5, 11, c], c, [2, 3], 1, false),
        (1, [4, 21, 5], c, [3, 3], 1, true),
        (1, [3, 37, 4], c, [3, 3], 2, true),
        (1, [3, 19, c], 8, [3, 3], 1, true),
        (1, [3, 11, 2 * c], 12, [3, 3], 2, true),
    ]
}

/// Model 1/2's first conv and Model 2's second, at batch 32.
const CONV_REFERENCE: &[ConvCase] =
    &[(32, [64, 64, 3], 32, [3, 3], 1, true), (32, [32, 32, 32], 32, [3, 3], 1, true)];

/// Checks the three conv kernels and the bias gradient through both kernel paths; returns the
/// kernels they used.
fn conv_case(seed: u64, shape: ConvCase) -> Vec<Kernel> {
    let (ctx, _) = gpu();
    let (batch, inp, filters, kernel, stride, same) = shape;
    let s = ConvShape::keras(batch, inp, filters, kernel, stride, same);
    let name = format!("{batch}x{inp:?} -> {filters} k{kernel:?} s{stride} {}", if same { "same" } else { "valid" });
    let x = random(seed, s.input_len() as usize, -1.0, 1.0);
    let w = random(seed + 1, s.kernel_len() as usize, -0.5, 0.5);
    let b = random(seed + 2, filters as usize, -0.5, 0.5);
    let dy = random(seed + 3, s.output_len() as usize, -1.0, 1.0);
    let (xv, wv, bv, dyv) = (input(ctx, &x), input(ctx, &w), input(ctx, &b), input(ctx, &dy));
    let mut used = Vec::new();
    let linear = cpu::conv2d_forward(&s, Activation::Linear, &x, &w, &b);
    for (path, k) in kernel_paths() {
        for act in FUSED {
            let y = poisoned(ctx, s.output_len());
            let d = k.conv2d_forward(&s, act, &xv, &wv, &bv, &y);
            used.push(d.kernel);
            let got = run(&[d], &y);
            assert_close(&format!("conv2d_forward {name} {act:?} {path}"), &got, &activated(act, &linear), tol(act));
        }
        let dx = poisoned(ctx, s.input_len());
        let d = k.conv2d_backward_input(&s, &dyv, &wv, &dx, false);
        used.push(d.kernel);
        let got = run(&[d], &dx);
        let want = cpu::conv2d_backward_input(&s, &dy, &w);
        assert_close(&format!("conv2d_backward_input {name} {path}"), &got, &want, TOL);
        // Adding into what another reader of the input wrote.
        let earlier = random(seed + 4, s.input_len() as usize, -1.0, 1.0);
        let dx = input(ctx, &earlier);
        let got = run(&[k.conv2d_backward_input(&s, &dyv, &wv, &dx, true)], &dx);
        let sum: Vec<f64> = want.iter().zip(&earlier).map(|(g, &e)| g + e as f64).collect();
        assert_close(&format!("conv2d_backward_input accumulating {name} {path}"), &got, &sum, TOL);

        let dw = poisoned(ctx, s.kernel_len());
        let scratch = poisoned(ctx, Kernels::conv2d_backward_kernel_scratch(&s).max(1));
        let d = k.conv2d_backward_kernel(&s, &xv, &dyv, &dw, &scratch);
        used.push(d[0].kernel);
        let got = run(&d, &dw);
        assert_close(&format!("conv2d_backward_kernel {name} {path}"), &got, &cpu::conv2d_backward_kernel(&s, &x, &dy), TOL);
    }
    let db = poisoned(ctx, filters as u64);
    let col_scratch = poisoned(ctx, Kernels::column_sum_scratch(s.output_rows(), filters).max(1));
    let got = run(&gpu().1.column_sum(s.output_rows(), filters, &dyv, &db, &col_scratch), &db);
    assert_close(&format!("conv2d bias gradient {name}"), &got, &cpu::column_sum(s.output_rows() as usize, filters as usize, &dy), TOL);
    used
}

#[test]
fn conv2d_forward_and_backward_match_reference() {
    let mut used = Vec::new();
    let c = 4 * gpu().1.subgroup_lanes().unwrap_or(8);
    for (i, &shape) in CONV_SHAPES.iter().chain(&subgroup_conv_shapes(c)).enumerate() {
        used.extend(conv_case(100 + 10 * i as u64, shape));
    }
    for subgroup_kernel in ["conv2d_forward_subgroup", "conv2d_backward_input_subgroup", "conv2d_backward_kernel_subgroup"] {
        assert_subgroup_path_ran(&used, |k| k.entry() == subgroup_kernel);
    }
}

#[test]
fn conv2d_reference_model_shapes() {
    for (i, &shape) in CONV_REFERENCE.iter().enumerate() {
        conv_case(900 + 10 * i as u64, shape);
    }
}

#[test]
fn keras_conv_output_shapes() {
    let s = ConvShape::keras(1, [64, 64, 3], 32, [3, 3], 1, true);
    assert_eq!((s.out_h, s.out_w, s.pad_top, s.pad_left), (64, 64, 1, 1));
    let s = ConvShape::keras(1, [9, 6, 1], 1, [2, 2], 2, true);
    assert_eq!((s.out_h, s.out_w, s.pad_top, s.pad_left), (5, 3, 0, 0));
    let s = ConvShape::keras(1, [11, 10, 1], 1, [5, 3], 2, false);
    assert_eq!((s.out_h, s.out_w, s.pad_top), (4, 4, 0));
    let s = ConvShape::keras(1, [6, 6, 1], 1, [4, 4], 1, true);
    assert_eq!((s.out_h, s.pad_top), (6, 1), "Keras puts the odd padding after");
}

/// (batch, [h, w, c], depth multiplier, [kh, kw], stride, same)
type DepthwiseCase = (u32, [u32; 3], u32, [u32; 2], u32, bool);

/// Odd sizes, multipliers 1 to 3, stride 1 and 2, 'same' (odd and even kernels: TensorFlow's
/// extra padding at the bottom / right) and 'valid'; the last two have enough rows that the
/// kernel gradient splits its reduction (2 and 16 splits through sum_partials).
const DEPTHWISE_SHAPES: &[DepthwiseCase] = &[
    (1, [5, 7, 3], 1, [3, 3], 1, true),
    (2, [9, 6, 5], 2, [3, 3], 2, true),
    (3, [11, 10, 5], 2, [5, 3], 2, false),
    (2, [7, 9, 4], 1, [3, 3], 2, false),
    (1, [6, 5, 9], 3, [4, 4], 1, true),
    (2, [8, 8, 3], 2, [2, 2], 2, true),
    (2, [13, 11, 8], 1, [3, 3], 1, true),
    (4, [33, 31, 6], 2, [3, 3], 1, true),
];

/// The depthwise conv kernels against the reference, with and without the fused ReLU (no
/// subgroup variant: one path), through both their scalar and quad-load specialisations.
#[test]
fn depthwise_conv2d_forward_and_backward_match_reference() {
    let (ctx, k) = gpu();
    let mut used = Vec::new();
    for (i, &(batch, inp, m, kernel, stride, same)) in DEPTHWISE_SHAPES.iter().enumerate() {
        let s = ConvShape::keras(batch, inp, inp[2] * m, kernel, stride, same);
        let name = format!("{batch}x{inp:?} x{m} k{kernel:?} s{stride} {}", if same { "same" } else { "valid" });
        let seed = 1500 + 10 * i as u64;
        let x = random(seed, s.input_len() as usize, -1.0, 1.0);
        let w = random(seed + 1, s.depthwise_kernel_len() as usize, -0.5, 0.5);
        let b = random(seed + 2, s.out_c as usize, -0.5, 0.5);
        let dy = random(seed + 3, s.output_len() as usize, -1.0, 1.0);
        let (xv, wv, bv, dyv) = (input(ctx, &x), input(ctx, &w), input(ctx, &b), input(ctx, &dy));
        let linear = cpu::depthwise_conv2d_forward(&s, &x, &w, &b);
        for act in FUSED {
            let y = poisoned(ctx, s.output_len());
            let d = k.depthwise_conv2d_forward(&s, act, &xv, &wv, &bv, &y);
            used.push(d.kernel);
            let got = run(&[d], &y);
            assert_close(&format!("depthwise_conv2d_forward {name} {act:?}"), &got, &activated(act, &linear), tol(act));
        }
        let dx = poisoned(ctx, s.input_len());
        let d = k.depthwise_conv2d_backward_input(&s, &dyv, &wv, &dx, false);
        used.push(d.kernel);
        let got = run(&[d], &dx);
        assert_close(&format!("depthwise_conv2d_backward_input {name}"), &got, &cpu::depthwise_conv2d_backward_input(&s, &dy, &w), TOL);

        let dw = poisoned(ctx, s.depthwise_kernel_len());
        let scratch = poisoned(ctx, Kernels::depthwise_conv2d_backward_kernel_scratch(&s).max(1));
        let d = k.depthwise_conv2d_backward_kernel(&s, &xv, &dyv, &dw, &scratch);
        used.push(d[0].kernel);
        let got = run(&d, &dw);
        assert_close(&format!("depthwise_conv2d_backward_kernel {name}"), &got, &cpu::depthwise_conv2d_backward_kernel(&s, &x, &dy), TOL);
    }
    for quads in [false, true] {
        for kernel in [Kernel::DepthwiseConv2dForward { quads }, Kernel::DepthwiseConv2dBackwardInput { quads }, Kernel::DepthwiseConv2dBackwardKernel { quads }] {
            assert!(used.contains(&kernel), "{kernel:?} ran");
        }
    }
    // The last shapes split the kernel gradient's reduction.
    let s = |c: &DepthwiseCase| ConvShape::keras(c.0, c.1, c.1[2] * c.2, c.3, c.4, c.5);
    assert!(DEPTHWISE_SHAPES[6..].iter().all(|c| Kernels::depthwise_conv2d_backward_kernel_scratch(&s(c)) > 0));
}

/// (batch, in_h, in_w, c, pool, stride)
type PoolCase = (u32, u32, u32, u32, [u32; 2], [u32; 2]);

const POOL_SHAPES: &[PoolCase] = &[
    (2, 7, 9, 3, [2, 2], [2, 2]),
    (1, 6, 6, 5, [3, 3], [2, 2]),
    (3, 5, 5, 1, [2, 2], [1, 1]),
    (1, 5, 8, 2, [3, 2], [1, 3]),
    (32, 64, 64, 32, [2, 2], [2, 2]),
    // Channel quads: scatter backward with leftover rows/columns, gaps (stride > pool), and
    // the gather for overlapping windows.
    (2, 7, 9, 8, [2, 2], [2, 2]),
    (1, 9, 10, 4, [2, 3], [3, 4]),
    (1, 6, 7, 12, [3, 3], [2, 2]),
];

#[test]
fn maxpool2d_forward_and_backward_match_reference() {
    let (ctx, k) = gpu();
    for (i, &(batch, in_h, in_w, c, pool, stride)) in POOL_SHAPES.iter().enumerate() {
        let s = PoolShape { batch, in_h, in_w, c, pool, stride };
        let name = format!("{batch}x{in_h}x{in_w}x{c} pool {pool:?} stride {stride:?}");
        let x = random(200 + i as u64, s.input_len() as usize, -1.0, 1.0);
        let dy = random(300 + i as u64, s.output_len() as usize, -1.0, 1.0);
        let (y, arg) = (poisoned(ctx, s.output_len()), poisoned(ctx, s.output_len()));
        let got = run(&[k.maxpool2d_forward(&s, &input(ctx, &x), None, &y, &arg)], &y);
        let (want, want_arg) = cpu::maxpool2d_forward(&s, &x);
        assert_close(&format!("maxpool2d_forward {name}"), &got, &want, EXACT);
        assert_eq!(ctx.read::<u32>(&arg).unwrap(), want_arg, "maxpool2d_forward argmax {name}");

        // Pooling a batchnorm's unstored output: x normalised on load, act(x * scale + shift),
        // scale and shift where a batchnorm's statistics hold them (the rest poisoned).
        let cu = c as usize;
        let mut stats = vec![f32::NAN; 7 * cu];
        stats[2 * cu..4 * cu].copy_from_slice(&random(400 + i as u64, 2 * cu, -1.5, 1.5));
        for act in Activation::HIDDEN {
            let norm = Unstored { stats: input(ctx, &stats), channels: c, activation: act, sums: None };
            let (y, arg, at_max) = (poisoned(ctx, s.output_len()), poisoned(ctx, s.output_len()), poisoned(ctx, s.output_len()));
            let got = run(&[k.maxpool2d_forward(&s, &input(ctx, &x), Some((&norm, &at_max)), &y, &arg)], &y);
            let normalised: Vec<f32> = x.iter().enumerate().map(|(e, &v)| v * stats[2 * cu + e % cu] + stats[3 * cu + e % cu]).map(|v| cpu::activate(act, v as f64) as f32).collect();
            let (want, want_arg) = cpu::maxpool2d_forward(&s, &normalised);
            assert_close(&format!("maxpool2d_forward of a batchnorm ({act:?}) {name}"), &got, &want, tol(act));
            assert_eq!(ctx.read::<u32>(&arg).unwrap(), want_arg, "maxpool2d_forward of a batchnorm, argmax ({act:?}) {name}");
            let want_at: Vec<f64> = want_arg.iter().map(|&i| x[i as usize] as f64).collect();
            assert_close(&format!("maxpool2d_forward of a batchnorm, input at the maxima ({act:?}) {name}"), &ctx.read(&at_max).unwrap(), &want_at, EXACT);
        }

        let dx = poisoned(ctx, s.input_len());
        let got = run(&[k.maxpool2d_backward(&s, &arg, &input(ctx, &dy), &dx)], &dx);
        assert_close(&format!("maxpool2d_backward {name}"), &got, &cpu::maxpool2d_backward(&s, &want_arg, &dy), TOL);
    }
}

/// globalmaxpool2d: the max pool whose one window is the whole image (as its layer records it),
/// at odd sizes, channel quads (scatter backward) and single channels (gather), on inputs
/// rounded to quarters so that a channel's maximum repeats: the first one takes the gradient.
#[test]
fn globalmaxpool2d_forward_and_backward_match_reference() {
    let (ctx, k) = gpu();
    for (i, &(batch, h, w, c)) in [(1u32, 1u32, 1u32, 1u32), (3, 5, 7, 3), (2, 9, 6, 8), (1, 13, 11, 12), (4, 2, 3, 5)].iter().enumerate() {
        let s = PoolShape { batch, in_h: h, in_w: w, c, pool: [h, w], stride: [h, w] };
        let name = format!("{batch}x{h}x{w}x{c}");
        let x: Vec<f32> = random(3000 + i as u64, s.input_len() as usize, -1.0, 1.0).iter().map(|v| (v * 4.0).round() / 4.0).collect();
        let dy = random(3100 + i as u64, s.output_len() as usize, -1.0, 1.0);
        let (y, arg, dx) = (poisoned(ctx, s.output_len()), poisoned(ctx, s.output_len()), poisoned(ctx, s.input_len()));
        let got = run(&[k.maxpool2d_forward(&s, &input(ctx, &x), None, &y, &arg)], &y);
        let (want, want_arg) = cpu::maxpool2d_forward(&s, &x);
        assert_close(&format!("globalmaxpool2d forward {name}"), &got, &want, EXACT);
        assert_eq!(ctx.read::<u32>(&arg).unwrap(), want_arg, "globalmaxpool2d argmax (first maximum) {name}");
        let got = run(&[k.maxpool2d_backward(&s, &arg, &input(ctx, &dy), &dx)], &dx);
        assert_close(&format!("globalmaxpool2d backward {name}"), &got, &cpu::maxpool2d_backward(&s, &want_arg, &dy), EXACT);
    }
}

#[test]
fn avgpool2d_forward_and_backward_match_reference() {
    let (ctx, k) = gpu();
    // The pool shapes, and whole-image windows (global average pooling), odd sizes, batch 1.
    let global = [(1, 5, 7, 3, [5, 7], [5, 7]), (3, 4, 4, 13, [4, 4], [4, 4]), (2, 1, 1, 5, [1, 1], [1, 1])];
    for (i, &(batch, in_h, in_w, c, pool, stride)) in POOL_SHAPES.iter().chain(&global).enumerate() {
        let s = PoolShape { batch, in_h, in_w, c, pool, stride };
        let name = format!("{batch}x{in_h}x{in_w}x{c} pool {pool:?} stride {stride:?}");
        let x = random(1200 + i as u64, s.input_len() as usize, -1.0, 1.0);
        let y = poisoned(ctx, s.output_len());
        let got = run(&[k.avgpool2d_forward(&s, &input(ctx, &x), &y)], &y);
        assert_close(&format!("avgpool2d_forward {name}"), &got, &cpu::avgpool2d_forward(&s, &x), TOL);

        let dy = random(1300 + i as u64, s.output_len() as usize, -1.0, 1.0);
        let dx = poisoned(ctx, s.input_len());
        let got = run(&[k.avgpool2d_backward(&s, &input(ctx, &dy), &dx)], &dx);
        assert_close(&format!("avgpool2d_backward {name}"), &got, &cpu::avgpool2d_backward(&s, &dy), TOL);
    }
}

/// (batch capacity, valid images, pixels per image, channels): channels that are multiples of
/// nothing (element quads spanning rows), one image, a short last batch (rows past `valid` must
/// not count and get dx = 0), a dense layer's features (1 pixel); channel quads (channels % 4
/// == 0) down row blocks of 32: one partial block, several with a partial last one and a short
/// batch ending inside a block, and Model 3's largest BatchNorm (32 x 64 x 64 x 32).
const NORM_SHAPES: &[(u32, u32, u32, u32)] =
    &[(1, 1, 35, 3), (3, 3, 7, 5), (4, 3, 9, 13), (6, 6, 1, 7), (5, 2, 1, 1), (2, 2, 400, 33), (1, 1, 3, 4), (3, 2, 5, 12), (3, 2, 37, 8), (32, 32, 4096, 32)];

#[test]
fn batchnorm_kernels_match_reference() {
    let (ctx, k) = gpu();
    for (i, &(batch, valid, pixels, c)) in NORM_SHAPES.iter().enumerate() {
        let s = NormShape { batch, pixels, channels: c, momentum: 0.99, epsilon: 1e-3, frozen: false };
        let name = format!("capacity {batch} valid {valid} x {pixels} pixels x {c}");
        let (len, rows, cu) = (s.len() as usize, (valid * pixels) as usize, c as usize);
        let seed = 1400 + 10 * i as u64;
        // An offset mean: a one-pass E[x^2] - E[x]^2 would lose digits here.
        let x = random(seed, len, 2.0, 4.0);
        let (gamma, beta) = (random(seed + 1, cu, 0.5, 1.5), random(seed + 2, cu, -0.5, 0.5));
        let (mm, mv) = (random(seed + 3, cu, -0.5, 0.5), random(seed + 4, cu, 0.5, 2.0));
        let (xv, gv, bv) = (input(ctx, &x), input(ctx, &gamma), input(ctx, &beta));
        let moving = [input(ctx, &mm), input(ctx, &mv)];
        let stats = poisoned(ctx, Kernels::batchnorm_stats_len(&s));
        let scratch = poisoned(ctx, Kernels::batchnorm_scratch(&s));
        let train = ctx.uniform("step", &StepParams::adam(1e-3, 1, valid));

        // Every hidden activation fuses here (its derivative recomputed from x): one per shape,
        // over quad (channels % 4 == 0) and scalar paths; ReLU at the reference model's shape.
        use Activation::*;
        let act = [Gelu, Linear, Relu, LeakyRelu, Elu, Tanh, Sigmoid, Silu, Gelu, Relu][i];
        let name = format!("{name} {act:?}");
        let y = poisoned(ctx, len as u64);
        let mut d = k.batchnorm_stats(&s, &train, &xv, &gv, &bv, &moving, &stats, &scratch);
        d.push(k.batchnorm_forward(&s, act, &xv, &stats, &y));
        let got = run(&d, &y);
        let y_train: Vec<f32> = ctx.read(&y).unwrap();
        let (mean, var) = cpu::batch_stats(&x, rows, cu);
        let want = cpu::batchnorm_forward(&x, cu, (&mean, &var), &gamma, &beta, 1e-3, act);
        let z_train = cpu::batchnorm_forward(&x, cu, (&mean, &var), &gamma, &beta, 1e-3, Activation::Linear);
        // Rows past the valid ones are normalised too (harmless), with the valid rows' statistics.
        assert_close(&format!("batchnorm_forward (training) {name}"), &got, &want, tol(act));
        let moved = |old: &[f32], stat: &[f64]| old.iter().zip(stat).map(|(&o, &s)| o as f64 * 0.99 + s * 0.01).collect::<Vec<_>>();
        assert_close(&format!("batchnorm_stats moving_mean {name}"), &ctx.read(&moving[0]).unwrap(), &moved(&mm, &mean), TOL);
        assert_close(&format!("batchnorm_stats moving_variance {name}"), &ctx.read(&moving[1]).unwrap(), &moved(&mv, &var), TOL);

        // Inference: the moving statistics (as just updated), and the stats kernels do nothing.
        let (mm1, mv1): (Vec<f32>, Vec<f32>) = (ctx.read(&moving[0]).unwrap(), ctx.read(&moving[1]).unwrap());
        let mut eval = StepParams::adam(1e-3, 1, valid);
        eval.training = 0;
        let eval = ctx.uniform("step", &eval);
        let y = poisoned(ctx, len as u64);
        let mut d = k.batchnorm_stats(&s, &eval, &xv, &gv, &bv, &moving, &stats, &scratch);
        d.push(k.batchnorm_forward(&s, Activation::Linear, &xv, &stats, &y));
        let got = run(&d, &y);
        let to64 = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
        assert_close(&format!("batchnorm_forward (inference) {name}"), &got, &cpu::batchnorm_forward(&x, cu, (&to64(&mm1), &to64(&mv1)), &gamma, &beta, 1e-3, Activation::Linear), TOL);
        assert_eq!(ctx.read::<f32>(&moving[0]).unwrap(), mm1, "inference leaves moving_mean alone");

        // The backward kernels recompute the activation's derivative from x; the reference takes
        // it at the pre-activation z, and a ReLU's kink from the forward's output (y > 0 exactly
        // where z > 0), so that both agree element for element where z rounds across 0.
        let mask = |dy: &[f32], z: &[f64], y: &[f32]| -> Vec<f32> {
            let at = |z: f64, y: f32| if matches!(act, Relu | LeakyRelu) { y as f64 } else { z };
            dy.iter().zip(z).zip(y).map(|((&g, &z), &y)| (g as f64 * cpu::activation_grad(act, at(z, y))) as f32).collect()
        };
        let dy = random(seed + 5, len, -1.0, 1.0);
        let (dg, db, dx) = (poisoned(ctx, c as u64), poisoned(ctx, c as u64), poisoned(ctx, len as u64));
        let mut d = k.batchnorm_stats(&s, &train, &xv, &gv, &bv, &moving, &stats, &scratch);
        d.extend(k.batchnorm_backward_stats(&s, act, &train, &xv, &input(ctx, &dy), &gv, &stats, &dg, &db, &scratch));
        d.push(k.batchnorm_backward_input(&s, act, &train, &xv, &input(ctx, &dy), &stats, &dx));
        let got = run(&d, &dx);
        let (want_dx, want_dg, want_db) = cpu::batchnorm_backward(&x, &mask(&dy, &z_train, &y_train), rows, cu, &gamma, 1e-3);
        assert_close(&format!("batchnorm_backward_input {name}"), &got, &want_dx, tol(act));
        assert_close(&format!("batchnorm_backward dgamma {name}"), &ctx.read(&dg).unwrap(), &want_dg, tol(act));
        assert_close(&format!("batchnorm_backward dbeta {name}"), &ctx.read(&db).unwrap(), &want_db, tol(act));

        // Frozen, in a training pass: inference mode (the moving statistics, left alone) and
        // dx = gamma / sqrt(moving_var + eps) * dy on the valid rows, 0 on the rest.
        let f = NormShape { frozen: true, ..s };
        let (mm2, mv2): (Vec<f32>, Vec<f32>) = (ctx.read(&moving[0]).unwrap(), ctx.read(&moving[1]).unwrap());
        let (y, dx) = (poisoned(ctx, len as u64), poisoned(ctx, len as u64));
        let mut d = k.batchnorm_stats(&f, &train, &xv, &gv, &bv, &moving, &stats, &scratch);
        d.push(k.batchnorm_forward(&f, act, &xv, &stats, &y));
        d.push(k.batchnorm_backward_input(&f, act, &train, &xv, &input(ctx, &dy), &stats, &dx));
        let got_dx = run(&d, &dx);
        let y_frozen: Vec<f32> = ctx.read(&y).unwrap();
        let want_y = cpu::batchnorm_forward(&x, cu, (&to64(&mm2), &to64(&mv2)), &gamma, &beta, 1e-3, act);
        assert_close(&format!("batchnorm_forward (frozen) {name}"), &y_frozen, &want_y, tol(act));
        let g = mask(&dy, &cpu::batchnorm_forward(&x, cu, (&to64(&mm2), &to64(&mv2)), &gamma, &beta, 1e-3, Activation::Linear), &y_frozen);
        let want_dx: Vec<f64> = (0..len).map(|e| if e < rows * cu { gamma[e % cu] as f64 / (mv2[e % cu] as f64 + 1e-3).sqrt() * g[e] as f64 } else { 0.0 }).collect();
        assert_close(&format!("batchnorm_backward_input (frozen) {name}"), &got_dx, &want_dx, tol(act));
        assert_eq!((ctx.read::<f32>(&moving[0]).unwrap(), ctx.read::<f32>(&moving[1]).unwrap()), (mm2, mv2), "a frozen layer leaves its moving statistics alone");
    }
}

/// A batchnorm whose output a max pool takes unstored: its gradient sums over the windows'
/// maxima (`batchnorm_window_sums`) against the reference's sums over the whole tensor, with dy
/// the pool's backward of a random pooled gradient, and the input gradient from them. Odd
/// channels (scalar path) and quads, overlapping windows and an uncovered last row and column,
/// batch 1, a short batch (valid < capacity), with fused activations (ReLU, none, silu, tanh).
#[test]
fn batchnorm_gradient_sums_over_max_pool_windows_match_reference() {
    let (ctx, k) = gpu();
    // (the pool over a batch of capacity images, valid images, activation)
    let cases: &[(PoolCase, u32, Activation)] = &[
        ((1, 7, 9, 3, [2, 2], [2, 2]), 1, Activation::Relu),
        ((3, 6, 5, 5, [3, 2], [2, 1]), 2, Activation::Linear),
        ((2, 9, 8, 8, [2, 2], [2, 2]), 2, Activation::Silu),
        ((4, 5, 7, 12, [2, 2], [2, 2]), 3, Activation::Tanh),
    ];
    for (i, &((batch, h, w, c, pool, stride), valid, relu)) in cases.iter().enumerate() {
        let p = PoolShape { batch, in_h: h, in_w: w, c, pool, stride };
        let s = NormShape { batch, pixels: h * w, channels: c, momentum: 0.99, epsilon: 1e-3, frozen: false };
        let name = format!("capacity {batch} valid {valid} x {h}x{w}x{c} pool {pool:?} stride {stride:?} {relu:?}");
        let (len, rows, cu) = (s.len() as usize, (valid * h * w) as usize, c as usize);
        let seed = 2400 + 10 * i as u64;
        let x = random(seed, len, -1.0, 3.0);
        let (gamma, beta) = (random(seed + 1, cu, 0.5, 1.5), random(seed + 2, cu, -0.5, 0.5));
        let (xv, gv, bv) = (input(ctx, &x), input(ctx, &gamma), input(ctx, &beta));
        let moving = [input(ctx, &vec![0.0; cu]), input(ctx, &vec![1.0; cu])];
        let (stats, scratch) = (poisoned(ctx, Kernels::batchnorm_stats_len(&s)), poisoned(ctx, Kernels::batchnorm_scratch(&s)));
        let step = ctx.uniform("step", &StepParams::adam(1e-3, 1, valid));
        let (dg, db, dx) = (poisoned(ctx, c as u64), poisoned(ctx, c as u64), poisoned(ctx, len as u64));
        let sums = WindowSums { shape: s, gamma: gv.clone(), dgamma: dg.clone(), dbeta: db.clone() };
        let norm = Unstored { stats: stats.clone(), channels: c, activation: relu, sums: Some(sums) };
        let (y, arg, at_max, dy) = (poisoned(ctx, p.output_len()), poisoned(ctx, p.output_len()), poisoned(ctx, p.output_len()), poisoned(ctx, len as u64));
        let dp = input(ctx, &random(seed + 3, p.output_len() as usize, -1.0, 1.0));
        let mut d = k.batchnorm_stats(&s, &step, &xv, &gv, &bv, &moving, &stats, &scratch);
        d.push(k.maxpool2d_forward(&p, &xv, Some((&norm, &at_max)), &y, &arg));
        d.push(k.maxpool2d_backward(&p, &arg, &dp, &dy));
        d.extend(k.batchnorm_window_sums(&norm, p.out_h() * p.out_w(), &step, &at_max, &dp, &scratch));
        d.push(k.batchnorm_backward_input(&s, relu, &step, &xv, &dy, &stats, &dx));
        let got = run(&d, &dx);

        // The reference: the whole tensor's sums of dy (the pool's backward, routed by the
        // GPU's argmax, which the pool test checks) times the activation's derivative.
        let (mean, var) = cpu::batch_stats(&x, rows, cu);
        let z_full = cpu::batchnorm_forward(&x, cu, (&mean, &var), &gamma, &beta, 1e-3, Activation::Linear);
        let dy_full = cpu::maxpool2d_backward(&p, &ctx.read::<u32>(&arg).unwrap(), &ctx.read::<f32>(&dp).unwrap());
        let g: Vec<f32> = dy_full.iter().zip(&z_full).map(|(&g, &z)| (g * cpu::activation_grad(relu, z)) as f32).collect();
        let (want_dx, want_dg, want_db) = cpu::batchnorm_backward(&x, &g, rows, cu, &gamma, 1e-3);
        assert_close(&format!("batchnorm window sums dgamma {name}"), &ctx.read(&dg).unwrap(), &want_dg, tol(relu));
        assert_close(&format!("batchnorm window sums dbeta {name}"), &ctx.read(&db).unwrap(), &want_db, tol(relu));
        assert_close(&format!("batchnorm_backward_input after window sums {name}"), &got, &want_dx, tol(relu));
    }
}

/// Checks the GEMM through both kernel paths; returns the kernels they used.
fn gemm_case(seed: u64, g: GemmShape, a_len: usize, b_len: usize, bias: bool, relu: Activation) -> Vec<Kernel> {
    let (ctx, _) = gpu();
    let a = random(seed, a_len, -1.0, 1.0);
    let b = random(seed + 1, b_len, -1.0, 1.0);
    let bias_data = random(seed + 2, g.n as usize, -1.0, 1.0);
    let (av, bv, bias_view) = (input(ctx, &a), input(ctx, &b), input(ctx, &bias_data));
    let want = cpu::gemm(&g, &a, &b, bias.then_some(&bias_data[..]), relu);
    let mut used = Vec::new();
    for (path, k) in kernel_paths() {
        let c = poisoned(ctx, g.m as u64 * g.n as u64);
        let scratch = poisoned(ctx, Kernels::gemm_scratch(&g).max(1));
        let d = k.gemm(&g, &av, &bv, bias.then_some(&bias_view), relu, &c, &scratch);
        let got = run(&d, &c);
        assert_close(&format!("gemm {g:?} bias={bias} {relu:?} {path}: {:?} ({} dispatches)", d[0].kernel, d.len()), &got, &want, tol(relu));
        used.push(d[0].kernel);
    }
    used
}

/// On an adapter with usable subgroups, some case must have exercised `kernel`.
fn assert_subgroup_path_ran(used: &[Kernel], is_subgroup: impl Fn(&Kernel) -> bool) {
    if gpu().1.subgroup_lanes().is_some() {
        assert!(used.iter().any(is_subgroup), "no case took the subgroup kernel: {used:?}");
    }
}

#[test]
fn gemm_matches_reference_for_every_layout() {
    // Odd sizes take the scalar kernel; multiples of 4 the quad kernel (with and without split-K),
    // and m a multiple of 8 with n a multiple of w = 4 x the adapter's subgroup lanes (32 on
    // lavapipe's default 8, 128 on 32-lane GPUs) the subgroup kernel, with k shorter than a
    // subgroup's reach, not a multiple of it, and split, with the tiles ordered along m (m > n)
    // or along n; (12, 2w, 36) has m = 12, so the quad kernel.
    let w = 4 * gpu().1.subgroup_lanes().unwrap_or(8);
    let cases = [
        (1, 1, 1),
        (5, 7, 3),
        (3, 130, 2049),
        (33, 17, 1000),
        (1, 5, 4099),
        (4, 12, 8),
        (12, 20, 2052),
        (36, 8, 516),
        (24, w, 4),
        (12, 2 * w, 36),
        (16, 2 * w, 36),
        (8, w, 2060),
        (2 * w + 8, w, 12),
    ];
    let mut used = Vec::new();
    for (i, &(m, n, kk)) in cases.iter().enumerate() {
        let len = (m * kk) as usize;
        let seed = 400 + 10 * i as u64;
        // The forward's fused activations in turn, through the one-split epilogues and
        // sum_partials' (split-K).
        let act = FUSED[1 + i % (FUSED.len() - 1)];
        used.extend(gemm_case(seed, GemmShape::nn(m, n, kk), len, (kk * n) as usize, true, Activation::Linear));
        used.extend(gemm_case(seed + 1, GemmShape::nn(m, n, kk), len, (kk * n) as usize, true, act));
        used.extend(gemm_case(seed + 2, GemmShape::nt(m, n, kk), len, (n * kk) as usize, false, Activation::Linear));
        used.extend(gemm_case(seed + 3, GemmShape::tn(m, n, kk), len, (kk * n) as usize, false, Activation::Linear));
    }
    assert_subgroup_path_ran(&used, |k| matches!(k, Kernel::GemmSubgroup { .. }));
}

#[test]
fn dense_reference_model_shapes() {
    // Model 1's dense_1: 32768 -> 128 at batch 32; forward, dX = dY W^T, dW = X^T dY.
    let (b, i, o) = (32u32, 32768u32, 128u32);
    gemm_case(500, GemmShape::nn(b, o, i), (b * i) as usize, (i * o) as usize, true, Activation::Relu);
    gemm_case(501, GemmShape::nt(b, i, o), (b * o) as usize, (i * o) as usize, false, Activation::Linear);
    gemm_case(502, GemmShape::tn(i, o, b), (b * i) as usize, (b * o) as usize, false, Activation::Linear);
}

#[test]
fn column_sum_matches_reference() {
    let (ctx, k) = gpu();
    for (i, &(rows, cols)) in [(1u64, 1u32), (7, 3), (5000, 33), (131_072, 32), (300, 1)].iter().enumerate() {
        let src = random(600 + i as u64, (rows * cols as u64) as usize, -1.0, 1.0);
        let out = poisoned(ctx, cols as u64);
        let scratch = poisoned(ctx, Kernels::column_sum_scratch(rows, cols).max(1));
        let got = run(&k.column_sum(rows, cols, &input(ctx, &src), &out, &scratch), &out);
        assert_close(&format!("column_sum {rows}x{cols}"), &got, &cpu::column_sum(rows as usize, cols as usize, &src), TOL);
    }
}

#[test]
fn add_forward_and_backward_match_reference() {
    use gpu_cnn::gpu::kernels::add::Route;
    let (ctx, k) = gpu();
    for (i, &len) in [1u64, 7, 1003, 70_001].iter().enumerate() {
        let seed = 780 + 10 * i as u64;
        let (a, b) = (random(seed, len as usize, -3.0, 3.0), random(seed + 1, len as usize, -3.0, 3.0));
        let (g, earlier) = (random(seed + 2, len as usize, -1.0, 1.0), random(seed + 3, len as usize, -1.0, 1.0));
        let (av, bv) = (input(ctx, &a), input(ctx, &b));
        let sum: Vec<f64> = a.iter().zip(&b).map(|(&x, &y)| x as f64 + y as f64).collect();
        for act in FUSED {
            let y = poisoned(ctx, len);
            let out = run(&[k.add_forward(act, &av, &bv, &y)], &y);
            assert_close(&format!("add_forward {act:?} {len}"), &out, &activated(act, &sum), tol(act));
            // Backward: the activation's derivative at the output times dy, written or added
            // into dx, and with in_place also back into dy.
            // f' from the output, as the kernel takes it (1 - y^2 near tanh's saturation is
            // cancellation-bound in f32 whoever computes it): the forward above checks y.
            let from_output = |y: f64| match act {
                Activation::Linear => 1.0,
                Activation::Relu => (y > 0.0) as u8 as f64,
                Activation::LeakyRelu => if y > 0.0 { 1.0 } else { 0.2 },
                Activation::Elu => if y > 0.0 { 1.0 } else { y + 1.0 },
                Activation::Tanh => 1.0 - y * y,
                _ => y * (1.0 - y),
            };
            let want: Vec<f64> = g.iter().zip(&out).map(|(&g, &y)| g as f64 * from_output(y as f64)).collect();
            let activated_by = (act != Activation::Linear).then_some((act, &y));
            for (in_place, accumulate) in [(false, false), (true, false), (false, true), (true, true)] {
                let (dy, dx) = (input(ctx, &g), if accumulate { input(ctx, &earlier) } else { poisoned(ctx, len) });
                let got = run(&[k.add_backward(Route { in_place, accumulate }, activated_by, &dy, &dx)], &dx);
                let expect: Vec<f64> = want.iter().zip(&earlier).map(|(w, &e)| if accumulate { w + e as f64 } else { *w }).collect();
                assert_close(&format!("add_backward {act:?} {len} in_place={in_place} accumulate={accumulate}"), &got, &expect, tol(act));
                let dy_after = run(&[], &dy);
                let kept: Vec<f64> = if in_place { want.clone() } else { g.iter().map(|&v| v as f64).collect() };
                assert_close(&format!("add_backward's dy {act:?} {len} in_place={in_place}"), &dy_after, &kept, tol(act));
            }
        }
    }
}

#[test]
fn activations_match_reference() {
    let (ctx, k) = gpu();
    for (i, &len) in [1u64, 7, 1000, 70_001].iter().enumerate() {
        let x = random(700 + i as u64, len as usize, -60.0, 60.0);
        let xv = input(ctx, &x);
        let y = poisoned(ctx, len);
        let got = run(&[k.sigmoid_forward(len, &xv, &y)], &y);
        let want: Vec<f64> = x.iter().map(|&v| cpu::sigmoid(v as f64)).collect();
        assert_close(&format!("sigmoid_forward {len}"), &got, &want, TOL);
    }
    // The hidden activations, layer and conv/dense passes alike: forward, then backward in place
    // from the output (relu .. sigmoid) or the input (silu, gelu). Inputs over [-12, 12] reach
    // the saturated tails; relu moves or zeroes values, exactly.
    for (i, &len) in [1u64, 7, 1002, 70_001].iter().enumerate() {
        let x = random(730 + i as u64, len as usize, -12.0, 12.0);
        let g = random(740 + i as u64, len as usize, -1.0, 1.0);
        let xv = input(ctx, &x);
        for act in Activation::HIDDEN.into_iter().skip(1) {
            let tol = if act == Activation::Relu { EXACT } else { tol(act) };
            let y = poisoned(ctx, len);
            let got = run(&[k.activation_forward(act, len, &xv, &y)], &y);
            assert_close(&format!("activation_forward {act:?} {len}"), &got, &x.iter().map(|&v| cpu::activate(act, v as f64)).collect::<Vec<_>>(), tol);
            let grad = input(ctx, &g);
            let got = run(&[k.activation_backward(act, if act.grad_from_output() { &y } else { &xv }, &grad)], &grad);
            let want: Vec<f64> = g.iter().zip(&x).map(|(&g, &v)| g as f64 * cpu::activation_grad(act, v as f64)).collect();
            assert_close(&format!("activation_backward {act:?} {len}"), &got, &want, tol);
        }
    }
    for (rows, cols) in [(1u64, 2u32), (7, 3), (33, 10)] {
        let x = random(720 + rows, (rows * cols as u64) as usize, -80.0, 80.0);
        let y = poisoned(ctx, rows * cols as u64);
        let got = run(&[k.softmax_forward(rows, cols, &input(ctx, &x), &y)], &y);
        let want: Vec<f64> = x.chunks(cols as usize).flat_map(cpu::softmax).collect();
        assert_close(&format!("softmax_forward {rows}x{cols}"), &got, &want, TOL);
    }
}

/// GELU's exact form needs erf, which WGSL lacks: common.wgsl's erfc (a Chebyshev fit with a
/// fractional error under 1.2e-7) against libm's, element by element over a fine grid of
/// [-10, 10]. Relative error of x * Phi(x) (kept in the negative tail, where 1 + erf(x) would
/// cancel) and absolute error of its derivative Phi(x) + x phi(x) (which crosses zero).
#[test]
fn gelu_erf_approximation_is_float32_accurate() {
    let (ctx, k) = gpu();
    let z: Vec<f32> = (0..=20_000).map(|i| -10.0 + i as f32 * 1e-3).collect();
    let len = z.len() as u64;
    let (zv, y) = (input(ctx, &z), poisoned(ctx, len));
    let got = run(&[k.activation_forward(Activation::Gelu, len, &zv, &y)], &y);
    let rel: Vec<(f32, f64)> = got.iter().zip(&z).map(|(&g, &v)| {
        let want = cpu::activate(Activation::Gelu, v as f64);
        (v, if want == 0.0 { (g as f64).abs() } else { (g as f64 - want).abs() / want.abs() })
    }).collect();
    // Past |x| = 3 the f32 rounding of exp's argument (-x^2 / 2, up to -50) dominates.
    let forward = rel.iter().map(|r| r.1).fold(0.0, f64::max);
    let core = rel.iter().filter(|r| r.0.abs() <= 3.0).map(|r| r.1).fold(0.0, f64::max);
    let grad = input(ctx, &vec![1.0; z.len()]);
    let got = run(&[k.activation_backward(Activation::Gelu, &zv, &grad)], &grad);
    let backward = got.iter().zip(&z).map(|(&g, &v)| (g as f64 - cpu::activation_grad(Activation::Gelu, v as f64)).abs()).fold(0.0, f64::max);
    eprintln!("gelu over [-10, 10]: forward max relative error {forward:.2e} ({core:.2e} within [-3, 3]), derivative max absolute error {backward:.2e}");
    assert!(core < 2e-6 && forward < 2e-5, "gelu forward: max relative error {forward:.2e} ({core:.2e} within [-3, 3])");
    assert!(backward < 1e-6, "gelu derivative: max absolute error {backward:.2e}");
}

/// The dropout mask's hash, replicated on the CPU (lowbias32).
fn hash(v: u32) -> u32 {
    let mut h = v;
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846ca68b);
    h ^ (h >> 16)
}

#[test]
fn dropout_mask_matches_reference_and_is_inverted() {
    let (ctx, k) = gpu();
    let (len, rate, seed) = (10_007u64, 0.3f32, 42u32);
    let x = random(800, len as usize, 0.5, 1.5);
    let xv = input(ctx, &x);
    // The mask follows the run's step `seq`, not Adam's `t` (which restarts on unfreezing).
    for seq in [1u32, 2, 7] {
        let step = ctx.uniform("step", &StepParams { seq, ..StepParams::adam(1e-3, 1, 1) });
        let y = poisoned(ctx, len);
        let got = run(&[k.dropout_mask(len, rate, seed, &step, &xv, &y)], &y);
        let want: Vec<f64> = (0..len as u32)
            .map(|i| {
                let u = (hash(i ^ hash(seed ^ hash(seq))) >> 8) as f32 / 16_777_216.0;
                if u >= rate { x[i as usize] as f64 / (1.0 - rate as f64) } else { 0.0 }
            })
            .collect();
        assert_close(&format!("dropout_mask seq={seq}"), &got, &want, TOL);
        let dropped = got.iter().filter(|&&v| v == 0.0).count() as f64 / len as f64;
        assert!((dropped - rate as f64).abs() < 0.02, "dropped fraction {dropped} for rate {rate}");
        let mean_ratio: f64 = got.iter().zip(&x).map(|(&g, &v)| g as f64 / v as f64).sum::<f64>() / len as f64;
        assert!((mean_ratio - 1.0).abs() < 0.03, "inverted dropout keeps the mean: ratio {mean_ratio}");
    }
    let mut eval = StepParams::adam(1e-3, 1, 1);
    eval.training = 0;
    let step = ctx.uniform("step", &eval);
    let y = poisoned(ctx, len);
    let got = run(&[k.dropout_mask(len, rate, seed, &step, &xv, &y)], &y);
    assert_eq!(got, x, "dropout is the identity outside training");
}

fn loss_case(seed: u64, capacity: u32, rows: u32, classes: u32, smoothing: f32) {
    let (ctx, k) = gpu();
    let n = (capacity * classes) as usize;
    let mut logits = random(seed, n, -8.0, 8.0);
    // Saturated logits: the loss must stay finite and exact for |z| > 50.
    logits[0] = 75.0;
    if n > 1 {
        logits[1] = -90.0;
    }
    let mut rng_labels = random(seed + 1, capacity as usize, 0.0, classes.max(2) as f32);
    let labels: Vec<u32> = rng_labels.iter_mut().map(|v| *v as u32).collect();
    let step = ctx.uniform("step", &StepParams::adam(1e-3, 1, rows));
    let grad = poisoned(ctx, n as u64);
    let metrics = input(ctx, &[0.0f32; 3]);
    let labels_view = ctx.upload("labels", &labels).unwrap();
    let d = k.loss(capacity, classes, smoothing, &step, &input(ctx, &logits), &labels_view, &grad, &metrics);
    let got_grad = run(&[d.clone(), d], &grad);
    let s = smoothing as f64;
    let (loss, hits, want_grad) = if classes == 1 {
        cpu::sigmoid_bce(&logits, &labels, rows as usize, s)
    } else {
        cpu::softmax_ce(&logits, &labels, rows as usize, classes as usize, s)
    };
    let name = format!("{} capacity {capacity} rows {rows} classes {classes} smoothing {smoothing}", if classes == 1 { "sigmoid_bce_loss" } else { "softmax_ce_loss" });
    assert_close(&format!("{name} gradient"), &got_grad, &want_grad, TOL);
    // Run twice: the metrics accumulate.
    let m = ctx.read::<f32>(&metrics).unwrap();
    assert_close(&format!("{name} loss sum"), &m[..1], &[2.0 * loss], TOL);
    assert_eq!(m[1] as f64, 2.0 * hits, "{name} correct count");
    assert_eq!(m[2], 2.0 * rows as f32, "{name} row count");
}

/// Both losses, plain and with label smoothing (binary y (1 - s) + s / 2, categorical
/// onehot (1 - s) + s / classes).
#[test]
fn losses_match_reference() {
    for smoothing in [0.0, 0.1, 0.35] {
        loss_case(850, 1, 1, 1, smoothing);
        loss_case(851, 33, 33, 1, smoothing);
        loss_case(852, 300, 257, 1, smoothing);
        loss_case(853, 5, 3, 10, smoothing);
        loss_case(854, 300, 299, 3, smoothing);
    }
}

/// Odd parameter counts (a partial last quad and chunk) with per-chunk weight decay (0 in some
/// chunks: excluded tensors) and clip factors (1 in some): (w, g, decay, scale, per-element wd and
/// clipped gradient for the references).
struct UpdateCase {
    w: Vec<f32>,
    g: Vec<f32>,
    decay: View,
    scale: View,
    wd: Vec<f64>,
    clipped: Vec<f64>,
}

fn update_case(seed: u64, len: usize, weight_decay: f32) -> UpdateCase {
    let (ctx, _) = gpu();
    // Weights of ~1e-2: the f32 rounding of w must be small beside the ~1e-3 steps and the
    // ~1e-7 decay (lr * wd * w) must still show in f64.
    let (w, g) = (random(seed, len, -1e-2, 1e-2), random(seed + 1, len, -1.0, 1.0));
    let chunks = len.div_ceil(CHUNK as usize);
    let decay: Vec<f32> = (0..chunks).map(|c| if c % 3 == 1 { 0.0 } else { weight_decay }).collect();
    let scale: Vec<f32> = random(seed + 2, chunks, 0.25, 1.0).into_iter().enumerate().map(|(c, s)| if c % 2 == 0 { 1.0 } else { s }).collect();
    let chunk = |i: usize| i / CHUNK as usize;
    let wd = (0..len).map(|i| decay[chunk(i)] as f64).collect();
    let clipped = (0..len).map(|i| g[i] as f64 * scale[chunk(i)] as f64).collect();
    UpdateCase { decay: input(ctx, &decay), scale: input(ctx, &scale), w, g, wd, clipped }
}

/// Compares the step taken, not the weights: a small step hides in a large weight.
fn assert_step(what: &str, got: &[f32], w: &[f32], want: &[f64]) {
    let got_step: Vec<f32> = got.iter().zip(w).map(|(a, b)| a - b).collect();
    let want_step: Vec<f64> = want.iter().zip(w).map(|(a, &b)| a - b as f64).collect();
    assert_close(&format!("{what} step"), &got_step, &want_step, TOL);
}

/// Quads: the zero padding after the last parameter must stay zero.
fn assert_padding_kept(what: &str, w: &View, len: usize) {
    let padded: Vec<f32> = gpu().0.read(&View::whole(&w.buffer)).unwrap();
    assert!(padded[len..].iter().all(|&p| p == 0.0), "{what}: padding changed");
}

/// Adam (decay 0 everywhere, clip factors 1: exactly the plain Keras step) and AdamW (decay in
/// most chunks, clip factors below 1 in some).
#[test]
fn adam_update_matches_reference() {
    let (ctx, k) = gpu();
    for (i, &(len, t, weight_decay)) in [(1usize, 1u32, 0.0), (1001, 1, 0.0), (70_001, 7, 0.0), (1, 1, 0.004), (1001, 3, 0.004), (70_001, 7, 0.1)].iter().enumerate() {
        let c = update_case(950 + 10 * i as u64, len, weight_decay);
        let (m, v) = (random(960 + i as u64, len, -0.1, 0.1), random(970 + i as u64, len, 0.0, 0.01));
        let (wv, mv, vv) = (input(ctx, &c.w), input(ctx, &m), input(ctx, &v));
        let plain = weight_decay == 0.0;
        let (decay, scale) = if plain { (input(ctx, &vec![0.0; len.div_ceil(CHUNK as usize)]), input(ctx, &vec![1.0; len.div_ceil(CHUNK as usize)])) } else { (c.decay.clone(), c.scale.clone()) };
        let step = ctx.uniform("step", &StepParams::adam(1e-3, t, 1));
        let got_w = run(&[k.adam_update(&step, &wv, &input(ctx, &c.g), &mv, &vv, &Tables { decay: &decay, scale: &scale })], &wv);
        let g: Vec<f64> = if plain { c.g.iter().map(|&g| g as f64).collect() } else { c.clipped };
        let wd = if plain { vec![0.0; len] } else { c.wd };
        let (want_w, want_m, want_v) = cpu::adam(&c.w, &g, &m, &v, 1e-3, &wd, t);
        let what = format!("adam_update {len} t={t} wd={weight_decay}");
        assert_step(&what, &got_w, &c.w, &want_w);
        assert_close(&format!("{what} m"), &ctx.read(&mv).unwrap(), &want_m, TOL);
        assert_close(&format!("{what} v"), &ctx.read(&vv).unwrap(), &want_v, TOL);
        assert_padding_kept(&what, &wv, len);
    }
}

/// SGD with Nesterov, plain momentum and none, with decay and clip factors.
#[test]
fn sgd_update_matches_reference() {
    let (ctx, k) = gpu();
    for (i, &(len, momentum, nesterov)) in [(1usize, 0.9f32, true), (1001, 0.9, false), (70_001, 0.0, false), (4097, 0.5, true)].iter().enumerate() {
        // Large decays, so that lr * wd * w (w ~1e-2) shows beside the ~0.05 gradient step.
        let c = update_case(1950 + 10 * i as u64, len, [0.05, 0.2, 1.0, 2.0][i]);
        let m = random(1960 + i as u64, len, -0.01, 0.01);
        let (wv, mv) = (input(ctx, &c.w), input(ctx, &m));
        let lr = 0.05;
        let step = ctx.uniform("step", &StepParams::adam(lr, 1, 1));
        let got_w = run(&[k.sgd_update(&step, momentum, nesterov, &wv, &input(ctx, &c.g), &mv, &Tables { decay: &c.decay, scale: &c.scale })], &wv);
        let (want_w, want_m) = cpu::sgd(&c.w, &c.clipped, &m, lr as f64, momentum as f64, nesterov, &c.wd);
        let what = format!("sgd_update {len} momentum {momentum} nesterov {nesterov}");
        assert_step(&what, &got_w, &c.w, &want_w);
        assert_close(&format!("{what} m"), &ctx.read(&mv).unwrap(), &want_m, TOL);
        assert_padding_kept(&what, &wv, len);
    }
}

/// grad_norm_partials then clip_by_norm (per tensor) or clip_by_global_norm, over tensors of odd
/// lengths laid out as a network lays them out (each at a multiple of CHUNK, zero padding
/// between): the per-chunk scales equal Keras' factors, exactly 1 for tensors within the norm.
#[test]
fn clip_by_norm_matches_reference() {
    let (ctx, k) = gpu();
    let lens = [1usize, 63, 65, 1000, 70_001, 7];
    let mut offsets = Vec::new();
    let mut total = 0;
    for &len in &lens {
        offsets.push(total);
        total += len.next_multiple_of(CHUNK as usize);
    }
    let mut g = vec![0f32; total];
    let mut squares = Vec::new();
    for (i, (&len, &offset)) in lens.iter().zip(&offsets).enumerate() {
        // Spread the norms: some tensors far inside the limit, some far outside.
        let amp = [0.01f32, 1.0, 0.02, 0.5, 0.003, 2.0][i];
        g[offset..offset + len].copy_from_slice(&random(3000 + i as u64, len, -amp, amp));
        squares.push(g[offset..offset + len].iter().map(|&x| (x as f64).powi(2)).sum::<f64>());
    }
    let chunks = total / CHUNK as usize;
    let ranges: Vec<u32> = lens.iter().zip(&offsets).flat_map(|(&len, &o)| [(o / CHUNK as usize) as u32, (o + len).div_ceil(CHUNK as usize) as u32]).collect();
    let gv = input(ctx, &g);
    let per_chunk = |scales: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; chunks];
        for (t, s) in scales.iter().enumerate() {
            out[ranges[2 * t] as usize..ranges[2 * t + 1] as usize].fill(*s);
        }
        out
    };
    let norm = 1.0;
    let (partial, scale) = (poisoned(ctx, chunks as u64), poisoned(ctx, chunks as u64));
    let got = run(&[k.grad_norm_partials(&gv, &partial), k.clip_by_norm(norm, &partial, &ctx.upload("ranges", &ranges).unwrap(), &scale)], &scale);
    let want: Vec<f64> = squares.iter().map(|&s| cpu::clip_scale(s, norm as f64)).collect();
    assert!(want.contains(&1.0) && want.iter().any(|&s| s < 0.5), "the case clips some tensors and not others: {want:?}");
    assert_close("clip_by_norm scales", &got, &per_chunk(&want), TOL);
    for t in (0..want.len()).filter(|&t| want[t] == 1.0) {
        assert!(got[ranges[2 * t] as usize..ranges[2 * t + 1] as usize].iter().all(|&x| x == 1.0), "tensor {t} within the norm keeps its gradient exactly");
    }

    let global: f64 = squares.iter().sum();
    for norm in [global.sqrt() as f32 / 3.0, global.sqrt() as f32 * 2.0] {
        let (partial, scale) = (poisoned(ctx, chunks as u64), poisoned(ctx, chunks as u64));
        let got = run(&[k.grad_norm_partials(&gv, &partial), k.clip_by_global_norm(norm, &partial, &scale)], &scale);
        let want = cpu::clip_scale(global, norm as f64);
        assert_close(&format!("clip_by_global_norm scales, norm {norm}"), &got, &vec![want; chunks], TOL);
        if want == 1.0 {
            assert!(got.iter().all(|&x| x == 1.0), "within the global norm the gradients stay exact");
        }
    }
}
