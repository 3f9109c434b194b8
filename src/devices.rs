//! `gpu-cnn devices`: every adapter with the facts that decide whether a model fits and runs.

use std::fmt::Write;

use crate::gpu::context::{enumerate, fixed_subgroup_size, select, AdapterChoice};

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

/// The listing, with `*` on the adapter `choice` would pick.
pub fn report(choice: &AdapterChoice, backends: wgpu::Backends) -> String {
    let (_instance, adapters) = enumerate(backends);
    if adapters.is_empty() {
        return "no adapters found (on Linux without a GPU: apt-get install mesa-vulkan-drivers)\n".into();
    }
    let chosen = select(&adapters, choice);
    let mut out = String::new();
    for (i, adapter) in adapters.iter().enumerate() {
        let info = adapter.get_info();
        let l = adapter.limits();
        let ts = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let mark = if chosen == Some(i) { '*' } else { ' ' };
        let _ = writeln!(out, "{mark} [{i}] {} ({:?}, {:?})", info.name, info.backend, info.device_type);
        let _ = writeln!(out, "      driver: {} {}", info.driver, info.driver_info);
        let _ = writeln!(
            out,
            "      storage binding {}, buffer {}, workgroup storage {} KiB, {} invocations/workgroup, {} storage buffers/stage, timestamps: {}",
            mib(l.max_storage_buffer_binding_size),
            mib(l.max_buffer_size),
            l.max_compute_workgroup_storage_size / 1024,
            l.max_compute_invocations_per_workgroup,
            l.max_storage_buffers_per_shader_stage,
            if ts { "yes" } else { "no" },
        );
        let (min, max) = (info.subgroup_min_size, info.subgroup_max_size);
        let subgroups = match fixed_subgroup_size(&info, adapter.features()) {
            Some(lanes) => format!("{lanes} lanes (subgroup kernels)"),
            None if adapter.features().contains(wgpu::Features::SUBGROUP) => format!("{min}-{max} lanes (plain kernels)"),
            None => "none (plain kernels)".into(),
        };
        let _ = writeln!(out, "      subgroups: {subgroups}");
    }
    match chosen {
        Some(i) => {
            let _ = writeln!(out, "* = chosen by --adapter {choice} (index {i})");
        }
        None => {
            let _ = writeln!(out, "no adapter matches --adapter (or GPU_CNN_ADAPTER) {choice}");
        }
    }
    out
}
