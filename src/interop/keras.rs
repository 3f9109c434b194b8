//! `gpu-cnn import keras`: weights saved by Keras into HDF5, into a config's layout. Keras'
//! layouts are gpu-cnn's (conv kernel [kh, kw, in, out], dense [in, out], batchnorm gamma,
//! beta, moving mean, moving variance), so tensors are copied as they are.
//!
//! Files read:
//! - Keras 2 `save_weights("x.h5")` and `model.save("x.h5")` (Keras 3 writes the same "legacy"
//!   files): the attribute `layer_names` (at the root or in `model_weights/`) lists the layers
//!   in order, each group's `weight_names` its tensors; `model.save` adds each layer's class in
//!   the `model_config` attribute.
//! - Keras 3 `.weights.h5`, alone or inside a `.keras` archive: `layers/<path>/vars/0, 1, ...`,
//!   where `<path>` is made from the layer's class in creation order (`conv2d`, `conv2d_1`,
//!   `dense`, ...) and the layer's own name is the `vars` group's `name` attribute.
//!
//! Matching: by name when every Keras layer with weights has a config layer of its name (a
//! partial match is not trusted: Keras 3 names `conv2d_1` its second conv, gpu-cnn its first);
//! otherwise by order, which is, as Keras loads them, the order among layers with weights in a
//! legacy file, and the position among layers of the same class for Keras 3 paths.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use hdf5_reader::group::Group;
use hdf5_reader::Hdf5File;
use thiserror::Error;

use crate::checkpoint::Checkpoint;
use crate::record::TrainState;
use crate::config::Config;
use crate::layers::{Activation, LayerKind, Padding};
use crate::model::ModelSpec;
use crate::transfer::{Action, LayerPlan, Plan, Strategy};

#[derive(Debug, Error)]
pub enum KerasError {
    #[error("{0}: cannot read: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: is a TensorFlow SavedModel folder, which gpu-cnn cannot read; in Keras, save the weights with model.save_weights(\"model.weights.h5\") (Keras 3) or model.save(\"model.h5\"), and import that file")]
    SavedModel(PathBuf),
    #[error("{0}: is a folder, not a Keras weights file (.h5, .weights.h5 or .keras)")]
    Folder(PathBuf),
    #[error("{0}: not an HDF5 file or a .keras archive; gpu-cnn imports Keras weights saved as .h5, .weights.h5 or .keras")]
    NotHdf5(PathBuf),
    #[error("{0}: {1}")]
    Format(PathBuf, String),
    #[error("{0}: holds weights only, not the model (saved by save_weights): pass --config with a gpu-cnn config of the model's layout")]
    NoModel(PathBuf),
    #[error("--classes: {0}")]
    Classes(String),
    #[error("{path}: Keras layer '{layer}' is a {class}, but the config's {target} is a {target_class}; gpu-cnn takes the weights of Conv2D, DepthwiseConv2D, SeparableConv2D, Dense and BatchNormalization layers")]
    LayerType { path: PathBuf, layer: String, class: String, target: String, target_class: String },
    #[error("{path}: Keras layer '{layer}' is a {class}, which the config has no layer of; gpu-cnn takes the weights of Conv2D, DepthwiseConv2D, SeparableConv2D, Dense and BatchNormalization layers")]
    Unsupported { path: PathBuf, layer: String, class: String },
    #[error("{path}: Keras layer '{layer}' does not fit the config's {target}: {detail}; import into a config of the file's own layout, then use `gpu-cnn transfer`")]
    Shape { path: PathBuf, layer: String, target: String, detail: String },
    #[error("{path}: Keras layer '{layer}' computes otherwise than the config's {target}: {detail}; set the config to match the Keras model")]
    Settings { path: PathBuf, layer: String, target: String, detail: String },
}

/// Which Keras wrote the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Keras 2 `.h5` (also Keras 3's legacy `model.save("x.h5")`).
    Legacy,
    /// Keras 3 `.weights.h5`.
    Keras3,
    /// Keras 3 `.keras` archive (its `model.weights.h5`).
    Archive,
}

impl Format {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Legacy => "Keras 2 / legacy HDF5",
            Self::Keras3 => "Keras 3 .weights.h5",
            Self::Archive => "Keras 3 .keras archive",
        }
    }
}

/// What a file says a layer is.
#[derive(Debug, Clone, PartialEq)]
enum Class {
    /// Keras' class name (`Conv2D`), from a legacy file's model config.
    Keras(String),
    /// The class's snake-case stem (`conv2d`), from a Keras 3 path.
    Stem(String),
    /// A legacy file without a model config (`save_weights`).
    Unknown,
}

