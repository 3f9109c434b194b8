//! Runs the real binary in a folder, printing the command and its output (for failures).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn gpu_cnn(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_gpu-cnn")).args(args).current_dir(dir).output().expect("run gpu-cnn");
    eprintln!("$ gpu-cnn {}\n--- stdout\n{}--- stderr\n{}", args.join(" "), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}
