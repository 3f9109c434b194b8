//! Per-image augmentation with Keras `ImageDataGenerator` semantics: shift, shear and zoom form
//! one affine map about the image centre, sampled bilinearly with `fill_mode = "nearest"`; then
//! the horizontal flip; then brightness and contrast; then the 1/255 rescale.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// `[augment]`: Keras `ImageDataGenerator` meanings; every default is "off".
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Mirror left-right with probability 1/2.
    pub horizontal_flip: bool,
    /// Shear angle drawn from [-s, s], in degrees (as Keras >= 2.1.3).
    pub shear_range: f32,
    /// x and y zoom drawn independently from [1 - z, 1 + z]; above 1 zooms out.
    pub zoom_range: f32,
    /// Horizontal shift drawn from [-f, f] times the width.
    pub width_shift_range: f32,
    /// Vertical shift drawn from [-f, f] times the height.
    pub height_shift_range: f32,
    /// Brightness offset drawn from [-b, b] (pixel values in [0, 1]).
    pub brightness_range: f32,
    /// Contrast factor drawn from [1 - c, 1 + c], about the image mean.
    pub contrast_range: f32,
}

/// The random draws for one image; `Transform::identity()` changes nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    /// Output (row, col) -> input (row, col), about the centre: [[a, b], [c, d]] and shift.
    pub matrix: [[f32; 2]; 2],
    pub shift: [f32; 2],
    pub flip: bool,
    pub brightness: f32,
    pub contrast: f32,
}

impl Transform {
    pub fn identity() -> Self {
        Self { matrix: [[1.0, 0.0], [0.0, 1.0]], shift: [0.0, 0.0], flip: false, brightness: 0.0, contrast: 1.0 }
    }

    /// Draws the parameters `cfg` allows, as Keras does: shear in degrees, x/y zoom independent.
    pub fn random(cfg: &AugmentConfig, h: u32, w: u32, rng: &mut impl Rng) -> Self {
        let mut range = |r: f32| if r > 0.0 { rng.random_range(-r..=r) } else { 0.0 };
        let tx = range(cfg.height_shift_range) * h as f32;
        let ty = range(cfg.width_shift_range) * w as f32;
        let shear = range(cfg.shear_range).to_radians();
        let (zx, zy) = (1.0 + range(cfg.zoom_range), 1.0 + range(cfg.zoom_range));
        let brightness = range(cfg.brightness_range);
        let contrast = 1.0 + range(cfg.contrast_range);
        let flip = cfg.horizontal_flip && rng.random_bool(0.5);
        // Keras: shear [[1, -sin s], [0, cos s]] times zoom [[zx, 0], [0, zy]].
        let matrix = [[zx, -shear.sin() * zy], [0.0, shear.cos() * zy]];
        Self { matrix, shift: [tx, ty], flip, brightness, contrast }
    }

    fn is_affine_identity(&self) -> bool {
        self.matrix == [[1.0, 0.0], [0.0, 1.0]] && self.shift == [0.0, 0.0]
    }
}

