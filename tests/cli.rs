//! The real binary, run in a fresh temporary folder; failures print the command and its output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn gpu_cnn(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_gpu-cnn")).args(args).current_dir(dir).output().expect("run gpu-cnn");
    eprintln!("$ gpu-cnn {}\n--- stdout\n{}--- stderr\n{}", args.join(" "), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

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
