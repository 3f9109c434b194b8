//! A model: its input and layers in order, Keras-style names (`conv2d_1`, `max_pooling2d_1`,
//! ...), shape inference and the tensors each layer owns, in Keras layouts. Every question about
//! one layer is answered by its kind's module (`crate::layers`).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::graph::{Delivery, Graph};
use super::Shape;
use crate::layers::{conv2d::Conv2d, dense::Dense, maxpool2d::MaxPool2d, Activation, Init, LayerKind, Loads, Padding, Role};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub name: String,
    #[serde(flatten)]
    pub kind: LayerKind,
    /// Keras' `layer.trainable`: a frozen layer's tensors are held still (and a frozen
    /// batchnorm runs in inference mode).
    #[serde(default = "crate::layers::default_true", skip_serializing_if = "crate::layers::is_true")]
    pub trainable: bool,
    /// The layers it reads (`crate::model::graph`); empty: the layer listed before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
}

/// One tensor of the model: `<layer>.<suffix>` (`conv2d_1.kernel`, ...), Keras layout.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    pub name: String,
    /// The name within its layer: `kernel`, `gamma`, ...
    pub suffix: &'static str,
    pub layer: usize,
    pub shape: Vec<u32>,
    pub init: Init,
    /// Updated by the optimizer: a trainable tensor (not a moving statistic) of a layer that
    /// is not frozen.
    pub trainable: bool,
    pub role: Role,
}

impl ParamInfo {
    pub fn len(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum SpecError {
    #[error("the model has no layers")]
    Empty,
    #[error("input {0:?}: expected [height, width, channels], each at least 1, with channels 1 (grayscale) or 3 (RGB)")]
    Input([u32; 3]),
    #[error("layer '{layer}': {message}")]
    Layer { layer: String, message: String },
    #[error("two layers are named '{0}'")]
    DuplicateName(String),
    #[error("the last layer must be a dense layer with activation \"sigmoid\" (1 unit, two classes) or \"softmax\" (one unit per class); it is '{0}'")]
    Head(String),
}

/// An input shape the data can fill: the images come in as grayscale or RGB
/// (`data::folder`, `data::synthetic`).
pub fn check_input(input: [u32; 3]) -> Result<(), SpecError> {
    match input {
        [h, w, 1 | 3] if h > 0 && w > 0 => Ok(()),
        _ => Err(SpecError::Input(input)),
    }
}

/// A whole model: the input shape and the layers in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// [height, width, channels]
    pub input: [u32; 3],
    pub layers: Vec<Layer>,
}

impl ModelSpec {
    /// Builds a sequential spec, naming unnamed layers Keras-style (`conv2d_1`, `dense_2`, ...),
    /// and checks it.
    pub fn new(input: [u32; 3], layers: Vec<(Option<String>, LayerKind)>) -> Result<Self, SpecError> {
        Self::connected(input, layers.into_iter().map(|(name, kind)| (name, kind, Vec::new())).collect())
    }

    /// [`ModelSpec::new`] with each layer's `inputs` (empty: the layer before).
    pub fn connected(input: [u32; 3], layers: Vec<(Option<String>, LayerKind, Vec<String>)>) -> Result<Self, SpecError> {
        let mut counts = std::collections::HashMap::new();
        let layers = layers
            .into_iter()
            .map(|(name, kind, inputs)| {
                let n = counts.entry(kind.ops().stem()).or_insert(0);
                *n += 1;
                Layer { name: name.unwrap_or_else(|| format!("{}_{}", kind.ops().stem(), n)), kind, trainable: true, inputs }
            })
            .collect();
        let spec = Self { input, layers };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks names, shapes and the output head.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_input(self.input)?;
        let last = self.layers.last().ok_or(SpecError::Empty)?;
        let mut seen = std::collections::HashSet::new();
        for l in &self.layers {
            if !seen.insert(&l.name) {
                return Err(SpecError::DuplicateName(l.name.clone()));
            }
        }
        self.shapes()?;
        match last.kind {
            LayerKind::Dense(Dense { units: 1, activation: Activation::Sigmoid, .. }) => Ok(()),
            LayerKind::Dense(Dense { units, activation: Activation::Softmax, .. }) if units >= 2 => Ok(()),
            _ => Err(SpecError::Head(last.name.clone())),
        }
    }

