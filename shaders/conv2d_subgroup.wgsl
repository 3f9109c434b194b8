// Subgroup variants of the conv kernels (see subgroup.wgsl): the S lanes of a subgroup take S
// consecutive channel groups of the same pixels (or taps), so the operand indexed by pixel is
// loaded once per subgroup, each lane loading one slice, and passed round by subgroupShuffle.

// Channels c..c+3 of the four pixels, as columns (X_QUADS).
fn pixel_quads(px: Pixels, c: u32) -> mat4x4<f32> {
    return mat4x4<f32>(x4[(px.e.x + c) / 4u] * px.mask.x, x4[(px.e.y + c) / 4u] * px.mask.y,
                       x4[(px.e.z + c) / 4u] * px.mask.z, x4[(px.e.w + c) / 4u] * px.mask.w);
}

// Channel c of the four pixels.
fn pixel_channel(px: Pixels, c: u32) -> vec4<f32> {
    return vec4<f32>(x[px.e.x + c], x[px.e.y + c], x[px.e.z + c], x[px.e.w + c]) * px.mask;
}

// The outer product whose column j is d * x[j] (a quad of d for each of 4 pixels or channels).
fn outer(d: vec4<f32>, x: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(d * x.x, d * x.y, d * x.z, d * x.w);
}

fn columns_of(m: mat4x4<f32>) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(m[0], m[1], m[2], m[3]);
}

// Lane `lane`'s matrix, column by column.
fn shuffle_columns(m: mat4x4<f32>, lane: u32) -> mat4x4<f32> {
    return mat4x4<f32>(subgroupShuffle(m[0], lane), subgroupShuffle(m[1], lane),
                       subgroupShuffle(m[2], lane), subgroupShuffle(m[3], lane));
}

// The bias-initialised accumulator of 4 pixels x 4 output channels (column j: pixel j).
fn bias_block(co: u32) -> mat4x4<f32> {
    let v = vec4<f32>(b[co], b[co + 1u], b[co + 2u], b[co + 3u]);
    return mat4x4<f32>(v, v, v, v);
}

// conv2d_forward_subgroup: conv2d_forward with x shared. An invocation computes 16 adjacent
// output pixels of a row (so each weight quad serves 16 pixels) x 4 output channels, as four
// blocks of 4 pixels; lanes take S consecutive output-channel quads of the same pixels (the host
// checks out_c % (4 * S) == 0, so the branches on pixels are uniform per subgroup). For every S
// input-channel units (quads with X_QUADS, else single channels), lane l loads unit l of the
// 16 pixels' inputs.
// Dispatch: linear over batch * out_h * ceil(out_w / 16) * (out_c / 4) invocations.
@compute @workgroup_size(64)
fn conv2d_forward_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(subgroup_id) sg: u32, @builtin(subgroup_size) lanes: u32,
                           @builtin(subgroup_invocation_id) lane: u32) {
    let id = subgroup_linear_id(wid, nwg, sg, lanes, lane);
    if (id >= pixel_tiles(p.out_h, p.out_w, p.out_c, 16u)) { return; }
    let tile = pixel_tile(id, p.out_h, p.out_w, p.out_c, 16u);
    let n = tile.x;
    let oh = tile.y;
    let ow0 = tile.z;
    let co = tile.w;
    // Column j of block i: output pixel ow0 + 4i + j.
    var acc0 = bias_block(co);
    var acc1 = acc0;
    var acc2 = acc0;
    var acc3 = acc0;
    let s = i32(p.stride);
    let iw0 = vec4<i32>(vec4<u32>(ow0, ow0 + 1u, ow0 + 2u, ow0 + 3u) * p.stride) - i32(p.pad_left);
    let q = p.out_c / 4u;
    for (var kh = 0u; kh < p.k_h; kh++) {
        let ih = i32(oh * p.stride + kh) - i32(p.pad_top);
        if (ih < 0 || ih >= i32(p.in_h)) { continue; }
        for (var kw = 0u; kw < p.k_w; kw++) {
            let iw = iw0 + i32(kw);
            let px0 = input_pixels(n, ih, iw);
            let px1 = input_pixels(n, ih, iw + 4 * s);
            let px2 = input_pixels(n, ih, iw + 8 * s);
            let px3 = input_pixels(n, ih, iw + 12 * s);
            let wr = ((kh * p.k_w + kw) * p.in_c * p.out_c + co) / 4u;
            if (X_QUADS) {
                for (var c0 = 0u; c0 < p.in_c; c0 += 4u * lanes) {
                    // Channels past in_c are clamped, loaded and never used.
                    let c = min(c0 + 4u * lane, p.in_c - 4u);
                    let mine0 = pixel_quads(px0, c);
                    let mine1 = pixel_quads(px1, c);
                    let mine2 = pixel_quads(px2, c);
                    let mine3 = pixel_quads(px3, c);
                    let units = min(lanes, (p.in_c - c0) / 4u);
                    for (var j = 0u; j < units; j++) {
                        // Columns: the weights of input channels c0 + 4j.. over co..co+3.
                        let r = wr + (c0 + 4u * j) * q;
                        let wm = mat4x4<f32>(w4[r], w4[r + q], w4[r + 2u * q], w4[r + 3u * q]);
                        acc0 += wm * shuffle_columns(mine0, j);
                        acc1 += wm * shuffle_columns(mine1, j);
                        acc2 += wm * shuffle_columns(mine2, j);
                        acc3 += wm * shuffle_columns(mine3, j);
                    }
                }
            } else {
                for (var c0 = 0u; c0 < p.in_c; c0 += lanes) {
                    let c = min(c0 + lane, p.in_c - 1u);
                    let mine0 = pixel_channel(px0, c);
                    let mine1 = pixel_channel(px1, c);
                    let mine2 = pixel_channel(px2, c);
                    let mine3 = pixel_channel(px3, c);
                    let units = min(lanes, p.in_c - c0);
                    for (var j = 0u; j < units; j++) {
                        let wv = w4[wr + (c0 + j) * q];
                        acc0 += outer(wv, subgroupShuffle(mine0, j));
                        acc1 += outer(wv, subgroupShuffle(mine1, j));
                        acc2 += outer(wv, subgroupShuffle(mine2, j));
                        acc3 += outer(wv, subgroupShuffle(mine3, j));
                    }
                }
            }
        }
    }
    store_forward_tile(columns_of(acc0), n, oh, ow0, co);
    store_forward_tile(columns_of(acc1), n, oh, ow0 + 4u, co);
    store_forward_tile(columns_of(acc2), n, oh, ow0 + 8u, co);
    store_forward_tile(columns_of(acc3), n, oh, ow0 + 12u, co);
}

