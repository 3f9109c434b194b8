//! Interop through the real binary: `export` runs in onnxruntime with the probabilities
//! `predict` gives, on 16 real images (CIFAR-10 cats and dogs from ../shared/datasets).
//! onnxruntime comes from the Python that GPU_CNN_PYTHON names (.ci/run installs it), else
//! `python3`.

#[path = "common/bin.rs"]
mod bin;

use std::path::{Path, PathBuf};
use std::process::Command;

use bin::{gpu_cnn, root};
use gpu_cnn::checkpoint::Checkpoint;
use gpu_cnn::record::TrainState;
use gpu_cnn::layers::activation::ActivationLayer;
use gpu_cnn::layers::avgpool2d::AvgPool2d;
use gpu_cnn::layers::batchnorm::BatchNorm;
use gpu_cnn::layers::conv2d::Conv2d;
use gpu_cnn::layers::dense::Dense;
use gpu_cnn::layers::depthwise_conv2d::DepthwiseConv2d;
use gpu_cnn::layers::separable_conv2d::SeparableConv2d;
use gpu_cnn::layers::dropout::Dropout;
use gpu_cnn::layers::{Pair, Role};
use gpu_cnn::layers::{Activation, LayerKind, Padding};
use gpu_cnn::model::ModelSpec;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::Value;

