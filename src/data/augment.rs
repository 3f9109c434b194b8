//! Per-image augmentation with Keras `ImageDataGenerator` semantics: shift, shear and zoom form
//! one affine map about the image centre, sampled bilinearly with `fill_mode = "nearest"`; then
//! the horizontal flip; then brightness and contrast; then the 1/255 rescale. Before all of them,
//! the CIFAR random crop: the image padded (zeros or a reflection) and cropped back to its size
//! at a random offset.

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
    /// Pads each side by this many pixels, then crops back to the input size at a uniformly
    /// drawn offset (the CIFAR recipe: 4 at 32x32). 0: off.
    pub crop_padding: u32,
    /// What the padding holds: "zero" (black) or "reflect" (mirrored about the edge pixel, which
    /// is not repeated: numpy's and PyTorch's "reflect").
    pub crop_padding_mode: PadMode,
}

/// `crop_padding_mode`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PadMode {
    #[default]
    Zero,
    Reflect,
}

impl PadMode {
    /// The source index of padded coordinate `i` (0-based in the unpadded image) along an axis
    /// of `n` pixels; None where it lies in zero padding.
    fn source(self, i: i64, n: usize) -> Option<usize> {
        let n = n as i64;
        let j = match self {
            PadMode::Zero => i,
            PadMode::Reflect if i < 0 => -i,
            PadMode::Reflect if i >= n => 2 * (n - 1) - i,
            PadMode::Reflect => i,
        };
        (0..n).contains(&j).then_some(j as usize)
    }
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
    /// The random crop's (row, col) offset into the image: in [-p, p], p the padding.
    pub crop: [i32; 2],
    pub pad: PadMode,
}

impl Transform {
    pub fn identity() -> Self {
        Self { matrix: [[1.0, 0.0], [0.0, 1.0]], shift: [0.0, 0.0], flip: false, brightness: 0.0, contrast: 1.0, crop: [0, 0], pad: PadMode::Zero }
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
        // Drawn last, and only when on, so that the other draws stay as they were without it.
        let p = cfg.crop_padding as i32;
        let crop = if p > 0 { [rng.random_range(-p..=p), rng.random_range(-p..=p)] } else { [0, 0] };
        // Keras: shear [[1, -sin s], [0, cos s]] times zoom [[zx, 0], [0, zy]].
        let matrix = [[zx, -shear.sin() * zy], [0.0, shear.cos() * zy]];
        Self { matrix, shift: [tx, ty], flip, brightness, contrast, crop, pad: cfg.crop_padding_mode }
    }

    fn is_affine_identity(&self) -> bool {
        self.matrix == [[1.0, 0.0], [0.0, 1.0]] && self.shift == [0.0, 0.0]
    }
}

/// Applies `t` to one u8 HWC image and writes it rescaled to [0, 1] into `out`.
pub fn apply(t: &Transform, src: &[u8], shape: [u32; 3], out: &mut [f32]) {
    let [h, w, c] = shape.map(|d| d as usize);
    let (oy, ox) = (h as f32 / 2.0 - 0.5, w as f32 / 2.0 - 0.5);
    // The cropped image: pixel (y, x) is the padded image's (y + crop, x + crop).
    let px = |y: usize, x: usize, k: usize| match (t.pad.source(y as i64 + t.crop[0] as i64, h), t.pad.source(x as i64 + t.crop[1] as i64, w)) {
        (Some(y), Some(x)) => src[(y * w + x) * c + k] as f32,
        _ => 0.0,
    };
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
        let cfg = AugmentConfig { horizontal_flip: true, shear_range: 20.0, zoom_range: 0.2, width_shift_range: 0.1, height_shift_range: 0.1, brightness_range: 0.1, contrast_range: 0.2, crop_padding: 2, ..Default::default() };
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

    /// The image padded as numpy's `np.pad(mode="constant" | "reflect")` would, then cropped
    /// at (dy, dx) of the padded image: what the CIFAR recipe (torchvision's RandomCrop with
    /// padding) computes.
    fn padded_crop(src: &[u8], [h, w, c]: [usize; 3], p: usize, reflect: bool, (dy, dx): (usize, usize)) -> Vec<f32> {
        let (ph, pw) = (h + 2 * p, w + 2 * p);
        let mut padded = vec![0u8; ph * pw * c];
        let mirror = |i: usize, n: usize| {
            let i = i as i64 - p as i64;
            let n = n as i64;
            (if i < 0 { -i } else if i >= n { 2 * (n - 1) - i } else { i }) as usize
        };
        for y in 0..ph {
            for x in 0..pw {
                let inside = (p..p + h).contains(&y) && (p..p + w).contains(&x);
                if !inside && !reflect {
                    continue;
                }
                let (sy, sx) = (mirror(y, h), mirror(x, w));
                padded[(y * pw + x) * c..][..c].copy_from_slice(&src[(sy * w + sx) * c..][..c]);
            }
        }
        let mut out = Vec::new();
        for y in dy..dy + h {
            out.extend(padded[(y * pw + dx) * c..(y * pw + dx + w) * c].iter().map(|&v| v as f32 / 255.0));
        }
        out
    }

    #[test]
    fn random_crop_is_pad_then_crop() {
        let (h, w, p) = (5usize, 7usize, 3usize);
        let src = image(h as u32, w as u32);
        for pad in [PadMode::Zero, PadMode::Reflect] {
            let cfg = AugmentConfig { crop_padding: p as u32, crop_padding_mode: pad, horizontal_flip: true, ..Default::default() };
            let mut seen = std::collections::HashSet::new();
            for seed in 0..300 {
                let t = Transform::random(&cfg, h as u32, w as u32, &mut StdRng::seed_from_u64(seed));
                let (dy, dx) = ((t.crop[0] + p as i32) as usize, (t.crop[1] + p as i32) as usize);
                assert!(dy <= 2 * p && dx <= 2 * p, "{:?}", t.crop);
                seen.insert((dy, dx));
                let mut out = vec![f32::NAN; src.len()];
                apply(&t, &src, [h as u32, w as u32, 3], &mut out);
                let mut want = padded_crop(&src, [h, w, 3], p, pad == PadMode::Reflect, (dy, dx));
                if t.flip {
                    want = want.chunks(w * 3).flat_map(|row| row.chunks(3).rev().flatten().copied().collect::<Vec<_>>()).collect();
                }
                assert_eq!(out, want, "{pad:?} crop at ({dy}, {dx}), flip {}", t.flip);
            }
            assert_eq!(seen.len(), (2 * p + 1) * (2 * p + 1), "{pad:?}: every offset of the padded image is drawn");
        }
        // Off, it draws nothing: the other draws stay as they were.
        let t = Transform::random(&AugmentConfig { horizontal_flip: true, ..Default::default() }, 5, 7, &mut StdRng::seed_from_u64(1));
        assert_eq!(t.crop, [0, 0]);
    }
}
