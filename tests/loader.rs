//! The checkpoint loader and the config parser on bad input: non-finite tensors, negative Adam
//! moments and metadata that contradicts the model are refused by name, and random mutations
//! of a valid checkpoint or config (a fixed number of cases) give a clean error or a valid
//! result, never a panic. No GPU needed.

use std::collections::HashMap;
use std::path::Path;

use gpu_cnn::checkpoint::{Checkpoint, CheckpointError, Optimizer};
use gpu_cnn::record::TrainState;
use gpu_cnn::config::Config;
use gpu_cnn::model::summary::summary;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Enough cases to cover every mutation kind many times, a few seconds in a debug build.
const CHECKPOINT_CASES: usize = 5000;
const CONFIG_CASES: usize = 100_000;

const CONFIG: &str = r#"
name = "small"
[model]
input = [12, 12, 3]
layers = [
  { type = "conv2d", filters = 4, kernel = 3, padding = "same", activation = "relu" },
  { type = "maxpool2d", pool = 2 },
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
limit = 100
[callbacks.checkpoint]
filepath = "{name}-{epoch:02}-{val_acc:.2}.safetensors"
[callbacks.reduce_lr]
monitor = "loss"
patience = 1
factor = 0.5
"#;

/// A resumable checkpoint after 2 epochs of 6 steps, written without a GPU.
fn resumable() -> Checkpoint {
    let cfg = Config::parse(Path::new("small.toml"), CONFIG).unwrap();
    let params = gpu_cnn::network::initial_params(&cfg.model, 3);
    let m: Vec<Vec<f32>> = params.iter().map(|p| p.iter().map(|v| v * 0.1).collect()).collect();
    let v: Vec<Vec<f32>> = params.iter().map(|p| p.iter().map(|v| v * v).collect()).collect();
    let logs = |epoch| gpu_cnn::record::EpochLogs { epoch, loss: 0.6, acc: 0.7, val_loss: 0.6, val_acc: 0.7, lr: 3e-3, step_size: 1e-3, train_seconds: 1.0, eval_seconds: 0.1, train_images_per_s: 40.0, flops: 0.0, wall_seconds: 0.0, grown: None };
    let state = TrainState { epoch: 2, lr: 3e-3, seed: 5, batch_size: 8, train_images: 44, history: vec![logs(1), logs(2)], ..Default::default() };
    Checkpoint { model: cfg.model, classes: vec!["crosses".into(), "rings".into()], params, optimizer: Some(Optimizer { config: Default::default(), t: 12, m, v }), state, provenance: None }
}

fn save_and_load(ckpt: &Checkpoint) -> Result<Checkpoint, CheckpointError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    ckpt.save(&path).unwrap();
    Checkpoint::load(&path)
}

#[test]
fn a_valid_checkpoint_loads() {
    assert_eq!(save_and_load(&resumable()).unwrap(), resumable());
}

#[test]
fn non_finite_tensors_and_negative_adam_moments_are_refused_by_name() {
    let mut c = resumable();
    c.params[1][2] = f32::NAN;
    let e = save_and_load(&c).unwrap_err();
    assert!(matches!(e, CheckpointError::NotFinite(_, ref n, 2, _) if n == "conv2d_1.bias"), "{e}");
    assert!(e.to_string().contains("tensor 'conv2d_1.bias' holds NaN at element 2"), "{e}");

    let mut c = resumable();
    c.optimizer.as_mut().unwrap().m[2][5] = f32::INFINITY;
    let e = save_and_load(&c).unwrap_err();
    assert!(matches!(e, CheckpointError::NotFinite(_, ref n, 5, _) if n == "adam.m.dense_1.kernel"), "{e}");

    let mut c = resumable();
    c.optimizer.as_mut().unwrap().v[3][1] = -0.5;
    let e = save_and_load(&c).unwrap_err();
    assert!(matches!(e, CheckpointError::NegativeMoment(_, ref n, 1, _) if n == "adam.v.dense_1.bias"), "{e}");
    assert!(e.to_string().contains("holds -0.5 at element 1"), "{e}");
    // A negative first moment is fine.
    let mut c = resumable();
    c.optimizer.as_mut().unwrap().m[3][1] = -0.5;
    save_and_load(&c).unwrap();
}

