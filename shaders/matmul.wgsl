// Dense layers as one strided GEMM: c[m, n] = sum_k a[m, k] * b[k, n], where a[m, k] is read at
// m * a_row + k * a_col and b[k, n] at k * b_row + n * b_col. The strides express every
// transpose the dense layer needs without copies:
//   forward  y  = x  . W     (a = x [batch, in],  b = W [in, out])
//   backward dx = dy . W^T   (b = W read with b_row = 1, b_col = out)
//   backward dW = x^T . dy   (a = x read with a_row = 1, a_col = in)
// The k range can be cut into p.splits chunks (split-K) so a long reduction with few outputs
// (dense 32768 -> 128 at batch 32) still fills the GPU: then c is a scratch of partial sums
// that sum_partials (reduce.wgsl) adds in a fixed order, applying bias and activation there.
// With one split the bias/activation epilogue runs here and c is the final output. Overwrites c.

struct Gemm {
    m: u32, n: u32, k: u32, splits: u32,
    a_row: u32, a_col: u32, b_row: u32, b_col: u32,
    k_per_split: u32, has_bias: u32, _pad: u32,
    rows_fastest: u32,  // gemm_subgroup only: b (k x n) is larger than a (m x k)
}

@group(0) @binding(0) var<uniform> p: Gemm;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;     // [n], read when has_bias != 0
@group(0) @binding(4) var<storage, read_write> c: array<f32>;  // [splits, m, n]

// gemm: one invocation computes a 4x4 tile of c in registers (no shared memory, no barriers:
// on lavapipe this beat a barrier-tiled kernel by about 4x, and it is simple on real GPUs).
// Dispatch: linear over splits * ceil(m / 4) * ceil(n / 4) invocations; consecutive
// invocations take consecutive column tiles so b reads are contiguous when b_col = 1.
@compute @workgroup_size(64)
fn gemm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let tiles_n = (p.n + 3u) / 4u;
    let tiles_m = (p.m + 3u) / 4u;
    if (id >= p.splits * tiles_m * tiles_n) { return; }
    let n0 = (id % tiles_n) * 4u;
    let m0 = ((id / tiles_n) % tiles_m) * 4u;
    let split = id / (tiles_n * tiles_m);
    // Clamp rows and columns past the edge to the last one: loads stay in bounds, stores skip them.
    let rows = vec4<u32>(m0, min(m0 + 1u, p.m - 1u), min(m0 + 2u, p.m - 1u), min(m0 + 3u, p.m - 1u)) * p.a_row;
    let cn = vec4<u32>(n0, min(n0 + 1u, p.n - 1u), min(n0 + 2u, p.n - 1u), min(n0 + 3u, p.n - 1u));
    let cols = cn * p.b_col;
    let k0 = split * p.k_per_split;
    let k1 = min(k0 + p.k_per_split, p.k);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = k0; kk < k1; kk++) {
        let ak = kk * p.a_col;
        let bk = kk * p.b_row;
        let bv = vec4<f32>(b[bk + cols.x], b[bk + cols.y], b[bk + cols.z], b[bk + cols.w]);
        acc0 += a[ak + rows.x] * bv;
        acc1 += a[ak + rows.y] * bv;
        acc2 += a[ak + rows.z] * bv;
        acc3 += a[ak + rows.w] * bv;
    }
    var tile = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    if (p.splits == 1u) {
        var add = vec4<f32>(0.0);
        if (p.has_bias != 0u) {
            add = vec4<f32>(bias[cn.x], bias[cn.y], bias[cn.z], bias[cn.w]);
        }
        for (var i = 0u; i < 4u; i++) {
            tile[i] = activate(tile[i] + add);
        }
    }
    let base = split * p.m * p.n;
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + i;
        if (m >= p.m) { break; }
        let o = base + m * p.n + n0;
        c[o] = tile[i].x;
        if (n0 + 1u < p.n) { c[o + 1u] = tile[i].y; }
        if (n0 + 2u < p.n) { c[o + 2u] = tile[i].z; }
        if (n0 + 3u < p.n) { c[o + 3u] = tile[i].w; }
    }
}

