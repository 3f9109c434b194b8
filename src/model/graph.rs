//! How layers connect: all of the model's graph bookkeeping lives here. Layers are listed in
//! an order where every input comes before its reader; a layer reads the layer listed before it
//! unless its `inputs` name others (a residual block's shortcut, an `add`). Values are numbered
//! 0 for the model's input and `i + 1` for layer `i`'s output.
//!
//! Backward, a value's gradient is the sum over its readers. [`Gradients`] decides where each
//! gradient lives and how each reader delivers its share, so that nothing is copied that need
//! not be: a value with one reader shares that reader's output gradient where the reader only
//! passes its gradient on (flatten, an in-place activation, one input of an add); a value with
//! several readers has its own buffer, which the reader whose backward runs first (the last
//! listed) overwrites and the others add into.

use super::spec::{Layer, SpecError};
use super::Shape;

/// What names the model's input in `inputs`.
pub const MODEL_INPUT: &str = "input";

#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// Per layer, the values it reads, in order.
    pub inputs: Vec<Vec<usize>>,
    /// Per value, the layers that read it, in order.
    pub readers: Vec<Vec<usize>>,
}

impl Graph {
    /// Resolves and checks every layer's inputs.
    pub fn of(layers: &[Layer]) -> Result<Self, SpecError> {
        let err = |l: &Layer, message: String| SpecError::Layer { layer: l.name.clone(), message };
        let mut inputs = Vec::with_capacity(layers.len());
        for (i, l) in layers.iter().enumerate() {
            let values: Vec<usize> = match l.inputs.is_empty() {
                true => vec![i],
                false => l.inputs.iter().map(|name| value_of(layers, i, name).map_err(|m| err(l, m))).collect::<Result<_, _>>()?,
            };
            let merges = l.kind.ops().merges();
            match (merges, values.len()) {
                (false, 1) | (true, 2) => {}
                (false, n) => return Err(err(l, format!("reads one input, but `inputs` names {n}"))),
                (true, n) => return Err(err(l, format!("adds exactly two inputs; `inputs` names {n}"))),
            }
            if values.len() == 2 && values[0] == values[1] {
                return Err(err(l, "names the same input twice".into()));
            }
            inputs.push(values);
        }
        let mut readers = vec![Vec::new(); layers.len() + 1];
        for (i, values) in inputs.iter().enumerate() {
            values.iter().for_each(|&v| readers[v].push(i));
        }
        if let Some(v) = (1..layers.len()).find(|&v| readers[v].is_empty()) {
            return Err(err(&layers[v - 1], "its output is never read: every layer but the last must feed another".into()));
        }
        Ok(Self { inputs, readers })
    }

    /// Whether every layer reads the one before it (a Keras `Sequential` model).
    pub fn is_sequential(&self) -> bool {
        self.inputs.iter().enumerate().all(|(i, v)| v == &[i])
    }

    /// The value layer `i` reads (a merge layer: its first).
    pub fn input(&self, i: usize) -> usize {
        self.inputs[i][0]
    }

    /// Each value's shape (0: the input), checking that each layer fits what it reads.
    pub fn shapes(&self, layers: &[Layer], input: [u32; 3]) -> Result<Vec<Shape>, SpecError> {
        let mut shapes = vec![Shape::Image(input)];
        for (i, l) in layers.iter().enumerate() {
            let err = |message: String| SpecError::Layer { layer: l.name.clone(), message };
            let first = shapes[self.input(i)];
            if let Some(&other) = self.inputs[i][1..].iter().find(|&&v| shapes[v] != first) {
                return Err(err(format!("adds inputs of different shapes: {} and {}", first.keras(), shapes[other].keras())));
            }
            let shape = l.kind.ops().output(first, i + 1 == layers.len()).map_err(err)?;
            if shape.is_empty() {
                return Err(err("produces an empty output".into()));
            }
            shapes.push(shape);
        }
        Ok(shapes)
    }