/// The metadata of `ckpt`'s file with `key` replaced by `value`, loaded.
fn with_metadata(ckpt: &Checkpoint, key: &str, value: &str) -> Result<Checkpoint, CheckpointError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    ckpt.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut meta: HashMap<String, String> = safetensors::SafeTensors::read_metadata(&bytes).unwrap().1.metadata().clone().unwrap();
    meta.insert(key.into(), value.into());
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
    let out = safetensors::serialize(tensors, Some(meta)).unwrap();
    Checkpoint::from_bytes(&path, &out)
}

#[test]
fn metadata_that_contradicts_the_model_is_refused() {
    let c = resumable();
    let state = |edit: &dyn Fn(&mut TrainState)| {
        let mut s = c.state.clone();
        edit(&mut s);
        serde_json::to_string(&s).unwrap()
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("input", "[16, 16, 3]".into(), "[16, 16, 3], but the model's input is [12, 12, 3]"),
        ("classes", "[\"a\", \"a\"]".into(), "name \"a\" is empty or repeated"),
        ("classes", "[\"a\", \"b\", \"c\"]".into(), "3 names for a 2-class model"),
        ("state", state(&|s| s.epoch = 4_000_000_000), "epoch 4000000000 with 2 epochs of history"),
        ("state", state(&|s| s.step = 7), "step 7 of an epoch of 6 steps"),
        ("state", state(&|s| s.history[1].epoch = 9), "history entry 2 is for epoch 9"),
        ("state", state(&|s| s.partial_metrics = [-1.0, 0.0, 0.0]), "partial metrics"),
        ("state", state(&|s| s.lr = -1.0), "learning rate -1"),
        ("adam_step", "13".into(), "13 optimizer steps, but epoch 2 step 0 of 6-step epochs is 12 steps"),
    ];
    for (key, value, want) in cases {
        let e = with_metadata(&c, key, &value).unwrap_err();
        assert!(matches!(e, CheckpointError::Metadata(_, k, _) if k == key), "{key}: {e}");
        assert!(e.to_string().contains(want), "{key}: {e}");
    }
}

/// One random change to a valid checkpoint file: bytes of the header or of the tensors
/// flipped, the file cut, a metadata value rewritten with extreme or malformed values, or a
/// float made non-finite.
fn mutate(bytes: &[u8], meta: &HashMap<String, String>, tensors: &[(String, safetensors::tensor::TensorView)], rng: &mut StdRng) -> Vec<u8> {
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut out = bytes.to_vec();
    match rng.random_range(0..5) {
        0 => {
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..header);
                out[i] = rng.random();
            }
        }
        1 => {
            let i = rng.random_range(header..out.len());
            out[i] = rng.random();
            let j = rng.random_range(header..out.len() - 4) & !3;
            out[j..j + 4].copy_from_slice(&[f32::NAN, f32::NEG_INFINITY, -1.0, 1e38][rng.random_range(0..4)].to_le_bytes());
        }
        2 => out.truncate(rng.random_range(0..out.len())),
        _ => {
            let keys: Vec<&String> = meta.keys().collect();
            let key = keys[rng.random_range(0..keys.len())];
            let mut value = meta[key].clone();
            let extremes = ["0", "-1", "4294967295", "4294967296", "18446744073709551615", "1e39", "NaN", "null", "[]", "\"x\"", "{}", "32768", "65536"];
            for _ in 0..rng.random_range(1..3) {
                // Replace one number (or, when there is none, any position) with an extreme value.
                let digits: Vec<usize> = value.char_indices().filter(|(_, c)| c.is_ascii_digit()).map(|(i, _)| i).collect();
                let at = if digits.is_empty() { rng.random_range(0..=value.len()) } else { digits[rng.random_range(0..digits.len())] };
                let end = value[at..].find(|c: char| !c.is_ascii_digit()).map_or(value.len(), |n| at + n);
                value.replace_range(at..end, extremes[rng.random_range(0..extremes.len())]);
            }
            if rng.random_bool(0.2) {
                value.truncate(rng.random_range(0..=value.len()));
            }
            let mut meta = meta.clone();
            meta.insert(key.clone(), value);
            out = safetensors::serialize(tensors.iter().cloned(), Some(meta)).unwrap();
        }
    }
    out
}

