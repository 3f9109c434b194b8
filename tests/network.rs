//! Whole-network checks of the GPU path: a finite-difference gradient check of a small
//! conv-pool-conv-pool-flatten-dense-dense network, and one training step of the reference
//! Model 2 against PyTorch's float64 numbers (../shared/reference).

mod common;

use std::path::PathBuf;

use common::{gpu, kernel_paths, reference as cpu};
use gpu_cnn::gpu::Kernels;
use gpu_cnn::layers::activation::ActivationLayer;
use gpu_cnn::layers::add::Add;
use gpu_cnn::layers::avgpool2d::AvgPool2d;
use gpu_cnn::layers::batchnorm::BatchNorm;
use gpu_cnn::layers::conv2d::Conv2d;
use gpu_cnn::layers::dense::Dense;
use gpu_cnn::layers::depthwise_conv2d::DepthwiseConv2d;
use gpu_cnn::layers::separable_conv2d::SeparableConv2d;
use gpu_cnn::layers::flatten::Flatten;
use gpu_cnn::layers::globalavgpool2d::GlobalAvgPool2d;
use gpu_cnn::layers::globalmaxpool2d::GlobalMaxPool2d;
use gpu_cnn::layers::maxpool2d::MaxPool2d;
use gpu_cnn::layers::{Init, Pair};
use gpu_cnn::layers::{Activation, LayerKind, Padding};
use gpu_cnn::model::ModelSpec;
use gpu_cnn::model::ParamInfo;
use gpu_cnn::network::{Network, Pass, Training};
use gpu_cnn::optimizer::{Clip, Kind, OptimizerConfig};
use rand::{rngs::StdRng, Rng, SeedableRng};
use safetensors::SafeTensors;

/// ||a - b|| / ||b||, in f64.
fn relative_norm(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| y * y).sum();
    (diff / norm.max(1e-300)).sqrt()
}

fn small_network() -> ModelSpec {
    let conv = |filters| LayerKind::Conv2d(Conv2d::new(filters, 3, Padding::Same, Activation::Relu));
    let pool = LayerKind::MaxPool2d(MaxPool2d::default());
    ModelSpec::new([9, 10, 3], vec![
        (None, conv(4)),
        (None, pool.clone()),
        (None, conv(5)),
        (None, pool),
        (None, LayerKind::Flatten(Flatten {})),
        (None, LayerKind::Dense(Dense::new(6, Activation::Relu))),
        (None, LayerKind::Dense(Dense::new(1, Activation::Sigmoid))),
    ])
    .unwrap()
}

/// BatchNorm after convs (fused ReLU, and a separate activation layer) and after a dense layer,
/// an overlapping average pool and global average pooling; the layers before a BatchNorm have no
/// bias (its gradient would be ~0, which a relative check cannot judge).
fn batchnorm_network() -> ModelSpec {
    let conv = |filters| LayerKind::Conv2d(Conv2d { use_bias: false, ..Conv2d::new(filters, 3, Padding::Same, Activation::Linear) });
    ModelSpec::new([9, 10, 3], vec![
        (None, conv(5)),
        (None, LayerKind::BatchNorm(BatchNorm { activation: Activation::Relu, ..Default::default() })),
        (None, LayerKind::AvgPool2d(AvgPool2d { pool: Pair([3, 2]), stride: Some(Pair([2, 1])) })),
        (None, conv(6)),
        (None, LayerKind::BatchNorm(BatchNorm::default())),
        (None, LayerKind::Activation(ActivationLayer { activation: Activation::Relu })),
        (None, LayerKind::GlobalAvgPool2d(GlobalAvgPool2d {})),
        (None, LayerKind::Dense(Dense { use_bias: false, ..Dense::new(5, Activation::Linear) })),
        (None, LayerKind::BatchNorm(BatchNorm { activation: Activation::Relu, ..Default::default() })),
        (None, LayerKind::Dense(Dense::new(1, Activation::Sigmoid))),
    ])
    .unwrap()
}

/// Depthwise convs (multiplier 2 with bias and ReLU; a 2x2 stride-2 'valid' one with neither)
/// around a separable conv (stride 2 'same', multiplier 2, bias and ReLU) whose depthwise output
/// is a buffer of its own.
fn depthwise_network() -> ModelSpec {
    ModelSpec::new([9, 10, 3], vec![
        (None, LayerKind::DepthwiseConv2d(DepthwiseConv2d { depth_multiplier: 2, ..DepthwiseConv2d::new(3, Padding::Same, Activation::Relu) })),
        (None, LayerKind::SeparableConv2d(SeparableConv2d { stride: 2, depth_multiplier: 2, ..SeparableConv2d::new(5, 3, Padding::Same, Activation::Relu) })),
        (None, LayerKind::DepthwiseConv2d(DepthwiseConv2d { stride: 2, use_bias: false, ..DepthwiseConv2d::new(2, Padding::Valid, Activation::Linear) })),
        (None, LayerKind::Flatten(Flatten {})),
        (None, LayerKind::Dense(Dense::new(1, Activation::Sigmoid))),
    ])
    .unwrap()
}