    /// Where gradients live and how each layer delivers its inputs' gradients, when the values
    /// from `first` on (the output of the first layer that trains, and after) need one.
    pub fn gradients(&self, layers: &[Layer], first: usize) -> Gradients {
        let last = layers.len();
        let mut buffer = vec![None; last + 1];
        let mut delivery: Vec<Vec<Delivery>> = self.inputs.iter().map(|v| vec![Delivery::None; v.len()]).collect();
        for v in (first.max(1)..=last).rev() {
            if v == last {
                buffer[v] = Some(v);
                continue;
            }
            let readers = &self.readers[v];
            let passes_on = |r: usize| layers[r].kind.ops().is_view() || layers[r].kind.ops().gradient_in_place();
            if let [r] = readers[..] {
                let slot = self.slot(r, v);
                // A merge shares its output gradient with one input only: the producers of two
                // sharing inputs could each change it in place (a fused ReLU's mask).
                let shares = passes_on(r) || (layers[r].kind.ops().merges() && self.inputs[r][..slot].iter().all(|&u| self.readers[u].len() > 1));
                if shares {
                    buffer[v] = buffer[r + 1];
                    delivery[r][slot] = Delivery::Shared;
                    continue;
                }
            }
            buffer[v] = Some(v);
            let primary = *readers.iter().max().expect("every value is read");
            for &r in readers {
                let (slot, add) = (self.slot(r, v), r != primary);
                let direct = !passes_on(r) && (!add || layers[r].kind.ops().merges() || layers[r].kind.ops().accumulates());
                delivery[r][slot] = match (direct, add) {
                    (true, false) => Delivery::Write,
                    (true, true) => Delivery::Add,
                    (false, add) => Delivery::Staged { add },
                };
            }
        }
        Gradients { buffer, delivery }
    }

    /// Each value's channel group (its smallest member): values whose channels go in step, as
    /// an add's inputs and output, and a layer's output and input where it keeps its input's
    /// channels (a batchnorm, a pool). Widening one value of a group widens all of it.
    pub fn channel_groups(&self, layers: &[Layer]) -> Vec<usize> {
        let mut group: Vec<usize> = (0..=layers.len()).collect();
        fn root(group: &mut [usize], mut v: usize) -> usize {
            while group[v] != v {
                group[v] = group[group[v]];
                v = group[v];
            }
            v
        }
        for (i, _) in layers.iter().enumerate().filter(|(_, l)| l.kind.ops().keeps_channels()) {
            for &v in &self.inputs[i] {
                let (a, b) = (root(&mut group, v), root(&mut group, i + 1));
                group[a.max(b)] = a.min(b);
            }
        }
        (0..group.len()).map(|v| root(&mut group, v)).collect()
    }

    fn slot(&self, layer: usize, value: usize) -> usize {
        self.inputs[layer].iter().position(|&u| u == value).expect("a reader reads the value")
    }
}

/// The value a layer's `inputs` entry names: an earlier layer, or the model's input.
fn value_of(layers: &[Layer], reader: usize, name: &str) -> Result<usize, String> {
    if name == MODEL_INPUT {
        return Ok(0);
    }
    match layers.iter().position(|l| l.name == name) {
        Some(j) if j < reader => Ok(j + 1),
        Some(_) => Err(format!("reads '{name}', which is listed after it: list every layer after the layers it reads")),
        None => {
            let names = layers[..reader].iter().map(|l| l.name.as_str()).chain([MODEL_INPUT]);
            let hint = super::spec::closest_name(name, names).map_or(String::new(), |h| format!(" (did you mean '{h}'?)"));
            Err(format!("reads '{name}', but no layer before it has that name{hint}"))
        }
    }
}

/// How a layer's backward delivers the gradient of one of its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Nothing before needs it.
    None,
    /// The input's gradient is this layer's output gradient: nothing to write.
    Shared,
    /// The layer writes it (the input's only reader, or the one whose backward runs first).
    Write,
    /// The layer adds its share to what later readers wrote.
    Add,
    /// The layer writes its share to a buffer of its own (its output gradient, for a layer
    /// that works in place), then it is copied (`add`: added) into the input's gradient.
    Staged { add: bool },
}

