// Max and average pooling, NHWC, padding 'valid' with Keras floor semantics:
// out = floor((in - pool) / stride) + 1 along each axis.

struct Pool {
    batch: u32, in_h: u32, in_w: u32, c: u32,
    out_h: u32, out_w: u32, pool_h: u32, pool_w: u32,
    stride_h: u32, stride_w: u32,
    norm: u32,     // max pooling of a batchnorm's unstored output (then its ACTIVATION too)
    norm_at: u32,  // where its per-channel scale starts in `coef` (the shift follows, c later)
}

@group(0) @binding(0) var<uniform> p: Pool;
@group(0) @binding(1) var<storage, read> x: array<f32>;           // [batch, in_h, in_w, c]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;     // [batch, out_h, out_w, c]
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>; // flat index into x, per y
@group(0) @binding(4) var<storage, read> arg: array<u32>;         // argmax, read in backward
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
// A batchnorm before a max pool leaves its output unstored: the pool reads the batchnorm's
// input and normalises it on load, act(x * scale + shift), saving a write and a read of the
// whole tensor. It also keeps the input at each window's maximum, the only elements the
// batchnorm's gradient sums see. (Bound to x and y when p.norm == 0.)
@group(0) @binding(13) var<storage, read> coef: array<f32>;
@group(0) @binding(14) var<storage, read> coef4: array<vec4<f32>>;
@group(0) @binding(15) var<storage, read_write> at_max: array<f32>;     // per y
@group(0) @binding(16) var<storage, read_write> at_max4: array<vec4<f32>>;

// x as the pool sees it, given its channels' scale and shift (the batchnorm forward's expression).
fn normalised(v: vec4<f32>, scale: vec4<f32>, shift: vec4<f32>) -> vec4<f32> {
    if (p.norm == 0u) { return v; }
    return activate(v * scale + shift);
}

// maxpool2d_forward: y = max over the window (of x normalised, with p.norm); argmax keeps the
// first maximum's flat x index.
// Dispatch: linear over batch * out_h * out_w * c invocations (one per output).
@compute @workgroup_size(64)
fn maxpool2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= p.batch * p.out_h * p.out_w * p.c) { return; }
    let o = unflatten_nhwc(id, p.out_h, p.out_w, p.c);
    let n = o.x;
    let oh = o.y;
    let ow = o.z;
    let ch = o.w;
    var scale = vec4<f32>(1.0);
    var shift = vec4<f32>(0.0);
    if (p.norm != 0u) {
        scale = vec4<f32>(coef[p.norm_at + ch]);
        shift = vec4<f32>(coef[p.norm_at + p.c + ch]);
    }
    var best = -3.4028235e38;
    var best_i = 0u;
    for (var dh = 0u; dh < p.pool_h; dh++) {
        let row = (n * p.in_h + oh * p.stride_h + dh) * p.in_w;
        for (var dw = 0u; dw < p.pool_w; dw++) {
            let i = (row + ow * p.stride_w + dw) * p.c + ch;
            let v = normalised(vec4<f32>(x[i]), scale, shift).x;
            if (v > best || (dh == 0u && dw == 0u)) { best = v; best_i = i; }
        }
    }
    y[id] = best;
    argmax[id] = best_i;
    if (p.norm != 0u) { at_max[id] = x[best_i]; }
}

// The windows containing input pixel (ih, iw): oh in [x, y), ow in [z, w), those with
// oh * stride <= ih < oh * stride + pool.
fn windows_of(ih: u32, iw: u32) -> vec4<u32> {
    var oh0 = 0u;
    if (ih >= p.pool_h) { oh0 = div(ih - p.pool_h, p.stride_h) + 1u; }
    var ow0 = 0u;
    if (iw >= p.pool_w) { ow0 = div(iw - p.pool_w, p.stride_w) + 1u; }
    return vec4<u32>(oh0, min(div(ih, p.stride_h) + 1u, p.out_h), ow0, min(div(iw, p.stride_w) + 1u, p.out_w));
}

// maxpool2d_backward: a gather, one invocation per x element, summing dy over the windows
// that contain it and chose it (overlapping windows, stride < pool, are handled). No atomics.
// Overwrites dx. Dispatch: linear over batch * in_h * in_w * c invocations.
@compute @workgroup_size(64)
fn maxpool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= p.batch * p.in_h * p.in_w * p.c) { return; }
    let i = unflatten_nhwc(id, p.in_h, p.in_w, p.c);
    let win = windows_of(i.y, i.z);
    var acc = 0.0;
    for (var oh = win.x; oh < win.y; oh++) {
        for (var ow = win.z; ow < win.w; ow++) {
            let o = ((i.x * p.out_h + oh) * p.out_w + ow) * p.c + i.w;
            if (arg[o] == id) { acc += dy[o]; }
        }
    }
    dx[id] = acc;
}

