//! Storage buffers: creation with a size check, uploads, and blocking readback (tests and
//! epoch ends only; a training step never reads back).

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use super::{GpuContext, GpuError};

/// A range of 4-byte elements (f32 or u32) in a buffer, as a kernel binds it. Offsets of views
/// that are bound must be multiples of the adapter's storage offset alignment (256 bytes at
/// most, so 64 elements).
#[derive(Clone, Debug)]
pub struct View {
    pub buffer: wgpu::Buffer,
    /// In elements.
    pub offset: u64,
    /// In elements.
    pub len: u64,
}

impl View {
    pub fn whole(buffer: &wgpu::Buffer) -> Self {
        Self { buffer: buffer.clone(), offset: 0, len: buffer.size() / 4 }
    }

    pub fn slice(&self, offset: u64, len: u64) -> Self {
        assert!(offset + len <= self.len, "view slice out of range");
        Self { buffer: self.buffer.clone(), offset: self.offset + offset, len }
    }

    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        self.bind(self.len.max(1))
    }

    /// The view as `array<vec4<f32>>`: its length rounded up to whole quads, which stays inside
    /// the buffer because allocations are padded to quads and views start on one.
    pub fn quads(&self) -> wgpu::BindingResource<'_> {
        let len = self.len.max(1).next_multiple_of(4);
        assert!(self.offset.is_multiple_of(4) && (self.offset + len) * 4 <= self.buffer.size(), "view is not quad-aligned");
        self.bind(len)
    }

    fn bind(&self, len: u64) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: &self.buffer, offset: self.offset * 4, size: wgpu::BufferSize::new(len * 4) })
    }
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl GpuContext {
    /// A zeroed storage buffer of `len` 4-byte elements, checked against the adapter's limits.
    /// The allocation is padded to whole quads (zeros) so vec4 kernels can bind it as quads.
    pub fn storage(&self, name: &str, len: u64) -> Result<View, GpuError> {
        let bytes = len.max(1).next_multiple_of(4) * 4;
        self.check_fits(name, bytes)?;
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size: bytes,
            usage: STORAGE,
            mapped_at_creation: false,
        });
        Ok(View { buffer, offset: 0, len })
    }

    /// A storage buffer holding `data`.
    pub fn upload<T: Pod>(&self, name: &str, data: &[T]) -> Result<View, GpuError> {
        let view = self.storage(name, data.len() as u64)?;
        self.queue.write_buffer(&view.buffer, 0, bytemuck::cast_slice(data));
        Ok(view)
    }

    /// A uniform buffer holding `value`.
    pub fn uniform<T: Pod>(&self, name: &str, value: &T) -> wgpu::Buffer {
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(name),
            contents: bytemuck::bytes_of(value),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// Copies a view back to the host, waiting for the GPU. Not for use inside a training epoch.
    pub fn read<T: Pod>(&self, view: &View) -> Result<Vec<T>, GpuError> {
        let bytes = view.len * 4;
        let name = format!("{} elements at offset {}", view.len, view.offset);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&view.buffer, view.offset * 4, &staging, 0, bytes);
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait();
        rx.recv()
            .map_err(|e| GpuError::Readback(name.clone(), e.to_string()))?
            .map_err(|e| GpuError::Readback(name.clone(), e.to_string()))?;
        let data = staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::Readback(name.clone(), e.to_string()))?;
        let out = bytemuck::cast_slice(&data[..bytes as usize]).to_vec();
        drop(data);
        staging.unmap();
        self.check_errors()?;
        Ok(out)
    }

    /// Overwrites a view's whole buffer, padding included, with one f32 value (tests poison
    /// outputs with NaN).
    pub fn fill(&self, view: &View, value: f32) {
        let data = vec![value; (view.buffer.size() / 4) as usize];
        self.queue.write_buffer(&view.buffer, 0, bytemuck::cast_slice(&data));
    }
}
