//! Checkpoints: save/load identity, exact resume (at an epoch boundary and mid-epoch), every
//! corrupt-file case, layout checks and the NaN stop that keeps the last good checkpoint.

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use common::gpu;
use gpu_cnn::checkpoint::{Checkpoint, CheckpointError};
use gpu_cnn::record::TrainState;
use gpu_cnn::config::Config;
use gpu_cnn::data::synthetic;
use gpu_cnn::network::{Network, Pass};
use gpu_cnn::optimizer::Kind;
use gpu_cnn::run::{self, Start};
use gpu_cnn::train::callbacks::ReduceLrOnPlateau;
use gpu_cnn::train::schedule::rescale;
use gpu_cnn::record::EpochLogs;
use gpu_cnn::train::{Callback, InterruptAfter, TrainError};

const CONFIG: &str = r#"
[model]
input = [12, 12, 3]
layers = [
  { type = "conv2d", filters = 4, kernel = 3, padding = "same", activation = "relu" },
  { type = "maxpool2d" },
  { type = "flatten" },
  { type = "dropout", rate = 0.2 },
  { type = "dense", units = 6, activation = "relu" },
  { type = "dense", units = 1, activation = "sigmoid" },
]
[augment]
horizontal_flip = true
zoom_range = 0.1
[train]
epochs = 4
batch_size = 8
learning_rate = 0.003
seed = 5
[callbacks.reduce_lr]
monitor = "loss"
patience = 1
factor = 0.5
"#;

