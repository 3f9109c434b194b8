//! Sizes computed in 64 bits and checked before anything is allocated: layer arguments small
//! enough that shape inference cannot overflow, every tensor and activation indexable by the
//! kernels' 32-bit indices, and a network's buffers within the adapter's limits and the host's
//! memory. Called on every model a config or a checkpoint describes, and before every network
//! is built.

use thiserror::Error;

use crate::gpu::{GpuContext, GpuError};
use crate::layers::LayerKind;
use crate::model::{ModelSpec, Shape};

/// The largest image side, kernel, stride or pool size: sums and products of two of them stay
/// far inside 32 bits, so shape inference never overflows.
pub const MAX_SPATIAL: u32 = 1 << 15;
/// Kernels index tensors with 32-bit integers.
pub const MAX_ELEMENTS: u64 = u32::MAX as u64;

#[derive(Debug, Error)]
pub enum SizeError {
    #[error("{layer}: {what} {value} is above the largest supported, {MAX_SPATIAL}")]
    Argument { layer: String, what: &'static str, value: u32 },
    #[error("{layer}: {what} holds {elements} values, more than the {MAX_ELEMENTS} a kernel can index")]
    Elements { layer: String, what: String, elements: u64 },
    #[error("batch size {batch} is too large for adapter '{adapter}': {what} would exceed one buffer or the {MAX_ELEMENTS} values a kernel can index; at most {largest} images fit (lower --batch-size, or train.batch_size in a config)")]
    Batch { what: String, batch: u32, largest: u64, adapter: String },
    #[error("{what} needs {needed} MiB of host memory, but only {available} MiB are available")]
    HostMemory { what: String, needed: u64, available: u64 },
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

/// Checks the arguments of `layers` (name, kind) on an `input` image before shapes are
/// inferred from them.
pub fn check_arguments<'a>(input: [u32; 3], layers: impl IntoIterator<Item = (String, &'a LayerKind)>) -> Result<(), SizeError> {
    let check = |layer: &str, what: &'static str, values: &[u32]| match values.iter().find(|&&v| v > MAX_SPATIAL) {
        Some(&value) => Err(SizeError::Argument { layer: layer.to_string(), what, value }),
        None => Ok(()),
    };
    check("model.input", "an input side or channel count", &input)?;
    for (name, kind) in layers {
        for (what, values) in kind.ops().spatial_arguments() {
            check(&name, what, &values)?;
        }
    }
    Ok(())
}

/// Checks, in 64 bits, that every layer's output and every parameter tensor of a model whose
/// arguments passed [`check_arguments`] fits the kernels' 32-bit indices.
pub fn check_model(spec: &ModelSpec) -> Result<(), SizeError> {
    let shapes = spec.shapes().expect("a validated spec");
    let mut input = Shape::Image(spec.input);
    let too_many = |layer: &str, what: &str, elements: u64| match elements > MAX_ELEMENTS {
        true => Err(SizeError::Elements { layer: layer.to_string(), what: what.to_string(), elements }),
        false => Ok(()),
    };
    too_many("model.input", "the input", input.len())?;
    for (layer, shape) in spec.layers.iter().zip(&shapes) {
        too_many(&layer.name, "its output (per image)", shape.len())?;
        for (what, len) in layer.kind.ops().buffers(input) {
            too_many(&layer.name, what, len)?;
        }
        for t in layer.kind.ops().tensors(input) {
            too_many(&layer.name, &format!("its {}", t.suffix), t.shape.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64)))?;
        }
        input = *shape;
    }
    Ok(())
}

/// Host memory available to this process, where the system says (Linux: MemAvailable).
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Checks that the host can hold `bytes` for `what` (saturated products never fit).
pub fn check_host_bytes(what: &str, bytes: u64) -> Result<(), SizeError> {
    match available_memory() {
        Some(available) if bytes > available => Err(SizeError::HostMemory { what: what.to_string(), needed: bytes >> 20, available: available >> 20 }),
        _ => Ok(()),
    }
}

/// Checks that the host can hold the initial parameters of `spec` (a validated model).
pub fn check_host(spec: &ModelSpec) -> Result<(), SizeError> {
    check_host_bytes("the initial parameters", crate::network::layout(spec).2 * 4)
}

