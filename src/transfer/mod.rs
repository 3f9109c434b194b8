//! Learning transfer between model layouts. A [`Plan`] is plain data computed from the two
//! specs alone (testable without a GPU); [`apply`] turns a source checkpoint's tensors into the
//! target's, starting from the target's own seeded initialisation.
//!
//! - `prefix` (the write-up's rule): from the input, pair layers with parameters in order, copy
//!   while type and shape match, stop at the first mismatch.
//! - `match`: Keras `load_weights(by_name=True, skip_mismatch=True)`, falling back to the
//!   position among layers of the same type: copy wherever name (or position) and shape match.
//! - `grow`: Net2Net (Chen, Goodfellow & Shlens, ICLR 2016). Inserted convs start as the identity
//!   (ReLU-safe: their input is non-negative), wider layers replicate units and divide the
//!   outgoing weights by the replica count, and a dense layer after an inserted max-pool is
//!   remapped by summing its kernel over each pooled window (approximate: exact only where the
//!   window is constant).
//!   Batch normalisation (Net2Net's rule): a batchnorm that matches is copied (widened, all four
//!   tensors replicate with its units); an inserted one starts as the identity in inference mode
//!   (moving mean 0, variance 1 - eps), taking over the source layer's ReLU and bias where the
//!   target moved them after its conv; [`calibrate`] (`--data`) measures its statistics so that
//!   training mode starts close to the identity too. An inserted conv wider than its input
//!   replicates channels (Net2Net's deeper and wider at once).
//!
//! `partial` copies the overlapping slice where unit or channel counts differ.

pub mod calibrate;

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use std::path::Path;

use crate::checkpoint::{Checkpoint, Optimizer};
use crate::record::TrainState;
use crate::layers::{Activation, Insertion, LayerKind, Role};
use crate::model::{ModelSpec, ParamInfo, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The write-up's rule: layers in order, copied while type and shape match.
    Prefix,
    /// Keras `load_weights(by_name=True, skip_mismatch=True)`: by name, else position.
    Match,
    /// Net2Net: widened and inserted layers keep the source's function.
    Grow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Same shape, values copied.
    Copied,
    /// Net2Net: units replicated, their outgoing weights shared (function-preserving).
    Grown,
    /// Inserted conv initialised as the identity (function-preserving).
    Identity,
    /// Re-indexed onto another spatial grid (approximate).
    Remapped,
    /// Freshly initialised inside an inserted residual block, which adds zero at first.
    InBlock,
    /// The overlapping slice copied (`--partial`), the rest freshly initialised.
    Partial,
    FreshInit,
    NoParameters,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Self::Copied => "copied",
            Self::Grown => "grown",
            Self::Identity => "grown (identity)",
            Self::Remapped => "remapped",
            Self::InBlock => "new (in block)",
            Self::Partial => "partial",
            Self::FreshInit => "fresh init",
            Self::NoParameters => "no parameters",
        }
    }
}

/// How one target layer's input dimension relates to the source's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InputMap {
    /// Same channels / features.
    Same,
    /// Target input channel c replicates source channel channels[c]; the replicas share its
    /// weights as `split` draws them (see [`shares`]).
    Channels { channels: Vec<usize>, split: u64 },
    /// Dense after flatten: input rows are (h, w, c) of the source's `source_grid`, pooled by
    /// `window` ([1, 1] when no max-pool was inserted) in the target, with target channel c
    /// replicating source channel channels[c], shared as in `Channels`.
    Pooled { source_grid: [u32; 2], window: [u32; 2], channels: Vec<usize>, split: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerPlan {
    pub target: String,
    pub class: String,
    pub source: Option<String>,
    pub action: Action,
    /// Why nothing (or not everything) moved, or how it moved.
    pub reason: Option<String>,
    pub params: u64,
    /// Parameters whose values came from the source.
    pub moved: u64,
    /// How its tensors are made (for apply).
    #[serde(skip)]
    pub recipe: Option<Recipe>,
}

/// How a residual block inserted by growth starts (`[[grow]] blocks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NewBlocks {
    /// Its last batchnorm at gamma = beta = 0: it adds zero, and the grown model computes what
    /// the trained one did.
    #[default]
    Identity,
    /// As initialised (gamma = 1): the function changes at the growth, but the block's convs
    /// get gradients from the first step (with gamma = 0 they get none until gamma moves;
    /// AutoGrow found this start 0.4-1.3 points better on CIFAR).
    Fresh,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Recipe {
    /// From source layer `source_layer`: target output unit -> source output unit, and how
    /// the input dimension maps.
    Map { source_layer: usize, units: Vec<usize>, input: InputMap },
    /// An inserted layer that starts as the identity: a conv whose output unit o copies input
    /// channel `inputs[o]` (units past the input's replicate some: Net2Net's wider-deeper), or
    /// a batchnorm (mean 0, variance 1 - epsilon: exact in inference mode) whose beta takes
    /// over a source layer's bias, `bias` = (source layer, channel -> source unit).
    Identity { inputs: Vec<usize>, bias: Option<(usize, Vec<usize>)> },
    /// The last batchnorm of an inserted residual block: gamma = beta = 0, so that it outputs
    /// zero in training and inference mode alike and the block adds nothing.
    Zero,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub strategy: Strategy,
    pub partial: bool,
    pub layers: Vec<LayerPlan>,
    /// Source layers with parameters that moved nowhere.
    pub unused: Vec<String>,
    pub moved: u64,
    pub total: u64,
    /// True when the target computes exactly the source's function (before training).
    pub function_preserving: bool,
}

impl Plan {
    pub fn fraction(&self) -> f64 {
        self.moved as f64 / self.total.max(1) as f64
    }

    pub fn table(&self) -> String {
        use crate::model::summary::thousands;
        let targets: Vec<String> = self.layers.iter().map(|l| format!("{} ({})", l.target, l.class)).collect();
        let tw = targets.iter().map(String::len).max().unwrap_or(0).max(12);
        let sw = self.layers.iter().filter_map(|l| l.source.as_ref().map(String::len)).max().unwrap_or(0).max(12);
        let mut out = format!("{:<tw$} {:<sw$} {:<16} {:>11}  reason\n", "target layer", "source layer", "action", "params");
        for (l, target) in self.layers.iter().zip(&targets) {
            let row = format!(
                "{target:<tw$} {:<sw$} {:<16} {:>11}  {}",
                l.source.as_deref().unwrap_or("-"),
                l.action.label(),
                if l.params == 0 { "-".into() } else { thousands(l.params) },
                l.reason.as_deref().unwrap_or("")
            );
            out += row.trim_end();
            out += "\n";
        }
        out += &format!("{} of {} parameters ({:.1}%) came from the source", thousands(self.moved), thousands(self.total), 100.0 * self.fraction());
        if !self.unused.is_empty() {
            out += &format!("; unused source layers: {}", self.unused.join(", "));
        }
        // An inserted batchnorm is the identity in inference mode only, unless it starts at
        // zero (a residual block's last, which adds nothing in either mode).
        let inserted_norm = self.layers.iter().any(|l| l.action == Action::Identity && l.class == "BatchNormalization" && l.recipe != Some(Recipe::Zero));
        out += match (self.function_preserving, inserted_norm) {
            (true, false) => "; the new model computes the same function as the source\n",
            (true, true) => "; the new model computes the same function as the source in inference mode\n",
            (false, _) => "\n",
        };
        out
    }
}

fn has_params(spec: &ModelSpec, layer: usize) -> bool {
    spec.params().iter().any(|p| p.layer == layer)
}

fn param_shapes(spec: &ModelSpec, layer: usize) -> Vec<Vec<u32>> {
    spec.params().into_iter().filter(|p| p.layer == layer).map(|p| p.shape).collect()
}

fn param_count(spec: &ModelSpec, layer: usize) -> u64 {
    spec.params().iter().filter(|p| p.layer == layer).map(|p| p.len()).sum()
}

fn same_class(a: &LayerKind, b: &LayerKind) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// The output width a layer sets itself (filters, dense units); layers that keep their
/// input's width (batchnorm) follow their input's unit map instead.
fn units(l: &LayerKind) -> Option<u32> {
    l.ops().units()
}

/// The same layer up to its unit count (so that widening can pair them).
fn same_but_width(a: &LayerKind, b: &LayerKind) -> bool {
    a.ops().same_but_width(b)
}

/// Whether target layer `t`, of source layer `j`'s kind but another width, is better read as
/// inserted before a later target layer that matches `j` (before the next source layer's
/// match): one of the same width, or, for a narrower `t` (which growth cannot pair), a wider
/// one. `grow --deepen` inserts such identity convs ahead of a conv the source has.
fn inserted_before_its_match(source: &ModelSpec, target: &ModelSpec, t: usize, j: usize) -> bool {
    let (sk, width) = (&source.layers[j].kind, units(&target.layers[t].kind));
    let want = units(sk);
    if width == want {
        return false;
    }
    let next = source.layers.get(j + 1).map(|l| &l.kind);
    target.layers[t + 1..]
        .iter()
        .map(|l| &l.kind)
        .take_while(|k| !next.is_some_and(|n| same_but_width(k, n)))
        .any(|k| same_but_width(k, sk) && (units(k) == want || (width < want && units(k) > want)))
}

struct Builder<'a> {
    source: &'a ModelSpec,
    target: &'a ModelSpec,
    layers: Vec<LayerPlan>,
    used: Vec<bool>,
    /// An inserted layer changed the function (a pool): the plan cannot be exact.
    approximate: bool,
}

