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
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset * 4,
            size: wgpu::BufferSize::new(self.len.max(1) * 4),
        })
    }
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl GpuContext {
    /// A zeroed storage buffer of `len` 4-byte elements, checked against the adapter's limits.
    pub fn storage(&self, name: &str, len: u64) -> Result<wgpu::Buffer, GpuError> {
        let bytes = len.max(1) * 4;
        self.check_fits(name, bytes)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size: bytes,
            usage: STORAGE,
            mapped_at_creation: false,
        }))
    }

    /// A storage buffer holding `data`.
    pub fn upload<T: Pod>(&self, name: &str, data: &[T]) -> Result<wgpu::Buffer, GpuError> {
        let buffer = self.storage(name, data.len() as u64)?;
        self.queue.write_buffer(&buffer, 0, bytemuck::cast_slice(data));
        Ok(buffer)
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

    /// Overwrites a whole buffer with one f32 value (tests poison outputs with NaN).
    pub fn fill(&self, buffer: &wgpu::Buffer, value: f32) {
        let data = vec![value; (buffer.size() / 4) as usize];
        self.queue.write_buffer(buffer, 0, bytemuck::cast_slice(&data));
    }
}
