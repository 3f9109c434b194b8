// Batch normalisation over the last axis of x seen as [rows, channels], rows = images x pixels.
// Only the batch's valid rows (step.rows images) count; the gradient of the others is zero.
// Reductions are split over row chunks and the chunks merged in order: no float atomics.

struct Norm {
    pixels: u32,         // rows per image (h * w, or 1 after a dense layer)
    channels: u32,
    capacity_rows: u32,  // rows the buffers hold
    splits: u32,
    rows_per_split: u32,
    _pad: u32,
    frozen: u32,         // inference mode in every pass (a frozen layer)
    // Rows per image the statistics count: pixels, except when the backward sums run over a
    // max pool's windows (rows = windows; see Kernels::batchnorm_window_sums).
    counted_pixels: u32,
    momentum: f32,
    epsilon: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Norm;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> x: array<f32>;                  // [rows, channels]
@group(0) @binding(3) var<storage, read> dy: array<f32>;                 // [rows, channels]
// gamma and beta are read-only in effect; bound read-write because the moving statistics,
// written beside them, live in the same parameter buffer (one dispatch may not bind a buffer
// both ways).
@group(0) @binding(4) var<storage, read_write> gamma: array<f32>;              // [channels] (ones without `scale`)
@group(0) @binding(5) var<storage, read_write> beta: array<f32>;               // [channels] (zeros without `center`)
@group(0) @binding(6) var<storage, read_write> moving_mean: array<f32>;  // [channels]
@group(0) @binding(7) var<storage, read_write> moving_var: array<f32>;   // [channels]
// Per channel, each [channels]: mean | 1 / sqrt(var + eps) | the forward's scale and shift
// (y = x * scale + shift) | the backward's dx = a * dy + b * x + c coefficients a, b, c.
@group(0) @binding(8) var<storage, read_write> stats: array<f32>;
@group(0) @binding(9) var<storage, read_write> partial: array<f32>;      // scratch, [3, splits, channels]
@group(0) @binding(10) var<storage, read_write> out: array<f32>;         // y or dx, [rows, channels]
@group(0) @binding(11) var<storage, read_write> dgamma: array<f32>;      // [channels] (a throwaway without `scale`)
@group(0) @binding(12) var<storage, read_write> dbeta: array<f32>;       // [channels] (a throwaway without `center`)
// The element-wise kernels move quads: 4 values per load (CPU adapters run every load lane by
// lane), with the per-channel coefficients as quads too when channels % 4 == 0.
@group(0) @binding(13) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(15) var<storage, read> coef4: array<vec4<f32>>;   // stats, read-only
@group(0) @binding(16) var<storage, read_write> out4: array<vec4<f32>>;

const MEAN: u32 = 0u;
const INV: u32 = 1u;
const SCALE: u32 = 2u;
const SHIFT: u32 = 3u;
const DY_COEF: u32 = 4u;
const X_COEF: u32 = 5u;
const OFFSET: u32 = 6u;

// Batch statistics (training) or the moving ones (inference, or a frozen layer).
fn training() -> bool {
    return step.training != 0u && p.frozen == 0u;
}

fn valid_rows() -> u32 {
    return min(step.rows * p.pixels, p.capacity_rows);
}

// The rows [r0, r1) of split `s`, cut to the valid rows.
fn split_rows(s: u32) -> vec2<u32> {
    let r0 = min(s * p.rows_per_split, valid_rows());
    return vec2<u32>(r0, min(r0 + p.rows_per_split, valid_rows()));
}

// The split of invocation id on the quad path of the reductions, its channel quad, and the
// rows [r0, r1) it sums: (split, quad, r0, r1).
fn split_quad(id: u32) -> vec4<u32> {
    let quads = p.channels / 4u;
    let split = id / quads;
    return vec4<u32>(split, id - split * quads, split_rows(split));
}

// Chan et al.'s merge of two (count, mean, M2) summaries.
fn merge(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
    if (b.x == 0.0) { return a; }
    let n = a.x + b.x;
    let delta = b.y - a.y;
    return vec3<f32>(n, a.y + delta * (b.x / n), a.z + b.z + delta * delta * (a.x * b.x / n));
}

// batchnorm_stats_partial: Welford's count, mean and M2 of each channel over split s's rows,
// into partial[k, s, c]. Training only (inference uses the moving statistics). Overwrites
// partial. Dispatch: linear over splits * channels / 4 invocations (a channel quad each) when
// channels % 4 == 0, else over splits * channels.
@compute @workgroup_size(64)
fn batchnorm_stats_partial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (!training()) { return; }
    let stride = p.splits * p.channels;
    if (p.channels % 4u == 0u) {
        let quads = p.channels / 4u;
        if (id >= p.splits * quads) { return; }
        let at = split_quad(id);
        let c4 = at.y;
        let r = at.zw;
        // The count is shared by the quad: one division per row.
        var n = 0.0;
        var mean = vec4<f32>(0.0);
        var m2 = vec4<f32>(0.0);
        for (var row = r.x; row < r.y; row++) {
            let v = x4[row * quads + c4];
            n += 1.0;
            let d = v - mean;
            mean += d * (1.0 / n);
            m2 += d * (v - mean);
        }
        let base = at.x * p.channels + 4u * c4;
        for (var j = 0u; j < 4u; j++) {
            partial[base + j] = n;
            partial[stride + base + j] = mean[j];
            partial[2u * stride + base + j] = m2[j];
        }
        return;
    }
    if (id >= stride) { return; }
    let c = id % p.channels;
    let r = split_rows(id / p.channels);
    var acc = vec3<f32>(0.0);
    for (var row = r.x; row < r.y; row++) {
        let v = x[row * p.channels + c];
        acc.x += 1.0;
        let d = v - acc.y;
        acc.y += d / acc.x;
        acc.z += d * (v - acc.y);
    }
    partial[id] = acc.x;
    partial[stride + id] = acc.y;
    partial[2u * stride + id] = acc.z;
}

