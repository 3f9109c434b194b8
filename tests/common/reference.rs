//! CPU reference implementations in f64, for tests only. Same layouts as the kernels:
//! NHWC activations, [kh, kw, in_c, out_c] kernels.

use gpu_cnn::gpu::kernels::matmul::GemmShape;
use gpu_cnn::layers::Activation;
use gpu_cnn::model::{ConvShape, PoolShape};

/// A hidden activation f(z), with the true erf (libm) for gelu.
pub fn activate(a: Activation, z: f64) -> f64 {
    match a {
        Activation::Linear => z,
        Activation::Relu => z.max(0.0),
        Activation::LeakyRelu => if z > 0.0 { z } else { 0.2 * z },
        Activation::Elu => if z > 0.0 { z } else { z.exp_m1() },
        Activation::Tanh => z.tanh(),
        Activation::Sigmoid => sigmoid(z),
        Activation::Silu => z * sigmoid(z),
        Activation::Gelu => z * normal_cdf(z),
        Activation::Softmax => unreachable!("not a hidden activation"),
    }
}

/// f'(z) of a hidden activation (0 at a ReLU's kink, as the kernels take it).
pub fn activation_grad(a: Activation, z: f64) -> f64 {
    match a {
        Activation::Linear => 1.0,
        Activation::Relu => if z > 0.0 { 1.0 } else { 0.0 },
        Activation::LeakyRelu => if z > 0.0 { 1.0 } else { 0.2 },
        Activation::Elu => if z > 0.0 { 1.0 } else { z.exp() },
        Activation::Tanh => 1.0 - z.tanh().powi(2),
        Activation::Sigmoid => sigmoid(z) * (1.0 - sigmoid(z)),
        Activation::Silu => sigmoid(z) * (1.0 + z * (1.0 - sigmoid(z))),
        Activation::Gelu => normal_cdf(z) + z * (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt(),
        Activation::Softmax => unreachable!("not a hidden activation"),
    }
}

pub fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

fn at(s: &ConvShape, n: usize, oh: usize, ow: usize, kh: usize, kw: usize) -> Option<(usize, usize)> {
    let ih = (oh * s.stride as usize + kh) as isize - s.pad_top as isize;
    let iw = (ow * s.stride as usize + kw) as isize - s.pad_left as isize;
    if ih < 0 || iw < 0 || ih >= s.in_h as isize || iw >= s.in_w as isize {
        return None;
    }
    let xb = ((n * s.in_h as usize + ih as usize) * s.in_w as usize + iw as usize) * s.in_c as usize;
    Some((xb, (kh * s.k_w as usize + kw) * s.in_c as usize * s.out_c as usize))
}

/// Calls f(x base index, w base index, y base index) for every valid (output pixel, tap).
fn for_each_tap(s: &ConvShape, mut f: impl FnMut(usize, usize, usize)) {
    for n in 0..s.batch as usize {
        for oh in 0..s.out_h as usize {
            for ow in 0..s.out_w as usize {
                let yb = ((n * s.out_h as usize + oh) * s.out_w as usize + ow) * s.out_c as usize;
                for kh in 0..s.k_h as usize {
                    for kw in 0..s.k_w as usize {
                        if let Some((xb, wb)) = at(s, n, oh, ow, kh, kw) {
                            f(xb, wb, yb);
                        }
                    }
                }
            }
        }
    }
}

pub fn conv2d_forward(s: &ConvShape, act: Activation, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f64> {
    let (ci, co) = (s.in_c as usize, s.out_c as usize);
    let mut y = vec![0f64; s.output_len() as usize];
    for (i, v) in y.iter_mut().enumerate() {
        *v = b[i % co] as f64;
    }
    for_each_tap(s, |xb, wb, yb| {
        for c in 0..ci {
            let xv = x[xb + c] as f64;
            for o in 0..co {
                y[yb + o] += xv * w[wb + c * co + o] as f64;
            }
        }
    });
    y.iter_mut().for_each(|v| *v = activate(act, *v));
    y
}

pub fn conv2d_backward_input(s: &ConvShape, dy: &[f32], w: &[f32]) -> Vec<f64> {
    let (ci, co) = (s.in_c as usize, s.out_c as usize);
    let mut dx = vec![0f64; s.input_len() as usize];
    for_each_tap(s, |xb, wb, yb| {
        for c in 0..ci {
            dx[xb + c] += (0..co).map(|o| dy[yb + o] as f64 * w[wb + c * co + o] as f64).sum::<f64>();
        }
    });
    dx
}

pub fn conv2d_backward_kernel(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f64> {
    let (ci, co) = (s.in_c as usize, s.out_c as usize);
    let mut dw = vec![0f64; s.kernel_len() as usize];
    for_each_tap(s, |xb, wb, yb| {
        for c in 0..ci {
            let xv = x[xb + c] as f64;
            for o in 0..co {
                dw[wb + c * co + o] += xv * dy[yb + o] as f64;
            }
        }
    });
    dw
}

/// Window max (first maximum wins) and its flat input index.
pub fn maxpool2d_forward(s: &PoolShape, x: &[f32]) -> (Vec<f64>, Vec<u32>) {
    let (oh_n, ow_n, c_n) = (s.out_h() as usize, s.out_w() as usize, s.c as usize);
    let mut y = Vec::new();
    let mut arg = Vec::new();
    for n in 0..s.batch as usize {
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                for c in 0..c_n {
                    let mut best = (f32::NEG_INFINITY, usize::MAX);
                    for dh in 0..s.pool[0] as usize {
                        for dw in 0..s.pool[1] as usize {
                            let ih = oh * s.stride[0] as usize + dh;
                            let iw = ow * s.stride[1] as usize + dw;
                            let i = ((n * s.in_h as usize + ih) * s.in_w as usize + iw) * c_n + c;
                            if best.1 == usize::MAX || x[i] > best.0 {
                                best = (x[i], i);
                            }
                        }
                    }
                    y.push(best.0 as f64);
                    arg.push(best.1 as u32);
                }
            }
        }
    }
    (y, arg)
}

pub fn maxpool2d_backward(s: &PoolShape, arg: &[u32], dy: &[f32]) -> Vec<f64> {
    let mut dx = vec![0f64; s.input_len() as usize];
    for (o, &i) in arg.iter().enumerate() {
        dx[i as usize] += dy[o] as f64;
    }
    dx
}

pub fn gemm(g: &GemmShape, a: &[f32], b: &[f32], bias: Option<&[f32]>, act: Activation) -> Vec<f64> {
    let (m, n, k) = (g.m as usize, g.n as usize, g.k as usize);
    let mut c = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = bias.map_or(0.0, |b| b[j] as f64);
            for kk in 0..k {
                acc += a[i * g.a_row as usize + kk * g.a_col as usize] as f64 * b[kk * g.b_row as usize + j * g.b_col as usize] as f64;
            }
            c[i * n + j] = activate(act, acc);
        }
    }
    c
}

