//! `gpu-cnn dataset`: put public data on disk in the class-folder layout ([`cifar`], [`fetch`]),
//! write the built-in synthetic set ([`synth`]), and look at a dataset ([`stats`]).
//! Every writer locks the dataset folder, builds its splits in a staging folder (every file
//! written and synced), renames them into place and writes a marker last ([`write_dataset`]); a
//! rerun that finds the same marker does nothing, and one after a failure starts over.

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
    #[error(transparent)]
    Output(#[from] crate::files::OutputError),
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
            Some(m) if m.is(source, classes, split) => Ok(true),
            Some(m) => Err(DatasetError::Occupied(dir.to_path_buf(), format!("another dataset ({}); choose another --out or remove it", m.describe()))),
            None => Ok(false),
        }
    }

    fn is(&self, source: &str, classes: &[String], split: &str) -> bool {
        self.source == source && self.classes == classes && self.split == split
    }

    fn describe(&self) -> String {
        format!("{} {} split {}", self.source, self.classes.join(","), self.split)
    }

    /// The split folders it lists, each once.
    fn splits(&self) -> Vec<&str> {
        let mut splits: Vec<&str> = self.counts.iter().map(|c| c.0.as_str()).collect();
        splits.sort_unstable();
        splits.dedup();
        splits
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

/// Image counts per (split, class folder), as the marker lists them.
pub type Counts = Vec<(String, String, usize)>;

/// Where a dataset is built before its splits are renamed into place.
const STAGING: &str = ".gpu-cnn-dataset.partial";

/// Writes a dataset into `out` unless it already holds it (same source, classes and split), and
/// returns whether it wrote: locks `out`, makes the images with `make`, writes each PNG synced
/// under a staging folder, then renames the splits into place and writes the marker last, with
/// signals held off. A failed write or a signal leaves nothing under the final names (the
/// staging folder is removed), so a rerun starts over; a rerun after a kill (-9) or a power cut
/// in the middle of the renames finishes them.
pub fn write_dataset(out: &Path, source: &str, classes: &[String], split: &str, make: impl FnOnce() -> Result<(Vec<Item>, Counts), DatasetError>) -> Result<bool, DatasetError> {
    let _folder = crate::files::LockedFolder::take(out, "dataset command")?;
    let staging_path = out.join(STAGING);
    // Left by a process that was killed (the lock says none is writing here now). With a marker
    // inside, its renames had begun: finish them; otherwise it is only half written.
    if staging_path.exists() {
        match Marker::read(&staging_path) {
            Some(pending) if Marker::read(out).is_none() => {
                if !pending.is(source, classes, split) {
                    return Err(DatasetError::Occupied(out.to_path_buf(), format!("an unfinished write of another dataset ({}); rerun the command that started it to finish it, or remove the folder", pending.describe())));
                }
                crate::interrupt::uninterrupted(|| commit(out, &staging_path, &pending))?;
                std::fs::remove_dir_all(&staging_path).map_err(io(&staging_path))?;
                return Ok(true);
            }
            _ => std::fs::remove_dir_all(&staging_path).map_err(io(&staging_path))?,
        }
    }
    if Marker::complete(out, source, classes, split)? {
        return Ok(false);
    }
    let (items, counts) = make()?;
    let marker = Marker { source: source.into(), classes: classes.to_vec(), split: split.into(), counts };
    // Never replace folders gpu-cnn did not finish writing (a different dataset's marker was
    // refused above).
    if let Some(split) = marker.splits().into_iter().find(|s| out.join(s).exists()) {
        return Err(DatasetError::Occupied(out.to_path_buf(), format!("a {split}/ folder without a gpu-cnn marker; remove it or choose another --out")));
    }
    let staging = crate::files::Temporary::folder(&staging_path).map_err(io(&staging_path))?;
    let mut folders: Vec<PathBuf> = items.iter().flat_map(|i| [staging.path().join(i.split), staging.path().join(i.split).join(&i.folder)]).collect();
    folders.sort();
    folders.dedup();
    // One level at a time: a signal's removal of the staging folder is never undone here.
    for dir in &folders {
        std::fs::create_dir(dir).map_err(io(dir))?;
    }
    // Encoding and syncing thousands of small files is faster on a few threads.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let dir = staging.path();
    std::thread::scope(|scope| {
        let writers: Vec<_> = items.chunks(items.len().div_ceil(threads).max(1)).map(|part| scope.spawn(move || part.iter().try_for_each(|item| write_png(dir, item)))).collect();
        writers.into_iter().try_for_each(|w| w.join().expect("a PNG writer panicked"))
    })?;
    folders.iter().rev().for_each(|dir| crate::files::sync_folder(dir));
    crate::interrupt::uninterrupted(|| commit(out, staging.path(), &marker))?;
    Ok(true)
}

fn write_png(staging: &Path, item: &Item) -> Result<(), DatasetError> {
    let path = staging.join(item.split).join(&item.folder).join(format!("{}.png", item.stem));
    let png = crate::files::png_bytes(item.size[1], item.size[0], item.rgb.clone()).map_err(|e| DatasetError::Io(path.clone(), std::io::Error::other(e)))?;
    let mut file = std::fs::File::create_new(&path).map_err(io(&path))?;
    crate::files::write_synced(&mut file, &png).map_err(io(&path))
}

/// Moves the written splits from `staging` into `out` and writes the marker; on failure moves
/// them back, so the caller's removal of `staging` leaves nothing under the final names. The
/// marker goes into `staging` first: a process killed from there on leaves a state that says
/// which dataset the splits already in `out` belong to.
fn commit(out: &Path, staging: &Path, marker: &Marker) -> Result<(), DatasetError> {
    let json = serde_json::to_string_pretty(marker).expect("plain data");
    let pending = staging.join(MARKER);
    crate::files::write_atomic(&pending, json.as_bytes()).map_err(io(&pending))?;
    let mut moved = Vec::new();
    let result = (|| {
        // A split with no images has no folder; one moved before a kill is in place already.
        for split in marker.splits() {
            let (from, to) = (staging.join(split), out.join(split));
            if from.exists() {
                std::fs::rename(&from, &to).map_err(io(&to))?;
                moved.push((from, to));
            }
        }
        crate::files::sync_folder(out);
        let path = out.join(MARKER);
        crate::files::write_atomic(&path, json.as_bytes()).map_err(io(&path))
    })();
    if result.is_err() {
        for (from, to) in moved.iter().rev() {
            let _ = std::fs::rename(to, from);
        }
    }
    result
}

/// `gpu-cnn dataset synth`: the built-in synthetic set as PNG class folders.
pub fn synth(out: &Path, train: usize, test: usize, size: u32, seed: u64) -> Result<bool, DatasetError> {
    let classes: Vec<String> = crate::data::synthetic::CLASSES.iter().map(|s| s.to_string()).collect();
    let split = format!("{train}/{test} {size}px seed {seed}");
    write_dataset(out, "synthetic", &classes, &split, || {
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
        Ok((items, counts))
    })
}