/// CONFIG with BatchNorm after the conv (no bias) and after the hidden dense layer.
fn batchnorm_config() -> String {
    CONFIG
        .replace(r#"padding = "same", activation = "relu" },"#, r#"padding = "same", use_bias = false },
  { type = "batchnorm", activation = "relu" },"#)
        .replace(r#"{ type = "dense", units = 6, activation = "relu" },"#, r#"{ type = "dense", units = 6 },
  { type = "batchnorm", momentum = 0.9 },
  { type = "activation", activation = "relu" },"#)
}

fn config(epochs: u32, lr: f32) -> Config {
    with_config(CONFIG, epochs, lr)
}

fn with_config(text: &str, epochs: u32, lr: f32) -> Config {
    let mut c = Config::parse(Path::new("ckpt.toml"), text).unwrap();
    c.train.epochs = epochs;
    c.train.learning_rate = lr;
    c
}

fn train(cfg: &Config, out: &Path, start: Start, interrupt_after: Option<usize>) -> Result<Vec<EpochLogs>, anyhow::Error> {
    let (ctx, _) = gpu();
    let flag = Arc::new(AtomicBool::new(false));
    let mut extra: Vec<Box<dyn Callback>> = Vec::new();
    if let Some(n) = interrupt_after {
        extra.push(Box::new(InterruptAfter::new(n, flag.clone())));
    }
    let (train_set, test_set) = (synthetic::generate(44, [12, 12, 3], 1), synthetic::generate(16, [12, 12, 3], 2));
    // These tests train into one folder several times on purpose.
    let resume = match &start {
        Start::Resume(_, path) => Some(path.as_path()),
        _ => None,
    };
    let folder = run::claim_folder(cfg, out, resume, &[], true)?;
    run::train(ctx, cfg, train_set, test_set, &folder, start, extra, Some(flag)).map(|(h, _)| h)
}

fn numbers(h: &[EpochLogs]) -> Vec<(u32, f64, f64, f64, f64, f64)> {
    h.iter().map(|l| (l.epoch, l.loss, l.acc, l.val_loss, l.val_acc, l.lr)).collect()
}

fn resume(dir: &Path) -> Start {
    let path = dir.join("last.safetensors");
    Start::Resume(Checkpoint::load(&path).unwrap(), path)
}

#[test]
fn resuming_gives_the_same_history_and_weights_as_one_run() {
    check_resume(CONFIG);
}

/// The same with BatchNorm: its moving statistics (written by its own kernels, not Adam) come
/// back with the weights, bit for bit.
#[test]
fn resuming_with_batchnorm_gives_the_same_history_and_weights_as_one_run() {
    let text = batchnorm_config();
    assert_eq!(with_config(&text, 1, 1e-3).model.params().iter().filter(|p| !p.trainable).count(), 4, "two BatchNorms' moving statistics");
    check_resume(&text);
}

/// Freezing with `unfreeze_after = 3` and a cosine schedule: runs cut in epoch 3 (frozen) and
/// in epoch 5 (thawed) resume to the history, weights and Adam state of one run, bit for bit;
/// Adam restarted when the layers thawed (its count is the steps since).
#[test]
fn a_run_that_unfreezes_resumes_exactly() {
    let text = format!("{}\n[train.schedule]\ntype = \"cosine\"\n", batchnorm_config().replace("seed = 5", "seed = 5\nunfreeze_after = 3"));
    let mut cfg = with_config(&text, 8, 0.003);
    cfg.model = cfg.model.freeze(&["conv2d_1".into(), "batch_normalization_1".into()]).unwrap();
    let straight = tempfile::tempdir().unwrap();
    let whole = train(&cfg, straight.path(), Start::Fresh, None).unwrap();
    let a = Checkpoint::load(&straight.path().join("last.safetensors")).unwrap();
    assert!(a.model.frozen().is_empty(), "thawed after epoch 3");
    assert_eq!(a.optimizer.as_ref().unwrap().t, 5 * 6, "Adam restarted at epoch 4: 5 epochs of 6 steps since");
    // 44 images / batch 8 = 6 steps an epoch.
    for (epoch, step) in [(3, 3), (5, 2)] {
        let cut = tempfile::tempdir().unwrap();
        let err = train(&cfg, cut.path(), Start::Fresh, Some(6 * (epoch - 1) + step)).unwrap_err();
        assert!(matches!(err.downcast_ref::<TrainError>(), Some(TrainError::Interrupted { epoch: e, step: s }) if *e == epoch as u32 && *s == step), "{err}");
        let saved = Checkpoint::load(&cut.path().join("last.safetensors")).unwrap();
        assert_eq!(saved.model.frozen().is_empty(), epoch > 3, "frozen layers in the checkpoint of epoch {epoch}");
        // The config alone says nothing frozen: the checkpoint's freezing wins.
        let after_cut = train(&with_config(&text, 8, 0.003), cut.path(), resume(cut.path()), None).unwrap();
        assert_eq!(numbers(&after_cut), numbers(&whole), "cut in epoch {epoch}");
        let b = Checkpoint::load(&cut.path().join("last.safetensors")).unwrap();
        assert_eq!(a.params, b.params, "weights, cut in epoch {epoch}");
        assert_eq!(a.optimizer, b.optimizer, "Adam state, cut in epoch {epoch}");
    }
}

fn check_resume(text: &str) {
    let config = |epochs, lr| with_config(text, epochs, lr);
    let straight = tempfile::tempdir().unwrap();
    let whole = train(&config(8, 0.003), straight.path(), Start::Fresh, None).unwrap();
    assert!(whole.iter().any(|l| l.lr < 0.003), "the schedule acted, so its state must survive the resume");

    // 4 epochs, then resume to 8.
    let split = tempfile::tempdir().unwrap();
    train(&config(4, 0.003), split.path(), Start::Fresh, None).unwrap();
    let resumed = train(&config(8, 0.003), split.path(), resume(split.path()), None).unwrap();
    assert_eq!(numbers(&resumed), numbers(&whole));

    // Interrupted in the middle of epoch 3 (44 images / batch 8 = 6 steps an epoch), then resumed.
    let cut = tempfile::tempdir().unwrap();
    let err = train(&config(8, 0.003), cut.path(), Start::Fresh, Some(6 * 2 + 3)).unwrap_err();
    assert!(matches!(err.downcast_ref::<TrainError>(), Some(TrainError::Interrupted { epoch: 3, step: 3 })), "{err}");
    let state = Checkpoint::load(&cut.path().join("last.safetensors")).unwrap().state;
    assert_eq!((state.epoch, state.step, state.history.len()), (2, 3, 2));
    assert!(state.partial_seconds > 0.0, "the cut epoch's seconds so far are kept");
    assert_eq!(Checkpoint::read_state(&cut.path().join("last.safetensors")).unwrap(), state, "the header alone gives the state");
    // Made large, so that the resumed epoch's time shows whether it counts them.
    let mut last = Checkpoint::load(&cut.path().join("last.safetensors")).unwrap();
    last.state.partial_seconds = 1000.0;
    last.save(&cut.path().join("last.safetensors")).unwrap();
    let after_cut = train(&config(8, 0.003), cut.path(), resume(cut.path()), None).unwrap();
    assert_eq!(numbers(&after_cut), numbers(&whole));
    assert!(after_cut[2].train_seconds > 1000.0 && after_cut[3].train_seconds < 1000.0, "the resumed epoch counts its steps before the cut");

    let a = Checkpoint::load(&straight.path().join("last.safetensors")).unwrap();
    for other in [split.path(), cut.path()] {
        let b = Checkpoint::load(&other.join("last.safetensors")).unwrap();
        assert_eq!(a.params, b.params, "weights after 8 epochs");
        assert_eq!(a.optimizer, b.optimizer, "Adam state after 8 epochs");
    }
    // The best-model checkpoint is there too, and is not resumable.
    let best = Checkpoint::load(&straight.path().join("best.safetensors")).unwrap();
    assert!(best.optimizer.is_none() && best.classes == ["crosses", "rings"]);
}

/// A cosine schedule with a warm-up, cut by the plateau callback at every epoch from the
/// second (min_delta 10 counts no epoch as improving): each epoch's rate is the schedule's at
/// its last step from the base the cuts left, and a run interrupted mid-epoch resumes to the
/// same history, weights and Adam state, bit for bit.
#[test]
fn a_scheduled_run_resumes_mid_epoch_exactly() {
    let text = format!("{}\n[train.schedule]\ntype = \"cosine\"\nalpha = 0.1\nwarmup_epochs = 1\n", CONFIG.replace("patience = 1", "patience = 1\nmin_delta = 10.0"));
    let cfg = Config::parse(Path::new("cosine.toml"), &text).unwrap();
    let straight = tempfile::tempdir().unwrap();
    let whole = train(&cfg, straight.path(), Start::Fresh, None).unwrap();

    let mut plateau = ReduceLrOnPlateau::new(cfg.callbacks.reduce_lr.clone().unwrap());
    let mut base = 0.003f32;
    for l in &whole {
        // 44 images / batch 8 = 6 steps an epoch, 4 epochs.
        let lr = cfg.train.schedule.lr(l.epoch as usize * 6 - 1, 6, 24, base);
        assert_eq!(l.lr, lr as f64, "epoch {}", l.epoch);
        let cut = plateau.update(l.loss, lr);
        if cut != lr {
            base = rescale(base, lr, cut);
        }
    }
    assert!((base - 0.003 * 0.125).abs() < 1e-9, "halved at the end of epochs 2, 3 and 4: {base}");

    let cut = tempfile::tempdir().unwrap();
    let err = train(&cfg, cut.path(), Start::Fresh, Some(6 * 2 + 3)).unwrap_err();
    assert!(matches!(err.downcast_ref::<TrainError>(), Some(TrainError::Interrupted { epoch: 3, step: 3 })), "{err}");
    let after_cut = train(&cfg, cut.path(), resume(cut.path()), None).unwrap();
    assert_eq!(numbers(&after_cut), numbers(&whole));
    let a = Checkpoint::load(&straight.path().join("last.safetensors")).unwrap();
    let b = Checkpoint::load(&cut.path().join("last.safetensors")).unwrap();
    assert_eq!(a.params, b.params, "weights");
    assert_eq!(a.optimizer, b.optimizer, "Adam state");
}

/// SGD with Nesterov momentum, weight decay (biases excluded), global clipping and label
/// smoothing, with BatchNorm: runs split at an epoch and cut mid-epoch resume to the history,
/// weights and momentum of one run, bit for bit. Its checkpoint holds one moment per tensor
/// (`sgd.m.*`) and says which optimizer wrote it; resuming under another optimizer is refused.
#[test]
fn resuming_with_sgd_gives_the_same_history_and_weights_as_one_run() {
    let sgd = "seed = 5\noptimizer = \"sgd\"\nmomentum = 0.9\nnesterov = true\nweight_decay = 5e-4\nweight_decay_exclude = [\"bias\"]\nglobal_clipnorm = 1.0\nlabel_smoothing = 0.1";
    // min_delta 10 counts no epoch as improving, so the plateau callback cuts the rate.
    let text = batchnorm_config().replace("seed = 5", sgd).replace("patience = 1", "patience = 1\nmin_delta = 10.0");
    check_resume(&text);

    let dir = tempfile::tempdir().unwrap();
    train(&with_config(&text, 1, 0.003), dir.path(), Start::Fresh, None).unwrap();
    let path = dir.path().join("last.safetensors");
    let ckpt = Checkpoint::load(&path).unwrap();
    let opt = ckpt.optimizer.as_ref().unwrap();
    assert_eq!((opt.config.kind, opt.config.momentum, opt.config.nesterov, opt.t), (Kind::Sgd, 0.9, true, 6));
    assert!(opt.v.is_empty() && opt.m.len() == ckpt.model.params().iter().filter(|p| p.trainable).count());
    let bytes = std::fs::read(&path).unwrap();
    let names = safetensors::SafeTensors::deserialize(&bytes).unwrap().names().into_iter().map(str::to_string).collect::<Vec<_>>();
    assert!(names.contains(&"sgd.m.conv2d_1.kernel".to_string()) && !names.iter().any(|n| n.starts_with("adam.")), "{names:?}");
    let err = train(&with_config(&batchnorm_config(), 2, 0.003), dir.path(), resume(dir.path()), None).unwrap_err();
    assert!(err.to_string().contains("was trained with the optimizer") && err.to_string().contains("an exact resume needs the same"), "{err}");
}

#[test]
fn resume_refuses_another_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    train(&config(1, 0.003), dir.path(), Start::Fresh, None).unwrap();
    let mut cfg = config(2, 0.003);
    cfg.train.batch_size = 4;
    let err = train(&cfg, dir.path(), resume(dir.path()), None).unwrap_err();
    assert!(err.to_string().contains("batch size 8 on 44 training images; this run has batch size 4"), "{err}");
}

#[test]
fn save_then_load_gives_identical_outputs() {
    check_save_load(config(1, 0.003));
    check_save_load(with_config(&batchnorm_config(), 1, 0.003));
}

/// After a training step (which moves BatchNorm's moving statistics), a saved and reloaded
/// network gives the same inference outputs bit for bit.
fn check_save_load(cfg: Config) {
    let (ctx, kernels) = gpu();
    let mut a = Network::new(ctx, kernels, &cfg.model, 4, 11).unwrap();
    let images: Vec<f32> = (0..4 * 12 * 12 * 3).map(|i| (i % 17) as f32 / 17.0).collect();
    a.upload(ctx, &images, &[0, 1, 1, 0]).unwrap();
    a.run(ctx, Pass::Train, 0.01);
    a.run(ctx, Pass::Evaluate, 0.0);
    let want = a.read_logits(ctx).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.safetensors");
    let classes = vec!["x".to_string(), "y".to_string()];
    Checkpoint::capture(ctx, &a, &classes, TrainState::default(), true).unwrap().save(&path).unwrap();
    let loaded = Checkpoint::load(&path).unwrap();
    assert_eq!(loaded.classes, classes);
    assert_eq!(loaded.optimizer.as_ref().unwrap().t, 1);
    let mut b = Network::new(ctx, kernels, &loaded.model, 4, 99).unwrap();
    loaded.apply(ctx, &mut b, true).unwrap();
    b.upload(ctx, &images, &[0, 1, 1, 0]).unwrap();
    b.run(ctx, Pass::Evaluate, 0.0);
    assert_eq!(b.read_logits(ctx).unwrap(), want);
}

/// Writes a safetensors file with the given tensors and metadata.
fn write(path: &Path, tensors: Vec<(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)>, meta: std::collections::HashMap<String, String>) {
    let views: Vec<_> = tensors.iter().map(|(n, d, s, b)| (n.to_string(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap())).collect();
    std::fs::write(path, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
}

#[test]
fn every_corrupt_checkpoint_gets_a_clear_error() {
    let (ctx, kernels) = gpu();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    let cfg = config(1, 0.003);
    let net = Network::new(ctx, kernels, &cfg.model, 2, 1).unwrap();
    Checkpoint::capture(ctx, &net, &["a".into(), "b".into()], TrainState::default(), false).unwrap().save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let meta = safetensors::SafeTensors::read_metadata(&bytes).unwrap().1.metadata().clone().unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st.tensors().into_iter().map(|(n, t)| (n, t.shape().to_vec(), t.data().to_vec())).collect();
    let f32s = |skip: &str| tensors.iter().filter(|t| t.0 != skip).map(|(n, s, b)| (n.as_str(), safetensors::Dtype::F32, s.clone(), b.clone())).collect::<Vec<_>>();
    let load = |name: &str| Checkpoint::load(&dir.path().join(name)).unwrap_err();

    std::fs::write(dir.path().join("text.safetensors"), "hello, not a checkpoint").unwrap();
    assert!(matches!(load("text.safetensors"), CheckpointError::NotSafetensors(..)));
    assert!(matches!(Checkpoint::read_state(&dir.path().join("text.safetensors")), Err(CheckpointError::NotSafetensors(..))));

    std::fs::write(dir.path().join("cut.safetensors"), &bytes[..bytes.len() - 100]).unwrap();
    let e = load("cut.safetensors");
    assert!(matches!(e, CheckpointError::NotSafetensors(..)), "{e}");
    assert!(e.to_string().contains("cut.safetensors"));

    write(&dir.path().join("missing.safetensors"), f32s("dense_1.bias"), meta.clone());
    let e = load("missing.safetensors");
    assert!(matches!(e, CheckpointError::MissingTensor(_, ref n) if n == "dense_1.bias"), "{e}");

    let mut extra = f32s("");
    extra.push(("surprise", safetensors::Dtype::F32, vec![1], vec![0; 4]));
    write(&dir.path().join("extra.safetensors"), extra, meta.clone());
    let e = load("extra.safetensors");
    assert!(matches!(e, CheckpointError::ExtraTensor(_, ref n) if n == "surprise"), "{e}");

    let mut f16 = f32s("dense_2.bias");
    f16.push(("dense_2.bias", safetensors::Dtype::F16, vec![1], vec![0; 2]));
    write(&dir.path().join("dtype.safetensors"), f16, meta.clone());
    assert!(matches!(load("dtype.safetensors"), CheckpointError::Dtype(_, ref n, _) if n == "dense_2.bias"));

    let mut shaped = f32s("dense_2.bias");
    shaped.push(("dense_2.bias", safetensors::Dtype::F32, vec![2], vec![0; 8]));
    write(&dir.path().join("shape.safetensors"), shaped, meta.clone());
    let e = load("shape.safetensors");
    assert!(matches!(e, CheckpointError::Shape(_, ref n, ..) if n == "dense_2.bias"), "{e}");

    let mut future = meta.clone();
    future.insert("format_version".into(), "99".into());
    write(&dir.path().join("future.safetensors"), f32s(""), future);
    assert!(matches!(load("future.safetensors"), CheckpointError::Version(_, ref v) if v == "99"));

    write(&dir.path().join("foreign.safetensors"), f32s(""), Default::default());
    assert!(matches!(load("foreign.safetensors"), CheckpointError::NotOurs(_)));

    let mut bad_model = meta.clone();
    bad_model.insert("model".into(), "{\"input\": [1]}".into());
    write(&dir.path().join("model.safetensors"), f32s(""), bad_model);
    assert!(matches!(load("model.safetensors"), CheckpointError::Metadata(_, "model", _)));
}

#[test]
fn init_refuses_another_layout_and_points_to_transfer() {
    let (ctx, kernels) = gpu();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let net = Network::new(ctx, kernels, &config(1, 0.003).model, 2, 1).unwrap();
    Checkpoint::capture(ctx, &net, &["a".into(), "b".into()], TrainState::default(), false).unwrap().save(&path).unwrap();
    let other = Config::parse(Path::new("x.toml"), &CONFIG.replace("units = 6", "units = 7")).unwrap();
    let e = Checkpoint::load(&path).unwrap().check_layout(&other.model, &path).unwrap_err();
    assert!(matches!(e, CheckpointError::Layout { ref layer, .. } if layer == "dense_1"), "{e}");
    // The file, and both layers as a config writes them.
    let text = e.to_string();
    assert!(text.starts_with(&format!("{}: ", path.display())) && text.contains("gpu-cnn transfer"), "{text}");
    assert!(text.contains(r#"the config has {"type":"dense","units":7,"#) && text.contains(r#"the checkpoint dense_1 {"type":"dense","units":6,"#), "{text}");
    // A weights-only checkpoint cannot be resumed.
    let err = train(&config(2, 0.003), dir.path(), Start::Resume(Checkpoint::load(&path).unwrap(), path.clone()), None).unwrap_err();
    assert!(err.to_string().contains("not a resumable checkpoint"), "{err}");
}

#[test]
fn a_diverging_run_stops_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    train(&config(1, 0.003), dir.path(), Start::Fresh, None).unwrap();
    let before = std::fs::read(dir.path().join("last.safetensors")).unwrap();
    let err = train(&config(2, 1e30), dir.path(), Start::Fresh, None).unwrap_err();
    assert!(matches!(err.downcast_ref::<TrainError>(), Some(TrainError::NotFinite { .. })), "{err}");
    assert!(err.to_string().contains("last good checkpoint is kept"));
    assert_eq!(std::fs::read(dir.path().join("last.safetensors")).unwrap(), before);
}

#[test]
fn resume_refuses_data_with_other_class_names_and_a_finished_run() {
    let dir = tempfile::tempdir().unwrap();
    train(&config(1, 0.003), dir.path(), Start::Fresh, None).unwrap();
    let path = dir.path().join("last.safetensors");
    let mut ckpt = Checkpoint::load(&path).unwrap();
    ckpt.classes = vec!["cats".into(), "dogs".into()];
    let err = train(&config(2, 0.003), dir.path(), Start::Resume(ckpt, path.clone()), None).unwrap_err().to_string();
    assert!(err.contains(r#"was trained on classes ["cats", "dogs"], but this run's data has ["crosses", "rings"]"#), "{err}");
    let err = train(&config(1, 0.003), dir.path(), resume(dir.path()), None).unwrap_err().to_string();
    assert!(err.contains("has already trained 1 epochs, and this run stops at epoch 1"), "{err}");
}

#[test]
fn early_stopping_marks_the_run_finished() {
    let dir = tempfile::tempdir().unwrap();
    // No epoch can improve by 1.0: Keras' rule stops at the end of epoch 2 (never the first).
    let text = format!("{CONFIG}\n[callbacks.early_stopping]\nmonitor = \"val_loss\"\nmin_delta = 1.0\n");
    let history = train(&with_config(&text, 4, 0.003), dir.path(), Start::Fresh, None).unwrap();
    assert_eq!(history.len(), 2);
    let state = Checkpoint::load(&dir.path().join("last.safetensors")).unwrap().state;
    assert_eq!((state.epoch, state.stopped), (2, true));
    // A run that was not stopped says so.
    let dir = tempfile::tempdir().unwrap();
    train(&config(1, 0.003), dir.path(), Start::Fresh, None).unwrap();
    assert!(!Checkpoint::load(&dir.path().join("last.safetensors")).unwrap().state.stopped);
}

/// A run that grows after epoch 2 (deepened and widened, [[grow]]) with a cosine schedule: runs
/// cut just before the growth and just after it resume to the history, weights and optimizer
/// state of one run, bit for bit; the growth is marked in the history, the optimizer's step
/// count never restarts, and the learning rate of every epoch is that of the same run without
/// growth.
#[test]
fn a_run_that_grows_resumes_exactly_across_the_growth() {
    let plain = format!("{}\n[train.schedule]\ntype = \"cosine\"\n", batchnorm_config().replace("[callbacks.reduce_lr]\nmonitor = \"loss\"\npatience = 1\nfactor = 0.5\n", ""));
    let text = format!("{plain}\n[[grow]]\nafter_epoch = 2\ndeepen = [\"max_pooling2d_1\"]\nwiden = [\"dense_1=1.5\"]\n");
    let cfg = with_config(&text, 4, 0.003);
    assert_eq!(cfg.growth.len(), 1);
    let straight = tempfile::tempdir().unwrap();
    let whole = train(&cfg, straight.path(), Start::Fresh, None).unwrap();
    let grown: Vec<bool> = whole.iter().map(|l| l.grown.is_some()).collect();
    assert_eq!(grown, [false, false, true, false], "the growth is marked on epoch 3");
    assert!(whole[2].grown.as_ref().unwrap().contains("deepen after max_pooling2d_1"));
    let a = Checkpoint::load(&straight.path().join("last.safetensors")).unwrap();
    assert_eq!(a.model, cfg.growth[0].model, "the run ends with the grown model");
    assert_eq!(a.optimizer.as_ref().unwrap().t, 4 * 6, "Adam's count goes on through the growth: 4 epochs of 6 steps");
    // The same schedule as without growth, epoch by epoch.
    let no_growth = train(&with_config(&plain, 4, 0.003), tempfile::tempdir().unwrap().path(), Start::Fresh, None).unwrap();
    assert_eq!(whole.iter().map(|l| l.lr).collect::<Vec<_>>(), no_growth.iter().map(|l| l.lr).collect::<Vec<_>>());
    // FLOPs count the model in force: the grown epochs cost more.
    let per_epoch: Vec<f64> = whole.iter().scan(0.0, |before, l| Some(l.flops - std::mem::replace(before, l.flops))).collect();
    assert!(per_epoch[1] == per_epoch[0] && per_epoch[2] > per_epoch[1] && per_epoch[3] == per_epoch[2], "{per_epoch:?}");
    // 44 images / batch 8 = 6 steps an epoch: cut at epoch 2's last step (before the growth)
    // and at epoch 3's second (after it).
    for (epoch, step) in [(2, 6), (3, 2)] {
        let cut = tempfile::tempdir().unwrap();
        let err = train(&cfg, cut.path(), Start::Fresh, Some(6 * (epoch - 1) + step)).unwrap_err();
        assert!(matches!(err.downcast_ref::<TrainError>(), Some(TrainError::Interrupted { .. })), "{err}");
        let saved = Checkpoint::load(&cut.path().join("last.safetensors")).unwrap();
        assert_eq!(saved.model == cfg.growth[0].model, epoch == 3, "the grown model in the checkpoint of epoch {epoch}");
        let after_cut = train(&cfg, cut.path(), resume(cut.path()), None).unwrap();
        assert_eq!(numbers(&after_cut), numbers(&whole), "cut in epoch {epoch}");
        let b = Checkpoint::load(&cut.path().join("last.safetensors")).unwrap();
        assert_eq!(a.params, b.params, "weights, cut in epoch {epoch}");
        assert_eq!(a.optimizer, b.optimizer, "optimizer state, cut in epoch {epoch}");
    }
}

/// A growth may restart the schedule (`schedule = "restart"`): before it, the rates of the run
/// without growth; from it, those of a run as long as the epochs left (without the warm-up for
/// `"restart_at_peak"`); a run cut after it resumes to the same run bit for bit; a restart whose
/// warm-up does not fit the epochs left is refused, naming the field.
#[test]
fn a_growth_that_restarts_the_schedule_runs_it_over_the_epochs_left() {
    let plain = format!("{}\n[train.schedule]\ntype = \"cosine\"\n", batchnorm_config().replace("[callbacks.reduce_lr]\nmonitor = \"loss\"\npatience = 1\nfactor = 0.5\n", ""));
    let text = format!("{plain}\n[[grow]]\nafter_epoch = 2\ndeepen = [\"max_pooling2d_1\"]\nschedule = \"restart\"\n");
    let cfg = with_config(&text, 4, 0.003);
    let whole = train(&cfg, tempfile::tempdir().unwrap().path(), Start::Fresh, None).unwrap();
    let lrs = |h: &[EpochLogs]| h.iter().map(|l| l.lr).collect::<Vec<_>>();
    let four = train(&with_config(&plain, 4, 0.003), tempfile::tempdir().unwrap().path(), Start::Fresh, None).unwrap();
    let two = train(&with_config(&plain, 2, 0.003), tempfile::tempdir().unwrap().path(), Start::Fresh, None).unwrap();
    assert_eq!(lrs(&whole), [lrs(&four)[..2].to_vec(), lrs(&two)].concat());
    assert!(whole[2].lr > whole[1].lr, "the rate is back up after the growth: {:?}", lrs(&whole));
    // With a 1-epoch warm-up, "restart_at_peak" starts over without it.
    let warm_plain = plain.replace("type = \"cosine\"\n", "type = \"cosine\"\nwarmup_epochs = 1\n");
    let at_peak = warm_plain.clone() + "\n[[grow]]\nafter_epoch = 2\ndeepen = [\"max_pooling2d_1\"]\nschedule = \"restart_at_peak\"\n";
    let peaked = train(&with_config(&at_peak, 4, 0.003), tempfile::tempdir().unwrap().path(), Start::Fresh, None).unwrap();
    let four_warm = train(&with_config(&warm_plain, 4, 0.003), tempfile::tempdir().unwrap().path(), Start::Fresh, None).unwrap();
    assert_eq!(lrs(&peaked), [lrs(&four_warm)[..2].to_vec(), lrs(&two)].concat());
    let cut = tempfile::tempdir().unwrap();
    assert!(train(&cfg, cut.path(), Start::Fresh, Some(6 * 2 + 2)).is_err());
    let after_cut = train(&cfg, cut.path(), resume(cut.path()), None).unwrap();
    assert_eq!(numbers(&after_cut), numbers(&whole));
    // CONFIG's run is 4 epochs: a restart after epoch 3 leaves 1, too few for a 2-epoch warm-up.
    let warm = text.replace("type = \"cosine\"\n", "type = \"cosine\"\nwarmup_epochs = 2\n").replace("after_epoch = 2", "after_epoch = 3");
    let e = Config::parse(Path::new("g.toml"), &warm).unwrap_err().to_string();
    assert!(e.contains("grow[0].schedule") && e.contains("restarts train.schedule over the 1 epochs after the growth"), "{e}");
    assert!(Config::parse(Path::new("g.toml"), &warm.replace("\"restart\"", "\"restart_at_peak\"")).is_ok(), "no warm-up to fit");
}

/// A growth on a plateau is decided by the run, at an epoch's start, from its history: with a
/// threshold no improvement meets and a patience of one epoch it comes after epoch 2 (the first
/// epoch with one epoch before its window), giving the run that grows after epoch 2 bit for
/// bit; runs cut before and after it resume to the same run, the growth marked where it was;
/// a threshold any improvement meets never grows.
#[test]
fn a_run_that_grows_on_a_plateau_decides_as_its_history_says_and_resumes_exactly() {
    let plain = format!("{}\n[train.schedule]\ntype = \"cosine\"\n", batchnorm_config().replace("[callbacks.reduce_lr]\nmonitor = \"loss\"\npatience = 1\nfactor = 0.5\n", ""));
    let ops = "deepen = [\"max_pooling2d_1\"]\nwiden = [\"dense_1=1.5\"]\n";
    let fixed = with_config(&format!("{plain}\n[[grow]]\nafter_epoch = 2\n{ops}"), 4, 0.003);
    let plateau = with_config(&format!("{plain}\n[[grow]]\non_plateau = {{ patience = 1, min_delta = 1e30 }}\n{ops}"), 4, 0.003);
    assert_eq!(plateau.growth[0].after_epoch, None, "the run decides");
    let whole = train(&plateau, tempfile::tempdir().unwrap().path(), Start::Fresh, None).unwrap();
    let at_two = train(&fixed, tempfile::tempdir().unwrap().path(), Start::Fresh, None).unwrap();
    let marks = |h: &[EpochLogs]| h.iter().map(|l| (l.grown.clone(), l.flops)).collect::<Vec<_>>();
    assert_eq!((numbers(&whole), marks(&whole)), (numbers(&at_two), marks(&at_two)), "the same run as growing after epoch 2");
    assert!(whole[2].grown.is_some());
    for (epoch, step) in [(2, 6), (3, 2)] {
        let cut = tempfile::tempdir().unwrap();
        assert!(train(&plateau, cut.path(), Start::Fresh, Some(6 * (epoch - 1) + step)).is_err());
        let after_cut = train(&plateau, cut.path(), resume(cut.path()), None).unwrap();
        assert_eq!((numbers(&after_cut), marks(&after_cut)), (numbers(&whole), marks(&whole)), "cut in epoch {epoch}");
    }
    let never = with_config(&format!("{plain}\n[[grow]]\non_plateau = {{ patience = 1, min_delta = -1e30 }}\n{ops}"), 4, 0.003);
    let h = train(&never, tempfile::tempdir().unwrap().path(), Start::Fresh, None).unwrap();
    assert!(h.iter().all(|l| l.grown.is_none()), "no plateau, no growth");
}