pub fn column_sum(rows: usize, cols: usize, src: &[f32]) -> Vec<f64> {
    (0..cols).map(|c| (0..rows).map(|r| src[r * cols + c] as f64).sum()).collect()
}

pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

pub fn softmax(row: &[f32]) -> Vec<f64> {
    let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
    let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// (loss sum, correct, gradient of the mean loss) for the first `rows` rows, with targets
/// smoothed by `s` (Keras: y (1 - s) + s / 2).
pub fn sigmoid_bce(logits: &[f32], labels: &[u32], rows: usize, s: f64) -> (f64, f64, Vec<f64>) {
    let mut loss = 0.0;
    let mut hits = 0.0;
    let mut grad = vec![0.0; logits.len()];
    for r in 0..rows {
        let (z, y) = (logits[r] as f64, labels[r] as f64 * (1.0 - s) + 0.5 * s);
        loss += z.max(0.0) - z * y + (-z.abs()).exp().ln_1p();
        grad[r] = (sigmoid(z) - y) / rows as f64;
        hits += f64::from((z > 0.0) == (labels[r] == 1));
    }
    (loss, hits, grad)
}

/// As [`sigmoid_bce`], with targets onehot (1 - s) + s / classes.
pub fn softmax_ce(logits: &[f32], labels: &[u32], rows: usize, classes: usize, s: f64) -> (f64, f64, Vec<f64>) {
    let mut loss = 0.0;
    let mut hits = 0.0;
    let mut grad = vec![0.0; logits.len()];
    for r in 0..rows {
        let row = &logits[r * classes..(r + 1) * classes];
        let p = softmax(row);
        let label = labels[r] as usize;
        for j in 0..classes {
            let t = f64::from(j == label) * (1.0 - s) + s / classes as f64;
            loss -= t * p[j].ln();
            grad[r * classes + j] = (p[j] - t) / rows as f64;
        }
        let best = (0..classes).fold(0, |b, j| if row[j] > row[b] { j } else { b });
        hits += f64::from(best == label);
    }
    (loss, hits, grad)
}

/// One Keras 3 Adam step at 1-based step t, after the decoupled weight decay `wd[i]` of each
/// element (AdamW; 0 for Adam): w -= lr wd w; returns (w, m, v).
pub fn adam(w: &[f32], g: &[f64], m: &[f32], v: &[f32], lr: f64, wd: &[f64], t: u32) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-7f64);
    let lr_t = lr * (1.0 - b2.powi(t as i32)).sqrt() / (1.0 - b1.powi(t as i32));
    let mut out = (vec![], vec![], vec![]);
    for i in 0..w.len() {
        let gi = g[i];
        let mi = m[i] as f64 + (gi - m[i] as f64) * (1.0 - b1);
        let vi = v[i] as f64 + (gi * gi - v[i] as f64) * (1.0 - b2);
        let wi = w[i] as f64 - lr * wd[i] * w[i] as f64;
        out.0.push(wi - lr_t * mi / (vi.sqrt() + eps));
        out.1.push(mi);
        out.2.push(vi);
    }
    out
}