// The quad path: m, n and k are multiples of 4, so every operand is read as vec4 along its
// contiguous axis, 4 quads of a and 4 of b per 64 multiply-adds (the scalar gemm above does 8
// loads per 16). CPU adapters run each load lane by lane, so this is about 3x faster there.
// Which axis is contiguous is fixed per pipeline by the override constants below (the three
// layouts the dense layer needs), so the loop carries no layout branch.
override A_K_CONTIGUOUS: bool = true;  // a stored [m, k] (a_col = 1), else [k, m] (a_row = 1)
override B_N_CONTIGUOUS: bool = true;  // b stored [k, n] (b_col = 1), else [n, k] (b_row = 1)

@group(0) @binding(5) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> bias4: array<vec4<f32>>;     // read when has_bias != 0
@group(0) @binding(8) var<storage, read_write> c4: array<vec4<f32>>;  // [splits, m, n]

// Quads q, q + s, q + 2s and q + 3s of a (or b), as the columns of a matrix.
fn a_quads(q: u32, s: u32) -> mat4x4<f32> {
    return mat4x4<f32>(a4[q], a4[q + s], a4[q + 2u * s], a4[q + 3u * s]);
}

fn b_quads(q: u32, s: u32) -> mat4x4<f32> {
    return mat4x4<f32>(b4[q], b4[q + s], b4[q + 2u * s], b4[q + 3u * s]);
}

// Rows m0..m0+3 of a over k..k+3, as the columns of a matrix (column i: row m0 + i).
fn a_rows(m0: u32, k: u32) -> mat4x4<f32> {
    if (A_K_CONTIGUOUS) {
        return a_quads((m0 * p.a_row + k) / 4u, p.a_row / 4u);
    }
    return transpose(a_quads((k * p.a_col + m0) / 4u, p.a_col / 4u));
}

// Rows k..k+3 of b over n0..n0+3, as the columns of a matrix (column j: row k + j).
fn b_rows(k: u32, n0: u32) -> mat4x4<f32> {
    if (B_N_CONTIGUOUS) {
        return b_quads((k * p.b_row + n0) / 4u, p.b_row / 4u);
    }
    return transpose(b_quads((n0 * p.b_col + k) / 4u, p.b_col / 4u));
}

// Stores the 4x4 tile at (m0, n0) of split `split` (column i of acc: row m0 + i), with the
// bias/activation epilogue when there is a single split.
fn store_tile_quads(acc: mat4x4<f32>, m0: u32, n0: u32, split: u32) {
    let base = (split * p.m * p.n + m0 * p.n + n0) / 4u;
    for (var i = 0u; i < 4u; i++) {
        var row = acc[i];
        if (p.splits == 1u) {
            if (p.has_bias != 0u) { row += bias4[n0 / 4u]; }
            row = activate(row);
        }
        c4[base + i * p.n / 4u] = row;
    }
}

// gemm_quads: one invocation computes a 4x4 tile of c; k_per_split is a multiple of 4.
// Dispatch: linear over splits * (m / 4) * (n / 4) invocations, column tiles fastest.
@compute @workgroup_size(64)
fn gemm_quads(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let tiles_n = p.n / 4u;
    let tiles_m = p.m / 4u;
    if (id >= p.splits * tiles_m * tiles_n) { return; }
    let n0 = (id % tiles_n) * 4u;
    let m0 = ((id / tiles_n) % tiles_m) * 4u;
    let split = id / (tiles_n * tiles_m);
    let k0 = split * p.k_per_split;
    let k1 = min(k0 + p.k_per_split, p.k);
    var acc = mat4x4<f32>();
    for (var k = k0; k < k1; k += 4u) {
        acc += b_rows(k, n0) * a_rows(m0, k);
    }
    store_tile_quads(acc, m0, n0, split);
}