impl<'a> Builder<'a> {
    fn new(source: &'a ModelSpec, target: &'a ModelSpec) -> Self {
        Self { source, target, layers: Vec::new(), used: vec![false; source.layers.len()], approximate: false }
    }

    fn push(&mut self, t: usize, source: Option<usize>, action: Action, reason: Option<String>, recipe: Option<Recipe>) {
        let layer = &self.target.layers[t];
        let params = param_count(self.target, t);
        let with_params = has_params(self.target, t);
        let moved = match action {
            Action::Copied | Action::Grown | Action::Remapped => params,
            Action::Partial => self.overlap(t, source.expect("partial has a source")),
            _ => 0,
        };
        if let Some(s) = source.filter(|_| moved > 0) {
            self.used[s] = true;
        }
        self.layers.push(LayerPlan {
            target: layer.name.clone(),
            class: layer.kind.ops().class().to_string(),
            source: source.map(|s| self.source.layers[s].name.clone()),
            action: if !with_params { Action::NoParameters } else { action },
            reason,
            params,
            moved,
            recipe,
        });
    }

    /// Elements of the overlapping slice of layer t and source layer s.
    fn overlap(&self, t: usize, s: usize) -> u64 {
        param_shapes(self.target, t)
            .iter()
            .zip(param_shapes(self.source, s))
            .map(|(a, b)| a.iter().zip(&b).map(|(x, y)| (*x.min(y)) as u64).product::<u64>())
            .sum()
    }

    /// Copy if the shapes match; else partial (when allowed and the layers agree up to sizes)
    /// or fresh init with the reason.
    fn copy_or_explain(&mut self, t: usize, s: usize, partial: bool) -> bool {
        let (ts, ss) = (param_shapes(self.target, t), param_shapes(self.source, s));
        let same_kind = same_but_width(&self.target.layers[t].kind, &self.source.layers[s].kind);
        if ts == ss && same_kind {
            // Its output's width (a depthwise conv's is its input's times the multiplier).
            let width = self.target.value_shape(t + 1).channels();
            let recipe = Recipe::Map { source_layer: s, units: (0..units(&self.target.layers[t].kind).unwrap_or(width) as usize).collect(), input: InputMap::Same };
            self.push(t, Some(s), Action::Copied, None, Some(recipe));
            return true;
        }
        let why = if !same_class(&self.target.layers[t].kind, &self.source.layers[s].kind) {
            format!("type differs ({} vs {})", self.target.layers[t].kind.ops().class(), self.source.layers[s].kind.ops().class())
        } else if !same_kind {
            "settings differ (kernel, stride, padding, activation, bias or normalisation)".to_string()
        } else {
            format!("shape differs ({:?} vs {:?})", ts[0], ss[0])
        };
        if partial && same_kind {
            let recipe = Recipe::Map { source_layer: s, units: Vec::new(), input: InputMap::Same };
            self.push(t, Some(s), Action::Partial, Some(format!("{why}: overlapping slice copied")), Some(recipe));
        } else {
            self.push(t, Some(s), Action::FreshInit, Some(why), None);
        }
        false
    }

