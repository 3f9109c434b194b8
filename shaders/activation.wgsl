// Element-wise activations that are not fused into a producer's store, and dropout.

struct Elementwise {
    len: u32,        // elements
    cols: u32,       // row length (softmax)
    seed: u32,       // dropout: per-layer seed, mixed with the step number
    rate: f32,       // dropout: fraction of elements zeroed
}

@group(0) @binding(0) var<uniform> p: Elementwise;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> act: array<vec4<f32>>;       // activation_*: the input (or saved tensor)
@group(0) @binding(5) var<storage, read_write> grad: array<vec4<f32>>; // activation_forward: y; activation_backward: in place

// activation_forward: y = f(x) for ACTIVATION, one quad each; the padding of the
// last quad stays zero. Dispatch: linear over ceil(len / 4) invocations.
@compute @workgroup_size(64)
fn activation_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (4u * i >= p.len) { return; }
    let valid = vec4<u32>(4u * i) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.len);
    grad[i] = select(vec4<f32>(0.0), activate(act[i]), valid);
}

// activation_backward: in place, grad *= f'(z), from act = the activation's output where its
// derivative follows from it (grad_from_output), else its input z. Turns the gradient at a
// layer's (or a fused conv/dense's) output into the gradient at its pre-activation.
// Dispatch: linear over ceil(len / 4) invocations, one quad each (the zero padding of the last
// quad stays zero).
@compute @workgroup_size(64)
fn activation_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= arrayLength(&grad)) { return; }
    grad[i] *= activation_grad(act[i]);
}

// sigmoid_forward: y = 1 / (1 + exp(-x)). Dispatch: linear over len invocations.
@compute @workgroup_size(64)
fn sigmoid_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.len) { return; }
    y[i] = sigmoid(x[i]);
}

// softmax_forward: y[r, :] = softmax(x[r, :]) over rows of p.cols, max-shifted.
// Dispatch: linear over len / cols invocations (one per row).
@compute @workgroup_size(64)
fn softmax_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = linear_id(gid, nwg);
    if (r * p.cols >= p.len) { return; }
    let base = r * p.cols;
    var m = x[base];
    for (var j = 1u; j < p.cols; j++) { m = max(m, x[base + j]); }
    var sum = 0.0;
    for (var j = 0u; j < p.cols; j++) { sum += exp(x[base + j] - m); }
    for (var j = 0u; j < p.cols; j++) { y[base + j] = exp(x[base + j] - m) / sum; }
}

// A 32-bit integer hash (lowbias32, Chris Wellons): a counter-based RNG with no state to keep.
fn hash(v: u32) -> u32 {
    var h = v;
    h ^= h >> 16u; h *= 0x7feb352du;
    h ^= h >> 15u; h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

// dropout_mask: inverted dropout, y = x * keep / (1 - rate) with keep drawn from
// hash(seed, step, i), so the mask is new each step and the same within one. The backward pass
// is this same kernel applied to the gradient (same seed, same step: same mask). When
// step.training == 0, y = x. Dispatch: linear over len invocations.
@compute @workgroup_size(64)
fn dropout_mask(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.len) { return; }
    if (step.training == 0u) { y[i] = x[i]; return; }
    let u = f32(hash(i ^ hash(p.seed ^ hash(step.seq))) >> 8u) * (1.0 / 16777216.0);
    y[i] = select(0.0, x[i] / (1.0 - p.rate), u >= p.rate);
}