#[derive(Debug, Clone)]
pub struct Weight {
    /// `kernel`, `gamma`, ... in legacy files; `0`, `1`, ... in Keras 3 files.
    pub name: String,
    pub shape: Vec<u32>,
    pub data: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct KerasLayer {
    pub name: String,
    /// Where Keras 3 stores it (`conv2d_1`); the name in legacy files.
    path: String,
    class: Class,
    pub weights: Vec<Weight>,
    /// Its settings, where the file records the model (`model.save`, `.keras`).
    settings: Option<Settings>,
}

/// A layer's Keras config, and the activation of an `Activation`, `ReLU`, `LeakyReLU` or `ELU`
/// layer right after it (which gpu-cnn fuses into the layer).
#[derive(Debug, Clone)]
struct Settings {
    config: serde_json::Value,
    then: Option<String>,
}

/// A layer of a Keras model config.
#[derive(Debug, Clone)]
struct ConfigLayer {
    name: String,
    /// Its Keras 3 weight path: the class's snake-case stem, numbered from the second.
    path: String,
    /// Keras' class name (`Conv2D`).
    class: String,
    settings: Settings,
}

/// The layers of a Keras model config (`{"config": {"layers": [...]}}`) with their settings.
fn model_layers(model: &serde_json::Value) -> Vec<ConfigLayer> {
    // Keras 2's early Sequential configs are the list of layers itself.
    let layers = model["config"]["layers"].as_array().or(model["config"].as_array()).cloned().unwrap_or_default();
    let name = |l: &serde_json::Value| l["config"]["name"].as_str().or(l["name"].as_str()).unwrap_or_default().to_string();
    let functional = layers.iter().any(|o| o.get("inbound_nodes").is_some());
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let class = l["class_name"].as_str().unwrap_or_default().to_string();
        let stem = snake_case(&class);
        let n = seen.entry(stem.clone()).or_default();
        let path = if *n == 0 { stem } else { format!("{stem}_{n}") };
        *n += 1;
        // A Functional model's graph says which layer reads this one's output (a branch: none
        // to fuse); a Sequential one's is the next in the list.
        let next = match functional {
            true => {
                let readers: Vec<&serde_json::Value> = layers.iter().filter(|o| inbound(&o["inbound_nodes"]).contains(&name(l))).collect();
                (readers.len() == 1).then(|| readers[0])
            }
            false => layers.get(i + 1),
        };
        let then = next.and_then(|next| activation_layer(next["class_name"].as_str()?, &next["config"]));
        out.push(ConfigLayer { name: name(l), path, class, settings: Settings { config: l["config"].clone(), then } });
    }
    out
}

/// The activation of a Keras activation layer, as gpu-cnn names it; a LeakyReLU or ELU whose
/// setting gpu-cnn lacks (negative_slope 0.2, alpha 1) says so, so that it matches nothing.
pub(super) fn activation_layer(class: &str, config: &serde_json::Value) -> Option<String> {
    let with = |name: &str, key: &str, ours: f64| match config[key].as_f64() {
        Some(v) if (v - ours).abs() > 1e-6 => format!("{name} ({key} {v})"),
        _ => name.to_string(),
    };
    match class {
        "Activation" => config["activation"].as_str().map(str::to_string),
        "ReLU" => Some("relu".into()),
        // Keras 3's LeakyReLU layer defaults to 0.3, its leaky_relu activation to 0.2.
        "LeakyReLU" => Some(with("leaky_relu", "negative_slope", 0.2)),
        "ELU" => Some(with("elu", "alpha", 1.0)),
        _ => None,
    }
}

/// The layer names a Functional config's `inbound_nodes` read from: Keras 2 writes each input as
/// `[name, node, tensor, kwargs]`, Keras 3 as `{"keras_history": [name, node, tensor]}`.
pub(super) fn inbound(nodes: &serde_json::Value) -> Vec<String> {
    match nodes {
        serde_json::Value::Array(a) if a.len() >= 3 && a[0].is_string() && a[1].is_u64() => vec![a[0].as_str().unwrap_or_default().to_string()],
        serde_json::Value::Array(a) => a.iter().flat_map(inbound).collect(),
        serde_json::Value::Object(o) => match o.get("keras_history") {
            Some(h) => inbound(h),
            None => o.values().flat_map(inbound).collect(),
        },
        _ => Vec::new(),
    }
}

