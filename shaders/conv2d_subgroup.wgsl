// Subgroup variants of the conv kernels (see subgroup.wgsl): the S lanes of a subgroup take S
// consecutive channel groups of the same pixels (or taps), so the operand indexed by pixel is
// loaded once per subgroup, each lane loading one slice, and passed round by subgroupShuffle.

// conv2d_forward_subgroup: conv2d_forward with x shared. An invocation computes 8 adjacent
// output pixels of a row (so each weight quad serves 8 pixels) x 4 output channels; lanes take
// S consecutive output-channel quads of the same pixels (the host checks out_c % (4 * S) == 0,
// so the branches on pixels are uniform per subgroup). For every S input-channel units (quads
// with X_QUADS, else single channels), lane l loads unit l of the 8 pixels' inputs.
// Dispatch: linear over batch * out_h * ceil(out_w / 8) * (out_c / 4) invocations.
@compute @workgroup_size(64)
fn conv2d_forward_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(subgroup_id) sg: u32, @builtin(subgroup_size) lanes: u32,
                           @builtin(subgroup_invocation_id) lane: u32) {
    let id = subgroup_linear_id(wid, nwg, sg, lanes, lane);
    if (id >= pixel_tiles(p.out_h, p.out_w, p.out_c, 8u)) { return; }
    let tile = pixel_tile(id, p.out_h, p.out_w, p.out_c, 8u);
    let n = tile.x;
    let oh = tile.y;
    let ow0 = tile.z;
    let co = tile.w;
    let bias = vec4<f32>(b[co], b[co + 1u], b[co + 2u], b[co + 3u]);
    // Pixel ow0 + i accumulates in acc[i / 4][i % 4] (named: arrays indexed at run time would
    // live in memory on CPU adapters).
    var acc0 = bias;
    var acc1 = bias;
    var acc2 = bias;
    var acc3 = bias;
    var acc4 = bias;
    var acc5 = bias;
    var acc6 = bias;
    var acc7 = bias;
    let iw_lo = vec4<i32>(vec4<u32>(ow0, ow0 + 1u, ow0 + 2u, ow0 + 3u) * p.stride) - i32(p.pad_left);
    let iw_hi = iw_lo + i32(4u * p.stride);
    for (var kh = 0u; kh < p.k_h; kh++) {
        let ih = i32(oh * p.stride + kh) - i32(p.pad_top);
        if (ih < 0 || ih >= i32(p.in_h)) { continue; }
        let row_base = (n * p.in_h + u32(ih)) * p.in_w;
        for (var kw = 0u; kw < p.k_w; kw++) {
            // Taps left or right of the input read a clamped address, times 0.
            let lo = iw_lo + i32(kw);
            let hi = iw_hi + i32(kw);
            let last = vec4<i32>(i32(p.in_w) - 1);
            let mask_lo = select(vec4<f32>(0.0), vec4<f32>(1.0), lo >= vec4<i32>(0) & lo <= last);
            let mask_hi = select(vec4<f32>(0.0), vec4<f32>(1.0), hi >= vec4<i32>(0) & hi <= last);
            let xb_lo = (row_base + vec4<u32>(clamp(lo, vec4<i32>(0), last))) * p.in_c;
            let xb_hi = (row_base + vec4<u32>(clamp(hi, vec4<i32>(0), last))) * p.in_c;
            let wr = (kh * p.k_w + kw) * p.in_c * p.out_c + co;
            if (X_QUADS) {
                for (var c0 = 0u; c0 < p.in_c; c0 += 4u * lanes) {
                    // Columns: the pixels' channels c..c+3 (clamped past in_c, never used).
                    let c = min(c0 + 4u * lane, p.in_c - 4u);
                    let mine_lo = mat4x4<f32>(x4[(xb_lo.x + c) / 4u] * mask_lo.x, x4[(xb_lo.y + c) / 4u] * mask_lo.y,
                                              x4[(xb_lo.z + c) / 4u] * mask_lo.z, x4[(xb_lo.w + c) / 4u] * mask_lo.w);
                    let mine_hi = mat4x4<f32>(x4[(xb_hi.x + c) / 4u] * mask_hi.x, x4[(xb_hi.y + c) / 4u] * mask_hi.y,
                                              x4[(xb_hi.z + c) / 4u] * mask_hi.z, x4[(xb_hi.w + c) / 4u] * mask_hi.w);
                    let units = min(lanes, (p.in_c - c0) / 4u);
                    for (var j = 0u; j < units; j++) {
                        // Columns: the weights of input channels c0 + 4j.. over co..co+3.
                        let r = (wr + (c0 + 4u * j) * p.out_c) / 4u;
                        let q = p.out_c / 4u;
                        let wm = mat4x4<f32>(w4[r], w4[r + q], w4[r + 2u * q], w4[r + 3u * q]);
                        acc0 += wm * subgroupShuffle(mine_lo[0], j);
                        acc1 += wm * subgroupShuffle(mine_lo[1], j);
                        acc2 += wm * subgroupShuffle(mine_lo[2], j);
                        acc3 += wm * subgroupShuffle(mine_lo[3], j);
                        acc4 += wm * subgroupShuffle(mine_hi[0], j);
                        acc5 += wm * subgroupShuffle(mine_hi[1], j);
                        acc6 += wm * subgroupShuffle(mine_hi[2], j);
                        acc7 += wm * subgroupShuffle(mine_hi[3], j);
                    }
                }
            } else {
                for (var c0 = 0u; c0 < p.in_c; c0 += lanes) {
                    // The pixels' channel c (clamped past in_c, never used).
                    let c = min(c0 + lane, p.in_c - 1u);
                    let mine_lo = vec4<f32>(x[xb_lo.x + c], x[xb_lo.y + c], x[xb_lo.z + c], x[xb_lo.w + c]) * mask_lo;
                    let mine_hi = vec4<f32>(x[xb_hi.x + c], x[xb_hi.y + c], x[xb_hi.z + c], x[xb_hi.w + c]) * mask_hi;
                    let units = min(lanes, p.in_c - c0);
                    for (var j = 0u; j < units; j++) {
                        let wv = w4[(wr + (c0 + j) * p.out_c) / 4u];
                        let xl = subgroupShuffle(mine_lo, j);
                        let xh = subgroupShuffle(mine_hi, j);
                        acc0 += xl.x * wv;
                        acc1 += xl.y * wv;
                        acc2 += xl.z * wv;
                        acc3 += xl.w * wv;
                        acc4 += xh.x * wv;
                        acc5 += xh.y * wv;
                        acc6 += xh.z * wv;
                        acc7 += xh.w * wv;
                    }
                }
            }
        }
    }
    store_forward_tile(array<vec4<f32>, 4>(acc0, acc1, acc2, acc3), n, oh, ow0, co);
    store_forward_tile(array<vec4<f32>, 4>(acc4, acc5, acc6, acc7), n, oh, ow0 + 4u, co);
}

