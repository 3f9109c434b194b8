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
