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
    assert!(s.contains("Found 96 images belonging to 2 classes (crosses, rings): training"));
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
    assert!(err.contains("missing-folder/training_set: no such folder"), "{err}");
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
    assert!(s.contains("Model: \"run/best.safetensors\"") && s.contains("Non-trainable params: 224"), "{s}");
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

    let o = gpu_cnn(dir.path(), &["train", "wide.toml", "--init", "wide.safetensors", "--epochs", "1", "--limit", "64", "--out", "wide"]);
    assert!(o.status.success());
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