/// Keras' `to_snake_case` of a class name: `BatchNormalization` -> `batch_normalization`.
fn snake_case(class: &str) -> String {
    let c: Vec<char> = class.chars().collect();
    let mut out = String::new();
    for (i, &ch) in c.iter().enumerate() {
        let starts_word = i > 0 && ch.is_ascii_uppercase() && (c.get(i + 1).is_some_and(|n| n.is_ascii_lowercase()) || c[i - 1].is_ascii_lowercase());
        if starts_word {
            out.push('_');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// How `target` (with the layer after it) differs from the Keras layer's settings in what the
/// weights' shapes cannot show, if it does.
fn settings_differ(target: &LayerKind, next: Option<&LayerKind>, s: &Settings) -> Option<String> {
    let c = &s.config;
    let keras_act = match &c["activation"] {
        serde_json::Value::Null => "linear".to_string(),
        serde_json::Value::String(a) => a.clone(),
        other => other.to_string(),
    };
    let keras_act = if keras_act == "linear" { s.then.clone().unwrap_or(keras_act) } else { keras_act };
    // Keras 3's swish is silu.
    let keras_act = if keras_act == "swish" { "silu".to_string() } else { keras_act };
    let mut act = target.ops().activation();
    if let (Activation::Linear, Some(LayerKind::Activation(a))) = (act, next) {
        act = a.activation;
    }
    let ours = act.name();
    let mut differ = Vec::new();
    if keras_act != ours {
        differ.push(format!("activation {keras_act} in the file, {ours} in the config"));
    }
    match target {
        LayerKind::Conv2d(conv) => differ.extend(conv_settings(c, conv.padding, conv.stride, None)),
        LayerKind::DepthwiseConv2d(d) => differ.extend(conv_settings(c, d.padding, d.stride, Some(d.depth_multiplier))),
        LayerKind::SeparableConv2d(sep) => differ.extend(conv_settings(c, sep.padding, sep.stride, Some(sep.depth_multiplier))),
        LayerKind::BatchNorm(bn) => {
            if c["epsilon"].as_f64().is_some_and(|e| (e - bn.epsilon as f64).abs() > 1e-6 * e.abs().max(1e-12)) {
                differ.push(format!("epsilon {} in the file, {} in the config", c["epsilon"], bn.epsilon));
            }
            for (key, ours) in [("center", bn.center), ("scale", bn.scale)] {
                if c[key].as_bool().is_some_and(|v| v != ours) {
                    differ.push(format!("{key} {} in the file, {ours} in the config", c[key]));
                }
            }
        }
        _ => {}
    }
    (!differ.is_empty()).then(|| differ.join(", "))
}

/// Whether a legacy file's weight `name` is the config's tensor `suffix`: Keras 3 names a
/// DepthwiseConv2D's kernel `kernel`, Keras 2 `depthwise_kernel` (gpu-cnn's name).
fn same_weight(name: &str, suffix: &str, kind: &LayerKind) -> bool {
    name == suffix || (matches!(kind, LayerKind::DepthwiseConv2d(_)) && (name, suffix) == ("kernel", "depthwise_kernel"))
}

/// A Keras size (`kernel_size`, `strides`, ...): `[h, w]`, or one number for both.
pub(super) fn size_pair(v: &serde_json::Value) -> Option<[u64; 2]> {
    match v.as_array().map(|a| a.iter().map(serde_json::Value::as_u64).collect::<Vec<_>>()).as_deref() {
        Some(&[Some(h), Some(w)]) => Some([h, w]),
        Some(_) => None,
        None => v.as_u64().map(|n| [n, n]),
    }
}

/// How a Keras conv's config `c` differs from gpu-cnn's `padding`, `stride` and (depthwise and
/// separable convs) `depth_multiplier`, and the options gpu-cnn has not.
fn conv_settings(c: &serde_json::Value, padding: Padding, stride: u32, depth_multiplier: Option<u32>) -> Vec<String> {
    let differs = |key: &str, want: u64| !c[key].is_null() && size_pair(&c[key]) != Some([want; 2]);
    let mut differ = Vec::new();
    let padding = if padding == Padding::Same { "same" } else { "valid" };
    if c["padding"].as_str().is_some_and(|p| p != padding) {
        differ.push(format!("padding {} in the file, {padding} in the config", c["padding"]));
    }
    if differs("strides", stride as u64) {
        differ.push(format!("strides {} in the file, {stride} in the config", c["strides"]));
    }
    if let Some(m) = depth_multiplier.filter(|&m| c["depth_multiplier"].as_u64().is_some_and(|k| k != m as u64)) {
        differ.push(format!("depth_multiplier {} in the file, {m} in the config", c["depth_multiplier"]));
    }
    if differs("dilation_rate", 1) {
        differ.push(format!("dilation_rate {} (gpu-cnn convs are not dilated)", c["dilation_rate"]));
    }
    if c["data_format"].as_str() == Some("channels_first") {
        differ.push("data_format channels_first (gpu-cnn is channels_last)".into());
    }
    differ
}

impl KerasLayer {
    /// Its class as the file says it (`Conv2D` or `conv2d`), when the file says.
    fn class_name(&self) -> Option<&str> {
        match &self.class {
            Class::Keras(c) | Class::Stem(c) => Some(c),
            Class::Unknown => None,
        }
    }

    /// Whether its class is `kind`'s (or unknown).
    fn fits(&self, kind: &LayerKind) -> bool {
        match &self.class {
            Class::Keras(c) => c == kind.ops().class(),
            Class::Stem(s) => s == kind.ops().stem(),
            Class::Unknown => true,
        }
    }
}

/// The layers with weights of a Keras file, in the file's order.
#[derive(Debug, Clone)]
pub struct KerasFile {
    pub format: Format,
    pub layers: Vec<KerasLayer>,
    /// The model's description (`.keras` config.json, `model.save`'s model_config), if saved.
    pub model: Option<serde_json::Value>,
}

use super::{HDF5_MAGIC, ZIP_MAGIC};

impl KerasFile {
    pub fn read(path: &Path) -> Result<Self, KerasError> {
        if path.is_dir() {
            let saved_model = path.join("saved_model.pb").is_file() || path.join("saved_model.pbtxt").is_file();
            return Err(if saved_model { KerasError::SavedModel(path.to_path_buf()) } else { KerasError::Folder(path.to_path_buf()) });
        }
        let bytes = std::fs::read(path).map_err(|e| KerasError::Read(path.to_path_buf(), e))?;
        let format = |e: String| KerasError::Format(path.to_path_buf(), e);
        if bytes.starts_with(ZIP_MAGIC) {
            let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format(format!("not a .keras archive: {e}")))?;
            let mut entry = zip.by_name("model.weights.h5").map_err(|e| format(format!("a zip, but not a .keras archive (model.weights.h5: {e})")))?;
            let mut weights = Vec::new();
            entry.read_to_end(&mut weights).map_err(|e| KerasError::Read(path.to_path_buf(), e))?;
            drop(entry);
            let file = Hdf5File::from_vec(weights).map_err(|e| format(format!("its model.weights.h5: {e}")))?;
            let mut layers = keras3(&file).map_err(|e| format(format!("its model.weights.h5: {e}")))?;
            // The model's settings, by the weights' paths (an archive without them is read as
            // weights alone).
            let mut text = String::new();
            let mut model = None;
            if zip.by_name("config.json").is_ok_and(|mut c| c.read_to_string(&mut text).is_ok()) {
                let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| format(format!("its config.json: {e}")))?;
                let known = model_layers(&config);
                for l in &mut layers {
                    l.settings = known.iter().find(|k| k.path == l.path).map(|k| k.settings.clone());
                }
                model = Some(config);
            }
            return Ok(Self { format: Format::Archive, layers, model });
        }
        if !bytes.starts_with(HDF5_MAGIC) {
            return Err(KerasError::NotHdf5(path.to_path_buf()));
        }
        let file = Hdf5File::from_vec(bytes).map_err(|e| format(e.to_string()))?;
        let root = file.root_group().map_err(|e| format(e.to_string()))?;
        let (groups, _) = root.member_names().map_err(|e| format(e.to_string()))?;
        if groups.iter().any(|g| g == "layers") {
            return Ok(Self { format: Format::Keras3, layers: keras3(&file).map_err(format)?, model: None });
        }
        let (layers, model) = legacy(&file, &root).map_err(format)?;
        Ok(Self { format: Format::Legacy, layers, model })
    }
}

fn read_weight(file: &Hdf5File, path: &str, name: String) -> Result<Weight, String> {
    let ds = file.dataset(path).map_err(|e| format!("{path}: {e}"))?;
    // A damaged header can claim any shape: check that it fits in memory before allocating.
    let len = ds.shape().iter().try_fold(1u64, |n, &d| n.checked_mul(d)).unwrap_or(u64::MAX);
    crate::sizes::check_host_bytes(&format!("{path} ({:?})", ds.shape()), len.saturating_mul(4)).map_err(|e| e.to_string())?;
    let shape: Vec<u32> = ds.shape().iter().map(|&d| u32::try_from(d).map_err(|_| format!("{path}: dimension {d} is too large"))).collect::<Result<_, _>>()?;
    let mut data = vec![0f32; len as usize];
    ds.read_into(&mut data).map_err(|e| format!("{path}: {e} (gpu-cnn reads float32 weights)"))?;
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(format!("{path}: holds {} at element {i}: the file is damaged or the model that saved it diverged; gpu-cnn imports finite weights only", data[i]));
    }
    Ok(Weight { name, shape, data })
}