/// Every hidden activation through the whole network (with the next one), in each way it is
/// applied: elu and tanh fused into conv stores, elu into a batchnorm; leaky_relu fused into a
/// dense store, silu and gelu as dense layers' own passes; global max pooling between. (No
/// saturating sigmoid before the pooling: the gradients that reach the convs would shrink to
/// where the f32 loss's rounding over h is a few percent of them.)
fn activations_network() -> ModelSpec {
    let conv = |filters, stride, activation, use_bias| LayerKind::Conv2d(Conv2d { stride, use_bias, ..Conv2d::new(filters, 3, Padding::Same, activation) });
    ModelSpec::new([9, 10, 3], vec![
        (None, conv(4, 1, Activation::Elu, true)),
        (None, conv(5, 2, Activation::Tanh, false)),
        (None, LayerKind::BatchNorm(BatchNorm { activation: Activation::Elu, ..Default::default() })),
        (None, LayerKind::GlobalMaxPool2d(GlobalMaxPool2d {})),
        (None, LayerKind::Dense(Dense::new(6, Activation::LeakyRelu))),
        (None, LayerKind::Dense(Dense::new(5, Activation::Gelu))),
        (None, LayerKind::Dense(Dense::new(4, Activation::Silu))),
        (None, LayerKind::Dense(Dense::new(1, Activation::Sigmoid))),
    ])
    .unwrap()
}

/// silu and gelu on convs (their pre-activation buffers) and fused into batchnorms, the gelu one
/// left unstored for the max pool after it (normalised and activated on load); elu, sigmoid,
/// gelu, silu and tanh as activation layers; global max pooling into a dense tanh.
fn activations_network_2() -> ModelSpec {
    let conv = |filters, activation, use_bias| LayerKind::Conv2d(Conv2d { use_bias, ..Conv2d::new(filters, 3, Padding::Same, activation) });
    let layer = |activation| LayerKind::Activation(ActivationLayer { activation });
    ModelSpec::new([9, 10, 3], vec![
        (None, conv(4, Activation::Silu, true)),
        (None, layer(Activation::Elu)),
        (None, conv(5, Activation::Gelu, false)),
        (None, LayerKind::BatchNorm(BatchNorm { activation: Activation::Silu, ..Default::default() })),
        (None, layer(Activation::Sigmoid)),
        (None, conv(6, Activation::Linear, false)),
        (None, LayerKind::BatchNorm(BatchNorm { activation: Activation::Gelu, ..Default::default() })),
        (None, LayerKind::MaxPool2d(MaxPool2d::default())),
        (None, layer(Activation::Gelu)),
        (None, layer(Activation::Silu)),
        (None, layer(Activation::Tanh)),
        (None, LayerKind::GlobalMaxPool2d(GlobalMaxPool2d {})),
        (None, LayerKind::Dense(Dense::new(4, Activation::Tanh))),
        (None, LayerKind::Dense(Dense::new(1, Activation::Sigmoid))),
    ])
    .unwrap()
}

/// Rounding noise of a one-sided slope: the f32 loss (~0.7, summed over the batch) is off by up
/// to ~1e-7, divided by h = 1e-3.
const SLOPE_NOISE: f64 = 2e-4;

/// Central differences of the GPU loss (training mode: batch statistics) against the GPU
/// backward pass, for every trainable parameter.
/// With h = 1e-3, f32 rounding of the loss (~6e-8) costs ~3e-5 per gradient element. Where the
/// two one-sided slopes disagree by more than 5% (plus their rounding noise), h straddles a
/// ReLU or max-pool kink and the
/// central difference means nothing there: such elements are counted (at most 5% allowed) and
/// left out. Smaller kinks still bend single elements by a few percent, so the tolerance is a
/// relative norm error of 1e-2 over each tensor's remaining elements: far below the O(1) error
/// of a wrong index or transpose. (The PyTorch float64 step below pins the same gradients to
/// ~1e-6.)
#[test]
fn finite_differences_match_the_gpu_gradients() {
    check_finite_differences(&small_network(), 3);
}