    fn finish(self, strategy: Strategy, partial: bool) -> Plan {
        let unused = self.source.layers.iter().enumerate().filter(|(i, _)| has_params(self.source, *i) && !self.used[*i]).map(|(_, l)| l.name.clone()).collect();
        let moved = self.layers.iter().map(|l| l.moved).sum();
        let total = self.target.param_count();
        let function_preserving = strategy == Strategy::Grow
            && !self.approximate
            && self.layers.iter().all(|l| matches!(l.action, Action::Copied | Action::Grown | Action::Identity | Action::InBlock | Action::NoParameters));
        Plan { strategy, partial, layers: self.layers, unused, moved, total, function_preserving }
    }
}

/// Plans how `source`'s parameters move into `target`; `seed` picks the units a widening
/// replicates (Net2Net's random choice), so each run's seed grows its own way.
pub fn plan(source: &ModelSpec, target: &ModelSpec, strategy: Strategy, partial: bool, seed: u64) -> Plan {
    match strategy {
        Strategy::Prefix => plan_prefix(source, target, partial),
        Strategy::Match => plan_match(source, target, partial),
        Strategy::Grow if source.graph().is_sequential() && target.graph().is_sequential() => plan_grow(source, target, partial, seed),
        Strategy::Grow => plan_grow_blocks(source, target, seed),
    }
}

/// Growth of a model with skip connections: the target is the source with residual blocks
/// inserted. Every other layer is the source's own, reading what its counterpart reads, and
/// copied; an inserted block is a branch of new layers from a value to an `add` that joins it
/// back, ending in a batchnorm that starts at gamma = beta = 0, so the block adds zero in
/// training and inference mode alike (its ReLU, if any, is the identity on a non-negative
/// value). Widened layers are Net2Wider's, through skip connections: the values an add ties
/// together (its inputs and output, and what keeps their channels) replicate the same source
/// channels, so every layer that writes into such a group widens by one map.
fn plan_grow_blocks(source: &ModelSpec, target: &ModelSpec, seed: u64) -> Plan {
    let mut b = Builder::new(source, target);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x004E_324E);
    let (sg, tg) = (source.graph(), target.graph());
    let non_negative = source.non_negative_values();
    // Target value -> the source value it equals (None: inside an inserted block), and its
    // channels: target channel -> source channel.
    let mut map: Vec<Option<usize>> = vec![Some(0)];
    let mut channels: Vec<Vec<usize>> = vec![(0..source.input[2] as usize).collect()];
    let groups = tg.channel_groups(&target.layers);
    let mut group_units: std::collections::HashMap<usize, Vec<usize>> = std::collections::HashMap::new();
    let mut j = 0;
    let mut broken: Option<String> = (source.input != target.input).then(|| "the input differs".to_string());
    for t in 0..target.layers.len() {
        let (layer, with_params) = (&target.layers[t], has_params(target, t));
        let reads: Vec<Option<usize>> = tg.inputs[t].iter().map(|&v| map[v]).collect();
        let fresh = |b: &mut Builder, why: String| b.push(t, None, if with_params { Action::FreshInit } else { Action::NoParameters }, with_params.then_some(why), None);
        if let Some(why) = &broken {
            map.push(None);
            channels.push(Vec::new());
            fresh(&mut b, why.clone());
            continue;
        }
        // Its counterpart: the source layer of its name, else the next one in order (unless
        // a later target layer has that one's name); the same kind up to its width, reading
        // the same values.
        let pairs = |s: usize| same_but_width(&layer.kind, &source.layers[s].kind) && reads.iter().copied().eq(sg.inputs[s].iter().map(|&v| Some(v)));
        let by_name = source.layers.iter().position(|l| l.name == layer.name);
        let in_order = (j < source.layers.len() && !target.layers[t + 1..].iter().any(|l| l.name == source.layers[j].name)).then_some(j);
        if let Some(s) = by_name.or(in_order).filter(|&s| s >= j && pairs(s)) {
            j = s + 1;
            let inputs = channels[tg.input(t)].clone();
            let widened = inputs.iter().enumerate().any(|(i, &c)| i != c);
            let (out, input, reason) = match (units(&layer.kind), units(&source.layers[s].kind)) {
                // Writes its own units: the group's map, chosen by the first layer writing it.
                (Some(nt), Some(ns)) => {
                    let (nt, ns) = (nt as usize, ns as usize);
                    let out = group_units.entry(groups[t + 1]).or_insert_with(|| (0..ns).chain((ns..nt).map(|_| rng.random_range(0..ns))).collect()).clone();
                    if out.len() != nt || nt < ns || (t + 1 == target.layers.len() && nt != ns) {
                        broken = Some(format!("after {}, which starts fresh", layer.name));
                        map.push(None);
                        channels.push(Vec::new());
                        fresh(&mut b, format!("{} units where the source has {ns}: growth widens, by one map per group of values an add ties", nt));
                        continue;
                    }
                    let input = if widened { InputMap::Channels { channels: inputs, split: rng.random() } } else { InputMap::Same };
                    let reason = (nt > ns).then(|| format!("widened {ns} -> {nt} (units replicated{})", if widened { ", inputs shared" } else { "" })).or(widened.then(|| "inputs from replicated units shared".to_string()));
                    (out, input, reason)
                }
                // Follows its input's channels one for one (a batchnorm, an add, a pool).
                _ if layer.kind.ops().keeps_channels() => (inputs, InputMap::Same, widened.then(|| "units replicated with its input's".to_string())),
                // A flatten or a depthwise conv with a multiplier: only where nothing widened.
                _ if !widened => ((0..target.layers[t].kind.ops().output(target.input_of(t), false).map_or(0, |o| o.channels()) as usize).collect(), InputMap::Same, None),
                _ => {
                    broken = Some(format!("after {}, which starts fresh", layer.name));
                    map.push(None);
                    channels.push(Vec::new());
                    fresh(&mut b, "reads a widened value through skip connections, which this layer cannot follow".into());
                    continue;
                }
            };
            map.push(Some(s + 1));
            let action = match (with_params, reason.is_some()) {
                (false, _) => Action::NoParameters,
                (true, true) => Action::Grown,
                (true, false) => Action::Copied,
            };
            let recipe = with_params.then(|| Recipe::Map { source_layer: s, units: out.clone(), input });
            channels.push(out);
            b.push(t, Some(s), action, reason.filter(|_| with_params), recipe);
            continue;
        }
        // An add joining a branch of new layers back to the value it started from.
        if let (true, &[Some(u), None] | &[None, Some(u)]) = (layer.kind.ops().merges(), &reads[..]) {
            let end = tg.inputs[t].iter().copied().find(|&v| map[v].is_none()).expect("one input is new");
            let zeroed = match &target.layers[end - 1].kind {
                LayerKind::BatchNorm(bn) if bn.scale && bn.activation == Activation::Linear => Ok(end - 1),
                _ => Err(format!("{} joins a branch that does not end in a batchnorm with a scale and no activation, which could start at zero", layer.name)),
            };
            let relu_ok = layer.kind.ops().activation() != Activation::Relu || non_negative[u];
            match zeroed {
                Ok(z) if relu_ok => {
                    map.push(Some(u));
                    let joined = tg.inputs[t].iter().copied().find(|&v| map[v] == Some(u)).expect("one input is known");
                    channels.push(channels[joined].clone());
                    let plan = &mut b.layers[z];
                    (plan.action, plan.recipe) = (Action::Identity, Some(Recipe::Zero));
                    plan.reason = Some(format!("inserted: the block's last batchnorm, gamma = beta = 0, so {} adds 0", layer.name));
                    let what = if u == 0 { "the input".to_string() } else { source.layers[u - 1].name.clone() };
                    b.push(t, None, Action::NoParameters, Some(format!("inserted: joins the new block back to {what}'s value")), None);
                }
                Ok(_) => {
                    broken = Some(format!("after {}", layer.name));
                    map.push(None);
                    channels.push(Vec::new());
                    fresh(&mut b, format!("its ReLU is not the identity: {} can be negative", source.layers[u - 1].name));
                }
                Err(why) => {
                    broken = Some(format!("after {}", layer.name));
                    map.push(None);
                    channels.push(Vec::new());
                    fresh(&mut b, why);
                }
            }
            continue;
        }
        map.push(None);
        channels.push(Vec::new());
        // A new layer: inside a block if an add joins it back (below).
        b.push(t, None, if with_params { Action::InBlock } else { Action::NoParameters }, Some("inserted: in a new residual block".into()), None);
    }
    // New layers from which no joining add is reached change the function.
    let mut joins = vec![false; target.layers.len()];
    for t in (0..target.layers.len()).rev() {
        joins[t] = match map[t + 1] {
            Some(_) => target.layers[t].kind.ops().merges(),
            None => tg.readers[t + 1].iter().any(|&r| joins[r]),
        };
        if map[t + 1].is_none() && !joins[t] && matches!(b.layers[t].action, Action::InBlock | Action::NoParameters) {
            b.layers[t].action = if has_params(target, t) { Action::FreshInit } else { Action::NoParameters };
            b.layers[t].reason = Some("inserted, but no add joins it back: the growth cannot start it as nothing".into());
            b.approximate = true;
        }
    }
    if j < source.layers.len() && broken.is_none() {
        b.approximate = true;
    }
    b.finish(Strategy::Grow, false)
}

