//! `gpu-cnn experiment`: does growth pay, in compute? A chain of stages (`stages = [model1,
//! model2, model3]`; the older `source` / `target` form is the two-stage chain) is trained
//! once per strategy: the first stage from scratch, each later stage from the previous one's
//! best checkpoint by that strategy (with its own epochs, learning rate, schedule and
//! freezing). The last stage is also trained from scratch with the same seed, and everything
//! repeats for each seed. Every run trains into its own folder
//! (`<out>/seed-<s>/<arm>/<k>-<model>/`), so each arm and seed can run on its own machine
//! (`--arm`, `--seed`); `results.md` and `comparison.png` are rebuilt from whatever histories
//! have finished (`--report`), counting compute in training FLOPs and wall time.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::checkpoint::Checkpoint;
use crate::config::{Config, ConfigError};
use crate::gpu::GpuContext;
use crate::files::RunFolder;
use crate::run::{self, Overrides, Start};
use crate::train::schedule::Schedule;
use crate::record::EpochLogs;
use crate::train::Callback;
use crate::transfer::Strategy;
use crate::verdict::{Paired, Spread};

/// One stage of the chain: a config, and what the experiment changes in it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub config: PathBuf,
    /// Epochs of this stage's runs (default: the experiment's `epochs`, else the config's).
    pub epochs: Option<u32>,
    /// The learning rate and schedule of the runs that start from a transfer (Net2Net starts
    /// a grown model at about 1/10 of the teacher's rate); the scratch run keeps its config's.
    pub learning_rate: Option<f32>,
    pub schedule: Option<Schedule>,
    /// Layers a transferred run holds still: names, or `copied` (as `train --freeze`).
    #[serde(default)]
    pub freeze: Vec<String>,
    pub unfreeze_after: Option<u32>,
    /// The first stage only: take this trained checkpoint instead of training it (`{seed}` in
    /// the path stands for the seed, for a checkpoint per seed).
    pub checkpoint: Option<PathBuf>,
}

impl Stage {
    fn of(config: PathBuf) -> Self {
        Self { config, epochs: None, learning_rate: None, schedule: None, freeze: Vec::new(), unfreeze_after: None, checkpoint: None }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    /// Each a config path or a [`Stage`] table (read one by one, so an error names its stage).
    stages: Option<Vec<toml::Value>>,
    /// The two-stage form: `source` (or its `source_checkpoint`) grown into `target`.
    source: Option<PathBuf>,
    source_checkpoint: Option<PathBuf>,
    source_epochs: Option<u32>,
    target: Option<PathBuf>,
    #[serde(default = "all_strategies")]
    strategies: Vec<Strategy>,
    /// Default epochs of every stage (of the target only, in the two-stage form).
    epochs: Option<u32>,
    seeds: Option<Vec<u64>>,
    data: Option<PathBuf>,
    limit: Option<usize>,
    out: Option<PathBuf>,
}

fn all_strategies() -> Vec<Strategy> {
    vec![Strategy::Prefix, Strategy::Grow]
}

/// `configs/experiment.toml`. Paths are relative to the working folder, like `--data`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentConfig {
    /// The file it was read from (errors in its stages name it).
    pub file: PathBuf,
    pub stages: Vec<Stage>,
    pub strategies: Vec<Strategy>,
    /// Every run repeats for each seed (default: the first stage config's seed).
    pub seeds: Option<Vec<u64>>,
    /// A folder with training_set/ and test_set/ for every stage.
    pub data: Option<PathBuf>,
    /// At most this many images per split.
    pub limit: Option<usize>,
    /// Where the runs, chart and table go (default: checkpoints/experiment).
    pub out: PathBuf,
    /// The growth form: one stage whose run grows (`[[grow]]`), against its final model from
    /// scratch, given the whole run's epochs and the growing run's own budget.
    pub grows: bool,
}

/// The arm that trains the chain's first stage, shared by every strategy's chain.
pub const FIRST: &str = "first";
/// The arm that trains the last stage from scratch.
pub const SCRATCH: &str = "scratch";
/// The growth form's arms: the run that grows, and its final model from scratch in the epochs
/// that cost what the growing run costs.
pub const GROWN: &str = "grown";
pub const BUDGET: &str = "budget";

fn strategy_name(s: Strategy) -> String {
    format!("{s:?}").to_lowercase()
}