#[test]
fn finite_differences_match_the_gpu_gradients_with_batchnorm_and_pooling() {
    check_finite_differences(&batchnorm_network(), 4);
}

#[test]
fn finite_differences_match_the_gpu_gradients_through_depthwise_and_separable_convs() {
    check_finite_differences(&depthwise_network(), 3);
}

/// A frozen separable conv between trainable layers passes its gradient down through both
/// halves without computing its own.
#[test]
fn finite_differences_match_the_gpu_gradients_through_a_frozen_separable_conv() {
    let spec = depthwise_network().freeze(&["separable_conv2d_1".into()]).unwrap();
    check_finite_differences(&spec, 3);
}

#[test]
fn finite_differences_match_the_gpu_gradients_through_every_activation_and_global_max_pooling() {
    check_finite_differences(&activations_network(), 4);
    let spec = activations_network_2();
    assert_eq!(spec.unstored().iter().filter(|u| u.is_some()).count(), 1, "the gelu batchnorm leaves its output to the max pool");
    check_finite_differences(&spec, 4);
}

/// A frozen BatchNorm between trainable layers runs in inference mode and passes gradients down
/// through its fixed normalisation (moving statistics away from 0 and 1 so that they count).
#[test]
fn finite_differences_match_the_gpu_gradients_through_a_frozen_batchnorm() {
    let spec = batchnorm_network().freeze(&["batch_normalization_2".into()]).unwrap();
    check_finite_differences(&spec, 4);
}

/// Skip connections on an odd 9x11 input: an identity block (the block's input read by a conv
/// and by the add, whose gradient the conv adds into), a projection block (one value read by two
/// convs, one of them strided 1x1, its add fusing an ELU) whose output is read by an activation
/// layer and a batchnorm, neither of which can add into a gradient (their shares are staged),
/// joined by a third add, which fuses nothing.
fn residual_network() -> ModelSpec {
    let conv = |filters, kernel, stride| LayerKind::Conv2d(Conv2d { use_bias: false, stride, ..Conv2d::new(filters, kernel, Padding::Same, Activation::Linear) });
    let bn = |activation| LayerKind::BatchNorm(BatchNorm { activation, ..Default::default() });
    let add = |activation| LayerKind::Add(Add { activation });
    let layer = |kind, inputs: &[&str]| (None, kind, inputs.iter().map(|s| s.to_string()).collect());
    ModelSpec::connected([9, 11, 3], vec![
        layer(conv(5, 3, 1), &[]),
        layer(bn(Activation::Relu), &[]),
        layer(conv(5, 3, 1), &[]),
        layer(bn(Activation::Linear), &[]),
        layer(add(Activation::Relu), &["batch_normalization_2", "batch_normalization_1"]),
        layer(conv(6, 3, 2), &[]),
        layer(bn(Activation::Linear), &[]),
        layer(conv(6, 1, 2), &["add_1"]),
        layer(bn(Activation::Linear), &[]),
        layer(add(Activation::Elu), &["batch_normalization_3", "batch_normalization_4"]),
        layer(LayerKind::Activation(ActivationLayer { activation: Activation::Relu }), &[]),
        layer(bn(Activation::Linear), &["add_2"]),
        layer(add(Activation::Linear), &["activation_1", "batch_normalization_5"]),
        layer(LayerKind::GlobalAvgPool2d(GlobalAvgPool2d {}), &[]),
        layer(LayerKind::Dense(Dense::new(1, Activation::Sigmoid)), &[]),
    ])
    .unwrap()
}

#[test]
fn finite_differences_match_the_gpu_gradients_through_skip_connections() {
    check_finite_differences(&residual_network(), 3);
}

