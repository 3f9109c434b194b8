//! Interop through the real binary: `export` runs in onnxruntime with the probabilities
//! `predict` gives, on 16 real images (tests/fixtures/images: CIFAR-10 cats and dogs).
//! onnxruntime comes from the Python that GPU_CNN_PYTHON names (.ci/run installs it), else
//! `python3`.

#[path = "common/bin.rs"]
mod bin;

use std::path::{Path, PathBuf};
use std::process::Command;

use bin::{gpu_cnn, root};
use gpu_cnn::checkpoint::{Checkpoint, TrainState};
use gpu_cnn::layers::activation::ActivationLayer;
use gpu_cnn::layers::avgpool2d::AvgPool2d;
use gpu_cnn::layers::batchnorm::BatchNorm;
use gpu_cnn::layers::conv2d::Conv2d;
use gpu_cnn::layers::dense::Dense;
use gpu_cnn::layers::dropout::Dropout;
use gpu_cnn::layers::{Pair, Role};
use gpu_cnn::model::{Activation, LayerKind, ModelSpec, Padding};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::Value;

fn python() -> String {
    std::env::var("GPU_CNN_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn images() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fixtures/images")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 16);
    files
}

/// A checkpoint of `spec` with seeded random weights, biases and batchnorm statistics (Keras
/// starts those at constants, which would hide a bias or statistic exported to the wrong place).
fn checkpoint(spec: ModelSpec, classes: &[&str]) -> Checkpoint {
    let mut params = gpu_cnn::network::initial_params(&spec, 7);
    let mut rng = StdRng::seed_from_u64(14);
    for (info, data) in spec.params().iter().zip(&mut params) {
        let (lo, hi) = match info.suffix {
            "gamma" | "moving_variance" => (0.5, 1.5),
            _ if info.role == Role::PerUnit => (-0.2, 0.2),
            _ => continue,
        };
        data.iter_mut().for_each(|v| *v = rng.random_range(lo..hi));
    }
    let state = TrainState { lr: 1e-3, ..Default::default() };
    Checkpoint { model: spec, classes: classes.iter().map(|c| c.to_string()).collect(), params, optimizer: None, state, provenance: None }
}

/// Model 3's shape with everything else gpu-cnn has: batchnorm without bias or scale, average
/// and global average pooling, a strided 'valid' conv, an activation layer, dropout, a
/// batchnorm after a dense layer, and a softmax head.
fn pooling_model() -> ModelSpec {
    let conv = |filters, stride, padding, activation, use_bias| LayerKind::Conv2d(Conv2d { filters, kernel: Pair([3, 3]), stride, padding, activation, use_bias });
    let layers = vec![
        conv(8, 1, Padding::Same, Activation::Linear, false),
        LayerKind::BatchNorm(BatchNorm { activation: Activation::Relu, ..Default::default() }),
        LayerKind::AvgPool2d(AvgPool2d { pool: Pair([2, 2]), stride: None }),
        conv(16, 2, Padding::Valid, Activation::Linear, true),
        LayerKind::BatchNorm(BatchNorm { scale: false, ..Default::default() }),
        LayerKind::Activation(ActivationLayer { activation: Activation::Relu }),
        LayerKind::Dropout(Dropout { rate: 0.5 }),
        LayerKind::GlobalAvgPool2d(Default::default()),
        LayerKind::Dense(Dense::new(16, Activation::Relu)),
        LayerKind::BatchNorm(BatchNorm { center: false, ..Default::default() }),
        LayerKind::Dense(Dense::new(3, Activation::Softmax)),
    ];
    ModelSpec::new([32, 32, 3], layers.into_iter().map(|k| (None, k)).collect()).unwrap()
}

