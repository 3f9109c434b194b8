// 2D convolution, Keras layouts: activations NHWC, kernel [k_h, k_w, in_c, out_c], bias [out_c].
// Padding is given as the top/left offsets that Keras 'same' or 'valid' implies (src/model).
// All three kernels are direct implicit GEMMs with a 4x4 register tile per invocation and no
// shared memory or barriers: lavapipe runs a workgroup as SIMD lanes and pays for every barrier,
// so arithmetic per load (16 multiply-adds per 8 loads) is what makes them fast there, and the
// same tiling keeps real GPUs busy without shared memory.

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

// Four indices starting at c, clamped to the last valid one so loads stay in bounds; the
// clamped lanes are computed but never stored.
fn quad(c: u32, count: u32) -> vec4<u32> {
    let last = count - 1u;
    return vec4<u32>(c, min(c + 1u, last), min(c + 2u, last), min(c + 3u, last));
}

// conv2d_forward: y = act(conv(x, w) + b), act = relu when p.relu != 0.
// One invocation: 4 adjacent output pixels of one row x 4 output channels.
// Dispatch: linear over batch * out_h * ceil(out_w / 4) * ceil(out_c / 4) invocations.
@compute @workgroup_size(64)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let groups = (p.out_c + 3u) / 4u;
    let quads = (p.out_w + 3u) / 4u;
    if (id >= p.batch * p.out_h * quads * groups) { return; }
    let tile = unflatten_nhwc(id, p.out_h, quads, groups);
    let n = tile.x;
    let oh = tile.y;
    let ow0 = tile.z * 4u;
    let co = tile.w * 4u;
    let c = quad(co, p.out_c);
    let bias = vec4<f32>(b[c.x], b[c.y], b[c.z], b[c.w]);
    var acc = array<vec4<f32>, 4>(bias, bias, bias, bias);
    let iw0 = vec4<i32>(vec4<u32>(ow0, ow0 + 1u, ow0 + 2u, ow0 + 3u) * p.stride) - i32(p.pad_left);
    for (var kh = 0u; kh < p.k_h; kh++) {
        let ih = i32(oh * p.stride + kh) - i32(p.pad_top);
        if (ih < 0 || ih >= i32(p.in_h)) { continue; }
        let row_base = (n * p.in_h + u32(ih)) * p.in_w;
        for (var kw = 0u; kw < p.k_w; kw++) {
            let iw = iw0 + i32(kw);
            // Taps left or right of the input read a clamped address, times 0.
            let valid = iw >= vec4<i32>(0) & iw < vec4<i32>(i32(p.in_w));
            let mask = select(vec4<f32>(0.0), vec4<f32>(1.0), valid);
            let xb = (row_base + vec4<u32>(clamp(iw, vec4<i32>(0), vec4<i32>(i32(p.in_w) - 1)))) * p.in_c;
            var wr = (kh * p.k_w + kw) * p.in_c * p.out_c;
            for (var ci = 0u; ci < p.in_c; ci++) {
                let wv = vec4<f32>(w[wr + c.x], w[wr + c.y], w[wr + c.z], w[wr + c.w]);
                let xv = vec4<f32>(x[xb.x + ci], x[xb.y + ci], x[xb.z + ci], x[xb.w + ci]) * mask;
                acc[0] += xv.x * wv;
                acc[1] += xv.y * wv;
                acc[2] += xv.z * wv;
                acc[3] += xv.w * wv;
                wr += p.out_c;
            }
        }
    }
    for (var j = 0u; j < 4u; j++) {
        if (ow0 + j >= p.out_w) { break; }
        var v = acc[j];
        if (p.relu != 0u) { v = max(v, vec4<f32>(0.0)); }
        let o = ((n * p.out_h + oh) * p.out_w + ow0 + j) * p.out_c + co;
        for (var q = 0u; q < min(4u, p.out_c - co); q++) { y[o + q] = v[q]; }
    }
}

