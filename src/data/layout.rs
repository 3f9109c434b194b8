//! What a data folder given to a command means, decided in one place before any image is read.
//! A data folder is either a dataset, `DIR/training_set/` and `DIR/test_set/` (each a class
//! folder), of which the command picks the split it needs, or a class folder itself,
//! `DIR/<class>/<image>` (Keras' `flow_from_directory` layout). `predict` takes image files and
//! folders of images instead ([`images`]).

use std::path::{Path, PathBuf};

use super::{folder, DataError};

/// A split of a dataset folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Training,
    Test,
}

impl Split {
    /// Its sub-folder's name.
    pub fn folder(self) -> &'static str {
        match self {
            Split::Training => "training_set",
            Split::Test => "test_set",
        }
    }
}

/// What `dir` holds: a dataset (`true`: it has training_set/ or test_set/) or class folders
/// (`false`); anything else is an error saying what was expected.
fn is_dataset(dir: &Path) -> Result<bool, DataError> {
    let not_data = |found: String| DataError::NotData { dir: dir.to_path_buf(), found };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_data("no such folder".into())),
        Err(error) => return Err(DataError::Io { path: dir.to_path_buf(), error }),
        Ok(m) if !m.is_dir() => return Err(not_data("a file, not a folder".into())),
        Ok(_) => {}
    }
    if [Split::Training, Split::Test].iter().any(|s| dir.join(s.folder()).is_dir()) {
        return Ok(true);
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .and_then(|it| it.map(|e| e.map(|e| e.path())).collect())
        .map_err(|error| DataError::Io { path: dir.to_path_buf(), error })?;
    let visible: Vec<&PathBuf> = entries.iter().filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))).collect();
    if visible.is_empty() {
        return Err(not_data("an empty folder".into()));
    }
    if !visible.iter().any(|p| p.is_dir()) {
        let images = visible.iter().filter(|p| folder::is_image(p)).count();
        let s = if images == 1 { "" } else { "s" };
        return Err(not_data(format!("{images} image{s} but no class sub-folders (to classify them, use `gpu-cnn predict`)")));
    }
    Ok(false)
}

/// The class folder a command reading `split` uses for `dir`: `DIR/<split>/` of a dataset, or
/// `dir` itself when it is a class folder. Its classes and images are listed (not decoded), so
/// a wrong folder fails here.
pub fn class_folder(dir: &Path, split: Split) -> Result<PathBuf, DataError> {
    let folder = if is_dataset(dir)? { dir.join(split.folder()) } else { dir.to_path_buf() };
    if !folder.is_dir() {
        return Err(DataError::NoSplit { dir: dir.to_path_buf(), split: split.folder() });
    }
    folder::scan(&folder)?;
    Ok(folder)
}

/// Every class folder `dir` holds, by name: a dataset's splits (those it has), or `dir` itself.
pub fn class_folders(dir: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    if !is_dataset(dir)? {
        return Ok(vec![(dir.display().to_string(), dir.to_path_buf())]);
    }
    Ok([Split::Training, Split::Test].iter().map(|s| (s.folder().to_string(), dir.join(s.folder()))).filter(|(_, p)| p.is_dir()).collect())
}

/// Both splits of a dataset folder (training needs both); a class folder is refused, as it
/// has no validation split.
pub fn splits(dir: &Path) -> Result<(PathBuf, PathBuf), DataError> {
    if !is_dataset(dir)? {
        let classes = folder::scan(dir)?.into_iter().map(|(c, _)| c).collect();
        return Err(DataError::ClassFolder { dir: dir.to_path_buf(), classes });
    }
    Ok((class_folder(dir, Split::Training)?, class_folder(dir, Split::Test)?))
}

/// The image files `paths` name, for `predict`: files as given, folders walked recursively
/// (images only, hidden files and folders skipped, sorted). A missing path, or a folder
/// without images, is an error before any image is decoded.
pub fn images(paths: &[PathBuf]) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for path in paths {
        match std::fs::metadata(path) {
            Err(error) => return Err(DataError::Io { path: path.clone(), error }),
            Ok(m) if m.is_dir() => {
                let found = folder::image_files(path)?;
                if found.is_empty() {
                    return Err(DataError::NoImages(path.clone()));
                }
                out.extend(found);
            }
            Ok(_) => out.push(path.clone()),
        }
    }
    Ok(out)
}
