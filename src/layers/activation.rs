//! Activations: the [`Activation`] a conv, dense or batchnorm layer fuses into its output, and
//! `activation` (Keras `Activation("relu")`), the same as a layer of its own so that
//! conv -> batchnorm -> relu can be written.

use serde::{Deserialize, Serialize};

pub use crate::model::activation::Activation;

use super::{hidden_activation, Build, Insertion, Kind, LayerKind, Loads};
use crate::gpu::{Dispatch, GpuError, View};
use crate::model::shape::Shape;

/// How a conv or dense layer applies its activation: fused into the producer's store when the
/// derivative follows from the output (backward: one in-place pass over dy, as ReLU always
/// had), else stored linear into a pre-activation buffer that an element-wise pass maps to y.
pub struct Fused {
    activation: Activation,
    pre: Option<View>,
    /// The layer's output.
    y: View,
}

impl Fused {
    /// `activation` applied as the producer stores into `y`.
    pub fn new(activation: Activation, b: &Build<'_>, y: &View) -> Result<Self, GpuError> {
        let pre = match activation.grad_from_output() {
            true => None,
            false => Some(b.ctx.storage(&format!("{} pre-activation", b.name), y.len)?),
        };
        Ok(Self { activation, pre, y: y.clone() })
    }

    /// The activation the producer's kernel applies as it stores.
    pub fn store(&self) -> Activation {
        if self.pre.is_some() { Activation::Linear } else { self.activation }
    }

    /// Where the producer's kernel stores.
    pub fn out(&self) -> &View {
        self.pre.as_ref().unwrap_or(&self.y)
    }

    /// Records the producer's forward dispatches and then the activation's own pass, if any.
    pub fn forward(&self, b: &mut Build<'_>, producer: impl IntoIterator<Item = Dispatch>) {
        b.forward.extend(producer);
        if let Some(pre) = &self.pre {
            b.forward.push(b.kernels.activation_forward(self.activation, self.y.len, pre, &self.y));
        }
    }

    /// Records dy -> the gradient at the pre-activation, in place.
    pub fn backward(&self, b: &mut Build<'_>, dy: &View) {
        if self.activation != Activation::Linear {
            b.backward.push(b.kernels.activation_backward(self.activation, self.out(), dy));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationLayer {
    pub activation: Activation,
}

impl Kind for ActivationLayer {
    fn stem(&self) -> &'static str {
        "activation"
    }
    fn class(&self) -> &'static str {
        "Activation"
    }
    fn output(&self, input: Shape, _: bool) -> Result<Shape, String> {
        match self.activation {
            Activation::Linear => Err("an activation layer needs a non-linear activation (\"linear\" does nothing)".into()),
            a => hidden_activation(a).map(|()| input),
        }
    }
    fn activation(&self) -> Activation {
        self.activation
    }
    fn same_but_width(&self, other: &LayerKind) -> bool {
        *other == LayerKind::Activation(*self)
    }
    fn inserted(&self, _: Shape) -> Insertion {
        Insertion::Activation
    }
    fn gradient_in_place(&self) -> bool {
        true
    }
    fn flops(&self, input: Shape, _: Shape, _: bool, input_grad: bool, _: Option<Loads>) -> [u64; 2] {
        let [forward, backward] = self.activation.flops();
        [forward * input.len(), input_grad as u64 * backward * input.len()]
    }
    fn build(&self, b: &mut Build<'_>) -> Result<(), GpuError> {
        let a = self.activation;
        b.forward.push(b.kernels.activation_forward(a, b.batch as u64 * b.input.len(), b.x, b.y));
        if let Some(dy) = b.dy {
            // dy and dx are one buffer (gradient_in_place).
            b.backward.push(b.kernels.activation_backward(a, if a.grad_from_output() { b.y } else { b.x }, dy));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(toml: &str) -> Result<LayerKind, String> {
        LayerKind::from_table(toml.parse::<toml::Table>().expect("toml"))
    }

    /// Config names parse (Keras' `swish` as silu); hidden layers take every activation but
    /// softmax, a hidden dense layer not sigmoid (which makes a dense layer the head), an add
    /// only relu.
    #[test]
    fn hidden_activations_parse_and_validate() {
        let image = Shape::Image([5, 5, 3]);
        for a in Activation::HIDDEN {
            let conv = layer(&format!("type = \"conv2d\"\nfilters = 2\nkernel = 3\nactivation = \"{}\"", a.name())).unwrap();
            assert_eq!(conv.ops().activation(), a);
            assert!(conv.ops().output(image, false).is_ok(), "{a:?}");
            let bn = layer(&format!("type = \"batchnorm\"\nactivation = \"{}\"", a.name())).unwrap();
            assert!(bn.ops().output(image, false).is_ok(), "{a:?}");
            let own = layer(&format!("type = \"activation\"\nactivation = \"{}\"", a.name())).unwrap();
            assert_eq!(own.ops().output(image, false).is_ok(), a != Activation::Linear, "{a:?}");
            let dense = layer(&format!("type = \"dense\"\nunits = 3\nactivation = \"{}\"", a.name())).unwrap();
            assert_eq!(dense.ops().output(Shape::Flat(4), false).is_ok(), a != Activation::Sigmoid, "{a:?}");
        }
        assert_eq!(layer("type = \"activation\"\nactivation = \"swish\"").unwrap().ops().activation(), Activation::Silu);
        let e = layer("type = \"conv2d\"\nfilters = 2\nkernel = 3\nactivation = \"softmax\"").unwrap().ops().output(image, false).unwrap_err();
        assert!(e.contains("only allowed on the last dense layer") && e.contains("\"leaky_relu\""), "{e}");
        let e = layer("type = \"dense\"\nunits = 3\nactivation = \"sigmoid\"").unwrap().ops().output(Shape::Flat(4), false).unwrap_err();
        assert!(e.contains("add an activation layer"), "{e}");
        // An add fuses only a ReLU (its kernels mask by the output's sign).
        let e = layer("type = \"add\"\nactivation = \"gelu\"").unwrap().ops().output(image, false).unwrap_err();
        assert!(e.contains("put an activation layer after it"), "{e}");
        let e = layer("type = \"conv2d\"\nfilters = 2\nkernel = 3\nactivation = \"mish\"").unwrap_err();
        assert!(e.contains("`activation`") && e.contains("`gelu`"), "{e}");
    }
}