// conv2d_backward_input: dx = transposed conv of dy (dy already holds the gradient at the
// pre-activation; see relu_backward). Overwrites dx.
// One invocation: 4 adjacent input pixels of one row x 4 input channels.
// Dispatch: linear over batch * in_h * ceil(in_w / 4) * ceil(in_c / 4) invocations.
@compute @workgroup_size(64)
fn conv2d_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let groups = (p.in_c + 3u) / 4u;
    let quads = (p.in_w + 3u) / 4u;
    if (id >= p.batch * p.in_h * quads * groups) { return; }
    let tile = unflatten_nhwc(id, p.in_h, quads, groups);
    let n = tile.x;
    let ih = tile.y;
    let iw0 = tile.z * 4u;
    let ci = tile.w * 4u;
    let c = quad(ci, p.in_c) * p.out_c;
    let s = i32(p.stride);
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    let tw0 = vec4<i32>(vec4<u32>(iw0, iw0 + 1u, iw0 + 2u, iw0 + 3u)) + i32(p.pad_left);
    for (var kh = 0u; kh < p.k_h; kh++) {
        let th = i32(ih + p.pad_top) - i32(kh);
        if (th < 0 || th % s != 0 || th / s >= i32(p.out_h)) { continue; }
        let row_base = (n * p.out_h + u32(th / s)) * p.out_w;
        for (var kw = 0u; kw < p.k_w; kw++) {
            // Output column of each of the 4 pixels under tap kw; invalid ones read 0.
            let tw = tw0 - i32(kw);
            let ow = tw / s;
            let valid = tw >= vec4<i32>(0) & tw - ow * s == vec4<i32>(0) & ow < vec4<i32>(i32(p.out_w));
            let mask = select(vec4<f32>(0.0), vec4<f32>(1.0), valid);
            let db = (row_base + vec4<u32>(clamp(ow, vec4<i32>(0), vec4<i32>(i32(p.out_w) - 1)))) * p.out_c;
            let wb = (kh * p.k_w + kw) * p.in_c * p.out_c;
            for (var co = 0u; co < p.out_c; co++) {
                let wr = wb + co;
                let wv = vec4<f32>(w[wr + c.x], w[wr + c.y], w[wr + c.z], w[wr + c.w]);
                let dv = vec4<f32>(dy[db.x + co], dy[db.y + co], dy[db.z + co], dy[db.w + co]) * mask;
                acc[0] += dv.x * wv;
                acc[1] += dv.y * wv;
                acc[2] += dv.z * wv;
                acc[3] += dv.w * wv;
            }
        }
    }
    for (var j = 0u; j < 4u; j++) {
        if (iw0 + j >= p.in_w) { break; }
        let o = ((n * p.in_h + ih) * p.in_w + iw0 + j) * p.in_c + ci;
        for (var q = 0u; q < min(4u, p.in_c - ci); q++) { dx[o + q] = acc[j][q]; }
    }
}

