//! `gpu-cnn plot`: training curves of one or more runs.

use std::path::{Path, PathBuf};

use crate::files::check_output_file;
use crate::record::EpochLogs;

/// Draw accuracy and loss curves (train and validation) of one or more runs.
///
/// Example: gpu-cnn plot checkpoints/model1/history.json checkpoints/model2/history.json -o curves.png
#[derive(clap::Args)]
pub struct Args {
    /// history.json files, or run folders holding one.
    #[arg(required = true)]
    histories: Vec<PathBuf>,
    /// Output file, .png or .svg.
    #[arg(short, long, default_value = "curves.png")]
    output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let inputs: Vec<(&Path, &str)> = a.histories.iter().map(|h| (h.as_path(), "a history")).collect();
    check_output_file(&a.output, a.overwrite, &inputs)?;
    let mut runs = Vec::new();
    for path in &a.histories {
        let file = if path.is_dir() { path.join("history.json") } else { path.clone() };
        let name = file.parent().and_then(|p| p.file_name()).map_or("run".into(), |n| n.to_string_lossy().into_owned());
        runs.push((name, crate::train::history::read(&file).map_err(anyhow::Error::msg)?));
    }
    let refs: Vec<(&str, &[EpochLogs])> = runs.iter().map(|(n, h)| (n.as_str(), h.as_slice())).collect();
    crate::plot::plot(&refs, &a.output).map_err(anyhow::Error::msg)?;
    outln!("Wrote {}", a.output.display());
    Ok(())
}