// dy over channels c..c+3 at the four pixels, as columns.
fn dy_quads(px: Pixels, c: u32) -> mat4x4<f32> {
    return mat4x4<f32>(dy4[(px.e.x + c) / 4u] * px.mask.x, dy4[(px.e.y + c) / 4u] * px.mask.y,
                       dy4[(px.e.z + c) / 4u] * px.mask.z, dy4[(px.e.w + c) / 4u] * px.mask.w);
}

// conv2d_backward_input_subgroup: conv2d_backward_input with dy shared. An invocation computes
// 16 adjacent input pixels of a row x 4 input channels, as four blocks of 4 pixels; lanes take
// S consecutive input-channel quads of the same pixels (the host checks in_c % (4 * S) == 0 and
// out_c % 4 == 0). For every S output-channel quads, lane l loads quad l of dy at the pixels'
// taps.
// Dispatch: linear over batch * in_h * ceil(in_w / 16) * (in_c / 4) invocations.
@compute @workgroup_size(64)
fn conv2d_backward_input_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                  @builtin(subgroup_id) sg: u32, @builtin(subgroup_size) lanes: u32,
                                  @builtin(subgroup_invocation_id) lane: u32) {
    let id = subgroup_linear_id(wid, nwg, sg, lanes, lane);
    if (id >= pixel_tiles(p.in_h, p.in_w, p.in_c, 16u)) { return; }
    let tile = pixel_tile(id, p.in_h, p.in_w, p.in_c, 16u);
    let n = tile.x;
    let ih = tile.y;
    let iw0 = tile.z;
    let ci = tile.w;
    let s = i32(p.stride);
    // Column j of block i: input pixel iw0 + 4i + j.
    var acc0 = mat4x4<f32>();
    var acc1 = mat4x4<f32>();
    var acc2 = mat4x4<f32>();
    var acc3 = mat4x4<f32>();
    let tw0 = vec4<i32>(vec4<u32>(iw0, iw0 + 1u, iw0 + 2u, iw0 + 3u)) + i32(p.pad_left);
    let q = p.out_c / 4u;
    for (var kh = 0u; kh < p.k_h; kh++) {
        let th = i32(ih + p.pad_top) - i32(kh);
        if (th < 0 || th % s != 0 || th / s >= i32(p.out_h)) { continue; }
        let oh = u32(th / s);
        for (var kw = 0u; kw < p.k_w; kw++) {
            let tw = tw0 - i32(kw);
            let px0 = output_pixels(n, oh, tw);
            let px1 = output_pixels(n, oh, tw + 4);
            let px2 = output_pixels(n, oh, tw + 8);
            let px3 = output_pixels(n, oh, tw + 12);
            let wr = ((kh * p.k_w + kw) * p.in_c + ci) * q;
            for (var c0 = 0u; c0 < p.out_c; c0 += 4u * lanes) {
                // Channels past out_c are clamped, loaded and never used.
                let c = min(c0 + 4u * lane, p.out_c - 4u);
                let mine0 = dy_quads(px0, c);
                let mine1 = dy_quads(px1, c);
                let mine2 = dy_quads(px2, c);
                let mine3 = dy_quads(px3, c);
                let units = min(lanes, (p.out_c - c0) / 4u);
                for (var j = 0u; j < units; j++) {
                    // Rows: the weights of input channels ci..ci+3 over c0 + 4j.., so wt times a
                    // pixel's dy quad is that pixel's dx over ci..ci+3.
                    let r = wr + c0 / 4u + j;
                    let wt = transpose(mat4x4<f32>(w4[r], w4[r + q], w4[r + 2u * q], w4[r + 3u * q]));
                    acc0 += wt * shuffle_columns(mine0, j);
                    acc1 += wt * shuffle_columns(mine1, j);
                    acc2 += wt * shuffle_columns(mine2, j);
                    acc3 += wt * shuffle_columns(mine3, j);
                }
            }
        }
    }
    store_input_tile(columns_of(acc0), n, ih, iw0, ci);
    store_input_tile(columns_of(acc1), n, ih, iw0 + 4u, ci);
    store_input_tile(columns_of(acc2), n, ih, iw0 + 8u, ci);
    store_input_tile(columns_of(acc3), n, ih, iw0 + 12u, ci);
}