// batchnorm_stats_finish: per channel, the forward's scale and shift. In training: merges the
// splits in order into the batch mean and biased variance, stores the mean and
// 1 / sqrt(var + eps), and moves the moving statistics toward them (moving = moving * momentum +
// stat * (1 - momentum), Keras 3); in inference: from the moving statistics.
// Dispatch: linear over channels invocations.
@compute @workgroup_size(64)
fn batchnorm_stats_finish(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = linear_id(gid, nwg);
    if (c >= p.channels) { return; }
    var mean = moving_mean[c];
    var inv = 1.0 / sqrt(moving_var[c] + p.epsilon);
    if (training()) {
        let stride = p.splits * p.channels;
        var acc = vec3<f32>(0.0);
        for (var s = 0u; s < p.splits; s++) {
            let i = s * p.channels + c;
            acc = merge(acc, vec3<f32>(partial[i], partial[stride + i], partial[2u * stride + i]));
        }
        let variance = acc.z / max(acc.x, 1.0);
        mean = acc.y;
        inv = 1.0 / sqrt(variance + p.epsilon);
        moving_mean[c] = moving_mean[c] * p.momentum + mean * (1.0 - p.momentum);
        moving_var[c] = moving_var[c] * p.momentum + variance * (1.0 - p.momentum);
    }
    stats[MEAN * p.channels + c] = mean;
    stats[INV * p.channels + c] = inv;
    stats[SCALE * p.channels + c] = gamma[c] * inv;
    stats[SHIFT * p.channels + c] = beta[c] - mean * gamma[c] * inv;
    if (!training()) {
        // With fixed statistics dx = gamma * inv * dy: what a frozen layer's backward uses.
        stats[DY_COEF * p.channels + c] = gamma[c] * inv;
        stats[X_COEF * p.channels + c] = 0.0;
        stats[OFFSET * p.channels + c] = 0.0;
    }
}

// The channel of flat element index e.
fn channel_of(e: u32) -> u32 {
    return e - div(e, p.channels) * p.channels;
}