impl ExperimentConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read { file: path.to_path_buf(), error })?;
        let raw: RawExperiment = toml::from_str(&text).map_err(|e| ConfigError::Parse { file: path.to_path_buf(), message: e.to_string().trim_end().to_string() })?;
        let invalid = |field: &str, message: String| ConfigError::Invalid { file: path.to_path_buf(), field: field.into(), line: String::new(), message };
        let stages = match (raw.stages, raw.source, raw.target) {
            (Some(stages), None, None) if raw.source_checkpoint.is_none() && raw.source_epochs.is_none() => {
                let mut stages = stages
                    .into_iter()
                    .enumerate()
                    .map(|(k, v)| match v {
                        toml::Value::String(path) => Ok(Stage::of(path.into())),
                        toml::Value::Table(_) => v.try_into::<Stage>().map_err(|e| invalid(&format!("stages[{k}]"), e.to_string().trim_end().replace('\n', " "))),
                        _ => Err(invalid(&format!("stages[{k}]"), "expected a config path or a table such as { config = \"configs/model2.toml\", epochs = 5 }".into())),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                stages.iter_mut().for_each(|s| s.epochs = s.epochs.or(raw.epochs));
                stages
            }
            (None, Some(source), Some(target)) => {
                vec![Stage { epochs: raw.source_epochs, checkpoint: raw.source_checkpoint, ..Stage::of(source) }, Stage { epochs: raw.epochs, ..Stage::of(target) }]
            }
            _ => return Err(invalid("stages", "give either `stages = [...]` (two or more configs) or `source` and `target`, not both".into())),
        };
        let growth = match stages.len() {
            1 => load_config(path, &stages[0].config, 0)?.growth,
            _ => Vec::new(),
        };
        // Its budget arm is set before any run starts, from the epochs the growth comes at.
        if growth.iter().any(|g| g.on_plateau.is_some()) {
            return Err(invalid("stages[0]", format!("{} grows on a plateau, at an epoch only its run finds out, but the budget arm needs it before any run starts: give after_epoch or at_fraction here", stages[0].config.display())));
        }
        let grows = !growth.is_empty();
        if stages.len() < 2 && !grows {
            return Err(invalid("stages", format!("a chain needs at least two stages, or one whose run grows ([[grow]]); got {}", stages.len())));
        }
        if let Some(k) = stages.iter().skip(1).position(|s| s.checkpoint.is_some()) {
            return Err(invalid(&format!("stages[{}].checkpoint", k + 1), "only the first stage can come from a checkpoint".into()));
        }
        if let Some(k) = stages.iter().position(|s| s.epochs == Some(0) || s.unfreeze_after == Some(0) || s.learning_rate.is_some_and(|r| !(r > 0.0 && r.is_finite()))) {
            return Err(invalid(&format!("stages[{k}]"), "epochs and unfreeze_after must be at least 1, learning_rate positive".into()));
        }
        if raw.strategies.is_empty() {
            return Err(invalid("strategies", "name at least one strategy".into()));
        }
        // Each strategy trains into its own folders, which one experiment cannot claim twice.
        if let Some(i) = (1..raw.strategies.len()).find(|&i| raw.strategies[..i].contains(&raw.strategies[i])) {
            return Err(invalid("strategies", format!("{} is listed twice", strategy_name(raw.strategies[i]))));
        }
        if let Some(seeds) = &raw.seeds {
            if seeds.is_empty() || (1..seeds.len()).any(|i| seeds[..i].contains(&seeds[i])) {
                return Err(invalid("seeds", "expected distinct seeds, at least one".into()));
            }
        }
        let out = raw.out.unwrap_or_else(|| PathBuf::from("checkpoints/experiment"));
        Ok(Self { file: path.to_path_buf(), stages, strategies: raw.strategies, seeds: raw.seeds, data: raw.data, limit: raw.limit, out, grows })
    }

    /// Every arm: the first stage, one chain per strategy, and scratch; in the growth form, the
    /// growing run, scratch and scratch on the growing run's budget.
    pub fn arms(&self) -> Vec<String> {
        if self.grows {
            return [GROWN, SCRATCH, BUDGET].map(String::from).to_vec();
        }
        std::iter::once(FIRST.to_string()).chain(self.strategies.iter().map(|&s| strategy_name(s))).chain([SCRATCH.to_string()]).collect()
    }

    /// The stages (0-based) an arm trains itself.
    fn stages_of(&self, arm: &str) -> std::ops::Range<usize> {
        match arm {
            _ if self.grows => 0..1,
            FIRST => 0..1,
            SCRATCH => self.stages.len() - 1..self.stages.len(),
            _ => 1..self.stages.len(),
        }
    }

    /// The first stage's checkpoint for `seed`, if the experiment takes one.
    fn first_checkpoint(&self, seed: u64) -> Option<PathBuf> {
        self.stages[0].checkpoint.as_ref().map(|p| PathBuf::from(p.to_string_lossy().replace("{seed}", &seed.to_string())))
    }

    /// The folder of `arm`'s run of stage `k` (0-based) for `seed`.
    pub fn folder(&self, seed: u64, arm: &str, k: usize, cfg: &Config) -> PathBuf {
        let seed_dir = self.out.join(format!("seed-{seed}"));
        match arm {
            FIRST => seed_dir.join(FIRST),
            _ => seed_dir.join(arm).join(format!("{}-{}", k + 1, cfg.name)),
        }
    }
}

/// Stage `k`'s config file as it stands; one that cannot be read names the stage.
fn load_stage(exp: &ExperimentConfig, k: usize) -> anyhow::Result<Config> {
    Ok(load_config(&exp.file, &exp.stages[k].config, k)?)
}

fn load_config(experiment: &Path, config: &Path, k: usize) -> Result<Config, ConfigError> {
    Config::load(config).map_err(|e| match e {
        ConfigError::Read { file, error } => ConfigError::Read { file: PathBuf::from(format!("{}: stages[{k}] (paths are relative to the working folder): {}", experiment.display(), file.display())), error },
        e => e,
    })
}

