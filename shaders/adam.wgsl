// Adam in Keras form (eps added to the uncorrected sqrt(v)), over one flat buffer holding every
// parameter tensor of the network, so one dispatch updates the whole model. The betas, eps and
// the bias-corrected step size come from the per-step uniform: a schedule changes them with a
// 48-byte write, never a rebuild. The buffers are bound as quads (vec4): one load moves four
// parameters, which is what makes this memory-bound kernel fast on CPU adapters. The zero
// padding of the last quad stays zero (zero gradient, zero moments, zero step).

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read_write> params: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> grads: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> m: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> v: array<vec4<f32>>;

// adam_update: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
// w -= lr_t * m / (sqrt(v) + eps), lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t).
// Dispatch: linear over arrayLength(params) invocations (quads).
@compute @workgroup_size(64)
fn adam_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= arrayLength(&params)) { return; }
    let g = grads[i];
    let mi = m[i] + (g - m[i]) * (1.0 - step.beta1);
    let vi = v[i] + (g * g - v[i]) * (1.0 - step.beta2);
    m[i] = mi;
    v[i] = vi;
    params[i] -= step.lr_t * mi / (sqrt(vi) + step.eps);
}
