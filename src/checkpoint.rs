//! Checkpoints: a safetensors file with every parameter under its Keras name
//! (`conv2d_1.kernel`, ...), for resumable checkpoints the optimizer's moments (Adam's and
//! AdamW's `adam.m.<name>`, `adam.v.<name>`, SGD's `sgd.m.<name>`; any optimizer but Keras'
//! default Adam is described by the `optimizer` metadata), and metadata that makes the file self-describing: format version, model
//! spec, class names, training state (epoch, step, learning rate, schedule states, history,
//! seed) and, for transferred models, provenance. Written atomically; loading validates
//! everything and names what is wrong.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde::Serialize;
use thiserror::Error;

use crate::gpu::GpuContext;
use crate::model::{ModelSpec, ParamInfo};
use crate::network::{Network, NetworkError};
use crate::optimizer::OptimizerConfig;
use crate::record::TrainState;

pub const FORMAT: &str = "gpu-cnn";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("{0}: cannot read: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: cannot write: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("{0}: not a safetensors file, or truncated ({1})")]
    NotSafetensors(PathBuf, String),
    #[error("{0}: not a gpu-cnn checkpoint (no '{FORMAT}' format metadata)")]
    NotOurs(PathBuf),
    #[error("{0}: is a Keras file (HDF5 or .keras archive), not a gpu-cnn checkpoint; convert it first with `gpu-cnn import keras {0} -o model.safetensors` (it writes model.toml, the model the file saved; for a file of weights alone add --config <the model's config>) and pass model.safetensors")]
    Keras(PathBuf),
    #[error("{0}: format version {1} is not supported (this gpu-cnn reads version {FORMAT_VERSION})")]
    Version(PathBuf, String),
    #[error("{0}: metadata '{1}' is missing or invalid: {2}")]
    Metadata(PathBuf, &'static str, String),
    #[error("{0}: tensor '{1}' is missing")]
    MissingTensor(PathBuf, String),
    #[error("{0}: unexpected tensor '{1}'")]
    ExtraTensor(PathBuf, String),
    #[error("{0}: tensor '{1}' has dtype {2}, expected F32")]
    Dtype(PathBuf, String, String),
    #[error("{0}: tensor '{1}' has shape {2:?}, but the model's layout needs {3:?}")]
    Shape(PathBuf, String, Vec<usize>, Vec<u32>),
    #[error("{0}: tensor '{1}' holds {3} at element {2}: the file is damaged or the run that wrote it diverged")]
    NotFinite(PathBuf, String, usize, f32),
    #[error("{0}: tensor '{1}' (an Adam second moment, never negative) holds {3} at element {2}: the file is damaged")]
    NegativeMoment(PathBuf, String, usize, f32),
    #[error("{path}: its model differs from the config's at layer {layer}: {detail}; to start from a different layout, use `gpu-cnn transfer`")]
    Layout { path: PathBuf, layer: String, detail: String },
    #[error("{0}: has no optimizer state (not a resumable checkpoint); use --init to start from its weights")]
    NotResumable(PathBuf),
    #[error(transparent)]
    Network(#[from] NetworkError),
}

/// The optimizer's state for every trainable tensor, in the model's parameter order.
#[derive(Debug, Clone, PartialEq)]
pub struct Optimizer {
    /// Which optimizer and its settings (an exact resume needs the same).
    pub config: OptimizerConfig,
    pub t: u32,
    pub m: Vec<Vec<f32>>,
    /// Adam's second moments; empty for SGD.
    pub v: Vec<Vec<f32>>,
}

impl Optimizer {
    /// Each trainable tensor's moment tensors under their checkpoint names.
    fn moments<'a>(&'a self, trainable: &'a [&ParamInfo]) -> impl Iterator<Item = (String, &'a ParamInfo, &'a [f32])> {
        let moments = [&self.m, &self.v];
        trainable.iter().enumerate().flat_map(move |(i, info)| (0..self.config.moments()).map(move |k| (self.config.moment_name(k, &info.name), *info, moments[k][i].as_slice())))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub model: ModelSpec,
    pub classes: Vec<String>,
    /// Every tensor (moving statistics included) in the model's parameter order.
    pub params: Vec<Vec<f32>>,
    pub optimizer: Option<Optimizer>,
    pub state: TrainState,
    /// Where the weights came from (`gpu-cnn transfer` records its plan here).
    pub provenance: Option<serde_json::Value>,
}

fn f32_view<'a>(data: &'a [f32], shape: &[u32]) -> safetensors::tensor::TensorView<'a> {
    let shape = shape.iter().map(|&d| d as usize).collect();
    safetensors::tensor::TensorView::new(Dtype::F32, shape, bytemuck::cast_slice(data)).expect("shape matches data")
}