fn plan_prefix(source: &ModelSpec, target: &ModelSpec, partial: bool) -> Plan {
    let mut b = Builder::new(source, target);
    let src: Vec<usize> = (0..source.layers.len()).filter(|&i| has_params(source, i)).collect();
    let mut next = 0;
    let mut stopped: Option<String> = None;
    for t in 0..target.layers.len() {
        if !has_params(target, t) {
            b.push(t, None, Action::NoParameters, None, None);
            continue;
        }
        if let Some(why) = &stopped {
            let why = why.clone();
            b.push(t, None, Action::FreshInit, Some(why), None);
            continue;
        }
        let Some(&s) = src.get(next) else {
            b.push(t, None, Action::FreshInit, Some("the source has no more layers with parameters".into()), None);
            continue;
        };
        next += 1;
        if !b.copy_or_explain(t, s, partial) {
            stopped = Some(format!("after the first mismatch (prefix mode, at {})", target.layers[t].name));
        }
    }
    b.finish(Strategy::Prefix, partial)
}

fn plan_match(source: &ModelSpec, target: &ModelSpec, partial: bool) -> Plan {
    let mut b = Builder::new(source, target);
    let position = |spec: &ModelSpec, i: usize| spec.layers[..i].iter().filter(|l| same_class(&l.kind, &spec.layers[i].kind)).count();
    for t in 0..target.layers.len() {
        if !has_params(target, t) {
            b.push(t, None, Action::NoParameters, None, None);
            continue;
        }
        let by_name = source.layers.iter().position(|l| l.name == target.layers[t].name && same_class(&l.kind, &target.layers[t].kind));
        let by_position = (0..source.layers.len())
            .find(|&s| same_class(&source.layers[s].kind, &target.layers[t].kind) && position(source, s) == position(target, t));
        match by_name.or(by_position) {
            Some(s) if !b.used[s] => {
                b.copy_or_explain(t, s, partial);
            }
            _ => {
                let hint = crate::model::spec::closest_name(&target.layers[t].name, source.layers.iter().map(|l| l.name.as_str()));
                let reason = match hint {
                    Some(h) => format!("no source layer of this name or position (did you mean '{h}'?)"),
                    None => "no source layer of this name or position".into(),
                };
                b.push(t, None, Action::FreshInit, Some(reason), None);
            }
        }
    }
    b.finish(Strategy::Match, partial)
}

/// A source layer's ReLU (and bias) waiting for the batchnorm inserted after its target layer.
struct Deferred {
    layer: usize,
    /// The source's bias goes to the batchnorm's beta (the target layer has none).
    bias: bool,
}

