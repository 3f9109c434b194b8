//! Growth operators: the next model's config, written from this one, so that the next model
//! need not be designed by hand. Each operator edits the config's `[model] layers` in place
//! (comments and every other section kept) in a form `transfer --strategy grow` carries the
//! trained weights into, as the identity where it can be:
//! - `deepen L`: a 3x3 'same' conv with L's channels after L, with a batchnorm when the model
//!   already has one (conv without bias, then batchnorm + ReLU), else with a ReLU of its own;
//!   in a model with skip connections, a residual block (two such convs and batchnorms, the
//!   second without ReLU, joined to L by an `add`) that starts by adding zero;
//! - `widen L=F`: L's filters or units times F (Net2Wider), with every layer whose output an
//!   add ties to L's (their channels go in step);
//! - `add_batchnorm L`: a batchnorm after conv or dense L, which takes over L's activation
//!   (L keeps no bias: the batchnorm's beta replaces it).
//!
//! Layer names are those of the given config (`gpu-cnn summary`), whatever the order of the
//! operators.

use std::str::FromStr;

use toml_edit::{Array, Decor, DocumentMut, InlineTable, Value};

use crate::layers::batchnorm::BatchNorm;
use crate::layers::LayerKind;
use crate::model::spec::closest_name;
use crate::model::{ModelSpec, Shape};
use crate::train::schedule::Schedule;

/// One growth operator, as the command line and growth plans write it.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Deepen(String),
    Widen(String, f64),
    AddBatchnorm(String),
}

impl Op {
    fn layer(&self) -> &str {
        match self {
            Op::Deepen(l) | Op::Widen(l, _) | Op::AddBatchnorm(l) => l,
        }
    }
}

/// `[[grow]]` in a config: after epoch `after_epoch`, the run's model grows by these operators
/// (layer names as the model stands then) and training goes on as the same run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrowConfig {
    /// Grow after this many epochs...
    pub after_epoch: Option<u32>,
    /// ...or after this fraction of the run's epochs (rounded to the nearest epoch), so that a
    /// plan keeps its proportions when the run's length changes (`--epochs`, a budget arm)...
    pub at_fraction: Option<f64>,
    /// ...or once the validation loss stops paying for the compute (see [`Plateau`]).
    pub on_plateau: Option<Plateau>,
    #[serde(default)]
    pub deepen: Vec<String>,
    /// `LAYER=FACTOR` entries.
    #[serde(default)]
    pub widen: Vec<String>,
    #[serde(default)]
    pub add_batchnorm: Vec<String>,
    /// What the learning-rate schedule does at the growth.
    #[serde(default)]
    pub schedule: AtGrowth,
    /// How inserted residual blocks start.
    #[serde(default)]
    pub blocks: crate::transfer::NewBlocks,
}

/// `schedule = "continue" | "restart" | "restart_at_peak"` in a `[[grow]]` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AtGrowth {
    /// The run's one schedule goes on through the growth (staged training, GradMax, MIDAS).
    #[default]
    Continue,
    /// The schedule starts over at the growth, as if the run began there with the epochs left,
    /// its warm-up included: the grown model gets the peak rate again (LipGrow, SGDR).
    Restart,
    /// As `Restart` without the warm-up: the peak rate at once, decaying over the epochs left
    /// (LEMON keeps scratch's peak after expansion and decays faster).
    RestartAtPeak,
}

impl AtGrowth {
    /// The schedule the run follows from this growth on, counted from it; None: the run's own
    /// goes on uninterrupted.
    pub fn restarted(self, schedule: Schedule) -> Option<Schedule> {
        match self {
            Self::Continue => None,
            Self::Restart => Some(schedule),
            Self::RestartAtPeak => Some(schedule.without_warmup()),
        }
    }
}

impl GrowConfig {
    /// The epoch after which it grows in a run of `epochs`; None where the run decides (a
    /// plateau).
    pub fn epoch(&self, epochs: u32) -> Result<Option<u32>, String> {
        match (self.after_epoch, self.at_fraction, self.on_plateau) {
            (Some(e), None, None) => Ok(Some(e)),
            (None, Some(f), None) if f > 0.0 && f < 1.0 => Ok(Some((f * epochs as f64).round() as u32)),
            (None, Some(f), None) => Err(format!("at_fraction = {f}: expected a fraction of the run between 0 and 1")),
            (None, None, Some(p)) if p.patience >= 1 && p.min_delta.is_finite() => Ok(None),
            (None, None, Some(_)) => Err("on_plateau: patience must be at least 1 and min_delta a number".into()),
            _ => Err("give one of after_epoch, at_fraction and on_plateau".into()),
        }
    }

