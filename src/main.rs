//! The gpu-cnn command line: parses flags, runs the command (src/commands/), prints errors once.

use clap::Parser;

fn main() {
    gpu_cnn::gpu::context::ensure_runtime_dir();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,wgpu_hal::gles=off")).init();
    if let Err(e) = gpu_cnn::commands::run(gpu_cnn::commands::Cli::parse()) {
        gpu_cnn::errln!("error: {e:#}");
        std::process::exit(1);
    }
}