/// Keras 3: `layers/<path>/vars/<i>`, the layer's name in the `vars` group's `name` attribute.
fn keras3(file: &Hdf5File) -> Result<Vec<KerasLayer>, String> {
    let layers = file.group("/layers").map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for path in layers.member_names().map_err(|e| e.to_string())?.0 {
        let Ok(vars) = layers.group(&path).and_then(|g| g.group("vars")) else { continue };
        let mut indices: Vec<usize> = vars.member_names().map_err(|e| e.to_string())?.1.iter().filter_map(|n| n.parse().ok()).collect();
        indices.sort();
        if indices.is_empty() {
            continue;
        }
        let weights = indices.iter().map(|i| read_weight(file, &format!("/layers/{path}/vars/{i}"), i.to_string())).collect::<Result<_, _>>()?;
        let name = vars.attribute("name").and_then(|a| a.read_string()).unwrap_or_else(|_| path.clone());
        // The path is the class's stem, numbered from the second layer of a class on.
        let stem = match path.rsplit_once('_') {
            Some((stem, n)) if n.parse::<u32>().is_ok() => stem.to_string(),
            _ => path.clone(),
        };
        out.push(KerasLayer { name, path, class: Class::Stem(stem), weights, settings: None });
    }
    Ok(out)
}

fn strings(group: &Group, attribute: &str) -> Result<Vec<String>, String> {
    let a = group.attribute(attribute).map_err(|e| format!("{}: attribute '{attribute}': {e}", group.name()))?;
    if a.num_elements().map_err(|e| e.to_string())? == 0 {
        return Ok(Vec::new());
    }
    a.read_strings().map_err(|e| format!("{}: attribute '{attribute}': {e}", group.name()))
}

/// Keras 2 / legacy: `layer_names` in order, each layer's `weight_names`, classes from the
/// `model_config` when `model.save` wrote one (returned too).
fn legacy(file: &Hdf5File, root: &Group) -> Result<(Vec<KerasLayer>, Option<serde_json::Value>), String> {
    let (weights_root, prefix) = match root.group("model_weights") {
        Ok(g) => (g, "/model_weights"),
        Err(_) => (file.root_group().map_err(|e| e.to_string())?, ""),
    };
    let names = strings(&weights_root, "layer_names").map_err(|_| "not Keras weights: no 'layer_names' attribute and no 'layers' group".to_string())?;
    // `model.save` writes the model's description; `save_weights` none. One that is there but
    // unreadable is damage, not a weights-only file.
    let model: Option<serde_json::Value> = match root.attribute("model_config") {
        Err(_) => None,
        Ok(a) => {
            let corrupt = |e: String| format!("its model_config attribute (the model's description) is corrupt ({e}); re-save the model in Keras (model.save(\"model.keras\")) and import that file");
            let text: String = a.read_string().map_err(|e| corrupt(e.to_string()))?;
            Some(serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?)
        }
    };
    let known = model.as_ref().map(model_layers).unwrap_or_default();
    let mut out = Vec::new();
    for name in names {
        let group = weights_root.group(&name).map_err(|e| format!("layer '{name}': {e}"))?;
        let weight_names = strings(&group, "weight_names")?;
        if weight_names.is_empty() {
            continue;
        }
        // `conv2d_1/kernel:0` (Keras 2) or `sequential/conv2d_1/kernel` (Keras 3): the last part.
        let suffix = |w: &str| w.rsplit('/').next().unwrap_or(w).trim_end_matches(":0").to_string();
        let weights = weight_names.iter().map(|w| read_weight(file, &format!("{prefix}/{name}/{w}"), suffix(w))).collect::<Result<_, _>>()?;
        let known = known.iter().find(|k| k.name == name);
        let class = known.map_or(Class::Unknown, |k| Class::Keras(k.class.clone()));
        out.push(KerasLayer { path: name.clone(), name, class, weights, settings: known.map(|k| k.settings.clone()) });
    }
    Ok((out, model))
}