/// Applies `t` to one u8 HWC image and writes it rescaled to [0, 1] into `out`.
pub fn apply(t: &Transform, src: &[u8], shape: [u32; 3], out: &mut [f32]) {
    let [h, w, c] = shape.map(|d| d as usize);
    let (oy, ox) = (h as f32 / 2.0 - 0.5, w as f32 / 2.0 - 0.5);
    let px = |y: usize, x: usize, k: usize| src[(y * w + x) * c + k] as f32;
    for y in 0..h {
        for x in 0..w {
            let sx = if t.flip { w - 1 - x } else { x };
            let o = (y * w + x) * c;
            if t.is_affine_identity() {
                for k in 0..c {
                    out[o + k] = px(y, sx, k);
                }
                continue;
            }
            let (r, q) = (y as f32 - oy, sx as f32 - ox);
            // Fill mode "nearest": clamp the sampling point to the image.
            let iy = (t.matrix[0][0] * r + t.matrix[0][1] * q + t.shift[0] + oy).clamp(0.0, (h - 1) as f32);
            let ix = (t.matrix[1][0] * r + t.matrix[1][1] * q + t.shift[1] + ox).clamp(0.0, (w - 1) as f32);
            let (y0, x0) = (iy.floor() as usize, ix.floor() as usize);
            let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
            let (fy, fx) = (iy - y0 as f32, ix - x0 as f32);
            for k in 0..c {
                let top = px(y0, x0, k) * (1.0 - fx) + px(y0, x1, k) * fx;
                let bottom = px(y1, x0, k) * (1.0 - fx) + px(y1, x1, k) * fx;
                out[o + k] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
    let pixels = &mut out[..h * w * c];
    if t.brightness == 0.0 && t.contrast == 1.0 {
        pixels.iter_mut().for_each(|v| *v /= 255.0);
        return;
    }
    let mean = pixels.iter().sum::<f32>() / pixels.len() as f32 / 255.0;
    for v in pixels {
        *v = ((*v / 255.0 - mean) * t.contrast + mean + t.brightness).clamp(0.0, 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    fn image(h: u32, w: u32) -> Vec<u8> {
        (0..h * w * 3).map(|i| (i * 37 % 251) as u8).collect()
    }

    #[test]
    fn identity_only_rescales() {
        let src = image(5, 7);
        let mut out = vec![0.0; src.len()];
        apply(&Transform::identity(), &src, [5, 7, 3], &mut out);
        assert!(out.iter().zip(&src).all(|(&o, &s)| o == s as f32 / 255.0));
        // Neutral ranges draw the identity (no flip), whatever the seed.
        let t = Transform::random(&AugmentConfig::default(), 5, 7, &mut StdRng::seed_from_u64(3));
        assert_eq!(t, Transform::identity());
    }

    #[test]
    fn flip_is_an_exact_mirror() {
        let src = image(4, 6);
        let mut out = vec![0.0; src.len()];
        apply(&Transform { flip: true, ..Transform::identity() }, &src, [4, 6, 3], &mut out);
        for y in 0..4 {
            for x in 0..6 {
                for k in 0..3 {
                    assert_eq!(out[(y * 6 + x) * 3 + k], src[(y * 6 + 5 - x) * 3 + k] as f32 / 255.0);
                }
            }
        }
    }

    #[test]
    fn seeded_draws_repeat_and_stay_in_range() {
        let cfg = AugmentConfig { horizontal_flip: true, shear_range: 20.0, zoom_range: 0.2, width_shift_range: 0.1, height_shift_range: 0.1, brightness_range: 0.1, contrast_range: 0.2 };
        let draw = |seed| Transform::random(&cfg, 32, 32, &mut StdRng::seed_from_u64(seed));
        assert_eq!(draw(9), draw(9));
        assert_ne!(draw(9), draw(10));
        let src = image(32, 32);
        let mut out = vec![0.0; src.len()];
        for seed in 0..20 {
            apply(&draw(seed), &src, [32, 32, 3], &mut out);
            assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        let flips = (0..200).filter(|&s| draw(s).flip).count();
        assert!((70..130).contains(&flips), "{flips} flips of 200");
    }

    #[test]
    fn zoom_above_one_zooms_out() {
        // A centred bright square: zooming out (z > 1) makes it smaller in the output.
        let (h, w) = (21u32, 21u32);
        let src: Vec<u8> = (0..h * w).flat_map(|i| {
            let (y, x) = ((i / w) as i32 - 10, (i % w) as i32 - 10);
            [if y.abs() <= 4 && x.abs() <= 4 { 255u8 } else { 0 }; 3]
        }).collect();
        let bright = |z: f32| {
            let t = Transform { matrix: [[z, 0.0], [0.0, z]], ..Transform::identity() };
            let mut out = vec![0.0; src.len()];
            apply(&t, &src, [h, w, 3], &mut out);
            out.iter().filter(|&&v| v > 0.5).count()
        };
        assert!(bright(1.2) < bright(1.0) && bright(1.0) < bright(0.8));
    }
}
