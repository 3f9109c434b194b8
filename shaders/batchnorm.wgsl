// Batch normalisation over the last axis of x seen as [rows, channels], rows = images x pixels.
// Only the batch's valid rows (step.rows images) count; the gradient of the others is zero.
// Reductions are split over row chunks and the chunks merged in order: no float atomics.

struct Norm {
    pixels: u32,         // rows per image (h * w, or 1 after a dense layer)
    channels: u32,
    capacity_rows: u32,  // rows the buffers hold
    splits: u32,
    rows_per_split: u32,
    relu: u32,
    _pad2: u32,
    _pad3: u32,
    momentum: f32,
    epsilon: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Norm;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> x: array<f32>;                  // [rows, channels]
@group(0) @binding(3) var<storage, read> dy: array<f32>;                 // [rows, channels]
@group(0) @binding(4) var<storage, read> gamma: array<f32>;              // [channels] (ones without `scale`)
@group(0) @binding(5) var<storage, read> beta: array<f32>;               // [channels] (zeros without `center`)
@group(0) @binding(6) var<storage, read_write> moving_mean: array<f32>;  // [channels]
@group(0) @binding(7) var<storage, read_write> moving_var: array<f32>;   // [channels]
// [mean | 1 / sqrt(var + eps) | sum dy | sum dy * x_hat], each [channels]
@group(0) @binding(8) var<storage, read_write> stats: array<f32>;
@group(0) @binding(9) var<storage, read_write> partial: array<f32>;      // scratch, [3, splits, channels]
@group(0) @binding(10) var<storage, read_write> out: array<f32>;         // y or dx, [rows, channels]
@group(0) @binding(11) var<storage, read_write> dgamma: array<f32>;      // [channels] (a throwaway without `scale`)
@group(0) @binding(12) var<storage, read_write> dbeta: array<f32>;       // [channels] (a throwaway without `center`)
// The moving statistics again, read-only: the forward pass also reads gamma and beta from the
// same parameter buffer, which a dispatch may not bind both read-only and read-write.
@group(0) @binding(13) var<storage, read> moving_mean_in: array<f32>;
@group(0) @binding(14) var<storage, read> moving_var_in: array<f32>;

fn valid_rows() -> u32 {
    return min(step.rows * p.pixels, p.capacity_rows);
}

// The rows [r0, r1) of split `s`, cut to the valid rows.
fn split_rows(s: u32) -> vec2<u32> {
    let r0 = min(s * p.rows_per_split, valid_rows());
    return vec2<u32>(r0, min(r0 + p.rows_per_split, valid_rows()));
}

// Chan et al.'s merge of two (count, mean, M2) summaries.
fn merge(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
    if (b.x == 0.0) { return a; }
    let n = a.x + b.x;
    let delta = b.y - a.y;
    return vec3<f32>(n, a.y + delta * (b.x / n), a.z + b.z + delta * delta * (a.x * b.x / n));
}

// batchnorm_stats_partial: Welford's count, mean and M2 of channel c over split s's rows, into
// partial[k, s, c]. Training only (inference uses the moving statistics). Overwrites partial.
// Dispatch: linear over splits * channels invocations.
@compute @workgroup_size(64)
fn batchnorm_stats_partial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (step.training == 0u || id >= p.splits * p.channels) { return; }
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
    let stride = p.splits * p.channels;
    partial[id] = acc.x;
    partial[stride + id] = acc.y;
    partial[2u * stride + id] = acc.z;
}

// batchnorm_stats_finish: merges the splits in order into the batch mean and biased variance of
// channel c, stores the mean and 1 / sqrt(var + eps), and moves the moving statistics toward
// them (moving = moving * momentum + stat * (1 - momentum), Keras 3). Training only.
// Dispatch: linear over channels invocations.
@compute @workgroup_size(64)
fn batchnorm_stats_finish(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = linear_id(gid, nwg);
    if (step.training == 0u || c >= p.channels) { return; }
    let stride = p.splits * p.channels;
    var acc = vec3<f32>(0.0);
    for (var s = 0u; s < p.splits; s++) {
        let i = s * p.channels + c;
        acc = merge(acc, vec3<f32>(partial[i], partial[stride + i], partial[2u * stride + i]));
    }
    let variance = acc.z / max(acc.x, 1.0);
    stats[c] = acc.y;
    stats[p.channels + c] = 1.0 / sqrt(variance + p.epsilon);
    moving_mean[c] = moving_mean[c] * p.momentum + acc.y * (1.0 - p.momentum);
    moving_var[c] = moving_var[c] * p.momentum + variance * (1.0 - p.momentum);
}

// The mean and 1 / sqrt(var + eps) the forward pass uses: the batch's in training, the moving
// ones otherwise.
fn norm_stats(c: u32) -> vec2<f32> {
    if (step.training != 0u) { return vec2<f32>(stats[c], stats[p.channels + c]); }
    return vec2<f32>(moving_mean_in[c], 1.0 / sqrt(moving_var_in[c] + p.epsilon));
}

// batchnorm_forward: out = act(gamma * (x - mean) / sqrt(var + eps) + beta). Overwrites out.
// Dispatch: linear over capacity_rows * channels invocations.
@compute @workgroup_size(64)
fn batchnorm_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.capacity_rows * p.channels) { return; }
    let c = i % p.channels;
    let s = norm_stats(c);
    var v = gamma[c] * (x[i] - s.x) * s.y + beta[c];
    if (p.relu != 0u) { v = max(v, 0.0); }
    out[i] = v;
}

// batchnorm_backward_partial: sums of dy and dy * x_hat of channel c over split s's rows, into
// partial[k, s, c] (dy at the normalised output, after any fused ReLU's backward). Overwrites
// partial. Dispatch: linear over splits * channels invocations.
@compute @workgroup_size(64)
fn batchnorm_backward_partial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= p.splits * p.channels) { return; }
    let c = id % p.channels;
    let r = split_rows(id / p.channels);
    let mean = stats[c];
    let inv = stats[p.channels + c];
    var sum_dy = 0.0;
    var sum_dy_xhat = 0.0;
    for (var row = r.x; row < r.y; row++) {
        let i = row * p.channels + c;
        sum_dy += dy[i];
        sum_dy_xhat += dy[i] * (x[i] - mean) * inv;
    }
    let stride = p.splits * p.channels;
    partial[id] = sum_dy;
    partial[stride + id] = sum_dy_xhat;
}

// batchnorm_backward_finish: adds the splits in order; stores both sums in stats and writes
// dbeta = sum dy and dgamma = sum dy * x_hat. Overwrites them. Dispatch: linear over channels.
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
    stats[2u * p.channels + c] = sum_dy;
    stats[3u * p.channels + c] = sum_dy_xhat;
    dgamma[c] = sum_dy_xhat;
    dbeta[c] = sum_dy;
}

// batchnorm_backward_input: out = dx = gamma / sqrt(var + eps) * (dy - sum dy / n - x_hat *
// sum dy x_hat / n) over the n valid rows, 0 on the others. Overwrites out.
// Dispatch: linear over capacity_rows * channels invocations.
@compute @workgroup_size(64)
fn batchnorm_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.capacity_rows * p.channels) { return; }
    let c = i % p.channels;
    let n = valid_rows();
    if (i >= n * p.channels) { out[i] = 0.0; return; }
    let inv = stats[p.channels + c];
    let x_hat = (x[i] - stats[c]) * inv;
    let nf = f32(n);
    out[i] = gamma[c] * inv * (dy[i] - stats[2u * p.channels + c] / nf - x_hat * stats[3u * p.channels + c] / nf);
}
