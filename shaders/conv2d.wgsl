// 2D convolution, Keras layouts: activations NHWC, kernel [k_h, k_w, in_c, out_c], bias [out_c].
// Padding is given as the top/left offsets that Keras 'same' or 'valid' implies (src/model).
// All three kernels are direct implicit GEMMs with a 4x4 register tile per invocation and no
// shared memory or barriers: lavapipe runs a workgroup as SIMD lanes, pays for every barrier and
// runs every storage load lane by lane, so loads per multiply-add are what make them fast there,
// and the same tiling keeps real GPUs busy without shared memory.
//
// Quad loads: when a channel count is a multiple of 4, the tensors laid out along it are also
// bound as array<vec4<f32>> and read one quad per load (with X_QUADS and OUT_QUADS, 8 loads per
// 64 multiply-adds instead of 8 per 16). The override constants are fixed per pipeline, so the
// loops carry no layout branch; both views of each input are always bound.
override X_QUADS: bool = false;    // in_c % 4 == 0: x read as quads along in_c
override OUT_QUADS: bool = false;  // out_c % 4 == 0: w and dy read as quads along out_c

struct Conv {
    batch: u32, in_h: u32, in_w: u32, in_c: u32,
    out_h: u32, out_w: u32, out_c: u32, k_h: u32,
    k_w: u32, stride: u32, pad_top: u32, pad_left: u32,
    _pad: u32, splits: u32, rows_per_split: u32, accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Conv;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // [batch, in_h, in_w, in_c]
@group(0) @binding(2) var<storage, read> w: array<f32>;        // [k_h, k_w, in_c, out_c]
@group(0) @binding(3) var<storage, read> b: array<f32>;        // [out_c]
@group(0) @binding(4) var<storage, read_write> y: array<f32>;  // [batch, out_h, out_w, out_c]
@group(0) @binding(5) var<storage, read> dy: array<f32>;       // [batch, out_h, out_w, out_c]
@group(0) @binding(6) var<storage, read_write> dx: array<f32>; // [batch, in_h, in_w, in_c]
@group(0) @binding(7) var<storage, read_write> dw: array<f32>; // [splits, k_h, k_w, in_c, out_c]
@group(0) @binding(8) var<storage, read> x4: array<vec4<f32>>;  // x, w and dy as quads
@group(0) @binding(9) var<storage, read> w4: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read> dy4: array<vec4<f32>>;

// Four indices starting at c, clamped to the last valid one so loads stay in bounds; the
// clamped lanes are computed but never stored.
fn quad(c: u32, count: u32) -> vec4<u32> {
    let last = count - 1u;
    return vec4<u32>(c, min(c + 1u, last), min(c + 2u, last), min(c + 3u, last));
}

// The conv kernels cut an NHWC tensor (h x w x c per image) into tiles of `pixels` adjacent
// pixels of a row x 4 channels: how many tiles the batch has, and the origin (n, row, first
// pixel, first channel) of tile `id`, channel tiles varying fastest.
fn pixel_tiles(h: u32, w: u32, c: u32, pixels: u32) -> u32 {
    return p.batch * h * ((w + pixels - 1u) / pixels) * ((c + 3u) / 4u);
}

fn pixel_tile(id: u32, h: u32, w: u32, c: u32, pixels: u32) -> vec4<u32> {
    let t = unflatten_nhwc(id, h, (w + pixels - 1u) / pixels, (c + 3u) / 4u);
    return vec4<u32>(t.x, t.y, t.z * pixels, t.w * 4u);
}

// Four pixels of one row of x (or dy): their elements (channel 0) and a mask, 1 where the pixel
// exists, 0 where it falls in the padding (its element is then clamped to a valid pixel).
struct Pixels {
    e: vec4<u32>,
    mask: vec4<f32>,
}

// The pixels at columns iw of row ih of image n (rows outside are masked too).
fn input_pixels(n: u32, ih: i32, iw: vec4<i32>) -> Pixels {
    let row = (n * p.in_h + u32(clamp(ih, 0, i32(p.in_h) - 1))) * p.in_w;
    let inside = iw >= vec4<i32>(0) & iw < vec4<i32>(i32(p.in_w)) & vec4<bool>(ih >= 0 && ih < i32(p.in_h));
    let e = (row + vec4<u32>(clamp(iw, vec4<i32>(0), vec4<i32>(i32(p.in_w) - 1)))) * p.in_c;
    return Pixels(e, select(vec4<f32>(0.0), vec4<f32>(1.0), inside));
}

// The four output pixels whose tap kw reads input columns iw (tw = iw + pad_left - kw) in
// output row oh of image n: their dy elements (channel 0) and 1 where such a pixel exists.
fn output_pixels(n: u32, oh: u32, tw: vec4<i32>) -> Pixels {
    let s = i32(p.stride);
    let ow = tw / s;
    let last = vec4<i32>(i32(p.out_w) - 1);
    let valid = tw >= vec4<i32>(0) & tw - ow * s == vec4<i32>(0) & ow <= last;
    let e = ((n * p.out_h + oh) * p.out_w + vec4<u32>(clamp(ow, vec4<i32>(0), last))) * p.out_c;
    return Pixels(e, select(vec4<f32>(0.0), vec4<f32>(1.0), valid));
}

// Channels c..c+3 of the pixel (or kernel row) whose channel 0 is at element e, clamped as in
// quad(): one quad load when the channel count allows it, else four scalar loads.
fn x_quad(e: u32, c: u32) -> vec4<f32> {
    if (X_QUADS) { return x4[(e + c) / 4u]; }
    let q = e + quad(c, p.in_c);
    return vec4<f32>(x[q.x], x[q.y], x[q.z], x[q.w]);
}

fn w_quad(e: u32, c: u32) -> vec4<f32> {
    if (OUT_QUADS) { return w4[(e + c) / 4u]; }
    let q = e + quad(c, p.out_c);
    return vec4<f32>(w[q.x], w[q.y], w[q.z], w[q.w]);
}

fn dy_quad(e: u32, c: u32) -> vec4<f32> {
    if (OUT_QUADS) { return dy4[(e + c) / 4u]; }
    let q = e + quad(c, p.out_c);
    return vec4<f32>(dy[q.x], dy[q.y], dy[q.z], dy[q.w]);
}

// conv2d_forward: y = act(conv(x, w) + b), act = ACTIVATION (common.wgsl).
// One invocation: 4 adjacent output pixels of one row x 4 output channels.
// Dispatch: linear over batch * out_h * ceil(out_w / 4) * ceil(out_c / 4) invocations.
@compute @workgroup_size(64)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= pixel_tiles(p.out_h, p.out_w, p.out_c, 4u)) { return; }
    let tile = pixel_tile(id, p.out_h, p.out_w, p.out_c, 4u);
    let n = tile.x;
    let oh = tile.y;
    let ow0 = tile.z;
    let co = tile.w;
    let c = quad(co, p.out_c);
    let bias = vec4<f32>(b[c.x], b[c.y], b[c.z], b[c.w]);
    // Four named accumulators: a dynamically indexed array would live in memory on CPU adapters.
    var acc0 = bias;
    var acc1 = bias;
    var acc2 = bias;
    var acc3 = bias;
    let iw0 = vec4<i32>(vec4<u32>(ow0, ow0 + 1u, ow0 + 2u, ow0 + 3u) * p.stride) - i32(p.pad_left);
    for (var kh = 0u; kh < p.k_h; kh++) {
        let ih = i32(oh * p.stride + kh) - i32(p.pad_top);
        if (ih < 0 || ih >= i32(p.in_h)) { continue; }
        for (var kw = 0u; kw < p.k_w; kw++) {
            // Taps left or right of the input read a clamped address, times 0.
            let px = input_pixels(n, ih, iw0 + i32(kw));
            let xb = px.e;
            let mask = px.mask;
            var wr = (kh * p.k_w + kw) * p.in_c * p.out_c;
            if (X_QUADS) {
                for (var ci = 0u; ci < p.in_c; ci += 4u) {
                    // Columns: the weights of input channels ci..ci+3 over co..co+3.
                    let wm = mat4x4<f32>(w_quad(wr, co), w_quad(wr + p.out_c, co),
                                         w_quad(wr + 2u * p.out_c, co), w_quad(wr + 3u * p.out_c, co));
                    acc0 += wm * (x4[(xb.x + ci) / 4u] * mask.x);
                    acc1 += wm * (x4[(xb.y + ci) / 4u] * mask.y);
                    acc2 += wm * (x4[(xb.z + ci) / 4u] * mask.z);
                    acc3 += wm * (x4[(xb.w + ci) / 4u] * mask.w);
                    wr += 4u * p.out_c;
                }
            } else {
                for (var ci = 0u; ci < p.in_c; ci++) {
                    let wv = w_quad(wr, co);
                    let xv = vec4<f32>(x[xb.x + ci], x[xb.y + ci], x[xb.z + ci], x[xb.w + ci]) * mask;
                    acc0 += xv.x * wv;
                    acc1 += xv.y * wv;
                    acc2 += xv.z * wv;
                    acc3 += xv.w * wv;
                    wr += p.out_c;
                }
            }
        }
    }
    store_forward_tile(array<vec4<f32>, 4>(acc0, acc1, acc2, acc3), n, oh, ow0, co);
}

