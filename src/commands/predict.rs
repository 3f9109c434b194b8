//! `gpu-cnn predict`: the class of each image.

use std::path::PathBuf;

use super::Env;
use crate::checkpoint::Checkpoint;

/// Class and probability of each image.
///
/// Example: gpu-cnn predict checkpoints/model1/best.safetensors cat.jpg photos/ --json
#[derive(clap::Args)]
pub struct Args {
    /// The trained model (.safetensors).
    checkpoint: PathBuf,
    /// The images to classify: image files, and folders (their images, sub-folders included,
    /// in sorted order).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// One JSON array (file, class, probabilities) instead of lines.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args, env: &Env) -> anyhow::Result<()> {
    let ckpt = Checkpoint::load(&a.checkpoint)?;
    let files = crate::data::layout::images(&a.images)?;
    let ctx = env.gpu()?;
    let (predictions, unreadable) = crate::predict::predict(&ctx, &ckpt, &files, 32)?;
    if a.json {
        outln!("{}", serde_json::to_string(&predictions)?);
    } else {
        for p in &predictions {
            let prob = p.probabilities[&p.class].as_f64().unwrap_or(f64::NAN);
            outln!("{}: {} ({prob:.4})", p.file.display(), p.class);
        }
    }
    // The readable images are predicted; the others are named, and the exit status says so.
    unreadable.iter().for_each(|e| errln!("{e}"));
    if !unreadable.is_empty() {
        anyhow::bail!("{} of {} images could not be read", unreadable.len(), files.len());
    }
    Ok(())
}
