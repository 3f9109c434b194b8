// Depthwise 2D convolution (Keras DepthwiseConv2D): input channel c has its own depth_multiplier
// m filters; the kernel [k_h, k_w, in_c, m] is read as [k_h, k_w, out_c] with out_c = in_c * m,
// and output channel o = c * m + j reads input channel o / m (Keras' order). Appended to
// conv2d.wgsl, whose uniform (the multiplier is p.out_c / p.in_c), bindings, tiles, loads and
// stores it shares: `w` and `dw` hold the depthwise kernel, and `y`, `dy`, `dx` are laid out as
// there. X_QUADS and OUT_QUADS are set together, for multiplier 1 and a channel count that is a
// multiple of 4: output channel o then reads input channel o, and every operand loads by quads.

// x at the input channels that output channels co..co+3 read (clamped as in quad()), of the
// pixel whose channel 0 is at element e.
fn x_source(e: u32, co: u32) -> vec4<f32> {
    if (X_QUADS) { return x4[(e + co) / 4u]; }
    let ci = e + quad(co, p.out_c) / (p.out_c / p.in_c);
    return vec4<f32>(x[ci.x], x[ci.y], x[ci.z], x[ci.w]);
}

// depthwise_conv2d_forward: y[o] = act(sum over taps of x[o / m] * w[tap, o] + b[o]),
// act = ACTIVATION (common.wgsl). Overwrites y.
// One invocation: 4 adjacent output pixels of one row x 4 output channels.
// Dispatch: linear over batch * out_h * ceil(out_w / 4) * ceil(out_c / 4) invocations.
@compute @workgroup_size(64)
fn depthwise_conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= pixel_tiles(p.out_h, p.out_w, p.out_c, 4u)) { return; }
    let tile = pixel_tile(id, p.out_h, p.out_w, p.out_c, 4u);
    let n = tile.x;
    let oh = tile.y;
    let ow0 = tile.z;
    let co = tile.w;
    let c = quad(co, p.out_c);
    var acc0 = vec4<f32>(b[c.x], b[c.y], b[c.z], b[c.w]);
    var acc1 = acc0;
    var acc2 = acc0;
    var acc3 = acc0;
    let iw0 = vec4<i32>(vec4<u32>(ow0, ow0 + 1u, ow0 + 2u, ow0 + 3u) * p.stride) - i32(p.pad_left);
    for (var kh = 0u; kh < p.k_h; kh++) {
        let ih = i32(oh * p.stride + kh) - i32(p.pad_top);
        if (ih < 0 || ih >= i32(p.in_h)) { continue; }
        for (var kw = 0u; kw < p.k_w; kw++) {
            // Taps left or right of the input read a clamped address, times 0.
            let px = input_pixels(n, ih, iw0 + i32(kw));
            let wv = w_quad((kh * p.k_w + kw) * p.out_c, co);
            acc0 += wv * x_source(px.e.x, co) * px.mask.x;
            acc1 += wv * x_source(px.e.y, co) * px.mask.y;
            acc2 += wv * x_source(px.e.z, co) * px.mask.z;
            acc3 += wv * x_source(px.e.w, co) * px.mask.w;
        }
    }
    store_forward_tile(array<vec4<f32>, 4>(acc0, acc1, acc2, acc3), n, oh, ow0, co);
}

// depthwise_conv2d_backward_input: dx[c] = sum over taps and j < m of dy[c * m + j] *
// w[tap, c * m + j] (dy already holds the gradient at the pre-activation). Overwrites dx, or
// adds into it with p.accumulate (the input has other readers).
// One invocation: 4 adjacent input pixels of one row x 4 input channels.
// Dispatch: linear over batch * in_h * ceil(in_w / 4) * ceil(in_c / 4) invocations.
@compute @workgroup_size(64)
fn depthwise_conv2d_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if (id >= pixel_tiles(p.in_h, p.in_w, p.in_c, 4u)) { return; }
    let tile = pixel_tile(id, p.in_h, p.in_w, p.in_c, 4u);
    let n = tile.x;
    let ih = tile.y;
    let iw0 = tile.z;
    let ci = tile.w;
    let m = p.out_c / p.in_c;
    // The first output channel of each input channel.
    let c = quad(ci, p.in_c) * m;
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
            let wr = (kh * p.k_w + kw) * p.out_c;
            for (var j = 0u; j < m; j++) {
                let wv = w_channels(wr + j, c);
                acc0 += wv * dy_channels(px.e.x + j, c) * px.mask.x;
                acc1 += wv * dy_channels(px.e.y + j, c) * px.mask.y;
                acc2 += wv * dy_channels(px.e.z + j, c) * px.mask.z;
                acc3 += wv * dy_channels(px.e.w + j, c) * px.mask.w;
            }
        }
    }
    store_input_tile(array<vec4<f32>, 4>(acc0, acc1, acc2, acc3), n, ih, iw0, ci);
}

// w and dy at channels c of the kernel row or pixel whose channel 0 is at element e (with
// OUT_QUADS, c is a quad from c.x, and e a multiple of 4).
fn w_channels(e: u32, c: vec4<u32>) -> vec4<f32> {
    if (OUT_QUADS) { return w4[(e + c.x) / 4u]; }
    return vec4<f32>(w[e + c.x], w[e + c.y], w[e + c.z], w[e + c.w]);
}

fn dy_channels(e: u32, c: vec4<u32>) -> vec4<f32> {
    if (OUT_QUADS) { return dy4[(e + c.x) / 4u]; }
    return vec4<f32>(dy[e + c.x], dy[e + c.y], dy[e + c.z], dy[e + c.w]);
}

// depthwise_conv2d_backward_kernel: dw[s, tap, o] = sum over the output rows r in split s
// (r = n, oh, ow) of x[patch(r, tap), o / m] * dy[r, o]. The rows are cut into p.splits chunks
// of p.rows_per_split as in conv2d_backward_kernel; with splits > 1, dw is a scratch of partial
// sums that sum_partials (reduce.wgsl) adds in a fixed order. Overwrites dw.
// One invocation: one (kh, kw) tap x 4 output channels, in one split.
// Dispatch: linear over splits * k_h * k_w * ceil(out_c / 4) invocations.
@compute @workgroup_size(64)
fn depthwise_conv2d_backward_kernel(@builtin(global_invocation_id) gid: vec3<u32>,
                                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let groups = (p.out_c + 3u) / 4u;
    let taps = p.k_h * p.k_w;
    if (id >= p.splits * taps * groups) { return; }
    let t = div(id, groups);
    let co = (id - t * groups) * 4u;
    let split = div(t, taps);
    let tap = t - split * taps;
    let kh = div(tap, p.k_w);
    let kw = tap - kh * p.k_w;
    let rows = p.batch * p.out_h * p.out_w;
    let r0 = split * p.rows_per_split;
    let r1 = min(r0 + p.rows_per_split, rows);
    var acc = vec4<f32>(0.0);
    var at = output_pixel(r0);
    for (var r = r0; r < r1; r++) {
        let e = tap_input(at, kh, kw);
        if (e >= 0) {
            acc += x_source(u32(e), co) * dy_quad(r * p.out_c, co);
        }
        at = next_pixel(at);
    }
    let o = (split * taps + tap) * p.out_c + co;
    for (var q = 0u; q < min(4u, p.out_c - co); q++) { dw[o + q] = acc[q]; }
}
