//! One typed wrapper per WGSL entry point. Pipelines are compiled once per context (lazily, on
//! first use); a wrapper builds the uniform and bind group once and returns a [`Dispatch`] that
//! only records into a compute pass the caller owns. Every wrapper states what it writes:
//! outputs and gradients are overwritten (never accumulated across steps); `relu_backward` and
//! `adam_update` work in place, and `loss` adds to the metrics accumulator.

use std::sync::OnceLock;

use bytemuck::{Pod, Zeroable};

use super::{GpuContext, View};
use crate::model::{ConvShape, PoolShape};

/// Invocations per workgroup of every linear kernel (`WG` in common.wgsl).
pub const WG: u32 = 64;

/// Rows and columns of c per GEMM invocation (the 4x4 register tile of matmul.wgsl).
const GEMM_TILE: u32 = 4;

/// The other register tiles the dispatch grids follow (each WGSL entry point states its own):
/// conv invocations take 4 pixels of a row (16 in the subgroup kernels) x 4 channels;
/// `gemm_subgroup` takes 8 rows; the subgroup kernel gradient 4 (tap, input-channel quad) units.
const CONV_PIXELS: u32 = 4;
const CONV_SUBGROUP_PIXELS: u32 = 16;
const GEMM_SUBGROUP_ROWS: u32 = 8;
const KERNEL_GRADIENT_SUBGROUP_UNITS: u32 = 4;

/// Invocations of conv kernel `k` over a batch of h x w x c tensors (`pixel_tiles` in
/// conv2d.wgsl).
fn pixel_tiles(k: Kernel, batch: u32, h: u32, w: u32, c: u32) -> u64 {
    let pixels = if k.uses_subgroups() { CONV_SUBGROUP_PIXELS } else { CONV_PIXELS };
    batch as u64 * h as u64 * w.div_ceil(pixels) as u64 * c.div_ceil(4) as u64
}

const COMMON: &str = include_str!("../../shaders/common.wgsl");

/// The kernel families, one WGSL file each.
/// The subgroup variants of a family: its file, then `SUBGROUP`, then their own file. They are
/// separate modules because a module using subgroup operations fails to build without them.
const SUBGROUP: &str = include_str!("../../shaders/subgroup.wgsl");

/// The kernel families, one WGSL file each (plus one for a family's subgroup variants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Conv2d,
    Pool,
    Conv2dSubgroup,
    Matmul,
    MatmulSubgroup,
    Reduce,
    Batchnorm,
    Activation,
    Loss,
    Adam,
}

impl Family {
    const ALL: [Family; 10] = [
        Self::Conv2d,
        Self::Conv2dSubgroup,
        Self::Pool,
        Self::Matmul,
        Self::MatmulSubgroup,
        Self::Reduce,
        Self::Batchnorm,
        Self::Activation,
        Self::Loss,
        Self::Adam,
    ];

    fn source(self) -> String {
        let file = match self {
            Self::Conv2d => include_str!("../../shaders/conv2d.wgsl"),
            Self::Conv2dSubgroup => return Self::Conv2d.with_subgroup_file(include_str!("../../shaders/conv2d_subgroup.wgsl")),
            Self::Pool => include_str!("../../shaders/pool.wgsl"),
            Self::Matmul => include_str!("../../shaders/matmul.wgsl"),
            Self::MatmulSubgroup => return Self::Matmul.with_subgroup_file(include_str!("../../shaders/matmul_subgroup.wgsl")),
            Self::Reduce => include_str!("../../shaders/reduce.wgsl"),
            Self::Batchnorm => include_str!("../../shaders/batchnorm.wgsl"),
            Self::Activation => include_str!("../../shaders/activation.wgsl"),
            Self::Loss => include_str!("../../shaders/loss.wgsl"),
            Self::Adam => include_str!("../../shaders/adam.wgsl"),
        };
        format!("{COMMON}\n{file}")
    }

    fn with_subgroup_file(self, file: &str) -> String {
        format!("{}\n{SUBGROUP}\n{file}", self.source())
    }

    fn needs_subgroups(self) -> bool {
        matches!(self, Self::Conv2dSubgroup | Self::MatmulSubgroup)
    }
}

/// Every WGSL entry point; the variant's snake_case name is the entry point's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// The conv kernels, specialised for quad loads along in_c (`x_quads`: in_c % 4 == 0)
    /// and out_c (`out_quads`: out_c % 4 == 0).
    Conv2dForward { x_quads: bool, out_quads: bool },
    Conv2dBackwardInput { out_quads: bool },
    Conv2dBackwardKernel { x_quads: bool, out_quads: bool },
    /// Subgroup variants of the conv kernels (out_c, or in_c for the input gradient, a
    /// multiple of 4 x the subgroup size).
    Conv2dForwardSubgroup { x_quads: bool },
    Conv2dBackwardInputSubgroup,
    Conv2dBackwardKernelSubgroup { x_quads: bool },
    Maxpool2dForward,
    Maxpool2dBackward,
    Maxpool2dForwardQuads,
    Maxpool2dBackwardQuads,
    Avgpool2dForward,
    Avgpool2dBackward,
    Gemm,
    /// `gemm_quads` specialised for a layout: a [m, k] or [k, m] x b [k, n] or [n, k].
    GemmQuads { a_k_contiguous: bool, b_n_contiguous: bool },
    /// `gemm_subgroup`: `gemm_quads` with a's rows shared across a subgroup.
    GemmSubgroup { a_k_contiguous: bool, b_n_contiguous: bool },
    ColumnSum,
    SumPartials,
    BatchnormStatsPartial,
    BatchnormStatsFinish,
    BatchnormForward,
    BatchnormBackwardPartial,
    BatchnormBackwardFinish,
    BatchnormBackwardInput,
    ReluForward,
    ReluBackward,
    SigmoidForward,
    SoftmaxForward,
    DropoutMask,
    SigmoidBceLoss,
    SoftmaxCeLoss,
    AdamUpdate,
}