/// Depthwise and separable convs in residual blocks (MobileNet's): the first block's input is read
/// by a depthwise conv and by the add; the second block's by a depthwise conv (multiplier 2) and a
/// separable conv, whose outputs the add sums. Each of those convs adds its input gradient into
/// what the other reader wrote, or writes it first. Linear (the fused ReLUs are checked in the
/// networks above) with a flatten head: ReLU kinks where the paths meet, or global pooling's
/// smaller gradients, bring f32 noise up to the 1e-2 the check allows; so it checks to
/// 2e-4 - 5e-3.
fn depthwise_residual_network() -> ModelSpec {
    let depthwise = |depth_multiplier, activation| LayerKind::DepthwiseConv2d(DepthwiseConv2d { depth_multiplier, ..DepthwiseConv2d::new(3, Padding::Same, activation) });
    let separable = |filters, depth_multiplier| LayerKind::SeparableConv2d(SeparableConv2d { depth_multiplier, ..SeparableConv2d::new(filters, 3, Padding::Same, Activation::Linear) });
    let add = |activation| LayerKind::Add(Add { activation });
    let layer = |kind, inputs: &[&str]| (None, kind, inputs.iter().map(|s| s.to_string()).collect());
    ModelSpec::connected([9, 11, 3], vec![
        layer(LayerKind::Conv2d(Conv2d::new(6, 3, Padding::Same, Activation::Linear)), &[]),
        layer(depthwise(1, Activation::Linear), &[]),
        layer(separable(6, 2), &[]),
        layer(add(Activation::Linear), &["separable_conv2d_1", "conv2d_1"]),
        layer(depthwise(2, Activation::Linear), &["add_1"]),
        layer(separable(12, 1), &["add_1"]),
        layer(add(Activation::Linear), &["depthwise_conv2d_2", "separable_conv2d_2"]),
        layer(LayerKind::Flatten(Flatten {}), &[]),
        layer(LayerKind::Dense(Dense::new(1, Activation::Sigmoid)), &[]),
    ])
    .unwrap()
}

#[test]
fn finite_differences_match_the_gpu_gradients_through_depthwise_and_separable_residual_blocks() {
    check_finite_differences(&depthwise_residual_network(), 3);
}

fn check_finite_differences(spec: &ModelSpec, batch: u32) {
    let (ctx, kernels) = gpu();
    let mut net = Network::new(ctx, kernels, spec, batch, 7).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let images: Vec<f32> = (0..batch as usize * spec.input.iter().product::<u32>() as usize).map(|_| rng.random_range(0.0..1.0)).collect();
    let labels: Vec<u32> = (0..batch).map(|i| (i + 1) % 2).collect();
    net.upload(ctx, &images, &labels).unwrap();
    // Biases, betas and gammas away from 0 and 1 so that every gradient is exercised.
    for slot in net.slots.clone().iter().filter(|s| !matches!(s.info.init, Init::Glorot { .. })) {
        let base = if slot.info.init == Init::Ones { 1.0 } else { 0.0 };
        let spread = if slot.info.trainable { 0.1 } else { 0.5 };
        let b: Vec<f32> = (0..slot.info.len()).map(|_| base + rng.random_range(-spread..spread)).collect();
        net.write_param(ctx, &slot.info.name, &b).unwrap();
    }
    let loss = |net: &mut Network| {
        net.reset_metrics(ctx);
        net.run(ctx, Pass::Gradients, 0.0);
        net.read_metrics(ctx).unwrap().loss()
    };
    let base = loss(&mut net);
    let h = 1e-3f32;
    let (mut checked, mut kinks) = (0, 0);
    // Read first: every loss evaluation below runs a gradient pass.
    let trainable: Vec<_> = net.slots.iter().filter(|s| s.info.trainable).map(|s| s.info.name.clone()).collect();
    let analytic: Vec<Vec<f32>> = trainable.iter().map(|n| net.read_grad(ctx, n).unwrap()).collect();
    for (name, analytic) in trainable.iter().zip(analytic) {
        let mut w = net.read_param(ctx, name).unwrap();
        let (mut got, mut want) = (Vec::new(), Vec::new());
        for i in 0..w.len() {
            let orig = w[i];
            w[i] = orig + h;
            net.write_param(ctx, name, &w).unwrap();
            let up = loss(&mut net);
            w[i] = orig - h;
            net.write_param(ctx, name, &w).unwrap();
            let down = loss(&mut net);
            w[i] = orig;
            let (right, left) = ((up - base) / h as f64, (base - down) / h as f64);
            if (right - left).abs() > 0.05 * right.abs().max(left.abs()) + SLOPE_NOISE {
                kinks += 1;
                continue;
            }
            got.push(analytic[i]);
            want.push((up - down) / (2.0 * h as f64));
        }
        net.write_param(ctx, name, &w).unwrap();
        checked += got.len();
        let err = relative_norm(&got, &want);
        eprintln!("{name}: {} of {} elements checked, relative error {err:.2e}", got.len(), w.len());
        assert!(err < 1e-2, "{name}: finite differences disagree with the GPU gradient: relative norm error {err:.3e}");
    }
    eprintln!("{checked} parameters checked, {kinks} at kinks left out");
    assert!(kinks * 20 <= checked + kinks, "{kinks} kinks out of {}: too many to trust the check", checked + kinks);
}

struct Reference {
    bytes: Vec<u8>,
}

