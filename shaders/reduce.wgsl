// Fixed-order reductions (no float atomics), so a run repeats bit for bit on one adapter.

struct Reduce {
    rows: u32, cols: u32, splits: u32, rows_per_split: u32,
    len: u32, has_bias: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Reduce;
@group(0) @binding(1) var<storage, read> src: array<f32>;          // [rows, cols]
@group(0) @binding(2) var<storage, read> partial: array<f32>;      // [splits, len]
@group(0) @binding(3) var<storage, read> bias: array<f32>;         // [cols], read when has_bias != 0
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// column_sum: out[s, c] = sum of src[r, c] over the rows r of split s (rows cut into p.splits
// chunks of p.rows_per_split). Bias gradients: src = dy seen as [batch * h * w, channels].
// With splits > 1, out is a scratch for sum_partials. Overwrites out.
// Dispatch: linear over splits * cols invocations.
@compute @workgroup_size(64)
fn column_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= p.splits * p.cols) { return; }
    let col = id % p.cols;
    let split = id / p.cols;
    let r0 = split * p.rows_per_split;
    let r1 = min(r0 + p.rows_per_split, p.rows);
    var acc = 0.0;
    for (var r = r0; r < r1; r++) {
        acc += src[r * p.cols + col];
    }
    out[id] = acc;
}

// sum_partials: out[i] = act(sum over s of partial[s, i] + bias[i % cols]) for i < len, the
// splits added in order 0, 1, 2, ...; act = ACTIVATION. Overwrites out.
// Dispatch: linear over len invocations.
@compute @workgroup_size(64)
fn sum_partials(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.len) { return; }
    var acc = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        acc += partial[s * p.len + i];
    }
    if (p.has_bias != 0u) { acc += bias[i % p.cols]; }
    out[i] = activate(vec4<f32>(acc)).x;
}
