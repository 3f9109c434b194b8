//! Layer kinds, Keras-style names (`conv2d_1`, `max_pooling2d_1`, ...), shape inference and
//! the parameter tensors each layer owns, in Keras layouts.

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    #[default]
    Valid,
    Same,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Linear,
    Relu,
    /// Output head only: fused with binary cross-entropy.
    Sigmoid,
    /// Output head only: fused with categorical cross-entropy.
    Softmax,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum LayerKind {
    Conv2d {
        filters: u32,
        kernel: [u32; 2],
        #[serde(default = "one")]
        stride: u32,
        #[serde(default)]
        padding: Padding,
        #[serde(default)]
        activation: Activation,
    },
    #[serde(rename = "maxpool2d")]
    MaxPool2d {
        #[serde(default = "two_by_two")]
        pool: [u32; 2],
        /// Defaults to the pool size, as in Keras.
        #[serde(default)]
        stride: Option<[u32; 2]>,
    },
    Flatten,
    Dense {
        units: u32,
        #[serde(default)]
        activation: Activation,
    },
    Dropout {
        rate: f32,
    },
}

fn one() -> u32 {
    1
}
fn two_by_two() -> [u32; 2] {
    [2, 2]
}

impl LayerKind {
    /// The Keras class name stem used for automatic names.
    pub fn keras_stem(&self) -> &'static str {
        match self {
            Self::Conv2d { .. } => "conv2d",
            Self::MaxPool2d { .. } => "max_pooling2d",
            Self::Flatten => "flatten",
            Self::Dense { .. } => "dense",
            Self::Dropout { .. } => "dropout",
        }
    }

    /// The Keras class name, for summaries.
    pub fn keras_class(&self) -> &'static str {
        match self {
            Self::Conv2d { .. } => "Conv2D",
            Self::MaxPool2d { .. } => "MaxPooling2D",
            Self::Flatten => "Flatten",
            Self::Dense { .. } => "Dense",
            Self::Dropout { .. } => "Dropout",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub name: String,
    #[serde(flatten)]
    pub kind: LayerKind,
}

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
    /// As Keras prints it, with the batch axis: (None, 64, 64, 32).
    pub fn keras(&self) -> String {
        match self {
            Self::Image([h, w, c]) => format!("(None, {h}, {w}, {c})"),
            Self::Flat(n) => format!("(None, {n})"),
        }
    }
}

/// One parameter tensor: `<layer>.kernel` or `<layer>.bias`, Keras layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamInfo {
    pub name: String,
    pub layer: usize,
    pub shape: Vec<u32>,
    /// Glorot fans for kernels; None for biases (initialised to zero).
    pub fans: Option<(u32, u32)>,
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
    #[error("input {0:?}: expected [height, width, channels], each at least 1")]
    Input([u32; 3]),
    #[error("layer '{layer}': {message}")]
    Layer { layer: String, message: String },
    #[error("two layers are named '{0}'")]
    DuplicateName(String),
    #[error("the last layer must be a dense layer with activation \"sigmoid\" (1 unit, two classes) or \"softmax\" (one unit per class); it is '{0}'")]
    Head(String),
}

/// A whole model: the input shape and the layers in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// [height, width, channels]
    pub input: [u32; 3],
    pub layers: Vec<Layer>,
}

impl ModelSpec {
    /// Builds a spec, naming unnamed layers Keras-style (`conv2d_1`, `dense_2`, ...), and checks it.
    pub fn new(input: [u32; 3], layers: Vec<(Option<String>, LayerKind)>) -> Result<Self, SpecError> {
        let mut counts = std::collections::HashMap::new();
        let layers = layers
            .into_iter()
            .map(|(name, kind)| {
                let n = counts.entry(kind.keras_stem()).or_insert(0);
                *n += 1;
                Layer { name: name.unwrap_or_else(|| format!("{}_{}", kind.keras_stem(), n)), kind }
            })
            .collect();
        let spec = Self { input, layers };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks names, shapes and the output head.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.input.contains(&0) {
            return Err(SpecError::Input(self.input));
        }
        let last = self.layers.last().ok_or(SpecError::Empty)?;
        let mut seen = std::collections::HashSet::new();
        for l in &self.layers {
            if !seen.insert(&l.name) {
                return Err(SpecError::DuplicateName(l.name.clone()));
            }
        }
        self.shapes()?;
        match last.kind {
            LayerKind::Dense { units: 1, activation: Activation::Sigmoid } => Ok(()),
            LayerKind::Dense { units, activation: Activation::Softmax } if units >= 2 => Ok(()),
            _ => Err(SpecError::Head(last.name.clone())),
        }
    }