fn plan_grow(source: &ModelSpec, target: &ModelSpec, partial: bool, seed: u64) -> Plan {
    let mut b = Builder::new(source, target);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x004E_324E);
    let mut j = 0;
    // Target channel/unit -> source channel/unit of the current activation.
    let mut channels: Vec<usize> = (0..source.input[2] as usize).collect();
    // The source's spatial grid where the activation was flattened, and the window of the
    // max-pools inserted since (the target's grid is the source's divided by it).
    let mut grid: Option<[u32; 2]> = None;
    let mut window = [1u32, 1];
    // Whether the current activation is non-negative (pixels are), so that an inserted ReLU is
    // the identity on it.
    let mut non_negative = true;
    let mut deferred: Option<Deferred> = None;
    let mut broken: Option<String> = (source.input[2] != target.input[2]).then(|| "input channels differ".to_string());
    if source.input[..2] != target.input[..2] && broken.is_none() {
        broken = Some("input size differs".into());
    }
    let mut after_fresh = false;
    for t in 0..target.layers.len() {
        let tk = &target.layers[t].kind;
        let name = &target.layers[t].name;
        let with_params = has_params(target, t);
        // Source layers without a counterpart (e.g. a removed dropout) are skipped.
        while j < source.layers.len() && matches!(source.layers[j].kind, LayerKind::Dropout(_)) && !matches!(tk, LayerKind::Dropout(_)) {
            j += 1;
        }
        let paired = j < source.layers.len() && same_but_width(tk, &source.layers[j].kind) && !inserted_before_its_match(source, target, t, j);
        // The source's ReLU moves past inserted layers only: a layer both models have (a
        // batchnorm) comes after it in the source and would come before it here.
        if deferred.is_some() && (paired || !matches!(tk, LayerKind::BatchNorm(_) | LayerKind::Activation(_))) {
            let d = deferred.take().expect("checked");
            broken = Some(format!("{}'s ReLU found no place before {name}", source.layers[d.layer].name));
        }
        if let Some(why) = &broken {
            let why = why.clone();
            b.push(t, None, if with_params { Action::FreshInit } else { Action::NoParameters }, with_params.then_some(why), None);
            // The layers after read the first fresh layer's output: that is their reason.
            if with_params && !after_fresh {
                after_fresh = true;
                broken = Some(format!("after {name}, which starts fresh"));
            }
            continue;
        }
        let moves_activation = !paired
            && j < source.layers.len()
            && tk.ops().same_but_activation(&source.layers[j].kind)
            && source.layers[j].kind.ops().activation() == Activation::Relu
            && tk.ops().activation() == Activation::Linear
            && matches!(target.layers.get(t + 1).map(|l| &l.kind), Some(LayerKind::BatchNorm(_)))
            && !inserted_before_its_match(source, target, t, j);
        if !paired && !moves_activation {
            // An inserted layer.
            let relu = tk.ops().activation() == Activation::Relu;
            // An inserted ReLU is the identity on a non-negative input, or where it takes over
            // the source's ReLU.
            let relu_ok = |deferred: &Option<Deferred>| !relu || non_negative || deferred.is_some();
            let negative = || format!("its input (from {}) can be negative, so a ReLU identity would not be exact", target.layers[t - 1].name);
            let fresh = |b: &mut Builder, why| b.push(t, None, if with_params { Action::FreshInit } else { Action::NoParameters }, Some(why), None);
            match tk.ops().inserted(target.input_of(t)) {
                Insertion::Conv { units } if relu_ok(&None) => {
                    let c = channels.len();
                    let inputs: Vec<usize> = (0..c).chain((c..units as usize).map(|_| rng.random_range(0..c))).collect();
                    let why = if inputs.len() > c { format!("inserted: starts as the identity, widened {c} -> {} (channels replicated)", inputs.len()) } else { "inserted: starts as the identity".into() };
                    channels = inputs.iter().map(|&i| channels[i]).collect();
                    b.push(t, None, Action::Identity, Some(why), Some(Recipe::Identity { inputs, bias: None }));
                }
                Insertion::Norm { center } if relu_ok(&deferred) && (center || !deferred.as_ref().is_some_and(|d| d.bias)) => {
                    let mut why = "inserted: the identity in inference mode".to_string();
                    let mut bias = None;
                    if let Some(d) = &mut deferred {
                        let taken = [(d.bias, "bias"), (relu, "ReLU")].iter().filter(|t| t.0).map(|t| t.1).collect::<Vec<_>>().join(" and ");
                        if !taken.is_empty() {
                            why += &format!(", with {}'s {taken}", source.layers[d.layer].name);
                        }
                        bias = d.bias.then(|| (d.layer, channels.clone()));
                        d.bias = false;
                    }
                    if relu {
                        deferred = None;
                    }
                    non_negative |= relu;
                    b.push(t, None, Action::Identity, Some(why), Some(Recipe::Identity { inputs: (0..channels.len()).collect(), bias }));
                }
                Insertion::Activation if relu_ok(&deferred) => {
                    deferred = None;
                    non_negative |= relu;
                    b.push(t, None, Action::NoParameters, Some("inserted: the identity".into()), None);
                }
                Insertion::Pool { window: w } => {
                    window = [window[0] * w[0], window[1] * w[1]];
                    b.approximate = true;
                    b.push(t, None, Action::NoParameters, Some("inserted: pooling is not the identity, so the growth is approximate".into()), None);
                }
                Insertion::Transparent => b.push(t, None, Action::NoParameters, Some("inserted".into()), None),
                Insertion::Conv { .. } | Insertion::Activation => {
                    broken = Some(format!("after {name} could not be grown"));
                    fresh(&mut b, negative());
                }
                Insertion::Norm { .. } => {
                    broken = Some(format!("after {name} could not be grown"));
                    fresh(&mut b, if relu_ok(&deferred) { "the source's bias has no beta to go to (center = false)".to_string() } else { negative() });
                }
                Insertion::NoIdentity(why) => {
                    let here = source.layers.get(j).map_or("end of model".into(), |l| l.name.clone());
                    broken = Some(format!("after the unmatched layer {name}"));
                    fresh(&mut b, why.map_or_else(|| format!("no counterpart in the source at this depth ({here})"), |why| format!("{why} (the source has {here} at this depth)")));
                }
            }
            continue;
        }
        let s = j;
        j += 1;
        let sk = &source.layers[s].kind;
        if let LayerKind::Flatten(_) = tk {
            if let (Shape::Image([h, w, _]), Shape::Image([th, tw, _])) = (source.input_of(s), target.input_of(t)) {
                // The pooled remap needs the target's grid to be the source's divided by the
                // inserted pools' window (a 'valid' or strided conv in between breaks that).
                if [h / window[0], w / window[1]] != [th, tw] {
                    broken = Some(format!("after {name}: the flattened grid {th}x{tw} is not the source's {h}x{w} pooled by {}x{}", window[0], window[1]));
                    b.push(t, Some(s), Action::NoParameters, None, None);
                    continue;
                }
                grid = Some([h, w]);
            }
        }
        if moves_activation {
            deferred = Some(Deferred { layer: s, bias: sk.ops().has_bias() && !tk.ops().has_bias() });
            non_negative = false;
        } else {
            non_negative = sk.ops().non_negative(non_negative);
        }
        if !with_params {
            b.push(t, Some(s), Action::NoParameters, None, None);
            continue;
        }
        let Some((nt, ns)) = units(tk).zip(units(sk)).map(|(a, b)| (a as usize, b as usize)) else {
            // A layer as wide as its input (batchnorm): its tensors follow the input's units,
            // after a flatten every (y, x, channel) feature of the source's grid.
            let features = match grid {
                None => channels.clone(),
                Some(_) if window != [1, 1] => {
                    broken = Some(format!("after {name}: its flattened features are pooled, with no exact map"));
                    b.push(t, Some(s), Action::FreshInit, Some("normalises flattened features of an inserted pool's output: no exact map".into()), None);
                    continue;
                }
                Some([h, w]) => {
                    let c = source.input_of(s).len() as usize / (h * w) as usize;
                    (0..(h * w) as usize).flat_map(|p| channels.iter().map(move |&k| p * c + k)).collect()
                }
            };
            let replicated = features.iter().enumerate().any(|(i, &c)| i != c);
            let (action, reason) = if replicated { (Action::Grown, Some("units replicated with its input's".into())) } else { (Action::Copied, None) };
            // A depthwise conv's m filters of channel c are its output units c * m + j.
            let m = (target.value_shape(t + 1).channels() / target.input_of(t).channels()) as usize;
            let outputs: Vec<usize> = features.iter().flat_map(|&f| (0..m).map(move |j| f * m + j)).collect();
            let input = if replicated { InputMap::Channels { channels: features, split: 0 } } else { InputMap::Same };
            if grid.is_none() {
                channels = outputs.clone();
            }
            b.push(t, Some(s), action, reason, Some(Recipe::Map { source_layer: s, units: outputs, input }));
            continue;
        };
        let is_head = t + 1 == target.layers.len();
        if nt < ns || (is_head && nt != ns) {
            let why = if is_head { format!("class count differs ({nt} vs {ns} outputs)") } else { format!("narrower ({nt} vs {ns} units): growth cannot shrink") };
            broken = Some(format!("after {name} could not be grown"));
            if partial {
                let recipe = Recipe::Map { source_layer: s, units: Vec::new(), input: InputMap::Same };
                b.push(t, Some(s), Action::Partial, Some(format!("{why}: overlapping slice copied")), Some(recipe));
            } else {
                b.push(t, Some(s), Action::FreshInit, Some(why), None);
            }
            continue;
        }
        let unit_map: Vec<usize> = (0..ns).chain((ns..nt).map(|_| rng.random_range(0..ns))).collect();
        let replicated = channels.iter().enumerate().any(|(i, &c)| i != c);
        let split = rng.random();
        let input = match grid.take() {
            Some(source_grid) => InputMap::Pooled { source_grid, window, channels: channels.clone(), split },
            None if replicated => InputMap::Channels { channels: channels.clone(), split },
            None => InputMap::Same,
        };
        let (action, mut reason) = if window != [1, 1] && matches!(input, InputMap::Pooled { .. }) {
            (Action::Remapped, Some(format!("kernel summed over each {}x{} pooled window (approximate)", window[0], window[1])))
        } else if nt > ns {
            (Action::Grown, Some(format!("widened {ns} -> {nt} (units replicated{})", if replicated { ", inputs shared" } else { "" })))
        } else if replicated {
            (Action::Grown, Some("inputs from replicated units shared".into()))
        } else {
            (Action::Copied, None)
        };
        if moves_activation {
            let next = &target.layers[t + 1].name;
            let moved = if sk.ops().has_bias() && !tk.ops().has_bias() { "ReLU and bias move" } else { "ReLU moves" };
            reason = Some(reason.map_or(String::new(), |r| r + "; ") + &format!("its {moved} to {next}"));
        }
        if matches!(input, InputMap::Pooled { .. }) {
            window = [1, 1];
        }
        channels = unit_map.clone();
        b.push(t, Some(s), action, reason, Some(Recipe::Map { source_layer: s, units: unit_map, input }));
    }
    b.finish(Strategy::Grow, partial)
}

