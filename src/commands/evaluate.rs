//! `gpu-cnn evaluate`: a checkpoint's scores on labelled images.

use std::path::PathBuf;

use super::Env;
use crate::checkpoint::Checkpoint;

/// Loss, accuracy, per-class accuracy and confusion matrix of a checkpoint on a folder
/// with one sub-folder per class.
///
/// Example: gpu-cnn evaluate checkpoints/model1/best.safetensors --data dataset/test_set
#[derive(clap::Args)]
pub struct Args {
    /// The trained model (.safetensors).
    checkpoint: PathBuf,
    /// The labelled images: a folder with one sub-folder per class.
    #[arg(long)]
    data: PathBuf,
    /// Images per GPU batch.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// One JSON object instead of the report.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args, env: &Env) -> anyhow::Result<()> {
    let ckpt = Checkpoint::load(&a.checkpoint)?;
    let ctx = env.gpu()?;
    let report = crate::predict::evaluate(&ctx, &ckpt, &a.data, a.batch_size, 2)?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.report());
    }
    Ok(())
}