impl Reference {
    fn load(file: &str) -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference").join(file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (the reference steps live in ../shared)", path.display()));
        Self { bytes }
    }
    fn has(&self, name: &str) -> bool {
        SafeTensors::deserialize(&self.bytes).unwrap().tensor(name).is_ok()
    }
    fn shape(&self, name: &str) -> Vec<u32> {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}")).shape().iter().map(|&d| d as u32).collect()
    }
    fn f32(&self, name: &str) -> Vec<f32> {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        match t.dtype() {
            safetensors::Dtype::F32 => bytemuck::pod_collect_to_vec(t.data()),
            safetensors::Dtype::I64 => bytemuck::pod_collect_to_vec::<u8, i64>(t.data()).into_iter().map(|v| v as f32).collect(),
            other => panic!("{name}: unexpected dtype {other:?}"),
        }
    }
    fn f64(&self, name: &str) -> Vec<f64> {
        self.f32(name).into_iter().map(f64::from).collect()
    }
    /// (batch, [h, w, c]) of the `input` batch.
    fn input(&self) -> (u32, [u32; 3]) {
        let s = self.shape("input");
        (s[0], [s[1], s[2], s[3]])
    }
    /// A 'same', stride-1 conv shaped like the file's `<name>.kernel`, with a bias if the file has one.
    fn conv(&self, name: &str, activation: Activation) -> LayerKind {
        let k = self.shape(&format!("{name}.kernel"));
        assert_eq!(k[0], k[1], "{name}: square kernels");
        LayerKind::Conv2d(Conv2d { use_bias: self.has(&format!("{name}.bias")), ..Conv2d::new(k[3], k[0], Padding::Same, activation) })
    }
    /// A dense layer shaped like the file's `<name>.kernel`.
    fn dense(&self, name: &str, activation: Activation) -> LayerKind {
        LayerKind::Dense(Dense::new(self.shape(&format!("{name}.kernel"))[1], activation))
    }
}

