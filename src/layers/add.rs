//! `add` (Keras `Add`): the sum of two inputs of one shape, a residual block's join, with an
//! optional fused ReLU (Keras writes `Add()` then `Activation("relu")`: one pass here). Its
//! inputs are named by the layer's `inputs`; `crate::model::graph` decides how each input's
//! gradient is delivered.

use serde::{Deserialize, Serialize};

use super::{Activation, Build, Kind, LayerKind, Loads};
use crate::gpu::kernels::add::Route;
use crate::gpu::GpuError;
use crate::model::graph::Delivery;
use crate::model::shape::Shape;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Add {
    #[serde(default)]
    pub activation: Activation,
}

impl Kind for Add {
    fn stem(&self) -> &'static str {
        "add"
    }
    fn class(&self) -> &'static str {
        "Add"
    }
    fn output(&self, input: Shape, _: bool) -> Result<Shape, String> {
        match self.activation {
            a if a.grad_from_output() && a != Activation::Softmax => Ok(input),
            a => Err(format!("an add fuses an activation whose derivative follows from its output (relu, leaky_relu, elu, tanh, sigmoid), not \"{}\": put an activation layer after it", a.name())),
        }
    }
    fn activation(&self) -> Activation {
        self.activation
    }
    fn same_but_width(&self, other: &LayerKind) -> bool {
        *other == LayerKind::Add(*self)
    }
    fn merges(&self) -> bool {
        true
    }
    /// The sum and its activation forward; backward, the activation's derivative times the
    /// gradient, and one pass per input whose gradient it writes (a copy: no arithmetic; an
    /// added share is counted by the model, as for every kind).
    fn flops(&self, input: Shape, _: Shape, _: bool, input_grad: bool, _: Option<Loads>) -> [u64; 2] {
        let [forward, backward] = self.activation.flops();
        [input.len() * (1 + forward), input_grad as u64 * backward * input.len()]
    }
    fn build(&self, b: &mut Build<'_>) -> Result<(), GpuError> {
        let act = self.activation;
        let activated = act != Activation::Linear;
        let [(x0, _, _), (x1, _, _)] = b.merged[..] else { panic!("{}: an add reads two inputs", b.name) };
        b.forward.push(b.kernels.add_forward(act, x0, x1, b.y));
        let Some(dy) = b.dy else { return Ok(()) };
        // The activation's derivative is applied once: by the first pass, in place in dy when
        // an input shares dy's buffer or a second pass copies it.
        let written: Vec<_> = b.merged.iter().filter_map(|&(_, dx, d)| dx.filter(|_| matches!(d, Delivery::Write | Delivery::Add)).map(|dx| (dx, d))).collect();
        let shared = b.merged.iter().any(|&(_, dx, d)| dx.is_some() && d == Delivery::Shared);
        if activated && written.is_empty() && shared {
            b.backward.push(b.kernels.activation_backward(act, b.y, dy));
        }
        for (k, &(dx, d)) in written.iter().enumerate() {
            let first = k == 0 && activated;
            let route = Route { in_place: first && (shared || written.len() > 1), accumulate: d == Delivery::Add };
            b.backward.push(b.kernels.add_backward(route, first.then_some((act, b.y)), dy, dx));
        }
        Ok(())
    }
}