    /// Number of classes the head predicts (2 for a sigmoid head).
    pub fn classes(&self) -> u32 {
        match self.logits() {
            1 => 2,
            n => n,
        }
    }

    /// Logits per example: 1 for the sigmoid head, else one per class.
    pub fn logits(&self) -> u32 {
        match self.layers.last().map(|l| &l.kind) {
            Some(LayerKind::Dense(d)) => d.units,
            _ => 0,
        }
    }

    /// Output shape of every layer, checking the connections and that each layer fits its input.
    pub fn shapes(&self) -> Result<Vec<Shape>, SpecError> {
        let mut values = Graph::of(&self.layers)?.shapes(&self.layers, self.input)?;
        values.remove(0);
        Ok(values)
    }

    /// How the layers connect.
    pub fn graph(&self) -> Graph {
        Graph::of(&self.layers).expect("validated spec")
    }

    /// Every tensor, in layer order and within a layer in Keras' weight order.
    pub fn params(&self) -> Vec<ParamInfo> {
        let mut out = Vec::new();
        for ((i, l), input) in self.layers.iter().enumerate().zip(self.input_shapes()) {
            for t in l.kind.ops().tensors(input) {
                out.push(ParamInfo { name: format!("{}.{}", l.name, t.suffix), suffix: t.suffix, layer: i, shape: t.shape, init: t.init, trainable: t.trainable && l.trainable, role: t.role });
            }
        }
        out
    }

    /// All parameters, trainable or not (Keras' "Total params").
    pub fn param_count(&self) -> u64 {
        self.params().iter().map(ParamInfo::len).sum()
    }

    /// Parameters the optimizer updates.
    pub fn trainable_count(&self) -> u64 {
        self.params().iter().filter(|p| p.trainable).map(ParamInfo::len).sum()
    }

    /// Names of the frozen layers that own tensors.
    pub fn frozen(&self) -> Vec<&str> {
        let params = self.params();
        self.layers.iter().enumerate().filter(|(i, l)| !l.trainable && params.iter().any(|p| p.layer == *i)).map(|(_, l)| l.name.as_str()).collect()
    }

    /// This spec with the layers in `names` frozen too; unknown names are refused with a
    /// suggestion.
    pub fn freeze(&self, names: &[String]) -> Result<Self, String> {
        for n in names {
            if !self.layers.iter().any(|l| &l.name == n) {
                let hint = closest_name(n, self.layers.iter().map(|l| l.name.as_str())).map_or(String::new(), |h| format!(" (did you mean '{h}'?)"));
                return Err(format!("no layer named '{n}' to freeze{hint}"));
            }
        }
        let mut spec = self.clone();
        spec.layers.iter_mut().filter(|l| names.contains(&l.name)).for_each(|l| l.trainable = false);
        Ok(spec)
    }

    /// This spec with every layer trainable.
    pub fn unfrozen(&self) -> Self {
        let mut spec = self.clone();
        spec.layers.iter_mut().for_each(|l| l.trainable = true);
        spec
    }

