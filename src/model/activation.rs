//! The activation functions as configs name them (Keras 3's names and defaults), with what the
//! kernels and the FLOP counts need to know of each: its code in common.wgsl (`activate`,
//! `activation_grad`), whether its derivative follows from its output, its cost.

use serde::{Deserialize, Serialize};

/// An activation as configs name it. The hidden ones run on the GPU by [`Activation::code`]
/// (`activate` and `activation_grad` in common.wgsl); sigmoid and softmax on the last dense
/// layer are the head's, fused with its loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    Linear,
    Relu,
    /// Keras 3's `leaky_relu` with its default negative slope, 0.2 (fixed here).
    LeakyRelu,
    /// alpha 1, as Keras' `elu`.
    Elu,
    Tanh,
    /// On the last dense layer: the head, fused with binary cross-entropy.
    Sigmoid,
    /// x * sigmoid(x), Keras' `silu` (alias `swish`).
    #[serde(alias = "swish")]
    Silu,
    /// The exact x * Phi(x), Keras 3's default (`approximate=False`).
    Gelu,
    /// Output head only: fused with categorical cross-entropy.
    Softmax,
}

impl Activation {
    /// Every activation a hidden layer takes, as configs name them.
    pub const HIDDEN: [Activation; 8] = [Self::Linear, Self::Relu, Self::LeakyRelu, Self::Elu, Self::Tanh, Self::Sigmoid, Self::Silu, Self::Gelu];

    /// The kernels' code: the `ACT_*` constants of common.wgsl, and the value of its
    /// `ACTIVATION` override in a pipeline that fuses it.
    pub fn code(self) -> u32 {
        match self {
            Self::Linear => 0,
            Self::Relu => 1,
            Self::LeakyRelu => 2,
            Self::Elu => 3,
            Self::Tanh => 4,
            Self::Sigmoid => 5,
            Self::Silu => 6,
            Self::Gelu => 7,
            Self::Softmax => unreachable!("softmax is the head's, fused with its loss"),
        }
    }

    /// Whether its derivative follows from its output alone (`grad_from_output` in
    /// common.wgsl): then a conv or dense layer fuses it into its store; silu and gelu need
    /// the pre-activation, kept in a buffer of its own (`layers::activation::Fused`).
    pub fn grad_from_output(self) -> bool {
        self.code() <= Self::Sigmoid.code()
    }

    /// Floating-point operations per element, [forward, backward]: f, and f' times the
    /// gradient (an exp or a division counts 1; gelu's erfc is a degree-9 polynomial and an exp).
    pub fn flops(self) -> [u64; 2] {
        match self {
            Self::Linear | Self::Softmax => [0, 0],
            Self::Relu => [1, 1],
            Self::LeakyRelu => [2, 2],
            Self::Elu => [4, 3],
            Self::Tanh => [7, 3],
            Self::Sigmoid => [5, 3],
            Self::Silu => [6, 10],
            Self::Gelu => [31, 37],
        }
    }

    /// Its name in configs.
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernels' codes are the `ACT_*` constants of common.wgsl, one list.
    #[test]
    fn codes_match_the_shader_constants() {
        let wgsl = include_str!("../../shaders/common.wgsl");
        for a in Activation::HIDDEN {
            let constant = format!("const ACT_{}: u32 = {}u;", a.name().to_uppercase(), a.code());
            assert!(wgsl.contains(&constant), "common.wgsl lacks `{constant}`");
        }
    }
}
