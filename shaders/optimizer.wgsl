// The optimizer step in Keras 3 form, over one flat buffer holding every trainable tensor of the
// network, so one dispatch updates the whole model. The learning rate, Adam's betas, eps and
// bias-corrected step size come from the per-step uniform: a schedule changes them with a 48-byte
// write, never a rebuild. The buffers are bound as quads (vec4): one load moves four parameters,
// which is what makes these memory-bound kernels fast on CPU adapters. The zero padding of the
// last quad stays zero (zero gradient, zero moments, zero step).
//
// Per-tensor settings live in two tables of one entry per chunk of CHUNK_QUADS quads (64
// parameters: every tensor starts on a chunk, so no chunk holds two): `decay`, the decoupled
// weight decay (0 where the tensor is excluded), and `scale`, the factor its gradient is clipped
// by (1 unless a clip kernel below wrote it this step).

const CHUNK_QUADS: u32 = 16u;

struct Sgd {
    momentum: f32,
    nesterov: u32,
    _pad0: u32,
    _pad1: u32,
}

struct Clip {
    norm: f32,   // clipnorm or global_clipnorm
    chunks: u32, // chunks of the trainable buffer
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read_write> params: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> grads: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> m: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> decay: array<f32>;        // [chunks]
@group(0) @binding(6) var<storage, read_write> scale: array<f32>;  // [chunks]
@group(0) @binding(7) var<uniform> sgd: Sgd;
@group(0) @binding(8) var<uniform> clip: Clip;
@group(0) @binding(9) var<storage, read_write> partial: array<f32>;  // [chunks]
@group(0) @binding(10) var<storage, read> ranges: array<vec2<u32>>; // [tensors]: first chunk, end

// Keras applies weight decay before the gradient step: w -= lr * wd * w. Skipped where wd is 0,
// so that such weights (a -0.0 included) take exactly Adam's step as before decay existed.
fn decayed(i: u32, c: u32) -> vec4<f32> {
    let d = step.lr * decay[c];
    if (d == 0.0) { return params[i]; }
    return params[i] - d * params[i];
}

// adam_update: g = grad * scale; w = decayed(w); m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
// w -= lr_t * m / (sqrt(v) + eps), lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t) (AdamW is Adam
// with decay). Updates params, m and v in place.
// Dispatch: linear over arrayLength(params) invocations (quads).
@compute @workgroup_size(64)
fn adam_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= arrayLength(&params)) { return; }
    let c = i / CHUNK_QUADS;
    let g = grads[i] * scale[c];
    let w = decayed(i, c);
    let mi = m[i] + (g - m[i]) * (1.0 - step.beta1);
    let vi = v[i] + (g * g - v[i]) * (1.0 - step.beta2);
    m[i] = mi;
    v[i] = vi;
    params[i] = w - step.lr_t * mi / (sqrt(vi) + step.eps);
}

// sgd_update: g = grad * scale; w = decayed(w); m = momentum * m - lr * g; then
// w += momentum * m - lr * g (Nesterov) or w += m. Updates params and m in place.
// Dispatch: linear over arrayLength(params) invocations (quads).
@compute @workgroup_size(64)
fn sgd_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= arrayLength(&params)) { return; }
    let c = i / CHUNK_QUADS;
    let g = grads[i] * scale[c];
    let w = decayed(i, c);
    let mi = sgd.momentum * m[i] - step.lr * g;
    m[i] = mi;
    if (sgd.nesterov != 0u) {
        params[i] = w + (sgd.momentum * mi - step.lr * g);
    } else {
        params[i] = w + mi;
    }
}

// grad_norm_partials: partial[c] = the sum of squares of chunk c's 64 gradients, in order.
// Overwrites partial.
// Dispatch: linear over clip.chunks invocations.
@compute @workgroup_size(64)
fn grad_norm_partials(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = linear_id(gid, nwg);
    if (c >= clip.chunks) { return; }
    var acc = 0.0;
    for (var q = c * CHUNK_QUADS; q < (c + 1u) * CHUNK_QUADS; q++) {
        acc += dot(grads[q], grads[q]);
    }
    partial[c] = acc;
}

const CLIP_WG: u32 = 256u;

var<workgroup> sums: array<f32, CLIP_WG>;

// The sum of partial[first..end): each invocation adds a strided share in order, then a
// fixed tree adds the shares. Every invocation gets the total.
fn sum_partials_of(lid: u32, first: u32, end: u32) -> f32 {
    var acc = 0.0;
    for (var c = first + lid; c < end; c += CLIP_WG) { acc += partial[c]; }
    sums[lid] = acc;
    workgroupBarrier();
    for (var half = CLIP_WG / 2u; half > 0u; half /= 2u) {
        if (lid < half) { sums[lid] += sums[lid + half]; }
        workgroupBarrier();
    }
    return sums[0];
}

// Keras' clip_by_norm factor, exactly 1 when the norm is within the limit.
fn clip_scale(sum_squares: f32) -> f32 {
    return clip.norm / max(sqrt(sum_squares), clip.norm);
}

// clip_by_norm (Keras `clipnorm`): for tensor t = the workgroup, the scale of its chunks
// ranges[t] = clip.norm / max(||g_t||, clip.norm), from grad_norm_partials' sums. Overwrites them.
// Dispatch: one workgroup of 256 per tensor.
@compute @workgroup_size(256)
fn clip_by_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r = ranges[wid.x];
    let s = clip_scale(sum_partials_of(lid, r.x, r.y));
    for (var c = r.x + lid; c < r.y; c += CLIP_WG) { scale[c] = s; }
}

// clip_by_global_norm (Keras `global_clipnorm`): every chunk's scale = clip.norm / max(||g||,
// clip.norm), ||g|| over every trainable tensor together. Overwrites scale.
// Dispatch: exactly 1 workgroup of 256.
@compute @workgroup_size(256)
fn clip_by_global_norm(@builtin(local_invocation_index) lid: u32) {
    let s = clip_scale(sum_partials_of(lid, 0u, clip.chunks));
    for (var c = lid; c < clip.chunks; c += CLIP_WG) { scale[c] = s; }
}