/// `||a - b|| <= rel ||b|| + 1e-6 sqrt(n)`: relative, with a floor for tensors whose reference is
/// ~0 (a bias before a BatchNorm has a gradient of ~1e-16 in float64 and rounding noise in f32).
fn check(what: &str, got: &[f32], want: &[f64], rel: f64) {
    let err = relative_norm(got, want);
    let diff: f64 = got.iter().zip(want).map(|(&a, &b)| (a as f64 - b).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = want.iter().map(|b| b * b).sum::<f64>().sqrt();
    eprintln!("{what}: relative error {err:.2e}");
    assert!(diff <= rel * norm + 1e-6 * (want.len() as f64).sqrt(), "{what}: relative norm error {err:.3e} (|diff| {diff:.3e})");
}

/// Forward, loss, every gradient and three Adam steps of Model 2 (batch and shapes from the
/// file) agree with PyTorch in float64, through both kernel paths (on lavapipe the default one
/// runs the subgroup conv kernels). Tolerances (relative norm): logits and loss 1e-5, gradients
/// 1e-4 (the dense kernel's gradient sums 8192-long products in f32), weight changes after Adam
/// 1e-3 (Adam divides by sqrt(v), amplifying gradient rounding where v is tiny).
#[test]
fn model2_step_matches_pytorch_float64() {
    let r = Reference::load("model2_step_b4.safetensors");
    let (batch, input) = r.input();
    let conv = |name| (None, r.conv(name, Activation::Relu));
    let pool = || (None, LayerKind::MaxPool2d(MaxPool2d::default()));
    let spec = ModelSpec::new(input, vec![
        conv("conv2d_1"),
        pool(),
        conv("conv2d_2"),
        pool(),
        (None, LayerKind::Flatten(Flatten {})),
        (None, r.dense("dense_1", Activation::Relu)),
        (None, r.dense("dense_2", Activation::Sigmoid)),
    ])
    .unwrap();
    assert_eq!(spec, ModelSpec::model2(input[0]), "the file holds the write-up's Model 2");
    for (path, kernels) in kernel_paths() {
        eprintln!("kernel path: {path}");
        check_reference_step(kernels, &r, &spec, batch, &Steps::adam());
    }
}

/// The BatchNorm + global-average-pooling model of ../shared/reference (batch and shapes from the
/// file): training-mode logits and loss, every gradient, every weight and moving statistic after
/// 1 and 3 Adam steps, and the inference-mode logits after them (1e-5, as the training-mode
/// ones), same tolerances as Model 2's. The first BatchNorm fuses its ReLU and feeds a max pool
/// (which normalises on load and takes its gradient sums), the second is followed by an
/// activation layer, so both forms are checked.
#[test]
fn batchnorm_gap_step_matches_pytorch_float64() {
    let r = Reference::load("bn_gap_step_b6.safetensors");
    let (batch, spec) = (r.input().0, bn_gap_spec(&r));
    for (path, kernels) in kernel_paths() {
        eprintln!("kernel path: {path}");
        check_reference_step(kernels, &r, &spec, batch, &Steps::adam());
    }
}

/// The residual network of resnet_step_b5.safetensors (batch, input, filters, kernels and
/// classes from the file; strides and connections as its README draws them): a projection
/// block (stride 2, 1x1 conv shortcut) and an identity block, a 3-class softmax with label
/// smoothing 0.1, three steps each of SGD (Nesterov, decoupled weight decay on every tensor) and
/// AdamW, through both kernel paths. Tolerances as Model 2's: logits, loss and inference logits
/// 1e-5, gradients 1e-4, weight changes 1e-3 (relative norm).
#[test]
fn resnet_steps_match_pytorch_float64_with_sgd_and_adamw() {
    let r = Reference::load("resnet_step_b5.safetensors");
    let (batch, input) = r.input();
    let conv = |name: &str, stride: u32, inputs: &[&str]| {
        let LayerKind::Conv2d(c) = r.conv(name, Activation::Linear) else { unreachable!() };
        (Some(name.to_string()), LayerKind::Conv2d(Conv2d { stride, ..c }), inputs.iter().map(|s| s.to_string()).collect())
    };
    let bn = |activation| (None, LayerKind::BatchNorm(BatchNorm { activation, ..Default::default() }), Vec::new());
    let add = |inputs: [&str; 2]| (None, LayerKind::Add(Add { activation: Activation::Relu }), inputs.map(String::from).to_vec());
    let spec = ModelSpec::connected(input, vec![
        conv("conv2d_1", 1, &[]),
        bn(Activation::Relu),
        conv("conv2d_2", 2, &[]),
        bn(Activation::Relu),
        conv("conv2d_3", 1, &[]),
        bn(Activation::Linear),
        conv("conv2d_4", 2, &["batch_normalization_1"]),
        bn(Activation::Linear),
        add(["batch_normalization_3", "batch_normalization_4"]),
        conv("conv2d_5", 1, &[]),
        bn(Activation::Relu),
        conv("conv2d_6", 1, &[]),
        bn(Activation::Linear),
        add(["batch_normalization_6", "add_1"]),
        (None, LayerKind::GlobalAvgPool2d(GlobalAvgPool2d {}), Vec::new()),
        (None, r.dense("dense_1", Activation::Softmax), Vec::new()),
    ])
    .unwrap();
    let sgd = OptimizerConfig { kind: Kind::Sgd, momentum: 0.9, nesterov: true, weight_decay: 5e-4, ..Default::default() };
    let adamw = OptimizerConfig { kind: Kind::AdamW, weight_decay: 0.004, ..Default::default() };
    for (path, kernels) in kernel_paths() {
        for (optimizer, lr, prefix) in [(sgd.clone(), 0.05, "sgd."), (adamw.clone(), 1e-3, "adamw.")] {
            eprintln!("kernel path: {path}, {prefix}");
            let steps = Steps { training: Training { optimizer, label_smoothing: 0.1 }, lr, prefix };
            check_reference_step(kernels, &r, &spec, batch, &steps);
        }
    }
}

/// The model of bn_gap_step_b6.safetensors, shaped by the file.
fn bn_gap_spec(r: &Reference) -> ModelSpec {
    ModelSpec::new(r.input().1, vec![
        (None, r.conv("conv2d_1", Activation::Linear)),
        (None, LayerKind::BatchNorm(BatchNorm { activation: Activation::Relu, ..Default::default() })),
        (None, LayerKind::MaxPool2d(MaxPool2d::default())),
        (None, r.conv("conv2d_2", Activation::Linear)),
        (None, LayerKind::BatchNorm(BatchNorm::default())),
        (None, LayerKind::Activation(ActivationLayer { activation: Activation::Relu })),
        (None, LayerKind::GlobalAvgPool2d(GlobalAvgPool2d {})),
        (None, r.dense("dense_1", Activation::Sigmoid)),
    ])
    .unwrap()
}

/// One training step of SGD (momentum 0.9, Nesterov, weight decay with biases, gammas and betas
/// excluded, per-tensor `clipnorm`) and of AdamW (Keras' default decay on every tensor,
/// `global_clipnorm`) through the whole GPU path of the BatchNorm + GAP reference model, from
/// the file's initial weights and from non-zero optimizer state (so momentum and Adam's moments
/// carry, at Adam step 5): the weights after it equal Keras 3's formulas applied in float64 to
/// the file's gradients (which no optimizer changes). The clip norms come from the file's
/// gradients, so that some tensors clip and others do not. Tolerance: 1e-3 relative norm of
/// each weight's change, as the Adam steps above (the GPU's gradients agree with the file's to
/// 1e-4).
#[test]
fn sgd_and_adamw_steps_match_keras_formulas_on_the_reference_gradients() {
    let r = Reference::load("bn_gap_step_b6.safetensors");
    let (batch, spec) = (r.input().0, bn_gap_spec(&r));
    let trainable: Vec<ParamInfo> = spec.params().into_iter().filter(|p| p.trainable).collect();
    let grads: Vec<Vec<f64>> = trainable.iter().map(|p| r.f64(&format!("grad.{}", p.name))).collect();
    let squares: Vec<f64> = grads.iter().map(|g| g.iter().map(|x| x * x).sum()).collect();
    let mut sorted = squares.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2].sqrt() as f32;
    let global = squares.iter().sum::<f64>().sqrt() as f32;
    let sgd = OptimizerConfig { kind: Kind::Sgd, momentum: 0.9, nesterov: true, weight_decay: 5e-4, weight_decay_exclude: vec!["bias".into(), "gamma".into(), "beta".into()], clip: Some(Clip::Norm(median)) };
    let adamw = OptimizerConfig { kind: Kind::AdamW, weight_decay: 0.004, clip: Some(Clip::GlobalNorm(global / 2.0)), ..Default::default() };
    let (ctx, kernels) = gpu();
    let labels: Vec<u32> = r.f32("labels").into_iter().map(|v| v as u32).collect();
    for (optimizer, lr) in [(sgd, 0.05f32), (adamw, 1e-3)] {
        eprintln!("{:?}", optimizer.kind);
        let mut net = Network::training(ctx, kernels, &spec, batch, 0, &Training { optimizer: optimizer.clone(), label_smoothing: 0.0 }).unwrap();
        for s in &net.slots {
            net.write_param(ctx, &s.info.name, &r.f32(&s.info.name)).unwrap();
        }
        // Moments of each tensor's gradient scale (1e-3 for the bias whose gradient vanishes
        // before a BatchNorm), so that both they and the gradient shape the step.
        let mut rng = StdRng::seed_from_u64(21);
        let mut state = Vec::new();
        for (p, g) in trainable.iter().zip(&grads) {
            let rms = (g.iter().map(|x| x * x).sum::<f64>() / g.len() as f64).sqrt();
            let scale = if rms < 1e-12 { 1e-3 } else { rms } as f32;
            let m: Vec<f32> = (0..g.len()).map(|_| scale * rng.random_range(-1.0..1.0) * if optimizer.kind == Kind::Sgd { lr } else { 1.0 }).collect();
            let v: Vec<f32> = (0..g.len()).map(|_| scale * scale * rng.random_range(0.5..2.0)).collect();
            net.write_moments(ctx, &p.name, &m, &v).unwrap();
            state.push((m, v));
        }
        net.t = 4;
        net.upload(ctx, &r.f32("input"), &labels).unwrap();
        net.run(ctx, Pass::Train, lr);
        let clip = |t: usize| match optimizer.clip {
            Some(Clip::Norm(n)) => cpu::clip_scale(squares[t], n as f64),
            Some(Clip::GlobalNorm(n)) => cpu::clip_scale(squares.iter().sum(), n as f64),
            None => 1.0,
        };
        let factors: Vec<f64> = (0..trainable.len()).map(clip).collect();
        assert!(factors.iter().any(|&f| f < 0.9), "{:?}: the case clips: {factors:?}", optimizer.kind);
        for (t, p) in trainable.iter().enumerate() {
            let w0 = r.f32(&p.name);
            let g: Vec<f64> = grads[t].iter().map(|x| x * factors[t]).collect();
            let wd = vec![if optimizer.excludes(p) { 0.0 } else { optimizer.weight_decay as f64 }; g.len()];
            let (m, v) = &state[t];
            let want = match optimizer.kind {
                Kind::Sgd => cpu::sgd(&w0, &g, m, lr as f64, 0.9, true, &wd).0,
                _ => cpu::adam(&w0, &g, m, v, lr as f64, &wd, 5).0,
            };
            let moved: Vec<f32> = net.read_param(ctx, &p.name).unwrap().iter().zip(&w0).map(|(a, b)| a - b).collect();
            let want: Vec<f64> = want.iter().zip(&w0).map(|(a, &b)| a - b as f64).collect();
            check(&format!("{:?} {} (change, decay {}, clip factor {:.3})", optimizer.kind, p.name, wd[0], factors[t]), &moved, &want, 1e-3);
        }
    }
}

