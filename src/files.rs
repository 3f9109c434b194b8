//! Output safety, one rule for every command that writes: a command never replaces a file or
//! folder it did not create in this run unless the user says so (`--overwrite`), never replaces
//! anything but a regular file (a device, fifo or socket stays what it is), never writes over
//! its own input or into a data folder, holds a lock on a run or dataset folder while it writes
//! there, and writes every file through a uniquely named temporary file (or staging folder) that
//! is removed on every error path and at a signal that ends the process ([`Temporary`]); a file
//! it replaces keeps its permissions.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

use crate::data::layout::Split;

/// The lock file a run (or dataset command) keeps in its folder while it writes there.
pub const LOCK_FILE: &str = ".gpu-cnn.lock";

#[derive(Debug, Error)]
pub enum OutputError {
    #[error("{path}: cannot write: {error}")]
    Write { path: PathBuf, error: std::io::Error },
    #[error("{0}: is a file, but the run's output must be a folder")]
    NotAFolder(PathBuf),
    #[error("{0}: is a folder, but the output must be a file")]
    IsAFolder(PathBuf),
    #[error("{path}: is a {kind}, not a regular file: an output never replaces one; choose another output")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{path}: lies inside the data folder {data}, where every file is read as a class or an image; choose an output outside it")]
    InData { path: PathBuf, data: PathBuf },
    #[error("{0}: already exists; pass --overwrite to replace it")]
    Exists(PathBuf),
    #[error("{path}: is this command's own input ({what}); choose another output")]
    OwnInput { path: PathBuf, what: String },
    #[error("{checkpoint}: --resume continues a run in the folder it was saved in, not in {dir} (the run's --out, or checkpoints/<config name>); pass --out {}, or --init to start a new run in {dir} from its weights", parent(checkpoint).map_or(".".into(), |p| p.display().to_string()))]
    ResumeElsewhere { checkpoint: PathBuf, dir: PathBuf },
    #[error("{dir}: already holds a run ({files})")]
    RunExists { dir: PathBuf, files: String },
    #[error("{dir}: another {writer} is writing here ({holder}); wait for it to finish or choose another --out (if no such process exists, delete {lock})")]
    Locked { dir: PathBuf, writer: &'static str, holder: String, lock: PathBuf },
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
    move |error| OutputError::Write { path: path.to_path_buf(), error }
}

/// A temporary file or folder: removed (with everything in it) when dropped, or at a signal
/// that ends the process, unless renamed into place with [`Temporary::persist`].
pub struct Temporary(Option<PathBuf>);

impl Temporary {
    /// Creates the file `path`, which must not exist yet.
    pub fn file(path: &Path) -> std::io::Result<(Self, std::fs::File)> {
        let file = crate::interrupt::create_temporary(path, || std::fs::OpenOptions::new().write(true).create_new(true).open(path))?;
        Ok((Self(Some(path.to_path_buf())), file))
    }

    /// Creates the folder `path`, which must not exist yet.
    pub fn folder(path: &Path) -> std::io::Result<Self> {
        crate::interrupt::create_temporary(path, || std::fs::create_dir(path))?;
        Ok(Self(Some(path.to_path_buf())))
    }

    pub fn path(&self) -> &Path {
        self.0.as_deref().expect("set until persisted or dropped")
    }

    /// Renames it to `to`; from then on it is no longer temporary.
    pub fn persist(mut self, to: &Path) -> std::io::Result<()> {
        crate::interrupt::rename_temporary(self.path(), to)?;
        self.0 = None;
        Ok(())
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            crate::interrupt::remove_temporary(&path);
        }
    }
}

/// A name next to `path` that no other writer (thread or process) uses: pid and a counter.
pub fn temp_name(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

fn parent(path: &Path) -> Option<&Path> {
    path.parent().filter(|d| !d.as_os_str().is_empty())
}

/// What the existing `path` is (following links) when it is not a regular file: a rename
/// would replace a device node, fifo or socket with a regular file (as root, `/dev/null`'s).
fn special_kind(path: &Path) -> Option<&'static str> {
    let kind = std::fs::metadata(path).ok()?.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let unix = [(kind.is_char_device(), "character device"), (kind.is_block_device(), "block device"), (kind.is_fifo(), "fifo"), (kind.is_socket(), "socket")];
        if let Some((_, name)) = unix.into_iter().find(|(is, _)| *is) {
            return Some(name);
        }
    }
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("folder")
    } else {
        Some("special file")
    }
}

