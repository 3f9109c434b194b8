// 2D convolution, Keras layouts: activations NHWC, kernel [k_h, k_w, in_c, out_c], bias [out_c].
// Padding is given as the top/left offsets that Keras 'same' or 'valid' implies (src/model).
// All three kernels are direct (no shared memory, no barriers): lavapipe runs a workgroup as
// coroutines and pays for every barrier, and real GPUs keep these loops in cache.

struct Conv {
    batch: u32, in_h: u32, in_w: u32, in_c: u32,
    out_h: u32, out_w: u32, out_c: u32, k_h: u32,
    k_w: u32, stride: u32, pad_top: u32, pad_left: u32,
    relu: u32, splits: u32, rows_per_split: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Conv;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // [batch, in_h, in_w, in_c]
@group(0) @binding(2) var<storage, read> w: array<f32>;        // [k_h, k_w, in_c, out_c]
@group(0) @binding(3) var<storage, read> b: array<f32>;        // [out_c]
@group(0) @binding(4) var<storage, read_write> y: array<f32>;  // [batch, out_h, out_w, out_c]
@group(0) @binding(5) var<storage, read> dy: array<f32>;       // [batch, out_h, out_w, out_c]
@group(0) @binding(6) var<storage, read_write> dx: array<f32>; // [batch, in_h, in_w, in_c]
@group(0) @binding(7) var<storage, read_write> dw: array<f32>; // [splits, k_h, k_w, in_c, out_c]

// Four channel indices starting at c, clamped to the last one so loads stay in bounds; the
// clamped lanes are computed but never stored.
fn quad(c: u32, count: u32) -> vec4<u32> {
    let last = count - 1u;
    return vec4<u32>(c, min(c + 1u, last), min(c + 2u, last), min(c + 3u, last));
}

// conv2d_forward: y = act(conv(x, w) + b), act = relu when p.relu != 0.
// One invocation computes one output pixel for 4 output channels.
// Dispatch: linear over batch * out_h * out_w * ceil(out_c / 4) invocations.
@compute @workgroup_size(64)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let groups = (p.out_c + 3u) / 4u;
    if (id >= p.batch * p.out_h * p.out_w * groups) { return; }
    let co = (id % groups) * 4u;
    let pix = id / groups;
    let ow = pix % p.out_w;
    let oh = (pix / p.out_w) % p.out_h;
    let n = pix / (p.out_w * p.out_h);
    let c = quad(co, p.out_c);
    var acc = vec4<f32>(b[c.x], b[c.y], b[c.z], b[c.w]);
    let ih0 = i32(oh * p.stride) - i32(p.pad_top);
    let iw0 = i32(ow * p.stride) - i32(p.pad_left);
    for (var kh = 0u; kh < p.k_h; kh++) {
        let ih = ih0 + i32(kh);
        if (ih < 0 || ih >= i32(p.in_h)) { continue; }
        for (var kw = 0u; kw < p.k_w; kw++) {
            let iw = iw0 + i32(kw);
            if (iw < 0 || iw >= i32(p.in_w)) { continue; }
            let xb = ((n * p.in_h + u32(ih)) * p.in_w + u32(iw)) * p.in_c;
            var wr = (kh * p.k_w + kw) * p.in_c * p.out_c;
            for (var ci = 0u; ci < p.in_c; ci++) {
                acc += x[xb + ci] * vec4<f32>(w[wr + c.x], w[wr + c.y], w[wr + c.z], w[wr + c.w]);
                wr += p.out_c;
            }
        }
    }
    if (p.relu != 0u) { acc = max(acc, vec4<f32>(0.0)); }
    let yb = pix * p.out_c + co;
    y[yb] = acc.x;
    if (co + 1u < p.out_c) { y[yb + 1u] = acc.y; }
    if (co + 2u < p.out_c) { y[yb + 2u] = acc.z; }
    if (co + 3u < p.out_c) { y[yb + 3u] = acc.w; }
}