/// Checks every buffer a network for `spec` at `batch` images allocates against the
/// adapter's limits, the kernels' 32-bit indices and the host's memory, before any of them is
/// allocated.
pub fn check_network(ctx: &GpuContext, spec: &ModelSpec, batch: u32) -> Result<(), SizeError> {
    check_model(spec)?;
    let total = crate::network::layout(spec).2;
    ctx.check_fits("parameters", total * 4)?;
    check_host(spec)?;
    let mut buffers = vec![("input batch".to_string(), Shape::Image(spec.input).len())];
    for ((layer, shape), input) in spec.layers.iter().zip(spec.shapes().expect("checked above")).zip(spec.input_shapes()) {
        buffers.push((format!("{} output", layer.name), shape.len()));
        buffers.extend(layer.kind.ops().buffers(input).into_iter().map(|(what, len)| (format!("{} {what}", layer.name), len)));
    }
    // One image must fit (else the model is too large, whatever the batch); then the batch.
    for (name, per_image) in &buffers {
        ctx.check_fits(name, per_image * 4)?;
    }
    let binding = ctx.limits.max_buffer_size.min(ctx.limits.max_storage_buffer_binding_size);
    let (what, largest) = buffers.iter().map(|(name, p)| (name, (MAX_ELEMENTS / p).min(binding / (4 * p)))).min_by_key(|&(_, n)| n).expect("the input batch");
    if batch as u64 > largest {
        return Err(SizeError::Batch { what: what.clone(), batch, largest, adapter: ctx.info.name.clone() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{conv2d::Conv2d, dense::Dense, separable_conv2d::SeparableConv2d, Pair};
    use crate::layers::{Activation, Padding};

    fn dense(units: u32, activation: Activation) -> LayerKind {
        LayerKind::Dense(Dense::new(units, activation))
    }

    #[test]
    fn true_sizes_are_checked_in_64_bits() {
        // 2^30 pixels with 8 filters each flatten to 2^33 values: more than 32 bits hold.
        let conv = LayerKind::Conv2d(Conv2d::new(8, 1, Padding::Same, Activation::Relu));
        let spec = ModelSpec::new([32768, 32768, 1], vec![(None, conv), (None, LayerKind::Flatten(Default::default())), (None, dense(1, Activation::Sigmoid))]).unwrap_err().to_string();
        assert!(spec.contains("flatten_1") && spec.contains("8589934592"), "{spec}");
        let e = check_model(&ModelSpec { input: [32768, 32768, 8], layers: vec![] }).unwrap_err().to_string();
        assert!(e.contains("8589934592"), "{e}");
        // A dense kernel of 2^16 x 2^16 values.
        let spec = ModelSpec::new([256, 256, 1], vec![(None, LayerKind::Flatten(Default::default())), (None, dense(65536, Activation::Relu)), (None, dense(1, Activation::Sigmoid))]).unwrap();
        let e = check_model(&spec).unwrap_err().to_string();
        assert!(e.contains("dense_1") && e.contains("4294967296"), "{e}");
        // A separable conv's own depthwise output (2^30 pixels x 4), wider than its output.
        let separable = LayerKind::SeparableConv2d(SeparableConv2d { depth_multiplier: 4, ..SeparableConv2d::new(1, 1, Padding::Same, Activation::Relu) });
        let pool = LayerKind::GlobalAvgPool2d(Default::default());
        let spec = ModelSpec::new([32768, 32768, 1], vec![(None, separable), (None, pool), (None, dense(1, Activation::Sigmoid))]).unwrap();
        let e = check_model(&spec).unwrap_err().to_string();
        assert!(e.contains("separable_conv2d_1: its depthwise output (per image) holds 4294967296"), "{e}");
        let huge = LayerKind::Conv2d(Conv2d { kernel: Pair([u32::MAX, 2]), ..Conv2d::new(1, 1, Padding::Same, Activation::Relu) });
        let e = check_arguments([8, 8, 3], [("conv2d_1".to_string(), &huge)]).unwrap_err().to_string();
        assert!(e.contains("conv2d_1") && e.contains("kernel side 4294967295"), "{e}");
    }

    #[test]
    fn host_memory_is_checked_where_the_system_reports_it() {
        check_host_bytes("a little", 1 << 20).unwrap();
        if available_memory().is_some() {
            let e = check_host_bytes("the synthetic set", u64::MAX).unwrap_err().to_string();
            assert!(e.starts_with("the synthetic set needs 17592186044415 MiB of host memory"), "{e}");
        }
    }
}
