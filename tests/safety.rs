//! Output safety, validated overrides and bounded sizes, through the real binary in a fresh
//! temporary folder; failures print the command and its output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gpu_cnn::checkpoint::Checkpoint;
use gpu_cnn::record::TrainState;
use gpu_cnn::config::Config;

#[path = "common/bin.rs"]
mod bin;

use bin::{gpu_cnn, root};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The quickstart config as `q.toml` in `dir`, with `edit` applied to its text.
fn quickstart(dir: &Path, edit: impl Fn(String) -> String) {
    let text = std::fs::read_to_string(root().join("configs/quickstart.toml")).unwrap();
    std::fs::write(dir.join("q.toml"), edit(text)).unwrap();
}

/// Fails unless the command failed with a clear message containing every one of `want`.
fn refused(o: &Output, want: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "the command succeeded");
    assert!(!err.contains("panicked"), "{err}");
    for w in want {
        assert!(err.contains(w), "missing {w:?} in {err}");
    }
}

/// Temporary files and locks left anywhere under `dir`.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(leftovers(&path));
        } else if path.to_string_lossy().ends_with(".tmp") || path.ends_with(gpu_cnn::files::LOCK_FILE) {
            out.push(path);
        }
    }
    out
}

#[test]
fn rerunning_a_config_refuses_and_keeps_the_first_runs_best_model() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path(), |t| t);
    let args = ["train", "q.toml", "--epochs", "1", "--limit", "32"];
    assert!(gpu_cnn(dir.path(), &args).status.success());
    let best = dir.path().join("checkpoints/q/best.safetensors");
    let first = std::fs::read(&best).unwrap();
    let history = std::fs::read(dir.path().join("checkpoints/q/history.json")).unwrap();

    let o = gpu_cnn(dir.path(), &args);
    refused(&o, &["checkpoints/q: already holds a run (best.safetensors", "history.json, last.safetensors); nothing was written"]);
    let err = stderr(&o);
    assert!(err.contains("q.toml --epochs 1 --limit 32 --resume checkpoints/q/last.safetensors"), "{err}");
    assert!(err.contains("q.toml --epochs 1 --limit 32 --overwrite"), "{err}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("Epoch 1"), "refused before training");
    assert_eq!(std::fs::read(&best).unwrap(), first, "the first run's best model is byte-identical");
    assert_eq!(std::fs::read(dir.path().join("checkpoints/q/history.json")).unwrap(), history);
    assert_eq!(leftovers(dir.path()), Vec::<PathBuf>::new());

    // The printed resume command continues the run; --overwrite replaces it.
    let o = gpu_cnn(dir.path(), &["train", "q.toml", "--epochs", "2", "--limit", "32", "--resume", "checkpoints/q/last.safetensors"]);
    assert!(o.status.success());
    let o = gpu_cnn(dir.path(), &["train", "q.toml", "--epochs", "2", "--limit", "32", "--resume", "checkpoints/q/last.safetensors"]);
    refused(&o, &["has already trained 2 epochs", "larger --epochs"]);
    // Resuming into another folder would leave its best model behind: refused, nothing made.
    let o = gpu_cnn(dir.path(), &["train", "q.toml", "--epochs", "3", "--limit", "32", "--resume", "checkpoints/q/last.safetensors", "--out", "other"]);
    refused(&o, &["checkpoints/q/last.safetensors: --resume continues a run in the folder it was saved in, not in other", "pass --out checkpoints/q, or --init"]);
    assert!(!dir.path().join("other").exists());
    assert!(gpu_cnn(dir.path(), &["train", "q.toml", "--epochs", "1", "--limit", "32", "--overwrite"]).status.success());
    assert_eq!(leftovers(dir.path()), Vec::<PathBuf>::new());
}

