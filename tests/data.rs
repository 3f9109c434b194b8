//! Class folders made by the test: labels, shapes, resizing and every bad-input error.

use std::path::Path;

use gpu_cnn::data::folder::CorruptPolicy;
use gpu_cnn::data::{folder, DataError};

fn write_png(path: &Path, w: u32, h: u32, value: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_pixel(w, h, image::Rgb([value, value / 2, 255 - value])).save(path).unwrap();
}

#[test]
fn labels_follow_sorted_class_folders_and_images_are_resized() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_png(&root.join("dogs/b.png"), 10, 6, 200);
    write_png(&root.join("dogs/a.png"), 4, 4, 100);
    write_png(&root.join("cats/x.png"), 8, 8, 50);
    std::fs::write(root.join("cats/notes.txt"), "not an image").unwrap();
    std::fs::write(root.join("cats/.hidden.png"), "ignored").unwrap();
    let ds = folder::load(root, [8, 8, 3], None, CorruptPolicy::Fail, 2).unwrap();
    assert_eq!(ds.classes, ["cats", "dogs"]);
    assert_eq!(ds.labels, [0, 1, 1]);
    assert_eq!(ds.shape, [8, 8, 3]);
    assert_eq!(ds.pixels.len(), 3 * 8 * 8 * 3);
    assert!(ds.files[1].ends_with("dogs/a.png"), "files in sorted order: {:?}", ds.files);
    // Nearest resize of a flat image keeps its colour exactly.
    assert_eq!(&ds.image(1)[..3], &[100, 50, 155]);
    let gray = folder::load(root, [5, 5, 1], None, CorruptPolicy::Fail, 1).unwrap();
    assert_eq!(gray.pixels.len(), 3 * 25);
}

/// Keras loads grayscale through PIL's convert("L"): 299/587/114 luma, rounded (pure red 76,
/// green 150, blue 29); grey images stay as they are.
#[test]
fn grayscale_is_pils_luma() {
    let dir = tempfile::tempdir().unwrap();
    let paths = ["red.png", "green.png", "blue.png", "grey.png"].map(|f| dir.path().join(f));
    for (path, rgb) in paths.iter().zip([[255, 0, 0], [0, 255, 0], [0, 0, 255]]) {
        image::RgbImage::from_pixel(2, 2, image::Rgb(rgb)).save(path).unwrap();
    }
    image::GrayImage::from_pixel(2, 2, image::Luma([77])).save(&paths[3]).unwrap();
    let luma: Vec<u8> = paths.iter().map(|p| folder::decode(p, [2, 2, 1]).unwrap()[0]).collect();
    assert_eq!(luma, [76, 150, 29, 77]);
}

/// Images in subfolders of a class folder belong to it (as in Keras), hidden folders do not,
/// and files no compiled-in decoder reads are not listed.
#[test]
fn class_folders_are_walked_like_keras() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_png(&root.join("cats/a.png"), 4, 4, 1);
    write_png(&root.join("cats/z.png"), 4, 4, 1);
    write_png(&root.join("cats/more/b.png"), 4, 4, 2);
    write_png(&root.join("cats/.cache/c.png"), 4, 4, 3);
    write_png(&root.join("dogs/d.png"), 4, 4, 4);
    std::fs::write(root.join("dogs/favicon.ico"), b"not decodable here").unwrap();
    let ds = folder::load(root, [4, 4, 3], None, CorruptPolicy::Fail, 1).unwrap();
    assert_eq!(ds.counts(), [3, 1], "{:?}", ds.files);
    // Keras' order: a folder's own files, then its subfolders'.
    assert!(ds.files[1].ends_with("cats/z.png") && ds.files[2].ends_with("cats/more/b.png"), "{:?}", ds.files);
}

#[test]
fn limit_is_balanced_across_classes() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..5 {
        write_png(&dir.path().join(format!("a/{i}.png")), 3, 3, 10);
        write_png(&dir.path().join(format!("b/{i}.png")), 3, 3, 20);
    }
    // An odd limit rounds down per class, in folders and in the built-in synthetic set alike.
    let ds = folder::load(dir.path(), [3, 3, 3], Some(5), CorruptPolicy::Fail, 2).unwrap();
    assert_eq!(ds.counts(), [2, 2]);
    let mut cfg = gpu_cnn::config::Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.toml")).unwrap();
    assert!(cfg.data.synthetic.is_some());
    cfg.train.limit = Some(5);
    let (train, test) = gpu_cnn::run::load_datasets(&cfg).unwrap();
    assert_eq!((train.counts(), test.counts()), (vec![2, 2], vec![2, 2]));
}

#[test]
fn bad_folders_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let load = |p: &Path, policy| folder::load(p, [4, 4, 3], None, policy, 1);

    let e = load(&root.join("nope"), CorruptPolicy::Fail).unwrap_err();
    assert!(matches!(e, DataError::Missing(_)), "{e}");
    assert!(e.to_string().contains("nope"));

    std::fs::create_dir_all(root.join("one/cats")).unwrap();
    write_png(&root.join("one/cats/a.png"), 4, 4, 1);
    let e = load(&root.join("one"), CorruptPolicy::Fail).unwrap_err();
    assert!(matches!(e, DataError::OneClass(..)), "{e}");

    std::fs::create_dir_all(root.join("one/dogs")).unwrap();
    let e = load(&root.join("one"), CorruptPolicy::Fail).unwrap_err();
    assert!(matches!(e, DataError::EmptyClass(ref p) if p.ends_with("dogs")), "{e}");

    write_png(&root.join("one/dogs/ok.png"), 4, 4, 9);
    std::fs::write(root.join("one/dogs/broken.jpg"), b"\xff\xd8 definitely not a jpeg").unwrap();
    let e = load(&root.join("one"), CorruptPolicy::Fail).unwrap_err();
    assert!(matches!(e, DataError::Corrupt { ref path, .. } if path.ends_with("broken.jpg")), "{e}");
    let ds = load(&root.join("one"), CorruptPolicy::Skip).unwrap();
    assert_eq!(ds.counts(), [1, 1], "the corrupt image is skipped");

    std::fs::remove_file(root.join("one/dogs/ok.png")).unwrap();
    let e = load(&root.join("one"), CorruptPolicy::Skip).unwrap_err();
    assert!(matches!(e, DataError::EmptyClass(_)), "a class left empty by skipping is an error: {e}");
}

/// A run records its data by the training folder's last two names: the same data through any
/// path, or moved with the repository to another machine, reads the same.
#[test]
fn a_runs_data_is_named_the_same_from_any_path() {
    let mut cfg = gpu_cnn::config::Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.toml")).unwrap();
    let synthetic = cfg.data.synthetic.unwrap().train;
    assert_eq!(gpu_cnn::run::data_source(&cfg), format!("the synthetic set of {synthetic} images"));
    cfg.data.synthetic = None;
    for path in ["/work/shared/cats/training_set", "../shared/cats/training_set", "/elsewhere/x/../cats/./training_set", "cats/training_set"] {
        cfg.data.train = path.into();
        assert_eq!(gpu_cnn::run::data_source(&cfg), "cats/training_set", "{path}");
    }
    cfg.train.limit = Some(64);
    assert_eq!(gpu_cnn::run::data_source(&cfg), "cats/training_set, --limit 64");
}
