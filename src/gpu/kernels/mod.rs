//! One typed wrapper per WGSL entry point. Pipelines are compiled once per context (lazily, on
//! first use); a wrapper builds the uniform and bind group once and returns a [`Dispatch`] that
//! only records into a compute pass the caller owns. Every wrapper states what it writes:
//! outputs and gradients are overwritten (never accumulated across steps); `activation_backward` and
//! the optimizer updates work in place, and `loss` adds to the metrics accumulator.
//!
//! One module per WGSL family, mirroring `shaders/`: each holds the family's uniform structs
//! (field for field the WGSL ones) and its wrapper methods on [`Kernels`].

mod activation;
pub mod add;
pub mod batchnorm;
mod conv2d;
mod depthwise_conv2d;
mod loss;
pub mod matmul;
pub mod optimizer;
mod pool;
mod reduce;

use std::sync::OnceLock;

use bytemuck::Pod;

use super::{GpuContext, View};
use crate::model::activation::Activation;

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

const COMMON: &str = include_str!("../../../shaders/common.wgsl");

/// The kernel families, one WGSL file each.
/// The subgroup variants of a family: its file, then `SUBGROUP`, then their own file. They are
/// separate modules because a module using subgroup operations fails to build without them.
const SUBGROUP: &str = include_str!("../../../shaders/subgroup.wgsl");

/// The kernel families, one WGSL file each (plus one for a family's subgroup variants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Conv2d,
    DepthwiseConv2d,
    Pool,
    Conv2dSubgroup,
    Matmul,
    MatmulSubgroup,
    Reduce,
    Batchnorm,
    Activation,
    Add,
    Loss,
    Optimizer,
}

impl Family {
    const ALL: [Family; 12] = [
        Self::Conv2d,
        Self::DepthwiseConv2d,
        Self::Conv2dSubgroup,
        Self::Pool,
        Self::Matmul,
        Self::MatmulSubgroup,
        Self::Reduce,
        Self::Batchnorm,
        Self::Activation,
        Self::Add,
        Self::Loss,
        Self::Optimizer,
    ];

