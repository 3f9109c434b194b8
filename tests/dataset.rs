//! `gpu-cnn dataset`: a small CIFAR-format archive made here, served from a loopback HTTP server
//! this test starts (fetch end to end, checksum mismatch, truncated download, rerun as a no-op),
//! import from the archive and from a folder, synth, stats and contact sheets.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use md5::{Digest, Md5};

const RECORD: usize = 3073;

/// A batch file of `n` records whose labels cycle through `labels`.
fn batch(n: usize, labels: &[u8], salt: u8) -> Vec<u8> {
    (0..n).flat_map(|i| std::iter::once(labels[i % labels.len()]).chain((0..RECORD - 1).map(move |p| (p as u8).wrapping_mul(salt).wrapping_add(i as u8)))).collect()
}

/// Batches: 5 training batches of 20 records (cat, dog, frog cycling) and a test batch of 9.
fn files() -> Vec<(String, Vec<u8>)> {
    let mut f: Vec<(String, Vec<u8>)> = (1..=5).map(|i| (format!("data_batch_{i}.bin"), batch(20, &[3, 5, 6], i as u8))).collect();
    f.push(("test_batch.bin".into(), batch(9, &[3, 5, 6], 9)));
    f
}

fn archive() -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (name, bytes) in files() {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("cifar-10-batches-bin/{name}"), bytes.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Serves `body` at /good.tar.gz and a body cut in half (with the full Content-Length) at
/// /cut.tar.gz, on 127.0.0.1; counts requests.
fn serve(body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut s) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let path = String::from_utf8_lossy(&req).split_whitespace().nth(1).unwrap_or("").to_string();
            let send = if path == "/cut.tar.gz" { &body[..body.len() / 2] } else { &body[..] };
            let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = s.write_all(send);
        }
    });
    (base, hits)
}

fn gpu_cnn(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_gpu-cnn")).args(args).current_dir(dir).output().unwrap();
    eprintln!("$ gpu-cnn {}\n{}{}", args.join(" "), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn fetch_verifies_writes_the_layout_and_reruns_as_a_no_op() {
    let body = archive();
    let md5 = md5_hex(&body);
    let (base, hits) = serve(body);
    let dir = tempfile::tempdir().unwrap();
    let fetch = |out: &str, path: &str, md5: &str| {
        gpu_cnn(dir.path(), &["dataset", "fetch", "cifar10", "--classes", "cat,dog", "--out", out, "--url", &format!("{base}{path}"), "--md5", md5])
    };

    // Checksum mismatch: an error, and nothing left behind.
    let o = fetch("bad", "/good.tar.gz", "00000000000000000000000000000000");
    assert!(!o.status.success() && stderr(&o).contains("checksum mismatch"));
    assert_eq!(count(&dir.path().join("bad")), 0, "no archive, no partial file, no folders");

    // Truncated transfer: an error, and nothing left behind.
    let o = fetch("cut", "/cut.tar.gz", &md5);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("download of") && stderr(&o).contains("cut.tar.gz"), "{}", stderr(&o));
    assert_eq!(count(&dir.path().join("cut")), 0);

    // A different archive of the user's where the download would go: kept, and refused.
    std::fs::create_dir_all(dir.path().join("mine")).unwrap();
    std::fs::write(dir.path().join("mine/cifar-10-binary.tar.gz"), b"my own copy").unwrap();
    let o = fetch("mine", "/good.tar.gz", &md5);
    assert!(!o.status.success() && stderr(&o).contains("dataset import"), "{}", stderr(&o));
    assert_eq!(std::fs::read(dir.path().join("mine/cifar-10-binary.tar.gz")).unwrap(), b"my own copy");

    // The real thing: 100 training-batch records, a third cats and dogs each, split 80/20.
    let o = fetch("data", "/good.tar.gz", &md5);
    assert!(o.status.success());
    let data = dir.path().join("data");
    // Labels cycle cat, dog, frog through each 20-record batch.
    let expected_cats = 5 * (0..20).filter(|i| i % 3 == 0).count();
    let expected_dogs = 5 * (0..20).filter(|i| i % 3 == 1).count();
    assert_eq!(count(&data.join("training_set/cats")) + count(&data.join("test_set/cats")), expected_cats);
    assert_eq!(count(&data.join("training_set/dogs")) + count(&data.join("test_set/dogs")), expected_dogs);
    assert_eq!(count(&data.join("training_set/cats")), expected_cats * 4 / 5);
    assert!(data.join("training_set/cats/cat.0.png").is_file() && data.join("test_set/dogs").is_dir());
    let img = image::open(data.join("training_set/cats/cat.0.png")).unwrap();
    assert_eq!((img.width(), img.height()), (32, 32));

    let before = hits.load(Ordering::SeqCst);
    let o = fetch("data", "/good.tar.gz", &md5);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("nothing to do"));
    assert_eq!(hits.load(Ordering::SeqCst), before, "a complete folder is not downloaded again");

    // Offline / unreachable: a clear error.
    let o = gpu_cnn(dir.path(), &["dataset", "fetch", "cifar10", "--classes", "cat,dog", "--out", "x", "--url", "http://127.0.0.1:9/none.tar.gz", "--timeout", "2"]);
    assert!(!o.status.success() && stderr(&o).contains("dataset import"), "{}", stderr(&o));
}

