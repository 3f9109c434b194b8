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
//!
//! `partial` copies the overlapping slice where unit or channel counts differ.

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use std::path::Path;

use crate::checkpoint::{Checkpoint, TrainState};
use crate::layers::{Activation, LayerKind, Padding, Role};
use crate::model::{ModelSpec, ParamInfo, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Prefix,
    Match,
    Grow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Same shape, values copied.
    Copied,
    /// Net2Net: units replicated, outgoing weights divided (function-preserving).
    Grown,
    /// Inserted conv initialised as the identity (function-preserving).
    Identity,
    /// Re-indexed onto another spatial grid (approximate).
    Remapped,
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
    /// Target input channel c replicates source channel map[c] (divide by its replica count).
    Channels(Vec<usize>),
    /// Dense after flatten: input rows are (h, w, c) of the source's `source_grid`, pooled by
    /// `window` ([1, 1] when no max-pool was inserted) in the target, with target channel c
    /// replicating source channel channels[c].
    Pooled { source_grid: [u32; 2], window: [u32; 2], channels: Vec<usize> },
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
    /// Source layer index, target output-unit map and input map (for apply).
    #[serde(skip)]
    pub recipe: Option<Recipe>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    pub source_layer: usize,
    /// Target output unit -> source output unit.
    pub units: Vec<usize>,
    pub input: InputMap,
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
        let mut out = format!("{:<18} {:<16} {:<16} {:>11}  reason\n", "target layer", "source layer", "action", "params");
        for l in &self.layers {
            let target = format!("{} ({})", l.target, l.class);
            out += &format!(
                "{:<18} {:<16} {:<16} {:>11}  {}\n",
                if target.len() > 18 { l.target.clone() } else { target },
                l.source.as_deref().unwrap_or("-"),
                l.action.label(),
                if l.params == 0 { "-".into() } else { thousands(l.params) },
                l.reason.as_deref().unwrap_or("")
            );
        }
        out += &format!("{} of {} parameters ({:.1}%) came from the source", thousands(self.moved), thousands(self.total), 100.0 * self.fraction());
        if !self.unused.is_empty() {
            out += &format!("; unused source layers: {}", self.unused.join(", "));
        }
        out += if self.function_preserving { "; the new model computes the same function as the source\n" } else { "\n" };
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

struct Builder<'a> {
    source: &'a ModelSpec,
    target: &'a ModelSpec,
    layers: Vec<LayerPlan>,
    used: Vec<bool>,
}

impl<'a> Builder<'a> {
    fn new(source: &'a ModelSpec, target: &'a ModelSpec) -> Self {
        Self { source, target, layers: Vec::new(), used: vec![false; source.layers.len()] }
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
            let width = self.target.input_of(t).channels();
            let recipe = Recipe { source_layer: s, units: (0..units(&self.target.layers[t].kind).unwrap_or(width) as usize).collect(), input: InputMap::Same };
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
            let recipe = Recipe { source_layer: s, units: Vec::new(), input: InputMap::Same };
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
            && self.layers.iter().all(|l| matches!(l.action, Action::Copied | Action::Grown | Action::Identity | Action::NoParameters));
        Plan { strategy, partial, layers: self.layers, unused, moved, total, function_preserving }
    }
}

