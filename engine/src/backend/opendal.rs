//! The backend over Apache OpenDAL. Local directories use its `fs`
//! service configured with an atomic-write directory, so a write goes to a
//! temporary file that is synced and renamed into place.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::options::{ListOptions, ReadOptions};
use opendal::BytesRange;
use opendal::{ErrorKind as OdKind, Operator};

use super::{Backend, FileInfo};
use crate::error::{Error, Result};

/// Temporary files of in-progress writes, inside the repository so that the
/// final rename stays on one file system.
const TMP_DIR: &str = "tmp";

/// A backend served by an OpenDAL operator.
pub struct OpendalBackend {
    rt: Arc<tokio::runtime::Runtime>,
    op: Operator,
    location: String,
    /// Set for local directories: the parent directory is synced after a
    /// rename so the new name survives a power loss.
    local_root: Option<PathBuf>,
}

impl OpendalBackend {
    /// A repository in a local directory. With `create`, the directory is
    /// created when missing; otherwise a missing directory is reported as
    /// no repository.
    pub fn local(root: &Path, create: bool) -> Result<OpendalBackend> {
        let location = root.display().to_string();
        match std::fs::metadata(root) {
            Ok(m) if !m.is_dir() => return Err(Error::NotADirectory(location)),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !create {
                    return Err(Error::NoRepository(location));
                }
                std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
            }
            Err(e) => return Err(Error::io(root, e)),
        }
        let root = std::path::absolute(root).map_err(|e| Error::io(root, e))?;
        let tmp = root.join(TMP_DIR);
        if create {
            std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        let root_s = root
            .to_str()
            .ok_or_else(|| Error::InvalidArgument(format!("{location}: path is not UTF-8")))?;
        let tmp_s = tmp
            .to_str()
            .ok_or_else(|| Error::InvalidArgument(format!("{location}: path is not UTF-8")))?;
        let builder = opendal::services::Fs::default()
            .root(root_s)
            .atomic_write_dir(tmp_s);
        let op = Operator::new(builder).map_err(|e| backend_err("open", &location, e))?;
        let rt = runtime()?;
        Ok(OpendalBackend {
            rt,
            op,
            location,
            local_root: Some(root),
        })
    }

    /// Wraps an operator for a remote service with retries and timeouts.
    pub fn remote(op: Operator, location: String) -> Result<OpendalBackend> {
        let op = op
            .layer(
                RetryLayer::new()
                    .with_jitter()
                    .with_max_times(6)
                    .with_min_delay(Duration::from_millis(200)),
            )
            .layer(TimeoutLayer::new().with_io_timeout(Duration::from_secs(120)));
        Ok(OpendalBackend {
            rt: runtime()?,
            op,
            location,
            local_root: None,
        })
    }

    fn block<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn sync_parent(&self, path: &str) -> Result<()> {
        if let Some(root) = &self.local_root {
            let full = root.join(path);
            if let Some(dir) = full.parent() {
                let d = std::fs::File::open(dir).map_err(|e| Error::io(dir, e))?;
                d.sync_all().map_err(|e| Error::io(dir, e))?;
            }
        }
        Ok(())
    }
}

fn runtime() -> Result<Arc<tokio::runtime::Runtime>> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cairn-io")
        .enable_time()
        .build()
        .map(Arc::new)
        .map_err(|e| Error::io("tokio runtime", e))
}

fn backend_err(op: &'static str, path: &str, e: opendal::Error) -> Error {
    Error::Backend {
        op,
        path: path.to_string(),
        not_found: e.kind() == OdKind::NotFound,
        reason: e.to_string(),
    }
}

impl Backend for OpendalBackend {
    fn location(&self) -> &str {
        &self.location
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.block(self.op.read(path))
            .map(|b| Vec::from(b.to_bytes()))
            .map_err(|e| backend_err("read", path, e))
    }

    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let opts = ReadOptions {
            range: BytesRange::new(offset, Some(len)),
            ..Default::default()
        };
        let buf = self
            .block(self.op.read_options(path, opts))
            .map_err(|e| backend_err("read", path, e))?;
        if buf.len() as u64 != len {
            return Err(Error::corrupt(
                path,
                format!(
                    "short read: {} bytes at offset {offset}, {len} expected",
                    buf.len()
                ),
            ));
        }
        Ok(Vec::from(buf.to_bytes()))
    }

    fn write(&self, path: &str, data: Vec<u8>) -> Result<()> {
        self.block(self.op.write(path, data))
            .map_err(|e| backend_err("write", path, e))?;
        self.sync_parent(path)
    }

    fn list(&self, dir: &str) -> Result<Vec<FileInfo>> {
        let opts = ListOptions {
            recursive: true,
            ..Default::default()
        };
        let entries = match self.block(self.op.list_options(dir, opts)) {
            Ok(e) => e,
            Err(e) if e.kind() == OdKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(backend_err("list", dir, e)),
        };
        Ok(entries
            .into_iter()
            .filter(|e| e.metadata().is_file())
            .map(|e| FileInfo {
                path: e.path().to_string(),
                size: e.metadata().content_length(),
            })
            .collect())
    }

    fn size(&self, path: &str) -> Result<Option<u64>> {
        match self.block(self.op.stat(path)) {
            Ok(m) => Ok(Some(m.content_length())),
            Err(e) if e.kind() == OdKind::NotFound => Ok(None),
            Err(e) => Err(backend_err("stat", path, e)),
        }
    }

    fn prepare_layout(&self) -> Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let mut dirs: Vec<PathBuf> = ["keys", "index", "snapshots", "locks", "data", TMP_DIR]
            .iter()
            .map(|d| root.join(d))
            .collect();
        dirs.extend((0..=255u8).map(|i| root.join("data").join(format!("{i:02x}"))));
        for d in &dirs {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        for d in [root.join("data"), root.clone()] {
            let f = std::fs::File::open(&d).map_err(|e| Error::io(&d, e))?;
            f.sync_all().map_err(|e| Error::io(&d, e))?;
        }
        Ok(())
    }

    fn delete(&self, path: &str) -> Result<()> {
        self.block(self.op.delete(path))
            .map_err(|e| backend_err("delete", path, e))
    }
}