#[test]
fn import_from_archive_and_folder_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cifar.tar.gz"), archive()).unwrap();
    let folder = dir.path().join("extracted/cifar-10-batches-bin");
    std::fs::create_dir_all(&folder).unwrap();
    for (name, bytes) in files() {
        std::fs::write(folder.join(name), bytes).unwrap();
    }
    let o = gpu_cnn(dir.path(), &["dataset", "import", "cifar.tar.gz", "--classes", "dog,frog", "--out", "a", "--split", "official"]);
    assert!(o.status.success());
    assert_eq!(count(&dir.path().join("a/training_set/dogs")), 5 * (0..20).filter(|i| i % 3 == 1).count());
    assert_eq!(count(&dir.path().join("a/test_set/frogs")), (0..9).filter(|i| i % 3 == 2).count());
    let o = gpu_cnn(dir.path(), &["dataset", "import", "extracted", "--classes", "dog,frog", "--out", "b", "--split", "official"]);
    assert!(o.status.success());
    let list = |p: &str| {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir.path().join(p)).unwrap().map(|e| e.unwrap().path().file_name().unwrap().into()).collect();
        v.sort();
        v
    };
    assert_eq!(list("a/training_set/dogs"), list("b/training_set/dogs"));

    let o = gpu_cnn(dir.path(), &["dataset", "import", "cifar.tar.gz", "--classes", "dog,cat", "--out", "c", "--verify"]);
    assert!(!o.status.success() && stderr(&o).contains("checksum mismatch") && stderr(&o).contains("not the official archive"), "a re-packed archive fails --verify");
    assert!(dir.path().join("cifar.tar.gz").is_file(), "import never deletes the user's file");

    std::fs::write(folder.join("data_batch_3.bin"), vec![1u8; RECORD * 2 + 5]).unwrap();
    let o = gpu_cnn(dir.path(), &["dataset", "import", "extracted", "--classes", "dog,cat", "--out", "d"]);
    assert!(!o.status.success() && stderr(&o).contains("cifar-10-batches-bin/data_batch_3.bin") && stderr(&o).contains("whole number"));
    let mut bad = batch(4, &[3], 1);
    bad[RECORD] = 12;
    std::fs::write(folder.join("data_batch_3.bin"), bad).unwrap();
    let o = gpu_cnn(dir.path(), &["dataset", "import", "extracted", "--classes", "dog,cat", "--out", "d"]);
    assert!(!o.status.success() && stderr(&o).contains("label 12"));
    std::fs::write(folder.join("data_batch_3.bin"), batch(4, &[3], 1)).unwrap();
    std::fs::remove_file(folder.join("test_batch.bin")).unwrap();
    let o = gpu_cnn(dir.path(), &["dataset", "import", "extracted", "--classes", "dog,cat", "--out", "d"]);
    assert!(!o.status.success() && stderr(&o).contains("test_batch.bin is missing"));
    let o = gpu_cnn(dir.path(), &["dataset", "import", "cifar.tar.gz", "--classes", "dogs", "--out", "d"]);
    assert!(!o.status.success() && stderr(&o).contains("unknown CIFAR-10 class 'dogs'"));
    for (classes, message) in [("dog", "at least two classes"), ("dog,cat,dog", "'dog' is given twice")] {
        let o = gpu_cnn(dir.path(), &["dataset", "import", "cifar.tar.gz", "--classes", classes, "--out", "e"]);
        assert!(!o.status.success() && stderr(&o).contains(message) && !dir.path().join("e").exists(), "{classes}: {}", stderr(&o));
    }
}

#[test]
fn synth_stats_and_contact_sheets() {
    let dir = tempfile::tempdir().unwrap();
    let o = gpu_cnn(dir.path(), &["dataset", "synth", "--out", "s", "--train", "20", "--test", "6", "--size", "24"]);
    assert!(o.status.success());
    assert_eq!(count(&dir.path().join("s/training_set/crosses")), 10);
    assert_eq!(count(&dir.path().join("s/test_set/rings")), 3);
    let o = gpu_cnn(dir.path(), &["dataset", "synth", "--out", "s", "--train", "20", "--test", "6", "--size", "24"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("nothing to do"));

    // A hand-made folder is never replaced.
    std::fs::create_dir_all(dir.path().join("mine/training_set/cats")).unwrap();
    std::fs::write(dir.path().join("mine/training_set/cats/precious.png"), b"keep me").unwrap();
    let o = gpu_cnn(dir.path(), &["dataset", "synth", "--out", "mine"]);
    assert!(!o.status.success() && stderr(&o).contains("without a gpu-cnn marker"), "{}", stderr(&o));
    assert!(dir.path().join("mine/training_set/cats/precious.png").is_file());

    std::fs::write(dir.path().join("s/training_set/rings/broken.png"), b"not a png").unwrap();
    let quick = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.toml");
    let o = gpu_cnn(dir.path(), &["dataset", "stats", "s", "--out", "sheet.png", "--augment", quick.to_str().unwrap()]);
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("training_set: 21 images in 2 classes") && s.contains("24x24 (20)") && s.contains("corrupt: 1") && s.contains("broken.png"), "{s}");
    let (w, h) = gpu_cnn::dataset::stats::sheet_size(2);
    for sheet in ["sheet.png", "sheet-augmented.png"] {
        let img = image::open(dir.path().join(sheet)).unwrap();
        assert_eq!((img.width(), img.height()), (w, h), "{sheet}");
    }
    let plain = image::open(dir.path().join("sheet.png")).unwrap().to_rgb8();
    let augmented = image::open(dir.path().join("sheet-augmented.png")).unwrap().to_rgb8();
    assert_ne!(plain, augmented, "the augmented sheet shows different pixels");
}
