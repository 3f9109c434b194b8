//! The real binary, run in a fresh temporary folder; failures print the command and its output.

use std::path::Path;
use std::process::{Command, Output};

#[path = "common/bin.rs"]
mod bin;

use bin::{gpu_cnn, root};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn summary_prints_the_write_ups_parameter_counts() {
    let dir = tempfile::tempdir().unwrap();
    let m1 = root().join("configs/model1.toml");
    let o = gpu_cnn(dir.path(), &["summary", m1.to_str().unwrap()]);
    assert!(o.status.success());
    let s = stdout(&o);
    for want in ["conv2d_1 (Conv2D)", "(None, 64, 64, 32)", "max_pooling2d_1 (MaxPooling2D)", "(None, 32, 32, 32)", "flatten_1 (Flatten)", "(None, 32768)", "4,194,432", "Total params: 4,195,457"] {
        assert!(s.contains(want), "missing {want}");
    }
    let m2 = root().join("configs/model2.toml");
    let s = stdout(&gpu_cnn(dir.path(), &["summary", m2.to_str().unwrap()]));
    let counts: Vec<&str> = s.lines().filter(|l| l.contains("(None")).filter_map(|l| l.split_whitespace().last()).collect();
    assert_eq!(counts, ["896", "0", "9,248", "0", "0", "1,048,704", "129"]);
    assert!(s.contains("Total params: 1,058,977"));
}

#[test]
fn quickstart_trains_offline_and_writes_history() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = root().join("configs/quickstart.toml");
    let o = gpu_cnn(dir.path(), &["train", cfg.to_str().unwrap(), "--epochs", "1", "--limit", "96", "--out", "run"]);
    assert!(o.status.success());
    let s = stdout(&o);
    assert!(s.contains("Found 96 images belonging to 2 classes (crosses, rings): training (limit 96: at most 48 of each class, in both splits)"), "{s}");
    assert!(s.contains("Epoch 1/1 - ") && s.contains("val_acc: ") && s.contains("step size: "), "epoch line");
    assert!(dir.path().join("run/history.csv").is_file() && dir.path().join("run/history.json").is_file());
}

