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
    // A Keras file goes the checkpoint's way, whose error points to `import keras`.
    match a.file.extension().is_some_and(|e| e == "safetensors" || e == "h5" || e == "keras") {
        true => {
            let ckpt = Checkpoint::load(&a.file)?;
            // Checkpoints from before the run's name was recorded go by their file's name.
            let name = ckpt.state.name.unwrap_or_else(|| a.file.file_stem().unwrap_or_default().to_string_lossy().into_owned());
            out!("{}", summary(&name, &ckpt.model));
        }
        false => {
            let cfg = Config::load(&a.file)?;
            out!("{}", summary(&cfg.name, &cfg.model));
        }
    }
    Ok(())
}
