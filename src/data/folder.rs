//! Keras `flow_from_directory` layout: `DIR/<class>/<image>`, classes in sorted order give the
//! labels. Each image is decoded and resized (nearest, as Keras) once, in parallel.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::ColorType;
use serde::{Deserialize, Serialize};

use super::{DataError, Dataset};

/// What `load` does with an image that fails to decode: skip it with a warning, or fail.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CorruptPolicy {
    Skip,
    Fail,
}

/// Class folders and their image files, both sorted.
pub fn scan(dir: &Path) -> Result<Vec<(String, Vec<PathBuf>)>, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing(dir.to_path_buf()));
    }
    fn io(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
        move |error| DataError::Io { path: path.to_path_buf(), error }
    }
    let mut classes = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if path.is_dir() && !name.starts_with('.') {
            classes.push((name, path));
        }
    }
    classes.sort();
    match classes.len() {
        0 => return Err(DataError::NoClasses(dir.to_path_buf())),
        1 => return Err(DataError::OneClass(dir.to_path_buf(), classes.remove(0).0)),
        _ => {}
    }
    let mut out = Vec::new();
    for (name, path) in classes {
        let files = image_files(&path)?;
        if files.is_empty() {
            return Err(DataError::EmptyClass(path));
        }
        out.push((name, files));
    }
    Ok(out)
}

/// Whether a compiled-in decoder reads files named like `path` (README, .ico, ... are not images).
pub fn is_image(path: &Path) -> bool {
    path.is_file() && image::ImageFormat::from_path(path).is_ok_and(|f| f.reading_enabled())
}

/// The images under `dir`, sub-folders included as in Keras' flow_from_directory, hidden
/// files and folders not; in Keras' order: folder by folder (as strings), each folder's files
/// by name.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let hidden = |e: &walkdir::DirEntry| e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.');
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).into_iter().filter_entry(|e| !hidden(e)) {
        let file = entry.map_err(|e| DataError::Io { path: e.path().unwrap_or(dir).to_path_buf(), error: e.into() })?.into_path();
        if is_image(&file) {
            files.push(file);
        }
    }
    files.sort_by(|a, b| (a.parent().map(Path::as_os_str), a.file_name()).cmp(&(b.parent().map(Path::as_os_str), b.file_name())));
    Ok(files)
}

/// Decodes one image to `shape` ([h, w, c], c = 1 or 3), nearest-neighbour resize.
pub fn decode(path: &Path, shape: [u32; 3]) -> Result<Vec<u8>, DataError> {
    let corrupt = |e: image::ImageError| DataError::Corrupt { path: path.to_path_buf(), message: e.to_string() };
    let img = image::ImageReader::open(path)
        .map_err(|error| DataError::Io { path: path.to_path_buf(), error })?
        .with_guessed_format()
        .map_err(|error| DataError::Io { path: path.to_path_buf(), error })?
        .decode()
        .map_err(corrupt)?;
    let [h, w, c] = shape;
    let img = if img.width() == w && img.height() == h { img } else { img.resize_exact(w, h, FilterType::Nearest) };
    Ok(match c {
        3 => img.into_rgb8().into_raw(),
        1 if matches!(img.color(), ColorType::L8 | ColorType::La8 | ColorType::L16 | ColorType::La16) => img.into_luma8().into_raw(),
        // Keras' grayscale loading is PIL's convert("L"): ITU-R 601-2 luma, rounded.
        1 => img.into_rgb8().pixels().map(|p| ((19595 * p[0] as u32 + 38470 * p[1] as u32 + 7471 * p[2] as u32 + 0x8000) >> 16) as u8).collect(),
        other => return Err(DataError::Channels { expected: other }),
    })
}

/// Loads a split. `limit` keeps limit / classes images of each class, at least one (the first
/// files of each class in sorted order). Corrupt images are skipped with a warning, or fail the
/// load, as `corrupt` says. Decoding runs on `workers` threads.
pub fn load(dir: &Path, shape: [u32; 3], limit: Option<usize>, corrupt: CorruptPolicy, workers: usize) -> Result<Dataset, DataError> {
    if !matches!(shape[2], 1 | 3) {
        return Err(DataError::Channels { expected: shape[2] });
    }
    let classes = scan(dir)?;
    let per_class = limit.map(|n| super::per_class(n, classes.len()));
    let mut jobs: Vec<(u32, PathBuf)> = Vec::new();
    for (label, (_, files)) in classes.iter().enumerate() {
        let take = per_class.unwrap_or(files.len()).min(files.len());
        jobs.extend(files[..take].iter().map(|f| (label as u32, f.clone())));
    }
    // Decoded images are held twice (per image, then in the cache) before the copies are freed.
    let per_image = shape.iter().map(|&d| d as u64).product::<u64>();
    crate::sizes::check_host_bytes(&format!("the images of {}", dir.display()), (jobs.len() as u64).saturating_mul(per_image).saturating_mul(2))?;
    let chunk = jobs.len().div_ceil(workers.max(1)).max(1);
    let decoded: Vec<Result<Vec<u8>, DataError>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs.chunks(chunk).map(|part| s.spawn(move || part.iter().map(|(_, f)| decode(f, shape)).collect::<Vec<_>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("decoder thread")).collect()
    });
    let mut ds = Dataset { classes: classes.iter().map(|(n, _)| n.clone()).collect(), shape, pixels: Vec::new(), labels: Vec::new(), files: Vec::new() };
    for ((label, file), result) in jobs.into_iter().zip(decoded) {
        match result {
            Ok(px) => {
                ds.pixels.extend_from_slice(&px);
                ds.labels.push(label);
                ds.files.push(file);
            }
            Err(e) if corrupt == CorruptPolicy::Skip && matches!(e, DataError::Corrupt { .. }) => log::warn!("skipping {e}"),
            Err(e) => return Err(e),
        }
    }
    for (label, count) in ds.counts().into_iter().enumerate() {
        if count == 0 {
            return Err(DataError::EmptyClass(dir.join(&ds.classes[label])));
        }
    }
    Ok(ds)
}
