//! Whole-network checks of the GPU path: a finite-difference gradient check of a small
//! conv-pool-conv-pool-flatten-dense-dense network, and one training step of the reference
//! Model 2 against PyTorch's float64 numbers (../shared/reference).

mod common;

use std::path::PathBuf;

use common::{gpu, kernel_paths};
use gpu_cnn::gpu::Kernels;
use gpu_cnn::model::{Activation, LayerKind, ModelSpec, Padding};
use gpu_cnn::network::{Network, Pass};
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
    let conv = |filters| LayerKind::Conv2d { filters, kernel: [3, 3], stride: 1, padding: Padding::Same, activation: Activation::Relu };
    let pool = LayerKind::MaxPool2d { pool: [2, 2], stride: None };
    ModelSpec::new([9, 10, 3], vec![
        (None, conv(4)),
        (None, pool.clone()),
        (None, conv(5)),
        (None, pool),
        (None, LayerKind::Flatten),
        (None, LayerKind::Dense { units: 6, activation: Activation::Relu }),
        (None, LayerKind::Dense { units: 1, activation: Activation::Sigmoid }),
    ])
    .unwrap()
}

/// Rounding noise of a one-sided slope: the f32 loss (~0.7, summed over the batch) is off by up
/// to ~1e-7, divided by h = 1e-3.
const SLOPE_NOISE: f64 = 2e-4;

/// Central differences of the GPU loss against the GPU backward pass, for every parameter.
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
    let (ctx, kernels) = gpu();
    let spec = small_network();
    let batch = 3;
    let mut net = Network::new(ctx, kernels, &spec, batch, 7).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let images: Vec<f32> = (0..batch as usize * 9 * 10 * 3).map(|_| rng.random_range(0.0..1.0)).collect();
    let labels = [1u32, 0, 1];
    net.upload(ctx, &images, &labels).unwrap();
    // Non-zero biases so that every gradient is exercised.
    for slot in net.slots.clone() {
        if slot.info.fans.is_none() {
            let b: Vec<f32> = (0..slot.info.len()).map(|_| rng.random_range(-0.1..0.1)).collect();
            net.write_param(ctx, &slot.info.name, &b).unwrap();
        }
    }
    let loss = |net: &mut Network| {
        net.reset_metrics(ctx);
        net.run(ctx, Pass::Evaluate, 0.0);
        net.read_metrics(ctx).unwrap().loss()
    };
    let base = loss(&mut net);
    net.reset_metrics(ctx);
    net.run(ctx, Pass::Gradients, 0.0);
    let h = 1e-3f32;
    let (mut checked, mut kinks) = (0, 0);
    for slot in net.slots.clone() {
        let name = &slot.info.name;
        let analytic = net.read_grad(ctx, name).unwrap();
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
    fn load() -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/model2_step_b4.safetensors");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (the reference step lives in ../shared)", path.display()));
        Self { bytes }
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
}

/// Forward, loss, every gradient and three Adam steps of Model 2 (batch 4, 64x64x3) agree with
/// PyTorch in float64, through both kernel paths (on lavapipe the default one runs the subgroup
/// conv kernels). Tolerances (relative norm): logits and loss 1e-5, gradients 1e-4 (the dense
/// kernel's gradient sums 8192-long products in f32), weight changes after Adam 1e-3 (Adam
/// divides by sqrt(v), amplifying gradient rounding where v is tiny).
#[test]
fn model2_step_matches_pytorch_float64() {
    let r = Reference::load();
    for (path, kernels) in kernel_paths() {
        eprintln!("kernel path: {path}");
        check_model2_step(kernels, &r);
    }
}

fn check_model2_step(kernels: &Kernels, r: &Reference) {
    let (ctx, _) = gpu();
    let spec = ModelSpec::model2(64);
    let mut net = Network::new(ctx, kernels, &spec, 4, 0).unwrap();
    let names: Vec<String> = net.slots.iter().map(|s| s.info.name.clone()).collect();
    for name in &names {
        net.write_param(ctx, name, &r.f32(name)).unwrap();
    }
    let labels: Vec<u32> = r.f32("labels").into_iter().map(|v| v as u32).collect();
    net.upload(ctx, &r.f32("input"), &labels).unwrap();

    net.reset_metrics(ctx);
    net.run(ctx, Pass::Gradients, 1e-3);
    let logits = net.read_logits(ctx).unwrap();
    let err = relative_norm(&logits, &r.f64("logits"));
    eprintln!("logits {logits:?}: relative error {err:.2e}");
    assert!(err < 1e-5, "logits: {err:.3e}");
    let loss = net.read_metrics(ctx).unwrap().loss();
    let want = r.f64("loss")[0];
    eprintln!("loss {loss} vs {want}");
    assert!((loss - want).abs() / want < 1e-5, "loss {loss} vs PyTorch {want}");
    for name in &names {
        let err = relative_norm(&net.read_grad(ctx, name).unwrap(), &r.f64(&format!("grad.{name}")));
        eprintln!("grad.{name}: relative error {err:.2e}");
        assert!(err < 1e-4, "grad.{name}: {err:.3e}");
    }

    let init: Vec<Vec<f32>> = names.iter().map(|n| r.f32(n)).collect();
    for (steps, prefix) in [(1, "after1"), (2, "after3")] {
        for _ in 0..steps {
            net.run(ctx, Pass::Train, 1e-3);
        }
        for (name, w0) in names.iter().zip(&init) {
            let w = net.read_param(ctx, name).unwrap();
            let moved: Vec<f32> = w.iter().zip(w0).map(|(a, b)| a - b).collect();
            let want: Vec<f64> = r.f64(&format!("{prefix}.{name}")).iter().zip(w0).map(|(a, &b)| a - b as f64).collect();
            let err = relative_norm(&moved, &want);
            eprintln!("{prefix}.{name}: relative error of the change {err:.2e}");
            assert!(err < 1e-3, "{prefix}.{name}: {err:.3e}");
        }
    }
}