/// The epochs the budget arm's run of the final model spans: those that cost what the growing
/// run `cfg` costs in training FLOPs per image (each epoch's model in force counted), the last
/// one cut short where its steps are spent (`train.budget_flops`, set once the data is loaded).
pub fn budget_epochs(cfg: &Config) -> u32 {
    let per_image = |m: &crate::model::ModelSpec| m.train_flops(1, 0, 0) as f64;
    let total: f64 = (0..cfg.train.epochs).map(|e| per_image(cfg.model_at(e, 1))).sum();
    let last = per_image(cfg.growth.last().map_or(&cfg.model, |g| &g.model));
    ((total / last).ceil() as u32).max(1)
}

/// The budget arm's `cfg` on `images` training images: `train.budget_flops` the growing run's
/// FLOPs on them, and the epochs that budget pays for, the last cut short at its last step.
fn on_budget(exp: &ExperimentConfig, k: usize, seed: u64, overrides: &Overrides, cfg: &mut Config, images: usize) -> anyhow::Result<()> {
    let grown = stage_config(exp, k, seed, GROWN, overrides)?;
    cfg.train.budget_flops = Some((0..grown.train.epochs).map(|e| grown.epoch_flops(e, images)).sum());
    let (epochs, _) = cfg.budget_run(images, &exp.stages[k].config)?;
    cfg.set_epochs(epochs);
    Ok(())
}

/// Stage `k`'s config for `seed` and `arm`, with the experiment's and the command line's
/// settings (`overrides.epochs` wins over every stage's).
fn stage_config(exp: &ExperimentConfig, k: usize, seed: u64, arm: &str, overrides: &Overrides) -> anyhow::Result<Config> {
    let stage = &exp.stages[k];
    let mut cfg = load_stage(exp, k)?;
    if cfg.train.budget_flops.is_some() {
        anyhow::bail!("{}: stages[{k}]: {} sets budget_flops, but an experiment's runs train the epochs it gives them (the growth form's {BUDGET} arm is the one matched in FLOPs)", exp.file.display(), stage.config.display());
    }
    let o = Overrides { data: overrides.data.clone().or(exp.data.clone()), limit: overrides.limit.or(exp.limit), epochs: overrides.epochs, seed: Some(seed), batch_size: overrides.batch_size };
    cfg.set_epochs(stage.epochs.unwrap_or(cfg.train.epochs));
    if arm != SCRATCH || exp.grows {
        cfg.train.learning_rate = stage.learning_rate.unwrap_or(cfg.train.learning_rate);
        cfg.train.schedule = stage.schedule.unwrap_or(cfg.train.schedule);
    }
    o.apply(&mut cfg, &stage.config).map_err(|e| match e {
        // A schedule that does not fit the experiment's epochs for the stage (or its own).
        ConfigError::Invalid { file, field, line, message } if line.is_empty() && field.starts_with("train.schedule.") && (stage.epochs.is_some() || stage.schedule.is_some()) => {
            ConfigError::Invalid { file, field, line: format!(" (with the settings of stages[{k}] in {})", exp.file.display()), message }
        }
        e => e,
    })?;
    if exp.grows && arm != GROWN {
        let budget = (arm == BUDGET).then(|| budget_epochs(&cfg));
        cfg.model = cfg.growth.last().expect("the growth form grows").model.clone();
        cfg.growth.clear();
        if let Some(epochs) = budget {
            cfg.set_epochs(epochs);
            cfg.validate(&stage.config).map_err(|e| anyhow::Error::new(e).context(format!("the {BUDGET} arm trains {epochs} epochs, what the growing run costs")))?;
        }
    }
    Ok(cfg)
}

/// The seeds to run: `--seed` (which must be one of the experiment's), else all.
fn seeds(exp: &ExperimentConfig, only: Option<u64>) -> anyhow::Result<Vec<u64>> {
    let all = match &exp.seeds {
        Some(s) => s.clone(),
        None => vec![load_stage(exp, 0)?.train.seed],
    };
    match only {
        Some(s) if !all.contains(&s) => anyhow::bail!("--seed {s}: the experiment's seeds are {all:?}"),
        Some(s) => Ok(vec![s]),
        None => Ok(all),
    }
}

/// What stands in a stage run's folder, judged against what the experiment asks of it now.
enum Found {
    /// No checkpoint: nothing to keep or resume.
    Nothing,
    /// A run of what the stage asks (its model, data, batch size, at most its epochs, grown from
    /// its source as that stands), finished or to resume.
    Current(Box<Checkpoint>),
    /// A run of something else, and what differs.
    Other(String),
}

