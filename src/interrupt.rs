//! Ctrl-C and termination signals (SIGINT; SIGTERM, which `kill`, `timeout` and Slurm's
//! `scancel` send; SIGHUP), and a closed stdout, which ends a run the same way
//! ([`crate::console`]). While a training loop listens ([`listen`]), a signal asks it to stop
//! after its step with a resumable checkpoint. Otherwise (loading data, between an experiment's
//! runs), or at a second signal (a second or more after the first), the process exits at once.
//! Either way nothing temporary stays: the lock files, temporary files and staging folders the
//! process holds ([`create_temporary`]) are removed before it exits, and so are the folders its
//! claims created while still empty.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Exit status after an interruption (128 + SIGINT, as shells report Ctrl-C).
pub const EXIT_STATUS: i32 = 130;

/// Lock files, temporary files and staging folders, removed whole at a signal.
static TEMPORARY: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Held while a few renames must happen all or none ([`uninterrupted`]); a signal waits for it.
static WHOLE: Mutex<()> = Mutex::new(());
/// Folders a run folder's claim created, removed (when empty) with the locks.
static FOLDERS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static LISTENER: Mutex<Option<Arc<AtomicBool>>> = Mutex::new(None);
/// Set once a listening loop has been asked to stop: the process is on its way out.
static REQUESTED: AtomicBool = AtomicBool::new(false);
/// When the stop was asked for: a signal within [`REPEAT`] of it is the same request delivered
/// twice (`timeout` signals the process and then its whole group), not a second one.
static ASKED: Mutex<Option<Instant>> = Mutex::new(None);
const REPEAT: Duration = Duration::from_secs(1);

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs the process's handler; once, at start (ctrlc allows one per process). The handler
/// runs on a thread of its own, not in signal context, so it may lock and remove files. A
/// signal the process was started ignoring (`nohup` ignores SIGHUP) stays ignored.
pub fn install() -> Result<(), ctrlc::Error> {
    let ignored = ignored_signals();
    ctrlc::set_handler(|| request("Interrupted"))?;
    restore_ignored(&ignored);
    Ok(())
}

/// What a signal does, and a closed stdout ([`crate::console`]): the first request a listening
/// loop hears stops it gracefully, and it ends the process itself; any other (outside a loop,
/// or a second one) removes this process's locks, temporaries and claimed folders, says `why`
/// on stderr and ends the process at once.
pub fn request(why: &str) {
    if locked(&ASKED).is_some_and(|t| t.elapsed() < REPEAT) {
        return;
    }
    if locked(&LISTENER).clone().is_some_and(|stop| !stop.swap(true, Ordering::SeqCst)) {
        REQUESTED.store(true, Ordering::SeqCst);
        *locked(&ASKED) = Some(Instant::now());
        return;
    }
    // Held until the process ends: no lock, temporary or folder is taken or released in
    // between. WHOLE first, so a request lands before or after an uninterrupted step.
    let (_whole, mut temporary, mut folders) = (locked(&WHOLE), locked(&TEMPORARY), locked(&FOLDERS));
    for path in temporary.drain(..) {
        remove(&path);
    }
    // Deepest first; a folder the run wrote into is not empty, and stays.
    folders.sort_by_key(|f| std::cmp::Reverse(f.components().count()));
    for folder in folders.drain(..) {
        let _ = std::fs::remove_dir(folder);
    }
    // Stderr may be gone too (a hangup, `2>&1 | head`): nothing to report then.
    crate::errln!("{why}");
    exit_now();
}

/// Whether a signal asked a training loop to stop (an experiment starts no further run).
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Ends the process without running exit handlers: the main thread may be inside the GPU
/// driver, whose own handlers must not run beside it.
fn exit_now() -> ! {
    #[cfg(unix)]
    // SAFETY: _exit only ends the process; it touches no Rust state.
    unsafe {
        libc::_exit(EXIT_STATUS)
    }
    #[cfg(not(unix))]
    std::process::exit(EXIT_STATUS)
}

#[cfg(unix)]
fn ignored_signals() -> Vec<libc::c_int> {
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP]
        .into_iter()
        .filter(|&signal| {
            // SAFETY: a query (no new action) into a zeroed sigaction.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN }
        })
        .collect()
}

#[cfg(unix)]
fn restore_ignored(signals: &[libc::c_int]) {
    for &signal in signals {
        // SAFETY: sets the default "ignore" disposition, which needs no handler.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
}

#[cfg(not(unix))]
fn ignored_signals() -> Vec<i32> {
    Vec::new()
}

#[cfg(not(unix))]
fn restore_ignored(_: &[i32]) {}

/// A stop request for a training loop to poll, set by the first signal while this value lives.
pub struct Listener(Arc<AtomicBool>);

/// Makes the next signal a stop request instead of an immediate exit.
pub fn listen() -> Listener {
    let stop = Arc::new(AtomicBool::new(false));
    *locked(&LISTENER) = Some(stop.clone());
    Listener(stop)
}

impl Listener {
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut listener = locked(&LISTENER);
        if listener.as_ref().is_some_and(|l| Arc::ptr_eq(l, &self.0)) {
            *listener = None;
        }
    }
}

/// Registers a folder a claim created, for removal (if empty) if a signal ends the process.
pub(crate) fn created_folder(path: &Path) {
    locked(&FOLDERS).push(path.to_path_buf());
}

/// Removes the folder `path` if it is empty, and unregisters it, both at once.
pub(crate) fn remove_folder(path: &Path) {
    let mut folders = locked(&FOLDERS);
    let _ = std::fs::remove_dir(path);
    folders.retain(|p| p != path);
}

/// Runs `step` (a few renames that belong together) with signals held off until it returns:
/// a signal's cleanup sees all of them done or none.
pub(crate) fn uninterrupted<T>(step: impl FnOnce() -> T) -> T {
    let _whole = locked(&WHOLE);
    step()
}

/// Creates the temporary file or folder `path` (a lock file, a file written before its rename
/// into place, a staging folder) with `create` and registers it for removal if a signal ends the
/// process, both at once: a signal never removes what this process did not create.
pub(crate) fn create_temporary<T>(path: &Path, create: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut temporary = locked(&TEMPORARY);
    let made = create()?;
    temporary.push(path.to_path_buf());
    Ok(made)
}

/// Removes the temporary `path` (a file, or a folder with everything in it) and unregisters it,
/// both at once.
pub(crate) fn remove_temporary(path: &Path) {
    let mut temporary = locked(&TEMPORARY);
    remove(path);
    temporary.retain(|p| p != path);
}

/// Renames the temporary `from` into place at `to`, after which a signal leaves it, both at once.
pub(crate) fn rename_temporary(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut temporary = locked(&TEMPORARY);
    std::fs::rename(from, to)?;
    temporary.retain(|p| p != from);
    Ok(())
}

fn remove(path: &Path) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        // A writer still adding files inside can make a pass fail (the folder is not empty);
        // it adds none once their folder is gone, so the passes end (a few on a loaded
        // machine: three were once not enough).
        for _ in 0..100 {
            if std::fs::remove_dir_all(path).is_ok() || std::fs::symlink_metadata(path).is_err() {
                break;
            }
        }
    } else {
        let _ = std::fs::remove_file(path);
    }
}