/// Writes `bytes` to `path` through a uniquely named temporary file in the same folder, fsync
/// and rename: readers (and a later run after a power cut) see the old file or the new one,
/// never half, and a failed write leaves no temporary file behind. Only a regular file is
/// replaced, and the new one keeps its permissions (a resume leaves `-rw-------` files so).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(kind) = special_kind(path) {
        return Err(std::io::Error::other(format!("is a {kind}, not a regular file: an output never replaces one")));
    }
    if let Some(dir) = parent(path) {
        std::fs::create_dir_all(dir)?;
    }
    let (tmp, mut f) = Temporary::file(&temp_name(path))?;
    // Before any byte is written, so the contents are never more readable than the old file's.
    if let Ok(old) = std::fs::metadata(path) {
        f.set_permissions(old.permissions())?;
    }
    write_synced(&mut f, bytes)?;
    tmp.persist(path)?;
    sync_folder(parent(path).unwrap_or(Path::new(".")));
    Ok(())
}

/// Writes all of `bytes` to `file` and waits until they are on disk: a full disk fails here,
/// not later when the file is closed (where the error would be lost).
pub fn write_synced(file: &mut std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes the entries of `dir` (files created or renamed there) durable. Best effort: folders
/// cannot be opened for this on Windows.
pub fn sync_folder(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// `rgb` (w x h, 3 bytes a pixel) encoded as PNG, for `write_atomic`.
pub fn png_bytes(w: u32, h: u32, rgb: Vec<u8>) -> Result<Vec<u8>, String> {
    let img = image::RgbImage::from_raw(w, h, rgb).ok_or("the pixels do not match the size")?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png).map_err(|e| e.to_string())?;
    Ok(bytes.into_inner())
}

/// Whether two paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Creates `dir` if needed and proves it writable with a probe file.
fn check_writable(dir: &Path) -> Result<(), OutputError> {
    std::fs::create_dir_all(dir).map_err(write_error(dir))?;
    Temporary::file(&temp_name(&dir.join("probe"))).map_err(write_error(dir))?;
    Ok(())
}

/// `path` made absolute, its existing part with links resolved and the rest normalised, so
/// two spellings of one place (existing or not yet) compare equal.
fn resolved(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let parts: Vec<Component> = abs.components().collect();
    for split in (1..=parts.len()).rev() {
        let Ok(mut out) = parts[..split].iter().collect::<PathBuf>().canonicalize() else { continue };
        for part in &parts[split..] {
            match part {
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(name) => out.push(name),
                _ => {}
            }
        }
        return out;
    }
    abs
}

/// Refuses an output at `path` (a file or a run folder) inside a data folder: one of `data`
/// (the command's own) or any dataset's split folder, wherever it is. The loader reads every file under a split folder
/// as an image of a class, so a chart written there would become a training image.
pub fn check_outside_data(path: &Path, data: &[&Path]) -> Result<(), OutputError> {
    let at = resolved(path);
    let split_names = [Split::Training, Split::Test].map(Split::folder);
    let splits = at.ancestors().filter(|a| a.file_name().is_some_and(|n| split_names.iter().any(|s| n == *s)));
    let own = data.iter().map(|d| resolved(d)).filter(|d| at.starts_with(d));
    match own.chain(splits.map(Path::to_path_buf)).next() {
        Some(data) => Err(OutputError::InData { path: path.to_path_buf(), data }),
        None => Ok(()),
    }
}

/// Checks, before any work, that a command may write the file `path`: a regular file or
/// nothing, none of the command's `inputs` (path, what it is), inside no split folder (a
/// command that reads another data folder checks it with [`check_outside_data`]), not an
/// existing file unless `overwrite`, and its folder writable (created if missing).
pub fn check_output_file(path: &Path, overwrite: bool, inputs: &[(&Path, &str)]) -> Result<(), OutputError> {
    match special_kind(path) {
        Some("folder") => return Err(OutputError::IsAFolder(path.to_path_buf())),
        Some(kind) => return Err(OutputError::NotRegular { path: path.to_path_buf(), kind }),
        None => {}
    }
    if let Some((_, what)) = inputs.iter().find(|(input, _)| same_file(path, input)) {
        return Err(OutputError::OwnInput { path: path.to_path_buf(), what: what.to_string() });
    }
    check_outside_data(path, &[])?;
    if path.exists() && !overwrite {
        return Err(OutputError::Exists(path.to_path_buf()));
    }
    check_writable(parent(path).unwrap_or(Path::new(".")))
}

/// Whether `name` (a path relative to a folder, `/`-separated) matches `pattern`, where each
/// `{...}` field stands for any text.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    let mut literals = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        literals.push(&rest[..open]);
        let tail = rest;
        rest = tail[open..].find('}').map_or("", |close| &tail[open + close + 1..]);
    }
    literals.push(rest);
    let (first, last) = (literals[0], literals[literals.len() - 1]);
    if literals.len() == 1 {
        return name == first;
    }
    let Some(mut tail) = name.strip_prefix(first) else { return false };
    for lit in &literals[1..literals.len() - 1] {
        match tail.find(lit) {
            Some(i) => tail = &tail[i + lit.len()..],
            None => return false,
        }
    }
    tail.len() >= last.len() && tail.ends_with(last)
}