/// The training state's counters agree with each other and its numbers are finite.
fn check_state(s: &TrainState) -> Result<(), String> {
    if !(s.lr >= 0.0 && s.lr.is_finite()) {
        return Err(format!("learning rate {}", s.lr));
    }
    if s.history.len() != s.epoch as usize {
        return Err(format!("epoch {} with {} epochs of history", s.epoch, s.history.len()));
    }
    if let Some((i, l)) = s.history.iter().enumerate().find(|(i, l)| l.epoch as usize != i + 1) {
        return Err(format!("history entry {} is for epoch {}", i + 1, l.epoch));
    }
    if s.step > 0 {
        let steps = match s.batch_size {
            0 => 0,
            b => s.train_images.div_ceil(b as usize),
        };
        if s.step > steps {
            return Err(format!("step {} of an epoch of {steps} steps ({} images, batch size {})", s.step, s.train_images, s.batch_size));
        }
    }
    if s.partial_metrics.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
        return Err(format!("partial metrics {:?}", s.partial_metrics));
    }
    if !(s.partial_seconds.is_finite() && s.partial_seconds >= 0.0) {
        return Err(format!("partial seconds {}", s.partial_seconds));
    }
    Ok(())
}

/// The optimizer takes one step per training step, so its count is at most the steps the
/// training state says were taken.
fn check_optimizer_step(t: u32, s: &TrainState) -> Result<(), String> {
    if s.batch_size == 0 {
        return Ok(());
    }
    let steps = s.train_images.div_ceil(s.batch_size as usize) as u64;
    let taken = s.epoch as u64 * steps + s.step as u64;
    if t as u64 > taken {
        return Err(format!("{t} optimizer steps, but epoch {} step {} of {steps}-step epochs is {taken} steps", s.epoch, s.step));
    }
    Ok(())
}