/// Stage `k` of `arm` for `seed`: its config, its folder, and what stands there (`judge`:
/// unless the caller replaces it anyway).
fn stage_run(exp: &ExperimentConfig, k: usize, seed: u64, arm: &str, overrides: &Overrides, judge: bool) -> anyhow::Result<(Config, PathBuf, Found)> {
    let mut cfg = stage_config(exp, k, seed, arm, overrides)?;
    let dir = exp.folder(seed, arm, k, &cfg);
    let last = dir.join(crate::train::callbacks::LAST_CHECKPOINT);
    if !judge || !last.is_file() {
        return Ok((cfg, dir, Found::Nothing));
    }
    let found = match Checkpoint::load(&last) {
        Err(e) => Found::Other(format!("{e}")),
        Ok(ckpt) => {
            // The budget arm's epochs follow from the images its run recorded.
            let budget = if arm == BUDGET { on_budget(exp, k, seed, overrides, &mut cfg, ckpt.state.train_images) } else { Ok(()) };
            match budget {
                Err(e) => Found::Other(format!("{e:#}")),
                Ok(()) => match differs(exp, k, seed, arm, overrides, &cfg, &last, &ckpt)? {
                    Some(why) => Found::Other(why),
                    None => Found::Current(Box::new(ckpt)),
                },
            }
        }
    };
    Ok((cfg, dir, found))
}

/// What the run `ckpt` (its folder's `last`) was made from that differs from what stage `k` of
/// `arm` asks for now, if anything.
#[allow(clippy::too_many_arguments)]
fn differs(exp: &ExperimentConfig, k: usize, seed: u64, arm: &str, overrides: &Overrides, cfg: &Config, last: &Path, ckpt: &Checkpoint) -> anyhow::Result<Option<String>> {
    // A run that grows holds the model in force where it stopped.
    if let Err(crate::checkpoint::CheckpointError::Layout { layer, detail, .. }) = ckpt.check_layout(&cfg.model_resumed(&ckpt.state, &ckpt.model), last) {
        return Ok(Some(format!("its model differs from {}'s at layer {layer} ({detail})", exp.stages[k].config.display())));
    }
    let state = &ckpt.state;
    let now = run::data_source(cfg);
    if state.batch_size != cfg.train.batch_size || state.data.as_ref().is_some_and(|d| *d != now) {
        let then = state.data.as_deref().unwrap_or("its data");
        return Ok(Some(format!("its run trained on {then} at batch size {}; this experiment asks for {now} at batch size {}", state.batch_size, cfg.train.batch_size)));
    }
    if state.budget() > cfg.train.epochs {
        return Ok(Some(format!("its run was asked for {} epochs ({} trained); this experiment asks for {}", state.budget(), state.epoch, cfg.train.epochs)));
    }
    // Runs from before sources were recorded cannot be checked.
    let Some(then) = state.source.as_ref().filter(|_| k > 0 && arm != SCRATCH) else { return Ok(None) };
    let now = source_checkpoint(exp, k, seed, arm, overrides).ok().filter(|p| p.is_file()).map(|p| run::source_of(&p)).transpose()?;
    Ok(match now {
        None => Some(format!("grown from {}, but its stage has no finished run (or checkpoint) to grow from now", then.path)),
        Some(now) if now.md5 != then.md5 => Some(format!("grown from {} as it was then; {} now holds another checkpoint", then.path, now.path)),
        Some(_) => None,
    })
}

/// The checkpoint stage `k` (> 0) of strategy arm `arm` grows from: the best of the finished
/// run of the stage before, trained by the shared first stage or by this arm, or the
/// experiment's checkpoint.
fn source_checkpoint(exp: &ExperimentConfig, k: usize, seed: u64, arm: &str, overrides: &Overrides) -> anyhow::Result<PathBuf> {
    if let (1, Some(path)) = (k, exp.first_checkpoint(seed)) {
        return Ok(path);
    }
    let before = if k == 1 { FIRST } else { arm };
    let (cfg, dir, found) = stage_run(exp, k - 1, seed, before, overrides, true)?;
    let done = match found {
        Found::Current(ckpt) if ckpt.state.finished(cfg.train.epochs) => {
            let best = ["best.safetensors", crate::train::callbacks::LAST_CHECKPOINT].iter().map(|f| dir.join(f)).find(|p| p.is_file());
            return Ok(best.expect("a finished run has its last checkpoint"));
        }
        Found::Current(ckpt) => format!(", {} of {} epochs", ckpt.state.epoch, cfg.train.epochs),
        Found::Nothing => String::new(),
        Found::Other(why) => format!(" as this experiment asks it ({why})"),
    };
    anyhow::bail!("{}: stage {k} has not finished{done} (run --arm {before} --seed {seed} first, with the same flags)", dir.display())
}