/// Files under `dir` (relative, `/`-separated), a few levels deep and at most a few thousand,
/// so a huge folder costs bounded time.
fn files_under(dir: &Path) -> Vec<String> {
    const MAX_FILES: usize = 10_000;
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new(), 0)];
    while let Some((path, prefix, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else { continue };
        for entry in entries.flatten() {
            if out.len() >= MAX_FILES {
                return out;
            }
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if depth < 4 {
                    stack.push((entry.path(), format!("{name}/"), depth + 1));
                }
            } else {
                out.push(name);
            }
        }
    }
    out
}

/// Who holds a folder's lock.
struct Holder {
    pid: u32,
    host: String,
    command: String,
}

impl Holder {
    fn me() -> Self {
        Self { pid: std::process::id(), host: hostname(), command: std::env::args().collect::<Vec<_>>().join(" ") }
    }
    fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        let pid = lines.next()?.strip_prefix("pid ")?.parse().ok()?;
        let host = lines.next()?.strip_prefix("host ")?.to_string();
        let command = lines.next()?.strip_prefix("command ")?.to_string();
        Some(Self { pid, host, command })
    }
    fn text(&self) -> String {
        format!("pid {}\nhost {}\ncommand {}\n", self.pid, self.host, self.command)
    }
    /// A lock whose process is gone (only knowable on this host, through /proc).
    fn is_stale(&self) -> bool {
        self.host == hostname() && Path::new("/proc/self").exists() && !Path::new("/proc").join(self.pid.to_string()).exists()
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown host".into())
}

/// The lock file of a folder, removed when dropped, or at a signal that ends the process.
struct Lock {
    _file: Temporary,
}

impl Lock {
    /// `writer` says who is refused ("run", "dataset command").
    fn take(dir: &Path, writer: &'static str) -> Result<Self, OutputError> {
        let path = dir.join(LOCK_FILE);
        let me = Holder::me();
        for attempt in 0..2 {
            match Temporary::file(&path) {
                Ok((lock, mut f)) => {
                    write_synced(&mut f, me.text().as_bytes()).map_err(write_error(&path))?;
                    return Ok(Self { _file: lock });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // A lock being written right now reads as empty: held, by someone unknown yet.
                    let holder = Holder::parse(&std::fs::read_to_string(&path).unwrap_or_default());
                    match holder {
                        Some(h) if attempt == 0 && h.is_stale() => {
                            log::warn!("{}: taking over the lock of pid {} on {}, which is no longer running ({})", dir.display(), h.pid, h.host, h.command);
                            std::fs::remove_file(&path).map_err(write_error(&path))?;
                        }
                        h => {
                            let holder = h.map_or("holder unknown".into(), |h| format!("pid {} on {}: {}", h.pid, h.host, h.command));
                            return Err(OutputError::Locked { dir: dir.to_path_buf(), writer, holder, lock: path });
                        }
                    }
                }
                Err(e) => return Err(write_error(&path)(e)),
            }
        }
        unreachable!("the second attempt either creates the lock or reports its holder")
    }
}

/// What a run will write into its folder, to decide whether the folder holds another run.
pub struct RunOutputs<'a> {
    /// Fixed names the run writes (history files, last checkpoint, ...).
    pub files: &'a [&'a str],
    /// Name patterns the run writes (`{epoch:02}` fields match anything).
    pub patterns: &'a [&'a str],
}

impl RunOutputs<'_> {
    /// Whether the run writes `name` (relative to its folder, `/`-separated).
    pub fn writes(&self, name: &str) -> bool {
        self.files.contains(&name) || self.patterns.iter().any(|p| matches_pattern(p, name))
    }
}

/// A folder created if needed and locked for as long as this value lives; the folders its
/// creation made are removed again if they are still empty when it is dropped.
pub struct LockedFolder {
    dir: PathBuf,
    // Fields drop in order: the lock goes before the folders it sits in.
    _lock: Lock,
    _created: Created,
}

