//! Storage: the handful of operations the repository needs, behind a trait
//! so that every backend (local directory, object stores, SFTP) and every
//! decorator (cache, retries, fault injection, request log) plugs in without touching
//! the rest of the engine.

pub mod cache;
pub mod faulty;
pub mod location;
pub mod logged;
mod opendal;

pub use self::cache::CachedBackend;
pub use self::location::{open, Location, OpenOptions};
pub use self::logged::LoggedBackend;
pub use self::opendal::{OpendalBackend, RemoteOptions};

use crate::error::Result;

/// One stored file as listed by a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Path relative to the repository root, with `/` separators.
    pub path: String,
    pub size: u64,
}

/// A repository's storage. Paths are relative to the repository root and
/// use `/`. Writes must be atomic: after a crash a path either holds all of
/// the written bytes or does not exist.
pub trait Backend: Send + Sync {
    /// Human-readable location, used in messages.
    fn location(&self) -> &str;
    /// The whole file.
    fn read(&self, path: &str) -> Result<Vec<u8>>;
    /// `len` bytes at `offset`; fewer bytes than asked is an error.
    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// `read_range` into `buf`, whose contents are replaced: a reader of
    /// many ranges (a restore) reuses one buffer instead of taking fresh
    /// memory from the system for each read.
    fn read_range_into(&self, path: &str, offset: u64, len: u64, buf: &mut Vec<u8>) -> Result<()> {
        *buf = self.read_range(path, offset, len)?;
        Ok(())
    }
    /// Stores the file atomically and durably.
    fn write(&self, path: &str, data: Vec<u8>) -> Result<()>;
    /// Stores the file as [`Backend::write`] does and, where the storage is
    /// done with the buffer once this returns (a local directory), hands it
    /// back: a backup then fills the same few pack buffers again instead of
    /// having the kernel fault in and zero 16 MiB of fresh memory per pack.
    fn write_reusing(&self, path: &str, data: Vec<u8>) -> Result<Option<Vec<u8>>> {
        self.write(path, data).map(|()| None)
    }
    /// All files below `dir` (recursively).
    fn list(&self, dir: &str) -> Result<Vec<FileInfo>>;
    /// The file's size, or `None` if it does not exist.
    fn size(&self, path: &str) -> Result<Option<u64>>;
    /// Removes the file; removing an absent file is not an error.
    fn delete(&self, path: &str) -> Result<()>;
    /// Creates the repository's directories where the storage has them,
    /// durably, so that later writes only add files.
    fn prepare_layout(&self) -> Result<()> {
        Ok(())
    }
    /// A hint that `len` bytes at `offset` will be read soon, so storage
    /// that can fetch ahead (a local disk's page cache) starts reading them
    /// while the caller works on what it has. Others ignore it.
    fn will_read(&self, _path: &str, _offset: u64, _len: u64) {}
    /// Tells a caching layer which packs hold metadata (tree blobs) and are
    /// worth keeping locally. Other backends ignore it.
    fn cache_packs(&self, _packs: &[String]) {}
    /// How many requests are worth keeping in flight at once. Reads from a
    /// local disk are bounded by the CPU (1: use one per core); a remote
    /// service hides its latency only with several requests outstanding.
    fn connections(&self) -> usize {
        1
    }
}