/// What would stop `arm`'s run of stage `k` for `seed` only once earlier runs have trained: the
/// first stage's checkpoint it grows from, its data folders, and the layers the experiment's
/// `stages[k].freeze` names (`copied` is known only after the transfer).
fn check_stage(exp: &ExperimentConfig, k: usize, seed: u64, arm: &str, cfg: &Config) -> anyhow::Result<()> {
    if let Some(path) = exp.first_checkpoint(seed).filter(|p| k == 1 && arm != SCRATCH && !p.is_file()) {
        anyhow::bail!("{}: stages[0].checkpoint: {}: no such file (for seed {seed})", exp.file.display(), path.display());
    }
    if cfg.data.synthetic.is_none() {
        if let Some(dir) = [&cfg.data.train, &cfg.data.test].into_iter().find(|d| !d.is_dir()) {
            return Err(crate::data::DataError::Missing(dir.clone()).into());
        }
    }
    // Grown on other classes, its accuracy on this data would be reported as the stage's.
    if let Some(path) = exp.first_checkpoint(seed).filter(|_| k == 1 && arm != SCRATCH) {
        run::check_source_classes(&path, &Checkpoint::load(&path)?.classes, cfg, &run::data_classes(cfg)?)?;
    }
    let names: Vec<String> = exp.stages[k].freeze.iter().filter(|n| *n != "copied").cloned().collect();
    if k > 0 && arm != SCRATCH && !names.is_empty() {
        cfg.model.freeze(&names).map_err(|message| ConfigError::Invalid { file: exp.file.clone(), field: format!("stages[{k}].freeze"), line: String::new(), message: format!("in {}, {message}", exp.stages[k].config.display()) })?;
    }
    Ok(())
}

/// A run to train: seed, arm, stage, its config and claimed folder, and the checkpoint it resumes.
type Job<'a> = (u64, &'a str, usize, Config, RunFolder, Option<(Checkpoint, PathBuf)>);

/// Claims the folder of every run of `seeds` x `arms` that has not finished, into `jobs`.
fn claim<'a>(exp: &ExperimentConfig, overrides: &Overrides, overwrite: bool, seeds: &[u64], arms: &[&'a str], jobs: &mut Vec<Job<'a>>) -> anyhow::Result<()> {
    for &s in seeds {
        for &a in arms {
            for k in exp.stages_of(a) {
                // A run that stopped (killed, or fewer epochs asked before) continues from its
                // last checkpoint, and a finished one (or one early stopping ended) is kept:
                // re-running the command resumes a sweep. A run of anything else is neither.
                let (cfg, dir, found) = stage_run(exp, k, s, a, overrides, !overwrite)?;
                let previous = match found {
                    Found::Nothing => None,
                    Found::Other(why) => anyhow::bail!("{}: {why}. It is not this stage's run as the experiment stands, so it is neither kept nor resumed: pass the flags and stage configs it ran with to keep it, or --overwrite --arm {a} --seed {s} to train it again", dir.display()),
                    Found::Current(ckpt) if ckpt.state.finished(cfg.train.epochs) => {
                        outln!("== seed {s}, {a}: stage {} ({}) finished in {}", k + 1, cfg.name, dir.display());
                        continue;
                    }
                    Found::Current(ckpt) => Some(*ckpt),
                };
                check_stage(exp, k, s, a, &cfg)?;
                let last = dir.join(crate::train::callbacks::LAST_CHECKPOINT);
                let folder = run::claim_folder(&cfg, &dir, previous.is_some().then_some(last.as_path()), &[(&exp.stages[k].config, "a stage's config"), (&exp.file, "the experiment's config")], overwrite)?;
                let init = dir.join("init.safetensors");
                // One this stage's transfer wrote (a run killed before its first checkpoint) is
                // written again; anything else there is refused.
                let ours = || Checkpoint::load(&init).is_ok_and(|c| c.check_layout(&cfg.model, &init).is_ok() && c.provenance.as_ref().is_some_and(|p| p["strategy"].as_str() == Some(a)));
                if k > 0 && a != SCRATCH && previous.is_none() && !ours() {
                    crate::files::check_output_file(&init, overwrite, &[])?;
                }
                jobs.push((s, a, k, cfg, folder, previous.map(|c| (c, last))));
            }
        }
    }
    Ok(())
}