/// Target tensors (in the target spec's parameter order) from the source's, following `plan`;
/// layers that receive nothing keep `init` (the target's seeded initialisation).
pub fn apply(plan: &Plan, source: &ModelSpec, source_params: &[Vec<f32>], target: &ModelSpec, init: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
    map_tensors(plan, source, source_params, target, init, Values::Weights)
}

/// What [`map_tensors`] moves: weights, or an optimizer moment of power p (1: the first
/// moment, 2: Adam's second), which follows its weight's map with every share raised to p (a
/// moment scales with the gradient, and a weight's gradient with the weights it is shared
/// with) and stays zero where a layer starts as the identity; a bias that moves to a
/// batchnorm's beta takes its moments along.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Values {
    Weights,
    Moment(i32),
}

fn map_tensors(plan: &Plan, source: &ModelSpec, source_params: &[Vec<f32>], target: &ModelSpec, mut init: Vec<Vec<f32>>, values: Values) -> Vec<Vec<f32>> {
    let power = match values {
        Values::Weights => 1,
        Values::Moment(p) => p,
    };
    let (src_infos, tgt_infos) = (source.params(), target.params());
    let tensors = |infos: &[ParamInfo], layer: usize| (0..infos.len()).filter(|&i| infos[i].layer == layer).collect::<Vec<_>>();
    for (t, lp) in plan.layers.iter().enumerate() {
        if matches!(lp.action, Action::NoParameters | Action::FreshInit | Action::InBlock) {
            continue;
        }
        let targets = tensors(&tgt_infos, t);
        match lp.recipe.as_ref().expect("moving actions carry a recipe") {
            Recipe::Identity { inputs, bias } => {
                for &i in &targets {
                    let info = &tgt_infos[i];
                    init[i].fill(0.0);
                    match (info.role, info.suffix) {
                        (Role::Kernel | Role::Depthwise, _) | (_, "gamma" | "moving_variance") if values != Values::Weights => {}
                        // The centre tap maps input channel inputs[o] to output o.
                        (Role::Kernel, _) => {
                            let (kh, kw, c, n) = (info.shape[0] as usize, info.shape[1] as usize, info.shape[2] as usize, info.shape[3] as usize);
                            inputs.iter().enumerate().for_each(|(o, &ch)| init[i][((kh / 2 * kw + kw / 2) * c + ch) * n + o] = 1.0);
                        }
                        // A depthwise kernel (multiplier 1): every channel's centre tap.
                        (Role::Depthwise, _) => {
                            let (kh, kw, c) = (info.shape[0] as usize, info.shape[1] as usize, info.shape[2] as usize);
                            init[i][(kh / 2 * kw + kw / 2) * c..][..c].fill(1.0);
                        }
                        (_, "gamma") => init[i].fill(1.0),
                        (_, "moving_variance") => {
                            let LayerKind::BatchNorm(bn) = &target.layers[t].kind else { unreachable!("batchnorm tensors") };
                            init[i].fill(1.0 - bn.epsilon);
                        }
                        (_, "beta") => {
                            if let Some((layer, map)) = bias {
                                let si = src_infos.iter().position(|p| p.layer == *layer && p.suffix == "bias").expect("a source bias");
                                map.iter().enumerate().for_each(|(c, &u)| init[i][c] = source_params[si][u]);
                            }
                        }
                        _ => {}
                    }
                }
            }
            // gamma and beta zero; the moving statistics keep their initial 0 and 1.
            Recipe::Zero => targets.iter().filter(|&&i| matches!(tgt_infos[i].suffix, "gamma" | "beta")).for_each(|&i| init[i].fill(0.0)),
            Recipe::Map { source_layer, units, input } => {
                // Same kind up to width (or activation and bias): the kernel first, then the
                // per-unit tensors in the same order.
                for (&ti, si) in targets.iter().zip(tensors(&src_infos, *source_layer)) {
                    let (src, ss, ts) = (&source_params[si], &src_infos[si].shape, &tgt_infos[ti].shape);
                    if src_infos[si].suffix != tgt_infos[ti].suffix {
                        continue;
                    }
                    match (lp.action, tgt_infos[ti].role) {
                        (Action::Partial, _) => copy_overlap(&mut init[ti], ts, src, ss),
                        (_, Role::PerUnit) => units.iter().enumerate().for_each(|(o, &so)| init[ti][o] = src[so]),
                        (_, Role::Kernel) => map_kernel(&mut init[ti], ts, src, ss, units, input, power),
                        (_, Role::Depthwise) => map_depthwise(&mut init[ti], ts, src, ss, input),
                    }
                }
            }
        }
    }
    init
}