/// How a reference file's steps were taken: the optimizer, its rate, the loss's smoothing and
/// the prefix of the file's results (`sgd.` for `sgd.after1.*`).
struct Steps<'a> {
    training: Training,
    lr: f32,
    prefix: &'a str,
}

impl Steps<'_> {
    fn adam() -> Self {
        Self { training: Training::default(), lr: 1e-3, prefix: "" }
    }
}

fn check_reference_step(kernels: &Kernels, r: &Reference, spec: &ModelSpec, batch: u32, steps: &Steps) {
    let (ctx, _) = gpu();
    let mut net = Network::training(ctx, kernels, spec, batch, 0, &steps.training).unwrap();
    let slots = net.slots.clone();
    for s in &slots {
        assert_eq!(r.shape(&s.info.name), s.info.shape, "{}", s.info.name);
        net.write_param(ctx, &s.info.name, &r.f32(&s.info.name)).unwrap();
    }
    let labels: Vec<u32> = r.f32("labels").into_iter().map(|v| v as u32).collect();
    net.upload(ctx, &r.f32("input"), &labels).unwrap();

    net.reset_metrics(ctx);
    net.run(ctx, Pass::Gradients, steps.lr);
    check("logits", &net.read_logits(ctx).unwrap(), &r.f64("logits"), 1e-5);
    let loss = net.read_metrics(ctx).unwrap().loss();
    check("loss", &[loss as f32], &r.f64("loss"), 1e-5);
    for s in slots.iter().filter(|s| s.info.trainable) {
        check(&format!("grad.{}", s.info.name), &net.read_grad(ctx, &s.info.name).unwrap(), &r.f64(&format!("grad.{}", s.info.name)), 1e-4);
    }

    // Tensors whose float64 gradient vanishes (a bias before a BatchNorm).
    let vanishing: Vec<&String> = slots.iter().filter(|s| s.info.trainable).map(|s| &s.info.name).filter(|n| r.f64(&format!("grad.{n}")).iter().all(|g| g.abs() < 1e-12)).collect();
    // The gradient pass ran in training mode and moved the moving statistics: start again.
    for s in &slots {
        net.write_param(ctx, &s.info.name, &r.f32(&s.info.name)).unwrap();
    }
    for (count, after) in [(1, "after1"), (2, "after3")] {
        for _ in 0..count {
            net.run(ctx, Pass::Train, steps.lr);
        }
        let prefix = format!("{}{after}", steps.prefix);
        for s in &slots {
            let (name, w0) = (&s.info.name, r.f32(&s.info.name));
            let moved: Vec<f32> = net.read_param(ctx, name).unwrap().iter().zip(&w0).map(|(a, b)| a - b).collect();
            let want: Vec<f64> = r.f64(&format!("{prefix}.{name}")).iter().zip(&w0).map(|(a, &b)| a - b as f64).collect();
            if vanishing.contains(&name) {
                // Adam (eps 1e-7) turns a gradient of pure f32 rounding noise (~1e-8 here) into
                // steps of ~lr * |g| / eps: only bounded, far below the lr-sized steps (1e-3 per
                // element) a real gradient would take.
                let rms = (moved.iter().map(|&d| (d as f64).powi(2)).sum::<f64>() / moved.len() as f64).sqrt();
                eprintln!("{prefix}.{name}: change {rms:.2e} RMS (reference gradient ~0)");
                assert!(rms < 1e-4, "{prefix}.{name}: moved {rms:.3e} RMS with a vanishing gradient");
                continue;
            }
            check(&format!("{prefix}.{name} (change)"), &moved, &want, 1e-3);
        }
    }
    let eval_logits = format!("{}eval_logits3", steps.prefix);
    if r.has(&eval_logits) {
        // Inference mode would also see the noise-driven bias steps above (which training
        // mode's batch mean cancels), ~1e-4 of the logits and as random as f32 rounding: those
        // tensors take the reference's values, so what is checked is the kernels.
        for name in &vanishing {
            net.write_param(ctx, name, &r.f32(&format!("{}after3.{name}", steps.prefix))).unwrap();
        }
        net.run(ctx, Pass::Evaluate, 0.0);
        check(&eval_logits, &net.read_logits(ctx).unwrap(), &r.f64(&eval_logits), 1e-5);
    }
}