/// Runs `f` on `cases` random cases drawn from `seed` (a fixed count, so that every run,
/// here or in CI, tries the same cases): each must return without panicking.
fn fuzz(cases: usize, seed: u64, mut f: impl FnMut(&mut StdRng) -> String) {
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..cases {
        let case_seed = rng.random::<u64>();
        let mut case_rng = StdRng::seed_from_u64(case_seed);
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut case_rng))) {
            panic!("case seed {case_seed} panicked: {:?}", panic.downcast_ref::<String>().map(String::as_str).or(panic.downcast_ref::<&str>().copied()));
        }
    }
}

#[test]
fn random_mutations_of_a_checkpoint_load_or_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    resumable().save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let meta = safetensors::SafeTensors::read_metadata(&bytes).unwrap().1.metadata().clone().unwrap();
    let tensors = st.tensors();
    let (mut loaded, mut refused) = (0, 0);
    fuzz(CHECKPOINT_CASES, 1, |rng| {
        let mutated = mutate(&bytes, &meta, &tensors, rng);
        match Checkpoint::from_bytes(&path, &mutated) {
            Ok(c) => {
                loaded += 1;
                // A checkpoint that loads is usable: its model describes itself.
                summary("fuzz", &c.model)
            }
            Err(e) => {
                refused += 1;
                e.to_string()
            }
        }
    });
    eprintln!("{CHECKPOINT_CASES} mutated checkpoints: {loaded} loaded, {refused} refused");
    assert!(loaded > 0 && refused > 0);
}

#[test]
fn random_mutations_of_a_config_parse_or_fail_cleanly() {
    let tokens = ["0", "-1", "1", "3", "32768", "32769", "65536", "4294967295", "4294967296", "1e39", "nan", "inf", "\"same\"", "\"x\"", "[]", "[0, 0]", "{}", "true", "\"..\"", "\"{epoch\""];
    let lines: Vec<&str> = CONFIG.lines().collect();
    let (mut parsed, mut refused) = (0, 0);
    fuzz(CONFIG_CASES, 2, |rng| {
        let mut text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(0..text.len());
            match rng.random_range(0..4) {
                0 => {
                    text.remove(i);
                }
                1 => {
                    let copy = text[i].clone();
                    text.insert(i, copy);
                }
                _ => {
                    // Replace the value after one `=` (or one number) with an extreme token.
                    let line = &mut text[i];
                    let starts: Vec<usize> = line.match_indices("= ").map(|(k, _)| k + 2).collect();
                    if let Some(&at) = starts.get(rng.random_range(0..starts.len().max(1))) {
                        let end = line[at..].find([',', ' ', '}', ']']).map_or(line.len(), |n| at + n.max(1));
                        line.replace_range(at..end, tokens[rng.random_range(0..tokens.len())]);
                    }
                }
            }
        }
        match Config::parse(Path::new("fuzz.toml"), &text.join("\n")) {
            Ok(cfg) => {
                parsed += 1;
                format!("{}{}", summary(&cfg.name, &cfg.model), cfg.model.param_count())
            }
            Err(e) => {
                refused += 1;
                e.to_string()
            }
        }
    });
    eprintln!("{CONFIG_CASES} mutated configs: {parsed} parsed, {refused} refused");
    assert!(parsed > 0 && refused > 0);
}
