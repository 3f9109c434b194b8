//! `gpu-cnn export`: a checkpoint as an ONNX model.

use std::path::PathBuf;

use crate::checkpoint::Checkpoint;
use crate::files::check_output_file;
use crate::interop::onnx;
use crate::model::summary::thousands;

/// The checkpoint as an ONNX model (opset 13): input as `predict` feeds it (pixels / 255,
/// NHWC unless --layout nchw), output the class probabilities, class names in its metadata.
///
/// Example: gpu-cnn export checkpoints/model2/best.safetensors -o model2.onnx
#[derive(clap::Args)]
pub struct Args {
    /// The trained model (.safetensors).
    checkpoint: PathBuf,
    /// The ONNX file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// The input's axis order.
    #[arg(long, value_enum, default_value = "nhwc")]
    layout: onnx::Layout,
    /// Replace an existing output file.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    check_output_file(&a.output, a.overwrite, &[(a.checkpoint.as_path(), "the checkpoint")])?;
    let ckpt = Checkpoint::load(&a.checkpoint)?;
    let model = onnx::save(&ckpt, a.layout, &a.output)?;
    let graph = model.graph.as_ref().expect("export builds a graph");
    outln!("Wrote {} (ONNX opset {}, {} nodes, {} parameters)", a.output.display(), onnx::OPSET, graph.node.len(), thousands(ckpt.model.param_count()));
    outln!("{}", model.doc_string);
    Ok(())
}