// avgpool2d_forward: y = the window's mean. With the window the whole image it is global
// average pooling. Overwrites y. Dispatch: linear over batch * out_h * out_w * c invocations.
@compute @workgroup_size(64)
fn avgpool2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= p.batch * p.out_h * p.out_w * p.c) { return; }
    let o = unflatten_nhwc(id, p.out_h, p.out_w, p.c);
    var acc = 0.0;
    for (var dh = 0u; dh < p.pool_h; dh++) {
        let row = (o.x * p.in_h + o.y * p.stride_h + dh) * p.in_w;
        for (var dw = 0u; dw < p.pool_w; dw++) {
            acc += x[(row + o.z * p.stride_w + dw) * p.c + o.w];
        }
    }
    y[id] = acc / f32(p.pool_h * p.pool_w);
}

// avgpool2d_backward: a gather, one invocation per x element: the sum of dy over the windows
// that contain it, over the window size. Overwrites dx.
// Dispatch: linear over batch * in_h * in_w * c invocations.
@compute @workgroup_size(64)
fn avgpool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= p.batch * p.in_h * p.in_w * p.c) { return; }
    let i = unflatten_nhwc(id, p.in_h, p.in_w, p.c);
    let win = windows_of(i.y, i.z);
    var acc = 0.0;
    for (var oh = win.x; oh < win.y; oh++) {
        for (var ow = win.z; ow < win.w; ow++) {
            acc += dy[((i.x * p.out_h + oh) * p.out_w + ow) * p.c + i.w];
        }
    }
    dx[id] = acc / f32(p.pool_h * p.pool_w);
}

// The quad path, for channel counts that are multiples of 4: every pixel's channels are whole
// quads, so each invocation moves 4 channels with one vec4 load or store (CPU adapters run
// each load lane by lane; this is what makes pooling cheap there).
@group(0) @binding(7) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> argmax4: array<vec4<u32>>;
@group(0) @binding(10) var<storage, read> arg4: array<vec4<u32>>;
@group(0) @binding(11) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read_write> dx4: array<vec4<f32>>;

// maxpool2d_forward_quads: maxpool2d_forward for 4 channels at once (same first-maximum rule).
// Dispatch: linear over batch * out_h * out_w * c / 4 invocations.
@compute @workgroup_size(64)
fn maxpool2d_forward_quads(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let quads = p.c / 4u;
    if (id >= p.batch * p.out_h * p.out_w * quads) { return; }
    let o = unflatten_nhwc(id, p.out_h, p.out_w, quads);
    var scale = vec4<f32>(1.0);
    var shift = vec4<f32>(0.0);
    if (p.norm != 0u) {
        scale = coef4[p.norm_at / 4u + o.w];
        shift = coef4[(p.norm_at + p.c) / 4u + o.w];
    }
    var best = vec4<f32>(-3.4028235e38);
    var best_i = vec4<u32>(0u);
    var best_x = vec4<f32>(0.0);
    for (var dh = 0u; dh < p.pool_h; dh++) {
        let row = (o.x * p.in_h + o.y * p.stride_h + dh) * p.in_w;
        for (var dw = 0u; dw < p.pool_w; dw++) {
            let q = (row + o.z * p.stride_w + dw) * quads + o.w;
            let raw = x4[q];
            let v = normalised(raw, scale, shift);
            let take = v > best | vec4<bool>(dh == 0u && dw == 0u);
            best = select(best, v, take);
            best_x = select(best_x, raw, take);
            best_i = select(best_i, vec4<u32>(4u * q) + vec4<u32>(0u, 1u, 2u, 3u), take);
        }
    }
    y4[id] = best;
    argmax4[id] = best_i;
    if (p.norm != 0u) { at_max4[id] = best_x; }
}

// maxpool2d_backward_quads: a scatter for windows that do not overlap (stride >= pool): each
// output quad writes the stride_h x stride_w block of dx its window starts (the last window of
// a row or column also takes the rows or columns past it), dy where the argmax points and 0
// elsewhere, so every dx element is written exactly once. Overwrites dx.
// Dispatch: linear over batch * out_h * out_w * c / 4 invocations.
@compute @workgroup_size(64)
fn maxpool2d_backward_quads(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let quads = p.c / 4u;
    if (id >= p.batch * p.out_h * p.out_w * quads) { return; }
    let o = unflatten_nhwc(id, p.out_h, p.out_w, quads);
    let g = dy4[id];
    let a = arg4[id];
    let h0 = o.y * p.stride_h;
    let h1 = select(h0 + p.stride_h, p.in_h, o.y + 1u == p.out_h);
    let w0 = o.z * p.stride_w;
    let w1 = select(w0 + p.stride_w, p.in_w, o.z + 1u == p.out_w);
    for (var ih = h0; ih < h1; ih++) {
        for (var iw = w0; iw < w1; iw++) {
            let q = ((o.x * p.in_h + ih) * p.in_w + iw) * quads + o.w;
            dx4[q] = select(vec4<f32>(0.0), g, a == vec4<u32>(4u * q) + vec4<u32>(0u, 1u, 2u, 3u));
        }
    }
}