/// Trains the chosen arms (all, or `arm`) for the chosen seeds (all, or `seed`), then rebuilds
/// the report. Every run folder is claimed before the first run starts; finished runs are kept
/// and stopped ones resumed, unless `overwrite` starts them afresh. `progress` makes each run's
/// progress display.
pub fn run(ctx: &GpuContext, exp: &ExperimentConfig, overrides: &Overrides, overwrite: bool, arm: Option<&str>, seed: Option<u64>, progress: &dyn Fn() -> Vec<Box<dyn Callback>>) -> anyhow::Result<Report> {
    let arms = exp.arms();
    if let Some(a) = arm.filter(|a| !arms.iter().any(|x| x == a)) {
        anyhow::bail!("--arm {a}: the experiment's arms are {}", arms.join(", "));
    }
    let arms: Vec<&str> = arms.iter().map(String::as_str).filter(|a| arm.is_none_or(|x| x == *a)).filter(|&a| !(a == FIRST && exp.stages[0].checkpoint.is_some())).collect();
    let seeds = seeds(exp, seed)?;
    // Claim every folder first: a refusal leaves nothing half-done. Folders are released newest
    // first, so the ones a claim created go (when empty) together with their parents.
    let mut jobs = Vec::new();
    if let Err(e) = claim(exp, overrides, overwrite, &seeds, &arms, &mut jobs) {
        jobs.reverse();
        return Err(e);
    }
    jobs.reverse();
    while let Some((s, a, k, cfg, folder, previous)) = jobs.pop() {
        if crate::interrupt::requested() {
            anyhow::bail!("interrupted before seed {s}, {a}: stage {}", k + 1);
        }
        outln!("== seed {s}, {a}: stage {} ({}){}", k + 1, cfg.name, if previous.is_some() { ", resumed" } else { "" });
        let mut cfg = cfg;
        let (train, test) = run::load_datasets(&cfg)?;
        if a == BUDGET {
            on_budget(exp, k, s, overrides, &mut cfg, train.len())?;
        }
        let start = if let Some((ckpt, path)) = previous {
            Start::Resume(ckpt, path)
        } else if k == 0 || a == SCRATCH {
            Start::Fresh
        } else {
            let prev = source_checkpoint(exp, k, s, a, overrides)?;
            let source = Checkpoint::load(&prev)?;
            run::check_source_classes(&prev, &source.classes, &cfg, &train.classes)?;
            let strategy = exp.strategies.iter().copied().find(|&st| strategy_name(st) == a).expect("a strategy arm");
            let (mut plan, mut ckpt) = crate::transfer::transfer(&source, &prev, &cfg.model, cfg.train.seed, cfg.train.learning_rate, strategy, false);
            // The run records what it grew from (see `differs`).
            ckpt.state.source = Some(run::source_of(&prev)?);
            if strategy == Strategy::Grow {
                // Inserted batchnorms start close to the identity in training mode too.
                crate::transfer::calibrate::calibrate(ctx, &mut plan, &mut ckpt, train.spread(crate::transfer::calibrate::IMAGES))?;
            }
            outln!("transfer ({a}) from {}: {:.1}% of the parameters", prev.display(), 100.0 * plan.fraction());
            out!("{}", plan.table());
            let init = folder.join("init.safetensors");
            ckpt.save(&init)?;
            let start = Start::Init(ckpt, init);
            if let Some(note) = run::freeze(&mut cfg, &exp.stages[k].config, &exp.stages[k].freeze, exp.stages[k].unfreeze_after, &start)? {
                outln!("{note}");
            }
            start
        };
        if let Some(line) = run::describe_freezing(&cfg) {
            outln!("{line}");
        }
        let stop = crate::interrupt::listen();
        run::train(ctx, &cfg, train, test, &folder, start, progress(), Some(stop.flag()))?;
    }
    report(exp, overrides)
}

/// One finished run: stage `stage` (0-based) of an arm.
#[derive(Debug, Clone)]
pub struct StageRun {
    pub stage: usize,
    pub model: String,
    pub history: Vec<EpochLogs>,
}

impl StageRun {
    fn best(&self) -> f64 {
        self.history.iter().map(|l| l.val_acc).fold(f64::NAN, f64::max)
    }
    /// Val acc after the first epoch: none for a checkpoint given as the first stage whose run
    /// is not recorded (written by `transfer` or `import keras`).
    fn first(&self) -> Option<f64> {
        self.history.first().map(|l| l.val_acc)
    }
    fn flops(&self) -> f64 {
        self.history.last().map_or(0.0, |l| l.flops)
    }
    fn wall(&self) -> f64 {
        self.history.last().map_or(0.0, |l| l.wall_seconds)
    }
}

/// One arm's chain for one seed: every stage it depends on, in order (a strategy arm starts
/// with the shared first stage).
#[derive(Debug, Clone)]
pub struct Chain {
    pub arm: String,
    pub seed: u64,
    pub stages: Vec<StageRun>,
}

impl Chain {
    fn last(&self) -> &StageRun {
        self.stages.last().expect("a chain has a stage")
    }
    /// FLOPs and seconds to the first epoch of the last stage at `target` val acc or above: from
    /// the start of the last stage, and in total (the earlier stages included).
    fn reach(&self, target: f64) -> Option<[f64; 4]> {
        let l = self.last().history.iter().find(|l| l.val_acc >= target)?;
        let before: (f64, f64) = self.stages[..self.stages.len() - 1].iter().fold((0.0, 0.0), |(f, w), s| (f + s.flops(), w + s.wall()));
        Some([l.flops, l.wall_seconds, before.0 + l.flops, before.1 + l.wall_seconds])
    }
}

/// What has finished: every complete chain.
#[derive(Debug, Clone)]
pub struct Report {
    /// results.md's text.
    pub markdown: String,
    pub table: PathBuf,
    /// None until a strategy arm or scratch has finished (an earlier report's chart stays).
    pub chart: Option<PathBuf>,
}