    /// The operators, widths first (the order `gpu-cnn grow` applies its flags in).
    pub fn ops(&self) -> Result<Vec<Op>, String> {
        let widen = self.widen.iter().map(|w| parse_widen(w)).collect::<Result<Vec<_>, _>>()?;
        let ops = ops(widen, self.add_batchnorm.clone(), self.deepen.clone());
        if ops.is_empty() {
            return Err("no operator: give deepen, widen or add_batchnorm".into());
        }
        Ok(ops)
    }
}

/// The operators in the order they are told: widths, then batchnorms, then deepening blocks.
pub fn ops(widen: Vec<(String, f64)>, add_batchnorm: Vec<String>, deepen: Vec<String>) -> Vec<Op> {
    let widen = widen.into_iter().map(|(l, f)| Op::Widen(l, f));
    widen.chain(add_batchnorm.into_iter().map(Op::AddBatchnorm)).chain(deepen.into_iter().map(Op::Deepen)).collect()
}

/// `on_plateau = { patience = 2, min_delta = 0.01 }`: grow once the validation loss, over the
/// last `patience` epochs, has improved by less than `min_delta` per 10^12 training FLOPs
/// spent in them (compared with the epoch before them, not before the previous growth): the
/// model has stopped learning at a rate worth its compute.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plateau {
    #[serde(default = "two")]
    pub patience: u32,
    pub min_delta: f64,
}

fn two() -> u32 {
    2
}

impl Plateau {
    /// Whether the run whose epochs so far are `history` has plateaued, counting only epochs
    /// after `since` (the previous growth's epoch, 0: none).
    pub fn reached(&self, history: &[crate::record::EpochLogs], since: u32) -> bool {
        let (n, p) = (history.len(), self.patience as usize);
        if n <= p || ((n - p) as u32) < since.max(1) {
            return false;
        }
        let before = &history[n - p - 1];
        let best = history[n - p..].iter().map(|l| l.val_loss).fold(f64::INFINITY, f64::min);
        let tflops = (history[n - 1].flops - before.flops) / 1e12;
        // A loss that stopped being a number has plateaued too.
        let rate = (before.val_loss - best) / tflops.max(f64::MIN_POSITIVE);
        rate.partial_cmp(&self.min_delta).is_none_or(|o| o == std::cmp::Ordering::Less)
    }
}

/// The model in force from epoch `after_epoch + 1` of a run with a growth plan.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Growth {
    /// None until the run decides (a plateau).
    pub after_epoch: Option<u32>,
    /// Where the plan gave it as a fraction of the run (its epoch follows the run's length).
    pub at_fraction: Option<f64>,
    pub on_plateau: Option<Plateau>,
    pub schedule: AtGrowth,
    pub blocks: crate::transfer::NewBlocks,
    pub model: ModelSpec,
    /// What the operators did, as `gpu-cnn grow` prints it.
    pub changes: Vec<String>,
}

/// `LAYER=FACTOR`, for `widen`.
pub fn parse_widen(s: &str) -> Result<(String, f64), String> {
    let (layer, factor) = s.split_once('=').ok_or_else(|| format!("`{s}`: expected LAYER=FACTOR, e.g. conv2d_2=2"))?;
    let factor = f64::from_str(factor).ok().filter(|f| f.is_finite() && *f > 1.0).ok_or_else(|| format!("`{s}`: the factor must be a number above 1"))?;
    Ok((layer.to_string(), factor))
}

