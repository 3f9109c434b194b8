// Prepended to every kernel family (see src/gpu/kernels/mod.rs), so helpers live once.

// Every linear kernel uses 64-invocation workgroups. Large launches are folded into a 2D grid
// (x <= 65535 workgroups), so the flat invocation id is x + y * (groups_x * 64).
const WG: u32 = 64u;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Per-step values written by the host before each submission (one 48-byte uniform shared by
// Adam, the losses and dropout), so a schedule or a new batch never rebuilds a bind group.
struct Step {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    lr_t: f32,     // lr * sqrt(1 - beta2^t) / (1 - beta1^t), computed by the host in f64:
                   // in f32, 1 - pow(beta2, t) loses half its digits to cancellation
    t: u32,        // Adam step, 1-based
    rows: u32,     // valid rows in this batch (the last batch of an epoch may be short)
    training: u32, // 0: dropout is the identity
    seq: u32,      // the run's training step, 1-based: varies the dropout mask per step, and
                   // unlike t does not restart when layers are unfrozen
}

// Numerically stable logistic: never exponentiates a positive number.
fn sigmoid(z: f32) -> f32 {
    let e = exp(-abs(z));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), z >= 0.0);
}

// a / b for index arithmetic. CPU adapters (lavapipe) cannot vectorise integer division and
// run it lane by lane; a float estimate corrected to the exact quotient is several times
// cheaper there, and no slower on GPUs. Exact for all a, b > 0 (the loops correct the estimate's
// rounding, at most a couple of steps).
fn div(a: u32, b: u32) -> u32 {
    var q = u32(f32(a) / f32(b));
    loop {
        if (q * b <= a) { break; }
        q -= 1u;
    }
    loop {
        if ((q + 1u) * b > a) { break; }
        q += 1u;
    }
    return q;
}

// (n, y, x, c) of flat index `id` in an NHWC tensor of h x w x channels per image. The conv
// kernels pass quads of pixels and channels (ceil(w / 4), ceil(c / 4)) to get a tile's origin.
fn unflatten_nhwc(id: u32, h: u32, w: u32, channels: u32) -> vec4<u32> {
    let pix = div(id, channels);
    let row = div(pix, w);
    let n = div(row, h);
    return vec4<u32>(n, row - n * h, pix - row * w, id - pix * channels);
}
