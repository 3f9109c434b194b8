//! The gpu-cnn command line: parses flags, runs the command (src/commands/), prints errors once.

use std::io::Write;

use clap::Parser;

fn main() {
    gpu_cnn::gpu::context::ensure_runtime_dir();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,wgpu_hal::gles=off"))
        // Warnings quote names read from files too: escaped as every printed line is.
        .format(|buf, r| writeln!(buf, "[{} {:<5} {}] {}", buf.timestamp(), r.level(), r.target(), gpu_cnn::console::printable(&r.args().to_string())))
        .init();
    if let Err(e) = gpu_cnn::commands::run(gpu_cnn::commands::Cli::parse()) {
        gpu_cnn::errln!("error: {e:#}");
        std::process::exit(1);
    }
}