/// `gpu-cnn predict --json` probabilities, one row per image in class order.
fn predict(dir: &Path, ckpt: &str, files: &[PathBuf], classes: &[&str]) -> Vec<Vec<f64>> {
    let mut args = vec!["predict", ckpt, "--json"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let o = gpu_cnn(dir, &args);
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array().unwrap().iter().map(|p| classes.iter().map(|c| p["probabilities"][c].as_f64().unwrap()).collect()).collect()
}

/// The exported model in onnxruntime on the images as `predict` decodes them.
fn onnxruntime(dir: &Path, model: &str, input: [u32; 3], files: &[PathBuf], layout: &str) -> Value {
    let mut pixels = Vec::new();
    for f in files {
        pixels.extend(gpu_cnn::data::folder::decode(f, input).unwrap().into_iter().map(|v| (v as f32 / 255.0).to_le_bytes()).flatten());
    }
    std::fs::write(dir.join("images.f32"), pixels).unwrap();
    let shape = format!("{},{},{},{}", files.len(), input[0], input[1], input[2]);
    let script = root().join("tests/onnx_run.py");
    let o = Command::new(python()).arg(&script).args([model, "images.f32", &shape, layout]).current_dir(dir).output().expect("run python");
    assert!(o.status.success(), "{} {}: {}", python(), script.display(), String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn max_difference(a: &[Vec<f64>], b: &Value) -> f64 {
    let b = b.as_array().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).flat_map(|(x, y)| x.iter().zip(y.as_array().unwrap()).map(|(p, q)| (p - q.as_f64().unwrap()).abs())).fold(0.0, f64::max)
}

fn check_export(name: &str, spec: ModelSpec, classes: &[&str], layout: &str) {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(spec, classes);
    ckpt.save(&dir.path().join("model.safetensors")).unwrap();
    let o = gpu_cnn(dir.path(), &["export", "model.safetensors", "-o", "model.onnx", "--layout", layout]);
    assert!(o.status.success(), "{name}");
    let files = images();
    let expected = predict(dir.path(), "model.safetensors", &files, classes);
    // Untrained, but not saturated: the comparison is about numbers, not 0s and 1s.
    let (lo, hi) = expected.iter().flatten().fold((1f64, 0f64), |(lo, hi), &p| (lo.min(p), hi.max(p)));
    assert!(lo > 0.02 && hi < 0.98 && hi - lo > 0.01, "{name}: probabilities span [{lo}, {hi}]");
    let got = onnxruntime(dir.path(), "model.onnx", ckpt.model.input, &files, layout);
    let diff = max_difference(&expected, &got["probabilities"]);
    eprintln!("{name} ({layout}): max |onnxruntime - predict| = {diff:.2e} over {} probabilities in [{lo:.3}, {hi:.3}]", 16 * classes.len());
    assert!(diff < 1e-5, "{name}: onnxruntime differs from predict by {diff}");
    assert_eq!(got["classes"], serde_json::json!(classes));
    assert_eq!(got["layout"], layout.to_uppercase());
    assert_eq!((got["input"].as_str(), got["output"].as_str()), (Some("input"), Some("probabilities")));
    let [h, w, c] = ckpt.model.input.map(Value::from);
    let dims = if layout == "nchw" { [c.clone(), h.clone(), w.clone()] } else { [h.clone(), w.clone(), c.clone()] };
    assert_eq!(got["input_shape"].as_array().unwrap()[1..], dims);
    assert!(got["doc"].as_str().unwrap().contains("pixels / 255"), "{}", got["doc"]);
}

#[test]
fn export_model1_runs_in_onnxruntime_as_predict_does() {
    check_export("Model 1", ModelSpec::model1(64), &["cats", "dogs"], "nhwc");
}

#[test]
fn export_model2_runs_in_onnxruntime_as_predict_does_in_both_layouts() {
    check_export("Model 2", ModelSpec::model2(64), &["cats", "dogs"], "nhwc");
    check_export("Model 2", ModelSpec::model2(64), &["cats", "dogs"], "nchw");
}

#[test]
fn export_batchnorm_and_pooling_runs_in_onnxruntime_as_predict_does() {
    check_export("batchnorm + pooling", pooling_model(), &["bird", "cat", "dog"], "nhwc");
}

#[test]
fn export_never_overwrites_without_asking() {
    let dir = tempfile::tempdir().unwrap();
    checkpoint(ModelSpec::model2(16), &["cats", "dogs"]).save(&dir.path().join("m.safetensors")).unwrap();
    std::fs::write(dir.path().join("model.onnx"), "keep me").unwrap();
    let o = gpu_cnn(dir.path(), &["export", "m.safetensors", "-o", "model.onnx"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("pass --overwrite"));
    assert_eq!(std::fs::read_to_string(dir.path().join("model.onnx")).unwrap(), "keep me");
    let o = gpu_cnn(dir.path(), &["export", "m.safetensors", "-o", "m.safetensors", "--overwrite"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("own input"));
    assert!(gpu_cnn(dir.path(), &["export", "m.safetensors", "-o", "model.onnx", "--overwrite"]).status.success());
    assert_ne!(std::fs::read(dir.path().join("model.onnx")).unwrap(), b"keep me");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(left.iter().all(|f| !f.ends_with(".tmp")), "{left:?}");
}