// Coefficient array `k` (MEAN, ..., OFFSET) for the 4 consecutive elements from one of channel
// c0 (channels % 4 != 0: they may span two rows).
fn coefs(k: u32, c0: u32) -> vec4<f32> {
    let base = k * p.channels;
    var out: vec4<f32>;
    for (var j = 0u; j < 4u; j++) {
        let i = base + (c0 + j) % p.channels;
        out[j] = coef4[i / 4u][i % 4u];
    }
    return out;
}

// Coefficient array `k` of channel c.
fn coef(k: u32, c: u32) -> f32 {
    let i = k * p.channels + c;
    return coef4[i / 4u][i % 4u];
}

// The gradient at the normalisation's output from dy at the layer's: the fused activation's
// derivative is recomputed from x (its pre-activation is x * scale + shift), so no pass of its
// own, and silu and gelu fuse here as the others do.
fn masked(dy: vec4<f32>, x: vec4<f32>, scale: vec4<f32>, shift: vec4<f32>) -> vec4<f32> {
    if (ACTIVATION == ACT_LINEAR) { return dy; }
    return dy * activation_grad_at(x * scale + shift);
}

// Rows per invocation of the element-wise kernels when channels % 4 == 0: each invocation
// takes one channel quad down ROWS rows, loading its coefficients once and dividing once.
// (On lavapipe, 32 rows ran the whole layer 1.2x faster than 8, and 2 rows 1.5x slower.)
const ROWS: u32 = 32u;

// (first row, channel quad) of invocation id on the quad path.
fn row_block(id: u32) -> vec2<u32> {
    let quads = p.channels / 4u;
    let block = div(id, quads);
    return vec2<u32>(block * ROWS, id - block * quads);
}

// batchnorm_forward: out = act(x * scale + shift), that is act(gamma * (x - mean) /
// sqrt(var + eps) + beta) with the batch's statistics in training and the moving ones otherwise.
// Overwrites out (the padding of the last quad included). Dispatch: linear over
// ceil(capacity_rows / ROWS) * channels / 4 invocations when channels % 4 == 0, else over
// ceil(capacity_rows * channels / 4) (one quad of consecutive elements each).
@compute @workgroup_size(64)
fn batchnorm_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (p.channels % 4u == 0u) {
        let quads = p.channels / 4u;
        let at = row_block(id);
        if (at.x >= p.capacity_rows) { return; }
        let scale = coef4[SCALE * quads + at.y];
        let shift = coef4[SHIFT * quads + at.y];
        for (var r = at.x; r < min(at.x + ROWS, p.capacity_rows); r++) {
            let q = r * quads + at.y;
            out4[q] = activate(x4[q] * scale + shift);
        }
        return;
    }
    if (4u * id >= p.capacity_rows * p.channels) { return; }
    let c = channel_of(4u * id);
    out4[id] = activate(x4[id] * coefs(SCALE, c) + coefs(SHIFT, c));
}

