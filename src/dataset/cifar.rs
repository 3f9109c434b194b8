//! The CIFAR-10 binary format: batch files of records, each 1 label byte and 3,072 bytes of
//! R, G and B planes (32x32, row-major), read from the official .tar.gz or its extracted
//! `cifar-10-batches-bin/` folder, and written as class folders.

use std::io::Read;
use std::path::Path;

use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};

use super::{io, DatasetError, Item};

pub const CLASSES: [&str; 10] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
pub const RECORD: usize = 1 + 3 * 32 * 32;
pub const TRAIN_BATCHES: [&str; 5] = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
pub const TEST_BATCH: &str = "test_batch.bin";

/// The decoded batches: (label, RGB interleaved 32x32x3) per record, training then test.
pub struct Batches {
    pub train: Vec<(u8, Vec<u8>)>,
    pub test: Vec<(u8, Vec<u8>)>,
}

fn parse(location: &str, bytes: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, DatasetError> {
    let bad = |problem: String| DatasetError::Format { location: location.to_string(), what: "batch", problem };
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(bad(format!("{} bytes is not a whole number of {RECORD}-byte records", bytes.len())));
    }
    bytes
        .chunks(RECORD)
        .enumerate()
        .map(|(i, r)| {
            if r[0] >= 10 {
                return Err(bad(format!("record {i} has label {} (expected 0-9)", r[0])));
            }
            let planes = &r[1..];
            let rgb = (0..1024).flat_map(|p| [planes[p], planes[1024 + p], planes[2048 + p]]).collect();
            Ok((r[0], rgb))
        })
        .collect()
}

/// Reads the six batch files from a .tar.gz archive or a folder (the extracted
/// `cifar-10-batches-bin/` or the folder that contains it).
pub fn read(source: &Path) -> Result<Batches, DatasetError> {
    let mut files: std::collections::HashMap<String, Vec<u8>> = Default::default();
    let dir = if source.join("cifar-10-batches-bin").is_dir() { source.join("cifar-10-batches-bin") } else { source.to_path_buf() };
    let archive_error = |e: std::io::Error| DatasetError::Format { location: source.display().to_string(), what: "archive", problem: e.to_string() };
    if source.is_dir() {
        for name in TRAIN_BATCHES.iter().chain([&TEST_BATCH]) {
            let path = dir.join(name);
            if path.is_file() {
                files.insert(name.to_string(), std::fs::read(&path).map_err(io(&path))?);
            }
        }
    } else {
        let file = std::fs::File::open(source).map_err(io(source))?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        for entry in archive.entries().map_err(archive_error)? {
            let mut entry = entry.map_err(archive_error)?;
            let name = entry.path().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_default();
            if TRAIN_BATCHES.contains(&name.as_str()) || name == TEST_BATCH {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).map_err(archive_error)?;
                files.insert(name, bytes);
            }
        }
    }
    let what = if source.is_dir() { "folder" } else { "archive" };
    let location = |name: &str| if source.is_dir() { dir.join(name).display().to_string() } else { format!("{} ({name})", source.display()) };
    let mut take = |name: &str| files.remove(name).ok_or_else(|| DatasetError::Format { location: source.display().to_string(), what, problem: format!("{name} is missing") });
    let mut train = Vec::new();
    for name in TRAIN_BATCHES {
        train.extend(parse(&location(name), &take(name)?)?);
    }
    let test = parse(&location(TEST_BATCH), &take(TEST_BATCH)?)?;
    Ok(Batches { train, test })
}

/// Label indices of class names: at least two, each once (the layout's class folders).
pub fn class_indices(classes: &[String]) -> Result<Vec<u8>, DatasetError> {
    let indices = classes.iter().map(|c| CLASSES.iter().position(|k| k == c).map(|i| i as u8).ok_or_else(|| DatasetError::UnknownClass(c.clone()))).collect::<Result<Vec<u8>, _>>()?;
    if indices.len() < 2 {
        return Err(DatasetError::Classes("a classifier needs at least two classes, e.g. --classes cat,dog".into()));
    }
    match (1..indices.len()).find(|&i| indices[..i].contains(&indices[i])) {
        Some(i) => Err(DatasetError::Classes(format!("'{}' is given twice", classes[i]))),
        None => Ok(indices),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    /// The training batches only, shuffled with the seed, 80% training / 20% test (the write-up's
    /// 4,000 / 1,000 per class for cats and dogs).
    Seed,
    /// The official training batches / test batch.
    Official,
}

/// Writes the chosen classes of `batches` into `out` (`training_set/<class>s/<class>.<n>.png`).
/// Returns false when `out` already holds exactly this dataset.
pub fn export(batches: &Batches, source: &str, classes: &[String], split: Split, seed: u64, out: &Path) -> Result<bool, DatasetError> {
    let labels = class_indices(classes)?;
    let split_name = match split {
        Split::Seed => format!("seed {seed}"),
        Split::Official => "official".into(),
    };
    super::write_dataset(out, source, classes, &split_name, || {
        let mut items = Vec::new();
        let mut counts = Vec::new();
        for (class, &label) in classes.iter().zip(&labels) {
            let of = |records: &[(u8, Vec<u8>)]| records.iter().filter(|r| r.0 == label).map(|r| r.1.clone()).collect::<Vec<_>>();
            let (train, test) = match split {
                Split::Official => (of(&batches.train), of(&batches.test)),
                Split::Seed => {
                    let mut all = of(&batches.train);
                    all.shuffle(&mut StdRng::seed_from_u64(seed ^ label as u64));
                    let test = all.split_off(all.len() * 4 / 5);
                    (all, test)
                }
            };
            let folder = format!("{class}s");
            counts.push(("training_set".into(), folder.clone(), train.len()));
            counts.push(("test_set".into(), folder.clone(), test.len()));
            for (n, (split, rgb)) in train.into_iter().map(|r| ("training_set", r)).chain(test.into_iter().map(|r| ("test_set", r))).enumerate() {
                items.push(Item { split, folder: folder.clone(), stem: format!("{class}.{n}"), size: [32, 32], rgb });
            }
        }
        Ok((items, counts))
    })
}
