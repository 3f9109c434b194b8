//! `gpu-cnn dataset stats`: what a dataset holds (class counts, image sizes and formats, corrupt
//! files) and contact sheets of samples per class, plain and augmented.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use rand::{rngs::StdRng, SeedableRng};

use super::DatasetError;
use crate::data::augment::{apply, AugmentConfig, Transform};
use crate::data::folder::scan;

#[derive(Debug, Clone, Default)]
pub struct SplitStats {
    pub name: String,
    pub classes: Vec<(String, usize)>,
    /// (width, height) -> images
    pub sizes: BTreeMap<(u32, u32), usize>,
    pub formats: BTreeMap<String, usize>,
    pub corrupt: Vec<(PathBuf, String)>,
}

/// The splits of `dir`: its training_set/ and test_set/, or `dir` itself when it holds class
/// folders.
pub fn splits(dir: &Path) -> Vec<(String, PathBuf)> {
    let named: Vec<(String, PathBuf)> = ["training_set", "test_set"].iter().map(|s| (s.to_string(), dir.join(s))).filter(|(_, p)| p.is_dir()).collect();
    if named.is_empty() { vec![(dir.display().to_string(), dir.to_path_buf())] } else { named }
}

pub fn stats(dir: &Path) -> Result<Vec<SplitStats>, crate::data::DataError> {
    let mut out = Vec::new();
    for (name, path) in splits(dir) {
        let mut s = SplitStats { name, ..Default::default() };
        for (class, files) in scan(&path)? {
            s.classes.push((class, files.len()));
            for f in files {
                let format = image::ImageFormat::from_path(&f).map(|f| format!("{f:?}")).unwrap_or_else(|_| "unknown".into());
                *s.formats.entry(format).or_default() += 1;
                match image::open(&f) {
                    Ok(img) => *s.sizes.entry((img.width(), img.height())).or_default() += 1,
                    Err(e) => s.corrupt.push((f, e.to_string())),
                }
            }
        }
        out.push(s);
    }
    Ok(out)
}

pub fn report(all: &[SplitStats]) -> String {
    let mut out = String::new();
    for s in all {
        let total: usize = s.classes.iter().map(|c| c.1).sum();
        let _ = writeln!(out, "{}: {total} images in {} classes", s.name, s.classes.len());
        for (c, n) in &s.classes {
            let _ = writeln!(out, "  {c:<16} {n:>7}");
        }
        let sizes: Vec<String> = s.sizes.iter().map(|((w, h), n)| format!("{w}x{h} ({n})")).collect();
        let formats: Vec<String> = s.formats.iter().map(|(f, n)| format!("{f} ({n})")).collect();
        let _ = writeln!(out, "  sizes: {}\n  formats: {}", sizes.join(", "), formats.join(", "));
        let _ = writeln!(out, "  corrupt: {}", s.corrupt.len());
        for (f, e) in &s.corrupt {
            let _ = writeln!(out, "    {}: {e}", f.display());
        }
    }
    out
}

/// Tile size and samples per class of a contact sheet.
pub const TILE: u32 = 64;
pub const PER_CLASS: usize = 8;
const LABEL_WIDTH: u32 = 150;
const GAP: u32 = 4;

/// The pixel size of a sheet for `classes` rows.
pub fn sheet_size(classes: usize) -> (u32, u32) {
    (LABEL_WIDTH + PER_CLASS as u32 * (TILE + GAP) + GAP, classes as u32 * (TILE + GAP) + GAP)
}

/// Writes a PNG with the first samples of each class of `dir` (a class folder), augmented with
/// `augment` (seeded per image) when given. Returns the sheet's size.
pub fn contact_sheet(dir: &Path, out: &Path, augment: Option<&AugmentConfig>) -> Result<(u32, u32), DatasetError> {
    let classes = scan(dir).map_err(|e| DatasetError::Io(dir.to_path_buf(), std::io::Error::other(e.to_string())))?;
    let (w, h) = sheet_size(classes.len());
    let mut canvas = vec![255u8; (w * h * 3) as usize];
    for (row, (_, files)) in classes.iter().enumerate() {
        for (col, f) in files.iter().take(PER_CLASS).enumerate() {
            let Ok(tile) = crate::data::folder::decode(f, [TILE, TILE, 3]) else { continue };
            let tile = match augment {
                Some(cfg) => {
                    let t = Transform::random(cfg, TILE, TILE, &mut StdRng::seed_from_u64((row * 1000 + col) as u64));
                    let mut px = vec![0f32; tile.len()];
                    apply(&t, &tile, [TILE, TILE, 3], &mut px);
                    px.iter().map(|v| (v * 255.0).round() as u8).collect()
                }
                None => tile,
            };
            let (x0, y0) = (LABEL_WIDTH + GAP + col as u32 * (TILE + GAP), GAP + row as u32 * (TILE + GAP));
            for y in 0..TILE {
                let dst = (((y0 + y) * w + x0) * 3) as usize;
                let src = (y * TILE * 3) as usize;
                canvas[dst..dst + (TILE * 3) as usize].copy_from_slice(&tile[src..src + (TILE * 3) as usize]);
            }
        }
    }
    // Class names, drawn onto the same pixels.
    {
        let root = BitMapBackend::with_buffer(&mut canvas, (w, h)).into_drawing_area();
        for (row, (class, _)) in classes.iter().enumerate() {
            let y = (GAP + row as u32 * (TILE + GAP) + TILE / 2 - 8) as i32;
            // No usable font is not worth failing for: the rows keep their order.
            let _ = root.draw_text(class, &("sans-serif", 18).into_font().color(&BLACK), (8, y));
        }
        let _ = root.present();
    }
    let png = crate::files::png_bytes(w, h, canvas).map_err(|e| DatasetError::Io(out.to_path_buf(), std::io::Error::other(e)))?;
    crate::files::write_atomic(out, &png).map_err(|e| DatasetError::Io(out.to_path_buf(), e))?;
    Ok((w, h))
}
