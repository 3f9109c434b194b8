//! `gpu-cnn import`: weights from another framework as a gpu-cnn checkpoint.

use std::path::PathBuf;

use crate::config::Config;
use crate::files::{check_output_file, write_atomic};
use crate::interop::keras::KerasFile;

/// Weights from another framework as a gpu-cnn checkpoint.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Keras weights (Keras 2 .h5 from save_weights or model.save, Keras 3 .weights.h5 or
    /// .keras) into a config's layout: layers matched by name, else by order; the report says
    /// what was copied and what was not. Without --config, the layout is the model the file
    /// saved (.keras, model.save's .h5), written as a config beside the output (OUTPUT.toml).
    ///
    /// Example: gpu-cnn import keras classifier1.h5 --config configs/model1.toml -o model1-keras.safetensors
    ///
    /// Example: gpu-cnn import keras model.keras -o model.safetensors  (writes model.toml too)
    Keras {
        /// The Keras file (.h5, .weights.h5 or .keras).
        file: PathBuf,
        /// The config whose model the weights fill (default: the model the file saved).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The checkpoint to write (.safetensors).
        #[arg(short, long)]
        output: PathBuf,
        /// Class names in label order (default: class_0, class_1, ...); `evaluate` needs the
        /// data's folder names, e.g. cats,dogs.
        #[arg(long, value_delimiter = ',')]
        classes: Option<Vec<String>>,
        /// Replace existing output files.
        #[arg(long)]
        overwrite: bool,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    let Command::Keras { file, config, output, classes, overwrite } = cmd;
    let keras = KerasFile::read(&file)?;
    // The config: the one given, or the file's own model written beside the output.
    let (config, text) = match config {
        Some(config) => {
            check_output_file(&output, overwrite, &[(file.as_path(), "the Keras file"), (config.as_path(), "--config")])?;
            (config, None)
        }
        None => {
            let config = output.with_extension("toml");
            if config == output {
                anyhow::bail!("-o {}: the config is written beside the checkpoint as {}, so the checkpoint needs another name (.safetensors)", output.display(), config.display());
            }
            check_output_file(&output, overwrite, &[(file.as_path(), "the Keras file")])?;
            check_output_file(&config, overwrite, &[(file.as_path(), "the Keras file"), (output.as_path(), "-o")])?;
            (config, Some(crate::interop::keras_config::config_text(&file, &keras)?))
        }
    };
    let cfg = match &text {
        Some(text) => Config::parse(&config, text)?,
        None => Config::load(&config)?,
    };
    crate::sizes::check_host(&cfg.model)?;
    let (plan, matched_by, ckpt) = crate::interop::keras::checkpoint(&file, &keras, &cfg, classes)?;
    outln!("Import {} ({}) -> {} (layers matched by {})", file.display(), keras.format.describe(), config.display(), matched_by.describe());
    out!("{}", plan.table());
    if let Some(text) = text {
        write_atomic(&config, text.as_bytes()).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
        outln!("Wrote {} (the model the file saved)", config.display());
    }
    ckpt.save(&output)?;
    outln!("Wrote {} (train it with: gpu-cnn train {} --init {})", output.display(), config.display(), output.display());
    Ok(())
}