/// Rebuilds `results.md` and `comparison.png` from the runs that count: finished, of the
/// epochs asked, made from what their stage asks now. Every other run there is listed with the
/// reason. They hold nothing the runs' checkpoints do not, so they are always rewritten.
pub fn report(exp: &ExperimentConfig, overrides: &Overrides) -> anyhow::Result<Report> {
    let mut chains = Vec::new();
    let mut left_out = Vec::new();
    for seed in seeds(exp, None)? {
        let read = |arm: &str, k: usize, left_out: &mut Vec<String>| -> anyhow::Result<Option<StageRun>> {
            let (cfg, dir, found) = stage_run(exp, k, seed, arm, overrides, true)?;
            let why = match found {
                Found::Current(ckpt) if ckpt.state.finished(cfg.train.epochs) => {
                    let history = ckpt.state.history;
                    rebuild_history(&dir, &cfg, &history)?;
                    return Ok(Some(StageRun { stage: k, model: cfg.name.clone(), history }));
                }
                Found::Current(ckpt) => format!("{} of {} epochs", ckpt.state.epoch, cfg.train.epochs),
                Found::Other(why) => why,
                Found::Nothing if dir.exists() => format!("no {} (not through its first epoch yet, or the checkpoint is gone)", crate::train::callbacks::LAST_CHECKPOINT),
                Found::Nothing => return Ok(None),
            };
            left_out.push(format!("{}: {why}", dir.display()));
            Ok(None)
        };
        let first = match exp.first_checkpoint(seed) {
            Some(path) if !path.is_file() => {
                left_out.push(format!("{}: no such checkpoint (the first stage of seed {seed})", path.display()));
                None
            }
            Some(path) => match Checkpoint::read_state(&path) {
                Ok(state) => Some(StageRun { stage: 0, model: "checkpoint".into(), history: state.history }),
                Err(e) => {
                    left_out.push(format!("{e} (the first stage of seed {seed})"));
                    None
                }
            },
            None if exp.grows => None,
            None => read(FIRST, 0, &mut left_out)?,
        };
        for arm in exp.arms() {
            // A chain of its own: scratch, and every arm of the growth form.
            let alone = arm == SCRATCH || exp.grows;
            let mut stages: Vec<StageRun> = if alone { Vec::new() } else { first.clone().into_iter().collect() };
            if arm != FIRST {
                for k in exp.stages_of(&arm) {
                    stages.extend(read(&arm, k, &mut left_out)?);
                }
            }
            let want = if alone { 1 } else { exp.stages_of(&arm).end };
            if stages.len() == want && (arm != FIRST || exp.stages[0].checkpoint.is_none()) {
                chains.push(Chain { arm, seed, stages });
            }
        }
    }
    let mut markdown = results_md(exp, &chains);
    if !left_out.is_empty() {
        markdown += "\nNot counted (a run counts once it has trained the epochs asked, from the model, data, batch size and source its stage asks for now: give `--report` the flags the runs ran with; `--overwrite --arm ARM --seed SEED` trains an arm's runs again):\n\n";
        left_out.iter().for_each(|line| markdown += &format!("- {line}\n"));
    }
    let table = exp.out.join("results.md");
    crate::files::write_atomic(&table, markdown.as_bytes()).map_err(|error| crate::files::OutputError::Write { path: table.clone(), error })?;
    // The first stage is the start of every strategy's chain: no curve of its own.
    let curves: Vec<crate::plot::Chain> = chains.iter().filter(|c| c.arm != FIRST).map(|c| (c.arm.as_str(), c.stages.iter().map(|s| s.history.as_slice()).collect())).collect();
    let path = exp.out.join("comparison.png");
    let chart = (!curves.is_empty()).then_some(path);
    if let Some(path) = &chart {
        crate::plot::plot_compute(&curves, path).map_err(anyhow::Error::msg)?;
    }
    Ok(Report { markdown, table, chart })
}

/// Writes the history files of the finished run in `dir` again from its checkpoint's
/// `history` where `history.json` is missing or holds another.
fn rebuild_history(dir: &Path, cfg: &Config, history: &[EpochLogs]) -> anyhow::Result<()> {
    let file = dir.join("history.json");
    if crate::train::history::read(&file).is_ok_and(|h| h == history) {
        return Ok(());
    }
    crate::train::history::HistoryWriter { dir: dir.to_path_buf(), name: cfg.name.clone() }.write(history)?;
    log::warn!("{}: missing or not its run's history: written again from {}", file.display(), crate::train::callbacks::LAST_CHECKPOINT);
    Ok(())
}

fn pm(values: &[f64], digits: usize) -> String {
    match values.len() {
        0 => "-".into(),
        1 => format!("{:.digits$}", values[0]),
        _ => {
            let s = Spread::of(values);
            format!("{:.digits$} ± {:.digits$}", s.mean, s.std)
        }
    }
}

fn flops(v: f64) -> String {
    format!("{:.3e}", v)
}

