//! `maxpool2d` (Keras `MaxPooling2D`): window maxima, `valid` padding with floor semantics;
//! the backward pass routes each gradient to its window's first maximum (stored argmax).

use serde::{Deserialize, Serialize};

use super::{image, Build, Insertion, Kind, LayerKind, Loads, Pair};
use crate::gpu::GpuError;
use crate::model::shape::{PoolShape, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxPool2d {
    #[serde(default = "two_by_two")]
    pub pool: Pair,
    /// Defaults to the pool size, as in Keras.
    #[serde(default)]
    pub stride: Option<Pair>,
}

impl Default for MaxPool2d {
    fn default() -> Self {
        Self { pool: two_by_two(), stride: None }
    }
}

pub(super) fn two_by_two() -> Pair {
    Pair([2, 2])
}

/// The pool geometry of `pool`/`stride` over `input`, checked (max and average pooling share it).
pub(super) fn pool_shape(batch: u32, input: Shape, pool: Pair, stride: Option<Pair>) -> Result<PoolShape, String> {
    let [h, w, c] = image(input)?;
    let (pool, stride) = (pool.0, stride.unwrap_or(pool).0);
    if pool.contains(&0) || stride.contains(&0) {
        return Err("pool and stride must be at least 1".into());
    }
    if pool[0] > h || pool[1] > w {
        return Err(format!("pool {}x{} is larger than its {h}x{w} input", pool[0], pool[1]));
    }
    Ok(PoolShape { batch, in_h: h, in_w: w, c, pool, stride })
}

impl MaxPool2d {
    pub fn shape(&self, batch: u32, input: Shape) -> Result<PoolShape, String> {
        pool_shape(batch, input, self.pool, self.stride)
    }
}

impl Kind for MaxPool2d {
    fn stem(&self) -> &'static str {
        "max_pooling2d"
    }
    fn class(&self) -> &'static str {
        "MaxPooling2D"
    }
    fn output(&self, input: Shape, _: bool) -> Result<Shape, String> {
        let s = self.shape(1, input)?;
        Ok(Shape::Image([s.out_h(), s.out_w(), s.c]))
    }
    fn same_but_width(&self, other: &LayerKind) -> bool {
        matches!(other, LayerKind::MaxPool2d(o) if self.pool == o.pool && self.stride.unwrap_or(self.pool) == o.stride.unwrap_or(o.pool))
    }
    fn inserted(&self, _: Shape) -> Insertion {
        match self.stride.unwrap_or(self.pool) == self.pool {
            true => Insertion::Pool { window: self.pool.0 },
            false => Insertion::NoIdentity(None),
        }
    }
    /// Every window element normalised on load; the gradient at each window's maximum.
    fn loads_unstored(&self, output: Shape) -> Option<Loads> {
        let [ph, pw] = self.pool.0;
        Some(Loads { elements: output.len() * (ph * pw) as u64, windows: output.len() })
    }
    fn spatial_arguments(&self) -> Vec<(&'static str, Vec<u32>)> {
        vec![("a pool side", self.pool.0.to_vec()), ("a stride", self.stride.unwrap_or(self.pool).0.to_vec())]
    }
    /// Forward, the window's comparisons; backward, one add per output routed to its argmax.
    fn flops(&self, _: Shape, output: Shape, _: bool, input_grad: bool, _: Option<Loads>) -> [u64; 2] {
        let [ph, pw] = self.pool.0;
        [output.len() * (ph * pw - 1) as u64, input_grad as u64 * output.len()]
    }
    fn build(&self, b: &mut Build<'_>) -> Result<(), GpuError> {
        let s = self.shape(b.batch, b.input).expect("validated spec");
        let argmax = b.ctx.storage(&format!("{} argmax", b.name), s.output_len())?;
        // Pooling a batchnorm's unstored output: also keep its input at the maxima, where the
        // batchnorm's gradient sums run (recorded here, after the pool's backward).
        let at_max = match b.x_unstored {
            Some(_) => Some(b.ctx.storage(&format!("{} input at the maxima", b.name), s.output_len())?),
            None => None,
        };
        let norm = b.x_unstored.as_ref().zip(at_max.as_ref());
        b.forward.push(b.kernels.maxpool2d_forward(&s, b.x, norm, b.y, &argmax));
        if let (Some(dx), Some(dy)) = (b.dx, b.dy) {
            b.backward.push(b.kernels.maxpool2d_backward(&s, &argmax, dy, dx));
            if let Some((u, at_max)) = norm {
                b.backward.extend(b.kernels.batchnorm_window_sums(u, s.out_h() * s.out_w(), b.step, at_max, dy, b.scratch));
            }
        }
        Ok(())
    }
}