/// A kernel [..., in, out] whose output units and input rows follow `recipe` (Net2Net: the
/// weights from a replicated unit shared among its replicas; each share raised to `power`).
fn map_kernel(dst: &mut [f32], ts: &[u32], src: &[f32], ss: &[u32], units: &[usize], input: &InputMap, power: i32) {
    let (t_in, t_out) = (ts[ts.len() - 2] as usize, ts[ts.len() - 1] as usize);
    let (s_in, s_out) = (ss[ss.len() - 2] as usize, ss[ss.len() - 1] as usize);
    let taps = ts[..ts.len() - 2].iter().product::<u32>() as usize;
    match input {
        InputMap::Same | InputMap::Channels { .. } => {
            let (in_map, split): (Vec<usize>, u64) = match input {
                InputMap::Channels { channels, split } => (channels.clone(), *split),
                _ => ((0..t_in).collect(), 0),
            };
            // A separable conv's pointwise kernel reads each input channel's m depthwise filters.
            let m = t_in / in_map.len();
            let in_map: Vec<usize> = in_map.iter().flat_map(|&c| (0..m).map(move |j| c * m + j)).collect();
            let share: Vec<f32> = shares(&in_map, t_out, split).into_iter().map(|x| x.powi(power)).collect();
            for tap in 0..taps {
                for (i, &si) in in_map.iter().enumerate() {
                    for (o, &so) in units.iter().enumerate() {
                        dst[(tap * t_in + i) * t_out + o] = src[(tap * s_in + si) * s_out + so] * share[i * t_out + o];
                    }
                }
            }
        }
        InputMap::Pooled { source_grid, window, channels, split } => {
            let share: Vec<f32> = shares(channels, t_out, *split).into_iter().map(|x| x.powi(power)).collect();
            let c_t = channels.len();
            let c_s = s_in / (source_grid[0] * source_grid[1]) as usize;
            let (gh, gw) = (source_grid[0] as usize / window[0] as usize, source_grid[1] as usize / window[1] as usize);
            for y in 0..gh {
                for x in 0..gw {
                    for (c, &sc) in channels.iter().enumerate() {
                        let row_t = (y * gw + x) * c_t + c;
                        for (o, &so) in units.iter().enumerate() {
                            let mut sum = 0.0;
                            for dy in 0..window[0] as usize {
                                for dx in 0..window[1] as usize {
                                    let row_s = ((y * window[0] as usize + dy) * source_grid[1] as usize + x * window[1] as usize + dx) * c_s + sc;
                                    sum += src[row_s * s_out + so];
                                }
                            }
                            dst[row_t * t_out + o] = sum * share[c * t_out + o];
                        }
                    }
                }
            }
        }
    }
}

/// A depthwise kernel [taps..., channels, m] whose channels follow the input's map, each
/// replica taking its channel's filters whole (a depthwise conv reads no other channel, so
/// nothing is shared).
fn map_depthwise(dst: &mut [f32], ts: &[u32], src: &[f32], ss: &[u32], input: &InputMap) {
    let n = ts.len();
    let (t_c, s_c, m) = (ts[n - 2] as usize, ss[n - 2] as usize, ts[n - 1] as usize);
    let in_map: Vec<usize> = match input {
        InputMap::Channels { channels, .. } => channels.clone(),
        _ => (0..t_c).collect(),
    };
    for tap in 0..ts[..n - 2].iter().product::<u32>() as usize {
        for (c, &sc) in in_map.iter().enumerate() {
            dst[(tap * t_c + c) * m..][..m].copy_from_slice(&src[(tap * s_c + sc) * m..][..m]);
        }
    }
}

