//! The gpu-cnn command line: parses flags, calls the library, prints errors once.

use clap::{Parser, Subcommand};

use gpu_cnn::gpu::context::{parse_backends, AdapterChoice, GpuContext};

#[derive(Parser)]
#[command(name = "gpu-cnn", version, about = "Train CNN image classifiers on the GPU with hand-written WGSL kernels")]
struct Cli {
    /// Adapter: an index from `gpu-cnn devices`, a name substring, `cpu` or `gpu`.
    #[arg(long, global = true, env = "GPU_CNN_ADAPTER", default_value = "auto")]
    adapter: AdapterChoice,
    /// Graphics API: vulkan, metal, dx12 or gl (default: all).
    #[arg(long, global = true, env = "GPU_CNN_BACKEND")]
    backend: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List GPU adapters and mark the one that would be used.
    ///
    /// Example: gpu-cnn devices --backend vulkan
    Devices,
    /// Benchmarks on the chosen adapter.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Subcommand)]
enum Bench {
    /// Time per call and GFLOP/s (or GB/s) of every kernel at the reference models' shapes.
    ///
    /// Example: gpu-cnn bench kernels --json
    Kernels {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,wgpu_hal::gles=off")).init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let backends = parse_backends(cli.backend.as_deref())?;
    match cli.command {
        Command::Devices => print!("{}", gpu_cnn::devices::report(&cli.adapter, backends)),
        Command::Bench(Bench::Kernels { json }) => {
            let ctx = GpuContext::new(&cli.adapter, backends)?;
            let results = gpu_cnn::bench::kernels(&ctx)?;
            if json {
                println!("{}", gpu_cnn::bench::to_json(&ctx, &results));
            } else {
                print!("{}", gpu_cnn::bench::table(&ctx, &results));
            }
        }
    }
    Ok(())
}
