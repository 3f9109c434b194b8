//! `gpu-cnn dataset`: a small CIFAR-format archive made here, served from a loopback HTTP server
//! this test starts (fetch end to end, checksum mismatch, truncated download, stalled server,
//! proxy messages, rerun as a no-op), import from the archive and from a folder, synth, stats and
//! contact sheets; and the faults: a full disk, a signal and a second writer in the middle of a
//! write.

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

/// The binary in `dir`, with no proxy from the test's environment.
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gpu-cnn"));
    c.args(args).current_dir(dir);
    for v in ["ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"] {
        c.env_remove(v);
    }
    c
}

fn run(mut c: Command) -> Output {
    let out = c.output().unwrap();
    let args: Vec<String> = c.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    eprintln!("$ gpu-cnn {}\n{}{}", args.join(" "), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

fn gpu_cnn(dir: &Path, args: &[&str]) -> Output {
    run(command(dir, args))
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

/// Everything under `dir` (relative paths), empty when it does not exist.
#[cfg(unix)]
fn tree(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(dir).min_depth(1).into_iter().flatten().map(|e| e.path().strip_prefix(dir).unwrap().display().to_string()).collect();
    v.sort();
    v
}

/// Checks that `dir` holds a whole dataset: each count its marker lists, every image decodable.
#[cfg(unix)]
fn assert_complete(dir: &Path) -> serde_json::Value {
    let marker: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(".gpu-cnn-dataset.json")).unwrap()).unwrap();
    for c in marker["counts"].as_array().unwrap() {
        let folder = dir.join(c[0].as_str().unwrap()).join(c[1].as_str().unwrap());
        assert_eq!(count(&folder), c[2].as_u64().unwrap() as usize, "{}", folder.display());
        for f in std::fs::read_dir(&folder).unwrap() {
            image::open(f.unwrap().path()).unwrap();
        }
    }
    assert_eq!(tree(dir).iter().filter(|f| !f.starts_with("training_set") && !f.starts_with("test_set")).collect::<Vec<_>>(), [".gpu-cnn-dataset.json"], "nothing but the splits and the marker");
    marker
}

/// Runs the binary with every file it writes limited to `bytes` (RLIMIT_FSIZE, with SIGXFSZ
/// ignored): a write past the limit fails with EFBIG as one on a full disk fails with ENOSPC.
#[cfg(unix)]
fn with_file_limit(mut c: Command, bytes: u64) -> Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit and signal are async-signal-safe.
    unsafe {
        c.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: bytes as libc::rlim_t, rlim_max: bytes as libc::rlim_t };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    c
}

#[cfg(unix)]
#[test]
fn a_failed_write_leaves_nothing_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cifar.tar.gz"), archive()).unwrap();
    let import = ["dataset", "import", "cifar.tar.gz", "--classes", "cat,dog", "--out", "data"];
    let synth = ["dataset", "synth", "--out", "synth", "--train", "40", "--test", "10", "--size", "32"];
    for (args, out) in [(&import[..], "data"), (&synth[..], "synth")] {
        // Room for the lock and the marker, not for an image.
        let o = run(with_file_limit(command(dir.path(), args), 600));
        assert!(!o.status.success(), "a failed image write is a failed command");
        assert!(stderr(&o).contains(".png") && stderr(&o).contains("File too large"), "names the file and the error: {}", stderr(&o));
        assert_eq!(tree(&dir.path().join(out)), Vec::<String>::new(), "nothing under the final names, no staging, no lock");
        let o = gpu_cnn(dir.path(), args);
        assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Wrote"), "a rerun with room finishes it");
        assert_complete(&dir.path().join(out));
    }
}

/// A CIFAR batch folder big enough that importing it takes a while: `n` records a batch.
#[cfg(unix)]
fn big_source(dir: &Path, n: usize) {
    let folder = dir.join("big/cifar-10-batches-bin");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 1..=5 {
        std::fs::write(folder.join(format!("data_batch_{i}.bin")), batch(n, &[3, 5, 6], i)).unwrap();
    }
    std::fs::write(folder.join("test_batch.bin"), batch(9, &[3, 5, 6], 9)).unwrap();
}