/// How the file's layers were paired with the config's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    Name,
    /// Order among layers with weights (legacy files).
    Order,
    /// Keras 3's class-and-count paths (position among layers of the same class).
    Path,
}

impl MatchedBy {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Order => "order among layers with weights",
            Self::Path => "order among layers of each class (Keras 3's weight paths)",
        }
    }
}

/// The config's tensors with the file's weights in place of `init` where layers match, and
/// the report (in `transfer`'s table). Errors when a paired layer's class or shapes differ.
pub fn import(path: &Path, file: &KerasFile, spec: &ModelSpec, mut init: Vec<Vec<f32>>) -> Result<(Plan, MatchedBy, Vec<Vec<f32>>), KerasError> {
    let infos = spec.params();
    let with_params = |t: usize| infos.iter().any(|p| p.layer == t);
    let targets: Vec<usize> = (0..spec.layers.len()).filter(|&t| with_params(t)).collect();
    let by_name = !file.layers.is_empty() && file.layers.iter().all(|l| spec.layers.iter().any(|t| t.name == l.name));
    let matched_by = match (by_name, file.format) {
        (true, _) => MatchedBy::Name,
        (false, Format::Legacy) => MatchedBy::Order,
        (false, _) => MatchedBy::Path,
    };
    let source = |t: usize| -> Option<usize> {
        let target = &spec.layers[t];
        match matched_by {
            MatchedBy::Name => file.layers.iter().position(|l| l.name == target.name),
            MatchedBy::Order => Some(targets.iter().position(|&x| x == t)?).filter(|&i| i < file.layers.len()),
            MatchedBy::Path => {
                let stem = target.kind.ops().stem();
                let n = spec.layers[..t].iter().filter(|l| l.kind.ops().stem() == stem).count();
                let path = if n == 0 { stem.to_string() } else { format!("{stem}_{n}") };
                file.layers.iter().position(|l| l.path == path)
            }
        }
    };
    // A Keras layer of a class the config has nowhere is a type gpu-cnn cannot hold, or the
    // wrong config: either way not a spare layer to leave out.
    if let Some((l, class)) = file.layers.iter().find_map(|l| l.class_name().filter(|_| !spec.layers.iter().any(|t| l.fits(&t.kind))).map(|c| (l, c))) {
        return Err(KerasError::Unsupported { path: path.into(), layer: l.name.clone(), class: class.into() });
    }
    let mut used = vec![false; file.layers.len()];
    let mut layers = Vec::new();
    for (t, target) in spec.layers.iter().enumerate() {
        let class = target.kind.ops().class();
        let tensors: Vec<usize> = (0..infos.len()).filter(|&i| infos[i].layer == t).collect();
        let params: u64 = tensors.iter().map(|&i| infos[i].len()).sum();
        let mut row = LayerPlan { target: target.name.clone(), class: class.into(), source: None, action: Action::NoParameters, reason: None, params, moved: 0, recipe: None };
        if tensors.is_empty() {
            layers.push(row);
            continue;
        }
        let Some(s) = source(t) else {
            row.action = Action::FreshInit;
            row.reason = Some(format!("no Keras layer of this {}", if matched_by == MatchedBy::Name { "name" } else { "position" }));
            layers.push(row);
            continue;
        };
        let layer = &file.layers[s];
        if let (false, Some(keras_class)) = (layer.fits(&target.kind), layer.class_name()) {
            return Err(KerasError::LayerType { path: path.into(), layer: layer.name.clone(), class: keras_class.into(), target: target.name.clone(), target_class: class.into() });
        }
        if let Some(detail) = layer.settings.as_ref().and_then(|s| settings_differ(&target.kind, spec.layers.get(t + 1).map(|l| &l.kind), s)) {
            return Err(KerasError::Settings { path: path.into(), layer: layer.name.clone(), target: target.name.clone(), detail });
        }
        let shape_error = |detail: String| KerasError::Shape { path: path.into(), layer: layer.name.clone(), target: target.name.clone(), detail };
        if layer.weights.len() != tensors.len() {
            let names = |n: Vec<&str>| n.join(", ");
            let detail = format!("it has {} weight(s) ({}), the config's layer {} ({})", layer.weights.len(), names(layer.weights.iter().map(|w| w.name.as_str()).collect()), tensors.len(), names(tensors.iter().map(|&i| infos[i].suffix).collect()));
            return Err(shape_error(detail));
        }
        for (w, &i) in layer.weights.iter().zip(&tensors) {
            let named = file.format == Format::Legacy;
            if named && !same_weight(&w.name, infos[i].suffix, &target.kind) {
                return Err(shape_error(format!("its weight '{}' stands where the config has '{}'", w.name, infos[i].suffix)));
            }
            if w.shape != infos[i].shape {
                return Err(shape_error(format!("weight {} has shape {:?}, the config's {} needs {:?}", w.name, w.shape, infos[i].name, infos[i].shape)));
            }
            init[i].copy_from_slice(&w.data);
        }
        used[s] = true;
        row.source = Some(layer.name.clone());
        row.action = Action::Copied;
        row.moved = params;
        layers.push(row);
    }
    let unused = file.layers.iter().zip(&used).filter(|(_, u)| !**u).map(|(l, _)| l.name.clone()).collect();
    let moved = layers.iter().map(|l| l.moved).sum();
    let plan = Plan { strategy: Strategy::Match, partial: false, layers, unused, moved, total: spec.param_count(), function_preserving: false };
    Ok((plan, matched_by, init))
}