#[test]
fn a_second_run_on_a_locked_folder_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path(), |t| t);
    let lock = dir.path().join("run").join(gpu_cnn::files::LOCK_FILE);
    let mut first = spawn_until(dir.path(), None, &["train", "q.toml", "--epochs", "3", "--limit", "64", "--out", "run"], || holds_lock(&lock));
    let o = gpu_cnn(dir.path(), &["train", "q.toml", "--epochs", "1", "--limit", "32", "--out", "run", "--overwrite"]);
    refused(&o, &["run: another run is writing here", &format!("pid {} on ", first.id()), "q.toml --epochs 3 --limit 64 --out run"]);
    assert!(first.wait().unwrap().success(), "the first run is not disturbed");
    assert!(!lock.exists(), "the lock is released at the end");

    // A lock whose process is gone is taken over, with a note.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    std::fs::write(&lock, format!("pid {}\nhost {}\ncommand gpu-cnn train q.toml\n", u32::MAX - 1, host.trim())).unwrap();
    let o = gpu_cnn(dir.path(), &["train", "q.toml", "--epochs", "1", "--limit", "32", "--out", "run", "--overwrite"]);
    assert!(o.status.success());
    assert!(stderr(&o).contains("taking over the lock of pid 4294967294"), "{}", stderr(&o));
    assert!(!lock.exists());
}

/// Whether `lock` names its holder (pid, host and command lines).
fn holds_lock(lock: &Path) -> bool {
    std::fs::read_to_string(lock).unwrap_or_default().lines().count() >= 3
}