/// Class names a checkpoint can hold: `count` of them, none empty or repeated.
pub fn check_classes(classes: &[String], count: usize) -> Result<(), String> {
    if classes.len() != count {
        return Err(format!("{} names for a {count}-class model", classes.len()));
    }
    match (0..classes.len()).find(|&i| classes[i].is_empty() || classes[..i].contains(&classes[i])) {
        Some(i) => Err(format!("name {:?} is empty or repeated", classes[i])),
        None => Ok(()),
    }
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

impl Checkpoint {
    /// Reads the network's parameters (and optimizer state when `resumable`) from the GPU.
    pub fn capture(ctx: &GpuContext, net: &Network, classes: &[String], state: TrainState, resumable: bool) -> Result<Self, CheckpointError> {
        let (params, moments) = net.read_all(ctx, resumable)?;
        let optimizer = moments.map(|(m, v)| Optimizer { config: net.training.optimizer.clone(), t: net.t, m, v });
        Ok(Self { model: net.spec.clone(), classes: classes.to_vec(), params, optimizer, state, provenance: None })
    }

    /// Writes the checkpoint atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let infos = self.model.params();
        let mut tensors = Vec::new();
        for (info, data) in infos.iter().zip(&self.params) {
            tensors.push((info.name.clone(), f32_view(data, &info.shape)));
        }
        let trainable: Vec<&ParamInfo> = infos.iter().filter(|i| i.trainable).collect();
        if let Some(opt) = &self.optimizer {
            for (name, info, data) in opt.moments(&trainable) {
                tensors.push((name, f32_view(data, &info.shape)));
            }
        }
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert("format_version".to_string(), FORMAT_VERSION.to_string());
        meta.insert("model".to_string(), json(&self.model));
        meta.insert("classes".to_string(), json(&self.classes));
        meta.insert("input".to_string(), json(&self.model.input));
        meta.insert("state".to_string(), json(&self.state));
        if let Some(opt) = &self.optimizer {
            meta.insert(opt.config.step_key().to_string(), opt.t.to_string());
            // Keras' Adam, the default, is what files without this key hold.
            if opt.config != OptimizerConfig::default() {
                meta.insert("optimizer".to_string(), json(&opt.config));
            }
        }
        if let Some(p) = &self.provenance {
            meta.insert("provenance".to_string(), p.to_string());
        }
        let bytes = safetensors::serialize(tensors, Some(meta)).map_err(|e| CheckpointError::Write(path.to_path_buf(), std::io::Error::other(e.to_string())))?;
        crate::files::write_atomic(path, &bytes).map_err(|e| CheckpointError::Write(path.to_path_buf(), e))
    }

    /// Reads and validates a checkpoint: format, version, metadata (checked against the model
    /// it carries), every tensor's presence, dtype, shape and values (finite; Adam's second
    /// moments non-negative), and no tensor the model does not have.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|e| CheckpointError::Read(path.to_path_buf(), e))?;
        Self::from_bytes(path, &bytes)
    }

    /// The training state alone, from the file's header (a report's question of whether a run
    /// finished need not read every tensor).
    pub fn read_state(path: &Path) -> Result<TrainState, CheckpointError> {
        let p = || path.to_path_buf();
        let text = Self::read_field(path, "state")?.ok_or_else(|| CheckpointError::Metadata(p(), "state", "missing".into()))?;
        let state: TrainState = serde_json::from_str(&text).map_err(|e| CheckpointError::Metadata(p(), "state", e.to_string()))?;
        check_state(&state).map_err(|e| CheckpointError::Metadata(p(), "state", e))?;
        Ok(state)
    }

    /// The provenance alone, from the file's header.
    pub fn read_provenance(path: &Path) -> Result<Option<serde_json::Value>, CheckpointError> {
        let text = Self::read_field(path, "provenance")?;
        text.map(|t| serde_json::from_str(&t)).transpose().map_err(|e| CheckpointError::Metadata(path.to_path_buf(), "provenance", e.to_string()))
    }

    /// One metadata field of a gpu-cnn checkpoint's header, without reading any tensor.
    fn read_field(path: &Path, key: &str) -> Result<Option<String>, CheckpointError> {
        let p = || path.to_path_buf();
        let mut file = std::fs::File::open(path).map_err(|e| CheckpointError::Read(p(), e))?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len).map_err(|e| CheckpointError::NotSafetensors(p(), e.to_string()))?;
        // Never more than the file holds (a garbage length would allocate it).
        let size = file.metadata().map_err(|e| CheckpointError::Read(p(), e))?.len();
        let len = u64::from_le_bytes(len).min(size.saturating_sub(8)) as usize;
        let mut header = vec![0u8; len];
        file.read_exact(&mut header).map_err(|e| CheckpointError::NotSafetensors(p(), e.to_string()))?;
        let header: serde_json::Value = serde_json::from_slice(&header).map_err(|e| CheckpointError::NotSafetensors(p(), e.to_string()))?;
        let meta = &header["__metadata__"];
        if meta["format"].as_str() != Some(FORMAT) {
            return Err(CheckpointError::NotOurs(p()));
        }
        Ok(meta[key].as_str().map(str::to_string))
    }

    /// [`Checkpoint::load`] of a file's contents; `path` names the file in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, CheckpointError> {
        let p = || path.to_path_buf();
        if crate::interop::looks_like_keras(bytes) {
            return Err(CheckpointError::Keras(p()));
        }
        let st = SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::NotSafetensors(p(), e.to_string()))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| CheckpointError::NotSafetensors(p(), e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(CheckpointError::NotOurs(p()));
        }
        let version = meta.get("format_version").cloned().unwrap_or_default();
        if version != FORMAT_VERSION.to_string() {
            return Err(CheckpointError::Version(p(), version));
        }
        fn field<T: serde::de::DeserializeOwned>(path: &Path, meta: &HashMap<String, String>, key: &'static str) -> Result<T, CheckpointError> {
            let text = meta.get(key).ok_or_else(|| CheckpointError::Metadata(path.to_path_buf(), key, "missing".into()))?;
            serde_json::from_str(text).map_err(|e| CheckpointError::Metadata(path.to_path_buf(), key, e.to_string()))
        }
        let model: ModelSpec = field(path, &meta, "model")?;
        let bad_model = |e: String| CheckpointError::Metadata(p(), "model", e);
        crate::sizes::check_arguments(model.input, model.layers.iter().map(|l| (l.name.clone(), &l.kind))).map_err(|e| bad_model(e.to_string()))?;
        model.validate().map_err(|e| bad_model(e.to_string()))?;
        crate::sizes::check_model(&model).map_err(|e| bad_model(e.to_string()))?;
        let input: [u32; 3] = field(path, &meta, "input")?;
        if input != model.input {
            return Err(CheckpointError::Metadata(p(), "input", format!("{input:?}, but the model's input is {:?}", model.input)));
        }
        let classes: Vec<String> = field(path, &meta, "classes")?;
        check_classes(&classes, model.classes() as usize).map_err(|m| CheckpointError::Metadata(p(), "classes", m))?;
        let state: TrainState = field(path, &meta, "state")?;
        check_state(&state).map_err(|e| CheckpointError::Metadata(p(), "state", e))?;
        let provenance = meta.get("provenance").map(|s| serde_json::from_str(s)).transpose().map_err(|e| CheckpointError::Metadata(p(), "provenance", e.to_string()))?;
        let config: OptimizerConfig = meta.get("optimizer").map(|s| serde_json::from_str(s)).transpose().map_err(|e| CheckpointError::Metadata(p(), "optimizer", e.to_string()))?.unwrap_or_default();
        let step_key = config.step_key();
        let step: Option<u32> = meta.get(step_key).map(|s| s.parse()).transpose().map_err(|e: std::num::ParseIntError| CheckpointError::Metadata(p(), step_key, e.to_string()))?;

        let infos = model.params();
        let read = |name: &str, shape: &[u32]| -> Result<Vec<f32>, CheckpointError> {
            let t = st.tensor(name).map_err(|_| CheckpointError::MissingTensor(p(), name.to_string()))?;
            if t.dtype() != Dtype::F32 {
                return Err(CheckpointError::Dtype(p(), name.to_string(), format!("{:?}", t.dtype())));
            }
            if t.shape().iter().map(|&d| d as u64).ne(shape.iter().map(|&d| d as u64)) {
                return Err(CheckpointError::Shape(p(), name.to_string(), t.shape().to_vec(), shape.to_vec()));
            }
            let data: Vec<f32> = bytemuck::pod_collect_to_vec(t.data());
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(CheckpointError::NotFinite(p(), name.to_string(), i, data[i]));
            }
            if let Some(i) = data.iter().position(|&v| v < 0.0).filter(|_| name.starts_with("adam.v.")) {
                return Err(CheckpointError::NegativeMoment(p(), name.to_string(), i, data[i]));
            }
            Ok(data)
        };
        let params = infos.iter().map(|i| read(&i.name, &i.shape)).collect::<Result<Vec<_>, _>>()?;
        let trainable: Vec<_> = infos.iter().filter(|i| i.trainable).collect();
        let moment = |k: usize| trainable.iter().map(|i| read(&config.moment_name(k, &i.name), &i.shape)).collect::<Result<Vec<_>, _>>();
        let optimizer = match step {
            Some(t) => Some(Optimizer { t, m: moment(0)?, v: if config.moments() > 1 { moment(1)? } else { Vec::new() }, config: config.clone() }),
            None => None,
        };
        if let Some(opt) = &optimizer {
            check_optimizer_step(opt.t, &state).map_err(|e| CheckpointError::Metadata(p(), step_key, e))?;
        }
        let expected = infos.len() + if optimizer.is_some() { config.moments() * trainable.len() } else { 0 };
        if st.len() != expected {
            let moments = trainable.iter().flat_map(|i| (0..config.moments()).map(|k| config.moment_name(k, &i.name)));
            let known: Vec<String> = infos.iter().map(|i| i.name.clone()).chain(moments).collect();
            let unexpected = |n: &&str| !known.iter().any(|k| k == n) || (optimizer.is_none() && crate::optimizer::is_state_name(n));
            let extra = st.names().into_iter().find(unexpected).map(str::to_string).unwrap_or_default();
            return Err(CheckpointError::ExtraTensor(p(), extra));
        }
        Ok(Self { model, classes, params, optimizer, state, provenance })
    }

    /// Fails unless `spec` has exactly this checkpoint's layout, naming the first layer that
    /// differs.
    pub fn check_layout(&self, spec: &ModelSpec, path: &Path) -> Result<(), CheckpointError> {
        let diff = |layer: &str, detail: String| Err(CheckpointError::Layout { path: path.to_path_buf(), layer: layer.to_string(), detail });
        // A layer by its config fields (as JSON).
        let kind = |k: &crate::layers::LayerKind| serde_json::to_string(k).unwrap_or_default();
        if spec.input != self.model.input {
            return diff("input", format!("the config has input {:?}, the checkpoint {:?}", spec.input, self.model.input));
        }
        for (i, want) in spec.layers.iter().enumerate() {
            // Freezing is a training setting, not part of the layout.
            match self.model.layers.get(i) {
                Some(have) if have.name == want.name && have.kind == want.kind => {}
                Some(have) => return diff(&want.name, format!("the config has {}, the checkpoint {} {}", kind(&want.kind), have.name, kind(&have.kind))),
                None => return diff(&want.name, "the checkpoint has no such layer".into()),
            }
        }
        if let Some(extra) = self.model.layers.get(spec.layers.len()) {
            return diff(&extra.name, "only the checkpoint has this layer".into());
        }
        Ok(())
    }

    /// Writes the parameters into `net` (which must have this layout: see
    /// [`Checkpoint::check_layout`]), and the optimizer's state when `with_optimizer` (the
    /// network's optimizer must be this one: see [`crate::run::train`]).
    pub fn apply(&self, ctx: &GpuContext, net: &mut Network, with_optimizer: bool) -> Result<(), CheckpointError> {
        for (slot, data) in net.slots.iter().zip(&self.params) {
            net.write_param(ctx, &slot.info.name, data)?;
        }
        if with_optimizer {
            let opt = self.optimizer.as_ref().expect("checked by the caller");
            for (i, slot) in net.slots.iter().filter(|s| s.info.trainable).enumerate() {
                net.write_moments(ctx, &slot.info.name, &opt.m[i], opt.v.get(i).map_or(&[], Vec::as_slice))?;
            }
            net.t = opt.t;
        }
        Ok(())
    }
}