    /// FLOPs per image of each layer in a training step, [forward, backward] (see
    /// [`crate::layers::Kind::flops`]), with freezing as the network records it: a frozen layer
    /// computes no weight gradients, and nothing runs backward below the first trainable layer.
    pub fn flops(&self) -> Vec<[u64; 2]> {
        let params = self.params();
        let first_trainable = params.iter().filter(|p| p.trainable).map(|p| p.layer).min().unwrap_or(self.layers.len());
        let trains = |i: usize| params.iter().any(|p| p.layer == i && p.trainable);
        let unstored = self.unstored();
        let graph = self.graph();
        let values = graph.shapes(&self.layers, self.input).expect("validated spec");
        let delivery = graph.gradients(&self.layers, first_trainable + 1).delivery;
        let mut flops: Vec<[u64; 2]> = (0..self.layers.len()).map(|i| self.layers[i].kind.ops().flops(values[graph.input(i)], values[i + 1], trains(i), graph.input(i) > first_trainable, unstored[i])).collect();
        // A share added into a gradient that other readers wrote: one add per element.
        for (i, d) in delivery.iter().enumerate() {
            let adds = graph.inputs[i].iter().zip(d).filter(|(_, d)| matches!(d, Delivery::Add | Delivery::Staged { add: true }));
            flops[i][1] += adds.map(|(&v, _)| values[v].len()).sum::<u64>();
        }
        flops
    }

    /// Per layer, what the next layer computes of its output when it leaves it unstored (a
    /// batchnorm before a max pool, its only reader; see
    /// [`crate::layers::Kind::can_leave_unstored`]).
    pub fn unstored(&self) -> Vec<Option<Loads>> {
        let shapes = self.shapes().expect("validated spec");
        let graph = self.graph();
        (0..self.layers.len())
            .map(|i| match (self.layers[i].kind.ops().can_leave_unstored(), &graph.readers[i + 1][..]) {
                (true, &[next]) if next == i + 1 => self.layers[next].kind.ops().loads_unstored(shapes[next]),
                _ => None,
            })
            .collect()
    }

    /// FLOPs of training on `images` images in `steps` steps: every layer's forward and
    /// backward per image, and the optimizer's update of every trainable parameter per step
    /// (`per_parameter`: [`crate::optimizer::OptimizerConfig::flops_per_parameter`]).
    pub fn train_flops(&self, images: u64, steps: u64, per_parameter: u64) -> u64 {
        let per_image: u64 = self.flops().iter().map(|f| f[0] + f[1]).sum();
        images * per_image + steps * per_parameter * self.trainable_count()
    }

    /// The input shape of layer `i` (a merge layer's inputs all have it).
    pub fn input_of(&self, i: usize) -> Shape {
        self.value_shape(self.graph().input(i))
    }

    /// Every layer's input shape (a merge layer's first), from one pass over the graph.
    pub fn input_shapes(&self) -> Vec<Shape> {
        let graph = self.graph();
        let values = graph.shapes(&self.layers, self.input).expect("validated spec");
        (0..self.layers.len()).map(|i| values[graph.input(i)]).collect()
    }

    /// Per value (0: the input, `i + 1` layer `i`'s output), whether it is non-negative: pixels
    /// are, a ReLU's output is, a sum of such is (a ReLU that growth inserts after it is then
    /// the identity).
    pub fn non_negative_values(&self) -> Vec<bool> {
        let graph = self.graph();
        let mut out = vec![true];
        for (i, l) in self.layers.iter().enumerate() {
            let inputs = graph.inputs[i].iter().all(|&v| out[v]);
            out.push(l.kind.ops().non_negative(inputs));
        }
        out
    }

    /// The shape of value `v`: 0 the model's input, `i + 1` layer `i`'s output.
    pub fn value_shape(&self, v: usize) -> Shape {
        match v {
            0 => Shape::Image(self.input),
            v => self.shapes().expect("validated spec")[v - 1],
        }
    }

    /// Reference Model 1 of the write-up, at `size` x `size` RGB input.
    pub fn model1(size: u32) -> Self {
        Self::new([size, size, 3], vec![
            (None, LayerKind::Conv2d(Conv2d::new(32, 3, Padding::Same, Activation::Relu))),
            (None, LayerKind::MaxPool2d(MaxPool2d::default())),
            (None, LayerKind::Flatten(Default::default())),
            (None, LayerKind::Dense(Dense::new(128, Activation::Relu))),
            (None, LayerKind::Dense(Dense::new(1, Activation::Sigmoid))),
        ])
        .expect("valid reference model")
    }