impl Kernel {
    pub const ALL: [Kernel; 44] = [
        Self::Conv2dForward { x_quads: false, out_quads: false },
        Self::Conv2dForward { x_quads: false, out_quads: true },
        Self::Conv2dForward { x_quads: true, out_quads: false },
        Self::Conv2dForward { x_quads: true, out_quads: true },
        Self::Conv2dBackwardInput { out_quads: false },
        Self::Conv2dBackwardInput { out_quads: true },
        Self::Conv2dBackwardKernel { x_quads: false, out_quads: false },
        Self::Conv2dBackwardKernel { x_quads: false, out_quads: true },
        Self::Conv2dBackwardKernel { x_quads: true, out_quads: false },
        Self::Conv2dBackwardKernel { x_quads: true, out_quads: true },
        Self::Conv2dForwardSubgroup { x_quads: false },
        Self::Conv2dForwardSubgroup { x_quads: true },
        Self::Conv2dBackwardInputSubgroup,
        Self::Conv2dBackwardKernelSubgroup { x_quads: false },
        Self::Conv2dBackwardKernelSubgroup { x_quads: true },
        Self::Maxpool2dForward,
        Self::Maxpool2dBackward,
        Self::Maxpool2dForwardQuads,
        Self::Maxpool2dBackwardQuads,
        Self::Avgpool2dForward,
        Self::Avgpool2dBackward,
        Self::Gemm,
        Self::GemmQuads { a_k_contiguous: true, b_n_contiguous: true },
        Self::GemmQuads { a_k_contiguous: true, b_n_contiguous: false },
        Self::GemmQuads { a_k_contiguous: false, b_n_contiguous: true },
        Self::GemmSubgroup { a_k_contiguous: true, b_n_contiguous: true },
        Self::GemmSubgroup { a_k_contiguous: true, b_n_contiguous: false },
        Self::GemmSubgroup { a_k_contiguous: false, b_n_contiguous: true },
        Self::ColumnSum,
        Self::SumPartials,
        Self::BatchnormStatsPartial,
        Self::BatchnormStatsFinish,
        Self::BatchnormForward,
        Self::BatchnormBackwardPartial,
        Self::BatchnormBackwardFinish,
        Self::BatchnormBackwardInput,
        Self::ReluForward,
        Self::ReluBackward,
        Self::SigmoidForward,
        Self::SoftmaxForward,
        Self::DropoutMask,
        Self::SigmoidBceLoss,
        Self::SoftmaxCeLoss,
        Self::AdamUpdate,
    ];

    pub fn entry(self) -> &'static str {
        match self {
            Self::Conv2dForward { .. } => "conv2d_forward",
            Self::Conv2dBackwardInput { .. } => "conv2d_backward_input",
            Self::Conv2dBackwardKernel { .. } => "conv2d_backward_kernel",
            Self::Conv2dForwardSubgroup { .. } => "conv2d_forward_subgroup",
            Self::Conv2dBackwardInputSubgroup => "conv2d_backward_input_subgroup",
            Self::Conv2dBackwardKernelSubgroup { .. } => "conv2d_backward_kernel_subgroup",
            Self::Maxpool2dForward => "maxpool2d_forward",
            Self::Maxpool2dBackward => "maxpool2d_backward",
            Self::Maxpool2dForwardQuads => "maxpool2d_forward_quads",
            Self::Maxpool2dBackwardQuads => "maxpool2d_backward_quads",
            Self::Avgpool2dForward => "avgpool2d_forward",
            Self::Avgpool2dBackward => "avgpool2d_backward",
            Self::Gemm => "gemm",
            Self::GemmQuads { .. } => "gemm_quads",
            Self::GemmSubgroup { .. } => "gemm_subgroup",
            Self::ColumnSum => "column_sum",
            Self::SumPartials => "sum_partials",
            Self::BatchnormStatsPartial => "batchnorm_stats_partial",
            Self::BatchnormStatsFinish => "batchnorm_stats_finish",
            Self::BatchnormForward => "batchnorm_forward",
            Self::BatchnormBackwardPartial => "batchnorm_backward_partial",
            Self::BatchnormBackwardFinish => "batchnorm_backward_finish",
            Self::BatchnormBackwardInput => "batchnorm_backward_input",
            Self::ReluForward => "relu_forward",
            Self::ReluBackward => "relu_backward",
            Self::SigmoidForward => "sigmoid_forward",
            Self::SoftmaxForward => "softmax_forward",
            Self::DropoutMask => "dropout_mask",
            Self::SigmoidBceLoss => "sigmoid_bce_loss",
            Self::SoftmaxCeLoss => "softmax_ce_loss",
            Self::AdamUpdate => "adam_update",
        }
    }

    /// Pipeline-overridable constants the entry point is specialised with.
    fn constants(self) -> Vec<(&'static str, f64)> {
        match self {
            Self::GemmQuads { a_k_contiguous, b_n_contiguous } | Self::GemmSubgroup { a_k_contiguous, b_n_contiguous } => {
                vec![("A_K_CONTIGUOUS", a_k_contiguous as u8 as f64), ("B_N_CONTIGUOUS", b_n_contiguous as u8 as f64)]
            }
            Self::Conv2dForward { x_quads, out_quads } | Self::Conv2dBackwardKernel { x_quads, out_quads } => {
                vec![("X_QUADS", x_quads as u8 as f64), ("OUT_QUADS", out_quads as u8 as f64)]
            }
            Self::Conv2dBackwardInput { out_quads } => vec![("OUT_QUADS", out_quads as u8 as f64)],
            Self::Conv2dForwardSubgroup { x_quads } | Self::Conv2dBackwardKernelSubgroup { x_quads } => {
                vec![("X_QUADS", x_quads as u8 as f64), ("OUT_QUADS", 1.0)]
            }
            _ => Vec::new(),
        }
    }

    /// Whether this is a subgroup variant (see subgroup.wgsl).
    pub fn uses_subgroups(self) -> bool {
        self.family().needs_subgroups()
    }

    fn family(self) -> Family {
        match self {
            Self::Conv2dForward { .. } | Self::Conv2dBackwardInput { .. } | Self::Conv2dBackwardKernel { .. } => Family::Conv2d,
            Self::Conv2dForwardSubgroup { .. } | Self::Conv2dBackwardInputSubgroup | Self::Conv2dBackwardKernelSubgroup { .. } => {
                Family::Conv2dSubgroup
            }
            Self::Maxpool2dForward
            | Self::Maxpool2dBackward
            | Self::Maxpool2dForwardQuads
            | Self::Maxpool2dBackwardQuads
            | Self::Avgpool2dForward
            | Self::Avgpool2dBackward => Family::Pool,
            Self::Gemm | Self::GemmQuads { .. } => Family::Matmul,
            Self::GemmSubgroup { .. } => Family::MatmulSubgroup,
            Self::ColumnSum | Self::SumPartials => Family::Reduce,
            Self::BatchnormStatsPartial
            | Self::BatchnormStatsFinish
            | Self::BatchnormForward
            | Self::BatchnormBackwardPartial
            | Self::BatchnormBackwardFinish
            | Self::BatchnormBackwardInput => Family::Batchnorm,
            Self::ReluForward | Self::ReluBackward | Self::SigmoidForward | Self::SoftmaxForward | Self::DropoutMask => {
                Family::Activation
            }
            Self::SigmoidBceLoss | Self::SoftmaxCeLoss => Family::Loss,
            Self::AdamUpdate => Family::Adam,
        }
    }
}

