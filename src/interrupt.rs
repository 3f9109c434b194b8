//! Ctrl-C and termination signals (SIGINT; SIGTERM, which `kill`, `timeout` and Slurm's
//! `scancel` send; SIGHUP). While a training loop listens ([`listen`]), a signal asks it to stop
//! after its step with a resumable checkpoint. Otherwise (loading data, between an experiment's
//! runs), or at a second signal, the process exits at once. Either way no run folder stays
//! locked: the locks the process holds ([`hold`]) are removed before it exits.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Exit status after an interruption (128 + SIGINT, as shells report Ctrl-C).
pub const EXIT_STATUS: i32 = 130;

static LOCKS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static LISTENER: Mutex<Option<Arc<AtomicBool>>> = Mutex::new(None);

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs the process's handler; once, at start (ctrlc allows one per process). The handler
/// runs on a thread of its own, not in signal context, so it may lock and remove files.
pub fn install() -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(|| {
        let listener = locked(&LISTENER).clone();
        // The first signal a loop hears stops it gracefully; it ends the process itself.
        if listener.is_some_and(|stop| !stop.swap(true, Ordering::SeqCst)) {
            return;
        }
        for path in locked(&LOCKS).drain(..) {
            let _ = std::fs::remove_file(path);
        }
        eprintln!("Interrupted");
        std::process::exit(EXIT_STATUS);
    })
}

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

/// Registers a lock file for removal if a signal ends the process.
pub(crate) fn hold(path: &Path) {
    locked(&LOCKS).push(path.to_path_buf());
}

/// Unregisters a lock file (before its owner removes it, so a signal never removes a lock that
/// another process has taken since).
pub(crate) fn release(path: &Path) {
    locked(&LOCKS).retain(|p| p != path);
}