fn python() -> String {
    std::env::var("GPU_CNN_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// cat.4000-4007 and dog.4000-4007 of the shared CIFAR-10 test set.
fn images() -> Vec<PathBuf> {
    let dir = root().join("../shared/datasets/cifar10-catdog/test_set");
    let names = ["cat", "dog"].iter().flat_map(|c| (4000..4008).map(move |i| format!("{c}s/{c}.{i}.jpg")));
    let files: Vec<PathBuf> = names.map(|n| dir.join(n)).collect();
    files.iter().for_each(|f| assert!(f.is_file(), "{}: the shared test images live in ../shared", f.display()));
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

/// Every hidden activation in each place it can stand (fused into convs, batchnorms and dense
/// layers, a conv's sigmoid among them, and as layers on images and on flat inputs), and global
/// max pooling.
fn activations_model() -> ModelSpec {
    let conv = |filters, stride, padding, activation, use_bias| LayerKind::Conv2d(Conv2d { filters, kernel: Pair([3, 3]), stride, padding, activation, use_bias });
    let layers = vec![
        conv(8, 1, Padding::Same, Activation::LeakyRelu, true),
        conv(8, 2, Padding::Valid, Activation::Elu, true),
        LayerKind::BatchNorm(BatchNorm { activation: Activation::Tanh, ..Default::default() }),
        LayerKind::Activation(ActivationLayer { activation: Activation::Silu }),
        conv(8, 1, Padding::Same, Activation::Sigmoid, true),
        conv(8, 1, Padding::Same, Activation::Gelu, false),
        LayerKind::BatchNorm(BatchNorm { activation: Activation::Silu, ..Default::default() }),
        LayerKind::GlobalMaxPool2d(Default::default()),
        LayerKind::Dense(Dense::new(8, Activation::Gelu)),
        LayerKind::Dense(Dense::new(8, Activation::Tanh)),
        LayerKind::Activation(ActivationLayer { activation: Activation::LeakyRelu }),
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
        pixels.extend(gpu_cnn::data::folder::decode(f, input).unwrap().into_iter().flat_map(|v| (v as f32 / 255.0).to_le_bytes()));
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

/// Depthwise convs ('same' with multiplier 2, bias and ReLU; 2x2 stride-2 'valid' without bias)
/// and separable convs (stride 2 'same' on an even size, where TensorFlow pads the odd pixel at
/// the bottom / right, multiplier 2; 'valid' with multiplier 1): grouped `Conv`s in ONNX.
#[test]
fn export_depthwise_and_separable_convs_runs_in_onnxruntime_as_predict_does() {
    let depthwise = |stride, kernel, padding, depth_multiplier, activation, use_bias| {
        LayerKind::DepthwiseConv2d(DepthwiseConv2d { kernel: Pair([kernel, kernel]), stride, padding, depth_multiplier, activation, use_bias })
    };
    let separable = |filters, stride, padding, depth_multiplier| {
        LayerKind::SeparableConv2d(SeparableConv2d { stride, depth_multiplier, ..SeparableConv2d::new(filters, 3, padding, Activation::Relu) })
    };
    let layers = vec![
        depthwise(1, 3, Padding::Same, 2, Activation::Relu, true),
        separable(8, 2, Padding::Same, 2),
        depthwise(2, 2, Padding::Valid, 1, Activation::Linear, false),
        separable(6, 1, Padding::Valid, 1),
        LayerKind::GlobalAvgPool2d(Default::default()),
        LayerKind::Dense(Dense::new(2, Activation::Softmax)),
    ];
    let spec = ModelSpec::new([32, 32, 3], layers.into_iter().map(|k| (None, k)).collect()).unwrap();
    check_export("depthwise + separable", spec.clone(), &["cats", "dogs"], "nhwc");
    check_export("depthwise + separable", spec, &["cats", "dogs"], "nchw");
}

/// Skip connections (identity and projection shortcuts, each add with its ReLU) and stride-2
/// 'same' convs, whose padding is one-sided: the shipped ResNet-20.
#[test]
fn export_resnet_runs_in_onnxruntime_as_predict_does() {
    let path = root().join("configs/resnet.toml");
    let model = gpu_cnn::config::Config::load(&path).unwrap().model;
    check_export("ResNet-20", model, &["cats", "dogs"], "nchw");
}

/// LeakyRelu (alpha 0.2), Elu, Tanh, Sigmoid, silu as x * Sigmoid(x), gelu as its erf form,
/// GlobalMaxPool: onnxruntime agrees with `predict`.
#[test]
fn export_activations_and_global_max_pooling_runs_in_onnxruntime_as_predict_does() {
    check_export("activations + global max pooling", activations_model(), &["bird", "cat", "dog"], "nhwc");
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

    // A layer named like the graph's input: refused, rather than a file no runtime loads.
    let conv = LayerKind::Conv2d(Conv2d::new(4, 3, Padding::Same, Activation::Relu));
    let named = ModelSpec::new([8, 8, 3], vec![(Some("input".into()), conv), (None, LayerKind::Flatten(Default::default())), (None, LayerKind::Dense(Dense::new(1, Activation::Sigmoid)))]).unwrap();
    checkpoint(named, &["cats", "dogs"]).save(&dir.path().join("named.safetensors")).unwrap();
    let o = gpu_cnn(dir.path(), &["export", "named.safetensors", "-o", "named.onnx"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("two values 'input'"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.path().join("named.onnx").exists());
}

fn keras_images() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fixtures/keras/images")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 16);
    files
}

fn keras_predictions(key: &str) -> Value {
    let text = std::fs::read_to_string(root().join("tests/fixtures/keras/predictions.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()[key].clone()
}

fn fixture(name: &str) -> String {
    root().join("tests/fixtures/keras").join(name).display().to_string()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Imports a fixture and checks that `predict` on the imported checkpoint gives Keras' own
/// predictions; returns the import's report.
fn check_import(file: &str, config: &str, key: &str, matched_by: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    import_predicting_as_keras(dir.path(), file, Some(config), key, matched_by)
}

/// `import keras` of a fixture into `dir` (through `config`, or the model the file saved),
/// checked against Keras' own predictions; returns the import's report, as words.
fn import_predicting_as_keras(dir: &Path, file: &str, config: Option<&str>, key: &str, matched_by: &str) -> String {
    let classes = if matches!(key, "batchnorm" | "residual") { ["bird", "cat", "dog"].as_slice() } else { ["cats", "dogs"].as_slice() };
    let (source, fixture_config) = (fixture(file), config.map(fixture));
    let mut args = vec!["import", "keras", &source, "-o", "imported.safetensors"];
    let joined = classes.join(",");
    args.extend(["--classes", &joined]);
    if let Some(config) = &fixture_config {
        args.extend(["--config", config]);
    }
    let o = gpu_cnn(dir, &args);
    assert!(o.status.success(), "{file}: {}", stderr(&o));
    let report = stdout(&o);
    assert!(report.contains(&format!("layers matched by {matched_by}")), "{report}");
    assert!(report.contains("(100.0%) came from the source"), "{report}");
    let got = predict(dir, "imported.safetensors", &keras_images(), classes);
    let diff = max_difference(&got, &keras_predictions(key));
    eprintln!("{file}: max |gpu-cnn - Keras| = {diff:.2e}");
    assert!(diff < 1e-5, "{file}: gpu-cnn's predictions differ from Keras' by {diff}");
    // The table's columns size to its names: compare its words.
    report.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Without --config the layout is the model the file saved (a .keras archive's config.json, a
/// `model.save` .h5's model_config), written beside the checkpoint: the same layers and
/// connections as the fixture's hand-written config (Keras' names kept, so the weights pair by
/// name, and its Activation layers fused), predicting as Keras did. A file of weights alone asks
/// for --config, and a config already there is not replaced.
#[test]
fn import_lays_out_the_model_a_keras_file_saved() {
    for (file, config, key) in [("residual.keras", "residual.toml", "residual"), ("model2.keras", "model2.toml", "model2"), ("separable.h5", "separable.toml", "separable"), ("batchnorm.weights.h5", "", "")] {
        let dir = tempfile::tempdir().unwrap();
        if config.is_empty() {
            let o = gpu_cnn(dir.path(), &["import", "keras", &fixture(file), "-o", "imported.safetensors"]);
            assert!(stderr(&o).contains("holds weights only, not the model (saved by save_weights): pass --config"), "{}", stderr(&o));
            continue;
        }
        import_predicting_as_keras(dir.path(), file, None, key, "name");
        let load = |p: &Path| gpu_cnn::config::Config::load(p).unwrap().model;
        let (written, expected) = (load(&dir.path().join("imported.toml")), load(Path::new(&fixture(config))));
        // Keras may list a functional model's layers in another valid order: compare each
        // layer's kind with the kinds it reads.
        let edges = |m: &gpu_cnn::model::ModelSpec| {
            let kind = |v: usize| if v == 0 { "input".to_string() } else { format!("{:?}", m.layers[v - 1].kind) };
            let mut e: Vec<String> = m.graph().inputs.iter().enumerate().map(|(i, from)| format!("{} <- {:?}", kind(i + 1), from.iter().map(|&v| kind(v)).collect::<Vec<_>>())).collect();
            e.sort();
            e
        };
        assert_eq!((written.input, edges(&written)), (expected.input, edges(&expected)), "{file}");
        std::fs::write(dir.path().join("other.toml"), "mine").unwrap();
        let o = gpu_cnn(dir.path(), &["import", "keras", &fixture(file), "-o", "other.safetensors"]);
        assert!(stderr(&o).contains("other.toml") && stderr(&o).contains("--overwrite"), "{}", stderr(&o));
        assert_eq!(std::fs::read_to_string(dir.path().join("other.toml")).unwrap(), "mine");
        assert!(!dir.path().join("other.safetensors").exists());
        // The checkpoint cannot take the written config's name.
        let o = gpu_cnn(dir.path(), &["import", "keras", &fixture(file), "-o", "both.toml"]);
        assert!(stderr(&o).contains("-o both.toml: the config is written beside the checkpoint as both.toml"), "{}", stderr(&o));
        assert!(!dir.path().join("both.toml").exists());
    }
}

#[test]
fn import_keras2_h5_by_name_predicts_as_keras() {
    let report = check_import("model1.h5", "model1.toml", "model1", "name");
    assert!(report.contains("dense_1 (Dense) dense_1 copied 65,664"), "{report}");
}

#[test]
fn import_keras2_save_weights_h5_by_order_predicts_as_keras() {
    let report = check_import("model2.h5", "model2.toml", "model2", "order among layers with weights");
    assert!(report.contains("conv2d_2 (Conv2D) conv2d_1 copied"), "Keras' second conv is conv2d_1: {report}");
}

/// A Keras functional model with skip connections (Add), depthwise and separable convs, from a
/// .keras archive: imported through the config that lays it out, it predicts as Keras did (the
/// archive's own config checks each layer's settings); exported, onnxruntime agrees with
/// `predict`.
#[test]
fn import_and_export_a_residual_model_with_depthwise_and_separable_convs() {
    let report = check_import("residual.keras", "residual.toml", "residual", "order among layers of each class");
    assert!(report.contains("separable_conv2d_1 (SeparableConv2D) separable_conv2d copied"), "{report}");
    let model = gpu_cnn::config::Config::load(Path::new(&fixture("residual.toml"))).unwrap().model;
    check_export("residual + depthwise + separable", model, &["bird", "cat", "dog"], "nhwc");
}

#[test]
fn import_keras3_weights_h5_predicts_as_keras() {
    check_import("model1.weights.h5", "model1.toml", "model1", "name");
    check_import("model2.weights.h5", "model2.toml", "model2", "order among layers of each class");
    check_import("batchnorm.weights.h5", "batchnorm.toml", "batchnorm", "order among layers of each class");
}

/// A Keras 3 DepthwiseConv2D (its kernel named `kernel` in the legacy file) imported into a
/// depthwise_conv2d predicts as Keras did.
#[test]
fn import_keras_depthwise_conv_predicts_as_keras() {
    let report = check_import("depthwise.h5", "depthwise.toml", "depthwise", "order among layers with weights");
    assert!(report.contains("depthwise_conv2d_1 (DepthwiseConv2D) depthwise_conv2d copied 30"), "{report}");
    check_import("depthwise.weights.h5", "depthwise.toml", "depthwise", "order among layers of each class");
}

/// Keras' DepthwiseConv2D (multiplier 2, stride 2 'same' on an even size) and SeparableConv2Ds,
/// from a legacy `model.save` file and a `.keras` archive (whose config is compared with the
/// config's, depth_multiplier included), predict as Keras did; a config with another multiplier is
/// refused.
#[test]
fn import_keras_separable_convs_predicts_as_keras() {
    let report = check_import("separable.h5", "separable.toml", "separable", "order among layers with weights");
    assert!(report.contains("separable_conv2d_1 (SeparableConv2D) separable_conv2d_1 copied 173"), "{report}");
    check_import("separable.keras", "separable.toml", "separable", "order among layers of each class");
    let dir = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(fixture("separable.toml")).unwrap().replacen("depth_multiplier = 2, activation = \"relu\" },\n  { type = \"separable", "depth_multiplier = 1, activation = \"relu\" },\n  { type = \"separable", 1);
    std::fs::write(dir.path().join("other.toml"), config).unwrap();
    let o = gpu_cnn(dir.path(), &["import", "keras", &fixture("separable.keras"), "--config", "other.toml", "-o", "x.safetensors"]);
    assert!(stderr(&o).contains("computes otherwise than the config's depthwise_conv2d_1: depth_multiplier 2 in the file, 1 in the config"), "{}", stderr(&o));
}

#[test]
fn import_keras3_archive_predicts_as_keras() {
    check_import("model2.keras", "model2.toml", "model2", "order among layers of each class");
}

/// A `.keras` archive DEFLATE-compressed (re-zipped, or by another saver) imports as a stored one.
#[test]
fn import_deflated_keras3_archive_predicts_as_keras() {
    let dir = tempfile::tempdir().unwrap();
    let deflated = dir.path().join("deflated.keras");
    let mut stored = zip::ZipArchive::new(std::fs::File::open(fixture("model2.keras")).unwrap()).unwrap();
    let mut out = zip::ZipWriter::new(std::fs::File::create(&deflated).unwrap());
    for i in 0..stored.len() {
        let mut entry = stored.by_index(i).unwrap();
        out.start_file(entry.name().unwrap().to_string(), zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated)).unwrap();
        std::io::copy(&mut entry, &mut out).unwrap();
    }
    out.finish().unwrap();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&deflated).unwrap()).unwrap();
    assert_eq!(archive.by_name("model.weights.h5").unwrap().compression(), zip::CompressionMethod::Deflated);
    check_import(deflated.to_str().unwrap(), "model2.toml", "model2", "order among layers of each class");
}

/// Config layers the file lacks keep their fresh initialisation and are reported.
#[test]
fn import_reports_config_layers_the_file_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(fixture("model1.toml")).unwrap().replace(
        "  { type = \"flatten\" },",
        "  { type = \"conv2d\", name = \"extra\", filters = 32, kernel = 3, padding = \"same\", activation = \"relu\" },\n  { type = \"flatten\" },",
    );
    std::fs::write(dir.path().join("extra.toml"), config).unwrap();
    let o = gpu_cnn(dir.path(), &["import", "keras", &fixture("model1.h5"), "--config", "extra.toml", "-o", "x.safetensors"]);
    assert!(o.status.success());
    let out = stdout(&o);
    let row = out.lines().find(|l| l.starts_with("extra (Conv2D)")).unwrap_or_default();
    assert!(row.contains(" fresh init ") && row.ends_with("9,248  no Keras layer of this name"), "{out}");
    assert!(stdout(&o).contains("66,689 of 75,937 parameters"), "{}", stdout(&o));
}

#[test]
fn import_errors_name_the_file_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("notes.h5"), "these are not weights").unwrap();
    std::fs::create_dir_all(d.join("saved/variables")).unwrap();
    std::fs::write(d.join("saved/saved_model.pb"), b"\x08\x01").unwrap();
    std::fs::create_dir_all(d.join("folder")).unwrap();
    let h5 = std::fs::read(fixture("model1.h5")).unwrap();
    std::fs::write(d.join("truncated.h5"), &h5[..h5.len() / 2]).unwrap();
    // A `model.save` file whose model description is damaged, and one holding a NaN weight
    // (bytes changed in place: the HDF5 structure stays intact).
    let at = h5.windows(13).position(|w| w == b"{\"class_name\"").unwrap();
    std::fs::write(d.join("corrupt-config.h5"), [&h5[..at], b"#", &h5[at + 1..]].concat()).unwrap();
    let first = &gpu_cnn::interop::keras::KerasFile::read(Path::new(&fixture("model1.h5"))).unwrap().layers[0].weights[0].data[..4];
    let bytes: Vec<u8> = first.iter().flat_map(|v| v.to_le_bytes()).collect();
    let at = h5.windows(16).position(|w| w == bytes).unwrap();
    std::fs::write(d.join("nan.h5"), [&h5[..at], &f32::NAN.to_le_bytes(), &h5[at + 4..]].concat()).unwrap();
    let mut zip = zip::ZipWriter::new(std::fs::File::create(d.join("other.keras")).unwrap());
    zip.start_file("readme.txt", zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored)).unwrap();
    std::io::Write::write_all(&mut zip, b"not a model").unwrap();
    zip.finish().unwrap();
    // The files' models say conv2d_1 is a ReLU conv; these configs say linear.
    let linear = |model: &str| {
        let path = d.join(format!("linear-{model}"));
        std::fs::write(&path, std::fs::read_to_string(fixture(model)).unwrap().replacen("activation = \"relu\"", "activation = \"linear\"", 1)).unwrap();
        path.display().to_string()
    };
    let (linear1, linear2) = (linear("model1.toml"), linear("model2.toml"));
    let cases: &[(String, &str, &str)] = &[
        (fixture("model2.keras"), &linear2, "model2.keras: Keras layer 'conv2d' computes otherwise than the config's conv2d_1: activation relu in the file, linear in the config"),
        (fixture("model1.h5"), &linear1, "computes otherwise than the config's conv2d_1: activation relu in the file, linear in the config"),
        ("notes.h5".into(), "model1.toml", "notes.h5: not an HDF5 file or a .keras archive"),
        ("saved".into(), "model1.toml", "saved: is a TensorFlow SavedModel folder"),
        ("folder".into(), "model1.toml", "folder: is a folder, not a Keras weights file"),
        ("missing.h5".into(), "model1.toml", "missing.h5: cannot read"),
        ("truncated.h5".into(), "model1.toml", "truncated.h5: layer 'conv2d_1': unexpected end of data"),
        ("other.keras".into(), "model1.toml", "other.keras: a zip, but not a .keras archive"),
        ("corrupt-config.h5".into(), "model1.toml", "corrupt-config.h5: its model_config attribute (the model's description) is corrupt"),
        ("nan.h5".into(), "model1.toml", "nan.h5: /model_weights/conv2d_1/sequential/conv2d_1/kernel: holds NaN at element 0: the file is damaged or the model that saved it diverged"),
        (fixture("depthwise.h5"), "model1.toml", "depthwise.h5: Keras layer 'depthwise_conv2d' is a DepthwiseConv2D, which the config has no layer of"),
        (fixture("depthwise.weights.h5"), "model1.toml", "depthwise.weights.h5: Keras layer 'depthwise_conv2d' is a depthwise_conv2d, which the config has no layer of"),
        (fixture("model1.h5"), "model2.toml", "model1.h5: Keras layer 'dense_1' does not fit the config's dense_1: weight kernel has shape [512, 128], the config's dense_1.kernel needs [128, 128]"),
        (fixture("model2.weights.h5"), "model1.toml", "model2.weights.h5: Keras layer 'dense' does not fit the config's dense_1: weight 0 has shape [128, 128]"),
        (fixture("batchnorm.weights.h5"), "model2.toml", "batchnorm.weights.h5: Keras layer 'batch_normalization' is a batch_normalization, which the config has no layer of"),
        (fixture("model2.weights.h5"), "batchnorm.toml", "model2.weights.h5: Keras layer 'conv2d' does not fit the config's conv2d_1: it has 2 weight(s) (0, 1), the config's layer 1 (kernel)"),
        (fixture("model1.h5"), "model1.toml --classes a,b,c", "--classes: 3 names for a 2-class model"),
        (fixture("model1.h5"), "model1.toml --classes cats,cats", "--classes: name \"cats\" is empty or repeated"),
    ];
    for (file, config, message) in cases {
        let mut args = vec!["import", "keras", file, "--config"];
        let config = config.split(' ').collect::<Vec<_>>();
        let config_path = fixture(config[0]);
        args.push(&config_path);
        args.extend(&config[1..]);
        args.extend(["-o", "out.safetensors"]);
        let o = gpu_cnn(d, &args);
        assert!(!o.status.success() && stderr(&o).contains(message), "{file}: expected '{message}', got: {}", stderr(&o));
        assert!(!d.join("out.safetensors").exists(), "{file}: a failed import writes nothing");
    }
    std::fs::write(d.join("out.safetensors"), "keep me").unwrap();
    let o = gpu_cnn(d, &["import", "keras", &fixture("model1.h5"), "--config", &fixture("model1.toml"), "-o", "out.safetensors"]);
    assert!(!o.status.success() && stderr(&o).contains("pass --overwrite"));
    assert_eq!(std::fs::read_to_string(d.join("out.safetensors")).unwrap(), "keep me");
}

/// An imported checkpoint is a normal one: evaluate, transfer --from and train --init take it.
#[test]
fn an_imported_checkpoint_evaluates_transfers_and_trains() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for split in ["training_set", "test_set"] {
        for f in keras_images() {
            let class = if f.file_name().unwrap().to_string_lossy().starts_with("cat") { "cats" } else { "dogs" };
            std::fs::create_dir_all(d.join("data").join(split).join(class)).unwrap();
            std::fs::copy(&f, d.join("data").join(split).join(class).join(f.file_name().unwrap())).unwrap();
        }
    }
    let o = gpu_cnn(d, &["import", "keras", &fixture("model1.h5"), "--config", &fixture("model1.toml"), "-o", "keras.safetensors", "--classes", "cats,dogs"]);
    assert!(o.status.success());
    let o = gpu_cnn(d, &["evaluate", "keras.safetensors", "--data", "data/test_set", "--json"]);
    assert!(o.status.success());
    let eval: Value = serde_json::from_slice(&o.stdout).unwrap();
    let keras = keras_predictions("model1");
    let correct = keras.as_array().unwrap().iter().enumerate().filter(|(i, p)| (p[1].as_f64().unwrap() > 0.5) == (*i >= 8)).count();
    assert_eq!(eval["accuracy"].as_f64().unwrap(), correct as f64 / 16.0, "evaluate agrees with Keras' predictions");
    let o = gpu_cnn(d, &["transfer", "--from", "keras.safetensors", "--to", &fixture("model2.toml"), "--out", "grown.safetensors", "--strategy", "grow"]);
    assert!(o.status.success() && stdout(&o).contains("conv2d_1 (Conv2D)"));
    let o = gpu_cnn(d, &["train", &fixture("model2.toml"), "--init", "grown.safetensors", "--data", "data", "--epochs", "1", "--batch-size", "8", "--out", "run"]);
    assert!(o.status.success());
    assert!(d.join("run/history.json").is_file());
}