/// One recorded kernel launch: pipeline, bind group and grid, all built once.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub kernel: Kernel,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
}

impl Dispatch {
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.groups[0], self.groups[1], self.groups[2]);
    }
}

/// Records `dispatches` into one compute pass and submits it: one queue submission.
pub fn submit(ctx: &GpuContext, dispatches: &[Dispatch]) {
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        for d in dispatches {
            d.record(&mut pass);
        }
    }
    ctx.queue.submit([encoder.finish()]);
}

// Uniform structs, field for field the WGSL ones.

/// The per-step uniform (`Step` in common.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct StepParams {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// The bias-corrected step size lr * sqrt(1 - beta2^t) / (1 - beta1^t).
    pub lr_t: f32,
    /// Adam step, 1-based.
    pub t: u32,
    /// Valid rows in this batch.
    pub rows: u32,
    /// 0 makes dropout the identity.
    pub training: u32,
}

impl StepParams {
    /// Keras' Adam defaults (beta1 0.9, beta2 0.999, eps 1e-7) at 1-based step `t`, training.
    pub fn adam(lr: f32, t: u32, rows: u32) -> Self {
        let (beta1, beta2) = (0.9f64, 0.999f64);
        let lr_t = lr as f64 * (1.0 - beta2.powi(t as i32)).sqrt() / (1.0 - beta1.powi(t as i32));
        Self { lr, beta1: beta1 as f32, beta2: beta2 as f32, eps: 1e-7, lr_t: lr_t as f32, t, rows, training: 1 }
    }
}

