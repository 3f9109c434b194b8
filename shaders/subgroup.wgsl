// Prepended (after common.wgsl and the family's own file) to the subgroup variants of a kernel
// family, which are compiled only on adapters with subgroup operations (src/gpu/kernels/mod.rs).
//
// Why subgroups: lavapipe runs each storage load lane by lane, so an operand that every lane of a
// subgroup needs costs as many loads as there are lanes. In the subgroup kernels the lanes share
// a tile coordinate, each lane loads a different slice of the shared operand and subgroupShuffle
// hands every slice to every lane: one load per slice instead of one per lane (on lavapipe a
// shuffle costs about a twentieth of a load). The host uses them only when every subgroup is
// full and of one known size S (subgroup_min_size == subgroup_max_size, S divides WG) and the
// shape keeps each subgroup inside one shared tile, so control flow stays uniform per subgroup.

// The flat invocation id, counted by subgroups so that a subgroup's lanes hold S consecutive ids
// whatever order the adapter packs invocations into subgroups.
fn subgroup_linear_id(wid: vec3<u32>, nwg: vec3<u32>, sg: u32, lanes: u32, lane: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + sg * lanes + lane;
}