    fn source(self) -> String {
        let file = match self {
            Self::Conv2d => include_str!("../../../shaders/conv2d.wgsl"),
            // Appended to conv2d.wgsl, whose uniform, bindings and tiles it shares.
            Self::DepthwiseConv2d => return format!("{}\n{}", Self::Conv2d.source(), include_str!("../../../shaders/depthwise_conv2d.wgsl")),
            Self::Conv2dSubgroup => return Self::Conv2d.with_subgroup_file(include_str!("../../../shaders/conv2d_subgroup.wgsl")),
            Self::Pool => include_str!("../../../shaders/pool.wgsl"),
            Self::Matmul => include_str!("../../../shaders/matmul.wgsl"),
            Self::MatmulSubgroup => return Self::Matmul.with_subgroup_file(include_str!("../../../shaders/matmul_subgroup.wgsl")),
            Self::Reduce => include_str!("../../../shaders/reduce.wgsl"),
            Self::Batchnorm => include_str!("../../../shaders/batchnorm.wgsl"),
            Self::Activation => include_str!("../../../shaders/activation.wgsl"),
            Self::Add => include_str!("../../../shaders/add.wgsl"),
            Self::Loss => include_str!("../../../shaders/loss.wgsl"),
            Self::Optimizer => include_str!("../../../shaders/optimizer.wgsl"),
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
    /// The depthwise kernels, specialised for quad loads (`quads`: depth multiplier 1 and
    /// in_c % 4 == 0).
    DepthwiseConv2dForward { quads: bool },
    DepthwiseConv2dBackwardInput { quads: bool },
    DepthwiseConv2dBackwardKernel { quads: bool },
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
    ActivationForward,
    ActivationBackward,
    SigmoidForward,
    SoftmaxForward,
    DropoutMask,
    AddForward,
    AddBackward,
    AddBackwardActivated,
    SigmoidBceLoss,
    SoftmaxCeLoss,
    AdamUpdate,
    SgdUpdate,
    GradNormPartials,
    ClipByNorm,
    ClipByGlobalNorm,
}

impl Kernel {
    pub const ALL: [Kernel; 57] = [
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
        Self::DepthwiseConv2dForward { quads: false },
        Self::DepthwiseConv2dForward { quads: true },
        Self::DepthwiseConv2dBackwardInput { quads: false },
        Self::DepthwiseConv2dBackwardInput { quads: true },
        Self::DepthwiseConv2dBackwardKernel { quads: false },
        Self::DepthwiseConv2dBackwardKernel { quads: true },
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
        Self::ActivationForward,
        Self::ActivationBackward,
        Self::SigmoidForward,
        Self::SoftmaxForward,
        Self::DropoutMask,
        Self::AddForward,
        Self::AddBackward,
        Self::AddBackwardActivated,
        Self::SigmoidBceLoss,
        Self::SoftmaxCeLoss,
        Self::AdamUpdate,
        Self::SgdUpdate,
        Self::GradNormPartials,
        Self::ClipByNorm,
        Self::ClipByGlobalNorm,
    ];

    pub fn entry(self) -> &'static str {
        match self {
            Self::Conv2dForward { .. } => "conv2d_forward",
            Self::Conv2dBackwardInput { .. } => "conv2d_backward_input",
            Self::Conv2dBackwardKernel { .. } => "conv2d_backward_kernel",
            Self::Conv2dForwardSubgroup { .. } => "conv2d_forward_subgroup",
            Self::Conv2dBackwardInputSubgroup => "conv2d_backward_input_subgroup",
            Self::Conv2dBackwardKernelSubgroup { .. } => "conv2d_backward_kernel_subgroup",
            Self::DepthwiseConv2dForward { .. } => "depthwise_conv2d_forward",
            Self::DepthwiseConv2dBackwardInput { .. } => "depthwise_conv2d_backward_input",
            Self::DepthwiseConv2dBackwardKernel { .. } => "depthwise_conv2d_backward_kernel",
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
            Self::ActivationForward => "activation_forward",
            Self::ActivationBackward => "activation_backward",
            Self::SigmoidForward => "sigmoid_forward",
            Self::SoftmaxForward => "softmax_forward",
            Self::DropoutMask => "dropout_mask",
            Self::AddForward => "add_forward",
            Self::AddBackward => "add_backward",
            Self::AddBackwardActivated => "add_backward_activated",
            Self::SigmoidBceLoss => "sigmoid_bce_loss",
            Self::SoftmaxCeLoss => "softmax_ce_loss",
            Self::AdamUpdate => "adam_update",
            Self::SgdUpdate => "sgd_update",
            Self::GradNormPartials => "grad_norm_partials",
            Self::ClipByNorm => "clip_by_norm",
            Self::ClipByGlobalNorm => "clip_by_global_norm",
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
            Self::DepthwiseConv2dForward { quads } | Self::DepthwiseConv2dBackwardInput { quads } | Self::DepthwiseConv2dBackwardKernel { quads } => {
                vec![("X_QUADS", quads as u8 as f64), ("OUT_QUADS", quads as u8 as f64)]
            }
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
            Self::DepthwiseConv2dForward { .. } | Self::DepthwiseConv2dBackwardInput { .. } | Self::DepthwiseConv2dBackwardKernel { .. } => {
                Family::DepthwiseConv2d
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
            Self::ActivationForward | Self::ActivationBackward | Self::SigmoidForward | Self::SoftmaxForward | Self::DropoutMask => {
                Family::Activation
            }
            Self::AddForward | Self::AddBackward | Self::AddBackwardActivated => Family::Add,
            Self::SigmoidBceLoss | Self::SoftmaxCeLoss => Family::Loss,
            Self::AdamUpdate | Self::SgdUpdate | Self::GradNormPartials | Self::ClipByNorm | Self::ClipByGlobalNorm => Family::Optimizer,
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
    /// Per kernel and fused activation (`ACTIVATION` in common.wgsl, by code).
    pipelines: [[OnceLock<wgpu::ComputePipeline>; Activation::HIDDEN.len()]; Kernel::ALL.len()],
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
            pipelines: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
        }
    }

    /// Lanes per subgroup when the subgroup kernels are in use.
    pub fn subgroup_lanes(&self) -> Option<u32> {
        self.lanes
    }

    /// Compiles every pipeline this adapter can use now, with no activation fused (the fused
    /// variants compile when a network first records them); benchmarks call this so that
    /// compilation is not timed.
    pub fn compile_all(&self) {
        for k in Kernel::ALL.into_iter().filter(|k| self.lanes.is_some() || !k.uses_subgroups()) {
            self.pipeline(k, Activation::Linear);
        }
    }

    /// `kernel`'s pipeline with `activation` fused (the override constant `ACTIVATION`, so
    /// that the other activations' code compiles away: lavapipe runs every branch of a switch,
    /// even on a uniform, which made the kernels that fuse one about 2x slower).
    fn pipeline(&self, kernel: Kernel, activation: Activation) -> &wgpu::ComputePipeline {
        let index = Kernel::ALL.iter().position(|&k| k == kernel).expect("listed kernel");
        self.pipelines[index][activation.code() as usize].get_or_init(|| {
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
                    constants: &kernel.constants().into_iter().chain((activation != Activation::Linear).then(|| ("ACTIVATION", activation.code() as f64))).collect::<Vec<_>>(),
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
        self.dispatch_fused(kernel, Activation::Linear, binds, groups)
    }

    /// [`Self::dispatch`] of the pipeline with `activation` fused.
    fn dispatch_fused(&self, kernel: Kernel, activation: Activation, binds: &[(u32, Bind<'_>)], groups: [u32; 3]) -> Dispatch {
        let pipeline = self.pipeline(kernel, activation).clone();
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
}