// Stores output pixels ow0..ow0+3 of row oh (column j of acc: pixel ow0 + j) over channels
// co..co+3, after the activation; pixels and channels past the edge are skipped.
fn store_forward_tile(acc: array<vec4<f32>, 4>, n: u32, oh: u32, ow0: u32, co: u32) {
    for (var j = 0u; j < 4u; j++) {
        if (ow0 + j >= p.out_w) { break; }
        let v = activate(acc[j]);
        let o = ((n * p.out_h + oh) * p.out_w + ow0 + j) * p.out_c + co;
        for (var q = 0u; q < min(4u, p.out_c - co); q++) { y[o + q] = v[q]; }
    }
}

// conv2d_backward_input: dx = transposed conv of dy (dy already holds the gradient at the
// pre-activation; see activation_backward). Overwrites dx, or adds into it with p.accumulate (the
// input has other readers).
// One invocation: 4 adjacent input pixels of one row x 4 input channels.
// Dispatch: linear over batch * in_h * ceil(in_w / 4) * ceil(in_c / 4) invocations.
@compute @workgroup_size(64)
fn conv2d_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= pixel_tiles(p.in_h, p.in_w, p.in_c, 4u)) { return; }
    let tile = pixel_tile(id, p.in_h, p.in_w, p.in_c, 4u);
    let n = tile.x;
    let ih = tile.y;
    let iw0 = tile.z;
    let ci = tile.w;
    let c = quad(ci, p.in_c) * p.out_c;
    let s = i32(p.stride);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let tw0 = vec4<i32>(vec4<u32>(iw0, iw0 + 1u, iw0 + 2u, iw0 + 3u)) + i32(p.pad_left);
    for (var kh = 0u; kh < p.k_h; kh++) {
        let th = i32(ih + p.pad_top) - i32(kh);
        if (th < 0 || th % s != 0 || th / s >= i32(p.out_h)) { continue; }
        for (var kw = 0u; kw < p.k_w; kw++) {
            // The output pixel of each of the 4 under tap kw; invalid ones read 0.
            let px = output_pixels(n, u32(th / s), tw0 - i32(kw));
            let db = px.e;
            let mask = px.mask;
            let wr = (kh * p.k_w + kw) * p.in_c * p.out_c + c;
            if (OUT_QUADS) {
                for (var co = 0u; co < p.out_c; co += 4u) {
                    // Columns: the weights of input channels ci..ci+3 over co..co+3, so
                    // dv * wm is the vector of their dot products with dv.
                    let wm = mat4x4<f32>(w4[(wr.x + co) / 4u], w4[(wr.y + co) / 4u], w4[(wr.z + co) / 4u], w4[(wr.w + co) / 4u]);
                    acc0 += (dy4[(db.x + co) / 4u] * mask.x) * wm;
                    acc1 += (dy4[(db.y + co) / 4u] * mask.y) * wm;
                    acc2 += (dy4[(db.z + co) / 4u] * mask.z) * wm;
                    acc3 += (dy4[(db.w + co) / 4u] * mask.w) * wm;
                }
            } else {
                for (var co = 0u; co < p.out_c; co++) {
                    let wv = vec4<f32>(w[wr.x + co], w[wr.y + co], w[wr.z + co], w[wr.w + co]);
                    let dv = vec4<f32>(dy[db.x + co], dy[db.y + co], dy[db.z + co], dy[db.w + co]) * mask;
                    acc0 += dv.x * wv;
                    acc1 += dv.y * wv;
                    acc2 += dv.z * wv;
                    acc3 += dv.w * wv;
                }
            }
        }
    }
    store_input_tile(array<vec4<f32>, 4>(acc0, acc1, acc2, acc3), n, ih, iw0, ci);
}