    /// Number of classes the head predicts (2 for a sigmoid head).
    pub fn classes(&self) -> u32 {
        match self.layers.last().map(|l| &l.kind) {
            Some(LayerKind::Dense { units: 1, .. }) => 2,
            Some(LayerKind::Dense { units, .. }) => *units,
            _ => 0,
        }
    }

    /// Logits per example: 1 for the sigmoid head, else one per class.
    pub fn logits(&self) -> u32 {
        match self.layers.last().map(|l| &l.kind) {
            Some(LayerKind::Dense { units, .. }) => *units,
            _ => 0,
        }
    }

    /// Output shape of every layer, checking that each layer fits its input.
    pub fn shapes(&self) -> Result<Vec<Shape>, SpecError> {
        let mut shape = Shape::Image(self.input);
        let mut out = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let err = |message: String| SpecError::Layer { layer: l.name.clone(), message };
            let is_last = i + 1 == self.layers.len();
            shape = match (&l.kind, shape) {
                (LayerKind::Conv2d { filters, kernel, stride, padding, activation }, Shape::Image([h, w, c])) => {
                    if *filters == 0 || kernel.contains(&0) || *stride == 0 {
                        return Err(err("filters, kernel and stride must be at least 1".into()));
                    }
                    if !matches!(activation, Activation::Linear | Activation::Relu) {
                        return Err(err(format!("activation {activation:?} is only allowed on the last dense layer; use \"relu\" or \"linear\"")));
                    }
                    if *padding == Padding::Valid && (kernel[0] > h || kernel[1] > w) {
                        return Err(err(format!("kernel {}x{} is larger than its {h}x{w} input with padding \"valid\"", kernel[0], kernel[1])));
                    }
                    let s = crate::gpu::kernels::ConvShape::keras(1, [h, w, c], *filters, *kernel, *stride, *padding == Padding::Same);
                    Shape::Image([s.out_h, s.out_w, *filters])
                }
                (LayerKind::MaxPool2d { pool, stride }, Shape::Image([h, w, c])) => {
                    let stride = stride.unwrap_or(*pool);
                    if pool.contains(&0) || stride.contains(&0) {
                        return Err(err("pool and stride must be at least 1".into()));
                    }
                    if pool[0] > h || pool[1] > w {
                        return Err(err(format!("pool {}x{} is larger than its {h}x{w} input", pool[0], pool[1])));
                    }
                    Shape::Image([(h - pool[0]) / stride[0] + 1, (w - pool[1]) / stride[1] + 1, c])
                }
                (LayerKind::Flatten, s) => Shape::Flat(u32::try_from(s.len()).map_err(|_| err(format!("flattens {} values, more than 32-bit indices reach", s.len())))?),
                (LayerKind::Dense { units, activation }, Shape::Flat(_)) => {
                    if *units == 0 {
                        return Err(err("units must be at least 1".into()));
                    }
                    if !is_last && !matches!(activation, Activation::Linear | Activation::Relu) {
                        return Err(err(format!("activation {activation:?} is only allowed on the last dense layer")));
                    }
                    Shape::Flat(*units)
                }
                (LayerKind::Dropout { rate }, s) => {
                    if !(0.0..1.0).contains(rate) {
                        return Err(err(format!("rate {rate} must be in [0, 1)")));
                    }
                    s
                }
                (LayerKind::Dense { .. }, Shape::Image(_)) => {
                    return Err(err("a dense layer needs a flat input: add a flatten layer before it".into()))
                }
                (LayerKind::Conv2d { .. } | LayerKind::MaxPool2d { .. }, Shape::Flat(_)) => {
                    return Err(err("needs an image input, but its input is already flat".into()))
                }
            };
            if shape.is_empty() {
                return Err(err("produces an empty output".into()));
            }
            out.push(shape);
        }
        Ok(out)
    }

    /// The parameter tensors, in layer order (kernel, then bias).
    pub fn params(&self) -> Vec<ParamInfo> {
        let shapes = self.shapes().expect("validated spec");
        let mut input = Shape::Image(self.input);
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let (kernel, fans, bias) = match (&l.kind, input) {
                (LayerKind::Conv2d { filters, kernel: [kh, kw], .. }, Shape::Image([_, _, c])) => {
                    (vec![*kh, *kw, c, *filters], (kh * kw * c, kh * kw * filters), *filters)
                }
                (LayerKind::Dense { units, .. }, Shape::Flat(n)) => (vec![n, *units], (n, *units), *units),
                _ => {
                    input = shapes[i];
                    continue;
                }
            };
            out.push(ParamInfo { name: format!("{}.kernel", l.name), layer: i, shape: kernel, fans: Some(fans) });
            out.push(ParamInfo { name: format!("{}.bias", l.name), layer: i, shape: vec![bias], fans: None });
            input = shapes[i];
        }
        out
    }

    /// Total trainable parameters.
    pub fn param_count(&self) -> u64 {
        self.params().iter().map(ParamInfo::len).sum()
    }

    /// The input shape of layer `i`.
    pub fn input_of(&self, i: usize) -> Shape {
        if i == 0 {
            Shape::Image(self.input)
        } else {
            self.shapes().expect("validated spec")[i - 1]
        }
    }

    /// Reference Model 1 of the write-up, at `size` x `size` RGB input.
    pub fn model1(size: u32) -> Self {
        Self::new([size, size, 3], vec![
            (None, LayerKind::Conv2d { filters: 32, kernel: [3, 3], stride: 1, padding: Padding::Same, activation: Activation::Relu }),
            (None, LayerKind::MaxPool2d { pool: [2, 2], stride: None }),
            (None, LayerKind::Flatten),
            (None, LayerKind::Dense { units: 128, activation: Activation::Relu }),
            (None, LayerKind::Dense { units: 1, activation: Activation::Sigmoid }),
        ])
        .expect("valid reference model")
    }

    /// Reference Model 2: Model 1 with a second conv + pool block.
    pub fn model2(size: u32) -> Self {
        Self::new([size, size, 3], vec![
            (None, LayerKind::Conv2d { filters: 32, kernel: [3, 3], stride: 1, padding: Padding::Same, activation: Activation::Relu }),
            (None, LayerKind::MaxPool2d { pool: [2, 2], stride: None }),
            (None, LayerKind::Conv2d { filters: 32, kernel: [3, 3], stride: 1, padding: Padding::Same, activation: Activation::Relu }),
            (None, LayerKind::MaxPool2d { pool: [2, 2], stride: None }),
            (None, LayerKind::Flatten),
            (None, LayerKind::Dense { units: 128, activation: Activation::Relu }),
            (None, LayerKind::Dense { units: 1, activation: Activation::Sigmoid }),
        ])
        .expect("valid reference model")
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

    #[test]
    fn bad_layouts_are_named() {
        let dense_first = ModelSpec::new([8, 8, 3], vec![(None, LayerKind::Dense { units: 1, activation: Activation::Sigmoid })]);
        assert!(matches!(dense_first, Err(SpecError::Layer { ref layer, .. }) if layer == "dense_1"), "{dense_first:?}");
        let no_head = ModelSpec::new([8, 8, 3], vec![(None, LayerKind::Flatten), (None, LayerKind::Dense { units: 3, activation: Activation::Relu })]);
        assert_eq!(no_head, Err(SpecError::Head("dense_1".into())));
        let big_pool = ModelSpec::new([1, 8, 3], vec![(None, LayerKind::MaxPool2d { pool: [2, 2], stride: None })]);
        assert!(matches!(big_pool, Err(SpecError::Layer { .. })));
        let same = LayerKind::Conv2d { filters: 1, kernel: [3, 3], stride: 1, padding: Padding::Same, activation: Activation::Relu };
        let empty = ModelSpec::new([0, 8, 3], vec![(None, same), (None, LayerKind::Flatten), (None, LayerKind::Dense { units: 1, activation: Activation::Sigmoid })]);
        assert_eq!(empty, Err(SpecError::Input([0, 8, 3])));
    }
}