#[derive(Debug, thiserror::Error)]
pub enum GrowError {
    #[error("no layer `{name}` in the model{hint} (its layers: {known})")]
    UnknownLayer { name: String, hint: String, known: String },
    #[error("{op} `{layer}`: {why}")]
    Unsupported { op: &'static str, layer: String, why: String },
    #[error("the config's [model] layers is not an array of inline tables, which the operators edit")]
    Layout,
}

/// The grown config's text, and one line per change.
pub struct Grown {
    pub text: String,
    pub changes: Vec<String>,
}

/// Applies `ops` to the config `text` whose model is `spec`.
pub fn grow(text: &str, spec: &ModelSpec, ops: &[Op]) -> Result<Grown, GrowError> {
    let mut doc: DocumentMut = text.parse().map_err(|_| GrowError::Layout)?;
    let layers = doc.get_mut("model").and_then(|m| m.get_mut("layers")).and_then(|l| l.as_array_mut()).ok_or(GrowError::Layout)?;
    if layers.len() != spec.layers.len() || layers.iter().any(|l| !l.is_inline_table()) {
        return Err(GrowError::Layout);
    }
    let names = || spec.layers.iter().map(|l| l.name.as_str());
    let index = |name: &str| {
        names().position(|l| l == name).ok_or_else(|| GrowError::UnknownLayer {
            name: name.into(),
            hint: closest_name(name, names()).map_or(String::new(), |c| format!("; did you mean `{c}`?")),
            known: names().collect::<Vec<_>>().join(", "),
        })
    };
    // (operator's position, what it did), told in the operators' order.
    let mut changes: Vec<(usize, String)> = Vec::new();
    // Widths first (in place), then insertions from the back, so that every name keeps
    // meaning the given config's layer.
    let shapes = spec.shapes().expect("a loaded config's model is valid");
    let groups = spec.graph().channel_groups(&spec.layers);
    let mut channels: Vec<Option<u32>> = shapes.iter().map(|s| channels_of(*s)).collect();
    for (k, op) in ops.iter().enumerate() {
        if let Op::Widen(name, factor) = op {
            let i = index(name)?;
            let unsupported = |why: String| GrowError::Unsupported { op: "widen", layer: name.clone(), why };
            if !matches!(spec.layers[i].kind, LayerKind::Conv2d(_) | LayerKind::Dense(_)) {
                return Err(unsupported("only conv2d filters and dense units widen".into()));
            }
            // It widens with every layer writing into the values its output is tied to (an
            // add's inputs and output): their channels go in step.
            let tied: Vec<usize> = (0..spec.layers.len()).filter(|&j| groups[j + 1] == groups[i + 1] && spec.layers[j].kind.ops().units().is_some()).collect();
            let mut widened = Vec::new();
            for &j in &tied {
                let other = &spec.layers[j].name;
                let key = match &spec.layers[j].kind {
                    _ if j + 1 == spec.layers.len() && j == i => return Err(unsupported("the output layer's units are the classes".into())),
                    _ if j + 1 == spec.layers.len() => return Err(unsupported(format!("it is tied by a skip connection to the output layer {other}, whose units are the classes"))),
                    LayerKind::Conv2d(_) => "filters",
                    LayerKind::Dense(_) => "units",
                    _ => return Err(unsupported(format!("it is tied by a skip connection to {other}, and only conv2d filters and dense units widen"))),
                };
                let table = table(layers, j);
                let old = table.get(key).and_then(Value::as_integer).ok_or(GrowError::Layout)?;
                let new = (old as f64 * factor).round() as i64;
                table.insert(key, Value::from(new));
                widened.push((other.clone(), key, old, new));
            }
            let (_, key, old, new) = widened.iter().find(|w| &w.0 == name).expect("it is tied to itself").clone();
            let with: Vec<&str> = widened.iter().map(|w| w.0.as_str()).filter(|w| w != name).collect();
            let with = if with.is_empty() { String::new() } else { format!(", with {} (tied to it by skip connections)", with.join(", ")) };
            changes.push((k, format!("widen {name}: {key} {old} -> {new}{with}")));
            // Every value of the group: its output and what keeps its channels (a batchnorm, a pool, an add).
            for j in (0..spec.layers.len()).filter(|&j| groups[j + 1] == groups[i + 1]) {
                if matches!(shapes[j], Shape::Image(_)) {
                    channels[j] = Some(new as u32);
                }
            }
        }
    }
    let has_batchnorm = spec.layers.iter().any(|l| matches!(l.kind, LayerKind::BatchNorm(_))) || ops.iter().any(|op| matches!(op, Op::AddBatchnorm(_)));
    // New batchnorms keep the statistics' rate of the model's own.
    let like = spec.layers.iter().find_map(|l| match &l.kind {
        LayerKind::BatchNorm(bn) => Some(bn),
        _ => None,
    });
    // With skip connections, layers name what they read: every layer keeps its name as it
    // stands (insertions would renumber Keras' automatic names), new ones take free numbers.
    let residual = !spec.graph().is_sequential();
    if residual {
        for (i, l) in spec.layers.iter().enumerate() {
            let t = table(layers, i);
            if !t.contains_key("name") {
                let rest: Vec<(String, Value)> = t.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
                t.clear();
                for (k, v) in rest {
                    t.insert(&k, v);
                    if k == "type" {
                        t.insert("name", Value::from(l.name.as_str()));
                    }
                }
                t.fmt();
            }
        }
    }
    // New layers' names, numbered in the operators' order.
    let mut fresh = FreshNames::new(spec);
    let block_names: Vec<Option<[String; 5]>> = ops.iter().map(|op| matches!(op, Op::Deepen(_)).then(|| ["conv2d", "batch_normalization", "conv2d", "batch_normalization", "add"].map(|stem| fresh.name(stem)))).collect();
    let mut inserts: Vec<(usize, u8, usize, &Op)> = Vec::new();
    for (k, op) in ops.iter().enumerate() {
        match op {
            Op::Widen(..) => {}
            // At one layer, a batchnorm goes right after it, a deepening block after that.
            Op::AddBatchnorm(name) => inserts.push((index(name)?, 0, k, op)),
            Op::Deepen(name) => inserts.push((index(name)?, 1, k, op)),
        }
    }
    inserts.sort_by_key(|&(i, order, _, _)| std::cmp::Reverse((i, order)));
    for (i, _, k, op) in inserts {
        let name = op.layer().to_string();
        let line = layers.get(i).ok_or(GrowError::Layout)?.decor().prefix().and_then(|p| p.as_str()).unwrap_or_default();
        // New layers start as layer i does: on a line of their own, indented alike, where it does.
        let fresh_line = line.rfind('\n').map_or(line.to_string(), |n| line[n..].to_string());
        // A comment after layer i's line is the next layer's prefix: the first new layer takes
        // it over, so that it stays on layer i's line.
        let mut prefix = layers.get_mut(i + 1).and_then(|next| {
            let comment = next.decor().prefix().cloned();
            next.decor_mut().set_prefix(fresh_line.clone());
            comment
        });
        let mut at = i + 1;
        let mut insert = |layers: &mut Array, mut t: InlineTable| {
            t.fmt();
            let mut v = Value::InlineTable(t);
            *v.decor_mut() = Decor::new(prefix.take().unwrap_or_else(|| fresh_line.clone().into()), "");
            layers.insert_formatted(at, v);
            at += 1;
        };
        match op {
            Op::AddBatchnorm(_) => {
                let unsupported = |why: String| GrowError::Unsupported { op: "add_batchnorm", layer: name.clone(), why };
                if residual {
                    return Err(unsupported("in a model with skip connections, deepen inserts residual blocks with batchnorms of their own".into()));
                }
                if !matches!(spec.layers[i].kind, LayerKind::Conv2d(_) | LayerKind::Dense(_)) || i + 1 == spec.layers.len() {
                    return Err(unsupported("a batchnorm goes after a hidden conv2d or dense layer".into()));
                }
                if matches!(spec.layers.get(i + 1).map(|l| &l.kind), Some(LayerKind::BatchNorm(_))) {
                    return Err(unsupported(format!("{} already follows it", spec.layers[i + 1].name)));
                }
                let t = table(layers, i);
                let activation = t.remove("activation");
                t.insert("use_bias", Value::from(false));
                insert(layers, batchnorm_table(None, activation, like));
                changes.push((k, format!("add_batchnorm after {name} (it takes over {name}'s activation and bias)")));
            }
            Op::Deepen(_) if residual => {
                let Some(c) = channels[i] else {
                    return Err(GrowError::Unsupported { op: "deepen", layer: name, why: "a residual block goes where the activation is an image".into() });
                };
                let [conv1, bn1, conv2, bn2, add_name] = block_names[k].clone().expect("named for every deepen");
                let mut block = Vec::new();
                for (conv, bn, relu) in [(conv1, bn1, true), (conv2, bn2.clone(), false)] {
                    block.push(conv_table(c, Some(&conv)));
                    block.push(batchnorm_table(Some(&bn), relu.then(|| Value::from("relu")), like));
                }
                let last = bn2;
                let mut add = InlineTable::new();
                add.insert("type", Value::from("add"));
                add.insert("name", Value::from(add_name.as_str()));
                // The block's ReLU after the sum is the identity only on a non-negative value.
                let relu = spec.non_negative_values()[i + 1];
                if relu {
                    add.insert("activation", Value::from("relu"));
                }
                add.insert("inputs", Value::Array(Array::from_iter([last.as_str(), name.as_str()])));
                block.push(add);
                // What read L now reads the block's sum (the layer after it reads it by order).
                for j in i + 1..spec.layers.len() {
                    if let Some(inputs) = table(layers, j).get_mut("inputs").and_then(Value::as_array_mut) {
                        for v in inputs.iter_mut().filter(|v| v.as_str() == Some(name.as_str())) {
                            let decor = v.decor().clone();
                            *v = Value::from(add_name.as_str());
                            *v.decor_mut() = decor;
                        }
                    }
                }
                for t in block {
                    insert(layers, t);
                }
                let post = if relu { " + relu" } else { "" };
                changes.push((k, format!("deepen after {name}: residual block of 2 conv2d {c} filters 3x3 + batchnorm, joined to {name} by {add_name}{post}; {last} starts at gamma = 0, so the block adds 0")));
            }
            Op::Deepen(_) => {
                let Some(c) = channels[i] else {
                    return Err(GrowError::Unsupported { op: "deepen", layer: name, why: "a conv block goes where the activation is an image".into() });
                };
                let mut conv = conv_table(c, None);
                if has_batchnorm {
                    insert(layers, conv);
                    insert(layers, batchnorm_table(None, Some(Value::from("relu")), like));
                    changes.push((k, format!("deepen after {name}: conv2d {c} filters 3x3 + batchnorm + relu")));
                } else {
                    conv.remove("use_bias");
                    conv.insert("activation", Value::from("relu"));
                    insert(layers, conv);
                    changes.push((k, format!("deepen after {name}: conv2d {c} filters 3x3 + relu")));
                }
            }
            Op::Widen(..) => unreachable!("applied above"),
        }
    }
    // Keep `name = ...` of the top level out of the grown config: it names the next model
    // after its own file.
    doc.remove("name");
    // The given config's growth plan ([[grow]]) was this model's: the next one starts without.
    doc.remove("grow");
    changes.sort_by_key(|c| c.0);
    let changes: Vec<String> = changes.into_iter().map(|c| c.1).collect();
    let header = format!("# Grown by `gpu-cnn grow`: {}.\n", changes.join("; "));
    Ok(Grown { text: header + &doc.to_string(), changes })
}

/// A batchnorm table, named if given, with `activation`, and the momentum and epsilon of `like`
/// (the model's own batchnorm) where they are not Keras' defaults: a new layer's moving
/// statistics then follow at the rate the others' do.
fn batchnorm_table(name: Option<&str>, activation: Option<Value>, like: Option<&BatchNorm>) -> InlineTable {
    let mut t = InlineTable::new();
    t.insert("type", Value::from("batchnorm"));
    if let Some(name) = name {
        t.insert("name", Value::from(name));
    }
    let keras = BatchNorm::default();
    for (key, ours, default) in like.map_or(Vec::new(), |bn| vec![("momentum", bn.momentum, keras.momentum), ("epsilon", bn.epsilon, keras.epsilon)]) {
        if ours != default {
            // As written (0.9), not as the f32 widens (0.8999999761581421).
            t.insert(key, Value::from(ours.to_string().parse::<f64>().unwrap_or(ours as f64)));
        }
    }
    if let Some(a) = activation {
        t.insert("activation", a);
    }
    t
}

/// A 3x3 'same' conv table of `filters`, without bias (a batchnorm follows), named if given.
fn conv_table(filters: u32, name: Option<&str>) -> InlineTable {
    let mut conv = InlineTable::new();
    conv.insert("type", Value::from("conv2d"));
    if let Some(name) = name {
        conv.insert("name", Value::from(name));
    }
    conv.insert("filters", Value::from(filters as i64));
    conv.insert("kernel", Value::from(3));
    conv.insert("padding", Value::from("same"));
    conv.insert("use_bias", Value::from(false));
    conv
}

/// Keras-style names not yet taken: `conv2d_<n>` past the highest number in use.
struct FreshNames {
    next: std::collections::HashMap<String, u32>,
}

impl FreshNames {
    fn new(spec: &ModelSpec) -> Self {
        let mut next = std::collections::HashMap::new();
        for l in &spec.layers {
            if let Some((stem, n)) = l.name.rsplit_once('_').and_then(|(s, n)| Some((s, n.parse::<u32>().ok()?))) {
                let e = next.entry(stem.to_string()).or_insert(1);
                *e = (*e).max(n + 1);
            }
        }
        Self { next }
    }

