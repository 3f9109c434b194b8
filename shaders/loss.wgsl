// Losses computed from logits, fused with their output activation so they stay finite for any
// |z|. Each writes the gradient of the batch-mean loss with respect to the logits and adds the
// batch's loss sum, correct predictions and row count to a metrics accumulator that lives on
// the GPU for a whole epoch (read once at its end). Only the first step.rows rows count; the
// gradient of padded rows is 0. With label smoothing s (Keras `label_smoothing`) the targets
// are y (1 - s) + s / 2 (binary) or onehot (1 - s) + s / classes (categorical); with s = 0 they
// are the labels exactly.

const LOSS_WG: u32 = 256u;

struct Loss {
    capacity: u32, // rows the buffers hold
    classes: u32,  // logits per row (1 for the sigmoid head)
    smoothing: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Loss;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> logits: array<f32>;     // [capacity, classes]
@group(0) @binding(3) var<storage, read> labels: array<u32>;     // [capacity], class index
@group(0) @binding(4) var<storage, read_write> grad: array<f32>; // [capacity, classes]
@group(0) @binding(5) var<storage, read_write> metrics: array<f32>; // [loss_sum, correct, count]

var<workgroup> loss_part: array<f32, LOSS_WG>;
var<workgroup> hit_part: array<f32, LOSS_WG>;

// Tree-sums the per-invocation loss and hits in a fixed order and adds them to the metrics.
fn accumulate(lid: u32, loss: f32, hits: f32) {
    loss_part[lid] = loss;
    hit_part[lid] = hits;
    workgroupBarrier();
    for (var half = LOSS_WG / 2u; half > 0u; half /= 2u) {
        if (lid < half) {
            loss_part[lid] += loss_part[lid + half];
            hit_part[lid] += hit_part[lid + half];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        metrics[0] += loss_part[0];
        metrics[1] += hit_part[0];
        metrics[2] += f32(step.rows);
    }
}

// sigmoid_bce_loss: per row, with t = y (1 - s) + s / 2, loss = max(z, 0) - z * t +
// log(1 + exp(-|z|)), grad = (sigmoid(z) - t) / rows, correct when (z > 0) == (y == 1)
// (Keras: p > 0.5).
// Dispatch: exactly 1 workgroup of 256; invocations stride over the rows.
@compute @workgroup_size(256)
fn sigmoid_bce_loss(@builtin(local_invocation_index) lid: u32) {
    var loss = 0.0;
    var hits = 0.0;
    let inv = 1.0 / f32(max(step.rows, 1u));
    for (var r = lid; r < p.capacity; r += LOSS_WG) {
        if (r >= step.rows) { grad[r] = 0.0; continue; }
        let z = logits[r];
        let y = f32(labels[r]) * (1.0 - p.smoothing) + 0.5 * p.smoothing;
        loss += max(z, 0.0) - z * y + log(1.0 + exp(-abs(z)));
        grad[r] = (sigmoid(z) - y) * inv;
        hits += select(0.0, 1.0, (z > 0.0) == (labels[r] == 1u));
    }
    accumulate(lid, loss, hits);
}

// softmax_ce_loss: per row, with targets t = onehot (1 - s) + s / classes,
// loss = logsumexp(z) - sum_j t_j z_j = logsumexp(z) - (1 - s) z[label] - s / classes sum_j z_j,
// grad = (softmax(z) - t) / rows, correct when the first arg-max is the label.
// Dispatch: exactly 1 workgroup of 256; invocations stride over the rows.
@compute @workgroup_size(256)
fn softmax_ce_loss(@builtin(local_invocation_index) lid: u32) {
    var loss = 0.0;
    var hits = 0.0;
    let inv = 1.0 / f32(max(step.rows, 1u));
    for (var r = lid; r < p.capacity; r += LOSS_WG) {
        let base = r * p.classes;
        if (r >= step.rows) {
            for (var j = 0u; j < p.classes; j++) { grad[base + j] = 0.0; }
            continue;
        }
        var m = logits[base];
        var best = 0u;
        for (var j = 1u; j < p.classes; j++) {
            if (logits[base + j] > m) { m = logits[base + j]; best = j; }
        }
        var sum = 0.0;
        var zsum = 0.0;
        for (var j = 0u; j < p.classes; j++) {
            sum += exp(logits[base + j] - m);
            zsum += logits[base + j];
        }
        let label = labels[r];
        let spread = p.smoothing / f32(p.classes);
        // The smoothed terms only where smoothing is on: s = 0 is the plain loss, bit for bit.
        var picked = logits[base + label];
        if (p.smoothing != 0.0) { picked = (1.0 - p.smoothing) * picked + spread * zsum; }
        loss += log(sum) + m - picked;
        for (var j = 0u; j < p.classes; j++) {
            let t = select(0.0, 1.0 - p.smoothing, j == label) + spread;
            grad[base + j] = (exp(logits[base + j] - m) / sum - t) * inv;
        }
        hits += select(0.0, 1.0, best == label);
    }
    accumulate(lid, loss, hits);
}
