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

// Hidden activations, by code: `Activation::code` in src/model/activation.rs, the one list.
const ACT_LINEAR: u32 = 0u;
const ACT_RELU: u32 = 1u;
const ACT_LEAKY_RELU: u32 = 2u;
const ACT_ELU: u32 = 3u;
const ACT_TANH: u32 = 4u;
const ACT_SIGMOID: u32 = 5u;
const ACT_SILU: u32 = 6u;
const ACT_GELU: u32 = 7u;
const LEAKY_SLOPE: f32 = 0.2;  // Keras 3's default negative_slope

// The activation a kernel fuses, fixed per pipeline (src/gpu/kernels/mod.rs): the others'
// code compiles away. (Chosen by a uniform instead, every activation's code stayed in the
// kernels, and on lavapipe a max pool over a batchnorm ran about 2x slower, ReLU or not.)
override ACTIVATION: u32 = ACT_LINEAR;

// Numerically stable logistic, per lane: never exponentiates a positive number.
fn logistic(z: vec4<f32>) -> vec4<f32> {
    let e = exp(-abs(z));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), z >= vec4<f32>(0.0));
}

fn sigmoid(z: f32) -> f32 {
    return logistic(vec4<f32>(z)).x;
}

// erfc(x) with a fractional error under 1.2e-7 for every x (Numerical Recipes' erfcc, a
// Chebyshev fit): relative, so the normal CDF below keeps its digits in the far negative tail
// where 1 + erf(x) would cancel.
fn erfc(x: vec4<f32>) -> vec4<f32> {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let r = t * exp(-z * z + poly);
    return select(2.0 - r, r, x >= vec4<f32>(0.0));
}

// The standard normal CDF and density (GELU's exact form, Keras 3's default approximate=False).
fn normal_cdf(z: vec4<f32>) -> vec4<f32> {
    return 0.5 * erfc(-0.70710678 * z);
}

fn normal_pdf(z: vec4<f32>) -> vec4<f32> {
    return 0.39894228 * exp(-0.5 * z * z);
}

fn tanh_stable(z: vec4<f32>) -> vec4<f32> {
    let e = exp(-2.0 * abs(z));
    return sign(z) * (1.0 - e) / (1.0 + e);
}

// Whether the derivative of ACTIVATION follows from its output alone: then it is fused into
// its producer's store; silu and gelu need the pre-activation.
fn grad_from_output() -> bool {
    return ACTIVATION <= ACT_SIGMOID;
}

// y = f(z) for ACTIVATION.
fn activate(z: vec4<f32>) -> vec4<f32> {
    switch ACTIVATION {
        case ACT_RELU: { return max(z, vec4<f32>(0.0)); }
        case ACT_LEAKY_RELU: { return select(LEAKY_SLOPE * z, z, z > vec4<f32>(0.0)); }
        case ACT_ELU: { return select(exp(min(z, vec4<f32>(0.0))) - 1.0, z, z > vec4<f32>(0.0)); }
        case ACT_TANH: { return tanh_stable(z); }
        case ACT_SIGMOID: { return logistic(z); }
        case ACT_SILU: { return z * logistic(z); }
        case ACT_GELU: { return z * normal_cdf(z); }
        default: { return z; }
    }
}

// f'(z) for ACTIVATION, from `s`: the output y = f(z) where grad_from_output(), else the
// pre-activation z itself.
fn activation_grad(s: vec4<f32>) -> vec4<f32> {
    let one = vec4<f32>(1.0);
    switch ACTIVATION {
        case ACT_RELU: { return select(vec4<f32>(0.0), one, s > vec4<f32>(0.0)); }
        case ACT_LEAKY_RELU: { return select(vec4<f32>(LEAKY_SLOPE), one, s > vec4<f32>(0.0)); }
        case ACT_ELU: { return select(s + 1.0, one, s > vec4<f32>(0.0)); }
        case ACT_TANH: { return 1.0 - s * s; }
        case ACT_SIGMOID: { return s * (1.0 - s); }
        case ACT_SILU: {
            let g = logistic(s);
            return g * (1.0 + s * (1.0 - g));
        }
        case ACT_GELU: { return normal_cdf(s) + s * normal_pdf(s); }
        default: { return one; }
    }
}

// f'(z) from the pre-activation z, for kernels that recompute it (batchnorm, from x).
fn activation_grad_at(z: vec4<f32>) -> vec4<f32> {
    return activation_grad(select(z, activate(z), grad_from_output()));
}