// conv2d_backward_input: dx = transposed conv of dy (dy already holds the gradient at the
// pre-activation; see relu_backward). Overwrites dx.
// One invocation computes one input pixel for 4 input channels.
// Dispatch: linear over batch * in_h * in_w * ceil(in_c / 4) invocations.
@compute @workgroup_size(64)
fn conv2d_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let groups = (p.in_c + 3u) / 4u;
    if (id >= p.batch * p.in_h * p.in_w * groups) { return; }
    let ci = (id % groups) * 4u;
    let pix = id / groups;
    let iw = pix % p.in_w;
    let ih = (pix / p.in_w) % p.in_h;
    let n = pix / (p.in_w * p.in_h);
    let c = quad(ci, p.in_c) * p.out_c;
    let s = i32(p.stride);
    var acc = vec4<f32>(0.0);
    for (var kh = 0u; kh < p.k_h; kh++) {
        let th = i32(ih) + i32(p.pad_top) - i32(kh);
        if (th < 0 || th % s != 0 || th / s >= i32(p.out_h)) { continue; }
        let oh = u32(th / s);
        for (var kw = 0u; kw < p.k_w; kw++) {
            let tw = i32(iw) + i32(p.pad_left) - i32(kw);
            if (tw < 0 || tw % s != 0 || tw / s >= i32(p.out_w)) { continue; }
            let ow = u32(tw / s);
            let db = ((n * p.out_h + oh) * p.out_w + ow) * p.out_c;
            let wb = (kh * p.k_w + kw) * p.in_c * p.out_c;
            for (var co = 0u; co < p.out_c; co++) {
                let wr = wb + co;
                acc += dy[db + co] * vec4<f32>(w[wr + c.x], w[wr + c.y], w[wr + c.z], w[wr + c.w]);
            }
        }
    }
    let xb = pix * p.in_c + ci;
    dx[xb] = acc.x;
    if (ci + 1u < p.in_c) { dx[xb + 1u] = acc.y; }
    if (ci + 2u < p.in_c) { dx[xb + 2u] = acc.z; }
    if (ci + 3u < p.in_c) { dx[xb + 3u] = acc.w; }
}

// conv2d_backward_kernel: dw[s] = sum over output rows r in split s (r = n, oh, ow) of
// x[patch(r)] * dy[r]. The batch * out_h * out_w rows are cut into p.splits chunks of
// p.rows_per_split so that small kernels still fill the GPU; with splits > 1, dw is a scratch
// of partial sums that sum_partials (reduce.wgsl) adds in a fixed order. Overwrites dw.
// One invocation computes one (kh, kw, ci) tap for 4 output channels in one split.
// Dispatch: linear over splits * k_h * k_w * in_c * ceil(out_c / 4) invocations.
@compute @workgroup_size(64)
fn conv2d_backward_kernel(@builtin(global_invocation_id) gid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let groups = (p.out_c + 3u) / 4u;
    let taps = p.k_h * p.k_w * p.in_c;
    if (id >= p.splits * taps * groups) { return; }
    let co = (id % groups) * 4u;
    let tap = (id / groups) % taps;
    let split = id / (groups * taps);
    let ci = tap % p.in_c;
    let kw = (tap / p.in_c) % p.k_w;
    let kh = tap / (p.in_c * p.k_w);
    let c = quad(co, p.out_c);
    let rows = p.batch * p.out_h * p.out_w;
    let r0 = split * p.rows_per_split;
    let r1 = min(r0 + p.rows_per_split, rows);
    var acc = vec4<f32>(0.0);
    for (var r = r0; r < r1; r++) {
        let ow = r % p.out_w;
        let oh = (r / p.out_w) % p.out_h;
        let n = r / (p.out_w * p.out_h);
        let ih = i32(oh * p.stride + kh) - i32(p.pad_top);
        let iw = i32(ow * p.stride + kw) - i32(p.pad_left);
        if (ih < 0 || ih >= i32(p.in_h) || iw < 0 || iw >= i32(p.in_w)) { continue; }
        let xv = x[((n * p.in_h + u32(ih)) * p.in_w + u32(iw)) * p.in_c + ci];
        let db = r * p.out_c;
        acc += xv * vec4<f32>(dy[db + c.x], dy[db + c.y], dy[db + c.z], dy[db + c.w]);
    }
    let o = split * taps * p.out_c + tap * p.out_c + co;
    dw[o] = acc.x;
    if (co + 1u < p.out_c) { dw[o + 1u] = acc.y; }
    if (co + 2u < p.out_c) { dw[o + 2u] = acc.z; }
    if (co + 3u < p.out_c) { dw[o + 3u] = acc.w; }
}
