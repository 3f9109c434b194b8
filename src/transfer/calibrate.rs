//! `transfer --strategy grow --data`: Net2Net's rule for batch normalisation. A batchnorm that
//! grow inserted is the identity in inference mode only (moving mean 0, variance 1 - eps); in
//! training it normalises with the batch's statistics, which undoes nothing. Measuring each
//! inserted layer's input mean and variance on training images and setting gamma and beta to
//! undo them (gamma = sqrt(var + eps), beta = mean + the bias it took over), with the moving
//! statistics at the measured values, keeps inference exact and starts training mode close to
//! the identity too.

use std::sync::Arc;

use super::{Action, Plan, Recipe};
use crate::checkpoint::Checkpoint;
use crate::data::loader::BatchStream;
use crate::data::Dataset;
use crate::gpu::GpuContext;
use crate::layers::LayerKind;
use crate::network::Pass;

/// Training images a growth measures its inserted batchnorms' inputs on (evenly spread over the
/// set, so the same ones every time: a resumed run grows as the uninterrupted one did).
pub const IMAGES: usize = 1024;

/// Sets every inserted batchnorm of `ckpt` (grown by `plan`) from its input statistics on
/// `images`, noting it in the plan; returns the names of the layers set. The inserted layers
/// are the identity in inference mode while measured, so one pass sees every layer's true input.
pub fn calibrate(ctx: &GpuContext, plan: &mut Plan, ckpt: &mut Checkpoint, images: Dataset) -> anyhow::Result<Vec<String>> {
    let inserted: Vec<usize> = (0..plan.layers.len())
        // A residual block's last batchnorm starts at zero, in either mode: not to be undone.
        .filter(|&t| plan.layers[t].action == Action::Identity && plan.layers[t].recipe != Some(Recipe::Zero))
        .filter(|&t| matches!(ckpt.model.layers[t].kind, LayerKind::BatchNorm(bn) if bn.scale && bn.center))
        .collect();
    if inserted.is_empty() || images.is_empty() {
        return Ok(Vec::new());
    }
    let batch = 32;
    let mut net = crate::predict::network(ctx, ckpt, batch)?;
    // Per inserted layer and channel: count, sum and sum of squares, in f64.
    let mut sums: Vec<Vec<[f64; 3]>> = inserted.iter().map(|&t| vec![[0.0; 3]; ckpt.model.input_of(t).channels() as usize]).collect();
    let count = images.len();
    let ds = Arc::new(images);
    for b in BatchStream::new(ds.clone(), (0..ds.len()).collect(), batch as usize, None, 2, 0) {
        net.upload(ctx, &b.images, &b.labels)?;
        net.run(ctx, Pass::Evaluate, 0.0);
        for (&t, acc) in inserted.iter().zip(&mut sums) {
            let x = net.read_input(ctx, t)?;
            for row in x.chunks(acc.len()) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a = [a[0] + 1.0, a[1] + v as f64, a[2] + (v as f64).powi(2)];
                }
            }
        }
    }
    let infos = ckpt.model.params();
    let mut set = Vec::new();
    for (&t, acc) in inserted.iter().zip(&sums) {
        let LayerKind::BatchNorm(bn) = ckpt.model.layers[t].kind else { unreachable!("filtered above") };
        let name = ckpt.model.layers[t].name.clone();
        let index = |suffix: &str| infos.iter().position(|p| p.name == format!("{name}.{suffix}")).expect("a batchnorm's tensors");
        let (g, b, m, v) = (index("gamma"), index("beta"), index("moving_mean"), index("moving_variance"));
        for (c, a) in acc.iter().enumerate() {
            let mean = a[1] / a[0];
            let var = (a[2] / a[0] - mean * mean).max(0.0);
            ckpt.params[g][c] = (var + bn.epsilon as f64).sqrt() as f32;
            ckpt.params[b][c] += mean as f32;
            ckpt.params[m][c] = mean as f32;
            ckpt.params[v][c] = var as f32;
        }
        let reason = plan.layers[t].reason.get_or_insert_with(String::new);
        *reason += &format!("; its statistics measured on {count} training images, so training mode starts close to the identity too");
        set.push(name);
    }
    Ok(set)
}
