//! Headless wgpu instance, adapter choice and device creation.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum GpuError {
    #[error("no GPU adapter found{0} (on Linux without a GPU, install Mesa's lavapipe: apt-get install mesa-vulkan-drivers)")]
    NoAdapter(String),
    #[error("no adapter matches --adapter (or GPU_CNN_ADAPTER) '{wanted}'; available: {available}")]
    NoMatch { wanted: String, available: String },
    #[error("unknown backend '{0}': expected vulkan, metal, dx12 or gl")]
    UnknownBackend(String),
    #[error("could not open a device on '{adapter}': {error}")]
    Device { adapter: String, error: wgpu::RequestDeviceError },
    #[error("buffer '{name}' needs {needed} bytes but adapter '{adapter}' allows at most {limit} bytes for {what}")]
    TooLarge { name: String, needed: u64, limit: u64, what: &'static str, adapter: String },
    #[error("the GPU reported an error: {0}")]
    Validation(String),
    #[error("reading back buffer '{0}' failed: {1}")]
    Readback(String, String),
}

/// Which adapter to use: `--adapter <index | name substring | cpu | gpu>`.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum AdapterChoice {
    /// The best one: discrete, then integrated, then virtual, then CPU; Vulkan/Metal/DX12 before GL.
    #[default]
    Auto,
    Index(usize),
    Cpu,
    Gpu,
    Name(String),
}

impl FromStr for AdapterChoice {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "" | "auto" => Self::Auto,
            "cpu" => Self::Cpu,
            "gpu" => Self::Gpu,
            s => match s.parse() {
                Ok(i) => Self::Index(i),
                Err(_) => Self::Name(s.to_lowercase()),
            },
        })
    }
}

impl fmt::Display for AdapterChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Index(i) => write!(f, "{i}"),
            Self::Cpu => f.write_str("cpu"),
            Self::Gpu => f.write_str("gpu"),
            Self::Name(n) => f.write_str(n),
        }
    }
}

/// Parses `--backend`; `None` means every backend compiled in.
pub fn parse_backends(name: Option<&str>) -> Result<wgpu::Backends, GpuError> {
    Ok(match name.map(str::to_lowercase).as_deref() {
        None | Some("") | Some("all") => wgpu::Backends::all(),
        Some("vulkan") => wgpu::Backends::VULKAN,
        Some("metal") => wgpu::Backends::METAL,
        Some("dx12") => wgpu::Backends::DX12,
        Some("gl") => wgpu::Backends::GL,
        Some(other) => return Err(GpuError::UnknownBackend(other.to_string())),
    })
}

/// Lower is better: how the automatic choice ranks adapters.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    (kind, u8::from(info.backend == wgpu::Backend::Gl))
}

fn is_gpu(info: &wgpu::AdapterInfo) -> bool {
    matches!(info.device_type, wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu)
}

/// Lists the adapters of the given backends, in the order `--adapter <index>` uses.
pub fn enumerate(backends: wgpu::Backends) -> (wgpu::Instance, Vec<wgpu::Adapter>) {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    (instance, adapters)
}

/// Index of the adapter `choice` selects among `adapters`, if any.
pub fn select(adapters: &[wgpu::Adapter], choice: &AdapterChoice) -> Option<usize> {
    let infos: Vec<_> = adapters.iter().map(|a| a.get_info()).collect();
    let best = |keep: &dyn Fn(&wgpu::AdapterInfo) -> bool| {
        (0..infos.len()).filter(|&i| keep(&infos[i])).min_by_key(|&i| rank(&infos[i]))
    };
    match choice {
        AdapterChoice::Auto => best(&|_| true),
        AdapterChoice::Index(i) => (*i < infos.len()).then_some(*i),
        AdapterChoice::Cpu => best(&|i| i.device_type == wgpu::DeviceType::Cpu),
        AdapterChoice::Gpu => best(&is_gpu),
        AdapterChoice::Name(n) => best(&|i| i.name.to_lowercase().contains(n)),
    }
}

/// Collects errors wgpu reports outside an error scope, so they come back as one message
/// instead of a panic with a validation dump.
#[derive(Default)]
struct ErrorSink(Mutex<Vec<String>>);

/// Lanes per subgroup when an adapter with `features` has subgroup operations and every
/// subgroup of a 64-invocation workgroup is known to have the same size, which the subgroup
/// kernels need (shaders/subgroup.wgsl).
pub fn fixed_subgroup_size(info: &wgpu::AdapterInfo, features: wgpu::Features) -> Option<u32> {
    let (min, max) = (info.subgroup_min_size, info.subgroup_max_size);
    let fixed = features.contains(wgpu::Features::SUBGROUP) && min == max;
    (fixed && super::kernels::WG.is_multiple_of(min)).then_some(min)
}