// (kh, kw, first input channel) of kernel unit `unit` (tap * ceil(in_c / 4) + channel quad).
fn unit_tap(unit: u32) -> vec3<u32> {
    let in_groups = (p.in_c + 3u) / 4u;
    let tap = unit / in_groups;
    let kh = tap / p.k_w;
    return vec3<u32>(kh, tap - kh * p.k_w, (unit - tap * in_groups) * 4u);
}

// The x quad that tap (kh, kw, ci) of output pixel (n, oh, ow) reads, 0 in the padding (which
// loads element 0: every lane loads).
fn patch_quad(o: vec3<u32>, tap: vec3<u32>) -> vec4<f32> {
    let e = tap_input(o, tap.x, tap.y);
    return select(vec4<f32>(0.0), x_quad(u32(max(e, 0)), tap.z), e >= 0);
}

// conv2d_backward_kernel_subgroup: conv2d_backward_kernel with x shared. An invocation computes
// four kernel tiles, units u0..u0+3 (unit: tap x input-channel quad; each dy quad serves all
// four) x 4 output channels, over one split of the rows; lanes take S consecutive
// output-channel quads of the same units (the host checks out_c % (4 * S) == 0). For every S
// rows, lane l loads the four units' x at row l.
// Dispatch: linear over splits * ceil(units / 4) * (out_c / 4) invocations.
@compute @workgroup_size(64)
fn conv2d_backward_kernel_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                   @builtin(subgroup_id) sg: u32, @builtin(subgroup_size) lanes: u32,
                                   @builtin(subgroup_invocation_id) lane: u32) {
    let id = subgroup_linear_id(wid, nwg, sg, lanes, lane);
    let groups = p.out_c / 4u;
    let in_groups = (p.in_c + 3u) / 4u;
    let units = p.k_h * p.k_w * in_groups;
    let quads = (units + 3u) / 4u;
    if (id >= p.splits * quads * groups) { return; }
    let t = div(id, groups);
    let co = (id - t * groups) * 4u;
    let split = div(t, quads);
    let u0 = (t - split * quads) * 4u;
    // Units past the last repeat it and are never stored.
    let u = min(vec4<u32>(u0, u0 + 1u, u0 + 2u, u0 + 3u), vec4<u32>(units - 1u));
    let tap0 = unit_tap(u.x);
    let tap1 = unit_tap(u.y);
    let tap2 = unit_tap(u.z);
    let tap3 = unit_tap(u.w);
    let rows = p.batch * p.out_h * p.out_w;
    let r0 = split * p.rows_per_split;
    let r1 = min(r0 + p.rows_per_split, rows);
    var acc0 = mat4x4<f32>();
    var acc1 = mat4x4<f32>();
    var acc2 = mat4x4<f32>();
    var acc3 = mat4x4<f32>();
    for (var rc = r0; rc < r1; rc += lanes) {
        // Rows past r1 load a valid row that no lane asks for.
        let o = output_pixel(min(rc + lane, r1 - 1u));
        let mine0 = patch_quad(o, tap0);
        let mine1 = patch_quad(o, tap1);
        let mine2 = patch_quad(o, tap2);
        let mine3 = patch_quad(o, tap3);
        let count = min(lanes, r1 - rc);
        for (var j = 0u; j < count; j++) {
            let dv = dy_quad((rc + j) * p.out_c, co);
            acc0 += outer(dv, subgroupShuffle(mine0, j));
            acc1 += outer(dv, subgroupShuffle(mine1, j));
            acc2 += outer(dv, subgroupShuffle(mine2, j));
            acc3 += outer(dv, subgroupShuffle(mine3, j));
        }
    }
    let acc = array<mat4x4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        if (u0 + i >= units) { break; }
        let tap = unit_tap(u0 + i);
        store_kernel_tile(columns_of(acc[i]), split, tap.x * p.k_w + tap.y, tap.z, co);
    }
}
