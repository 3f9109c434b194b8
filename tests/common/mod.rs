//! Shared test helpers: one GPU context per test binary, random data, and comparisons that
//! report the largest error seen.
#![allow(dead_code)]

pub mod reference;

use std::sync::OnceLock;

use gpu_cnn::gpu::{GpuContext, Kernels, View};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// The test GPU: the default adapter (GPU_CNN_ADAPTER / GPU_CNN_BACKEND pick another).
/// A missing adapter fails the test: the GPU path is never skipped.
pub fn gpu() -> &'static (GpuContext, Kernels) {
    static GPU: OnceLock<(GpuContext, Kernels)> = OnceLock::new();
    GPU.get_or_init(|| {
        let ctx = GpuContext::from_env().unwrap_or_else(|e| panic!("tests need a GPU adapter: {e}"));
        let kernels = Kernels::new(&ctx);
        eprintln!("adapter: {}", ctx.describe());
        (ctx, kernels)
    })
}

/// The kernels of the test GPU without the subgroup variants (the path adapters without
/// subgroups take).
pub fn plain_kernels() -> &'static Kernels {
    static PLAIN: OnceLock<Kernels> = OnceLock::new();
    PLAIN.get_or_init(|| Kernels::with_subgroups(&gpu().0, false))
}

/// Both kernel paths, named: the default (subgroup variants where the adapter has them) and
/// the plain one. Kernel tests run each case through both.
pub fn kernel_paths() -> [(&'static str, &'static Kernels); 2] {
    [("default", &gpu().1), ("plain", plain_kernels())]
}

pub fn random(seed: u64, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// A buffer holding `data`, seen whole.
pub fn input(ctx: &GpuContext, data: &[f32]) -> View {
    ctx.upload("test input", data).unwrap()
}

/// An output buffer of `len` elements poisoned with NaN, so an element a kernel fails to write
/// fails the comparison.
pub fn poisoned(ctx: &GpuContext, len: u64) -> View {
    let b = ctx.storage("test output", len).unwrap();
    ctx.fill(&b, f32::NAN);
    b
}

/// Largest |gpu - reference| divided by the largest |reference| (a relative error that stays
/// meaningful when single elements are near zero). Panics past `tol`, or on any NaN.
pub fn assert_close(what: &str, gpu: &[f32], reference: &[f64], tol: f64) -> f64 {
    assert_eq!(gpu.len(), reference.len(), "{what}: length");
    let scale = reference.iter().fold(0f64, |a, &b| a.max(b.abs())).max(1e-30);
    let mut worst = (0f64, 0usize);
    for (i, (&g, &r)) in gpu.iter().zip(reference).enumerate() {
        assert!(g.is_finite(), "{what}: element {i} is {g} (unwritten or overflowed), reference {r}");
        let e = (g as f64 - r).abs() / scale;
        if e > worst.0 {
            worst = (e, i);
        }
    }
    eprintln!("{what}: max relative error {:.2e} (element {}, {} elements)", worst.0, worst.1, gpu.len());
    assert!(worst.0 <= tol, "{what}: relative error {:.3e} > {tol:e} at element {}: gpu {} vs reference {}", worst.0, worst.1, gpu[worst.1], reference[worst.1]);
    worst.0
}

/// Runs the dispatches in one submission and reads `out` back.
pub fn run(dispatches: &[gpu_cnn::gpu::Dispatch], out: &View) -> Vec<f32> {
    let (ctx, _) = gpu();
    gpu_cnn::gpu::kernels::submit(ctx, dispatches);
    ctx.read(out).unwrap()
}