    fn name(&mut self, stem: &str) -> String {
        let n = self.next.entry(stem.to_string()).or_insert(1);
        *n += 1;
        format!("{stem}_{}", *n - 1)
    }
}

fn table(layers: &mut Array, i: usize) -> &mut InlineTable {
    layers.get_mut(i).and_then(Value::as_inline_table_mut).expect("checked: every layer is an inline table")
}

fn channels_of(shape: Shape) -> Option<u32> {
    match shape {
        Shape::Image([_, _, c]) => Some(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::EpochLogs;

    fn epochs(val_losses: &[f64]) -> Vec<EpochLogs> {
        let log = |i: usize, val_loss: f64| EpochLogs { epoch: i as u32 + 1, loss: 0.5, acc: 0.5, val_loss, val_acc: 0.5, lr: 1e-3, step_size: 1e-3, train_seconds: 1.0, eval_seconds: 1.0, train_images_per_s: 1.0, flops: 2e12 * (i + 1) as f64, wall_seconds: 1.0, grown: None };
        val_losses.iter().enumerate().map(|(i, &v)| log(i, v)).collect()
    }

    /// 2e12 FLOPs an epoch: over two epochs the loss must fall by min_delta * 4 to keep going.
    #[test]
    fn a_plateau_is_too_little_improvement_per_flop_over_the_window() {
        let p = Plateau { patience: 2, min_delta: 0.01 };
        assert!(!p.reached(&epochs(&[0.7, 0.6]), 0), "no epoch before the window yet");
        assert!(!p.reached(&epochs(&[0.7, 0.6, 0.55]), 0), "0.15 over 4e12: learning");
        assert!(p.reached(&epochs(&[0.7, 0.6, 0.65, 0.59]), 0), "0.01 over 4e12: a plateau");
        assert!(p.reached(&epochs(&[0.7, 0.6, 0.65, 0.59]), 2), "a window of the two epochs after a growth after epoch 2");
        assert!(!p.reached(&epochs(&[0.7, 0.6, 0.65, 0.59]), 3), "the window would start before the growth");
        assert!(p.reached(&epochs(&[0.7, 0.6, 0.65, f64::NAN]), 0), "a loss that is not a number");
        assert_eq!(GrowConfig { after_epoch: Some(1), at_fraction: None, on_plateau: Some(p), deepen: vec!["x".into()], widen: vec![], add_batchnorm: vec![], schedule: AtGrowth::Continue, blocks: Default::default() }.epoch(4).unwrap_err(), "give one of after_epoch, at_fraction and on_plateau");
    }

    /// Widening and deepening at once: the new layers take the next free numbers (widening
    /// names nothing), and each line's comment stays on its layer's line.
    #[test]
    fn a_grown_config_keeps_each_comment_on_its_layer_and_numbers_new_layers_in_turn() {
        let text = r#"[model]
input = [8, 8, 3]
layers = [
  { type = "conv2d", filters = 4, kernel = 3, padding = "same", use_bias = false },  # first
  { type = "batchnorm", activation = "relu" },  # second
  { type = "conv2d", filters = 4, kernel = 3, padding = "same", use_bias = false },  # third
  { type = "batchnorm" },  # fourth
  { type = "add", activation = "relu", inputs = ["batch_normalization_2", "batch_normalization_1"] },  # fifth
  { type = "globalavgpool2d" },  # sixth
  { type = "dense", units = 2, activation = "softmax" },  # seventh
]
"#;
        let spec = crate::config::Config::parse(std::path::Path::new("c.toml"), text).unwrap().model;
        let grown = grow(text, &spec, &ops(vec![("conv2d_1".into(), 2.0), ("conv2d_2".into(), 2.0)], vec![], vec!["add_1".into()])).unwrap();
        let lines: Vec<&str> = grown.text.lines().filter(|l| l.trim_start().starts_with("{ type")).collect();
        let comments: Vec<Option<&str>> = lines.iter().map(|l| l.split_once("  # ").map(|c| c.1)).collect();
        let mut kept = vec![Some("first"), Some("second"), Some("third"), Some("fourth"), Some("fifth")];
        kept.extend([None; 5]);
        kept.extend([Some("sixth"), Some("seventh")]);
        assert_eq!(comments, kept, "{}", grown.text);
        let named = |l: &&str| l.split("name = \"").nth(1).and_then(|n| n.split('"').next()).unwrap_or_default().to_string();
        assert_eq!(lines[5..10].iter().map(named).collect::<Vec<_>>(), ["conv2d_3", "batch_normalization_3", "conv2d_4", "batch_normalization_4", "add_2"]);
    }
}
