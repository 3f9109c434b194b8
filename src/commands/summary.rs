//! `gpu-cnn summary`: the Keras-style table of a model.

use std::path::PathBuf;

use crate::checkpoint::Checkpoint;
use crate::config::Config;
use crate::model::summary::summary;

/// Print a Keras-style table of a config's model, or of the model a checkpoint (.safetensors)
/// holds, with its frozen layers.
///
/// Example: gpu-cnn summary configs/model2.toml
#[derive(clap::Args)]
pub struct Args {
    /// A config (.toml) or a checkpoint (.safetensors).
    file: PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    match a.file.extension().is_some_and(|e| e == "safetensors") {
        true => print!("{}", summary(&a.file.display().to_string(), &Checkpoint::load(&a.file)?.model)),
        false => {
            let cfg = Config::load(&a.file)?;
            print!("{}", summary(&cfg.name, &cfg.model));
        }
    }
    Ok(())
}