// batchnorm_backward_partial: sums of g and g * x_hat of each channel over split s's rows, into
// partial[k, s, c], where g is dy times any fused activation's derivative. Overwrites partial.
// Dispatch: as batchnorm_stats_partial.
@compute @workgroup_size(64)
fn batchnorm_backward_partial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let stride = p.splits * p.channels;
    if (p.channels % 4u == 0u) {
        let quads = p.channels / 4u;
        if (id >= p.splits * quads) { return; }
        let at = split_quad(id);
        let c4 = at.y;
        let r = at.zw;
        let mean = coef4[MEAN * quads + c4];
        let scale = coef4[SCALE * quads + c4];
        let shift = coef4[SHIFT * quads + c4];
        var sum_g = vec4<f32>(0.0);
        var sum_g_xc = vec4<f32>(0.0);
        for (var row = r.x; row < r.y; row++) {
            let q = row * quads + c4;
            let v = x4[q];
            let g = masked(dy4[q], v, scale, shift);
            sum_g += g;
            sum_g_xc += g * (v - mean);
        }
        let base = at.x * p.channels + 4u * c4;
        let sum_g_xhat = sum_g_xc * coef4[INV * quads + c4];
        for (var j = 0u; j < 4u; j++) {
            partial[base + j] = sum_g[j];
            partial[stride + base + j] = sum_g_xhat[j];
        }
        return;
    }
    if (id >= stride) { return; }
    let c = id % p.channels;
    let r = split_rows(id / p.channels);
    let mean = coef(MEAN, c);
    let scale = vec4<f32>(coef(SCALE, c));
    let shift = vec4<f32>(coef(SHIFT, c));
    var sum_g = 0.0;
    var sum_g_xc = 0.0;
    for (var row = r.x; row < r.y; row++) {
        let i = row * p.channels + c;
        let g = masked(vec4<f32>(dy[i]), vec4<f32>(x[i]), scale, shift).x;
        sum_g += g;
        sum_g_xc += g * (x[i] - mean);
    }
    partial[id] = sum_g;
    partial[stride + id] = sum_g_xc * coef(INV, c);
}

// batchnorm_backward_finish: adds the splits in order into dbeta = sum dy and dgamma =
// sum dy * x_hat (overwritten), and stores dx's coefficients: over the n valid rows of the
// normalised tensor,
// dx = gamma * inv * (dy - sum dy / n - x_hat * sum dy x_hat / n) = a * dy + b * x + c.
// Dispatch: linear over channels invocations.
@compute @workgroup_size(64)
fn batchnorm_backward_finish(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = linear_id(gid, nwg);
    if (c >= p.channels) { return; }
    let stride = p.splits * p.channels;
    var sum_dy = 0.0;
    var sum_dy_xhat = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        sum_dy += partial[s * p.channels + c];
        sum_dy_xhat += partial[stride + s * p.channels + c];
    }
    dgamma[c] = sum_dy_xhat;
    dbeta[c] = sum_dy;
    let n = f32(max(valid_rows() / p.pixels * p.counted_pixels, 1u));
    let mean = stats[MEAN * p.channels + c];
    let inv = stats[INV * p.channels + c];
    let a = gamma[c] * inv;
    let b = -a * inv * sum_dy_xhat / n;
    stats[DY_COEF * p.channels + c] = a;
    stats[X_COEF * p.channels + c] = b;
    stats[OFFSET * p.channels + c] = -b * mean - a * sum_dy / n;
}

// batchnorm_backward_input: out = dx = a * g + b * x + c on the valid rows (g: dy through any
// fused activation's derivative), 0 on the rest. Overwrites out. Dispatch: as batchnorm_forward.
@compute @workgroup_size(64)
fn batchnorm_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let valid = valid_rows();
    if (p.channels % 4u == 0u) {
        let quads = p.channels / 4u;
        let at = row_block(id);
        if (at.x >= p.capacity_rows) { return; }
        let a = coef4[DY_COEF * quads + at.y];
        let b = coef4[X_COEF * quads + at.y];
        let c = coef4[OFFSET * quads + at.y];
        let scale = coef4[SCALE * quads + at.y];
        let shift = coef4[SHIFT * quads + at.y];
        for (var r = at.x; r < min(at.x + ROWS, p.capacity_rows); r++) {
            let q = r * quads + at.y;
            let v = x4[q];
            out4[q] = select(vec4<f32>(0.0), a * masked(dy4[q], v, scale, shift) + b * v + c, r < valid);
        }
        return;
    }
    if (4u * id >= p.capacity_rows * p.channels) { return; }
    let e = 4u * id;
    let c = channel_of(e);
    let v = x4[id];
    let g = masked(dy4[id], v, coefs(SCALE, c), coefs(SHIFT, c));
    let dx = coefs(DY_COEF, c) * g + coefs(X_COEF, c) * v + coefs(OFFSET, c);
    let in_valid = vec4<u32>(e) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(valid * p.channels);
    out4[id] = select(vec4<f32>(0.0), dx, in_valid);
}