impl ConvShape {
    fn params(&self, relu: bool, splits: Splits) -> ConvParams {
        ConvParams {
            batch: self.batch,
            in_h: self.in_h,
            in_w: self.in_w,
            in_c: self.in_c,
            out_h: self.out_h,
            out_w: self.out_w,
            out_c: self.out_c,
            k_h: self.k_h,
            k_w: self.k_w,
            stride: self.stride,
            pad_top: self.pad_top,
            pad_left: self.pad_left,
            relu: relu as u32,
            splits: splits.count,
            rows_per_split: splits.chunk,
            _pad: 0,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ConvParams {
    batch: u32,
    in_h: u32,
    in_w: u32,
    in_c: u32,
    out_h: u32,
    out_w: u32,
    out_c: u32,
    k_h: u32,
    k_w: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    relu: u32,
    splits: u32,
    rows_per_split: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PoolParams {
    batch: u32,
    in_h: u32,
    in_w: u32,
    c: u32,
    out_h: u32,
    out_w: u32,
    pool_h: u32,
    pool_w: u32,
    stride_h: u32,
    stride_w: u32,
    _pad: [u32; 2],
}

/// Geometry of a batch normalisation: x seen as [batch * pixels, channels].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormShape {
    /// Images the buffers hold.
    pub batch: u32,
    /// Rows per image: h * w after a conv, 1 after a dense layer.
    pub pixels: u32,
    pub channels: u32,
    pub momentum: f32,
    pub epsilon: f32,
}

impl NormShape {
    pub fn rows(&self) -> u64 {
        self.batch as u64 * self.pixels as u64
    }
    pub fn len(&self) -> u64 {
        self.rows() * self.channels as u64
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn splits(&self) -> Splits {
        Splits::choose(self.channels as u64, self.rows() as u32)
    }
    fn params(&self, relu: bool) -> NormParams {
        let splits = self.splits();
        NormParams {
            pixels: self.pixels,
            channels: self.channels,
            capacity_rows: self.rows() as u32,
            splits: splits.count,
            rows_per_split: splits.chunk,
            relu: relu as u32,
            _pad: [0; 2],
            momentum: self.momentum,
            epsilon: self.epsilon,
            _pad2: [0; 2],
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct NormParams {
    pixels: u32,
    channels: u32,
    capacity_rows: u32,
    splits: u32,
    rows_per_split: u32,
    relu: u32,
    _pad: [u32; 2],
    momentum: f32,
    epsilon: f32,
    _pad2: [u32; 2],
}

/// c[m, n] = sum_k a[m, k] b[k, n] with a[m, k] at `m * a_row + k * a_col` and b[k, n] at
/// `k * b_row + n * b_col` (see matmul.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmShape {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub a_row: u32,
    pub a_col: u32,
    pub b_row: u32,
    pub b_col: u32,
}

impl GemmShape {
    /// a [m, k] . b [k, n], both row-major.
    pub fn nn(m: u32, n: u32, k: u32) -> Self {
        Self { m, n, k, a_row: k, a_col: 1, b_row: n, b_col: 1 }
    }
    /// a [m, k] . b^T with b stored [n, k].
    pub fn nt(m: u32, n: u32, k: u32) -> Self {
        Self { m, n, k, a_row: k, a_col: 1, b_row: 1, b_col: k }
    }
    /// a^T . b with a stored [k, m], b [k, n].
    pub fn tn(m: u32, n: u32, k: u32) -> Self {
        Self { m, n, k, a_row: 1, a_col: m, b_row: n, b_col: 1 }
    }
    pub fn macs(&self) -> u64 {
        self.m as u64 * self.n as u64 * self.k as u64
    }
    /// Whether `gemm_quads` applies: every dimension a multiple of 4 (then every row of every
    /// operand starts on a quad).
    fn quads(&self) -> bool {
        [self.m, self.n, self.k].iter().all(|d| d.is_multiple_of(4))
    }

    fn splits(&self) -> Splits {
        if self.quads() {
            let s = Splits::choose(self.tiles(), self.k / 4);
            return Splits { count: s.count, chunk: s.chunk * 4 };
        }
        Splits::choose(self.tiles(), self.k)
    }

    /// The kernel for this shape: `gemm_subgroup` when a subgroup of `lanes` fits in a row of
    /// column tiles and m in 8-row tiles, else `gemm_quads`, in the layout's specialisation;
    /// else `gemm`.
    fn kernel(&self, lanes: Option<u32>) -> Kernel {
        assert!(self.a_col == 1 || self.a_row == 1, "gemm: a must be contiguous along k or m");
        assert!(self.b_col == 1 || self.b_row == 1, "gemm: b must be contiguous along n or k");
        let (a_k_contiguous, b_n_contiguous) = (self.a_col == 1, self.b_col == 1);
        match (self.quads(), lanes) {
            (true, Some(s)) if self.n.is_multiple_of(GEMM_TILE * s) && self.m.is_multiple_of(GEMM_SUBGROUP_ROWS) => Kernel::GemmSubgroup { a_k_contiguous, b_n_contiguous },
            (true, _) => Kernel::GemmQuads { a_k_contiguous, b_n_contiguous },
            (false, _) => Kernel::Gemm,
        }
    }

    /// Invocations of one split (`TM` x `TN` tiles in matmul.wgsl).
    fn tiles(&self) -> u64 {
        self.m.div_ceil(GEMM_TILE) as u64 * self.n.div_ceil(GEMM_TILE) as u64
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GemmParams {
    m: u32,
    n: u32,
    k: u32,
    splits: u32,
    a_row: u32,
    a_col: u32,
    b_row: u32,
    b_col: u32,
    k_per_split: u32,
    has_bias: u32,
    relu: u32,
    rows_fastest: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReduceParams {
    rows: u32,
    cols: u32,
    splits: u32,
    rows_per_split: u32,
    len: u32,
    has_bias: u32,
    relu: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ElementwiseParams {
    len: u32,
    cols: u32,
    seed: u32,
    rate: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LossParams {
    capacity: u32,
    classes: u32,
    _pad: [u32; 2],
}

/// How a long reduction is cut so that kernels with few outputs still launch enough
/// invocations; the partial sums are then added in a fixed order by `sum_partials`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Splits {
    pub count: u32,
    pub chunk: u32,
}

impl Splits {
    /// Enough invocations to fill a large GPU.
    const TARGET_INVOCATIONS: u64 = 32 * 1024;
    /// Below this a chunk is not worth a partial sum.
    const MIN_CHUNK: u32 = 256;

    fn choose(outputs: u64, len: u32) -> Self {
        let wanted = Self::TARGET_INVOCATIONS.div_ceil(outputs.max(1));
        let most = len.div_ceil(Self::MIN_CHUNK) as u64;
        let count = wanted.min(most).clamp(1, 256) as u32;
        let chunk = len.div_ceil(count).max(1);
        Self { count: len.div_ceil(chunk).max(1), chunk }
    }
}

/// Scratch elements (partial sums) a reduction of `outputs` results needs with `splits`.
fn scratch_len(splits: Splits, outputs: u64) -> u64 {
    if splits.count > 1 { splits.count as u64 * outputs } else { 0 }
}

enum Bind<'a> {
    Uniform(&'a wgpu::Buffer),
    Storage(&'a View),
    /// Bound as `array<vec4<f32>>` (see [`View::quads`]).
    Quads(&'a View),
}

/// The compiled pipelines of one device, each built on first use and kept.
pub struct Kernels {
    device: wgpu::Device,
    max_groups: u32,
    /// Lanes per subgroup when the subgroup variants may be used (see subgroup.wgsl).
    lanes: Option<u32>,
    modules: [OnceLock<wgpu::ShaderModule>; Family::ALL.len()],
    pipelines: [OnceLock<wgpu::ComputePipeline>; Kernel::ALL.len()],
}

impl Kernels {
    /// The kernels of `ctx`, with the subgroup variants where the adapter allows them.
    pub fn new(ctx: &GpuContext) -> Self {
        Self::with_subgroups(ctx, true)
    }

    /// `subgroups: false` keeps to the kernels every adapter runs (tests check both paths).
    pub fn with_subgroups(ctx: &GpuContext, subgroups: bool) -> Self {
        Self {
            device: ctx.device.clone(),
            max_groups: ctx.limits.max_compute_workgroups_per_dimension,
            lanes: ctx.subgroup_size().filter(|_| subgroups),
            modules: Default::default(),
            pipelines: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Lanes per subgroup when the subgroup kernels are in use.
    pub fn subgroup_lanes(&self) -> Option<u32> {
        self.lanes
    }

    /// Compiles every pipeline this adapter can use now (benchmarks call this so compilation is
    /// not timed).
    pub fn compile_all(&self) {
        for k in Kernel::ALL.into_iter().filter(|k| self.lanes.is_some() || !k.uses_subgroups()) {
            self.pipeline(k);
        }
    }

    fn pipeline(&self, kernel: Kernel) -> &wgpu::ComputePipeline {
        let index = Kernel::ALL.iter().position(|&k| k == kernel).expect("listed kernel");
        self.pipelines[index].get_or_init(|| {
            let family = kernel.family();
            let module = self.modules[Family::ALL.iter().position(|&f| f == family).expect("listed family")].get_or_init(|| {
                self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(kernel.entry()),
                    source: wgpu::ShaderSource::Wgsl(family.source().into()),
                })
            });
            self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.entry()),
                layout: None,
                module,
                entry_point: Some(kernel.entry()),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &kernel.constants(),
                    // Every kernel writes its workgroup memory before reading it.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
        })
    }

    /// Workgroups for `invocations` linear invocations, folded into 2D past the per-dimension
    /// limit (kernels rebuild the flat id with `linear_id`).
    fn grid(&self, invocations: u64) -> [u32; 3] {
        let groups = invocations.div_ceil(WG as u64).max(1);
        let x = groups.min(self.max_groups as u64);
        let y = groups.div_ceil(x);
        assert!(y <= self.max_groups as u64, "{invocations} invocations exceed the adapter's grid");
        [x as u32, y as u32, 1]
    }

    fn dispatch(&self, kernel: Kernel, binds: &[(u32, Bind<'_>)], groups: [u32; 3]) -> Dispatch {
        let pipeline = self.pipeline(kernel).clone();
        let entries: Vec<_> = binds
            .iter()
            .map(|(binding, b)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: match b {
                    Bind::Uniform(buffer) => buffer.as_entire_binding(),
                    Bind::Storage(view) => view.binding(),
                    Bind::Quads(view) => view.quads(),
                },
            })
            .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.entry()),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Dispatch { kernel, pipeline, bind_group, groups }
    }

    fn uniform<T: Pod>(&self, kernel: Kernel, value: &T) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(kernel.entry()),
            contents: bytemuck::bytes_of(value),
            usage: wgpu::BufferUsages::UNIFORM,
        })
    }

    // ---- conv2d.wgsl ----

    /// Whether the subgroup conv kernels apply to a channel count their lanes split: one
    /// channel quad per lane, whole subgroups (conv2d_subgroup.wgsl).
    fn shares_lanes(&self, channels: u32) -> bool {
        self.lanes.is_some_and(|s| channels.is_multiple_of(4 * s))
    }

    /// y [batch, out_h, out_w, out_c] = act(conv(x, w) + b); overwrites y.
    pub fn conv2d_forward(&self, s: &ConvShape, relu: bool, x: &View, w: &View, b: &View, y: &View) -> Dispatch {
        let x_quads = s.in_c.is_multiple_of(4);
        let k = match self.shares_lanes(s.out_c) {
            true => Kernel::Conv2dForwardSubgroup { x_quads },
            false => Kernel::Conv2dForward { x_quads, out_quads: s.out_c.is_multiple_of(4) },
        };
        let u = self.uniform(k, &s.params(relu, Splits { count: 1, chunk: 1 }));
        let mut binds = vec![
            (0, Bind::Uniform(&u)),
            (1, Bind::Storage(x)),
            (8, Bind::Quads(x)),
            (9, Bind::Quads(w)),
            (3, Bind::Storage(b)),
            (4, Bind::Storage(y)),
        ];
        if !k.uses_subgroups() {
            binds.push((2, Bind::Storage(w)));
        }
        self.dispatch(k, &binds, self.grid(pixel_tiles(k, s.batch, s.out_h, s.out_w, s.out_c)))
    }

    /// dx [batch, in_h, in_w, in_c] from dy at the pre-activation; overwrites dx.
    pub fn conv2d_backward_input(&self, s: &ConvShape, dy: &View, w: &View, dx: &View) -> Dispatch {
        let out_quads = s.out_c.is_multiple_of(4);
        let k = match out_quads && self.shares_lanes(s.in_c) {
            true => Kernel::Conv2dBackwardInputSubgroup,
            false => Kernel::Conv2dBackwardInput { out_quads },
        };
        let u = self.uniform(k, &s.params(false, Splits { count: 1, chunk: 1 }));
        let mut binds = vec![(0, Bind::Uniform(&u)), (10, Bind::Quads(dy)), (9, Bind::Quads(w)), (6, Bind::Storage(dx))];
        if !k.uses_subgroups() {
            binds.extend([(5, Bind::Storage(dy)), (2, Bind::Storage(w))]);
        }
        self.dispatch(k, &binds, self.grid(pixel_tiles(k, s.batch, s.in_h, s.in_w, s.in_c)))
    }

    /// Scratch elements [`Self::conv2d_backward_kernel`] needs for this shape.
    pub fn conv2d_backward_kernel_scratch(s: &ConvShape) -> u64 {
        scratch_len(Self::conv_kernel_splits(s), s.kernel_len())
    }

    /// Invocations of one split of the kernel gradient: taps x input-channel quads x output-channel quads.
    fn conv_kernel_tiles(s: &ConvShape) -> u64 {
        (s.k_h * s.k_w) as u64 * s.in_c.div_ceil(4) as u64 * s.out_c.div_ceil(4) as u64
    }

    fn conv_kernel_splits(s: &ConvShape) -> Splits {
        Splits::choose(Self::conv_kernel_tiles(s), s.output_rows() as u32)
    }

    /// dw [k_h, k_w, in_c, out_c] = sum over rows of x patches times dy; overwrites dw.
    /// One or two dispatches (split reduction, then `sum_partials` through `scratch`).
    pub fn conv2d_backward_kernel(&self, s: &ConvShape, x: &View, dy: &View, dw: &View, scratch: &View) -> Vec<Dispatch> {
        let x_quads = s.in_c.is_multiple_of(4);
        let k = match self.shares_lanes(s.out_c) {
            true => Kernel::Conv2dBackwardKernelSubgroup { x_quads },
            false => Kernel::Conv2dBackwardKernel { x_quads, out_quads: s.out_c.is_multiple_of(4) },
        };
        let splits = Self::conv_kernel_splits(s);
        let target = if splits.count > 1 { scratch } else { dw };
        let u = self.uniform(k, &s.params(false, splits));
        let n = splits.count as u64
            * match k.uses_subgroups() {
                true => ((s.k_h * s.k_w * s.in_c.div_ceil(4)).div_ceil(KERNEL_GRADIENT_SUBGROUP_UNITS) * s.out_c / 4) as u64,
                false => Self::conv_kernel_tiles(s),
            };
        let binds = [
            (0, Bind::Uniform(&u)),
            (1, Bind::Storage(x)),
            (8, Bind::Quads(x)),
            (5, Bind::Storage(dy)),
            (10, Bind::Quads(dy)),
            (7, Bind::Storage(target)),
        ];
        let mut out = vec![self.dispatch(k, &binds, self.grid(n))];
        if splits.count > 1 {
            out.push(self.sum_partials(splits.count, s.kernel_len(), None, false, scratch, dw));
        }
        out
    }

    // ---- pool.wgsl ----

    /// y = window max, argmax = flat x index of the first maximum; overwrites both.
    /// Channel quads when the channel count allows (`*_quads` kernels), else one channel each.
    pub fn maxpool2d_forward(&self, s: &PoolShape, x: &View, y: &View, argmax: &View) -> Dispatch {
        let quads = s.c.is_multiple_of(4);
        let k = if quads { Kernel::Maxpool2dForwardQuads } else { Kernel::Maxpool2dForward };
        let u = self.uniform(k, &pool_params(s));
        let binds = match quads {
            true => [(7, Bind::Quads(x)), (8, Bind::Quads(y)), (9, Bind::Quads(argmax))],
            false => [(1, Bind::Storage(x)), (2, Bind::Storage(y)), (3, Bind::Storage(argmax))],
        };
        let binds: Vec<_> = std::iter::once((0, Bind::Uniform(&u))).chain(binds).collect();
        self.dispatch(k, &binds, self.grid(s.output_len() / if quads { 4 } else { 1 }))
    }

    /// dx = dy routed back to the argmax positions; overwrites dx. A scatter over channel
    /// quads when windows do not overlap and the channel count allows, else a gather.
    pub fn maxpool2d_backward(&self, s: &PoolShape, argmax: &View, dy: &View, dx: &View) -> Dispatch {
        let scatter = s.c.is_multiple_of(4) && s.stride[0] >= s.pool[0] && s.stride[1] >= s.pool[1];
        let k = if scatter { Kernel::Maxpool2dBackwardQuads } else { Kernel::Maxpool2dBackward };
        let u = self.uniform(k, &pool_params(s));
        let (binds, invocations) = match scatter {
            true => ([(10, Bind::Quads(argmax)), (11, Bind::Quads(dy)), (12, Bind::Quads(dx))], s.output_len() / 4),
            false => ([(4, Bind::Storage(argmax)), (5, Bind::Storage(dy)), (6, Bind::Storage(dx))], s.input_len()),
        };
        let binds: Vec<_> = std::iter::once((0, Bind::Uniform(&u))).chain(binds).collect();
        self.dispatch(k, &binds, self.grid(invocations))
    }

    /// y = window mean (global average pooling when the window is the whole image); overwrites y.
    pub fn avgpool2d_forward(&self, s: &PoolShape, x: &View, y: &View) -> Dispatch {
        let k = Kernel::Avgpool2dForward;
        let u = self.uniform(k, &pool_params(s));
        self.dispatch(k, &[(0, Bind::Uniform(&u)), (1, Bind::Storage(x)), (2, Bind::Storage(y))], self.grid(s.output_len()))
    }

    /// dx = dy spread evenly over each window (a gather, overlapping windows allowed); overwrites dx.
    pub fn avgpool2d_backward(&self, s: &PoolShape, dy: &View, dx: &View) -> Dispatch {
        let k = Kernel::Avgpool2dBackward;
        let u = self.uniform(k, &pool_params(s));
        self.dispatch(k, &[(0, Bind::Uniform(&u)), (5, Bind::Storage(dy)), (6, Bind::Storage(dx))], self.grid(s.input_len()))
    }

    // ---- batchnorm.wgsl ----

    /// Scratch elements the batchnorm reductions need.
    pub fn batchnorm_scratch(s: &NormShape) -> u64 {
        3 * s.splits().count as u64 * s.channels as u64
    }

    /// Elements of a batchnorm layer's per-channel statistics and coefficients.
    pub fn batchnorm_stats_len(s: &NormShape) -> u64 {
        7 * s.channels as u64
    }

    /// The forward pass's per-channel scale and shift into `stats`: in training (step.training
    /// != 0) from the batch mean and biased variance, with the moving statistics `moving` =
    /// [mean, variance] updated in place; in inference from the moving statistics. Two
    /// dispatches (split Welford sums in `scratch`, training only; then their ordered merge).
    #[allow(clippy::too_many_arguments)]
    pub fn batchnorm_stats(&self, s: &NormShape, step: &wgpu::Buffer, x: &View, gamma: &View, beta: &View, moving: &[View; 2], stats: &View, scratch: &View) -> Vec<Dispatch> {
        let p = s.params(false);
        let k = Kernel::BatchnormStatsPartial;
        let u = self.uniform(k, &p);
        let partial = self.dispatch(k, &[(0, Bind::Uniform(&u)), (1, Bind::Uniform(step)), (2, Bind::Storage(x)), (9, Bind::Storage(scratch))], self.grid(p.splits as u64 * p.channels as u64));
        let k = Kernel::BatchnormStatsFinish;
        let binds = [
            (0, Bind::Uniform(&u)),
            (1, Bind::Uniform(step)),
            (4, Bind::Storage(gamma)),
            (5, Bind::Storage(beta)),
            (6, Bind::Storage(&moving[0])),
            (7, Bind::Storage(&moving[1])),
            (8, Bind::Storage(stats)),
            (9, Bind::Storage(scratch)),
        ];
        vec![partial, self.dispatch(k, &binds, self.grid(p.channels as u64))]
    }

    /// y = act(x * scale + shift) with the coefficients [`Self::batchnorm_stats`] left in
    /// `stats`; overwrites y (by quads).
    pub fn batchnorm_forward(&self, s: &NormShape, relu: bool, x: &View, stats: &View, y: &View) -> Dispatch {
        let k = Kernel::BatchnormForward;
        let u = self.uniform(k, &s.params(relu));
        let binds = [(0, Bind::Uniform(&u)), (13, Bind::Quads(x)), (15, Bind::Quads(stats)), (16, Bind::Quads(y))];
        self.dispatch(k, &binds, self.grid(s.len().div_ceil(4)))
    }

    /// dgamma = sum dy * x_hat and dbeta = sum dy over the valid rows (overwritten), and dx's
    /// coefficients into `stats` for [`Self::batchnorm_backward_input`]. Two dispatches through
    /// `scratch`.
    #[allow(clippy::too_many_arguments)]
    pub fn batchnorm_backward_stats(&self, s: &NormShape, step: &wgpu::Buffer, x: &View, dy: &View, gamma: &View, stats: &View, dgamma: &View, dbeta: &View, scratch: &View) -> Vec<Dispatch> {
        let p = s.params(false);
        let k = Kernel::BatchnormBackwardPartial;
        let u = self.uniform(k, &p);
        let binds = [(0, Bind::Uniform(&u)), (1, Bind::Uniform(step)), (2, Bind::Storage(x)), (3, Bind::Storage(dy)), (8, Bind::Storage(stats)), (9, Bind::Storage(scratch))];
        let partial = self.dispatch(k, &binds, self.grid(p.splits as u64 * p.channels as u64));
        let k = Kernel::BatchnormBackwardFinish;
        let binds = [
            (0, Bind::Uniform(&u)),
            (1, Bind::Uniform(step)),
            (4, Bind::Storage(gamma)),
            (8, Bind::Storage(stats)),
            (9, Bind::Storage(scratch)),
            (11, Bind::Storage(dgamma)),
            (12, Bind::Storage(dbeta)),
        ];
        vec![partial, self.dispatch(k, &binds, self.grid(p.channels as u64))]
    }

    /// dx = gamma / sqrt(var + eps) * (dy - mean(dy) - x_hat * mean(dy * x_hat)) on the valid
    /// rows, 0 on the rest; overwrites dx (by quads).
    pub fn batchnorm_backward_input(&self, s: &NormShape, step: &wgpu::Buffer, x: &View, dy: &View, stats: &View, dx: &View) -> Dispatch {
        let k = Kernel::BatchnormBackwardInput;
        let u = self.uniform(k, &s.params(false));
        let binds = [(0, Bind::Uniform(&u)), (1, Bind::Uniform(step)), (13, Bind::Quads(x)), (14, Bind::Quads(dy)), (15, Bind::Quads(stats)), (16, Bind::Quads(dx))];
        self.dispatch(k, &binds, self.grid(s.len().div_ceil(4)))
    }

    // ---- matmul.wgsl ----

    /// Scratch elements [`Self::gemm`] needs for this shape.
    pub fn gemm_scratch(g: &GemmShape) -> u64 {
        scratch_len(g.splits(), g.m as u64 * g.n as u64)
    }

    /// c [m, n] = act(a . b + bias); overwrites c. One or two dispatches (split-K partial sums
    /// in `scratch`, then `sum_partials` with the bias and ReLU).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(&self, g: &GemmShape, a: &View, b: &View, bias: Option<&View>, relu: bool, c: &View, scratch: &View) -> Vec<Dispatch> {
        let k = g.kernel(self.lanes);
        let splits = g.splits();
        let target = if splits.count > 1 { scratch } else { c };
        let u = self.uniform(
            k,
            &GemmParams {
                m: g.m,
                n: g.n,
                k: g.k,
                splits: splits.count,
                a_row: g.a_row,
                a_col: g.a_col,
                b_row: g.b_row,
                b_col: g.b_col,
                k_per_split: splits.chunk,
                has_bias: bias.is_some() as u32,
                relu: relu as u32,
                rows_fastest: (g.n > g.m) as u32,
            },
        );
        let rows = if k.uses_subgroups() { GEMM_SUBGROUP_ROWS } else { GEMM_TILE };
        let n = splits.count as u64 * (g.m.div_ceil(rows) * g.n.div_ceil(GEMM_TILE)) as u64;
        let bias_or_a = bias.unwrap_or(a);
        let binds = match k {
            Kernel::Gemm => [(1, Bind::Storage(a)), (2, Bind::Storage(b)), (3, Bind::Storage(bias_or_a)), (4, Bind::Storage(target))],
            _ => [(5, Bind::Quads(a)), (6, Bind::Quads(b)), (7, Bind::Quads(bias_or_a)), (8, Bind::Quads(target))],
        };
        let binds: Vec<_> = std::iter::once((0, Bind::Uniform(&u))).chain(binds).collect();
        let mut out = vec![self.dispatch(k, &binds, self.grid(n))];
        if splits.count > 1 {
            out.push(self.sum_partials_cols(splits.count, g.m as u64 * g.n as u64, g.n, bias, relu, scratch, c));
        }
        out
    }

    // ---- reduce.wgsl ----

    /// Scratch elements [`Self::column_sum`] needs.
    pub fn column_sum_scratch(rows: u64, cols: u32) -> u64 {
        scratch_len(Splits::choose(cols as u64, rows as u32), cols as u64)
    }

    /// out [cols] = sum over rows of src [rows, cols] (bias gradients); overwrites out.
    pub fn column_sum(&self, rows: u64, cols: u32, src: &View, out: &View, scratch: &View) -> Vec<Dispatch> {
        let k = Kernel::ColumnSum;
        let splits = Splits::choose(cols as u64, rows as u32);
        let target = if splits.count > 1 { scratch } else { out };
        let u = self.uniform(
            k,
            &ReduceParams {
                rows: rows as u32,
                cols,
                splits: splits.count,
                rows_per_split: splits.chunk,
                len: cols,
                has_bias: 0,
                relu: 0,
                _pad: 0,
            },
        );
        let binds = [(0, Bind::Uniform(&u)), (1, Bind::Storage(src)), (4, Bind::Storage(target))];
        let mut d = vec![self.dispatch(k, &binds, self.grid(splits.count as u64 * cols as u64))];
        if splits.count > 1 {
            d.push(self.sum_partials(splits.count, cols as u64, None, false, scratch, out));
        }
        d
    }

    /// out [len] = act(sum over s of partial [s, len] + bias); overwrites out.
    pub fn sum_partials(&self, splits: u32, len: u64, bias: Option<&View>, relu: bool, partial: &View, out: &View) -> Dispatch {
        self.sum_partials_cols(splits, len, len as u32, bias, relu, partial, out)
    }

    #[allow(clippy::too_many_arguments)]
    fn sum_partials_cols(&self, splits: u32, len: u64, cols: u32, bias: Option<&View>, relu: bool, partial: &View, out: &View) -> Dispatch {
        let k = Kernel::SumPartials;
        let u = self.uniform(
            k,
            &ReduceParams {
                rows: 0,
                cols,
                splits,
                rows_per_split: 0,
                len: len as u32,
                has_bias: bias.is_some() as u32,
                relu: relu as u32,
                _pad: 0,
            },
        );
        let binds = [(0, Bind::Uniform(&u)), (2, Bind::Storage(partial)), (3, Bind::Storage(bias.unwrap_or(partial))), (4, Bind::Storage(out))];
        self.dispatch(k, &binds, self.grid(len))
    }

    // ---- activation.wgsl ----

    fn elementwise(&self, k: Kernel, p: ElementwiseParams, io: [(u32, &View); 2], step: Option<&wgpu::Buffer>, invocations: u64) -> Dispatch {
        let u = self.uniform(k, &p);
        let mut binds = vec![(0, Bind::Uniform(&u)), (io[0].0, Bind::Storage(io[0].1)), (io[1].0, Bind::Storage(io[1].1))];
        if let Some(step) = step {
            binds.push((1, Bind::Uniform(step)));
        }
        self.dispatch(k, &binds, self.grid(invocations))
    }

    /// y = max(x, 0) over `len` elements; overwrites y.
    pub fn relu_forward(&self, len: u64, x: &View, y: &View) -> Dispatch {
        let p = ElementwiseParams { len: len as u32, cols: 1, seed: 0, rate: 0.0 };
        self.elementwise(Kernel::ReluForward, p, [(2, x), (3, y)], None, len)
    }

    /// In place: grad *= (act > 0), act being the ReLU's output.
    pub fn relu_backward(&self, act: &View, grad: &View) -> Dispatch {
        assert_eq!(act.len, grad.len, "relu_backward: activation and gradient differ in length");
        let k = Kernel::ReluBackward;
        let binds = [(4, Bind::Quads(act)), (5, Bind::Quads(grad))];
        self.dispatch(k, &binds, self.grid(grad.len.div_ceil(4)))
    }

    /// y = sigmoid(x); overwrites y.
    pub fn sigmoid_forward(&self, len: u64, x: &View, y: &View) -> Dispatch {
        let p = ElementwiseParams { len: len as u32, cols: 1, seed: 0, rate: 0.0 };
        self.elementwise(Kernel::SigmoidForward, p, [(2, x), (3, y)], None, len)
    }

    /// y [rows, cols] = row-wise softmax of x; overwrites y.
    pub fn softmax_forward(&self, rows: u64, cols: u32, x: &View, y: &View) -> Dispatch {
        let p = ElementwiseParams { len: (rows * cols as u64) as u32, cols, seed: 0, rate: 0.0 };
        self.elementwise(Kernel::SoftmaxForward, p, [(2, x), (3, y)], None, rows)
    }

    /// Inverted dropout with a mask drawn from (seed, step.t, index); overwrites y. The backward
    /// pass is the same call with the gradients as x and y.
    pub fn dropout_mask(&self, len: u64, rate: f32, seed: u32, step: &wgpu::Buffer, x: &View, y: &View) -> Dispatch {
        let p = ElementwiseParams { len: len as u32, cols: 1, seed, rate };
        self.elementwise(Kernel::DropoutMask, p, [(2, x), (3, y)], Some(step), len)
    }

    // ---- loss.wgsl ----

    /// Sigmoid + binary cross-entropy (classes == 1) or softmax + categorical cross-entropy
    /// from logits [capacity, classes]: overwrites grad, adds [loss sum, correct, rows] to
    /// metrics. One workgroup.
    #[allow(clippy::too_many_arguments)]
    pub fn loss(&self, capacity: u32, classes: u32, step: &wgpu::Buffer, logits: &View, labels: &View, grad: &View, metrics: &View) -> Dispatch {
        let k = if classes == 1 { Kernel::SigmoidBceLoss } else { Kernel::SoftmaxCeLoss };
        let u = self.uniform(k, &LossParams { capacity, classes, _pad: [0; 2] });
        let binds = [
            (0, Bind::Uniform(&u)),
            (1, Bind::Uniform(step)),
            (2, Bind::Storage(logits)),
            (3, Bind::Storage(labels)),
            (4, Bind::Storage(grad)),
            (5, Bind::Storage(metrics)),
        ];
        self.dispatch(k, &binds, [1, 1, 1])
    }

    // ---- adam.wgsl ----

    /// One Adam step over every parameter: updates params, m and v in place.
    pub fn adam_update(&self, step: &wgpu::Buffer, params: &View, grads: &View, m: &View, v: &View) -> Dispatch {
        let k = Kernel::AdamUpdate;
        let binds = [
            (0, Bind::Uniform(step)),
            (1, Bind::Quads(params)),
            (2, Bind::Quads(grads)),
            (3, Bind::Quads(m)),
            (4, Bind::Quads(v)),
        ];
        self.dispatch(k, &binds, self.grid(params.len.div_ceil(4)))
    }
}

fn pool_params(s: &PoolShape) -> PoolParams {
    PoolParams {
        batch: s.batch,
        in_h: s.in_h,
        in_w: s.in_w,
        c: s.c,
        out_h: s.out_h(),
        out_w: s.out_w(),
        pool_h: s.pool[0],
        pool_w: s.pool[1],
        stride_h: s.stride[0],
        stride_w: s.stride[1],
        _pad: [0; 2],
    }
}