impl LockedFolder {
    /// Creates and locks `dir` for a `writer` ("run", "dataset command"): refuses a file, an
    /// unwritable folder, and a folder another live process has locked.
    pub fn take(dir: &Path, writer: &'static str) -> Result<Self, OutputError> {
        if dir.is_file() {
            return Err(OutputError::NotAFolder(dir.to_path_buf()));
        }
        let created = Created::create(dir)?;
        let lock = Lock::take(dir, writer)?;
        Ok(Self { dir: dir.to_path_buf(), _lock: lock, _created: created })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// A run's output folder, validated and locked for as long as this value lives.
pub struct RunFolder(LockedFolder);

/// The folders a claim created, deepest first: removed when dropped (or at a signal that ends
/// the process) if still empty, so a run stopped before its first output leaves nothing behind.
struct Created(Vec<PathBuf>);

impl Created {
    /// Creates `dir` one level at a time, recording each level this call created.
    fn create(dir: &Path) -> Result<Self, OutputError> {
        let mut created = Self(Vec::new());
        let levels: Vec<&Path> = dir.ancestors().filter(|d| !d.as_os_str().is_empty()).collect();
        for level in levels.into_iter().rev() {
            match std::fs::create_dir(level) {
                Ok(()) => {
                    crate::interrupt::created_folder(level);
                    created.0.insert(0, level.to_path_buf());
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && level.is_dir() => {}
                Err(e) => return Err(write_error(level)(e)),
            }
        }
        Ok(created)
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        self.0.iter().for_each(|dir| crate::interrupt::remove_folder(dir));
    }
}

impl RunFolder {
    /// Claims `dir` for a run that writes `outputs`: refuses a file, a folder inside a data
    /// folder (`data`, the run's, or any other), an unwritable folder, a folder another live run
    /// has locked, and (unless `overwrite`, or the run `continues` the one in the folder) a
    /// folder that already holds files the run would write.
    pub fn claim(dir: &Path, outputs: &RunOutputs, data: &[&Path], continues: bool, overwrite: bool) -> Result<Self, OutputError> {
        check_outside_data(dir, data)?;
        let folder = LockedFolder::take(dir, "run")?;
        // Anything but a regular file where the run writes one would stop it at its first
        // epoch's end.
        let entries = std::fs::read_dir(dir).map_err(write_error(dir))?.flatten().filter(|e| outputs.writes(&e.file_name().to_string_lossy()));
        for path in entries.map(|e| e.path()) {
            match special_kind(&path) {
                Some("folder") => return Err(OutputError::IsAFolder(path)),
                Some(kind) => return Err(OutputError::NotRegular { path, kind }),
                None => {}
            }
        }
        if !continues && !overwrite {
            let existing: Vec<String> = files_under(dir)
                .into_iter()
                .filter(|f| outputs.writes(f))
                .collect();
            if !existing.is_empty() {
                let mut files = existing;
                files.sort();
                return Err(OutputError::RunExists { dir: dir.to_path_buf(), files: files.join(", ") });
            }
        }
        Ok(Self(folder))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl std::ops::Deref for RunFolder {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

/// The path of the existing `file` relative to `dir` (`/`-separated), if it lies under `dir`.
pub fn relative_in(file: &Path, dir: &Path) -> Option<String> {
    let (file, dir) = (file.canonicalize().ok()?, dir.canonicalize().ok()?);
    let rel = file.strip_prefix(dir).ok()?;
    Some(rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_their_fields_anywhere() {
        assert!(matches_pattern("best.safetensors", "best.safetensors"));
        assert!(!matches_pattern("best.safetensors", "best.safetensors.bak"));
        let p = "{name}-weights-{epoch:02}-{val_acc:.2}.safetensors";
        assert!(matches_pattern(p, "m-weights-03-0.75.safetensors"));
        assert!(!matches_pattern(p, "m-weights-03-0.75.json"));
        assert!(matches_pattern("w/{epoch}.st", "w/7.st"));
        assert!(!matches_pattern("ab{x}ba", "aba"));
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        std::fs::create_dir_all(target.join("inside")).unwrap();
        assert!(write_atomic(&target, b"x").is_err(), "a non-empty folder cannot be replaced by a file");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["out"], "{left:?}");
    }

    #[cfg(unix)]
    #[test]
    fn only_a_regular_file_is_replaced_and_it_keeps_its_permissions() {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        std::os::unix::fs::symlink(&fifo, dir.path().join("link")).unwrap();
        for path in [&fifo, &dir.path().join("link")] {
            let e = write_atomic(path, b"x").unwrap_err();
            assert!(e.to_string().contains("is a fifo, not a regular file"), "{e}");
            assert!(std::fs::metadata(path).unwrap().file_type().is_fifo());
            assert!(matches!(check_output_file(path, true, &[]), Err(OutputError::NotRegular { kind: "fifo", .. })));
        }
        let private = dir.path().join("private");
        std::fs::write(&private, "old").unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&private, b"new").unwrap();
        assert_eq!(std::fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&private).unwrap(), b"new");
    }

    #[test]
    fn no_output_lies_inside_a_data_folder() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("pics");
        std::fs::create_dir_all(data.join("cats")).unwrap();
        for (path, own) in [("data/training_set/cats/run", &[][..]), ("x/test_set", &[][..]), ("pics/cats/new/../run", &[data.as_path()][..]), ("./pics/run", &[data.as_path()][..])] {
            let e = check_outside_data(&dir.path().join(path), own).unwrap_err();
            assert!(matches!(e, OutputError::InData { .. }), "{path}: {e}");
        }
        check_outside_data(&dir.path().join("pics/../run"), &[&data]).unwrap();
        check_outside_data(&dir.path().join("training_sets/run"), &[&data]).unwrap();
    }

    #[test]
    fn a_run_folder_is_locked_and_refuses_a_previous_run() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let outputs = RunOutputs { files: &["history.json"], patterns: &["{epoch}.st"] };
        let first = RunFolder::claim(&run, &outputs, &[], false, false).unwrap();
        let e = RunFolder::claim(&run, &outputs, &[], false, true).err().unwrap();
        assert!(matches!(e, OutputError::Locked { .. }) && e.to_string().contains(&format!("pid {}", std::process::id())), "{e}");
        std::fs::write(run.join("3.st"), "x").unwrap();
        drop(first);
        assert!(!run.join(LOCK_FILE).exists());
        let e = RunFolder::claim(&run, &outputs, &[], false, false).err().unwrap();
        assert!(matches!(e, OutputError::RunExists { ref files, .. } if files == "3.st"), "{e}");
        RunFolder::claim(&run, &outputs, &[], true, false).unwrap();
        RunFolder::claim(&run, &outputs, &[], false, true).unwrap();
        // A lock left by a process that is gone is taken over.
        let dead = Holder { pid: u32::MAX - 1, host: hostname(), command: "gpu-cnn train".into() };
        std::fs::write(run.join(LOCK_FILE), dead.text()).unwrap();
        RunFolder::claim(&run, &outputs, &[], true, false).unwrap();
        std::fs::write(dir.path().join("file"), "x").unwrap();
        assert!(matches!(RunFolder::claim(&dir.path().join("file"), &outputs, &[], false, true), Err(OutputError::NotAFolder(_))));
        for name in ["history.json", "7.st"] {
            std::fs::create_dir(run.join(name)).unwrap();
            assert!(matches!(RunFolder::claim(&run, &outputs, &[], false, true), Err(OutputError::IsAFolder(_))), "{name}");
            std::fs::remove_dir(run.join(name)).unwrap();
        }
        // A claim that wrote nothing removes the folders it created, and only those.
        drop(RunFolder::claim(&dir.path().join("a/b"), &outputs, &[], false, false).unwrap());
        assert!(!dir.path().join("a").exists());
        drop(RunFolder::claim(&run.join("sub"), &outputs, &[], false, false).unwrap());
        assert!(!run.join("sub").exists() && run.join("3.st").is_file());
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        drop(RunFolder::claim(&dir.path().join("new/../empty"), &outputs, &[], false, false).unwrap());
        assert!(dir.path().join("empty").is_dir() && !dir.path().join("new").exists());
    }

    #[test]
    fn an_output_file_is_never_an_input_or_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.safetensors");
        std::fs::write(&input, "x").unwrap();
        let same = dir.path().join(".").join("in.safetensors");
        assert!(matches!(check_output_file(&same, true, &[(&input, "--from")]), Err(OutputError::OwnInput { .. })));
        assert!(matches!(check_output_file(&input, false, &[]), Err(OutputError::Exists(_))));
        check_output_file(&input, true, &[]).unwrap();
        check_output_file(&dir.path().join("new/deeper/out.st"), false, &[(&input, "--from")]).unwrap();
        assert!(matches!(check_output_file(dir.path(), true, &[]), Err(OutputError::IsAFolder(_))));
    }
}
