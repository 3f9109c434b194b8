//! End-to-end training through the GPU path on small sets.

mod common;

use std::path::Path;

use common::gpu;
use gpu_cnn::config::Config;
use gpu_cnn::data::Dataset;
use gpu_cnn::run;
use gpu_cnn::record::EpochLogs;

const CONFIG: &str = r#"
[model]
input = [8, 8, 3]
layers = [
  { type = "conv2d", filters = 4, kernel = 3, padding = "same", activation = "relu" },
  { type = "maxpool2d" },
  { type = "flatten" },
  { type = "dropout", rate = 0.1 },
  { type = "dense", units = 8, activation = "relu" },
  { type = "dense", units = 1, activation = "sigmoid" },
]
[augment]
horizontal_flip = true
[train]
epochs = 4
batch_size = 10
learning_rate = 0.003
seed = 3
"#;

/// Dark images with a bright top half (class 0) or bottom half (class 1), plus noise:
/// separable, but only by looking at several pixels; horizontal flips keep the class.
fn halves(n: usize, seed: u64) -> Dataset {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let label = (i % 2) as u32;
        for y in 0..8 {
            for _x in 0..8 {
                let bright = (y < 4) == (label == 0);
                let v = if bright { 150.0 } else { 100.0 } + rng.random_range(-90.0..90.0);
                pixels.extend([v as u8; 3]);
            }
        }
        labels.push(label);
    }
    Dataset { classes: vec!["bottom".into(), "top".into()], shape: [8, 8, 3], pixels, labels, files: vec![] }
}

fn fit(dir: &Path) -> Vec<EpochLogs> {
    let (ctx, _) = gpu();
    let cfg = Config::parse(Path::new("test.toml"), CONFIG).unwrap();
    let folder = run::claim_folder(&cfg, dir, None, &[], false).unwrap();
    let (history, _) = run::train(ctx, &cfg, halves(95, 1), halves(40, 2), &folder, run::Start::Fresh, vec![], None).unwrap();
    history
}

#[test]
fn loss_falls_and_accuracy_rises_then_history_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let h = fit(dir.path());
    for l in &h {
        eprintln!("epoch {}: loss {:.4} acc {:.3} val_loss {:.4} val_acc {:.3}", l.epoch, l.loss, l.acc, l.val_loss, l.val_acc);
    }
    assert_eq!(h.len(), 4);
    assert!(h[3].loss < h[0].loss && h[3].val_loss < h[0].val_loss, "loss did not fall");
    assert!(h[3].acc > h[0].acc + 0.1, "training accuracy did not rise");
    assert!(h[3].val_acc >= 0.9, "val_acc {}", h[3].val_acc);
    assert!(h.iter().all(|l| l.lr == 0.003f32 as f64));
    // 95 images in batches of 10: the last batch is short, every image counts once.
    let csv = std::fs::read_to_string(dir.path().join("history.csv")).unwrap();
    assert!(csv.starts_with("epoch,loss,acc,val_loss,val_acc,lr,"), "{csv}");
    assert_eq!(csv.lines().count(), 5);
    let json: Vec<EpochLogs> = serde_json::from_str(&std::fs::read_to_string(dir.path().join("history.json")).unwrap()).unwrap();
    assert_eq!(json.len(), 4);

    // Same seed, same adapter: the same numbers, bit for bit (timings aside).
    let again = fit(tempfile::tempdir().unwrap().path());
    for (a, b) in h.iter().zip(&again) {
        assert_eq!((a.loss, a.acc, a.val_loss, a.val_acc), (b.loss, b.acc, b.val_loss, b.val_acc), "epoch {}", a.epoch);
    }
}