/// One Keras 3 SGD step after the decoupled weight decay `wd[i]`: m = momentum m - lr g, then
/// w += momentum m - lr g (Nesterov) or w += m; returns (w, m).
pub fn sgd(w: &[f32], g: &[f64], m: &[f32], lr: f64, momentum: f64, nesterov: bool, wd: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut out = (vec![], vec![]);
    for i in 0..w.len() {
        let wi = w[i] as f64 - lr * wd[i] * w[i] as f64;
        let mi = momentum * m[i] as f64 - lr * g[i];
        out.0.push(if nesterov { wi + momentum * mi - lr * g[i] } else { wi + mi });
        out.1.push(mi);
    }
    out
}

/// Keras' clip_by_norm factor for a gradient whose elements square-sum to `sum_squares`:
/// norm / max(||g||, norm).
pub fn clip_scale(sum_squares: f64, norm: f64) -> f64 {
    norm / sum_squares.sqrt().max(norm)
}

/// Window means over the valid (floor) grid.
pub fn avgpool2d_forward(s: &PoolShape, x: &[f32]) -> Vec<f64> {
    let (oh, ow, c) = (s.out_h() as usize, s.out_w() as usize, s.c as usize);
    let (ph, pw) = (s.pool[0] as usize, s.pool[1] as usize);
    let mut y = vec![0.0; s.output_len() as usize];
    for n in 0..s.batch as usize {
        for (i, j, ch) in (0..oh).flat_map(|i| (0..ow).flat_map(move |j| (0..c).map(move |ch| (i, j, ch)))) {
            let mut acc = 0.0;
            for dh in 0..ph {
                for dw in 0..pw {
                    let (h, w) = (i * s.stride[0] as usize + dh, j * s.stride[1] as usize + dw);
                    acc += x[((n * s.in_h as usize + h) * s.in_w as usize + w) * c + ch] as f64;
                }
            }
            y[((n * oh + i) * ow + j) * c + ch] = acc / (ph * pw) as f64;
        }
    }
    y
}

/// Each window's gradient spread evenly over its inputs (a scatter, so overlaps add).
pub fn avgpool2d_backward(s: &PoolShape, dy: &[f32]) -> Vec<f64> {
    let (oh, ow, c) = (s.out_h() as usize, s.out_w() as usize, s.c as usize);
    let (ph, pw) = (s.pool[0] as usize, s.pool[1] as usize);
    let mut dx = vec![0.0; s.input_len() as usize];
    for n in 0..s.batch as usize {
        for (i, j, ch) in (0..oh).flat_map(|i| (0..ow).flat_map(move |j| (0..c).map(move |ch| (i, j, ch)))) {
            let g = dy[((n * oh + i) * ow + j) * c + ch] as f64 / (ph * pw) as f64;
            for dh in 0..ph {
                for dw in 0..pw {
                    let (h, w) = (i * s.stride[0] as usize + dh, j * s.stride[1] as usize + dw);
                    dx[((n * s.in_h as usize + h) * s.in_w as usize + w) * c + ch] += g;
                }
            }
        }
    }
    dx
}

