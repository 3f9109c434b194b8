//! `gpu-cnn dataset`: put public data on disk in the class-folder layout ([`cifar`], [`fetch`]),
//! write the built-in synthetic set ([`synth`]), and look at a dataset ([`stats`]).
//! Every writer builds its folders under temporary names and renames them into place, then
//! writes a marker; a rerun that finds the same marker does nothing.

pub mod cifar;
pub mod fetch;
pub mod stats;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DatasetError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{location}: not a CIFAR-10 binary {what}: {problem}")]
    Format { location: String, what: &'static str, problem: String },
    #[error("unknown CIFAR-10 class '{0}': expected airplane, automobile, bird, cat, deer, dog, frog, horse, ship or truck")]
    UnknownClass(String),
    #[error("--classes: {0}")]
    Classes(String),
    #[error("checksum mismatch for {path}: MD5 {actual}, expected {expected}{hint}")]
    Checksum { path: PathBuf, expected: String, actual: String, hint: &'static str },
    #[error("download of {url} failed: {message}")]
    Download { url: String, message: String },
    #[error("{0}: the folder already holds {1}")]
    Occupied(PathBuf, String),
}

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> DatasetError + '_ {
    move |e| DatasetError::Io(path.to_path_buf(), e)
}

/// What a finished dataset folder holds; written last, so its presence means "complete".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    pub source: String,
    pub classes: Vec<String>,
    pub split: String,
    pub counts: Vec<(String, String, usize)>,
}

pub const MARKER: &str = ".gpu-cnn-dataset.json";

impl Marker {
    pub fn read(dir: &Path) -> Option<Marker> {
        serde_json::from_str(&std::fs::read_to_string(dir.join(MARKER)).ok()?).ok()
    }

    /// Whether `dir` already holds this dataset (same source, classes and split).
    pub fn complete(dir: &Path, source: &str, classes: &[String], split: &str) -> Result<bool, DatasetError> {
        match Marker::read(dir) {
            Some(m) if m.source == source && m.classes == classes && m.split == split => Ok(true),
            Some(m) => Err(DatasetError::Occupied(dir.to_path_buf(), format!("another dataset ({} {} split {}); choose another --out or remove it", m.source, m.classes.join(","), m.split))),
            None => Ok(false),
        }
    }
}

/// One image to write: split ("training_set" / "test_set"), class folder, file stem, RGB pixels.
pub struct Item {
    pub split: &'static str,
    pub folder: String,
    pub stem: String,
    pub size: [u32; 2],
    pub rgb: Vec<u8>,
}

/// Writes `items` as PNGs under `out/<split>/<folder>/<stem>.png`, each split built under a
/// temporary name and renamed into place, then the marker.
pub fn write_layout(out: &Path, items: Vec<Item>, marker: Marker) -> Result<(), DatasetError> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut splits: Vec<&'static str> = items.iter().map(|i| i.split).collect();
    splits.sort_unstable();
    splits.dedup();
    for split in &splits {
        // Never replace folders gpu-cnn did not finish writing (callers already refuse a
        // different dataset's marker).
        if out.join(split).exists() {
            return Err(DatasetError::Occupied(out.to_path_buf(), format!("a {split}/ folder without a gpu-cnn marker; remove it or choose another --out")));
        }
        let tmp = out.join(format!(".{split}.partial"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
    }
    for item in &items {
        let dir = out.join(format!(".{}.partial", item.split)).join(&item.folder);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(format!("{}.png", item.stem));
        image::RgbImage::from_raw(item.size[1], item.size[0], item.rgb.clone())
            .expect("pixel count matches the size")
            .save(&path)
            .map_err(|e| DatasetError::Io(path.clone(), std::io::Error::other(e.to_string())))?;
    }
    for split in splits {
        let (tmp, dst) = (out.join(format!(".{split}.partial")), out.join(split));
        std::fs::rename(&tmp, &dst).map_err(io(&dst))?;
    }
    let json = serde_json::to_string_pretty(&marker).expect("plain data");
    crate::files::write_atomic(&out.join(MARKER), json.as_bytes()).map_err(io(out))
}

/// `gpu-cnn dataset synth`: the built-in synthetic set as PNG class folders.
pub fn synth(out: &Path, train: usize, test: usize, size: u32, seed: u64) -> Result<bool, DatasetError> {
    let classes: Vec<String> = crate::data::synthetic::CLASSES.iter().map(|s| s.to_string()).collect();
    let split = format!("{train}/{test} {size}px seed {seed}");
    if Marker::complete(out, "synthetic", &classes, &split)? {
        return Ok(false);
    }
    let mut items = Vec::new();
    let mut counts = Vec::new();
    for (split_name, n, s) in [("training_set", train, seed), ("test_set", test, seed ^ 0x5EED)] {
        let ds = crate::data::synthetic::generate(n, [size, size, 3], s);
        for i in 0..ds.len() {
            let class = &ds.classes[ds.labels[i] as usize];
            items.push(Item { split: split_name, folder: class.clone(), stem: format!("{class}.{i}"), size: [size, size], rgb: ds.image(i).to_vec() });
        }
        for (c, k) in ds.classes.iter().zip(ds.counts()) {
            counts.push((split_name.to_string(), c.clone(), k));
        }
    }
    write_layout(out, items, Marker { source: "synthetic".into(), classes, split, counts })?;
    Ok(true)
}