/// Starts gpu-cnn in `dir` (under `wrapper`, if any, such as `nohup`) and returns it, still
/// running, once `ready` holds.
fn spawn_until(dir: &Path, wrapper: Option<&str>, args: &[&str], ready: impl Fn() -> bool) -> std::process::Child {
    let bin = env!("CARGO_BIN_EXE_gpu-cnn");
    let mut command = match wrapper {
        Some(w) => {
            let mut c = Command::new(w);
            c.arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let mut child = command.args(args).current_dir(dir).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let started = std::time::Instant::now();
    while !ready() {
        assert!(child.try_wait().unwrap().is_none(), "gpu-cnn {} ended before the moment to stop it", args.join(" "));
        assert!(started.elapsed().as_secs() < 120, "gpu-cnn {}: not ready after two minutes", args.join(" "));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

fn signal(child: &std::process::Child, name: &str) {
    assert!(Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap().success());
}

/// Sends SIGTERM (as `kill`, `timeout` and Slurm's `scancel` do) and waits for the exit.
fn terminate(child: std::process::Child) -> Output {
    signal(&child, "TERM");
    let o = child.wait_with_output().unwrap();
    eprintln!("--- stderr of the terminated run\n{}", stderr(&o));
    assert_eq!(o.status.code(), Some(130), "exit status 130 after a termination signal");
    assert!(!stderr(&o).contains("panicked"));
    o
}

#[test]
fn a_termination_signal_leaves_no_folder_locked_and_the_runs_resume() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path(), |t| t);
    let root = dir.path();
    // Loading data (the 10,000 shared CIFAR-10 images take seconds; the signal comes within
    // 20 ms of the lock): nothing listens yet, so the process ends at once, lock removed.
    let cifar = bin::root().join("../shared/datasets/cifar10-catdog");
    let lock = root.join("loading").join(gpu_cnn::files::LOCK_FILE);
    let o = terminate(spawn_until(root, None, &["train", "q.toml", "--data", cifar.to_str().unwrap(), "--out", "loading"], || holds_lock(&lock)));
    assert_eq!(stderr(&o).trim(), "Interrupted");
    assert_eq!(leftovers(root), Vec::<PathBuf>::new());
    assert!(!root.join("loading").exists(), "the folder it created, still empty, is removed");

    // Mid-training: the run stops after its step with a resumable checkpoint, also when the
    // signal comes twice at once (as `timeout` sends it: to the process, then to its group).
    let child = spawn_until(root, None, &["train", "q.toml", "--epochs", "50", "--limit", "64", "--out", "run"], || root.join("run/history.json").is_file());
    signal(&child, "TERM");
    let o = terminate(child);
    assert!(stderr(&o).contains("Resume with: "), "a resumable stop");
    assert_eq!(leftovers(root), Vec::<PathBuf>::new());
    assert!(gpu_cnn(root, &["train", "q.toml", "--epochs", "50", "--limit", "64", "--out", "run", "--resume", "run/last.safetensors"]).status.success());

    // Under nohup a hangup is ignored, as nohup promises: the run goes on to its last epoch.
    let child = spawn_until(root, Some("nohup"), &["train", "q.toml", "--epochs", "20", "--limit", "64", "--out", "nohup"], || root.join("nohup/history.json").is_file());
    signal(&child, "HUP");
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(gpu_cnn::train::history::read(&root.join("nohup/history.json")).unwrap().len(), 20);

    // An experiment stopped as soon as it has claimed its folders (loading data, starting the
    // GPU or training, whichever it reached): no folder stays locked, and the same command
    // finishes every run.
    std::fs::write(root.join("exp.toml"), "stages = [\"q.toml\", \"q.toml\"]\nstrategies = [\"grow\"]\nseeds = [0]\nepochs = 2\nlimit = 64\nout = \"exp\"\n").unwrap();
    let lock = root.join("exp/seed-0/first").join(gpu_cnn::files::LOCK_FILE);
    terminate(spawn_until(root, None, &["experiment", "exp.toml"], || holds_lock(&lock)));
    assert_eq!(leftovers(root), Vec::<PathBuf>::new());
    assert!(gpu_cnn(root, &["experiment", "exp.toml"]).status.success());
    for run in ["first", "grow/2-q", "scratch/2-q"] {
        let h = gpu_cnn::train::history::read(&root.join("exp/seed-0").join(run).join("history.json")).unwrap();
        assert_eq!(h.len(), 2, "{run}");
    }
}

#[test]
fn transfer_never_writes_over_its_input_or_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path(), |t| t);
    let cfg = Config::load(&dir.path().join("q.toml")).unwrap();
    let ckpt = Checkpoint {
        model: cfg.model.clone(),
        classes: vec!["crosses".into(), "rings".into()],
        params: gpu_cnn::network::initial_params(&cfg.model, 1),
        optimizer: None,
        state: TrainState::default(),
        provenance: None,
    };
    let from = dir.path().join("a.safetensors");
    ckpt.save(&from).unwrap();
    let bytes = std::fs::read(&from).unwrap();
    for out in ["a.safetensors", "./a.safetensors"] {
        let o = gpu_cnn(dir.path(), &["transfer", "--from", "a.safetensors", "--to", "q.toml", "--out", out, "--overwrite"]);
        refused(&o, &["is this command's own input (--from)"]);
    }
    assert_eq!(std::fs::read(&from).unwrap(), bytes, "the source is untouched");
    std::fs::write(dir.path().join("taken.safetensors"), "keep me").unwrap();
    let o = gpu_cnn(dir.path(), &["transfer", "--from", "a.safetensors", "--to", "q.toml", "--out", "taken.safetensors"]);
    refused(&o, &["taken.safetensors: already exists; pass --overwrite to replace it"]);
    assert_eq!(std::fs::read_to_string(dir.path().join("taken.safetensors")).unwrap(), "keep me");
    let o = gpu_cnn(dir.path(), &["transfer", "--from", "a.safetensors", "--to", "q.toml", "--out", "taken.safetensors", "--overwrite"]);
    assert!(o.status.success());
    Checkpoint::load(&dir.path().join("taken.safetensors")).unwrap();
    assert_eq!(leftovers(dir.path()), Vec::<PathBuf>::new());
}