// Stores dx for input pixels iw0..iw0+3 of row ih (column j of acc: pixel iw0 + j) over
// channels ci..ci+3; pixels and channels past the edge are skipped.
fn store_input_tile(acc: array<vec4<f32>, 4>, n: u32, ih: u32, iw0: u32, ci: u32) {
    for (var j = 0u; j < 4u; j++) {
        if (iw0 + j >= p.in_w) { break; }
        let o = ((n * p.in_h + ih) * p.in_w + iw0 + j) * p.in_c + ci;
        for (var q = 0u; q < min(4u, p.in_c - ci); q++) {
            if (p.accumulate != 0u) { dx[o + q] += acc[j][q]; } else { dx[o + q] = acc[j][q]; }
        }
    }
}

// (n, oh, ow) of output row r (the output seen as batch * out_h * out_w rows).
fn output_pixel(r: u32) -> vec3<u32> {
    let nh = div(r, p.out_w);
    let n = div(nh, p.out_h);
    return vec3<u32>(n, nh - n * p.out_h, r - nh * p.out_w);
}

// The output pixel after `at`: walking rows so needs no division per row.
fn next_pixel(at: vec3<u32>) -> vec3<u32> {
    if (at.z + 1u < p.out_w) { return vec3<u32>(at.x, at.y, at.z + 1u); }
    if (at.y + 1u < p.out_h) { return vec3<u32>(at.x, at.y + 1u, 0u); }
    return vec3<u32>(at.x + 1u, 0u, 0u);
}