#[test]
fn config_errors_name_file_and_field_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("configs/quickstart.toml")).unwrap().replace("units = 32", "unit = 32");
    std::fs::write(dir.path().join("bad.toml"), text).unwrap();
    let o = gpu_cnn(dir.path(), &["train", "bad.toml"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.toml") && err.contains("unit") && err.contains("line"), "{err}");
    assert!(!err.contains("panicked"));

    std::fs::write(dir.path().join("binary.toml"), [0xffu8, 0xfe, 0x00, 0x80]).unwrap();
    let o = gpu_cnn(dir.path(), &["summary", "binary.toml"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("binary.toml: not UTF-8 text; a config is a TOML file"));

    let o = gpu_cnn(dir.path(), &["train", &root().join("configs/model1.toml").to_string_lossy(), "--data", "missing-folder"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("missing-folder: no such folder; expected a folder with training_set/ and test_set/"), "{err}");
}

#[test]
fn devices_lists_and_marks_an_adapter() {
    let o = gpu_cnn(&root(), &["devices"]);
    assert!(o.status.success());
    let s = stdout(&o);
    assert!(s.lines().any(|l| l.starts_with("* [")), "an adapter is marked as chosen");
    assert!(s.contains("storage binding") && s.contains("timestamps:"));
}

#[test]
fn ctrl_c_writes_a_resumable_checkpoint_and_the_printed_command_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = root().join("configs/quickstart.toml");
    let cfg = cfg.to_str().unwrap();
    // With a freezing schedule, which the checkpoint carries and a resume refuses as flags.
    let args = ["train", cfg, "--epochs", "2", "--limit", "64", "--out", "run", "--freeze", "conv2d_1", "--unfreeze-after=1"];
    let o = Command::new(env!("CARGO_BIN_EXE_gpu-cnn")).args(args).env("GPU_CNN_INTERRUPT_AFTER_STEPS", "3").current_dir(dir.path()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    eprintln!("{err}");
    assert_eq!(o.status.code(), Some(130), "interrupted runs exit non-zero");
    let command = err.lines().find_map(|l| l.strip_prefix("Resume with: ")).expect("the resume command is printed");
    assert!(command.ends_with("--resume run/last.safetensors") && !command.contains("freeze"), "{command}");
    // `summary` reads a checkpoint's model: epoch 1's best, conv2d_1 (3 x 3 x 3 x 8 + 8) frozen.
    let s = stdout(&gpu_cnn(dir.path(), &["summary", "run/best.safetensors"]));
    assert!(s.contains("Model: \"quickstart\"") && s.contains("Non-trainable params: 224"), "the run's name, not the file's: {s}");
    let words: Vec<&str> = command.split(' ').skip(1).collect();
    let o = gpu_cnn(dir.path(), &words);
    assert!(o.status.success());
    assert!(stdout(&o).contains("Epoch 2/2 - "));
    let history = std::fs::read_to_string(dir.path().join("run/history.csv")).unwrap();
    assert_eq!(history.lines().count(), 3, "{history}");

    // evaluate and predict work from the checkpoint alone.
    let data = dir.path().join("data");
    for (class, value) in [("crosses", 30u8), ("rings", 200u8)] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        image::RgbImage::from_pixel(40, 40, image::Rgb([value, 90, 255 - value])).save(data.join(class).join("one.png")).unwrap();
    }
    let o = gpu_cnn(dir.path(), &["evaluate", "run/best.safetensors", "--data", "data", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["loss"].as_f64().unwrap().is_finite() && v["accuracy"].as_f64().is_some());
    assert_eq!(v["confusion"].as_array().unwrap().len(), 2);
    let o = gpu_cnn(dir.path(), &["evaluate", "run/best.safetensors", "--data", "data"]);
    assert!(stdout(&o).contains("confusion matrix"));

    let o = gpu_cnn(dir.path(), &["predict", "run/best.safetensors", "data/rings/one.png", "data/crosses/one.png", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let first = &v.as_array().unwrap()[0];
    assert_eq!(first["file"], "data/rings/one.png");
    assert!(["crosses", "rings"].contains(&first["class"].as_str().unwrap()));
    let p = &first["probabilities"];
    assert!((p["crosses"].as_f64().unwrap() + p["rings"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    // An unreadable image among readable ones: they are predicted, it is named, and it fails.
    std::fs::write(dir.path().join("broken.png"), b"not a png").unwrap();
    let o = gpu_cnn(dir.path(), &["predict", "run/best.safetensors", "data/rings/one.png", "broken.png", "data/crosses/one.png"]);
    let (out, err) = (stdout(&o), String::from_utf8_lossy(&o.stderr).into_owned());
    assert!(!o.status.success() && out.lines().count() == 2 && out.contains("data/crosses/one.png: "), "{out}");
    assert!(err.contains("broken.png: cannot decode image") && err.contains("1 of 3 images could not be read"), "{err}");

    // One message, with the cause said once (an error's own text and its source chain must not
    // both print it).
    let o = gpu_cnn(dir.path(), &["predict", "missing.safetensors", "x.png"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("missing.safetensors: cannot read"), "{err}");
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    let o = gpu_cnn(dir.path(), &["train", "missing.toml"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("missing.toml: cannot read") && err.matches("os error 2").count() == 1, "{err}");
}

/// A class folder of flat-coloured PNGs, enough for evaluation.
fn class_folder(dir: &Path, classes: &[&str]) {
    for (k, class) in classes.iter().enumerate() {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..3u8 {
            image::RgbImage::from_pixel(32, 32, image::Rgb([40 * i, 120 * k as u8, 90])).save(dir.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
}

#[test]
fn transfer_grows_a_trained_model_and_the_result_trains_with_init() {
    let dir = tempfile::tempdir().unwrap();
    let quick = std::fs::read_to_string(root().join("configs/quickstart.toml")).unwrap();
    std::fs::write(dir.path().join("small.toml"), &quick).unwrap();
    // The target: wider second conv and dense layer, same input and classes.
    std::fs::write(dir.path().join("wide.toml"), quick.replace("filters = 16", "filters = 24").replace("units = 32", "units = 40")).unwrap();
    let o = gpu_cnn(dir.path(), &["train", "small.toml", "--epochs", "1", "--limit", "64", "--out", "small"]);
    assert!(o.status.success());
    class_folder(&dir.path().join("val"), &["crosses", "rings"]);

    let o = gpu_cnn(dir.path(), &["transfer", "--from", "small/best.safetensors", "--to", "wide.toml", "--strategy", "grow", "--dry-run"]);
    assert!(o.status.success() && stdout(&o).contains("Dry run: nothing written"));
    assert!(!dir.path().join("wide.safetensors").exists());

    let o = gpu_cnn(dir.path(), &["transfer", "--from", "small/best.safetensors", "--to", "wide.toml", "--out", "wide.safetensors", "--strategy", "grow", "--data", "val"]);
    assert!(o.status.success());
    let s = stdout(&o);
    assert!(s.contains("widened 16 -> 24") && s.contains("computes the same function as the source"), "{s}");
    // The same function: the same accuracy before any training.
    let line = s.lines().find(|l| l.starts_with("Validation accuracy before any training")).expect("accuracy line");
    let accs: Vec<&str> = line.split_whitespace().filter(|w| w.starts_with("0.") || w.starts_with("1.")).collect();
    assert_eq!(accs.len(), 2, "{line}");
    assert_eq!(accs[0].trim_end_matches(','), accs[1], "{line}");

    let o = gpu_cnn(dir.path(), &["transfer", "--from", "small/best.safetensors", "--to", "wide.toml", "--out", "prefix.safetensors"]);
    assert!(stdout(&o).contains("after the first mismatch (prefix mode, at conv2d_2)"));

    let o = gpu_cnn(dir.path(), &["train", "wide.toml", "--init", "wide.safetensors", "--epochs", "1", "--limit", "64", "--out", "wide", "--freeze", "copied"]);
    let s = stdout(&o);
    assert!(o.status.success() && s.contains("Starting from the weights of wide.safetensors (fresh optimizer)"), "{s}");
    // The widened layers are not "copied": the line says so, rather than freezing them silently.
    assert!(s.contains("--freeze copied: conv2d_1 copied unchanged; not frozen, as the transfer changed them: conv2d_2 (grown), dense_1 (grown), dense_2 (grown)"), "{s}");
    // A transferred checkpoint records no training: as an experiment's first stage its
    // first-epoch accuracy is "-".
    // (`{seed}` in the path: a checkpoint per seed.)
    std::fs::copy(dir.path().join("wide.safetensors"), dir.path().join("wide-0.safetensors")).unwrap();
    let exp = |seeds: &str| format!("stages = [{{ config = \"wide.toml\", checkpoint = \"wide-{{seed}}.safetensors\" }}, \"wide.toml\"]\nstrategies = [\"grow\"]\nseeds = {seeds}\nepochs = 1\nlimit = 64\nout = \"exp\"\n");
    // A seed without its checkpoint is refused before any seed trains.
    std::fs::write(dir.path().join("exp.toml"), exp("[0, 1]")).unwrap();
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("exp.toml: stages[0].checkpoint: wide-1.safetensors: no such file (for seed 1)"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.path().join("exp").exists());
    std::fs::write(dir.path().join("exp.toml"), exp("[0]")).unwrap();
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = std::fs::read_to_string(dir.path().join("exp/results.md")).unwrap();
    assert!(table.contains("| grow | 1 | ") && table.contains(" | - / 0."), "{table}");
    assert!(!table.contains("another run"), "{table}");
    // A first-stage checkpoint trained on other classes is refused before anything trains.
    for split in ["training_set", "test_set"] {
        class_folder(&dir.path().join("other").join(split), &["cats", "dogs"]);
    }
    std::fs::write(dir.path().join("other.toml"), exp("[0]").replace("out = \"exp\"", "out = \"exp-other\"\ndata = \"other\"")).unwrap();
    let o = gpu_cnn(dir.path(), &["experiment", "other.toml"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("wide-0.safetensors: was trained on classes [\"crosses\", \"rings\"], but other/training_set has [\"cats\", \"dogs\"]: the class names differ"), "{err}");
    assert!(!dir.path().join("exp-other").exists());
    // A source replaced after the growth: the grown stage no longer counts, and is not kept.
    std::fs::copy(dir.path().join("wide/last.safetensors"), dir.path().join("wide-0.safetensors")).unwrap();
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml", "--report"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = std::fs::read_to_string(dir.path().join("exp/results.md")).unwrap();
    assert!(!table.contains("| grow | ") && table.contains("- exp/seed-0/grow/2-wide: grown from wide-0.safetensors as it was then; wide-0.safetensors now holds another checkpoint"), "{table}");
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("exp/seed-0/grow/2-wide: grown from wide-0.safetensors as it was then") && err.contains("or --overwrite --arm grow --seed 0 to train it again"), "{err}");
    // The wrong layout is refused with a pointer to transfer.
    let o = gpu_cnn(dir.path(), &["train", "small.toml", "--init", "wide.safetensors", "--epochs", "1", "--limit", "64"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("gpu-cnn transfer"));
}

/// A finished run whose stage changed since (its config's model, another config file for
/// the stage) is neither kept nor counted: the rerun refuses it, the report lists it.
#[test]
fn an_experiment_refuses_and_the_report_leaves_out_a_run_of_a_changed_stage() {
    let dir = tempfile::tempdir().unwrap();
    let quick = std::fs::read_to_string(root().join("configs/quickstart.toml")).unwrap();
    std::fs::write(dir.path().join("s1.toml"), &quick).unwrap();
    std::fs::write(dir.path().join("s2.toml"), &quick).unwrap();
    let exp = "stages = [\"s1.toml\", \"s2.toml\"]\nstrategies = [\"prefix\"]\nseeds = [0]\nepochs = 1\nlimit = 32\nout = \"exp\"\n";
    std::fs::write(dir.path().join("exp.toml"), exp).unwrap();
    assert!(gpu_cnn(dir.path(), &["experiment", "exp.toml"]).status.success());
    // The last stage's config now asks for more filters.
    std::fs::write(dir.path().join("s2.toml"), quick.replace("filters = 16", "filters = 24")).unwrap();
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("exp/seed-0/prefix/2-s2: its model differs from s2.toml's at layer conv2d_2 (the config has ") && err.contains("or --overwrite --arm prefix --seed 0 to train it again"), "{err}");
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml", "--report"]);
    assert!(o.status.success());
    let table = std::fs::read_to_string(dir.path().join("exp/results.md")).unwrap();
    assert!(!table.contains("| prefix |") && !table.contains("| scratch |"), "{table}");
    for run in ["prefix/2-s2", "scratch/2-s2"] {
        assert!(table.contains(&format!("- exp/seed-0/{run}: its model differs from s2.toml's at layer conv2d_2")), "{run}:\n{table}");
    }
    // Another file for the first stage, under the same `out`.
    std::fs::write(dir.path().join("s2.toml"), &quick).unwrap();
    std::fs::write(dir.path().join("s0.toml"), quick.replace("units = 32", "units = 40")).unwrap();
    std::fs::write(dir.path().join("exp.toml"), exp.replace("\"s1.toml\"", "\"s0.toml\"")).unwrap();
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("exp/seed-0/first: its model differs from s0.toml's at layer dense_1"), "{err}");
}

/// The growth form: one stage whose run grows (at a fraction of the run), against its final
/// model from scratch for the run's epochs and for the steps that cost what the growing run
/// cost (to the step: its last epoch cut short); the report pairs the growing arm with both.
#[test]
fn a_growth_experiment_runs_the_growing_run_scratch_and_scratch_on_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let quick = std::fs::read_to_string(root().join("configs/quickstart.toml")).unwrap();
    // 32 images in 4 steps of 8 an epoch.
    let grows = quick.replace("epochs = 12", "epochs = 4").replace("batch_size = 32", "batch_size = 8") + "\n[[grow]]\nat_fraction = 0.5\nwiden = [\"conv2d_2=2\", \"dense_1=2\"]\n";
    std::fs::write(dir.path().join("g.toml"), grows).unwrap();
    std::fs::write(dir.path().join("exp.toml"), "stages = [\"g.toml\"]\nseeds = [3, 4]\nlimit = 32\nout = \"exp\"\n").unwrap();
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg = gpu_cnn::config::Config::load(&dir.path().join("g.toml")).unwrap();
    assert_eq!(cfg.growth[0].after_epoch, Some(2));
    // Two epochs of the small model and two of the wide one cost about three of the wide one.
    let budget = gpu_cnn::experiment::budget_epochs(&cfg);
    let per_image = |m: &gpu_cnn::model::ModelSpec| m.train_flops(1, 0, 0) as f64;
    let want = (2.0 * per_image(&cfg.model) + 2.0 * per_image(&cfg.growth[0].model)) / per_image(&cfg.growth[0].model);
    assert_eq!(budget, want.ceil() as u32);
    assert!(want < 4.0, "the growing run is cheaper than the final model's 4 epochs: {want}");
    let mut wide = cfg.clone();
    wide.model = cfg.growth[0].model.clone();
    let step = wide.epoch_flops(0, 32) / 4.0;
    for seed in [3, 4] {
        let history = |arm: &str| gpu_cnn::train::history::read(&dir.path().join(format!("exp/seed-{seed}/{arm}/1-g/history.json"))).unwrap();
        assert_eq!(history("grown").len(), 4);
        assert!(history("grown")[2].grown.is_some(), "the growing arm grew after epoch 2");
        assert_eq!(history("scratch").len(), 4);
        // The budget arm's FLOPs are the growing run's, less under one step, in at most
        // `budget` epochs (fewer where the last would have no step).
        let (grown, spent) = (history("grown")[3].flops, history("budget").last().unwrap().flops);
        assert!(spent <= grown && grown - spent < step, "budget {spent:e}, grown {grown:e}, a step {step:e}");
        assert_eq!(history("budget").len() as f64, (spent / (4.0 * step) - 1e-9).ceil(), "{spent:e}");
        assert!(history("budget").len() <= budget as usize);
        assert!(history("scratch").iter().all(|l| l.grown.is_none()));
    }
    let table = std::fs::read_to_string(dir.path().join("exp/results.md")).unwrap();
    assert!(table.contains("# Experiment: g grows in one run") && table.contains("| vs scratch | vs budget |"), "{table}");
    let row = table.lines().find(|l| l.starts_with("| grown | 2 |")).unwrap_or_else(|| panic!("{table}"));
    assert_eq!(row.matches(" points (95%, 2 seeds)").count(), 2, "paired with both scratch arms: {row}");
    assert!(table.lines().any(|l| l.starts_with("| budget | 2 |")), "{table}");
    // One row per run, each arm's included.
    for arm in ["grown", "scratch", "budget"] {
        assert_eq!(table.lines().filter(|l| l.contains(&format!("| {arm} | 1 | g |"))).count(), 2, "{arm}: {table}");
    }
    // The growing arm alone, for one seed.
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml", "--arm", "first"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("the experiment's arms are grown, scratch, budget"));
}

/// `budget_flops` trains the most steps that fit in it, counting each epoch's model (a growth
/// at a fraction of the run moves with the run's length), the schedule over those steps.
#[test]
fn a_budget_in_flops_trains_the_steps_that_fit() {
    let dir = tempfile::tempdir().unwrap();
    let quick = std::fs::read_to_string(root().join("configs/quickstart.toml")).unwrap().replace("epochs = 12", "epochs = 6");
    let path = dir.path().join("b.toml");
    let grows = format!("{quick}\n[[grow]]\nat_fraction = 0.5\nwiden = [\"dense_1=2\"]\n");
    let cfg = gpu_cnn::config::Config::parse(&path, &grows).unwrap();
    // 32 images (--limit 32), one step of 32: each epoch's cost by its model.
    let cost = |m: &gpu_cnn::model::ModelSpec| m.train_flops(32, 1, 12) as f64;
    let (small, wide) = (cost(&cfg.model), cost(&cfg.growth[0].model));
    // Four epochs: two small, two wide (the growth halfway); a fifth would not fit.
    let budget = 2.0 * small + 2.0 * wide + 0.5 * small;
    // Train `text` on 32 images within `budget`, into `out`: the plan it prints, its history.
    let train = |text: &str, budget: f64, out: &str, plan: &str| {
        std::fs::write(&path, text.replace("seed = 42", &format!("seed = 42\nbudget_flops = {budget:e}"))).unwrap();
        let o = gpu_cnn(dir.path(), &["train", "b.toml", "--limit", "32", "--out", out]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains(plan), "{}", String::from_utf8_lossy(&o.stdout));
        gpu_cnn::train::history::read(&dir.path().join(out).join("history.json")).unwrap()
    };
    let h = train(&grows, budget, "run", "training FLOPs: 4 of 6 epochs");
    assert_eq!(h.len(), 4);
    assert!(h[2].grown.is_some(), "grown halfway through the 4 epochs");
    assert!(h[3].flops <= budget, "{} > {budget}", h[3].flops);

    // 4 steps an epoch and the schedule a cosine: a budget of 2.5 epochs trains 2 and the
    // first 2 steps of a third, the cosine ending at the run's last step.
    let plain = format!("{}\n[train.schedule]\ntype = \"cosine\"\n", quick.replace("batch_size = 32", "batch_size = 8"));
    let cfg = gpu_cnn::config::Config::parse(&path, &plain).unwrap();
    let budget = 2.5 * cfg.epoch_flops(0, 32);
    let h = train(&plain, budget, "cut", "training FLOPs: 3 of 6 epochs, the last cut after 2 of its 4 steps");
    assert_eq!(h.len(), 3);
    assert!((h[2].flops - budget).abs() <= 1e-9 * budget, "{} for {budget}", h[2].flops);
    assert_eq!(h[2].lr, cfg.train.schedule.lr(9, 4, 10, cfg.train.learning_rate) as f64, "the last step's rate, the cosine over 10 steps");
}

/// The report counts only complete runs of the epochs asked and lists every other run there
/// with the reason; a missing or emptied history is written again from the run's checkpoint.
#[test]
fn the_experiment_report_counts_complete_runs_of_the_epochs_asked_and_lists_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let quick = std::fs::read_to_string(root().join("configs/quickstart.toml")).unwrap();
    std::fs::write(dir.path().join("s1.toml"), &quick).unwrap();
    std::fs::write(dir.path().join("s2.toml"), quick.replace("units = 32", "units = 40")).unwrap();
    std::fs::write(dir.path().join("exp.toml"), "stages = [\"s1.toml\", \"s2.toml\"]\nstrategies = [\"grow\"]\nseeds = [1, 2]\nepochs = 1\nlimit = 32\nout = \"exp\"\n").unwrap();
    assert!(gpu_cnn(dir.path(), &["experiment", "exp.toml"]).status.success());
    // A stage grows from a run whose history file is gone: its checkpoint holds the history.
    std::fs::remove_file(dir.path().join("exp/seed-1/first/history.json")).unwrap();
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml", "--arm", "grow", "--seed", "1", "--overwrite"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(gpu_cnn(dir.path(), &["experiment", "exp.toml", "--epochs", "2", "--seed", "1", "--arm", "scratch"]).status.success());
    // Counting 1 epoch, seed 1's 2-epoch scratch run is left out, not averaged with seed 2's.
    std::fs::write(dir.path().join("exp/seed-2/grow/2-s2/history.json"), "[]").unwrap();
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml", "--report"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = std::fs::read_to_string(dir.path().join("exp/results.md")).unwrap();
    assert!(table.contains("| scratch | 1 | ") && table.contains("| grow | 2 | ") && table.contains("- exp/seed-1/scratch/2-s2: its run was asked for 2 epochs (2 trained); this experiment asks for 1"), "{table}");
    assert!(table.contains("| 2 | grow | 2 | s2 | 1 |") && !table.contains("NaN"), "{table}");
    for run in ["seed-1/first", "seed-2/grow/2-s2"] {
        assert_eq!(gpu_cnn::train::history::read(&dir.path().join("exp").join(run).join("history.json")).unwrap().len(), 1, "{run}");
    }
    // Without a scratch run that counts, nothing is said to never reach it; a run whose
    // checkpoint is gone is listed.
    std::fs::remove_file(dir.path().join("exp/seed-2/scratch/2-s2/last.safetensors")).unwrap();
    assert!(gpu_cnn(dir.path(), &["experiment", "exp.toml", "--report"]).status.success());
    let table = std::fs::read_to_string(dir.path().join("exp/results.md")).unwrap();
    assert!(table.contains("| grow | 2 | ") && table.contains("- (no scratch run)") && !table.contains("never"), "{table}");
    assert!(table.contains("- exp/seed-2/scratch/2-s2: no last.safetensors"), "{table}");
}

/// A three-stage chain on a tiny synthetic set, two seeds: every run's history, the report
/// (rebuilt identically by --report) and the chart; then `plot` on two of the runs.
#[test]
fn experiment_runs_a_chain_over_seeds_and_reports_compute_and_plot_draws_runs() {
    let dir = tempfile::tempdir().unwrap();
    let quick = std::fs::read_to_string(root().join("configs/quickstart.toml")).unwrap();
    let second_block = "\n  { type = \"conv2d\", filters = 16, kernel = 3, padding = \"same\", activation = \"relu\" },\n  { type = \"maxpool2d\", pool = 2 },";
    std::fs::write(dir.path().join("s1.toml"), quick.replace(second_block, "")).unwrap();
    std::fs::write(dir.path().join("s2.toml"), &quick).unwrap();
    let normed = quick.replace(r#"padding = "same", activation = "relu" },"#, "padding = \"same\" },\n  { type = \"batchnorm\", activation = \"relu\" },");
    std::fs::write(dir.path().join("s3.toml"), normed).unwrap();
    let exp = "stages = [\"s1.toml\", \"s2.toml\", { config = \"s3.toml\", learning_rate = 0.0005, freeze = [\"copied\"], unfreeze_after = 1 }]\nstrategies = [\"grow\"]\nseeds = [1, 2]\nepochs = 2\nlimit = 64\nout = \"exp\"\n";
    std::fs::write(dir.path().join("exp.toml"), exp).unwrap();
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("Frozen through epoch 1: conv2d_1"), "the last stage trains its copied layers frozen first");
    assert!(String::from_utf8_lossy(&o.stdout).contains("not frozen, as the transfer changed them: batch_normalization_1 (grown (identity)), batch_normalization_2 (grown (identity))"));
    for seed in [1, 2] {
        for run in ["first", "grow/2-s2", "grow/3-s3", "scratch/3-s3"] {
            let h = gpu_cnn::train::history::read(&dir.path().join(format!("exp/seed-{seed}/{run}/history.json"))).unwrap();
            assert_eq!(h.len(), 2, "seed {seed} {run}");
            assert!(h[1].flops > h[0].flops && h[0].flops > 0.0 && h[1].wall_seconds > h[0].wall_seconds, "cumulative compute in {run}");
        }
    }
    let table = std::fs::read_to_string(dir.path().join("exp/results.md")).unwrap();
    assert!(table.contains("# Experiment: s1 -> s2 -> s3"), "{table}");
    for row in ["| grow | 2 | ", "| scratch | 2 | ", "| 1 | first | 1 | s1 | 2 |", "| 2 | grow | 3 | s3 | 2 |", "| 2 | scratch | 3 | s3 | 2 |"] {
        assert!(table.contains(row), "{row} missing from\n{table}");
    }
    // The grown arm against scratch, paired over the two seeds, with its cost, every stage counted.
    let grow_row = table.lines().find(|l| l.starts_with("| grow | 2 | ")).unwrap();
    let cells: Vec<&str> = grow_row.split(" | ").collect();
    assert!(cells[3].contains(" points (95%, 2 seeds): ") && cells[4].split(" ± ").all(|v| v.parse::<f64>().is_ok()), "{grow_row}");
    assert!(dir.path().join("exp/comparison.png").is_file());
    std::fs::remove_file(dir.path().join("exp/results.md")).unwrap();
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml", "--report"]);
    assert!(o.status.success());
    assert_eq!(std::fs::read_to_string(dir.path().join("exp/results.md")).unwrap(), table);
    // Running it again keeps every finished run; with more epochs, seed 1's runs resume.
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).matches(") finished in exp/seed-").count() == 8);
    assert_eq!(std::fs::read_to_string(dir.path().join("exp/results.md")).unwrap(), table);
    // Runs on other data are not taken for these: refused before anything trains.
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml", "--limit", "32"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("exp/seed-1/first: its run trained on the synthetic set of 1200 images, --limit 64 at batch size 32; this experiment asks for the synthetic set of 1200 images, --limit 32"), "{err}");
    // More epochs for seed 1: a grown stage whose source would train on is refused, saying how
    // to go on; the scratch run resumes.
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml", "--epochs", "3", "--seed", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("exp/seed-1/grow/2-s2: grown from exp/seed-1/first/best.safetensors, but its stage has no finished run (or checkpoint) to grow from now. ") && err.contains("or --overwrite --arm grow --seed 1 to train it again"), "{err}");
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml", "--epochs", "3", "--seed", "1", "--arm", "scratch"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).matches(", resumed").count() == 1);
    // Counting 3 epochs, the report leaves out the 2-epoch runs, naming them.
    let table = std::fs::read_to_string(dir.path().join("exp/results.md")).unwrap();
    assert!(table.contains("| scratch | 1 | ") && !table.contains("| grow |"), "{table}");
    for run in ["first", "scratch/3-s3"] {
        assert!(table.contains(&format!("- exp/seed-2/{run}: 2 of 3 epochs")), "{run}:\n{table}");
    }
    assert!(table.contains("- exp/seed-2/grow/2-s2: grown from exp/seed-2/first/best.safetensors, but its stage has no finished run"), "{table}");

    let o = gpu_cnn(dir.path(), &["plot", "exp/seed-1/grow/3-s3", "exp/seed-1/first/history.json", "-o", "both.svg"]);
    assert!(o.status.success());
    let svg = std::fs::read_to_string(dir.path().join("both.svg")).unwrap();
    assert!(svg.contains("3-s3 (validation)") && svg.contains("first (train)"));
    let o = gpu_cnn(dir.path(), &["plot", "exp/seed-1/first/last.safetensors", "-o", "c.png"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("last.safetensors: not a gpu-cnn history (a run folder's history.json)"));
    let o = gpu_cnn(dir.path(), &["plot", "exp/seed-1/first", "-o", "chart.jpg"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains(".png or .svg"));
}

/// A tiny four-class dataset (`dir/training_set/`, `dir/test_set/`): flat colours with noise,
/// one per class; the test split also holds one red image filed under `green`, which a
/// trained model gets wrong.
fn four_class_dataset(dir: &Path) {
    const COLOURS: [(&str, [u8; 3]); 4] = [("blue", [30, 40, 220]), ("green", [40, 200, 50]), ("red", [220, 40, 30]), ("white", [230, 230, 230])];
    for (split, n) in [("training_set", 16u32), ("test_set", 4)] {
        for (class, rgb) in COLOURS {
            let folder = dir.join(split).join(class);
            std::fs::create_dir_all(&folder).unwrap();
            for i in 0..n {
                let img = image::RgbImage::from_fn(16, 16, |x, y| image::Rgb(rgb.map(|v| v.saturating_add(((x * 7 + y * 13 + i * 5) % 24) as u8))));
                img.save(folder.join(format!("{i:02}.png"))).unwrap();
            }
        }
    }
    image::RgbImage::from_pixel(16, 16, image::Rgb([225, 35, 35])).save(dir.join("test_set/green/99-red.png")).unwrap();
}

/// A quickstart-sized four-class model (softmax head) for 16 x 16 images.
const FOUR_CLASS_CONFIG: &str = r#"
[model]
input = [16, 16, 3]
layers = [
  { type = "conv2d", filters = 4, kernel = 3, padding = "same", activation = "relu" },
  { type = "maxpool2d", pool = 2 },
  { type = "flatten" },
  { type = "dense", units = 4, activation = "softmax" },
]

[train]
epochs = 8
batch_size = 8
learning_rate = 0.02
seed = 1
"#;

/// `evaluate` and `predict` on both kinds of data folder, on four classes: the split a dataset
/// folder gives and the line saying so, per-class precision / recall / F1, top-k, the most
/// confidently wrong images and their contact sheet, and one JSON entry per image.
#[test]
fn evaluate_and_predict_read_either_kind_of_folder_and_report_four_classes() {
    let dir = tempfile::tempdir().unwrap();
    four_class_dataset(&dir.path().join("colours"));
    std::fs::write(dir.path().join("four.toml"), FOUR_CLASS_CONFIG).unwrap();
    let o = gpu_cnn(dir.path(), &["train", "four.toml", "--data", "colours", "--out", "run"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("Found 17 images belonging to 4 classes (blue, green, red, white) in colours/test_set: validation"), "the split's folder is named");

    // A dataset folder: its test_set/ is evaluated, and the report says so.
    let o = gpu_cnn(dir.path(), &["evaluate", "run/best.safetensors", "--data", "colours", "--sheet", "wrong.png", "--wrong", "3"]);
    assert!(o.status.success());
    let s = stdout(&o);
    assert!(s.starts_with("Evaluating on colours/test_set\n17 images: loss "), "{s}");
    assert!(s.contains(", top-3 accuracy ") && s.contains("precision    recall  f1-score   support") && s.contains("macro avg"), "{s}");
    assert!(s.contains("most confidently wrong (file: true class -> predicted, probability):") && s.contains("colours/test_set/green/99-red.png: green -> red ("), "{s}");
    assert!(s.contains("Wrong images: wrong.png ("), "{s}");
    assert_eq!(image::image_dimensions(dir.path().join("wrong.png")).unwrap().0, gpu_cnn::dataset::stats::sheet_size(1).0);
    // The sheet is an output like any other: kept unless --overwrite.
    let o = gpu_cnn(dir.path(), &["evaluate", "run/best.safetensors", "--data", "colours", "--sheet", "wrong.png"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("wrong.png"));

    // A class folder, as JSON: every number, and one entry per image.
    let o = gpu_cnn(dir.path(), &["evaluate", "run/best.safetensors", "--data", "colours/test_set", "--json", "--top-k", "2"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["data"], "colours/test_set");
    assert_eq!(v["top_k"]["k"], 2);
    let per_class = v["per_class"].as_array().unwrap();
    assert_eq!(per_class.iter().map(|c| c["class"].as_str().unwrap()).collect::<Vec<_>>(), ["blue", "green", "red", "white"]);
    assert_eq!(per_class.iter().map(|c| c["support"].as_u64().unwrap()).collect::<Vec<_>>(), [4, 5, 4, 4]);
    for key in ["precision", "recall", "f1"] {
        let macro_avg = per_class.iter().map(|c| c[key].as_f64().unwrap()).sum::<f64>() / 4.0;
        assert!((v["macro_avg"][key].as_f64().unwrap() - macro_avg).abs() < 1e-12, "{key}");
    }
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 17);
    let wrong_files = files.iter().filter(|f| f["label"] != f["predicted"]).count();
    let accuracy = 1.0 - wrong_files as f64 / 17.0;
    assert!((v["accuracy"].as_f64().unwrap() - accuracy).abs() < 1e-6);
    let wrong = v["wrong"].as_array().unwrap();
    assert_eq!(wrong.len(), wrong_files.min(10));
    assert!(wrong.windows(2).all(|w| w[0]["probability"].as_f64() >= w[1]["probability"].as_f64()), "most confident first");
    assert!(wrong.iter().any(|w| w["file"] == "colours/test_set/green/99-red.png" && w["predicted"] == "red"), "{wrong:?}");

    // predict: a class folder (recursively, sorted), a dataset folder, and files, mixed.
    let o = gpu_cnn(dir.path(), &["predict", "run/best.safetensors", "colours/test_set", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let predicted: Vec<&str> = v.as_array().unwrap().iter().map(|p| p["file"].as_str().unwrap()).collect();
    assert_eq!(predicted.len(), 17);
    assert_eq!((predicted[0], predicted[4], predicted[9]), ("colours/test_set/blue/00.png", "colours/test_set/green/00.png", "colours/test_set/red/00.png"));
    let o = gpu_cnn(dir.path(), &["predict", "run/best.safetensors", "colours", "colours/test_set/red/01.png"]);
    assert!(o.status.success());
    let s = stdout(&o);
    assert_eq!(s.lines().count(), 4 * 16 + 17 + 1);
    assert!(s.lines().last().unwrap().starts_with("colours/test_set/red/01.png: red ("), "{s}");
}

/// What is not a data folder is refused before any image is decoded, saying what was expected.
#[test]
fn a_data_folder_of_neither_kind_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    four_class_dataset(&dir.path().join("colours"));
    std::fs::write(dir.path().join("four.toml"), FOUR_CLASS_CONFIG).unwrap();
    let o = gpu_cnn(dir.path(), &["train", "four.toml", "--data", "colours", "--epochs", "1", "--limit", "8", "--out", "run"]);
    assert!(o.status.success());
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    std::fs::create_dir_all(dir.path().join("flat")).unwrap();
    std::fs::copy(dir.path().join("colours/test_set/red/00.png"), dir.path().join("flat/a.png")).unwrap();
    // A corrupt image would be reported (skipped with a warning) if it were decoded.
    std::fs::write(dir.path().join("colours/test_set/red/broken.png"), b"not a png").unwrap();
    let expected = "expected a folder with training_set/ and test_set/, or a class folder (one sub-folder of images per class";
    for (data, found) in [("four.toml", "four.toml: a file, not a folder"), ("empty", "empty: an empty folder"), ("flat", "flat: 1 image but no class sub-folders (to classify them, use `gpu-cnn predict`)"), ("missing", "missing: no such folder")] {
        let o = gpu_cnn(dir.path(), &["evaluate", "run/best.safetensors", "--data", data]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(&format!("{found}; {expected}")), "{data}: {err}");
    }
    // Another model's classes: refused before decoding (once: "classes [test_set, training_set]").
    let o = gpu_cnn(dir.path(), &["evaluate", "run/best.safetensors", "--data", "colours/test_set/red/.."]);
    assert!(o.status.success(), "a class folder by any path");
    std::fs::create_dir_all(dir.path().join("pets/cats")).unwrap();
    std::fs::create_dir_all(dir.path().join("pets/dogs")).unwrap();
    std::fs::write(dir.path().join("pets/cats/broken.png"), b"not a png").unwrap();
    std::fs::write(dir.path().join("pets/dogs/broken.png"), b"not a png").unwrap();
    let o = gpu_cnn(dir.path(), &["evaluate", "run/best.safetensors", "--data", "pets"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("pets: classes [\"cats\", \"dogs\"] differ from the training set's [\"blue\", \"green\", \"red\", \"white\"]") && !err.contains("skipping"), "{err}");
    // Training needs both splits; a class folder has no validation split.
    let o = gpu_cnn(dir.path(), &["train", "four.toml", "--data", "colours/training_set", "--out", "other"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("colours/training_set: a class folder (blue, green, red, white); training needs a folder with training_set/ and test_set/"), "{err}");
    // The same rule in experiment (its TOML's `data` too) and dataset stats.
    std::fs::write(dir.path().join("exp.toml"), "stages = [\"four.toml\", \"four.toml\"]\ndata = \"colours/training_set\"\nout = \"exp\"\n").unwrap();
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("colours/training_set: a class folder (blue, green, red, white); training needs"));
    assert!(!dir.path().join("exp").exists());
    let o = gpu_cnn(dir.path(), &["dataset", "stats", "empty"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains(&format!("empty: an empty folder; {expected}")));
    // predict: a folder without images, and a missing path, before any image is read.
    let o = gpu_cnn(dir.path(), &["predict", "run/best.safetensors", "flat/a.png", "empty"]);
    assert!(!o.status.success() && stdout(&o).is_empty() && String::from_utf8_lossy(&o.stderr).contains("empty: no images in it or its sub-folders"));
    let o = gpu_cnn(dir.path(), &["predict", "run/best.safetensors", "flat", "nothing.png"]);
    assert!(!o.status.success() && stdout(&o).is_empty() && String::from_utf8_lossy(&o.stderr).contains("nothing.png: cannot read"));
}

/// Without XDG_RUNTIME_DIR (servers, containers), Mesa's Wayland probe printed
/// "error: XDG_RUNTIME_DIR is invalid or not set" twice, which read as gpu-cnn's error.
#[test]
fn no_xdg_runtime_dir_prints_no_wayland_error() {
    for value in [None, Some("relative/dir")] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpu-cnn"));
        cmd.arg("devices").current_dir(root());
        match value {
            None => cmd.env_remove("XDG_RUNTIME_DIR"),
            Some(v) => cmd.env("XDG_RUNTIME_DIR", v),
        };
        let o = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && !err.contains("XDG_RUNTIME_DIR"), "{value:?}: {err}");
    }
}

#[test]
fn experiment_help_describes_the_stage_chain() {
    let s = stdout(&gpu_cnn(&root(), &["experiment", "--help"]));
    assert!(s.contains("stages = [\"a.toml\", \"b.toml\"") && s.contains("(the `scratch` arm)") && s.contains("--report"), "{s}");
}

#[test]
fn grow_writes_the_next_config_and_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = root().join("configs/quickstart.toml");
    let cfg = cfg.to_str().unwrap();
    assert!(gpu_cnn(dir.path(), &["train", cfg, "--epochs", "1", "--limit", "32", "--out", "run"]).status.success());
    let grow = ["grow", cfg, "--deepen", "max_pooling2d_1", "--widen", "dense_1=2", "-o", "next.toml", "--from", "run/best.safetensors"];
    let o = gpu_cnn(dir.path(), &grow);
    assert!(o.status.success());
    let s = stdout(&o);
    assert!(s.contains("deepen after max_pooling2d_1: conv2d 8 filters 3x3 + relu") && s.contains("widen dense_1: units 32 -> 64"), "{s}");
    assert!(s.contains("conv2d_2 (Conv2D)              -               grown (identity)") && s.contains("the new model computes the same function as the source"), "the transfer report: {s}");
    assert!(s.contains("Wrote next.safetensors (train it with: gpu-cnn train next.toml --init next.safetensors)"), "{s}");
    let text = std::fs::read_to_string(dir.path().join("next.toml")).unwrap();
    assert!(text.starts_with("# Grown by `gpu-cnn grow`") && text.contains("[data.synthetic]"), "{text}");
    // The grown checkpoint is the grown config's model.
    assert!(gpu_cnn(dir.path(), &["train", "next.toml", "--init", "next.safetensors", "--epochs", "1", "--limit", "32", "--out", "run2"]).status.success());
    // Nothing is replaced unasked; a layer name that is not the model's is refused with a hint.
    let o = gpu_cnn(dir.path(), &grow);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("already exists; pass --overwrite"));
    let o = gpu_cnn(dir.path(), &["grow", cfg, "--deepen", "conv2d_3", "-o", "other.toml"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no layer `conv2d_3` in the model; did you mean `conv2d_1`?"));
    assert!(!dir.path().join("other.toml").exists());
}

/// Names a checkpoint keeps its own tensors under are refused when the config is read, naming
/// the file, the layer's field and line (they made `Checkpoint::save` panic at the first epoch).
#[test]
fn layer_names_a_checkpoint_uses_itself_are_refused_at_config_time() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("configs/quickstart.toml")).unwrap();
    let text = text.replace("{ type = \"dense\", units = 32,", "{ type = \"dense\", name = \"a\", units = 32,").replace("{ type = \"dense\", units = 1,", "{ type = \"dense\", name = \"adam.m.a\", units = 1,");
    std::fs::write(dir.path().join("adam.toml"), text).unwrap();
    let o = gpu_cnn(dir.path(), &["summary", "adam.toml"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("adam.toml: field `model.layers[6].name` (line 14): \"adam.m.a\": names starting with `adam.` or `sgd.` are where a checkpoint keeps"), "{err}");
}

/// A config that echoes megabytes (an unknown key) is reported in a few lines, still saying
/// which fields there are.
#[test]
fn config_errors_clip_what_they_echo_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = "x".repeat(1 << 20);
    let text = std::fs::read_to_string(root().join("configs/quickstart.toml")).unwrap();
    std::fs::write(dir.path().join("long.toml"), format!("{key} = 1\n{text}")).unwrap();
    let o = gpu_cnn(dir.path(), &["summary", "long.toml"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.len() < 2000, "{} bytes of error", err.len());
    assert!(err.contains("long.toml: ") && err.contains(&format!("... ({} characters)", 1 << 20)) && err.contains("expected one of `name`, `model`"), "{err}");
}

/// Names read from files (here a checkpoint's class names) are printed with their control
/// characters escaped: a name cannot drive the terminal.
#[test]
fn names_from_files_are_printed_without_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let keras = root().join("tests/fixtures/keras");
    let (h5, toml) = (keras.join("model1.h5"), keras.join("model1.toml"));
    let classes = "cats\u{1b}]0;owned\u{7}\u{1b}[2J,dogs\r";
    let o = gpu_cnn(dir.path(), &["import", "keras", h5.to_str().unwrap(), "--config", toml.to_str().unwrap(), "-o", "m.safetensors", "--classes", classes]);
    assert!(o.status.success());
    let o = gpu_cnn(dir.path(), &["export", "m.safetensors", "-o", "m.onnx"]);
    assert!(o.status.success());
    assert!(!o.stdout.iter().any(|&b| b == 0x1b || b == 0x07 || b == b'\r'), "raw control characters printed");
    assert!(stdout(&o).contains("in the order cats\\u{1b}]0;owned\\u{7}\\u{1b}[2J, dogs\\r."), "{}", stdout(&o));
}

/// A Keras file given where a checkpoint belongs says how to convert it.
#[test]
fn a_keras_file_as_a_checkpoint_points_to_import_keras() {
    let dir = tempfile::tempdir().unwrap();
    let h5 = root().join("tests/fixtures/keras/model1.h5");
    let cfg = root().join("configs/quickstart.toml");
    let o = gpu_cnn(dir.path(), &["train", cfg.to_str().unwrap(), "--init", h5.to_str().unwrap(), "--out", "run"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("model1.h5: is a Keras file (HDF5 or .keras archive), not a gpu-cnn checkpoint; convert it first with `gpu-cnn import keras "), "{err}");
    let o = gpu_cnn(dir.path(), &["summary", root().join("tests/fixtures/keras/model2.keras").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("model2.keras: is a Keras file") && err.contains("gpu-cnn import keras"), "{err}");
}

/// A run that grows trains every layer: freezing flags are refused, naming the config.
#[test]
fn a_growing_run_refuses_freezing() {
    let dir = tempfile::tempdir().unwrap();
    let quick = std::fs::read_to_string(root().join("configs/quickstart.toml")).unwrap();
    std::fs::write(dir.path().join("q.toml"), quick + "
[[grow]]
after_epoch = 1
deepen = [\"max_pooling2d_1\"]
").unwrap();
    let o = gpu_cnn(dir.path(), &["train", "q.toml", "--freeze", "conv2d_1", "--epochs", "2", "--limit", "32", "--out", "run"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--freeze and --unfreeze-after do not apply to q.toml: a run with [[grow]] trains every layer"), "{err}");
    assert!(!dir.path().join("run").exists());
}
