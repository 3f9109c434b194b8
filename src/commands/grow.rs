//! `gpu-cnn grow`: the next model's config from this one, by growth operators, and its
//! transferred checkpoint.

use std::path::{Path, PathBuf};

use crate::checkpoint::Checkpoint;
use crate::config::Config;
use crate::files::{check_output_file, write_atomic};
use crate::grow;
use crate::transfer::Strategy;

/// Write the next model's config from this one with growth operators (names as `gpu-cnn
/// summary CONFIG` shows them), and with --from its checkpoint, transferred so that the grown
/// model starts with what this one learned (the identity where it can be).
///
/// Example: gpu-cnn grow configs/model2.toml --add-batchnorm conv2d_1,conv2d_2 --deepen max_pooling2d_2 -o model3-grown.toml --from checkpoints/model2/best.safetensors
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("ops").required(true).multiple(true).args(["deepen", "widen", "add_batchnorm"])))]
pub struct Args {
    /// The config of the model to grow.
    config: PathBuf,
    /// Insert a 3x3 conv block after these layers (comma-separated), with a batchnorm when the
    /// model has batchnorms.
    #[arg(long, value_delimiter = ',')]
    deepen: Vec<String>,
    /// Widen layers by a factor, LAYER=FACTOR (comma-separated): filters or units (Net2Wider).
    #[arg(long, value_delimiter = ',', value_parser = grow::parse_widen)]
    widen: Vec<(String, f64)>,
    /// Insert a batchnorm after these conv2d or dense layers (comma-separated); it takes over
    /// their activation and bias.
    #[arg(long, value_delimiter = ',')]
    add_batchnorm: Vec<String>,
    /// The next model's config (TOML) to write.
    #[arg(short, long)]
    output: PathBuf,
    /// A trained checkpoint of CONFIG's model: also write the next model's checkpoint beside
    /// OUTPUT (same name, .safetensors), transferred with `--strategy grow`.
    #[arg(long)]
    from: Option<PathBuf>,
    /// Replace existing output files.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let checkpoint = a.from.as_ref().map(|_| a.output.with_extension("safetensors"));
    let inputs: Vec<(&Path, &str)> = std::iter::once((a.config.as_path(), "CONFIG")).chain(a.from.as_deref().map(|f| (f, "--from"))).collect();
    for out in std::iter::once(&a.output).chain(&checkpoint) {
        check_output_file(out, a.overwrite, &inputs)?;
    }
    let cfg = Config::load(&a.config)?;
    let text = std::fs::read_to_string(&a.config)?;
    let ops = grow::ops(a.widen, a.add_batchnorm, a.deepen);
    let grown = grow::grow(&text, &cfg.model, &ops).map_err(|e| anyhow::anyhow!("{}: {e}", a.config.display()))?;
    let next = Config::parse(&a.output, &grown.text)?;
    crate::sizes::check_host(&next.model)?;
    outln!("Grow {} -> {}", a.config.display(), a.output.display());
    grown.changes.iter().for_each(|c| outln!("  {c}"));
    if let (Some(from), Some(out)) = (&a.from, &checkpoint) {
        let source = Checkpoint::load(from)?;
        source.check_layout(&cfg.model, from)?;
        let (plan, ckpt) = crate::transfer::transfer(&source, from, &next.model, next.train.seed, next.train.learning_rate, Strategy::Grow, false);
        out!("{}", plan.table());
        ckpt.save(out)?;
        outln!("Wrote {} (train it with: gpu-cnn train {} --init {})", out.display(), a.output.display(), out.display());
    }
    write_atomic(&a.output, grown.text.as_bytes()).map_err(|e| anyhow::anyhow!("{}: {e}", a.output.display()))?;
    outln!("Wrote {}", a.output.display());
    Ok(())
}