// conv2d_backward_kernel: dw[s] = sum over the output rows r in split s (r = n, oh, ow) of
// x[patch(r)] (x) dy[r]. The batch * out_h * out_w rows are cut into p.splits chunks of
// p.rows_per_split so that small kernels still fill the GPU; with splits > 1, dw is a scratch
// of partial sums that sum_partials (reduce.wgsl) adds in a fixed order. Overwrites dw.
// One invocation: one (kh, kw) tap x 4 input channels x 4 output channels, in one split.
// Dispatch: linear over splits * k_h * k_w * ceil(in_c / 4) * ceil(out_c / 4) invocations.
@compute @workgroup_size(64)
fn conv2d_backward_kernel(@builtin(global_invocation_id) gid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let groups = (p.out_c + 3u) / 4u;
    let in_groups = (p.in_c + 3u) / 4u;
    let taps = p.k_h * p.k_w * in_groups;
    if (id >= p.splits * taps * groups) { return; }
    let t = div(id, groups);
    let co = (id - t * groups) * 4u;
    let split = div(t, taps);
    let tap = t - split * taps;
    let kk = div(tap, in_groups);
    let ci = (tap - kk * in_groups) * 4u;
    let kh = div(kk, p.k_w);
    let kw = kk - kh * p.k_w;
    let cx = quad(ci, p.in_c);
    let cy = quad(co, p.out_c);
    let rows = p.batch * p.out_h * p.out_w;
    let r0 = split * p.rows_per_split;
    let r1 = min(r0 + p.rows_per_split, rows);
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    // Walk (n, oh, ow) incrementally: no division per row.
    let nh = div(r0, p.out_w);
    var ow = r0 - nh * p.out_w;
    var n = div(nh, p.out_h);
    var oh = nh - n * p.out_h;
    for (var r = r0; r < r1; r++) {
        let ih = i32(oh * p.stride + kh) - i32(p.pad_top);
        let iw = i32(ow * p.stride + kw) - i32(p.pad_left);
        if (ih >= 0 && ih < i32(p.in_h) && iw >= 0 && iw < i32(p.in_w)) {
            let xb = ((n * p.in_h + u32(ih)) * p.in_w + u32(iw)) * p.in_c;
            let xv = vec4<f32>(x[xb + cx.x], x[xb + cx.y], x[xb + cx.z], x[xb + cx.w]);
            let db = r * p.out_c;
            let dv = vec4<f32>(dy[db + cy.x], dy[db + cy.y], dy[db + cy.z], dy[db + cy.w]);
            acc[0] += xv.x * dv;
            acc[1] += xv.y * dv;
            acc[2] += xv.z * dv;
            acc[3] += xv.w * dv;
        }
        ow += 1u;
        if (ow == p.out_w) {
            ow = 0u;
            oh += 1u;
            if (oh == p.out_h) { oh = 0u; n += 1u; }
        }
    }
    let plane = p.k_h * p.k_w * p.in_c * p.out_c;
    for (var j = 0u; j < 4u; j++) {
        if (ci + j >= p.in_c) { break; }
        let o = split * plane + ((kh * p.k_w + kw) * p.in_c + ci + j) * p.out_c + co;
        for (var q = 0u; q < min(4u, p.out_c - co); q++) { dw[o + q] = acc[j][q]; }
    }
}

// The quad path, for out_c a multiple of 4: weights and output gradients are read as quads
// along out_c (one vec4 load instead of four scalar ones; CPU adapters run each load lane by
// lane), and with X_QUADS (in_c a multiple of 4 too) activations are read as quads along in_c,
// so forward and kernel-gradient loops do 8 loads per 64 multiply-adds. x is bound both as
// scalars and as quads; X_QUADS, fixed per pipeline, picks the loop.
override X_QUADS: bool = false;

@group(0) @binding(8) var<storage, read> x4: array<vec4<f32>>;    // x, as quads along in_c
@group(0) @binding(9) var<storage, read> w4: array<vec4<f32>>;    // [k_h, k_w, in_c, out_c / 4]
@group(0) @binding(10) var<storage, read> dy4: array<vec4<f32>>;  // [batch, out_h, out_w, out_c / 4]

