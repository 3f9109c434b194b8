//! Wrappers of matmul.wgsl and its subgroup variant (matmul_subgroup.wgsl).

use bytemuck::{Pod, Zeroable};

use super::{scratch_len, Bind, Dispatch, Kernel, Kernels, Splits, GEMM_SUBGROUP_ROWS, GEMM_TILE};
use crate::gpu::View;
use crate::model::activation::Activation;

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
    _pad: u32,
    rows_fastest: u32,
}

impl Kernels {
    /// Scratch elements [`Self::gemm`] needs for this shape.
    pub fn gemm_scratch(g: &GemmShape) -> u64 {
        scratch_len(g.splits(), g.m as u64 * g.n as u64)
    }

    /// c [m, n] = act(a . b + bias); overwrites c. One or two dispatches (split-K partial sums
    /// in `scratch`, then `sum_partials` with the bias and activation).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(&self, g: &GemmShape, a: &View, b: &View, bias: Option<&View>, activation: Activation, c: &View, scratch: &View) -> Vec<Dispatch> {
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
                _pad: 0,
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
        // Split, the activation runs in sum_partials.
        let fused = if splits.count > 1 { Activation::Linear } else { activation };
        let mut out = vec![self.dispatch_fused(k, fused, &binds, self.grid(n))];
        if splits.count > 1 {
            out.push(self.sum_partials_cols(splits.count, g.m as u64 * g.n as u64, g.n, bias, activation, scratch, c));
        }
        out
    }
}
