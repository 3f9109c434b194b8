//! Freezing (Keras `trainable = False`): frozen tensors and moving statistics stay bit-identical
//! through training steps, a frozen step records fewer dispatches (no weight gradients, nothing
//! below the first trainable layer), and the summary counts frozen weights as non-trainable.
//! Gradients through a frozen BatchNorm are checked by finite differences in tests/network.rs,
//! and `unfreeze_after` with a schedule and resume in tests/checkpoint.rs.

mod common;

use std::path::Path;

use common::gpu;
use gpu_cnn::config::Config;
use gpu_cnn::gpu::kernels::Kernel;
use gpu_cnn::model::summary::summary;
use gpu_cnn::model::ModelSpec;
use gpu_cnn::network::{Network, Pass, Training};
use gpu_cnn::optimizer::{Kind, OptimizerConfig};
use rand::{rngs::StdRng, Rng, SeedableRng};

const CONFIG: &str = r#"
[model]
input = [11, 9, 3]
layers = [
  { type = "conv2d", filters = 5, kernel = 3, padding = "same", use_bias = false },
  { type = "batchnorm", activation = "relu" },
  { type = "maxpool2d" },
  { type = "conv2d", filters = 6, kernel = 3, padding = "same", use_bias = false },
  { type = "batchnorm", activation = "relu", trainable = false },
  { type = "flatten" },
  { type = "dense", units = 7, activation = "relu" },
  { type = "dense", units = 1, activation = "sigmoid" },
]
"#;

fn spec() -> ModelSpec {
    Config::parse(Path::new("freeze.toml"), CONFIG).unwrap().model
}

fn is_backward(k: Kernel) -> bool {
    matches!(
        k,
        Kernel::Conv2dBackwardInput { .. }
            | Kernel::Conv2dBackwardKernel { .. }
            | Kernel::Conv2dBackwardInputSubgroup
            | Kernel::Conv2dBackwardKernelSubgroup { .. }
            | Kernel::Maxpool2dBackward
            | Kernel::Maxpool2dBackwardQuads
            | Kernel::BatchnormBackwardPartial
            | Kernel::BatchnormBackwardFinish
            | Kernel::BatchnormBackwardInput
    )
}

#[test]
fn the_config_freezes_layers_and_the_summary_counts_them_as_non_trainable() {
    let s = spec();
    assert_eq!(s.frozen(), ["batch_normalization_2"]);
    let all = s.unfrozen();
    // batch_normalization_2's gamma and beta (6 + 6) join the 4 x (5 + 6) moving statistics.
    assert_eq!(all.param_count() - all.trainable_count(), 22);
    assert_eq!(s.param_count() - s.trainable_count(), 34);
    assert!(summary("f", &s).contains("Non-trainable params: 34"), "{}", summary("f", &s));
    let e = s.freeze(&["conv2d_9".into()]).unwrap_err();
    assert!(e.contains("conv2d_9") && e.contains("did you mean"), "{e}");
    // A run with every layer frozen is told that nothing trains (until it thaws).
    let mut cfg = gpu_cnn::config::Config::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.toml")).unwrap();
    let names: Vec<String> = cfg.model.layers.iter().map(|l| l.name.clone()).collect();
    cfg.model = cfg.model.freeze(&names).unwrap();
    let line = gpu_cnn::run::describe_freezing(&cfg).unwrap();
    assert!(line.ends_with("(0 trainable parameters; nothing trains: every layer is frozen)"), "{line}");
    cfg.train.unfreeze_after = Some(2);
    let line = gpu_cnn::run::describe_freezing(&cfg).unwrap();
    assert!(line.starts_with("Frozen through epoch 2: ") && line.ends_with("; nothing trains before epoch 3)"), "{line}");
}

#[test]
fn frozen_layers_hold_still_through_training_steps_and_record_fewer_dispatches() {
    check_frozen(&Training::default());
}

/// The same with SGD and weight decay on every tensor: decay, like the gradient step, leaves
/// frozen tensors alone (Keras decays only the trainable variables).
#[test]
fn frozen_layers_hold_still_under_sgd_with_weight_decay() {
    let optimizer = OptimizerConfig { kind: Kind::Sgd, momentum: 0.9, weight_decay: 0.1, ..Default::default() };
    check_frozen(&Training { optimizer, label_smoothing: 0.1 });
}

fn check_frozen(training: &Training) {
    let (ctx, kernels) = gpu();
    let base = spec().unfrozen();
    let frozen = spec().freeze(&["conv2d_1".into(), "batch_normalization_1".into(), "conv2d_2".into()]).unwrap();
    let batch = 5;
    let network = |spec| Network::training(ctx, kernels, spec, batch, 3, training).unwrap();
    let (mut all, mut net) = (network(&base), network(&frozen));

    // Below dense_1 nothing trains: no conv, pool or batchnorm backward kernel at all.
    let kinds = |n: &Network| n.dispatches(Pass::Train).map(|d| d.kernel).collect::<Vec<_>>();
    let (k_all, k_frozen) = (kinds(&all), kinds(&net));
    eprintln!("dispatches per step: {} trainable, {} frozen", k_all.len(), k_frozen.len());
    assert!(k_all.iter().filter(|&&k| is_backward(k)).count() >= 8, "{k_all:?}");
    assert_eq!(k_frozen.iter().filter(|&&k| is_backward(k)).count(), 0, "{k_frozen:?}");
    // Frozen batchnorms skip their batch statistics in the forward pass too.
    assert!(!k_frozen.contains(&Kernel::BatchnormStatsPartial) && k_all.contains(&Kernel::BatchnormStatsPartial));

    let mut rng = StdRng::seed_from_u64(4);
    let before = net.read_all(ctx, false).unwrap().0;
    for step in 0..3 {
        let images: Vec<f32> = (0..batch as usize * 11 * 9 * 3).map(|_| rng.random_range(0.0..1.0)).collect();
        let labels: Vec<u32> = (0..batch).map(|i| (i + step) % 2).collect();
        for n in [&mut net, &mut all] {
            n.upload(ctx, &images, &labels).unwrap();
            n.run(ctx, Pass::Train, 1e-2);
        }
    }
    let (after, moments) = net.read_all(ctx, true).unwrap();
    let trained = all.read_all(ctx, false).unwrap().0;
    for (i, slot) in net.slots.iter().enumerate() {
        let layer = &frozen.layers[slot.info.layer];
        if layer.trainable {
            assert_ne!(after[i], before[i], "{} trains", slot.info.name);
        } else {
            assert_eq!(after[i], before[i], "{} (frozen) is bit-identical", slot.info.name);
            assert_ne!(trained[i], before[i], "{} trains when not frozen", slot.info.name);
        }
    }
    // The optimizer keeps moments for the trainable tensors only: dense_1 and dense_2's kernels
    // and biases.
    let (m, _) = moments.unwrap();
    assert_eq!(m.len(), 4);
    // Unfrozen, the same optimizer starts again but the run's step (dropout's masks) goes on.
    let unfrozen = net.unfrozen(ctx, kernels).unwrap();
    assert_eq!((unfrozen.t, unfrozen.steps), (0, 3));
    assert_eq!(&unfrozen.training, training);
}