/// Waits until the first image appears anywhere under `dir` (fails if the process ends first).
#[cfg(unix)]
fn wait_for_images(dir: &Path, child: &mut std::process::Child) {
    let start = std::time::Instant::now();
    while !tree(dir).iter().any(|f| f.ends_with(".png")) {
        assert!(child.try_wait().unwrap().is_none(), "the process ended before writing images");
        assert!(start.elapsed().as_secs() < 60, "no image appeared");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[cfg(unix)]
fn signal(child: &std::process::Child, signal: libc::c_int) {
    // SAFETY: sends a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

#[cfg(unix)]
#[test]
fn two_imports_into_one_folder_one_is_refused() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    big_source(dir.path(), 300);
    let import = |seed: &str| command(dir.path(), &["dataset", "import", "big", "--classes", "cat,dog", "--out", "data", "--seed", seed]);
    let mut first = import("1").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = first.id();
    wait_for_images(&dir.path().join("data"), &mut first);
    // Paused mid-write, so the second surely runs beside it.
    signal(&first, libc::SIGSTOP);
    assert!(!dir.path().join("data/.gpu-cnn-dataset.json").exists(), "the first import was paused mid-write");
    let second = run(import("2"));
    signal(&first, libc::SIGCONT);
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(!second.status.success());
    let e = stderr(&second);
    assert!(e.contains("another dataset command is writing here") && e.contains(&format!("pid {pid} on ")) && e.contains("--seed 1"), "{e}");
    let marker = assert_complete(&dir.path().join("data"));
    assert_eq!(marker["split"], "seed 1", "the first import's dataset, whole");
    // The second, rerun, is refused by the first's marker, and changes nothing.
    let o = run(import("2"));
    assert!(!o.status.success() && stderr(&o).contains("another dataset"), "{}", stderr(&o));
    assert_complete(&dir.path().join("data"));
}

#[cfg(unix)]
#[test]
fn a_signal_mid_write_leaves_nothing_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    big_source(dir.path(), 300);
    let args = ["dataset", "import", "big", "--classes", "cat,dog", "--out", "data"];
    let mut child = command(dir.path(), &args).stdout(std::process::Stdio::null()).spawn().unwrap();
    wait_for_images(&dir.path().join("data"), &mut child);
    signal(&child, libc::SIGTERM);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(tree(&dir.path().join("data")), Vec::<String>::new(), "no staging folder, no lock, no images");
    assert!(gpu_cnn(dir.path(), &args).status.success());
    assert_complete(&dir.path().join("data"));
}

#[cfg(unix)]
#[test]
fn a_rerun_finishes_the_renames_a_kill_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cifar.tar.gz"), archive()).unwrap();
    let import = |seed| ["dataset", "import", "cifar.tar.gz", "--classes", "cat,dog", "--out", "data", "--seed", seed];
    assert!(gpu_cnn(dir.path(), &import("1")).status.success());
    // What a kill -9 between the two renames leaves: training_set in place, test_set and the
    // marker still in the staging folder, and the lock of a process that is gone.
    let data = dir.path().join("data");
    let staging = data.join(".gpu-cnn-dataset.partial");
    std::fs::create_dir(&staging).unwrap();
    std::fs::rename(data.join("test_set"), staging.join("test_set")).unwrap();
    std::fs::rename(data.join(".gpu-cnn-dataset.json"), staging.join(".gpu-cnn-dataset.json")).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(data.join(".gpu-cnn.lock"), format!("pid {}\nhost {}\ncommand gpu-cnn dataset import\n", u32::MAX - 1, host.trim())).unwrap();
    let o = gpu_cnn(dir.path(), &import("2"));
    assert!(!o.status.success() && stderr(&o).contains("an unfinished write of another dataset (cifar10 cat,dog split seed 1)"), "{}", stderr(&o));
    let o = gpu_cnn(dir.path(), &import("1"));
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Wrote data"));
    assert_eq!(assert_complete(&data)["split"], "seed 1");
}

/// A server that answers with headers for a large body, sends a little of it, then stalls
/// with the connection open for 20 s.
fn stalling_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(10) {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
                let _ = s.write_all(&[7u8; 1000]);
                std::thread::sleep(std::time::Duration::from_secs(20));
            });
        }
    });
    base
}

#[test]
fn a_stalled_download_ends_within_its_timeout_and_leaves_no_temporary_file() {
    let base = stalling_server();
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let o = gpu_cnn(dir.path(), &["dataset", "fetch", "cifar10", "--classes", "cat,dog", "--out", "data", "--url", &format!("{base}/stall.tar.gz"), "--timeout", "1"]);
    let took = start.elapsed().as_secs_f32();
    assert!(!o.status.success());
    assert!(took < 10.0, "took {took} s with --timeout 1");
    let e = stderr(&o);
    assert!(e.contains("broke off after 1000 bytes") && e.contains("no data for 1 s (--timeout)") && e.contains("dataset import"), "{e}");
    assert_eq!(count(&dir.path().join("data")), 0, "no temporary file");
}

#[cfg(unix)]
#[test]
fn an_interrupted_download_leaves_no_temporary_file() {
    let base = stalling_server();
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(dir.path(), &["dataset", "fetch", "cifar10", "--classes", "cat,dog", "--out", "data", "--url", &format!("{base}/stall.tar.gz")]).stderr(std::process::Stdio::null()).spawn().unwrap();
    let start = std::time::Instant::now();
    while count(&dir.path().join("data")) == 0 {
        assert!(start.elapsed().as_secs() < 30 && child.try_wait().unwrap().is_none(), "the download never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    signal(&child, libc::SIGINT);
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert_eq!(tree(&dir.path().join("data")), Vec::<String>::new());
}

#[test]
fn an_unreachable_proxy_is_named_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let fetch = ["dataset", "fetch", "cifar10", "--classes", "cat,dog", "--out", "data", "--url", "http://example.invalid/cifar.tar.gz", "--timeout", "5"];
    let with_flag = [&fetch[..], &["--proxy", "http://127.0.0.1:9"]].concat();
    let mut with_env = command(dir.path(), &fetch);
    with_env.env("HTTPS_PROXY", "http://127.0.0.1:9");
    for (o, from) in [(gpu_cnn(dir.path(), &with_flag), "from --proxy"), (run(with_env), "from $HTTPS_PROXY")] {
        let e = stderr(&o);
        assert!(!o.status.success());
        assert!(e.contains(&format!("through the proxy 127.0.0.1:9 {from}")) && e.contains("pass another with --proxy") && e.contains("dataset import"), "{e}");
        assert!(!e.contains("set HTTPS_PROXY"), "the proxy is set already: {e}");
    }
}