// The element of channel 0 of the input pixel under tap (kh, kw) of output pixel `at`, or -1
// where the tap falls in the padding.
fn tap_input(at: vec3<u32>, kh: u32, kw: u32) -> i32 {
    let ih = i32(at.y * p.stride + kh) - i32(p.pad_top);
    let iw = i32(at.z * p.stride + kw) - i32(p.pad_left);
    if (ih < 0 || ih >= i32(p.in_h) || iw < 0 || iw >= i32(p.in_w)) { return -1; }
    return i32(((at.x * p.in_h + u32(ih)) * p.in_w + u32(iw)) * p.in_c);
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
    let rows = p.batch * p.out_h * p.out_w;
    let r0 = split * p.rows_per_split;
    let r1 = min(r0 + p.rows_per_split, rows);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var at = output_pixel(r0);
    for (var r = r0; r < r1; r++) {
        let e = tap_input(at, kh, kw);
        if (e >= 0) {
            let xv = x_quad(u32(e), ci);
            let dv = dy_quad(r * p.out_c, co);
            acc0 += xv.x * dv;
            acc1 += xv.y * dv;
            acc2 += xv.z * dv;
            acc3 += xv.w * dv;
        }
        at = next_pixel(at);
    }
    store_kernel_tile(array<vec4<f32>, 4>(acc0, acc1, acc2, acc3), split, kh * p.k_w + kw, ci, co);
}

// Stores split `split`'s dw for tap `tap` (kh * k_w + kw), input channels ci..ci+3 (row j of
// the tile: acc[j]) and output channels co..co+3; channels past the edge are skipped.
fn store_kernel_tile(acc: array<vec4<f32>, 4>, split: u32, tap: u32, ci: u32, co: u32) {
    let plane = p.k_h * p.k_w * p.in_c * p.out_c;
    for (var j = 0u; j < 4u; j++) {
        if (ci + j >= p.in_c) { break; }
        let o = split * plane + (tap * p.in_c + ci + j) * p.out_c + co;
        for (var q = 0u; q < min(4u, p.out_c - co); q++) { dw[o + q] = acc[j][q]; }
    }
}
