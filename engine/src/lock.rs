//! Repository locks. Commands that write take a shared lock (backup, key
//! changes) or an exclusive one (prune, repair); readers take a shared one
//! so that no exclusive operation deletes what they read.
//!
//! A lock is a file in `locks/`, refreshed (rewritten under a new name) at
//! a fixed interval while held. A lock is stale when its time is older than
//! the stale limit, or when it was taken on this host by a process that no
//! longer exists. If refreshing fails for long enough that others could
//! take the lock for stale, the holder is told to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::format::{FileType, Role};
use crate::id::Id;
use crate::repofile::{open_metadata, seal_metadata};
use crate::repository::{file_name, Repository, LOCKS};

/// The lock file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub time: DateTime<Utc>,
    pub exclusive: bool,
    pub hostname: String,
    pub username: String,
    pub pid: u32,
}

/// Timing of locks.
#[derive(Debug, Clone, Copy)]
pub struct LockTiming {
    /// How often a held lock is rewritten.
    pub refresh: Duration,
    /// Age after which another process may take a lock for abandoned.
    pub stale: Duration,
}

impl Default for LockTiming {
    fn default() -> Self {
        LockTiming {
            refresh: Duration::from_secs(5 * 60),
            stale: Duration::from_secs(30 * 60),
        }
    }
}

impl LockInfo {
    fn is_stale(&self, timing: &LockTiming) -> bool {
        let age = Utc::now().signed_duration_since(self.time);
        if age.to_std().map(|a| a > timing.stale).unwrap_or(false) {
            return true;
        }
        self.hostname == crate::host::hostname() && !process_exists(self.pid)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} lock by {}@{} (pid {}) since {}",
            if self.exclusive {
                "exclusive"
            } else {
                "shared"
            },
            self.username,
            self.hostname,
            self.pid,
            self.time.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

fn process_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::ESRCH) => false,
        Err(_) => true,
    }
}

/// Tells long operations to stop: on SIGINT/SIGTERM, or when the lock they
/// hold could no longer be refreshed.
#[derive(Clone)]
pub struct Cancel {
    interrupted: &'static AtomicBool,
    lock_lost: Arc<AtomicBool>,
}

