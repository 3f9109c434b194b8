//! `gpu-cnn evaluate`: a checkpoint's scores on labelled images.

use std::path::PathBuf;

use super::Env;
use crate::checkpoint::Checkpoint;
use crate::data::layout::{self, Split};
use crate::files::check_output_file;
use crate::predict::EvalOptions;

/// Loss, accuracy, per-class precision, recall and F1, top-k accuracy (more than 2 classes),
/// confusion matrix and the most confidently wrong images of a checkpoint on labelled images.
///
/// Example: gpu-cnn evaluate checkpoints/model1/best.safetensors --data dataset --sheet wrong.png
#[derive(clap::Args)]
pub struct Args {
    /// The trained model (.safetensors).
    checkpoint: PathBuf,
    /// The labelled images: a folder with training_set/ and test_set/ (its test_set/ is
    /// evaluated), or a class folder (one sub-folder of images per class).
    #[arg(long)]
    data: PathBuf,
    /// Images per GPU batch.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Top-k accuracy with this k (default: 5, at most the classes less one, for more than 2 classes).
    #[arg(long)]
    top_k: Option<usize>,
    /// List this many of the most confidently wrong images.
    #[arg(long, default_value_t = 10)]
    wrong: usize,
    /// Write a contact sheet (PNG) of the listed wrong images.
    #[arg(long)]
    sheet: Option<PathBuf>,
    /// Replace an existing --sheet file.
    #[arg(long)]
    overwrite: bool,
    /// One JSON object with all of it and one entry per image, instead of the report.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args, env: &Env) -> anyhow::Result<()> {
    if let Some(sheet) = &a.sheet {
        check_output_file(sheet, a.overwrite, &[(a.checkpoint.as_path(), "the checkpoint")])?;
    }
    let ckpt = Checkpoint::load(&a.checkpoint)?;
    let options = EvalOptions { top_k: a.top_k, wrong: a.wrong };
    options.k(ckpt.classes.len()).map_err(anyhow::Error::msg)?;
    let dir = layout::class_folder(&a.data, Split::Test)?;
    // With --json, stdout holds the JSON alone.
    let say = |line: String| if a.json { errln!("{line}") } else { outln!("{line}") };
    say(format!("Evaluating on {}", dir.display()));
    let ctx = env.gpu()?;
    let report = crate::predict::evaluate(&ctx, &ckpt, &dir, a.batch_size, 2, options)?;
    if a.json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        out!("{}", report.report());
    }
    if let Some(sheet) = &a.sheet {
        if report.wrong.is_empty() {
            say(format!("No wrong images: {} not written", sheet.display()));
        } else {
            let (w, h) = report.wrong_sheet(sheet)?;
            say(format!("Wrong images: {} ({w}x{h})", sheet.display()));
        }
    }
    Ok(())
}
