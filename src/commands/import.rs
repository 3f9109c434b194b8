//! `gpu-cnn import`: weights from another framework as a gpu-cnn checkpoint.

use std::path::PathBuf;

use crate::config::Config;
use crate::files::check_output_file;

/// Weights from another framework as a gpu-cnn checkpoint.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Keras weights (Keras 2 .h5 from save_weights or model.save, Keras 3 .weights.h5 or
    /// .keras) into a config's layout: layers matched by name, else by order; the report says
    /// what was copied and what was not.
    ///
    /// Example: gpu-cnn import keras classifier1.h5 --config configs/model1.toml -o model1-keras.safetensors
    Keras {
        /// The Keras file (.h5, .weights.h5 or .keras).
        file: PathBuf,
        /// The config whose model the weights fill.
        #[arg(long)]
        config: PathBuf,
        /// The checkpoint to write (.safetensors).
        #[arg(short, long)]
        output: PathBuf,
        /// Class names in label order (default: class_0, class_1, ...); `evaluate` needs the
        /// data's folder names, e.g. cats,dogs.
        #[arg(long, value_delimiter = ',')]
        classes: Option<Vec<String>>,
        /// Replace an existing output file.
        #[arg(long)]
        overwrite: bool,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    let Command::Keras { file, config, output, classes, overwrite } = cmd;
    check_output_file(&output, overwrite, &[(file.as_path(), "the Keras file"), (config.as_path(), "--config")])?;
    let cfg = Config::load(&config)?;
    crate::sizes::check_host(&cfg.model)?;
    let (plan, matched_by, format, ckpt) = crate::interop::keras::checkpoint(&file, &cfg, classes)?;
    outln!("Import {} ({}) -> {} (layers matched by {})", file.display(), format.describe(), config.display(), matched_by.describe());
    out!("{}", plan.table());
    ckpt.save(&output)?;
    outln!("Wrote {} (train it with: gpu-cnn train {} --init {})", output.display(), config.display(), output.display());
    Ok(())
}