impl Cancel {
    pub fn new(interrupted: &'static AtomicBool) -> Cancel {
        Cancel {
            interrupted,
            lock_lost: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Never cancels (tests, library use).
    pub fn never() -> Cancel {
        static NEVER: AtomicBool = AtomicBool::new(false);
        Cancel::new(&NEVER)
    }

    pub fn is_cancelled(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed) || self.lock_lost.load(Ordering::Relaxed)
    }

    pub fn check(&self) -> Result<()> {
        if self.lock_lost.load(Ordering::Relaxed) {
            return Err(Error::Locked(
                "the repository lock could not be refreshed and may be taken by others; stopped"
                    .into(),
            ));
        }
        if self.interrupted.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        Ok(())
    }
}

struct Shared {
    path: Mutex<String>,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// A held lock; released when dropped.
pub struct LockGuard {
    backend: Arc<dyn Backend>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn read_lock(
    repo_key: &MasterKey,
    repo_id: &Id,
    backend: &dyn Backend,
    path: &str,
) -> Result<LockInfo> {
    let b = backend.read(path)?;
    crate::repository::check_name(path, &b)?;
    open_metadata(repo_key, repo_id, FileType::Lock, Role::Lock, &b, path)
}

/// Lock files that could be read, and those that could not, by path.
pub type LockListing = (Vec<(String, LockInfo)>, Vec<(String, Error)>);

/// The locks currently in the repository, with their paths.
pub fn list_locks(repo: &Repository) -> Result<LockListing> {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for f in repo.backend().list(LOCKS)? {
        match read_lock(repo.key(), repo.id(), repo.backend().as_ref(), &f.path) {
            Ok(l) => ok.push((f.path, l)),
            Err(e) if e.is_not_found() => {}
            Err(e) => bad.push((f.path, e)),
        }
    }
    Ok((ok, bad))
}

/// Removes stale locks (or all locks); returns how many were removed.
pub fn remove_locks(repo: &Repository, all: bool, timing: &LockTiming) -> Result<usize> {
    let (locks, bad) = list_locks(repo)?;
    let mut n = 0;
    for (path, l) in locks {
        if all || l.is_stale(timing) {
            repo.backend().delete(&path)?;
            n += 1;
        }
    }
    if all {
        for (path, _) in bad {
            repo.backend().delete(&path)?;
            n += 1;
        }
    }
    Ok(n)
}

fn conflicting(
    repo: &Repository,
    exclusive: bool,
    own: Option<&str>,
    timing: &LockTiming,
) -> Result<Option<String>> {
    let (locks, bad) = list_locks(repo)?;
    for (path, l) in locks {
        if Some(path.as_str()) == own || l.is_stale(timing) {
            continue;
        }
        if exclusive || l.exclusive {
            return Ok(Some(format!("{} ({})", l.describe(), file_name(&path))));
        }
    }
    if exclusive {
        if let Some((path, e)) = bad.into_iter().next() {
            return Ok(Some(format!("unreadable lock {path}: {e}")));
        }
    }
    Ok(None)
}

fn write_lock(
    key: &MasterKey,
    repo_id: &Id,
    backend: &dyn Backend,
    exclusive: bool,
) -> Result<String> {
    let info = LockInfo {
        time: Utc::now(),
        exclusive,
        hostname: crate::host::hostname(),
        username: crate::host::username(),
        pid: std::process::id(),
    };
    let b = seal_metadata(key, repo_id, FileType::Lock, Role::Lock, &info);
    let path = format!("{LOCKS}{}", Id::of_stored(&b));
    backend.write(&path, b)?;
    Ok(path)
}

/// Takes a lock, waiting up to `retry` for conflicting locks to go away.
pub fn lock(
    repo: &Repository,
    exclusive: bool,
    retry: Duration,
    timing: LockTiming,
    cancel: &Cancel,
) -> Result<LockGuard> {
    let deadline = Instant::now() + retry;
    let mut wait = Duration::from_millis(500);
    loop {
        cancel.check()?;
        let conflict = match conflicting(repo, exclusive, None, &timing)? {
            None => {
                let path = write_lock(repo.key(), repo.id(), repo.backend().as_ref(), exclusive)?;
                // Another process may have written its lock at the same
                // time: look again, and back off if so.
                match conflicting(repo, exclusive, Some(&path), &timing)? {
                    None => return Ok(start_refresh(repo, path, exclusive, timing, cancel)),
                    Some(c) => {
                        let _ = repo.backend().delete(&path);
                        c
                    }
                }
            }
            Some(c) => c,
        };
        if Instant::now() >= deadline {
            return Err(Error::Locked(format!("{} is held: {conflict} (wait with --retry-lock, or remove stale locks with `cairn unlock`)", repo.location())));
        }
        std::thread::sleep(wait.min(deadline.saturating_duration_since(Instant::now())));
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

fn start_refresh(
    repo: &Repository,
    path: String,
    exclusive: bool,
    timing: LockTiming,
    cancel: &Cancel,
) -> LockGuard {
    let shared = Arc::new(Shared {
        path: Mutex::new(path),
        stop: Mutex::new(false),
        wake: Condvar::new(),
    });
    let backend = repo.backend().clone();
    let key = repo.key().clone();
    let repo_id = *repo.id();
    let lost = cancel.lock_lost.clone();
    let s = shared.clone();
    let tb = backend.clone();
    let thread = std::thread::Builder::new()
        .name("cairn-lock".into())
        .spawn(move || {
            let mut last_ok = Instant::now();
            loop {
                let stop = s.stop.lock().unwrap_or_else(|e| e.into_inner());
                // Waiting "while not stopped" also sees a stop requested
                // before this thread began to wait.
                let (stop, _) = s
                    .wake
                    .wait_timeout_while(stop, timing.refresh, |stop| !*stop)
                    .unwrap_or_else(|e| e.into_inner());
                if *stop {
                    return;
                }
                drop(stop);
                match write_lock(&key, &repo_id, tb.as_ref(), exclusive) {
                    Ok(new) => {
                        let old = std::mem::replace(
                            &mut *s.path.lock().unwrap_or_else(|e| e.into_inner()),
                            new,
                        );
                        let _ = tb.delete(&old);
                        last_ok = Instant::now();
                    }
                    Err(_) => {
                        // Stop the holder well before others may take the
                        // lock for stale.
                        if last_ok.elapsed() + timing.refresh >= timing.stale / 2 {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            }
        })
        .ok();
    LockGuard {
        backend,
        shared,
        thread,
    }
}

impl LockGuard {
    /// The lock file currently held.
    pub fn path(&self) -> String {
        self.shared
            .path
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = self.backend.delete(&self.path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::OpendalBackend;
    use crate::repository::InitOptions;

    fn repo(dir: &std::path::Path) -> Repository {
        let b: Arc<dyn Backend> = Arc::new(OpendalBackend::local(dir, true).unwrap());
        let o = InitOptions {
            kdf_memory_kib: 8 << 10,
            kdf_iterations: 1,
            ..InitOptions::default()
        };
        Repository::init(b, b"pw", &o).unwrap()
    }

    #[test]
    fn exclusive_conflicts_and_release() {
        let d = tempfile::tempdir().unwrap();
        let r = repo(d.path());
        let t = LockTiming::default();
        let c = Cancel::never();
        let a = lock(&r, false, Duration::ZERO, t, &c).unwrap();
        let b = lock(&r, false, Duration::ZERO, t, &c).unwrap();
        assert!(matches!(
            lock(&r, true, Duration::ZERO, t, &c),
            Err(Error::Locked(_))
        ));
        drop(a);
        drop(b);
        assert!(r.backend().list(LOCKS).unwrap().is_empty());
        let x = lock(&r, true, Duration::ZERO, t, &c).unwrap();
        assert!(matches!(
            lock(&r, false, Duration::ZERO, t, &c),
            Err(Error::Locked(_))
        ));
        drop(x);
        lock(&r, false, Duration::ZERO, t, &c).unwrap();
    }

    #[test]
    fn refresh_rewrites_and_stale_locks_are_ignored() {
        let d = tempfile::tempdir().unwrap();
        let r = repo(d.path());
        let fast = LockTiming {
            refresh: Duration::from_millis(50),
            stale: Duration::from_secs(60),
        };
        let c = Cancel::never();
        let g = lock(&r, true, Duration::ZERO, fast, &c).unwrap();
        let first = g.path();
        std::thread::sleep(Duration::from_millis(300));
        assert_ne!(g.path(), first, "lock was not refreshed");
        assert_eq!(r.backend().list(LOCKS).unwrap().len(), 1);
        // The holder dies: its refresh stops and its lock file stays.
        let mut g = g;
        *g.shared.stop.lock().unwrap() = true;
        g.shared.wake.notify_all();
        g.thread.take().unwrap().join().unwrap();
        std::mem::forget(g);
        // A lock whose age exceeds the stale limit is taken over.
        let old = LockTiming {
            refresh: Duration::from_secs(60),
            stale: Duration::from_millis(1),
        };
        std::thread::sleep(Duration::from_millis(5));
        let g2 = lock(&r, true, Duration::ZERO, old, &c).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(remove_locks(&r, false, &old).unwrap(), 2);
        drop(g2);
    }

    #[test]
    fn dead_process_lock_is_stale() {
        let info = LockInfo {
            time: Utc::now(),
            exclusive: true,
            hostname: crate::host::hostname(),
            username: "u".into(),
            pid: 0x7fff_fff0,
        };
        assert!(info.is_stale(&LockTiming::default()));
        let alive = LockInfo {
            pid: std::process::id(),
            ..info
        };
        assert!(!alive.is_stale(&LockTiming::default()));
    }
}
