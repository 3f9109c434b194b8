//! Wrappers of add.wgsl: the sum of a skip connection and the delivery of gradients to values
//! with several readers.

use bytemuck::{Pod, Zeroable};

use super::{Bind, Dispatch, Kernel, Kernels};
use crate::gpu::View;
use crate::model::activation::Activation;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AddParams {
    quads: u32,
    _pad: u32,
    in_place: u32,
    accumulate: u32,
}

/// What [`Kernels::add_backward`] does besides writing `dx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Route {
    /// Write the masked gradient back into dy as well.
    pub in_place: bool,
    /// Add into dx instead of overwriting it.
    pub accumulate: bool,
}

impl Kernels {
    /// y = act(a + b), `activation` one whose derivative follows from its output; overwrites y.
    pub fn add_forward(&self, activation: Activation, a: &View, b: &View, y: &View) -> Dispatch {
        assert!(a.len == y.len && b.len == y.len, "add_forward: lengths differ");
        let quads = y.len.div_ceil(4);
        let u = self.uniform(Kernel::AddForward, &AddParams { quads: quads as u32, _pad: 0, in_place: 0, accumulate: 0 });
        let binds = [(0, Bind::Uniform(&u)), (1, Bind::Quads(a)), (2, Bind::Quads(b)), (3, Bind::Quads(y))];
        self.dispatch_fused(Kernel::AddForward, activation, &binds, self.grid(quads))
    }

    /// dx = g or dx += g, where g is dy, times the activation's derivative at the add's output
    /// `y` where one is given; with `route.in_place`, dy = g as well.
    pub fn add_backward(&self, route: Route, activated: Option<(Activation, &View)>, dy: &View, dx: &View) -> Dispatch {
        assert_eq!(dy.len, dx.len, "add_backward: lengths differ");
        let quads = dy.len.div_ceil(4);
        let (k, activation) = match activated {
            Some((a, _)) => (Kernel::AddBackwardActivated, a),
            None => (Kernel::AddBackward, Activation::Linear),
        };
        let u = self.uniform(k, &AddParams { quads: quads as u32, _pad: 0, in_place: route.in_place as u32, accumulate: route.accumulate as u32 });
        let mut binds = vec![(0, Bind::Uniform(&u)), (4, Bind::Quads(dy)), (5, Bind::Quads(dx))];
        binds.extend(activated.map(|(_, y)| (1, Bind::Quads(y))));
        self.dispatch_fused(k, activation, &binds, self.grid(quads))
    }
}