// conv2d_forward_quads: conv2d_forward for out_c % 4 == 0.
// Dispatch: linear over batch * out_h * ceil(out_w / 4) * out_c / 4 invocations.
@compute @workgroup_size(64)
fn conv2d_forward_quads(@builtin(global_invocation_id) gid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let oq = p.out_c / 4u;
    let quads = (p.out_w + 3u) / 4u;
    if (id >= p.batch * p.out_h * quads * oq) { return; }
    let tile = unflatten_nhwc(id, p.out_h, quads, oq);
    let n = tile.x;
    let oh = tile.y;
    let ow0 = tile.z * 4u;
    let co = tile.w * 4u;
    let bias = vec4<f32>(b[co], b[co + 1u], b[co + 2u], b[co + 3u]);
    var acc = array<vec4<f32>, 4>(bias, bias, bias, bias);
    let iw0 = vec4<i32>(vec4<u32>(ow0, ow0 + 1u, ow0 + 2u, ow0 + 3u) * p.stride) - i32(p.pad_left);
    for (var kh = 0u; kh < p.k_h; kh++) {
        let ih = i32(oh * p.stride + kh) - i32(p.pad_top);
        if (ih < 0 || ih >= i32(p.in_h)) { continue; }
        let row_base = (n * p.in_h + u32(ih)) * p.in_w;
        for (var kw = 0u; kw < p.k_w; kw++) {
            let iw = iw0 + i32(kw);
            let valid = iw >= vec4<i32>(0) & iw < vec4<i32>(i32(p.in_w));
            let mask = select(vec4<f32>(0.0), vec4<f32>(1.0), valid);
            let xb = (row_base + vec4<u32>(clamp(iw, vec4<i32>(0), vec4<i32>(i32(p.in_w) - 1)))) * p.in_c;
            var wq = (kh * p.k_w + kw) * p.in_c * oq + tile.w;
            if (X_QUADS) {
                for (var ci = 0u; ci < p.in_c; ci += 4u) {
                    // Columns: weights of input channels ci..ci+3, each over co..co+3.
                    let wm = mat4x4<f32>(w4[wq], w4[wq + oq], w4[wq + 2u * oq], w4[wq + 3u * oq]);
                    acc[0] += wm * (x4[(xb.x + ci) / 4u] * mask.x);
                    acc[1] += wm * (x4[(xb.y + ci) / 4u] * mask.y);
                    acc[2] += wm * (x4[(xb.z + ci) / 4u] * mask.z);
                    acc[3] += wm * (x4[(xb.w + ci) / 4u] * mask.w);
                    wq += 4u * oq;
                }
            } else {
                for (var ci = 0u; ci < p.in_c; ci++) {
                    let wv = w4[wq];
                    let xv = vec4<f32>(x[xb.x + ci], x[xb.y + ci], x[xb.z + ci], x[xb.w + ci]) * mask;
                    acc[0] += xv.x * wv;
                    acc[1] += xv.y * wv;
                    acc[2] += xv.z * wv;
                    acc[3] += xv.w * wv;
                    wq += oq;
                }
            }
        }
    }
    for (var j = 0u; j < 4u; j++) {
        if (ow0 + j >= p.out_w) { break; }
        var v = acc[j];
        if (p.relu != 0u) { v = max(v, vec4<f32>(0.0)); }
        let o = ((n * p.out_h + oh) * p.out_w + ow0 + j) * p.out_c + co;
        y[o] = v.x;
        y[o + 1u] = v.y;
        y[o + 2u] = v.z;
        y[o + 3u] = v.w;
    }
}

// conv2d_backward_input_quads: conv2d_backward_input for out_c % 4 == 0: the reduction over
// output channels runs by quads, 8 loads per 64 multiply-adds.
// Dispatch: linear over batch * in_h * ceil(in_w / 4) * ceil(in_c / 4) invocations.
@compute @workgroup_size(64)
fn conv2d_backward_input_quads(@builtin(global_invocation_id) gid: vec3<u32>,
                               @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let oq = p.out_c / 4u;
    let groups = (p.in_c + 3u) / 4u;
    let quads = (p.in_w + 3u) / 4u;
    if (id >= p.batch * p.in_h * quads * groups) { return; }
    let tile = unflatten_nhwc(id, p.in_h, quads, groups);
    let n = tile.x;
    let ih = tile.y;
    let iw0 = tile.z * 4u;
    let ci = tile.w * 4u;
    let c = quad(ci, p.in_c);
    let s = i32(p.stride);
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    let tw0 = vec4<i32>(vec4<u32>(iw0, iw0 + 1u, iw0 + 2u, iw0 + 3u)) + i32(p.pad_left);
    for (var kh = 0u; kh < p.k_h; kh++) {
        let th = i32(ih + p.pad_top) - i32(kh);
        if (th < 0 || th % s != 0 || th / s >= i32(p.out_h)) { continue; }
        let row_base = (n * p.out_h + u32(th / s)) * p.out_w;
        for (var kw = 0u; kw < p.k_w; kw++) {
            let tw = tw0 - i32(kw);
            let ow = tw / s;
            let valid = tw >= vec4<i32>(0) & tw - ow * s == vec4<i32>(0) & ow < vec4<i32>(i32(p.out_w));
            let mask = select(vec4<f32>(0.0), vec4<f32>(1.0), valid);
            let dq = (row_base + vec4<u32>(clamp(ow, vec4<i32>(0), vec4<i32>(i32(p.out_w) - 1)))) * oq;
            let wq = ((kh * p.k_w + kw) * p.in_c + c) * oq;
            for (var q = 0u; q < oq; q++) {
                // Columns: weights of input channels c.x..c.w over output channels 4q..4q+3;
                // dv * wm is the vector of their dot products with dv.
                let wm = mat4x4<f32>(w4[wq.x + q], w4[wq.y + q], w4[wq.z + q], w4[wq.w + q]);
                acc[0] += (dy4[dq.x + q] * mask.x) * wm;
                acc[1] += (dy4[dq.y + q] * mask.y) * wm;
                acc[2] += (dy4[dq.z + q] * mask.z) * wm;
                acc[3] += (dy4[dq.w + q] * mask.w) * wm;
            }
        }
    }
    for (var j = 0u; j < 4u; j++) {
        if (iw0 + j >= p.in_w) { break; }
        let o = ((n * p.in_h + ih) * p.in_w + iw0 + j) * p.in_c + ci;
        for (var q = 0u; q < min(4u, p.in_c - ci); q++) { dx[o + q] = acc[j][q]; }
    }
}

