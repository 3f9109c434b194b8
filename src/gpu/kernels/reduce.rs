//! Wrappers of reduce.wgsl (column sums and the ordered merge of split partial sums).

use bytemuck::{Pod, Zeroable};

use super::{scratch_len, Bind, Dispatch, Kernel, Kernels, Splits};
use crate::gpu::View;
use crate::model::activation::Activation;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReduceParams {
    rows: u32,
    cols: u32,
    splits: u32,
    rows_per_split: u32,
    len: u32,
    has_bias: u32,
    _pad: [u32; 2],
}

impl Kernels {
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
                _pad: [0; 2],
            },
        );
        let binds = [(0, Bind::Uniform(&u)), (1, Bind::Storage(src)), (4, Bind::Storage(target))];
        let mut d = vec![self.dispatch(k, &binds, self.grid(splits.count as u64 * cols as u64))];
        if splits.count > 1 {
            d.push(self.sum_partials(splits.count, cols as u64, None, Activation::Linear, scratch, out));
        }
        d
    }

    /// out [len] = act(sum over s of partial [s, len] + bias); overwrites out.
    pub fn sum_partials(&self, splits: u32, len: u64, bias: Option<&View>, activation: Activation, partial: &View, out: &View) -> Dispatch {
        self.sum_partials_cols(splits, len, len as u32, bias, activation, partial, out)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn sum_partials_cols(&self, splits: u32, len: u64, cols: u32, bias: Option<&View>, activation: Activation, partial: &View, out: &View) -> Dispatch {
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
                _pad: [0; 2],
            },
        );
        let binds = [(0, Bind::Uniform(&u)), (2, Bind::Storage(partial)), (3, Bind::Storage(bias.unwrap_or(partial))), (4, Bind::Storage(out))];
        self.dispatch_fused(k, activation, &binds, self.grid(len))
    }
}