/// Per-channel mean and biased variance of x [rows, c] over its first `rows` rows (two passes).
pub fn batch_stats(x: &[f32], rows: usize, c: usize) -> (Vec<f64>, Vec<f64>) {
    let mean: Vec<f64> = (0..c).map(|ch| (0..rows).map(|r| x[r * c + ch] as f64).sum::<f64>() / rows as f64).collect();
    let var = (0..c).map(|ch| (0..rows).map(|r| (x[r * c + ch] as f64 - mean[ch]).powi(2)).sum::<f64>() / rows as f64).collect();
    (mean, var)
}

/// act(gamma * (x - mean) / sqrt(var + eps) + beta) over every row of x [.., c].
pub fn batchnorm_forward(x: &[f32], c: usize, (mean, var): (&[f64], &[f64]), gamma: &[f32], beta: &[f32], eps: f64, act: Activation) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = i % c;
            let y = gamma[ch] as f64 * (v as f64 - mean[ch]) / (var[ch] + eps).sqrt() + beta[ch] as f64;
            activate(act, y)
        })
        .collect()
}

/// Training-mode backward over the first `rows` rows (the rest get 0): (dx, dgamma, dbeta).
pub fn batchnorm_backward(x: &[f32], dy: &[f32], rows: usize, c: usize, gamma: &[f32], eps: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mean, var) = batch_stats(x, rows, c);
    let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let x_hat = |i: usize| (x[i] as f64 - mean[i % c]) * inv[i % c];
    let mut dgamma = vec![0.0; c];
    let mut dbeta = vec![0.0; c];
    for i in 0..rows * c {
        dgamma[i % c] += dy[i] as f64 * x_hat(i);
        dbeta[i % c] += dy[i] as f64;
    }
    let n = rows as f64;
    let dx = (0..x.len())
        .map(|i| {
            let ch = i % c;
            if i >= rows * c { 0.0 } else { gamma[ch] as f64 * inv[ch] * (dy[i] as f64 - dbeta[ch] / n - x_hat(i) * dgamma[ch] / n) }
        })
        .collect();
    (dx, dgamma, dbeta)
}

/// Calls f(x index, w index, y index) for every valid (output element, tap) of a depthwise
/// conv: out_c = in_c * m, output channel o reads input channel o / m, kernel [taps, out_c].
fn for_each_depthwise_tap(s: &ConvShape, mut f: impl FnMut(usize, usize, usize)) {
    let (m, co) = ((s.out_c / s.in_c) as usize, s.out_c as usize);
    for n in 0..s.batch as usize {
        for oh in 0..s.out_h as usize {
            for ow in 0..s.out_w as usize {
                let yb = ((n * s.out_h as usize + oh) * s.out_w as usize + ow) * co;
                for kh in 0..s.k_h as usize {
                    for kw in 0..s.k_w as usize {
                        if let Some((xb, _)) = at(s, n, oh, ow, kh, kw) {
                            let wb = (kh * s.k_w as usize + kw) * co;
                            (0..co).for_each(|o| f(xb + o / m, wb + o, yb + o));
                        }
                    }
                }
            }
        }
    }
}

/// The depthwise conv before its activation.
pub fn depthwise_conv2d_forward(s: &ConvShape, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f64> {
    let mut y: Vec<f64> = (0..s.output_len() as usize).map(|i| b[i % s.out_c as usize] as f64).collect();
    for_each_depthwise_tap(s, |xi, wi, yi| y[yi] += x[xi] as f64 * w[wi] as f64);
    y
}

pub fn depthwise_conv2d_backward_input(s: &ConvShape, dy: &[f32], w: &[f32]) -> Vec<f64> {
    let mut dx = vec![0f64; s.input_len() as usize];
    for_each_depthwise_tap(s, |xi, wi, yi| dx[xi] += dy[yi] as f64 * w[wi] as f64);
    dx
}

pub fn depthwise_conv2d_backward_kernel(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f64> {
    let mut dw = vec![0f64; s.depthwise_kernel_len() as usize];
    for_each_depthwise_tap(s, |xi, wi, yi| dw[wi] += x[xi] as f64 * dy[yi] as f64);
    dw
}
