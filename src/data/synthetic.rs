//! The built-in two-class set for the offline quickstart: "crosses" (label 0) and "rings"
//! (label 1), each drawn with a random colour, size, thickness, position and rotation on a random
//! two-colour gradient with pixel noise. No single pixel separates the classes: both shapes cover
//! the centre region about equally often and share the colour distribution.

use rand::{rngs::StdRng, Rng, SeedableRng};

use super::Dataset;

pub const CLASSES: [&str; 2] = ["crosses", "rings"];

fn colour(rng: &mut StdRng) -> [f32; 3] {
    [rng.random_range(0.0..1.0), rng.random_range(0.0..1.0), rng.random_range(0.0..1.0)]
}

/// Coverage in [0, 1] of the shape at (x, y), relative to its centre, after rotation.
fn shape_at(label: u32, dx: f32, dy: f32, radius: f32, thickness: f32) -> f32 {
    let inside = if label == 0 {
        (dx.abs() < thickness && dy.abs() < radius) || (dy.abs() < thickness && dx.abs() < radius)
    } else {
        ((dx * dx + dy * dy).sqrt() - radius * 0.8).abs() < thickness
    };
    f32::from(u8::from(inside))
}

/// `n` images of `shape` ([h, w, c], c = 1 or 3), classes alternating, reproducible from `seed`.
pub fn generate(n: usize, shape: [u32; 3], seed: u64) -> Dataset {
    let [h, w, c] = shape;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pixels = Vec::with_capacity(n * (h * w * c) as usize);
    let mut labels = Vec::with_capacity(n);
    let size = h.min(w) as f32;
    for i in 0..n {
        let label = (i % 2) as u32;
        let (bg0, bg1) = (colour(&mut rng), colour(&mut rng));
        // The shape's colour stays at least 0.25 away from the background's mean in each channel.
        let fg = [0, 1, 2].map(|k| ((bg0[k] + bg1[k]) / 2.0 + rng.random_range(0.25..0.75)).fract());
        let radius = rng.random_range(0.22..0.42) * size;
        let thickness = rng.random_range(0.06..0.12) * size;
        let cx = rng.random_range(radius..w as f32 - radius);
        let cy = rng.random_range(radius..h as f32 - radius);
        let (sin, cos) = rng.random_range(0.0f32..std::f32::consts::FRAC_PI_2).sin_cos();
        let noise = rng.random_range(0.02..0.12);
        for y in 0..h {
            for x in 0..w {
                let (px, py) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                let cover = shape_at(label, cos * px + sin * py, -sin * px + cos * py, radius, thickness);
                let t = (x + y) as f32 / (w + h) as f32;
                let rgb = [0, 1, 2].map(|k| bg0[k] * (1.0 - t) + bg1[k] * t);
                let mut v = [0f32; 3];
                for k in 0..3 {
                    v[k] = (rgb[k] * (1.0 - cover) + fg[k] * cover + rng.random_range(-noise..noise)).clamp(0.0, 1.0);
                }
                if c == 1 {
                    pixels.push(((v[0] + v[1] + v[2]) / 3.0 * 255.0).round() as u8);
                } else {
                    pixels.extend(v.iter().map(|&v| (v * 255.0).round() as u8));
                }
            }
        }
        labels.push(label);
    }
    Dataset { classes: CLASSES.iter().map(|s| s.to_string()).collect(), shape, pixels, labels, files: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_reproducible_and_not_constant() {
        let a = generate(20, [16, 16, 3], 1);
        assert_eq!(a.counts(), vec![10, 10]);
        assert_eq!(a.pixels, generate(20, [16, 16, 3], 1).pixels);
        assert_ne!(a.pixels, generate(20, [16, 16, 3], 2).pixels);
        assert_eq!(a.pixels.len(), 20 * 16 * 16 * 3);
        // No pixel position alone separates the classes: its class means are close.
        let mean = |label: u32, p: usize| {
            let v: Vec<f32> = (0..a.len()).filter(|&i| a.labels[i] == label).map(|i| a.image(i)[p] as f32).collect();
            v.iter().sum::<f32>() / v.len() as f32
        };
        let centre = (8 * 16 + 8) * 3;
        assert!((mean(0, centre) - mean(1, centre)).abs() < 100.0);
    }
}