/// The gradient plan of a model (see the module's comment).
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    /// Per value, the value whose buffer holds its gradient (itself where it has its own);
    /// None where nothing needs it.
    pub buffer: Vec<Option<usize>>,
    /// Per layer, per input: how its backward delivers that input's gradient.
    pub delivery: Vec<Vec<Delivery>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{add::Add, batchnorm::BatchNorm, conv2d::Conv2d, dense::Dense, Activation, LayerKind, Padding};
    use crate::model::ModelSpec;

    fn conv(filters: u32) -> LayerKind {
        LayerKind::Conv2d(Conv2d::new(filters, 3, Padding::Same, Activation::Relu))
    }

    /// conv2d_1 -> [conv2d_2 -> batch_normalization_1] + conv2d_1 -> add_1 -> gap -> dense_1.
    fn identity_block() -> ModelSpec {
        let layer = |kind, inputs: &[&str]| (None, kind, inputs.iter().map(|s| s.to_string()).collect());
        ModelSpec::connected([9, 7, 3], vec![
            layer(conv(4), &[]),
            layer(conv(4), &[]),
            layer(LayerKind::BatchNorm(BatchNorm::default()), &[]),
            layer(LayerKind::Add(Add { activation: Activation::Relu }), &["batch_normalization_1", "conv2d_1"]),
            layer(LayerKind::GlobalAvgPool2d(Default::default()), &[]),
            layer(LayerKind::Dense(Dense::new(1, Activation::Sigmoid)), &[]),
        ])
        .unwrap()
    }

    #[test]
    fn an_identity_shortcut_shares_the_adds_gradient_and_the_conv_adds_into_the_fan_out() {
        let spec = identity_block();
        let g = spec.graph();
        assert_eq!(g.inputs, [vec![0], vec![1], vec![2], vec![3, 1], vec![4], vec![5]]);
        assert_eq!(g.readers[1], [1, 3]);
        assert!(!g.is_sequential());
        let grads = g.gradients(&spec.layers, 1);
        // The batchnorm's output gradient is the add's; conv2d_1's output, read twice, has its
        // own: the add (last reader) writes it, conv2d_2 adds into it.
        assert_eq!(grads.buffer, [None, Some(1), Some(2), Some(4), Some(4), Some(5), Some(6)]);
        assert_eq!(grads.delivery[3], [Delivery::Shared, Delivery::Write]);
        assert_eq!(grads.delivery[1], [Delivery::Add]);
        assert_eq!(grads.delivery[0], [Delivery::None]);
    }

    #[test]
    fn bad_connections_are_named() {
        let base = identity_block();
        let with = |i: usize, inputs: &[&str]| {
            let mut layers = base.layers.clone();
            layers[i].inputs = inputs.iter().map(|s| s.to_string()).collect();
            Graph::of(&layers).map(|_| ()).map_err(|e| e.to_string())
        };
        let e = with(3, &["batch_normalization_1", "conv2d_3"]).unwrap_err();
        assert!(e.contains("add_1") && e.contains("no layer before it has that name") && e.contains("did you mean 'conv2d_1'"), "{e}");
        assert!(with(1, &["batch_normalization_1"]).unwrap_err().contains("listed after it"));
        assert!(with(3, &["conv2d_1"]).unwrap_err().contains("adds exactly two inputs; `inputs` names 1"));
        assert!(with(3, &["conv2d_1", "conv2d_1"]).unwrap_err().contains("the same input twice"));
        assert!(with(1, &["input", "conv2d_1"]).unwrap_err().contains("reads one input"));
        // An add fuses what its output's derivative allows.
        let mut layers = base.layers.clone();
        layers[3].kind = LayerKind::Add(Add { activation: Activation::Gelu });
        let e = ModelSpec { input: base.input, layers }.validate().unwrap_err().to_string();
        assert!(e.contains("add_1") && e.contains("not \"gelu\": put an activation layer after it"), "{e}");
        // conv2d_2 reading the input leaves conv2d_1 feeding the add only: still fine.
        assert_eq!(with(1, &["input"]), Ok(()));
        // The add reading the input (3 channels) next to a 4-channel map.
        let mut layers = base.layers.clone();
        layers[3].inputs = vec!["batch_normalization_1".into(), "input".into()];
        let e = ModelSpec { input: base.input, layers }.validate().unwrap_err().to_string();
        assert!(e.contains("different shapes: (None, 9, 7, 4) and (None, 9, 7, 3)"), "{e}");
        // The batchnorm's output read by nothing.
        let mut layers = base.layers.clone();
        layers[3].inputs = vec!["conv2d_2".into(), "conv2d_1".into()];
        let e = ModelSpec { input: base.input, layers }.validate().unwrap_err().to_string();
        assert!(e.contains("batch_normalization_1") && e.contains("never read"), "{e}");
    }

    /// Two readers that cannot add into a gradient: an in-place activation and a batchnorm.
    #[test]
    fn readers_that_cannot_add_stage_their_share() {
        let layer = |kind, inputs: &[&str]| (None, kind, inputs.iter().map(|s| s.to_string()).collect());
        let spec = ModelSpec::connected([5, 5, 3], vec![
            layer(LayerKind::Conv2d(Conv2d::new(2, 3, Padding::Same, Activation::Linear)), &[]),
            layer(LayerKind::BatchNorm(BatchNorm::default()), &[]),
            layer(LayerKind::Activation(crate::layers::activation::ActivationLayer { activation: Activation::Relu }), &["conv2d_1"]),
            layer(LayerKind::Add(Add::default()), &["batch_normalization_1", "activation_1"]),
            layer(LayerKind::Flatten(Default::default()), &[]),
            layer(LayerKind::Dense(Dense::new(1, Activation::Sigmoid)), &[]),
        ])
        .unwrap();
        let grads = spec.graph().gradients(&spec.layers, 0);
        assert_eq!(grads.delivery[2], [Delivery::Staged { add: false }]);
        assert_eq!(grads.delivery[1], [Delivery::Staged { add: true }]);
        // The add's first input shares its gradient, the second (also read once) is written.
        assert_eq!(grads.delivery[3], [Delivery::Shared, Delivery::Write]);
        assert_eq!(grads.delivery[4], [Delivery::Shared]);
    }
}
