//! A local cache of repository metadata: index files, snapshots and the
//! packs that hold tree blobs. It wraps any backend, so a backup or `ls`
//! against a remote repository does not download the same metadata twice.
//!
//! Every cached file is content-addressed: its bytes are checked against
//! its name the first time a process uses it, and a damaged or foreign
//! cache file is dropped and fetched again. Cache failures never fail an
//! operation; they only cost a download.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::{Backend, FileInfo};
use crate::error::Result;
use crate::id::Id;
use crate::repository::{check_name, file_name, CONFIG, INDEX, SNAPSHOTS};

/// The cache directory for a repository ID under a cache root (the user's
/// XDG cache directory by default).
pub fn default_root() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("cairn"))
}

pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    dir: PathBuf,
    packs: RwLock<HashSet<String>>,
    verified: Mutex<HashSet<String>>,
}

impl CachedBackend {
    /// Wraps `inner` with a cache below `root/<repository ID>`. The
    /// repository ID is read from the config in clear.
    pub fn wrap(inner: Arc<dyn Backend>, root: &Path) -> Result<Arc<dyn Backend>> {
        let cfg = match inner.read(CONFIG) {
            Ok(b) => b,
            // No repository: the caller's open reports it.
            Err(_) => return Ok(inner),
        };
        let id = crate::repofile::config::Config::peek_id(&cfg, CONFIG)?;
        let dir = root.join(id.to_hex());
        if fs::create_dir_all(&dir).is_err() {
            return Ok(inner);
        }
        let tag = root.join("CACHEDIR.TAG");
        if !tag.exists() {
            let _ = fs::write(&tag, b"Signature: 8a477f597d28d172789f06886806bc55\n# This file marks cairn's cache; backup tools skip it.\n");
        }
        Ok(Arc::new(CachedBackend {
            inner,
            dir,
            packs: RwLock::new(HashSet::new()),
            verified: Mutex::new(HashSet::new()),
        }))
    }

    fn cacheable(&self, path: &str) -> bool {
        path.starts_with(INDEX)
            || path.starts_with(SNAPSHOTS)
            || self
                .packs
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(path)
    }

    fn local(&self, path: &str) -> PathBuf {
        self.dir.join(path)
    }

    fn is_verified(&self, path: &str) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(path)
    }

    fn mark_verified(&self, path: &str) {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_string());
    }

    /// The cached copy, checked against its name once per process.
    fn load(&self, path: &str) -> Option<Vec<u8>> {
        let p = self.local(path);
        let b = fs::read(&p).ok()?;
        if !self.is_verified(path) {
            if check_name(path, &b).is_err() {
                let _ = fs::remove_file(&p);
                return None;
            }
            self.mark_verified(path);
        }
        Some(b)
    }

    fn store(&self, path: &str, bytes: &[u8]) {
        if check_name(path, bytes).is_err() {
            return;
        }
        let p = self.local(path);
        let Some(parent) = p.parent() else { return };
        if fs::create_dir_all(parent).is_err() {
            return;
        }
        let tmp = parent.join(format!(".tmp-{}", Id::random().short()));
        let ok = fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(bytes))
            .and_then(|_| fs::rename(&tmp, &p))
            .is_ok();
        if ok {
            self.mark_verified(path);
        } else {
            let _ = fs::remove_file(&tmp);
        }
    }

    /// Makes sure a verified copy is in the cache; false if impossible.
    fn ensure(&self, path: &str) -> bool {
        if self.is_verified(path) && self.local(path).exists() {
            return true;
        }
        if self.load(path).is_some() {
            return true;
        }
        match self.inner.read(path) {
            Ok(b) => {
                self.store(path, &b);
                self.is_verified(path)
            }
            Err(_) => false,
        }
    }
}

/// Files the cache keeps a copy of as they are written: a backup's new
/// index and snapshot files, read by the next command.
fn kept_when_written(path: &str) -> bool {
    path.starts_with(INDEX) || path.starts_with(SNAPSHOTS)
}

impl Backend for CachedBackend {
    fn location(&self) -> &str {
        self.inner.location()
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        if self.cacheable(path) {
            if let Some(b) = self.load(path) {
                return Ok(b);
            }
            let b = self.inner.read(path)?;
            self.store(path, &b);
            return Ok(b);
        }
        self.inner.read(path)
    }

    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if self.cacheable(path) && self.ensure(path) {
            if let Ok(f) = fs::File::open(self.local(path)) {
                let mut buf = vec![0u8; len as usize];
                if f.read_exact_at(&mut buf, offset).is_ok() {
                    return Ok(buf);
                }
            }
        }
        self.inner.read_range(path, offset, len)
    }

    fn read_range_into(&self, path: &str, offset: u64, len: u64, buf: &mut Vec<u8>) -> Result<()> {
        if self.cacheable(path) {
            *buf = self.read_range(path, offset, len)?;
            return Ok(());
        }
        self.inner.read_range_into(path, offset, len, buf)
    }

    fn write(&self, path: &str, data: Vec<u8>) -> Result<()> {
        let keep = kept_when_written(path).then(|| data.clone());
        self.inner.write(path, data)?;
        if let Some(d) = keep {
            self.store(path, &d);
        }
        Ok(())
    }

    fn write_reusing(&self, path: &str, data: Vec<u8>) -> Result<Option<Vec<u8>>> {
        if kept_when_written(path) {
            return self.write(path, data).map(|()| None);
        }
        self.inner.write_reusing(path, data)
    }

    fn list(&self, dir: &str) -> Result<Vec<FileInfo>> {
        let files = self.inner.list(dir)?;
        if dir == INDEX || dir == SNAPSHOTS {
            // Forget cached files the repository no longer has.
            let names: HashSet<&str> = files.iter().map(|f| file_name(&f.path)).collect();
            if let Ok(rd) = fs::read_dir(self.local(dir)) {
                for e in rd.flatten() {
                    let n = e.file_name();
                    if let Some(n) = n.to_str() {
                        if !names.contains(n) {
                            let _ = fs::remove_file(e.path());
                        }
                    }
                }
            }
        }
        Ok(files)
    }

    fn size(&self, path: &str) -> Result<Option<u64>> {
        self.inner.size(path)
    }

    fn delete(&self, path: &str) -> Result<()> {
        self.inner.delete(path)?;
        let _ = fs::remove_file(self.local(path));
        Ok(())
    }

    fn prepare_layout(&self) -> Result<()> {
        self.inner.prepare_layout()
    }

    fn will_read(&self, path: &str, offset: u64, len: u64) {
        if !self.cacheable(path) {
            self.inner.will_read(path, offset, len)
        }
    }

    fn cache_packs(&self, packs: &[String]) {
        let mut set = self.packs.write().unwrap_or_else(|e| e.into_inner());
        set.extend(packs.iter().cloned());
    }

    fn connections(&self) -> usize {
        self.inner.connections()
    }
}