// conv2d_backward_kernel_quads: conv2d_backward_kernel for out_c % 4 == 0 (dy rows read as
// quads; with X_QUADS the x patch too). Overwrites dw.
// Dispatch: linear over splits * k_h * k_w * ceil(in_c / 4) * out_c / 4 invocations.
@compute @workgroup_size(64)
fn conv2d_backward_kernel_quads(@builtin(global_invocation_id) gid: vec3<u32>,
                                @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let oq = p.out_c / 4u;
    let in_groups = (p.in_c + 3u) / 4u;
    let taps = p.k_h * p.k_w * in_groups;
    if (id >= p.splits * taps * oq) { return; }
    let t = div(id, oq);
    let cq = id - t * oq;
    let split = div(t, taps);
    let tap = t - split * taps;
    let kk = div(tap, in_groups);
    let ci = (tap - kk * in_groups) * 4u;
    let kh = div(kk, p.k_w);
    let kw = kk - kh * p.k_w;
    let cx = quad(ci, p.in_c);
    let rows = p.batch * p.out_h * p.out_w;
    let r0 = split * p.rows_per_split;
    let r1 = min(r0 + p.rows_per_split, rows);
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    let nh = div(r0, p.out_w);
    var ow = r0 - nh * p.out_w;
    var n = div(nh, p.out_h);
    var oh = nh - n * p.out_h;
    for (var r = r0; r < r1; r++) {
        let ih = i32(oh * p.stride + kh) - i32(p.pad_top);
        let iw = i32(ow * p.stride + kw) - i32(p.pad_left);
        if (ih >= 0 && ih < i32(p.in_h) && iw >= 0 && iw < i32(p.in_w)) {
            let xb = ((n * p.in_h + u32(ih)) * p.in_w + u32(iw)) * p.in_c;
            var xv: vec4<f32>;
            if (X_QUADS) {
                xv = x4[(xb + ci) / 4u];
            } else {
                xv = vec4<f32>(x[xb + cx.x], x[xb + cx.y], x[xb + cx.z], x[xb + cx.w]);
            }
            let dv = dy4[r * oq + cq];
            acc[0] += xv.x * dv;
            acc[1] += xv.y * dv;
            acc[2] += xv.z * dv;
            acc[3] += xv.w * dv;
        }
        ow += 1u;
        if (ow == p.out_w) {
            ow = 0u;
            oh += 1u;
            if (oh == p.out_h) { oh = 0u; n += 1u; }
        }
    }
    let plane = p.k_h * p.k_w * p.in_c * p.out_c;
    for (var j = 0u; j < 4u; j++) {
        if (ci + j >= p.in_c) { break; }
        let o = split * plane + ((kh * p.k_w + kw) * p.in_c + ci + j) * p.out_c + cq * 4u;
        dw[o] = acc[j].x;
        dw[o + 1u] = acc[j].y;
        dw[o + 2u] = acc[j].z;
        dw[o + 3u] = acc[j].w;
    }
}