/// A device and queue on the chosen adapter, with the limits it was opened with.
pub struct GpuContext {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub timestamps: bool,
    errors: Arc<ErrorSink>,
}

/// Mesa's Vulkan drivers probe Wayland, whose client library prints "error: XDG_RUNTIME_DIR is
/// invalid or not set in the environment." (twice) where the variable is unset or not an
/// absolute path, as on servers and in containers: a line users take for gpu-cnn's own error.
/// Such an environment gets a private folder (mode 0700, ours) under the temp dir, as a login
/// session would have; where none can be had, the variable is left as it was. Call before any
/// thread starts (it sets an environment variable).
pub fn ensure_runtime_dir() {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_absolute()) {
            return;
        }
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        let dir = std::env::temp_dir().join(format!("gpu-cnn-runtime-{uid}"));
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        // A link, or a folder another user made or others can enter, is not ours to use.
        let private = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o777 == 0o700);
        if private && dir.is_absolute() {
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
}

impl GpuContext {
    /// Opens the adapter `choice` selects on `backends`, requesting every limit it offers (so
    /// models up to the adapter's real capacity fit) and timestamp queries where it has them.
    pub fn new(choice: &AdapterChoice, backends: wgpu::Backends) -> Result<Self, GpuError> {
        let (_instance, adapters) = enumerate(backends);
        if adapters.is_empty() {
            let which = if backends == wgpu::Backends::all() { String::new() } else { format!(" for backend {backends:?}") };
            return Err(GpuError::NoAdapter(which));
        }
        let index = select(&adapters, choice).ok_or_else(|| GpuError::NoMatch {
            wanted: choice.to_string(),
            available: adapters
                .iter()
                .enumerate()
                .map(|(i, a)| format!("[{i}] {} ({:?})", a.get_info().name, a.get_info().backend))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        let adapter = adapters.into_iter().nth(index).expect("index from select");
        Self::open(adapter)
    }

    /// The default choice, with `GPU_CNN_ADAPTER` / `GPU_CNN_BACKEND` honoured (tests use this).
    pub fn from_env() -> Result<Self, GpuError> {
        let choice: AdapterChoice = std::env::var("GPU_CNN_ADAPTER").unwrap_or_default().parse().unwrap();
        let backends = parse_backends(std::env::var("GPU_CNN_BACKEND").ok().as_deref())?;
        Self::new(&choice, backends)
    }

    fn open(adapter: wgpu::Adapter) -> Result<Self, GpuError> {
        let info = adapter.get_info();
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP;
        let features = adapter.features() & wanted;
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("gpu-cnn"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|error| GpuError::Device { adapter: info.name.clone(), error })?;
        let errors = Arc::new(ErrorSink::default());
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.0.lock().unwrap().push(e.to_string());
        }));
        Ok(Self { adapter, device, queue, info, limits, timestamps, errors })
    }

    /// Lanes per subgroup when the subgroup kernels can run here (see [`fixed_subgroup_size`]).
    pub fn subgroup_size(&self) -> Option<u32> {
        fixed_subgroup_size(&self.info, self.device.features())
    }

    /// One line naming the adapter, for benchmark and training output.
    pub fn describe(&self) -> String {
        format!("{} ({:?}, {:?})", self.info.name, self.info.backend, self.info.device_type)
    }

    /// Fails with the first error wgpu reported since the last check (e.g. after building a
    /// network), so a mistake surfaces once, with context, instead of as a later panic.
    pub fn check_errors(&self) -> Result<(), GpuError> {
        let mut errors = self.errors.0.lock().unwrap();
        match errors.is_empty() {
            true => Ok(()),
            false => Err(GpuError::Validation(std::mem::take(&mut *errors).join("; "))),
        }
    }

    /// Fails with a message naming the buffer and both sizes when `bytes` cannot be one storage
    /// binding on this adapter.
    pub fn check_fits(&self, name: &str, bytes: u64) -> Result<(), GpuError> {
        let too_large = |limit: u64, what| GpuError::TooLarge {
            name: name.to_string(),
            needed: bytes,
            limit,
            what,
            adapter: self.info.name.clone(),
        };
        if bytes > self.limits.max_buffer_size {
            return Err(too_large(self.limits.max_buffer_size, "one buffer"));
        }
        if bytes > self.limits.max_storage_buffer_binding_size {
            return Err(too_large(self.limits.max_storage_buffer_binding_size, "one storage binding"));
        }
        Ok(())
    }

    /// Blocks until all submitted work is done.
    pub fn wait(&self) {
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
    }
}
