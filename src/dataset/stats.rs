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

pub fn stats(dir: &Path) -> Result<Vec<SplitStats>, crate::data::DataError> {
    let mut out = Vec::new();
    for (name, path) in crate::data::layout::class_folders(dir)? {
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
        let formats: Vec<String> = s.formats.iter().map(|(f, n)| format!("{f} ({n})")).collect();
        let _ = writeln!(out, "  sizes: {}\n  formats: {}", sizes_line(&s.sizes), formats.join(", "));
        let _ = writeln!(out, "  corrupt: {}", s.corrupt.len());
        for (f, e) in &s.corrupt {
            let _ = writeln!(out, "    {}: {e}", f.display());
        }
    }
    out
}

/// Image sizes a report lists by name; the rest are counted.
const SIZES_SHOWN: usize = 5;

/// The most common image sizes with their counts (those shared by several images, when there
/// are many sizes), then how many others and their range.
fn sizes_line(sizes: &BTreeMap<(u32, u32), usize>) -> String {
    let mut common: Vec<(&(u32, u32), &usize)> = sizes.iter().collect();
    common.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let shown = if common.len() <= SIZES_SHOWN { common.len() } else { common.iter().take(SIZES_SHOWN).take_while(|(_, &n)| n > 1).count() };
    let mut parts: Vec<String> = common[..shown].iter().map(|((w, h), n)| format!("{w}x{h} ({n})")).collect();
    let rest = &common[shown..];
    if !rest.is_empty() {
        let area = |((w, h), _): &&(&(u32, u32), &usize)| *w as u64 * *h as u64;
        let (small, large) = (rest.iter().min_by_key(area).unwrap().0, rest.iter().max_by_key(area).unwrap().0);
        let images: usize = rest.iter().map(|(_, n)| **n).sum();
        let (lead, what) = if shown > 0 { ("and ", "other sizes") } else { ("", "sizes") };
        parts.push(format!("{lead}{} {what} ({images} images, {}x{} to {}x{})", rest.len(), small.0, small.1, large.0, large.1));
    }
    parts.join(", ")
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

/// One row of a contact sheet: its label (one or two lines) and up to [`PER_CLASS`] images,
/// each with an optional caption drawn over its lower edge.
pub struct Row {
    pub label: String,
    pub tiles: Vec<(PathBuf, Option<String>)>,
}

/// Writes a PNG with the first samples of each class of `dir` (a class folder), augmented with
/// `augment` (seeded per image) when given. Returns the sheet's size.
pub fn contact_sheet(dir: &Path, out: &Path, augment: Option<&AugmentConfig>) -> Result<(u32, u32), DatasetError> {
    let classes = scan(dir).map_err(|e| DatasetError::Io(dir.to_path_buf(), std::io::Error::other(e.to_string())))?;
    let rows: Vec<Row> = classes.into_iter().map(|(label, files)| Row { label, tiles: files.into_iter().take(PER_CLASS).map(|f| (f, None)).collect() }).collect();
    draw_sheet(&rows, out, augment)
}

/// Writes `rows` as a PNG contact sheet (images unreadable as such are left blank), augmented
/// with `augment` (seeded per image) when given. Returns the sheet's size.
pub fn draw_sheet(rows: &[Row], out: &Path, augment: Option<&AugmentConfig>) -> Result<(u32, u32), DatasetError> {
    let (w, h) = sheet_size(rows.len());
    let mut canvas = vec![255u8; (w * h * 3) as usize];
    for (row, r) in rows.iter().enumerate() {
        for (col, (f, _)) in r.tiles.iter().take(PER_CLASS).enumerate() {
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
            let (x0, y0) = tile_origin(row, col);
            for y in 0..TILE {
                let dst = (((y0 + y) * w + x0) * 3) as usize;
                let src = (y * TILE * 3) as usize;
                canvas[dst..dst + (TILE * 3) as usize].copy_from_slice(&tile[src..src + (TILE * 3) as usize]);
            }
        }
    }
    // Labels and captions, drawn onto the same pixels. No usable font is not worth failing
    // for: the rows keep their order.
    {
        let root = BitMapBackend::with_buffer(&mut canvas, (w, h)).into_drawing_area();
        for (row, r) in rows.iter().enumerate() {
            let lines: Vec<&str> = r.label.lines().collect();
            let top = GAP + row as u32 * (TILE + GAP) + TILE / 2 - 10 * lines.len() as u32;
            for (i, line) in lines.iter().enumerate() {
                let _ = root.draw_text(line, &("sans-serif", 18).into_font().color(&BLACK), (8, (top + 20 * i as u32) as i32));
            }
            for (col, caption) in r.tiles.iter().take(PER_CLASS).enumerate().filter_map(|(c, (_, cap))| cap.as_ref().map(|cap| (c, cap))) {
                let (x0, y0) = tile_origin(row, col);
                let _ = root.draw(&Rectangle::new([(x0 as i32, (y0 + TILE - 15) as i32), ((x0 + TILE) as i32, (y0 + TILE) as i32)], WHITE.mix(0.8).filled()));
                let _ = root.draw_text(caption, &("sans-serif", 13).into_font().color(&BLACK), (x0 as i32 + 2, (y0 + TILE - 14) as i32));
            }
        }
        let _ = root.present();
    }
    let png = crate::files::png_bytes(w, h, canvas).map_err(|e| DatasetError::Io(out.to_path_buf(), std::io::Error::other(e)))?;
    crate::files::write_atomic(out, &png).map_err(|e| DatasetError::Io(out.to_path_buf(), e))?;
    Ok((w, h))
}

/// The top-left pixel of a sheet's tile.
fn tile_origin(row: usize, col: usize) -> (u32, u32) {
    (LABEL_WIDTH + GAP + col as u32 * (TILE + GAP), GAP + row as u32 * (TILE + GAP))
}

#[cfg(test)]
mod tests {
    #[test]
    fn many_image_sizes_read_as_the_most_common_and_a_count_of_the_rest() {
        let mut sizes: super::BTreeMap<(u32, u32), usize> = (1..=400).map(|i| ((100 + i, 80 + i), 1)).collect();
        sizes.insert((500, 375), 90);
        sizes.insert((64, 64), 30);
        assert_eq!(super::sizes_line(&sizes), "500x375 (90), 64x64 (30), and 400 other sizes (400 images, 101x81 to 500x480)");
        sizes.retain(|_, n| *n == 1);
        assert_eq!(super::sizes_line(&sizes), "400 sizes (400 images, 101x81 to 500x480)");
        assert_eq!(super::sizes_line(&[((32, 32), 7), ((30, 20), 1)].into()), "32x32 (7), 30x20 (1)");
    }
}