/// The markdown report: per arm over seeds, and per run.
fn results_md(exp: &ExperimentConfig, chains: &[Chain]) -> String {
    let names: Vec<String> = exp.stages.iter().map(|s| s.config.file_stem().map_or("?".into(), |n| n.to_string_lossy().into_owned())).collect();
    let mut out = match exp.grows {
        true => format!("# Experiment: {} grows in one run, against its final model from scratch ({SCRATCH}: the run's epochs; {BUDGET}: the steps that cost what the growing run costs)\n\n", names[0]),
        false => format!("# Experiment: {}\n\n", names.join(" -> ")),
    };
    let scratch = |seed: u64| chains.iter().find(|c| c.arm == SCRATCH && c.seed == seed);
    out += "Compute to reach the scratch arm's best val_acc (same seed): *from the growth* counts the last stage's training only (the earlier stages already paid), *total* includes every earlier stage. Mean ± standard deviation over the seeds that finished.\n\n";
    out += "*vs scratch* is the arm's best val_acc less scratch's, seed by seed (paired), with its 95% interval over the seeds; *FLOPs ÷ scratch's* divides the arm's training FLOPs, every stage counted, by scratch's whole run.\n\n";
    // The growth form also compares with scratch given the growing run's budget.
    let (budget_head, budget_rule) = if exp.grows { (format!(" vs {BUDGET} |"), "---|") } else { (String::new(), "") };
    if exp.grows {
        out += &format!("*vs {BUDGET}* is the same against the final model from scratch trained for the steps whose FLOPs equal the growing run's, less under one step, its last epoch cut short ({BUDGET} arm).\n\n");
    }
    out += &format!("| arm | seeds | best val_acc | vs scratch |{budget_head} FLOPs ÷ scratch's | val_acc after each stage's first epoch | FLOPs from the growth | ÷ scratch's | wall from the growth | FLOPs in total | wall in total |\n|---|---|---|---|{budget_rule}---|---|---|---|---|---|---|\n");
    for arm in exp.arms().iter().filter(|a| *a != FIRST) {
        let mine: Vec<&Chain> = chains.iter().filter(|c| &c.arm == arm).collect();
        if mine.is_empty() {
            continue;
        }
        let best: Vec<f64> = mine.iter().map(|c| c.last().best()).collect();
        let stages = mine[0].stages.len();
        let firsts: Vec<String> = (0..stages).map(|k| pm(&mine.iter().filter_map(|c| c.stages[k].first()).collect::<Vec<_>>(), 4)).collect();
        let reach = |c: &Chain| scratch(c.seed).and_then(|s| Some((c.reach(s.last().best())?, s.reach(s.last().best())?)));
        let reached: Vec<[f64; 4]> = mine.iter().filter_map(|c| reach(c).map(|r| r.0)).collect();
        let ratio: Vec<f64> = mine.iter().filter_map(|c| reach(c).map(|(a, s)| a[0] / s[0])).collect();
        // Only seeds whose scratch run counts have a target to reach.
        let compared = mine.iter().filter(|c| scratch(c.seed).is_some()).count();
        let never = compared - reached.len();
        let col = |i: usize, f: &dyn Fn(f64) -> String| -> String {
            let v: Vec<f64> = reached.iter().map(|r| r[i]).collect();
            let shown = match v.len() {
                _ if compared == 0 => "- (no scratch run)".to_string(),
                0 => "never".to_string(),
                1 => f(v[0]),
                _ => format!("{} ± {}", f(Spread::of(&v).mean), f(Spread::of(&v).std)),
            };
            if never > 0 && !v.is_empty() { format!("{shown} (never in {never} of {compared} seeds)") } else { shown }
        };
        let secs = |v: f64| format!("{v:.0} s");
        // Seeds that both this arm and scratch finished, paired.
        let pairs: Vec<(&Chain, &Chain)> = mine.iter().filter_map(|c| scratch(c.seed).map(|s| (*c, s))).collect();
        let total = |c: &Chain| c.stages.iter().map(StageRun::flops).sum::<f64>();
        let versus = |label: &str| {
            let pairs: Vec<(&Chain, &Chain)> = mine.iter().filter_map(|c| chains.iter().find(|o| o.arm == label && o.seed == c.seed).map(|s| (*c, s))).collect();
            match pairs.is_empty() {
                _ if *arm == label => "-".to_string(),
                true => format!("- (no {label} run)"),
                false => Paired::of(&pairs.iter().map(|p| p.0.last().best()).collect::<Vec<_>>(), &pairs.iter().map(|p| p.1.last().best()).collect::<Vec<_>>()).points(),
            }
        };
        let vs = versus(SCRATCH);
        let vs_budget = if exp.grows { format!(" {} |", versus(BUDGET)) } else { String::new() };
        let cost = pm(&pairs.iter().map(|(c, s)| total(c) / total(s)).collect::<Vec<_>>(), 2);
        out += &format!("| {arm} | {} | {} | {vs} |{vs_budget} {cost} | {} | {} | {} | {} | {} | {} |\n", mine.len(), pm(&best, 4), firsts.join(" / "), col(0, &flops), pm(&ratio, 2), col(1, &secs), col(2, &flops), col(3, &secs));
    }
    out += "\n| seed | arm | stage | model | epochs | best val_acc | val_acc after epoch 1 | training FLOPs | wall |\n|---|---|---|---|---|---|---|---|---|\n";
    for c in chains {
        // A shared first stage once (its own row); in the growth form every arm is one run.
        for s in c.stages.iter().filter(|s| exp.grows || c.arm == FIRST || s.stage > 0 || c.arm == SCRATCH) {
            let first = s.first().map_or("-".into(), |v| format!("{v:.4}"));
            out += &format!("| {} | {} | {} | {} | {} | {:.4} | {first} | {} | {:.0} s |\n", c.seed, c.arm, s.stage + 1, s.model, s.history.len(), s.best(), flops(s.flops()), s.wall());
        }
    }
    out
}
