// gemm_subgroup: gemm_quads with the rows of a shared by a subgroup. One invocation computes an
// 8x4 tile of c (two 4x4 tiles over the same columns, so each quad of b serves 8 rows); the S
// lanes of a subgroup take S consecutive column tiles of the same 8 rows (the host checks
// m % 8 == 0 and n % (4 * S) == 0). For every S k-quads, lane l loads the two 4x4 blocks of a at
// k-quad l and the subgroup passes them round, so a costs 8 loads per lane per 128 * S
// multiply-adds (gemm_quads: 4 per 64) and b 4 per 128 (gemm_quads: 4 per 64).
// Dispatch: linear over splits * (m / 8) * (n / 4) invocations.
@compute @workgroup_size(64)
fn gemm_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(subgroup_id) sg: u32, @builtin(subgroup_size) lanes: u32,
                 @builtin(subgroup_invocation_id) lane: u32) {
    let id = subgroup_linear_id(wid, nwg, sg, lanes, lane);
    let tiles_n = p.n / 4u;
    let tiles_m = p.m / 8u;
    // Uniform per subgroup: the invocation count is a multiple of S.
    if (id >= p.splits * tiles_m * tiles_n) { return; }
    // Within a subgroup, lanes take consecutive column tiles. Between subgroups, the tiles
    // along the larger operand's other axis vary fastest (p.rows_fastest when b is the larger),
    // so neighbouring subgroups of a workgroup read the same slice of it while it is in cache.
    let g = id / lanes;
    let column_groups = tiles_n / lanes;
    let tiles = column_groups * tiles_m;
    let t = g % tiles;
    var m_tile = t / column_groups;
    var column_group = t % column_groups;
    if (p.rows_fastest != 0u) {
        m_tile = t % tiles_m;
        column_group = t / tiles_m;
    }
    let m0 = m_tile * 8u;
    let n0 = (column_group * lanes + lane) * 4u;
    let split = g / tiles;
    let k0 = split * p.k_per_split;
    let k1 = min(k0 + p.k_per_split, p.k);
    var top = mat4x4<f32>();     // rows m0..m0+3
    var bottom = mat4x4<f32>();  // rows m0+4..m0+7
    for (var kc = k0; kc < k1; kc += 4u * lanes) {
        // Lanes past the end of k load a valid block that no lane asks for.
        let k = min(kc + 4u * lane, k1 - 4u);
        let mine_top = a_rows(m0, k);
        let mine_bottom = a_rows(m0 + 4u, k);
        let quads = min(lanes, (k1 - kc) / 4u);
        for (var j = 0u; j < quads; j++) {
            let bk = b_rows(kc + 4u * j, n0);
            top += bk * mat4x4<f32>(subgroupShuffle(mine_top[0], j), subgroupShuffle(mine_top[1], j),
                                    subgroupShuffle(mine_top[2], j), subgroupShuffle(mine_top[3], j));
            bottom += bk * mat4x4<f32>(subgroupShuffle(mine_bottom[0], j), subgroupShuffle(mine_bottom[1], j),
                                       subgroupShuffle(mine_bottom[2], j), subgroupShuffle(mine_bottom[3], j));
        }
    }
    store_tile_quads(top, m0, n0, split);
    store_tile_quads(bottom, m0 + 4u, n0, split);
}
