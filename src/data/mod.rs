//! Images in, batches out: class folders decoded and resized once into a u8 cache in RAM
//! ([`folder`]), the built-in synthetic set ([`synthetic`]), per-image augmentation
//! ([`augment`]) and the worker threads that stream batches to the trainer ([`loader`]).

pub mod augment;
pub mod folder;
pub mod layout;
pub mod loader;
pub mod synthetic;

use std::path::PathBuf;

use thiserror::Error;

/// Images of each class that `--limit` keeps (at least one), in every kind of data set.
pub fn per_class(limit: usize, classes: usize) -> usize {
    (limit / classes).max(1)
}

#[derive(Debug, Error)]
pub enum DataError {
    #[error("{0}: no such folder (expected one sub-folder of images per class)")]
    Missing(PathBuf),
    #[error("{path}: cannot read: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{0}: no class sub-folders (expected e.g. {0}/cats/*.jpg and {0}/dogs/*.jpg)")]
    NoClasses(PathBuf),
    #[error("{0}: only one class sub-folder ('{1}'); a classifier needs at least two")]
    OneClass(PathBuf, String),
    #[error("{0}: class folder has no images")]
    EmptyClass(PathBuf),
    #[error("{path}: cannot decode image: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("the model expects {expected} input channels; images are read as RGB (3) or grayscale (1)")]
    Channels { expected: u32 },
    #[error("{dir}: classes {found:?} differ from the training set's {expected:?}")]
    ClassMismatch { dir: PathBuf, found: Vec<String>, expected: Vec<String> },
    #[error("{dir}: {found}; expected a folder with training_set/ and test_set/, or a class folder (one sub-folder of images per class, e.g. {dir}/cats/*.jpg)")]
    NotData { dir: PathBuf, found: String },
    #[error("{dir}: has no {split}/ (a folder with training_set/ and test_set/, or a class folder, is expected)")]
    NoSplit { dir: PathBuf, split: &'static str },
    #[error("{dir}: a class folder ({}); training needs a folder with training_set/ and test_set/, each with one sub-folder per class", classes.join(", "))]
    ClassFolder { dir: PathBuf, classes: Vec<String> },
    #[error("{0}: no images in it or its sub-folders")]
    NoImages(PathBuf),
    #[error(transparent)]
    Size(#[from] crate::sizes::SizeError),
}

/// Decoded images of one split, resized to the model's input, as u8 HWC in RAM.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Class names in label order (sorted folder names).
    pub classes: Vec<String>,
    /// [height, width, channels]
    pub shape: [u32; 3],
    pub pixels: Vec<u8>,
    pub labels: Vec<u32>,
    /// Source file of each image (empty for generated sets).
    pub files: Vec<PathBuf>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn image_len(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product()
    }
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }
    /// At most `n` of its images, evenly spread over it (so over every class).
    pub fn spread(&self, n: usize) -> Dataset {
        let picked: Vec<usize> = (0..self.len()).step_by(self.len().div_ceil(n.max(1)).max(1)).collect();
        Dataset {
            classes: self.classes.clone(),
            shape: self.shape,
            pixels: picked.iter().flat_map(|&i| self.image(i).iter().copied()).collect(),
            labels: picked.iter().map(|&i| self.labels[i]).collect(),
            files: picked.iter().filter_map(|&i| self.files.get(i).cloned()).collect(),
        }
    }

    /// Images per class.
    pub fn counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes.len()];
        self.labels.iter().for_each(|&l| c[l as usize] += 1);
        c
    }
}