// conv2d_backward_input_subgroup: conv2d_backward_input with dy shared. An invocation computes
// 8 adjacent input pixels of a row x 4 input channels; lanes take S consecutive input-channel
// quads of the same pixels (the host checks in_c % (4 * S) == 0 and out_c % 4 == 0). For every
// S output-channel quads, lane l loads quad l of dy at the 8 pixels' taps.
// Dispatch: linear over batch * in_h * ceil(in_w / 8) * (in_c / 4) invocations.
@compute @workgroup_size(64)
fn conv2d_backward_input_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                  @builtin(subgroup_id) sg: u32, @builtin(subgroup_size) lanes: u32,
                                  @builtin(subgroup_invocation_id) lane: u32) {
    let id = subgroup_linear_id(wid, nwg, sg, lanes, lane);
    if (id >= pixel_tiles(p.in_h, p.in_w, p.in_c, 8u)) { return; }
    let tile = pixel_tile(id, p.in_h, p.in_w, p.in_c, 8u);
    let n = tile.x;
    let ih = tile.y;
    let iw0 = tile.z;
    let ci = tile.w;
    let s = i32(p.stride);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    let tw_lo = vec4<i32>(vec4<u32>(iw0, iw0 + 1u, iw0 + 2u, iw0 + 3u)) + i32(p.pad_left);
    let tw_hi = tw_lo + 4;
    let last = vec4<i32>(i32(p.out_w) - 1);
    for (var kh = 0u; kh < p.k_h; kh++) {
        let th = i32(ih + p.pad_top) - i32(kh);
        if (th < 0 || th % s != 0 || th / s >= i32(p.out_h)) { continue; }
        let row_base = (n * p.out_h + u32(th / s)) * p.out_w;
        for (var kw = 0u; kw < p.k_w; kw++) {
            // Output column of each pixel under tap kw; invalid ones read a clamped address, times 0.
            let lo = tw_lo - i32(kw);
            let hi = tw_hi - i32(kw);
            let ow_lo = lo / s;
            let ow_hi = hi / s;
            let mask_lo = select(vec4<f32>(0.0), vec4<f32>(1.0), lo >= vec4<i32>(0) & lo - ow_lo * s == vec4<i32>(0) & ow_lo <= last);
            let mask_hi = select(vec4<f32>(0.0), vec4<f32>(1.0), hi >= vec4<i32>(0) & hi - ow_hi * s == vec4<i32>(0) & ow_hi <= last);
            let db_lo = (row_base + vec4<u32>(clamp(ow_lo, vec4<i32>(0), last))) * p.out_c;
            let db_hi = (row_base + vec4<u32>(clamp(ow_hi, vec4<i32>(0), last))) * p.out_c;
            let wr = ((kh * p.k_w + kw) * p.in_c + ci) * p.out_c;
            for (var c0 = 0u; c0 < p.out_c; c0 += 4u * lanes) {
                // Columns: the pixels' dy over channels c..c+3 (clamped past out_c, never used).
                let c = min(c0 + 4u * lane, p.out_c - 4u);
                let mine_lo = mat4x4<f32>(dy4[(db_lo.x + c) / 4u] * mask_lo.x, dy4[(db_lo.y + c) / 4u] * mask_lo.y,
                                          dy4[(db_lo.z + c) / 4u] * mask_lo.z, dy4[(db_lo.w + c) / 4u] * mask_lo.w);
                let mine_hi = mat4x4<f32>(dy4[(db_hi.x + c) / 4u] * mask_hi.x, dy4[(db_hi.y + c) / 4u] * mask_hi.y,
                                          dy4[(db_hi.z + c) / 4u] * mask_hi.z, dy4[(db_hi.w + c) / 4u] * mask_hi.w);
                let units = min(lanes, (p.out_c - c0) / 4u);
                for (var j = 0u; j < units; j++) {
                    // Columns: the weights of input channels ci..ci+3 over c0 + 4j..; dv * wm
                    // is the vector of their dot products with dv.
                    let r = (wr + c0 + 4u * j) / 4u;
                    let q = p.out_c / 4u;
                    let wm = mat4x4<f32>(w4[r], w4[r + q], w4[r + 2u * q], w4[r + 3u * q]);
                    acc0 += subgroupShuffle(mine_lo[0], j) * wm;
                    acc1 += subgroupShuffle(mine_lo[1], j) * wm;
                    acc2 += subgroupShuffle(mine_lo[2], j) * wm;
                    acc3 += subgroupShuffle(mine_lo[3], j) * wm;
                    acc4 += subgroupShuffle(mine_hi[0], j) * wm;
                    acc5 += subgroupShuffle(mine_hi[1], j) * wm;
                    acc6 += subgroupShuffle(mine_hi[2], j) * wm;
                    acc7 += subgroupShuffle(mine_hi[3], j) * wm;
                }
            }
        }
    }
    store_input_tile(array<vec4<f32>, 4>(acc0, acc1, acc2, acc3), n, ih, iw0, ci);
    store_input_tile(array<vec4<f32>, 4>(acc4, acc5, acc6, acc7), n, ih, iw0 + 4u, ci);
}

