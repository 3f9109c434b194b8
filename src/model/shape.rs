//! Shapes as they flow between layers, and the shape math of the layers that move over a
//! spatial grid (convolution and pooling, Keras semantics). Pure arithmetic: the layers infer
//! shapes with it and the kernels take it as their geometry.

use serde::{Deserialize, Serialize};

/// The shape of one example as it flows between layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    /// [height, width, channels]
    Image([u32; 3]),
    Flat(u32),
}

impl Shape {
    pub fn len(&self) -> u64 {
        match *self {
            Self::Image([h, w, c]) => h as u64 * w as u64 * c as u64,
            Self::Flat(n) => n as u64,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The last axis: channels of an image, features of a flat vector.
    pub fn channels(&self) -> u32 {
        match *self {
            Self::Image([_, _, c]) => c,
            Self::Flat(n) => n,
        }
    }
    /// As Keras prints it, with the batch axis: (None, 64, 64, 32).
    pub fn keras(&self) -> String {
        match self {
            Self::Image([h, w, c]) => format!("(None, {h}, {w}, {c})"),
            Self::Flat(n) => format!("(None, {n})"),
        }
    }
}

/// Geometry of a 2D convolution over a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub batch: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub in_c: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub out_c: u32,
    pub k_h: u32,
    pub k_w: u32,
    pub stride: u32,
    pub pad_top: u32,
    pub pad_left: u32,
}

impl ConvShape {
    /// Keras semantics: `same` gives out = ceil(in / stride) with the total padding split
    /// floor-half before, the rest after; `valid` gives out = floor((in - k) / stride) + 1.
    pub fn keras(batch: u32, input: [u32; 3], filters: u32, kernel: [u32; 2], stride: u32, same: bool) -> Self {
        let [in_h, in_w, in_c] = input;
        let axis = |size: u32, k: u32| -> (u32, u32) {
            if same {
                let out = size.div_ceil(stride);
                let total = ((out - 1) * stride + k).saturating_sub(size);
                (out, total / 2)
            } else {
                ((size.saturating_sub(k)) / stride + 1, 0)
            }
        };
        let (out_h, pad_top) = axis(in_h, kernel[0]);
        let (out_w, pad_left) = axis(in_w, kernel[1]);
        Self { batch, in_h, in_w, in_c, out_h, out_w, out_c: filters, k_h: kernel[0], k_w: kernel[1], stride, pad_top, pad_left }
    }

    pub fn input_len(&self) -> u64 {
        self.batch as u64 * self.in_h as u64 * self.in_w as u64 * self.in_c as u64
    }
    pub fn output_len(&self) -> u64 {
        self.batch as u64 * self.out_h as u64 * self.out_w as u64 * self.out_c as u64
    }
    pub fn kernel_len(&self) -> u64 {
        (self.k_h * self.k_w * self.in_c * self.out_c) as u64
    }
    /// Elements of a depthwise kernel [k_h, k_w, in_c, out_c / in_c].
    pub fn depthwise_kernel_len(&self) -> u64 {
        (self.k_h * self.k_w) as u64 * self.out_c as u64
    }
    /// Rows of the output seen as a [rows, out_c] matrix.
    pub fn output_rows(&self) -> u64 {
        self.batch as u64 * self.out_h as u64 * self.out_w as u64
    }
    /// Multiply-adds of the forward pass (each backward kernel does as many).
    pub fn macs(&self) -> u64 {
        self.output_len() * (self.k_h * self.k_w * self.in_c) as u64
    }
}

/// Geometry of a max or average pool, `valid` padding with Keras floor semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    pub batch: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub c: u32,
    pub pool: [u32; 2],
    pub stride: [u32; 2],
}

impl PoolShape {
    pub fn out_h(&self) -> u32 {
        (self.in_h.saturating_sub(self.pool[0])) / self.stride[0] + 1
    }
    pub fn out_w(&self) -> u32 {
        (self.in_w.saturating_sub(self.pool[1])) / self.stride[1] + 1
    }
    pub fn input_len(&self) -> u64 {
        self.batch as u64 * self.in_h as u64 * self.in_w as u64 * self.c as u64
    }
    pub fn output_len(&self) -> u64 {
        self.batch as u64 * self.out_h() as u64 * self.out_w() as u64 * self.c as u64
    }
}
