// Skip connections: the sum of two maps (Keras `Add`) with a fused activation (ACTIVATION, one
// whose derivative follows from its output: common.wgsl), and the
// delivery of a gradient to a value read by several layers (see src/model/graph.rs). Both work
// on quads: allocations are padded to whole quads, and the padding stays zero (0 + 0, and the
// masked or added gradient of a zero padding is zero).

struct Add {
    quads: u32,
    _pad: u32,
    in_place: u32,    // add_backward*: also write the delivered gradient back into dy
    accumulate: u32,  // add_backward*: dx += g instead of dx = g
}

@group(0) @binding(0) var<uniform> p: Add;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dy: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dx: array<vec4<f32>>;

// add_forward: y = act(a + b). Dispatch: linear over p.quads.
@compute @workgroup_size(64)
fn add_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.quads) { return; }
    y[i] = activate(a[i] + b[i]);
}

// add_backward: g = dy; dx = g or dx += g; with p.in_place, dy = g too (for the input whose
// gradient is dy's buffer). add_backward_activated: g = dy * act'(the add's output y, bound as
// `a`). Two entry points, as a pipeline binds only what its entry point reads.
// Dispatch: linear over p.quads.
@compute @workgroup_size(64)
fn add_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.quads) { return; }
    deliver(i, dy[i]);
}

@compute @workgroup_size(64)
fn add_backward_activated(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.quads) { return; }
    deliver(i, dy[i] * activation_grad(a[i]));
}

fn deliver(i: u32, g: vec4<f32>) {
    if (p.in_place != 0u) { dy[i] = g; }
    if (p.accumulate != 0u) { dx[i] += g; } else { dx[i] = g; }
}