#[test]
fn overrides_are_validated_like_the_config() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path(), |t| t);
    for (flag, field) in [("--epochs", "train.epochs"), ("--batch-size", "train.batch_size"), ("--limit", "train.limit")] {
        let o = gpu_cnn(dir.path(), &["train", "q.toml", flag, "0"]);
        refused(&o, &[&format!("q.toml: field `{field}` (set by {flag}): expected at least 1")]);
    }
    // The same check, and message, for the config file itself.
    quickstart(dir.path(), |t| t.replace("epochs = 12", "epochs = 0"));
    refused(&gpu_cnn(dir.path(), &["train", "q.toml"]), &["q.toml: field `train.epochs`: expected at least 1"]);
    // A setting that fits the config's epochs but not the flag's names the flag too.
    quickstart(dir.path(), |t| t.replace("epochs = 12", "epochs = 12\nschedule = { type = \"cosine\", warmup_epochs = 2 }"));
    refused(&gpu_cnn(dir.path(), &["train", "q.toml", "--epochs", "2"]), &["q.toml: field `train.schedule.warmup_epochs` (with --epochs 2): expected fewer than the run's 2 epochs, got 2"]);
    refused(&gpu_cnn(dir.path(), &["evaluate", "x.safetensors", "--data", "d", "--batch-size", "0"]), &["--batch-size"]);
    // A batch too large for the adapter says how large one may be.
    quickstart(dir.path(), |t| t);
    let o = gpu_cnn(dir.path(), &["train", "q.toml", "--batch-size", "1000000"]);
    refused(&o, &["batch size 1000000 is too large for adapter", "images fit (lower --batch-size, or train.batch_size in a config)"]);
    // ... and the size it names builds (every buffer fits).
    let largest = stderr(&o).split("at most ").nth(1).and_then(|t| t.split(' ').next()).map(str::to_string).unwrap();
    let o = gpu_cnn(dir.path(), &["train", "q.toml", "--batch-size", &largest, "--limit", "8", "--epochs", "1", "--out", "largest"]);
    assert!(o.status.success(), "--batch-size {largest}: {}", stderr(&o));
    std::fs::remove_dir_all(dir.path().join("largest")).unwrap();
    assert!(!dir.path().join("checkpoints").exists(), "nothing was written");
}

