//! The README cannot drift from the CLI: every command in its shell code blocks parses with the
//! current command line, and the cheap ones (that read but write nothing) run.

use std::path::Path;

use clap::Parser;

use gpu_cnn::commands::Cli;

#[path = "common/bin.rs"]
mod bin;

/// The gpu-cnn commands of the README's code blocks, as argument lists (without the program
/// name): every line of a ```sh / ```bash block and every `$ ` line of any other block, when it
/// is `gpu-cnn ARGS` or `cargo run [--release] -- ARGS`; `\` continuations allowed.
fn commands(markdown: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    let (mut block, mut shell) = (false, false);
    let mut pending = String::new();
    for line in markdown.lines() {
        let trimmed = line.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            (block, shell) = (!block, !block && matches!(info.trim(), "sh" | "bash" | "shell"));
            continue;
        }
        let text = match trimmed.strip_prefix("$ ") {
            Some(command) if block => command,
            _ if shell || !pending.is_empty() => trimmed,
            _ => continue,
        };
        if let Some(head) = text.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        let full = std::mem::take(&mut pending) + text;
        let words = shlex::split(&placeholders(full.split(" #").next().unwrap_or_default())).unwrap_or_default();
        let args = match words.first().map(String::as_str) {
            Some("gpu-cnn") => words[1..].to_vec(),
            Some("cargo") if words.get(1).is_some_and(|w| w == "run") => match words.iter().position(|w| w == "--") {
                Some(i) => words[i + 1..].to_vec(),
                None => continue,
            },
            _ => continue,
        };
        found.push((full, args));
    }
    found
}

/// The line with each shell expansion (`$((...))`, `${...}`, `$(...)`) as one word `0`: a
/// value the reader's shell computes.
fn placeholders(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' || !matches!(chars.peek(), Some('(' | '{')) {
            out.push(c);
            continue;
        }
        let mut depth = 0;
        for c in chars.by_ref() {
            depth += match c {
                '(' | '{' | '[' => 1,
                ')' | '}' | ']' => -1,
                _ => 0,
            };
            if depth == 0 {
                break;
            }
        }
        out.push('0');
    }
    out
}

/// Each command that does not parse, with clap's reason.
fn unparsable(markdown: &str) -> Vec<String> {
    commands(markdown)
        .into_iter()
        .filter_map(|(line, args)| match Cli::try_parse_from(std::iter::once("gpu-cnn".to_string()).chain(args)) {
            Err(e) if !matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => Some(format!("{line}\n{e}")),
            _ => None,
        })
        .collect()
}

fn readme() -> String {
    std::fs::read_to_string(bin::root().join("README.md")).expect("README.md")
}

#[test]
fn readme_commands_parse() {
    let text = readme();
    let found = commands(&text);
    assert!(found.len() >= 10, "only {} commands found in README.md's shell blocks", found.len());
    let bad = unparsable(&text);
    assert!(bad.is_empty(), "README.md commands the CLI refuses:\n{}", bad.join("\n\n"));
}

#[test]
fn a_broken_readme_command_is_caught() {
    let text = readme();
    let (line, _) = commands(&text).into_iter().find(|(l, _)| l.contains("gpu-cnn train ")).expect("the README trains a model");
    let broken = text.replacen(&line, &format!("{line} --no-such-flag"), 1);
    assert_eq!(unparsable(&broken).len(), 1, "a broken command goes unnoticed");
    let renamed = text.replacen(&line, &line.replace("gpu-cnn train ", "gpu-cnn trian "), 1);
    assert_eq!(unparsable(&renamed).len(), 1, "a misspelt command goes unnoticed");
}

/// The README's commands that only read run as written from the repository root.
#[test]
fn readme_cheap_commands_run() {
    let root = bin::root();
    let cheap: Vec<Vec<String>> = commands(&readme()).into_iter().map(|(_, a)| a).filter(|a| matches!(a.first().map(String::as_str), Some("summary" | "devices"))).collect();
    assert!(!cheap.is_empty(), "the README shows no summary or devices command");
    for args in cheap {
        if args.iter().skip(1).any(|a| !a.starts_with('-') && !Path::new(a).exists() && !root.join(a).exists()) {
            continue; // a file the reader makes first (a checkpoint of theirs)
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = bin::gpu_cnn(&root, &args);
        assert!(o.status.success(), "gpu-cnn {} failed", args.join(" "));
    }
}