/// A gpu-cnn checkpoint of `cfg`'s model from the Keras file at `path`: the file's weights where
/// layers match, the config's seeded initialisation elsewhere, `classes` (default `class_0`,
/// ...) as its class names, and the import recorded as its provenance.
pub fn checkpoint(path: &Path, file: &KerasFile, cfg: &Config, classes: Option<Vec<String>>) -> Result<(Plan, MatchedBy, Checkpoint), KerasError> {
    let spec = &cfg.model;
    let classes = classes.unwrap_or_else(|| (0..spec.classes()).map(|i| format!("class_{i}")).collect());
    crate::checkpoint::check_classes(&classes, spec.classes() as usize).map_err(KerasError::Classes)?;
    if file.layers.iter().all(|l| l.settings.is_none()) {
        log::warn!("{}: holds weights only, no model: the config's activations, strides, padding and batchnorm options are taken unchecked", path.display());
    }
    let (plan, matched_by, params) = import(path, file, spec, crate::network::initial_params(spec, cfg.train.seed))?;
    let provenance = serde_json::json!({
        "source": path.display().to_string(),
        "format": file.format.describe(),
        "matched_by": matched_by,
        "fraction_transferred": plan.fraction(),
        "layers": plan.layers,
    });
    let state = TrainState { lr: cfg.train.learning_rate, seed: cfg.train.seed, ..Default::default() };
    let ckpt = Checkpoint { model: spec.clone(), classes, params, optimizer: None, state, provenance: Some(provenance) };
    Ok((plan, matched_by, ckpt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::batchnorm::BatchNorm;
    use crate::layers::conv2d::Conv2d;

    fn layer(name: &str, weights: &[(&str, Vec<u32>)]) -> KerasLayer {
        let weights = weights.iter().map(|(n, s)| Weight { name: n.to_string(), shape: s.clone(), data: vec![0.5; s.iter().product::<u32>() as usize] }).collect();
        KerasLayer { name: name.into(), path: name.into(), class: Class::Unknown, weights, settings: None }
    }

    /// Keras 2 `save_weights` without a model config, default names that are not the config's:
    /// paired by order; a trailing Keras layer is unused, a config layer past the file's end
    /// keeps its initialisation.
    #[test]
    fn legacy_layers_pair_by_order_and_the_rest_is_reported() {
        let spec = ModelSpec::model1(8);
        let conv = layer("conv2d", &[("kernel", vec![3, 3, 3, 32]), ("bias", vec![32])]);
        let dense = layer("dense", &[("kernel", vec![512, 128]), ("bias", vec![128])]);
        let extra = layer("dense_9", &[("kernel", vec![1, 1])]);
        let path = Path::new("k.h5");
        let init: Vec<Vec<f32>> = spec.params().iter().map(|p| vec![-1.0; p.len() as usize]).collect();
        let file = KerasFile { format: Format::Legacy, model: None, layers: vec![conv.clone(), dense.clone()] };
        let (plan, by, params) = import(path, &file, &spec, init.clone()).unwrap();
        assert_eq!(by, MatchedBy::Order);
        let actions: Vec<_> = plan.layers.iter().map(|l| (l.target.as_str(), l.action, l.source.as_deref())).collect();
        assert_eq!(actions[0], ("conv2d_1", Action::Copied, Some("conv2d")));
        assert_eq!(actions[3], ("dense_1", Action::Copied, Some("dense")));
        assert_eq!(actions[4], ("dense_2", Action::FreshInit, None));
        assert!(params[..4].iter().all(|t| t.iter().all(|&v| v == 0.5)) && params[4].iter().all(|&v| v == -1.0));
        assert!(plan.table().contains("no Keras layer of this position"));

        let head = layer("dense_1", &[("kernel", vec![128, 1]), ("bias", vec![1])]);
        let file = KerasFile { format: Format::Legacy, model: None, layers: vec![conv, dense.clone(), head, extra] };
        let (plan, _, _) = import(path, &file, &spec, init.clone()).unwrap();
        assert_eq!(plan.unused, ["dense_9"]);
        assert_eq!(plan.moved, spec.param_count());

        // Keras 3 paths name the class: a spare layer of a class the config lacks is refused.
        let mut conv1d = layer("conv1d", &[("0", vec![3, 3, 1])]);
        conv1d.class = Class::Stem("conv1d".into());
        let e = import(path, &KerasFile { format: Format::Keras3, model: None, layers: vec![conv1d] }, &spec, init.clone()).unwrap_err();
        assert!(e.to_string().contains("Keras layer 'conv1d' is a conv1d, which the config has no layer of"), "{e}");

        // A model config's classes: a Dense where the config has its conv is refused.
        let mut dense_first = dense.clone();
        dense_first.class = Class::Keras("Dense".into());
        let e = import(path, &KerasFile { format: Format::Legacy, model: None, layers: vec![dense_first] }, &spec, init.clone()).unwrap_err();
        assert!(e.to_string().contains("Keras layer 'dense' is a Dense, but the config's conv2d_1 is a Conv2D"), "{e}");

        // Legacy weights carry names: a bias where the kernel belongs is refused.
        let swapped = layer("conv2d", &[("bias", vec![32]), ("kernel", vec![3, 3, 3, 32])]);
        let e = import(path, &KerasFile { format: Format::Legacy, model: None, layers: vec![swapped] }, &spec, init).unwrap_err();
        assert!(e.to_string().contains("its weight 'bias' stands where the config has 'kernel'"), "{e}");
    }

    /// Keras 3 paths `depthwise_conv2d` and `separable_conv2d` (weights 0, 1, 2 in Keras'
    /// order) and legacy names (`depthwise_kernel`, `pointwise_kernel`, `bias`) land in the
    /// config's depthwise and separable convs; a file's depth_multiplier must be the config's.
    #[test]
    fn depthwise_and_separable_layers_import_by_path_and_by_name() {
        use crate::layers::{depthwise_conv2d::DepthwiseConv2d, separable_conv2d::SeparableConv2d, dense::Dense, flatten::Flatten};
        let spec = ModelSpec::new([8, 8, 3], vec![
            (None, LayerKind::DepthwiseConv2d(DepthwiseConv2d { depth_multiplier: 2, ..DepthwiseConv2d::new(3, Padding::Same, Activation::Relu) })),
            (None, LayerKind::SeparableConv2d(SeparableConv2d::new(4, 3, Padding::Same, Activation::Relu))),
            (None, LayerKind::Flatten(Flatten {})),
            (None, LayerKind::Dense(Dense::new(1, Activation::Sigmoid))),
        ])
        .unwrap();
        let path = Path::new("k.weights.h5");
        let init: Vec<Vec<f32>> = spec.params().iter().map(|p| vec![-1.0; p.len() as usize]).collect();
        let keras3 = |stem: &str, weights: &[(&str, Vec<u32>)]| KerasLayer { class: Class::Stem(stem.into()), ..layer(stem, weights) };
        let layers = vec![
            keras3("depthwise_conv2d", &[("0", vec![3, 3, 3, 2]), ("1", vec![6])]),
            keras3("separable_conv2d", &[("0", vec![3, 3, 6, 1]), ("1", vec![1, 1, 6, 4]), ("2", vec![4])]),
        ];
        let (plan, by, params) = import(path, &KerasFile { format: Format::Keras3, model: None, layers }, &spec, init.clone()).unwrap();
        assert_eq!(by, MatchedBy::Path);
        assert_eq!(plan.layers.iter().map(|l| l.action).collect::<Vec<_>>(), [Action::Copied, Action::Copied, Action::NoParameters, Action::FreshInit]);
        assert!(params[..5].iter().all(|t| t.iter().all(|&v| v == 0.5)), "the depthwise and separable tensors came from the file");

        let named = layer("separable_conv2d_1", &[("depthwise_kernel", vec![3, 3, 6, 1]), ("pointwise_kernel", vec![1, 1, 6, 4]), ("bias", vec![4])]);
        let (plan, by, _) = import(path, &KerasFile { format: Format::Legacy, model: None, layers: vec![named] }, &spec, init.clone()).unwrap();
        assert_eq!((by, plan.layers[1].action), (MatchedBy::Name, Action::Copied));
        // Keras 2 and Keras 3 names of a DepthwiseConv2D's kernel.
        for kernel in ["depthwise_kernel", "kernel"] {
            let named = layer("depthwise_conv2d_1", &[(kernel, vec![3, 3, 3, 2]), ("bias", vec![6])]);
            let (plan, _, _) = import(path, &KerasFile { format: Format::Legacy, model: None, layers: vec![named] }, &spec, init.clone()).unwrap();
            assert_eq!(plan.layers[0].action, Action::Copied, "{kernel}");
        }
        let swapped = layer("separable_conv2d_1", &[("pointwise_kernel", vec![1, 1, 6, 4]), ("depthwise_kernel", vec![3, 3, 6, 1]), ("bias", vec![4])]);
        let e = import(path, &KerasFile { format: Format::Legacy, model: None, layers: vec![swapped] }, &spec, init).unwrap_err();
        assert!(e.to_string().contains("its weight 'pointwise_kernel' stands where the config has 'depthwise_kernel'"), "{e}");

        let config = serde_json::json!({"activation": "relu", "padding": "same", "strides": [1, 1], "depth_multiplier": 1, "dilation_rate": [1, 1]});
        let settings = Settings { config, then: None };
        assert_eq!(settings_differ(&spec.layers[1].kind, None, &settings), None);
        let e = settings_differ(&spec.layers[0].kind, None, &settings).unwrap();
        assert!(e.contains("depth_multiplier 1 in the file, 2 in the config"), "{e}");
    }

    /// Keras' names of the hidden activations, as strings and as layers after a conv: swish is
    /// silu, and a LeakyReLU or ELU layer matches only with gpu-cnn's fixed setting.
    #[test]
    fn keras_activation_names_map_to_gpu_cnn_ones() {
        let conv = |activation| LayerKind::Conv2d(Conv2d::new(4, 3, Padding::Same, activation));
        let settings = |layers: serde_json::Value| model_layers(&serde_json::json!({"config": {"layers": layers}}))[0].settings.clone();
        let named = |name: &str| settings(serde_json::json!([{"class_name": "Conv2D", "config": {"name": "c", "activation": name}}]));
        for (keras, ours) in [("leaky_relu", Activation::LeakyRelu), ("elu", Activation::Elu), ("tanh", Activation::Tanh), ("sigmoid", Activation::Sigmoid), ("silu", Activation::Silu), ("swish", Activation::Silu), ("gelu", Activation::Gelu)] {
            assert_eq!(settings_differ(&conv(ours), None, &named(keras)), None, "{keras}");
            assert!(settings_differ(&conv(Activation::Relu), None, &named(keras)).is_some(), "{keras}");
        }
        let then = |class: &str, config: serde_json::Value| settings(serde_json::json!([{"class_name": "Conv2D", "config": {"name": "c", "activation": "linear"}}, {"class_name": class, "config": config}]));
        assert_eq!(settings_differ(&conv(Activation::LeakyRelu), None, &then("LeakyReLU", serde_json::json!({"negative_slope": 0.2}))), None);
        let e = settings_differ(&conv(Activation::LeakyRelu), None, &then("LeakyReLU", serde_json::json!({"negative_slope": 0.3}))).unwrap();
        assert!(e.contains("activation leaky_relu (negative_slope 0.3) in the file, leaky_relu in the config"), "{e}");
        assert_eq!(settings_differ(&conv(Activation::Elu), None, &then("ELU", serde_json::json!({"alpha": 1.0}))), None);
        assert!(settings_differ(&conv(Activation::Elu), None, &then("ELU", serde_json::json!({"alpha": 0.5}))).unwrap().contains("elu (alpha 0.5)"));
    }

    /// Settings the weights cannot show: a following Activation layer counts as the fused
    /// activation, and strides, padding, dilation and batchnorm options must agree.
    #[test]
    fn keras_settings_are_compared_with_the_config() {
        // As Keras' to_snake_case (ReLU's weights path would be re_lu).
        assert_eq!(["Conv2D", "BatchNormalization", "MaxPooling2D", "Dense", "ReLU"].map(snake_case), ["conv2d", "batch_normalization", "max_pooling2d", "dense", "re_lu"]);
        let model = serde_json::json!({"config": {"layers": [
            {"class_name": "Conv2D", "config": {"name": "c", "activation": "linear", "strides": [1, 1], "padding": "same", "dilation_rate": [1, 1]}},
            {"class_name": "Activation", "config": {"name": "a", "activation": "relu"}},
            {"class_name": "Conv2D", "config": {"name": "c2", "activation": "relu", "strides": [2, 2], "padding": "valid", "dilation_rate": [2, 2]}},
            {"class_name": "BatchNormalization", "config": {"name": "bn", "epsilon": 0.001, "center": true, "scale": false}},
            {"class_name": "ReLU", "config": {"name": "r"}},
        ]}});
        let layers = model_layers(&model);
        assert_eq!(layers.iter().map(|l| l.path.as_str()).collect::<Vec<_>>(), ["conv2d", "activation", "conv2d_1", "batch_normalization", "re_lu"]);
        let conv = |stride, padding, activation| LayerKind::Conv2d(Conv2d { stride, ..Conv2d::new(4, 3, padding, activation) });
        assert_eq!(settings_differ(&conv(1, Padding::Same, Activation::Relu), None, &layers[0].settings), None);
        assert!(settings_differ(&conv(1, Padding::Same, Activation::Linear), None, &layers[0].settings).unwrap().contains("activation relu in the file, linear"));
        let e = settings_differ(&conv(1, Padding::Same, Activation::Relu), None, &layers[2].settings).unwrap();
        assert!(e.contains("padding") && e.contains("strides") && e.contains("dilation_rate"), "{e}");
        assert_eq!(settings_differ(&conv(2, Padding::Valid, Activation::Relu), None, &layers[2].settings).map(|e| e.contains("dilation")), Some(true));
        let bn = |scale, activation| LayerKind::BatchNorm(BatchNorm { scale, activation, ..Default::default() });
        assert_eq!(settings_differ(&bn(false, Activation::Relu), None, &layers[3].settings), None);
        let e = settings_differ(&bn(true, Activation::Linear), None, &layers[3].settings).unwrap();
        assert!(e.contains("scale false in the file") && e.contains("activation relu in the file"), "{e}");

        // A Functional model: the activation fused is the one that reads the layer (Keras 3's
        // keras_history, Keras 2's node lists), not the next in the list; a branch fuses none.
        let k3 = |name: &str| serde_json::json!([{"args": [{"class_name": "__keras_tensor__", "config": {"shape": [null, 8, 8, 4], "keras_history": [name, 0, 0]}}], "kwargs": {}}]);
        let k2 = |name: &str| serde_json::json!([[[name, 0, 0, {}]]]);
        for (by, reads) in [("Keras 3", &k3 as &dyn Fn(&str) -> serde_json::Value), ("Keras 2", &k2)] {
            let layer = |class: &str, name: &str, activation: &str, input: &str| serde_json::json!({"class_name": class, "name": name, "config": {"name": name, "activation": activation}, "inbound_nodes": reads(input)});
            let graph = |second_reader: &str| serde_json::json!({"config": {"layers": [
                {"class_name": "InputLayer", "name": "in", "config": {"name": "in"}, "inbound_nodes": []},
                layer("Conv2D", "c", "linear", "in"),
                layer("Activation", "s", "sigmoid", second_reader),
                layer("Activation", "a", "relu", "c"),
            ]}});
            let relu_conv = conv(1, Padding::Same, Activation::Relu);
            let layers = model_layers(&graph("in"));
            assert_eq!(settings_differ(&relu_conv, None, &layers[1].settings), None, "{by}");
            let layers = model_layers(&graph("c"));
            assert!(settings_differ(&relu_conv, None, &layers[1].settings).unwrap().contains("activation linear in the file, relu"), "{by}");
        }
    }
}