/// Plans how `source`'s parameters move into `target`.
pub fn plan(source: &ModelSpec, target: &ModelSpec, strategy: Strategy, partial: bool) -> Plan {
    match strategy {
        Strategy::Prefix => plan_prefix(source, target, partial),
        Strategy::Match => plan_match(source, target, partial),
        Strategy::Grow => plan_grow(source, target, partial),
    }
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

/// Can this inserted conv start as the identity? (ReLU-safe: its input is non-negative when the
/// layer before ends in ReLU or a max-pool of ReLU outputs.)
fn identity_conv(kind: &LayerKind, input: Shape) -> Result<(), String> {
    match (kind, input) {
        (LayerKind::Conv2d(conv), Shape::Image([_, _, c])) => {
            let (filters, kernel) = (conv.filters, conv.kernel.0);
            if filters != c {
                Err(format!("an inserted conv needs as many filters as input channels ({filters} vs {c}) to start as the identity"))
            } else if kernel[0] % 2 == 0 || kernel[1] % 2 == 0 || conv.stride != 1 || conv.padding != Padding::Same {
                Err("an inserted conv needs an odd kernel, stride 1 and 'same' padding to start as the identity".into())
            } else if !matches!(conv.activation, Activation::Relu | Activation::Linear) {
                Err("unsupported activation".into())
            } else {
                Ok(())
            }
        }
        _ => Err("not a conv layer".into()),
    }
}

/// An identity conv followed by ReLU is exact only on non-negative inputs: the model's input
/// (pixels in [0, 1]) or the output of a ReLU, possibly through pools and dropouts.
fn non_negative_input(spec: &ModelSpec, t: usize) -> Result<(), String> {
    for layer in spec.layers[..t].iter().rev() {
        let ops = layer.kind.ops();
        if ops.non_negative(false) {
            return Ok(());
        }
        if !ops.non_negative(true) {
            return Err(format!("its input (from {}) can be negative, so a ReLU identity would not be exact", layer.name));
        }
    }
    Ok(())
}

fn plan_grow(source: &ModelSpec, target: &ModelSpec, partial: bool) -> Plan {
    let mut b = Builder::new(source, target);
    let mut rng = StdRng::seed_from_u64(0x004E_324E);
    let mut j = 0;
    // Target channel/unit -> source channel/unit of the current activation.
    let mut channels: Vec<usize> = (0..source.input[2] as usize).collect();
    // The source's spatial grid where the activation was flattened, and the window of the
    // max-pools inserted since (the target's grid is the source's divided by it).
    let mut grid: Option<[u32; 2]> = None;
    let mut window = [1u32, 1];
    let mut broken: Option<String> = (source.input[2] != target.input[2]).then(|| "input channels differ".to_string());
    if source.input[..2] != target.input[..2] && broken.is_none() {
        broken = Some("input size differs".into());
    }
    for t in 0..target.layers.len() {
        let tk = &target.layers[t].kind;
        let with_params = has_params(target, t);
        // Source layers without a counterpart (e.g. a removed dropout) are skipped.
        while j < source.layers.len() && matches!(source.layers[j].kind, LayerKind::Dropout(_)) && !matches!(tk, LayerKind::Dropout(_)) {
            j += 1;
        }
        if let Some(why) = &broken {
            let why = why.clone();
            b.push(t, None, if with_params { Action::FreshInit } else { Action::NoParameters }, with_params.then_some(why), None);
            continue;
        }
        if !(j < source.layers.len() && same_but_width(tk, &source.layers[j].kind)) {
            // An inserted layer.
            match tk {
                LayerKind::Conv2d(_) => match identity_conv(tk, target.input_of(t)).and_then(|()| non_negative_input(target, t)) {
                    Ok(()) => b.push(t, None, Action::Identity, Some("inserted: starts as the identity".into()), None),
                    Err(why) => {
                        broken = Some(format!("after {} could not be grown", target.layers[t].name));
                        b.push(t, None, Action::FreshInit, Some(why), None);
                    }
                },
                LayerKind::MaxPool2d(m) if m.stride.unwrap_or(m.pool) == m.pool => {
                    window = [window[0] * m.pool.0[0], window[1] * m.pool.0[1]];
                    b.push(t, None, Action::NoParameters, Some("inserted".into()), None);
                }
                LayerKind::Dropout(_) => b.push(t, None, Action::NoParameters, Some("inserted".into()), None),
                _ => {
                    broken = Some(format!("after the unmatched layer {}", target.layers[t].name));
                    let why = format!("no counterpart in the source at this depth ({})", source.layers.get(j).map_or("end of model".into(), |l| l.name.clone()));
                    b.push(t, None, if with_params { Action::FreshInit } else { Action::NoParameters }, Some(why), None);
                }
            }
            continue;
        }
        let s = j;
        j += 1;
        if let LayerKind::Flatten(_) = tk {
            if let (Shape::Image([h, w, _]), Shape::Image([th, tw, _])) = (source.input_of(s), target.input_of(t)) {
                // The pooled remap needs the target's grid to be the source's divided by the
                // inserted pools' window (a 'valid' or strided conv in between breaks that).
                if [h / window[0], w / window[1]] != [th, tw] {
                    broken = Some(format!("after {}: the flattened grid {th}x{tw} is not the source's {h}x{w} pooled by {}x{}", target.layers[t].name, window[0], window[1]));
                    b.push(t, Some(s), Action::NoParameters, None, None);
                    continue;
                }
                grid = Some([h, w]);
            }
        }
        if !with_params {
            b.push(t, Some(s), Action::NoParameters, None, None);
            continue;
        }
        let Some((nt, ns)) = units(tk).zip(units(&source.layers[s].kind)).map(|(a, b)| (a as usize, b as usize)) else {
            // A layer as wide as its input (batchnorm): its tensors follow the input's units.
            let replicated = channels.iter().enumerate().any(|(i, &c)| i != c);
            let (action, reason) = if replicated { (Action::Grown, Some("units replicated with its input's".into())) } else { (Action::Copied, None) };
            b.push(t, Some(s), action, reason, Some(Recipe { source_layer: s, units: channels.clone(), input: InputMap::Same }));
            continue;
        };
        let is_head = t + 1 == target.layers.len();
        if nt < ns || (is_head && nt != ns) {
            let why = if is_head { format!("class count differs ({nt} vs {ns} outputs)") } else { format!("narrower ({nt} vs {ns} units): growth cannot shrink") };
            broken = Some(format!("after {} could not be grown", target.layers[t].name));
            if partial {
                let recipe = Recipe { source_layer: s, units: Vec::new(), input: InputMap::Same };
                b.push(t, Some(s), Action::Partial, Some(format!("{why}: overlapping slice copied")), Some(recipe));
            } else {
                b.push(t, Some(s), Action::FreshInit, Some(why), None);
            }
            continue;
        }
        let unit_map: Vec<usize> = (0..ns).chain((ns..nt).map(|_| rng.random_range(0..ns))).collect();
        let replicated = channels.iter().enumerate().any(|(i, &c)| i != c);
        let input = match grid.take() {
            Some(source_grid) => InputMap::Pooled { source_grid, window, channels: channels.clone() },
            None if replicated => InputMap::Channels(channels.clone()),
            None => InputMap::Same,
        };
        let (action, reason) = if window != [1, 1] && matches!(input, InputMap::Pooled { .. }) {
            (Action::Remapped, Some(format!("kernel summed over each {}x{} pooled window (approximate)", window[0], window[1])))
        } else if nt > ns {
            (Action::Grown, Some(format!("widened {ns} -> {nt} (units replicated{})", if replicated { ", inputs divided" } else { "" })))
        } else if replicated {
            (Action::Grown, Some("inputs from replicated units divided".into()))
        } else {
            (Action::Copied, None)
        };
        if matches!(input, InputMap::Pooled { .. }) {
            window = [1, 1];
        }
        channels = unit_map.clone();
        b.push(t, Some(s), action, reason, Some(Recipe { source_layer: s, units: unit_map, input }));
    }
    b.finish(Strategy::Grow, partial)
}

/// Target tensors (in the target spec's parameter order) from the source's, following `plan`;
/// layers that receive nothing keep `init` (the target's seeded initialisation).
pub fn apply(plan: &Plan, source: &ModelSpec, source_params: &[Vec<f32>], target: &ModelSpec, mut init: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
    let (src_infos, tgt_infos) = (source.params(), target.params());
    let tensors = |infos: &[ParamInfo], layer: usize| (0..infos.len()).filter(|&i| infos[i].layer == layer).collect::<Vec<_>>();
    for (t, lp) in plan.layers.iter().enumerate() {
        if matches!(lp.action, Action::NoParameters | Action::FreshInit) {
            continue;
        }
        let targets = tensors(&tgt_infos, t);
        if lp.action == Action::Identity {
            for &i in &targets {
                init[i].fill(0.0);
                if tgt_infos[i].role == Role::Kernel {
                    // The centre tap maps channel c to c.
                    let shape = &tgt_infos[i].shape;
                    let (kh, kw, c) = (shape[0] as usize, shape[1] as usize, shape[2] as usize);
                    (0..c).for_each(|ch| init[i][((kh / 2 * kw + kw / 2) * c + ch) * c + ch] = 1.0);
                }
            }
            continue;
        }
        let recipe = lp.recipe.as_ref().expect("moving actions carry a recipe");
        // Same kind and settings, so the same tensors in the same order.
        for (&ti, si) in targets.iter().zip(tensors(&src_infos, recipe.source_layer)) {
            let (src, ss, ts) = (&source_params[si], &src_infos[si].shape, &tgt_infos[ti].shape);
            match (lp.action, tgt_infos[ti].role) {
                (Action::Partial, _) => copy_overlap(&mut init[ti], ts, src, ss),
                (_, Role::PerUnit) => recipe.units.iter().enumerate().for_each(|(o, &so)| init[ti][o] = src[so]),
                (_, Role::Kernel) => map_kernel(&mut init[ti], ts, src, ss, recipe),
            }
        }
    }
    init
}

/// A kernel [..., in, out] whose output units and input rows follow `recipe` (Net2Net: inputs
/// from replicated units divided by their replica count).
fn map_kernel(dst: &mut [f32], ts: &[u32], src: &[f32], ss: &[u32], recipe: &Recipe) {
    let (t_in, t_out) = (ts[ts.len() - 2] as usize, ts[ts.len() - 1] as usize);
    let (s_in, s_out) = (ss[ss.len() - 2] as usize, ss[ss.len() - 1] as usize);
    let taps = ts[..ts.len() - 2].iter().product::<u32>() as usize;
    let replicas = |map: &[usize]| {
        let mut n = vec![0f32; map.iter().max().map_or(0, |m| m + 1)];
        map.iter().for_each(|&c| n[c] += 1.0);
        n
    };
    match &recipe.input {
        InputMap::Same | InputMap::Channels(_) => {
            let in_map: Vec<usize> = match &recipe.input {
                InputMap::Channels(m) => m.clone(),
                _ => (0..t_in).collect(),
            };
            let count = replicas(&in_map);
            for tap in 0..taps {
                for (i, &si) in in_map.iter().enumerate() {
                    for (o, &so) in recipe.units.iter().enumerate() {
                        dst[(tap * t_in + i) * t_out + o] = src[(tap * s_in + si) * s_out + so] / count[si];
                    }
                }
            }
        }
        InputMap::Pooled { source_grid, window, channels } => {
            let count = replicas(channels);
            let c_t = channels.len();
            let c_s = s_in / (source_grid[0] * source_grid[1]) as usize;
            let (gh, gw) = (source_grid[0] as usize / window[0] as usize, source_grid[1] as usize / window[1] as usize);
            for y in 0..gh {
                for x in 0..gw {
                    for (c, &sc) in channels.iter().enumerate() {
                        let row_t = (y * gw + x) * c_t + c;
                        for (o, &so) in recipe.units.iter().enumerate() {
                            let mut sum = 0.0;
                            for dy in 0..window[0] as usize {
                                for dx in 0..window[1] as usize {
                                    let row_s = ((y * window[0] as usize + dy) * source_grid[1] as usize + x * window[1] as usize + dx) * c_s + sc;
                                    sum += src[row_s * s_out + so];
                                }
                            }
                            dst[row_t * t_out + o] = sum / count[sc];
                        }
                    }
                }
            }
        }
    }
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

/// The layers a transfer's provenance says were copied unchanged.
pub fn copied_layers(provenance: &serde_json::Value) -> Vec<String> {
    let layers: Vec<LayerPlan> = provenance.get("layers").and_then(|l| serde_json::from_value(l.clone()).ok()).unwrap_or_default();
    layers.into_iter().filter(|l| l.action == Action::Copied).map(|l| l.target).collect()
}

/// Transfers `source` into the layout `target` (initialised from `seed` where nothing moves):
/// the plan and the new checkpoint, which records its provenance.
pub fn transfer(source: &Checkpoint, source_path: &Path, target: &ModelSpec, seed: u64, lr: f32, strategy: Strategy, partial: bool) -> (Plan, Checkpoint) {
    let plan = plan(&source.model, target, strategy, partial);
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