    /// Reference Model 2: Model 1 with a second conv + pool block.
    pub fn model2(size: u32) -> Self {
        let mut layers = Self::model1(size).layers.into_iter().map(|l| (None, l.kind)).collect::<Vec<_>>();
        layers.splice(2..2, [(None, LayerKind::Conv2d(Conv2d::new(32, 3, Padding::Same, Activation::Relu))), (None, LayerKind::MaxPool2d(MaxPool2d::default()))]);
        Self::new([size, size, 3], layers).expect("valid reference model")
    }
}

/// The candidate nearest to `name` by edit distance, if close enough to be a likely typo.
pub fn closest_name<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, &cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(row[j + 1] + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    candidates.map(|c| (distance(name, c), c)).filter(|&(d, c)| d > 0 && d <= 2.max(c.len() / 4)).min_by_key(|&(d, _)| d).map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{avgpool2d::AvgPool2d, batchnorm::BatchNorm, flatten::Flatten, globalavgpool2d::GlobalAvgPool2d, Pair};

    #[test]
    fn did_you_mean() {
        assert_eq!(closest_name("dense_3", ["dense_1", "conv2d_1"].into_iter()), Some("dense_1"));
        assert_eq!(closest_name("classifier", ["dense_1", "conv2d_1"].into_iter()), None);
    }

    #[test]
    fn reference_models_have_the_write_ups_parameter_counts() {
        assert_eq!(ModelSpec::model1(64).param_count(), 4_195_457);
        assert_eq!(ModelSpec::model2(64).param_count(), 1_058_977);
        let names: Vec<_> = ModelSpec::model2(64).layers.iter().map(|l| l.name.clone()).collect();
        assert_eq!(names, ["conv2d_1", "max_pooling2d_1", "conv2d_2", "max_pooling2d_2", "flatten_1", "dense_1", "dense_2"]);
    }

    /// Hand-computed: a multiply-add is 2 FLOPs, a bias add, ReLU or comparison 1.
    #[test]
    fn flops_of_the_reference_models_by_hand() {
        let m2 = ModelSpec::model2(64);
        // conv2d_1: 64x64x32 outputs (P = 131,072) of 3x3x3 taps: 3,538,944 multiply-adds; the
        // first layer computes no input gradient. Pools compare 3 times per output.
        let (p1, macs1) = (64 * 64 * 32, 64 * 64 * 32 * 27);
        let (p2, macs2) = (32 * 32 * 32, 32 * 32 * 32 * 288);
        let want = [
            [2 * macs1 + 2 * p1, p1 + 2 * macs1 + p1],
            [3 * 32 * 32 * 32, 32 * 32 * 32],
            [2 * macs2 + 2 * p2, p2 + (2 * macs2 + p2) + 2 * macs2],
            [3 * 16 * 16 * 32, 16 * 16 * 32],
            [0, 0],
            [2 * 8192 * 128 + 256, 128 + (2 * 8192 * 128 + 128) + 2 * 8192 * 128],
            [2 * 128 + 1, (2 * 128 + 1) + 2 * 128],
        ];
        assert_eq!(m2.flops(), want);
        assert_eq!(want[0], [7_340_032, 7_340_032]);
        // One step of 32 images, and Adam's 12 per parameter.
        let per_image: u64 = want.iter().map(|f| f[0] + f[1]).sum();
        assert_eq!(m2.train_flops(32, 1, crate::optimizer::OptimizerConfig::default().flops_per_parameter()), 32 * per_image + 12 * 1_058_977);

        // A batchnorm over 64x64x32 with ReLU: 9 per element forward in training, 2 + 1 frozen;
        // (4 + 3) twice backward. Frozen with the conv before it, neither runs backward at all.
        let bn = ModelSpec::new([64, 64, 3], vec![
            (None, LayerKind::Conv2d(Conv2d::new(32, 3, Padding::Same, Activation::Linear))),
            (None, LayerKind::BatchNorm(BatchNorm { activation: Activation::Relu, ..Default::default() })),
            (None, LayerKind::AvgPool2d(AvgPool2d { pool: Pair([2, 2]), stride: None })),
            (None, LayerKind::Conv2d(Conv2d::new(8, 1, Padding::Same, Activation::Relu))),
            (None, LayerKind::GlobalAvgPool2d(GlobalAvgPool2d {})),
            (None, LayerKind::Dense(Dense::new(1, Activation::Sigmoid))),
        ])
        .unwrap();
        let n = 64 * 64 * 32;
        let f = bn.flops();
        assert_eq!(f[1], [9 * n, 14 * n]);
        // Average pool: 4 per output (3 adds, 1 scale) each way; GAP: 1 per input element.
        assert_eq!(f[2], [4 * 32 * 32 * 32, 4 * 32 * 32 * 32]);
        assert_eq!(f[4], [32 * 32 * 8, 32 * 32 * 8]);
        let frozen = bn.freeze(&["conv2d_1".into(), "batch_normalization_1".into()]).unwrap().flops();
        assert_eq!(frozen[0], [2 * n * 27 + n, 0]);
        assert_eq!(frozen[1], [3 * n, 0]);
        assert_eq!(frozen[2], [4 * 32 * 32 * 32, 0]);
        // conv2d_2, now the first trainable layer, passes no gradient down.
        assert_eq!(frozen[3], [f[3][0], f[3][1] - 2 * 32 * 32 * 8 * 32]);

        // Before a 2x2 max pool (Model 3's blocks) on an odd 63x63x32, the batchnorm leaves
        // its output unstored: the pool normalises the 62x62 it covers on load, and the
        // gradient sums run over the 31x31 maxima only. Frozen, only the scale and shift run.
        let pooled = |trainable: bool| {
            let mut spec = ModelSpec::new([63, 63, 3], vec![
                (None, LayerKind::Conv2d(Conv2d::new(32, 3, Padding::Same, Activation::Linear))),
                (None, LayerKind::BatchNorm(BatchNorm { activation: Activation::Relu, ..Default::default() })),
                (None, LayerKind::MaxPool2d(MaxPool2d::default())),
                (None, LayerKind::Flatten(Flatten {})),
                (None, LayerKind::Dense(Dense::new(1, Activation::Sigmoid))),
            ])
            .unwrap();
            spec.layers[1].trainable = trainable;
            spec.flops()[1]
        };
        let (n, covered, maxima) = (63 * 63 * 32, 62 * 62 * 32, 31 * 31 * 32);
        assert_eq!(pooled(true), [6 * n + 3 * covered, 7 * maxima + 7 * n]);
        assert_eq!(pooled(false), [3 * covered, 7 * n]);
    }

    #[test]
    fn bad_layouts_are_named() {
        let head = || LayerKind::Dense(Dense::new(1, Activation::Sigmoid));
        let dense_first = ModelSpec::new([8, 8, 3], vec![(None, head())]);
        assert!(matches!(dense_first, Err(SpecError::Layer { ref layer, .. }) if layer == "dense_1"), "{dense_first:?}");
        let no_head = ModelSpec::new([8, 8, 3], vec![(None, LayerKind::Flatten(Default::default())), (None, LayerKind::Dense(Dense::new(3, Activation::Relu)))]);
        assert_eq!(no_head, Err(SpecError::Head("dense_1".into())));
        let big_pool = ModelSpec::new([1, 8, 3], vec![(None, LayerKind::MaxPool2d(MaxPool2d::default()))]);
        assert!(matches!(big_pool, Err(SpecError::Layer { .. })));
        let same = LayerKind::Conv2d(Conv2d::new(1, 3, Padding::Same, Activation::Relu));
        let empty = ModelSpec::new([0, 8, 3], vec![(None, same), (None, LayerKind::Flatten(Default::default())), (None, head())]);
        assert_eq!(empty, Err(SpecError::Input([0, 8, 3])));
        let four = ModelSpec::new([8, 8, 4], vec![(None, LayerKind::Flatten(Default::default())), (None, head())]);
        assert_eq!(four, Err(SpecError::Input([8, 8, 4])));
    }
}