// (kh, kw, first input channel) of kernel unit `unit` (tap * ceil(in_c / 4) + channel quad).
fn unit_tap(unit: u32) -> vec3<u32> {
    let in_groups = (p.in_c + 3u) / 4u;
    let tap = unit / in_groups;
    let kh = tap / p.k_w;
    return vec3<u32>(kh, tap - kh * p.k_w, (unit - tap * in_groups) * 4u);
}

// (n, oh, ow) of output row r.
fn output_pixel(r: u32) -> vec3<u32> {
    let nh = div(r, p.out_w);
    let n = div(nh, p.out_h);
    return vec3<u32>(n, nh - n * p.out_h, r - nh * p.out_w);
}

// The x quad that tap (kh, kw, ci) of output pixel (n, oh, ow) reads, 0 in the padding.
fn patch_quad(o: vec3<u32>, tap: vec3<u32>) -> vec4<f32> {
    let ih = i32(o.y * p.stride + tap.x) - i32(p.pad_top);
    let iw = i32(o.z * p.stride + tap.y) - i32(p.pad_left);
    let inside = ih >= 0 && ih < i32(p.in_h) && iw >= 0 && iw < i32(p.in_w);
    let e = ((o.x * p.in_h + u32(clamp(ih, 0, i32(p.in_h) - 1))) * p.in_w + u32(clamp(iw, 0, i32(p.in_w) - 1))) * p.in_c;
    return select(vec4<f32>(0.0), x_quad(e, tap.z), inside);
}

// dy quad d times x quad x as a matrix whose column j is input channel j's row of the tile.
fn outer(d: vec4<f32>, x: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(d * x.x, d * x.y, d * x.z, d * x.w);
}

fn rows_of(m: mat4x4<f32>) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(m[0], m[1], m[2], m[3]);
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
        store_kernel_tile(rows_of(acc[i]), split, tap.x * p.k_w + tap.y, tap.z, co);
    }
}