#[test]
fn bad_output_paths_are_refused_before_the_first_step() {
    let dir = tempfile::tempdir().unwrap();
    fn with_filepath(p: &'static str) -> impl Fn(String) -> String {
        move |t| format!("{t}\n[callbacks.checkpoint]\nfilepath = \"{p}\"\n")
    }
    quickstart(dir.path(), with_filepath("w-{epoc:02}.safetensors"));
    let o = gpu_cnn(dir.path(), &["train", "q.toml", "--epochs", "1", "--limit", "32"]);
    refused(&o, &["field `callbacks.checkpoint.filepath`", "unknown field {epoc}"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("Epoch"));
    quickstart(dir.path(), with_filepath("history.json"));
    refused(&gpu_cnn(dir.path(), &["train", "q.toml"]), &["\"history.json\" can name history.json, which the run writes itself"]);
    quickstart(dir.path(), with_filepath("../outside.safetensors"));
    refused(&gpu_cnn(dir.path(), &["train", "q.toml"]), &["must name a file inside the run folder"]);
    assert!(!dir.path().join("checkpoints").exists());

    // Even told to overwrite, a run never writes over its own config.
    quickstart(dir.path(), with_filepath("{name}.toml"));
    let config = std::fs::read_to_string(dir.path().join("q.toml")).unwrap();
    let o = gpu_cnn(dir.path(), &["train", "q.toml", "--epochs", "1", "--limit", "32", "--out", ".", "--overwrite"]);
    refused(&o, &["q.toml: is this command's own input (its config)"]);
    assert_eq!(std::fs::read_to_string(dir.path().join("q.toml")).unwrap(), config);

    quickstart(dir.path(), |t| format!("name = \"../escape\"\n{t}"));
    refused(&gpu_cnn(dir.path(), &["train", "q.toml"]), &["field `name`", "cannot name a folder"]);

    quickstart(dir.path(), |t| t);
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let o = gpu_cnn(dir.path(), &["train", "q.toml", "--epochs", "1", "--limit", "32", "--out", "file"]);
    refused(&o, &["file: is a file, but the run's output must be a folder"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("Found"), "refused before loading data");

    // A read-only folder (root writes anyway, so only where permissions hold).
    use std::os::unix::fs::PermissionsExt;
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(ro.join("probe"), "x").is_err() {
        let o = gpu_cnn(dir.path(), &["train", "q.toml", "--epochs", "1", "--limit", "32", "--out", "ro/run"]);
        refused(&o, &["ro/run: cannot write"]);
        assert!(!String::from_utf8_lossy(&o.stdout).contains("Found"));
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn an_oversized_dense_layer_is_refused_before_allocation() {
    let dir = tempfile::tempdir().unwrap();
    // 8 x 8 x 16 = 1024 inputs to 3,000,000 units: 3 x 10^9 parameters, 12 GB, above any adapter's
    // single-buffer limit here and more than this machine could allocate on the host.
    quickstart(dir.path(), |t| t.replace("units = 32", "units = 3000000"));
    let o = gpu_cnn(dir.path(), &["summary", "q.toml"]);
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("3,075,000,000") && s.contains("Total params: 3,078,001,393"), "{s}");
    let started = std::time::Instant::now();
    let o = gpu_cnn(dir.path(), &["train", "q.toml", "--epochs", "1", "--limit", "32"]);
    refused(&o, &["buffer 'parameters' needs", "bytes but adapter"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("Found"), "refused before loading data");
    assert!(started.elapsed().as_secs() < 60);

    // Past 32 bits: refused when the config is read, with the true size.
    quickstart(dir.path(), |t| t.replace("units = 32", "units = 5000000"));
    refused(&gpu_cnn(dir.path(), &["summary", "q.toml"]), &["dense_1: its kernel holds 5120000000 values"]);
    quickstart(dir.path(), |t| t.replace("input = [32, 32, 3]", "input = [32768, 32768, 3]").replace("filters = 16", "filters = 64"));
    refused(&gpu_cnn(dir.path(), &["summary", "q.toml"]), &["flatten_1", "flattens 4294967296 values"]);
}

#[test]
fn an_experiment_refuses_a_previous_experiments_folder_and_a_repeated_strategy() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path(), |t| t);
    let exp = |strategies: &str| format!("source = \"q.toml\"\ntarget = \"q.toml\"\nstrategies = {strategies}\nepochs = 1\nlimit = 32\nout = \"exp\"\n");
    std::fs::write(dir.path().join("exp.toml"), exp("[\"prefix\", \"prefix\"]")).unwrap();
    refused(&gpu_cnn(dir.path(), &["experiment", "exp.toml"]), &["exp.toml: field `strategies`: prefix is listed twice"]);

    std::fs::write(dir.path().join("exp.toml"), exp("[\"prefix\"]")).unwrap();
    let run = dir.path().join("exp/seed-42/prefix/2-q");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("history.json"), "[]").unwrap();
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml"]);
    refused(&o, &["exp/seed-42/prefix/2-q: already holds a run (history.json); nothing was written", "replace its files: ", "experiment exp.toml --overwrite"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("== seed"), "refused before the first run");
    assert!(!dir.path().join("exp/seed-42/first/history.json").exists());
    assert_eq!(std::fs::read_to_string(run.join("history.json")).unwrap(), "[]");
    // An arm whose earlier stage has not run, and an unknown arm or seed.
    refused(&gpu_cnn(dir.path(), &["experiment", "exp.toml", "--arm", "prefix", "--overwrite"]), &["stage 1 has not finished (run --arm first --seed 42 first, with the same flags)"]);
    refused(&gpu_cnn(dir.path(), &["experiment", "exp.toml", "--arm", "grow"]), &["--arm grow: the experiment's arms are first, prefix, scratch"]);
    refused(&gpu_cnn(dir.path(), &["experiment", "exp.toml", "--seed", "7"]), &["--seed 7: the experiment's seeds are [42]"]);
    // A report that cannot write its table names the file.
    std::fs::create_dir_all(dir.path().join("exp/results.md")).unwrap();
    refused(&gpu_cnn(dir.path(), &["experiment", "exp.toml", "--report"]), &["exp/results.md: cannot write: "]);
    std::fs::remove_dir(dir.path().join("exp/results.md")).unwrap();
    // A report before any arm has finished claims no chart, and leaves an earlier one alone.
    std::fs::write(dir.path().join("exp/comparison.png"), "earlier").unwrap();
    let o = gpu_cnn(dir.path(), &["experiment", "exp.toml", "--report"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("No chart drawn (no strategy arm or scratch has finished); table: exp/results.md"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(dir.path().join("exp/comparison.png")).unwrap(), "earlier");
    std::fs::remove_file(dir.path().join("exp/comparison.png")).unwrap();
    // A stage config that is not there names the stage.
    std::fs::write(dir.path().join("bad.toml"), "stages = [\"q.toml\", \"nosuch.toml\"]\n").unwrap();
    refused(&gpu_cnn(dir.path(), &["experiment", "bad.toml"]), &["bad.toml: stages[1] (paths are relative to the working folder): nosuch.toml: cannot read"]);
    // A typo in a stage's table names the stage and the field.
    std::fs::write(dir.path().join("bad.toml"), "stages = [\"q.toml\", { config = \"q.toml\", unfreze_after = 1 }]\n").unwrap();
    refused(&gpu_cnn(dir.path(), &["experiment", "bad.toml"]), &["bad.toml: field `stages[1]`: unknown field `unfreze_after`, expected one of"]);
    // A later stage's settings are checked before the first stage trains.
    std::fs::write(dir.path().join("bad.toml"), "stages = [\"q.toml\", { config = \"q.toml\", freeze = [\"conv2d_9\"] }]\nstrategies = [\"prefix\"]\nepochs = 1\nout = \"exp2\"\n").unwrap();
    let o = gpu_cnn(dir.path(), &["experiment", "bad.toml"]);
    refused(&o, &["bad.toml: field `stages[1].freeze`: in q.toml, no layer named 'conv2d_9' to freeze"]);
    std::fs::write(dir.path().join("bad.toml"), "stages = [\"q.toml\", { config = \"q.toml\", schedule = { type = \"cosine\", warmup_epochs = 1 } }]\nstrategies = [\"prefix\"]\nepochs = 1\nout = \"exp2\"\n").unwrap();
    refused(&gpu_cnn(dir.path(), &["experiment", "bad.toml"]), &["q.toml: field `train.schedule.warmup_epochs` (with the settings of stages[1] in bad.toml): expected fewer than the run's 1 epochs, got 1"]);
    let text = std::fs::read_to_string(dir.path().join("q.toml")).unwrap();
    std::fs::write(dir.path().join("q2.toml"), text.replace("[data.synthetic]\ntrain = 1200\ntest = 400", "[data]\ntrain = \"nowhere/training_set\"\ntest = \"nowhere/test_set\"")).unwrap();
    std::fs::write(dir.path().join("bad.toml"), "stages = [\"q.toml\", \"q2.toml\"]\nstrategies = [\"prefix\"]\nepochs = 1\nlimit = 32\nout = \"exp2\"\n").unwrap();
    refused(&gpu_cnn(dir.path(), &["experiment", "bad.toml"]), &["nowhere/training_set: no such folder"]);
    assert!(!dir.path().join("exp2").exists(), "nothing trained, no folder left");
    assert_eq!(leftovers(dir.path()), Vec::<PathBuf>::new());
}

/// Outputs are regular files in their own place: a fifo or device node (or a link to one) is
/// never replaced, even with --overwrite; nothing is written inside a data folder; a replaced
/// file keeps its permissions.
#[cfg(unix)]
#[test]
fn outputs_replace_only_regular_files_outside_the_data_and_keep_their_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    quickstart(d, |t| t);
    let run = ["train", "q.toml", "--limit", "32", "--out", "run"];
    assert!(gpu_cnn(d, &[&run[..], &["--epochs", "1"]].concat()).status.success());
    let mode = |f: &str| std::fs::metadata(d.join("run").join(f)).unwrap().permissions().mode() & 0o777;
    let files = ["last.safetensors", "best.safetensors", "history.json", "history.csv"];
    for f in files {
        std::fs::set_permissions(d.join("run").join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let o = gpu_cnn(d, &[&run[..], &["--epochs", "2", "--resume", "run/last.safetensors"]].concat());
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Epoch 2/2 - "));
    assert_eq!(files.map(mode), [0o600; 4], "{files:?} keep their permissions");

    let mkfifo = |p: &str| assert!(Command::new("mkfifo").arg(p).current_dir(d).status().unwrap().success());
    mkfifo("fifo.onnx");
    std::os::unix::fs::symlink("fifo.onnx", d.join("link.onnx")).unwrap();
    let mut special = vec![("fifo.onnx", "fifo"), ("link.onnx", "fifo")];
    // Root (as here) may make device nodes: /dev/null's twin.
    if Command::new("mknod").args(["null.onnx", "c", "1", "3"]).current_dir(d).status().is_ok_and(|s| s.success()) {
        special.push(("null.onnx", "character device"));
    }
    for (name, kind) in special {
        refused(&gpu_cnn(d, &["export", "run/last.safetensors", "-o", name, "--overwrite"]), &[&format!("{name}: is a {kind}, not a regular file")]);
        assert!(!std::fs::metadata(d.join(name)).unwrap().is_file(), "{name} is still a {kind}");
    }
    // Where a run writes its history: refused before training.
    std::fs::create_dir(d.join("run2")).unwrap();
    mkfifo("run2/history.json");
    let o = gpu_cnn(d, &["train", "q.toml", "--limit", "32", "--epochs", "1", "--out", "run2", "--overwrite"]);
    refused(&o, &["run2/history.json: is a fifo, not a regular file"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("Epoch"));

    // Inside a data folder: any split folder, and the config's own data whatever its name.
    refused(&gpu_cnn(d, &["train", "q.toml", "--out", "data/training_set/cats/run"]), &["data/training_set/cats/run: lies inside the data folder", "training_set, where every file is read"]);
    assert!(!d.join("data").exists());
    std::fs::write(d.join("pics.toml"), std::fs::read_to_string(d.join("q.toml")).unwrap().replace("[data.synthetic]\ntrain = 1200\ntest = 400", "[data]\ntrain = \"pics/train\"\ntest = \"pics/test\"")).unwrap();
    assert!(std::fs::read_to_string(d.join("pics.toml")).unwrap().contains("pics/train"));
    refused(&gpu_cnn(d, &["train", "pics.toml", "--out", "pics/test/cats/run"]), &["pics/test/cats/run: lies inside the data folder"]);
    refused(&gpu_cnn(d, &["plot", "run", "-o", "data/test_set/dogs/curves.png"]), &["lies inside the data folder"]);
    refused(&gpu_cnn(d, &["export", "run/last.safetensors", "-o", "data/training_set/m.onnx"]), &["lies inside the data folder"]);
    assert!(!d.join("data").exists() && !d.join("pics").exists());
}

/// A closed stdout (`gpu-cnn train | head`) stops the run as Ctrl-C does: exit status 130 and a
/// resumable checkpoint, never a panic.
#[test]
fn a_closed_stdout_stops_training_with_a_resumable_checkpoint() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    quickstart(d, |t| t);
    let args = ["train", "q.toml", "--epochs", "50", "--limit", "256", "--out", "run"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpu-cnn")).args(args).current_dir(d).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Read up to the first progress line (training has begun: before it, a closed stdout ends
    // the process at once, as Ctrl-C does), then close the pipe as `head` does.
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    while !lines.next().expect("a progress line").unwrap().starts_with("Epoch 1/50 step") {}
    drop(lines);
    let o = child.wait_with_output().unwrap();
    eprintln!("--- stderr\n{}", stderr(&o));
    assert_eq!(o.status.code(), Some(130), "exit status 130, as after Ctrl-C");
    assert!(!stderr(&o).contains("panicked") && stderr(&o).contains("Resume with: "));
    let last = Checkpoint::load(&d.join("run/last.safetensors")).unwrap();
    assert!(last.optimizer.is_some() && last.state.epoch < 50, "a resumable checkpoint of the stopped run");
    assert_eq!(leftovers(d), Vec::<PathBuf>::new());
}
