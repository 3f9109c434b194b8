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

// x at output row r for the kernel tile `unit` (tap * ceil(in_c / 4) + input-channel quad),
// 0 where the tap falls in the padding.
fn patch_quad(r: u32, unit: u32) -> vec4<f32> {
    let in_groups = (p.in_c + 3u) / 4u;
    let tap = unit / in_groups;
    let ci = (unit - tap * in_groups) * 4u;
    let kh = tap / p.k_w;
    let kw = tap - kh * p.k_w;
    let nh = div(r, p.out_w);
    let ow = r - nh * p.out_w;
    let n = div(nh, p.out_h);
    let oh = nh - n * p.out_h;
    let ih = i32(oh * p.stride + kh) - i32(p.pad_top);
    let iw = i32(ow * p.stride + kw) - i32(p.pad_left);
    let inside = ih >= 0 && ih < i32(p.in_h) && iw >= 0 && iw < i32(p.in_w);
    let e = ((n * p.in_h + u32(clamp(ih, 0, i32(p.in_h) - 1))) * p.in_w + u32(clamp(iw, 0, i32(p.in_w) - 1))) * p.in_c;
    return select(vec4<f32>(0.0), x_quad(e, ci), inside);
}

// conv2d_backward_kernel_subgroup: conv2d_backward_kernel with x shared. An invocation computes
// two kernel tiles, units u and u + 1 (unit: tap x input-channel quad; each dy quad serves both)
// x 4 output channels, over one split of the rows; lanes take S consecutive output-channel
// quads of the same units (the host checks out_c % (4 * S) == 0). For every S rows, lane l
// loads both units' x at row l.
// Dispatch: linear over splits * ceil(units / 2) * (out_c / 4) invocations.
@compute @workgroup_size(64)
fn conv2d_backward_kernel_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                   @builtin(subgroup_id) sg: u32, @builtin(subgroup_size) lanes: u32,
                                   @builtin(subgroup_invocation_id) lane: u32) {
    let id = subgroup_linear_id(wid, nwg, sg, lanes, lane);
    let groups = p.out_c / 4u;
    let in_groups = (p.in_c + 3u) / 4u;
    let units = p.k_h * p.k_w * in_groups;
    let pairs = (units + 1u) / 2u;
    if (id >= p.splits * pairs * groups) { return; }
    let t = div(id, groups);
    let co = (id - t * groups) * 4u;
    let split = div(t, pairs);
    let u0 = (t - split * pairs) * 2u;
    // An odd unit count leaves the last pair one unit short: it repeats unit u0, never stored.
    let u1 = min(u0 + 1u, units - 1u);
    let rows = p.batch * p.out_h * p.out_w;
    let r0 = split * p.rows_per_split;
    let r1 = min(r0 + p.rows_per_split, rows);
    var a0 = vec4<f32>(0.0);  // unit u0, input channels +0..+3
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var b0 = vec4<f32>(0.0);  // unit u1
    var b1 = vec4<f32>(0.0);
    var b2 = vec4<f32>(0.0);
    var b3 = vec4<f32>(0.0);
    for (var rc = r0; rc < r1; rc += lanes) {
        // Rows past r1 load a valid row that no lane asks for.
        let r = min(rc + lane, r1 - 1u);
        let mine_a = patch_quad(r, u0);
        let mine_b = patch_quad(r, u1);
        let count = min(lanes, r1 - rc);
        for (var j = 0u; j < count; j++) {
            let dv = dy_quad((rc + j) * p.out_c, co);
            let xa = subgroupShuffle(mine_a, j);
            let xb = subgroupShuffle(mine_b, j);
            a0 += xa.x * dv;
            a1 += xa.y * dv;
            a2 += xa.z * dv;
            a3 += xa.w * dv;
            b0 += xb.x * dv;
            b1 += xb.y * dv;
            b2 += xb.z * dv;
            b3 += xb.w * dv;
        }
    }
    store_kernel_tile(array<vec4<f32>, 4>(a0, a1, a2, a3), split, u0 / in_groups, (u0 % in_groups) * 4u, co);
    if (u0 + 1u < units) {
        store_kernel_tile(array<vec4<f32>, 4>(b0, b1, b2, b3), split, u1 / in_groups, (u1 % in_groups) * 4u, co);
    }
}