/// Input i's share of its source input's weight to each of `outputs` units ([i * outputs + o]),
/// for inputs replicating source inputs as `map` says: 1 for an input with no replicas; over a
/// replica group, random shares (drawn from `split`) that sum to 1, so the function is the same.
/// Net2Net's equal shares would keep the replicas identical through training (their gradients
/// stay equal, as measured on a grown Model 3); unequal ones break the symmetry exactly, where
/// Net2Net adds noise.
fn shares(map: &[usize], outputs: usize, split: u64) -> Vec<f32> {
    let mut groups = vec![Vec::new(); map.iter().max().map_or(0, |m| m + 1)];
    map.iter().enumerate().for_each(|(i, &s)| groups[s].push(i));
    let mut rng = StdRng::seed_from_u64(split);
    let mut share = vec![1f32; map.len() * outputs];
    for group in groups.iter().filter(|g| g.len() > 1) {
        for o in 0..outputs {
            let draws: Vec<f32> = group.iter().map(|_| rng.random_range(0.5..1.5)).collect();
            let total: f32 = draws.iter().sum();
            group.iter().zip(&draws).for_each(|(&i, d)| share[i * outputs + o] = d / total);
        }
    }
    share
}

/// Copies the overlapping block of two row-major tensors of the same rank.
fn copy_overlap(dst: &mut [f32], dst_shape: &[u32], src: &[f32], src_shape: &[u32]) {
    let overlap: Vec<usize> = dst_shape.iter().zip(src_shape).map(|(a, b)| (*a.min(b)) as usize).collect();
    let total: usize = overlap.iter().product();
    let strides = |shape: &[u32]| -> Vec<usize> {
        let mut s = vec![1; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * shape[i + 1] as usize;
        }
        s
    };
    let (ds, ss) = (strides(dst_shape), strides(src_shape));
    for flat in 0..total {
        let (mut rem, mut di, mut si) = (flat, 0, 0);
        for axis in (0..overlap.len()).rev() {
            let idx = rem % overlap[axis];
            rem /= overlap[axis];
            di += idx * ds[axis];
            si += idx * ss[axis];
        }
        dst[di] = src[si];
    }
}

/// What a transfer's provenance says happened to each target layer.
pub fn layer_actions(provenance: &serde_json::Value) -> Vec<(String, Action)> {
    let layers: Vec<LayerPlan> = provenance.get("layers").and_then(|l| serde_json::from_value(l.clone()).ok()).unwrap_or_default();
    layers.into_iter().map(|l| (l.target, l.action)).collect()
}

/// Transfers `source` into the layout `target` (initialised from `seed` where nothing moves):
/// the plan and the new checkpoint, which records its provenance.
pub fn transfer(source: &Checkpoint, source_path: &Path, target: &ModelSpec, seed: u64, lr: f32, strategy: Strategy, partial: bool) -> (Plan, Checkpoint) {
    let plan = plan(&source.model, target, strategy, partial, seed);
    let params = apply(&plan, &source.model, &source.params, target, crate::network::initial_params(target, seed));
    let classes = if target.classes() as usize == source.classes.len() {
        source.classes.clone()
    } else {
        (0..target.classes()).map(|i| format!("class_{i}")).collect()
    };
    let provenance = serde_json::json!({
        "source": source_path.display().to_string(),
        "source_model": source.model,
        "strategy": plan.strategy,
        "partial": plan.partial,
        "fraction_transferred": plan.fraction(),
        "function_preserving": plan.function_preserving,
        "layers": plan.layers,
    });
    let state = TrainState { lr, seed, ..Default::default() };
    let ckpt = Checkpoint { model: target.clone(), classes, params, optimizer: None, state, provenance: Some(provenance) };
    (plan, ckpt)
}

/// `ckpt`'s model grown into `target` as one training run goes on ([[grow]]): the weights as
/// `transfer --strategy grow` moves them, and the optimizer's state carried ([`Values`]):
/// moments of copied tensors unchanged, of shared ones times the share (the second moment
/// times its square), zero for new tensors; the step count (bias correction) keeps counting.
/// `blocks` says how inserted residual blocks start.
pub fn grow_checkpoint(ckpt: &Checkpoint, target: &ModelSpec, seed: u64, blocks: NewBlocks) -> (Plan, Checkpoint) {
    let mut plan = plan(&ckpt.model, target, Strategy::Grow, false, seed);
    if blocks == NewBlocks::Fresh {
        for l in plan.layers.iter_mut().filter(|l| l.recipe == Some(Recipe::Zero)) {
            (l.action, l.recipe) = (Action::FreshInit, None);
            l.reason = Some("inserted: the block's last batchnorm as initialised (gamma = 1), so the block adds its fresh output".into());
            plan.function_preserving = false;
        }
    }
    let params = apply(&plan, &ckpt.model, &ckpt.params, target, crate::network::initial_params(target, seed));
    let optimizer = ckpt.optimizer.as_ref().map(|o| {
        let (src, tgt) = (ckpt.model.params(), target.params());
        // Moments exist for trainable tensors only: zeros stand in for the others.
        let carry = |moments: &[Vec<f32>], power| {
            let mut given = moments.iter();
            let full: Vec<Vec<f32>> = src.iter().map(|p| if p.trainable { given.next().expect("a moment per trainable tensor").clone() } else { vec![0.0; p.len() as usize] }).collect();
            let zeros = tgt.iter().map(|p| vec![0.0; p.len() as usize]).collect();
            let mapped = map_tensors(&plan, &ckpt.model, &full, target, zeros, Values::Moment(power));
            mapped.into_iter().zip(&tgt).filter(|(_, p)| p.trainable).map(|(m, _)| m).collect()
        };
        // SGD keeps no second moment.
        let v = if o.v.is_empty() { Vec::new() } else { carry(&o.v, 2) };
        Optimizer { config: o.config.clone(), t: o.t, m: carry(&o.m, 1), v }
    });
    let ckpt = Checkpoint { model: target.clone(), classes: ckpt.classes.clone(), params, optimizer, state: ckpt.state.clone(), provenance: None };
    (plan, ckpt)
}
