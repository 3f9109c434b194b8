//! The command line itself: every flag explains itself in `--help`.

use clap::CommandFactory;

use gpu_cnn::commands::Cli;

/// Every argument of every (sub)command, with its command path, that has no help text.
fn undocumented(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
    let path = format!("{path} {}", cmd.get_name());
    if cmd.get_about().is_none() {
        missing.push(format!("{path}: no about"));
    }
    for arg in cmd.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "help" | "version")) {
        if arg.get_help().is_none() {
            missing.push(format!("{path}: --{}", arg.get_id()));
        }
    }
    cmd.get_subcommands().filter(|s| s.get_name() != "help").for_each(|s| undocumented(s, &path, missing));
}

#[test]
fn every_command_and_argument_has_help() {
    let mut missing = Vec::new();
    undocumented(&Cli::command(), "", &mut missing);
    assert!(missing.is_empty(), "without help text:\n{}", missing.join("\n"));
    // The check sees a missing help text.
    let mut probe = Vec::new();
    undocumented(&clap::Command::new("probe").about("x").arg(clap::Arg::new("bare").long("bare")), "", &mut probe);
    assert_eq!(probe, [" probe: --bare"]);
}

/// Every config shipped in configs/ reads as a model config or an experiment.
#[test]
fn every_shipped_config_loads() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(dir.join("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let relative = path.strip_prefix(&dir).unwrap();
        let table: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match table.contains_key("stages") {
            // Experiments name their stage configs relative to the repository root.
            true => std::env::set_current_dir(&dir).map_err(anyhow::Error::from).and_then(|_| {
                let exp = gpu_cnn::experiment::ExperimentConfig::load(relative)?;
                exp.stages.iter().try_for_each(|s| gpu_cnn::config::Config::load(&s.config).map(drop)).map_err(Into::into)
            }),
            false => gpu_cnn::config::Config::load(&path).map(drop).map_err(Into::into),
        }
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        seen += 1;
    }
    assert!(seen >= 8, "only {seen} configs");
}
