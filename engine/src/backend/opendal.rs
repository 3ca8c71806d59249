//! The backend over Apache OpenDAL. Local directories use its `fs`
//! service configured with an atomic-write directory, so a write goes to a
//! temporary file that is synced and renamed into place. Remote services
//! (S3, SFTP, any compiled-in OpenDAL service) get retries with exponential
//! backoff and jitter, timeouts and a limit on concurrent requests; on
//! services that have renames but no atomic uploads (SFTP), a write goes to
//! `tmp/` and is renamed into place.
//!
//! Layers, from the storage up: the service, fault injection (only with
//! `CAIRN_FAULTS`, see `faulty`), timeouts, the concurrency limit, retries.
//! Injected faults and timeouts are therefore retried like real errors.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use opendal::layers::{ConcurrentLimitLayer, RetryLayer, TimeoutLayer};
use opendal::options::{ListOptions, ReadOptions};
use opendal::BytesRange;
use opendal::{Buffer, ErrorKind as OdKind, Operator};

use super::faulty::{FaultConfig, FaultLayer};
use super::{Backend, FileInfo};
use crate::error::{Error, Result};

/// Temporary files of in-progress writes, inside the repository so that the
/// final rename stays on one file system.
const TMP_DIR: &str = "tmp";

/// How a remote operator is wrapped.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// At most this many requests at once.
    pub connections: usize,
    /// Write to `tmp/` and rename into place, for services whose uploads
    /// are not atomic.
    pub rename_writes: bool,
    /// Fault injection (tests only).
    pub faults: Option<FaultConfig>,
}

/// A backend served by an OpenDAL operator.
pub struct OpendalBackend {
    // Declared before `op`, so dropped first: the runtime's shutdown drops
    // every task at once, among them those that own SFTP sessions, whose
    // drop tells their `ssh` master process to exit. (Dropping the
    // operator first would let the sessions start closing themselves while
    // the runtime runs, and a close cut short by the shutdown leaves its
    // `ssh` process behind.)
    rt: Runtime,
    op: Operator,
    location: String,
    /// Set for local directories: the parent directory is synced after a
    /// rename so the new name survives a power loss.
    local_root: Option<PathBuf>,
    /// Set for local directories without fault injection: reads bypass
    /// OpenDAL's fs service, which hands every 2 MiB of a read to a
    /// blocking-task thread and zero-fills fresh memory for it, then joins
    /// the parts into yet another buffer. A positioned read on the calling
    /// thread into the caller's buffer does the same work with none of
    /// that (a 530 MiB database restore spent a tenth of its CPU there).
    /// Writes, listings and deletions still go through OpenDAL; with
    /// injected faults, reads do too, since the fault layer sits there.
    direct_reads: bool,
    rename_writes: bool,
    /// The concurrent request limit (1 for a local directory).
    connections: usize,
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
        let mut op = Operator::new(builder).map_err(|e| backend_err("open", &location, e))?;
        // Local storage has no transient errors worth retrying, except
        // those injected by tests.
        let faults = FaultConfig::from_env()?;
        let direct_reads = faults.is_none();
        if let Some(faults) = faults {
            op = op.layer(FaultLayer::new(faults)).layer(retry_layer());
        }
        Ok(OpendalBackend {
            rt: runtime()?,
            op,
            location,
            local_root: Some(root),
            direct_reads,
            rename_writes: false,
            connections: 1,
        })
    }

    /// Wraps an operator for a remote service with retries, timeouts and
    /// the default limits (5 concurrent requests; fault injection from
    /// `CAIRN_FAULTS`).
    pub fn remote(op: Operator, location: String) -> Result<OpendalBackend> {
        let opts = RemoteOptions {
            connections: 5,
            rename_writes: false,
            faults: FaultConfig::from_env()?,
        };
        OpendalBackend::remote_with(op, location, &opts)
    }

    /// Wraps an operator for a remote service.
    pub fn remote_with(
        op: Operator,
        location: String,
        opts: &RemoteOptions,
    ) -> Result<OpendalBackend> {
        let mut op = op;
        if let Some(f) = &opts.faults {
            op = op.layer(FaultLayer::new(f.clone()));
        }
        let op = op
            .layer(
                TimeoutLayer::new()
                    .with_timeout(Duration::from_secs(120))
                    .with_io_timeout(Duration::from_secs(300)),
            )
            .layer(ConcurrentLimitLayer::new(opts.connections.max(1)))
            .layer(retry_layer());
        Ok(OpendalBackend {
            rt: runtime()?,
            op,
            location,
            local_root: None,
            direct_reads: false,
            rename_writes: opts.rename_writes,
            connections: opts.connections.max(1),
        })
    }

    /// Reads a local file (`range`: offset and length; `None`: all of it)
    /// into `buf`, replacing its contents, when reads are direct; `None`
    /// otherwise.
    fn read_direct(
        &self,
        path: &str,
        range: Option<(u64, u64)>,
        buf: &mut Vec<u8>,
    ) -> Option<Result<()>> {
        use std::io::{Read, Seek, SeekFrom};
        let root = self.local_root.as_ref().filter(|_| self.direct_reads)?;
        let io_err = |e: std::io::Error| Error::Backend {
            op: "read",
            path: path.to_string(),
            not_found: e.kind() == std::io::ErrorKind::NotFound,
            reason: e.to_string(),
        };
        let mut run = || -> Result<()> {
            let mut f = std::fs::File::open(root.join(path)).map_err(io_err)?;
            buf.clear();
            match range {
                None => {
                    f.read_to_end(buf).map_err(io_err)?;
                }
                Some((offset, len)) => {
                    let want = usize::try_from(len).map_err(|_| {
                        Error::corrupt(path, format!("read of {len} bytes is too large"))
                    })?;
                    buf.reserve_exact(want);
                    f.seek(SeekFrom::Start(offset)).map_err(io_err)?;
                    f.take(len).read_to_end(buf).map_err(io_err)?;
                    if buf.len() != want {
                        return Err(Error::corrupt(
                            path,
                            format!(
                                "short read: {} bytes at offset {offset}, {len} expected",
                                buf.len()
                            ),
                        ));
                    }
                }
            }
            Ok(())
        };
        Some(run())
    }

    fn block<F: Future>(&self, f: F) -> F::Output {
        self.rt.get().block_on(f)
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

    /// A storage error naming the file; for remote storage the path
    /// includes the repository URL and the reason is made short.
    fn err(&self, op: &'static str, path: &str, e: opendal::Error) -> Error {
        if self.local_root.is_some() {
            return backend_err(op, path, e);
        }
        let full = format!("{}/{}", self.location.trim_end_matches('/'), path);
        let mut reason = describe(&e);
        if e.kind() == OdKind::PermissionDenied && self.op.info().scheme() == "s3" {
            reason.push_str(
                " (check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket's permissions)",
            );
        }
        Error::Backend {
            op,
            path: full,
            not_found: e.kind() == OdKind::NotFound,
            reason,
        }
    }

    /// Uploads to a temporary name, checks its size, and renames it into
    /// place, so that an interrupted upload never leaves a partial file at
    /// `path`.
    fn write_via_tmp(&self, path: &str, data: Vec<u8>) -> Result<()> {
        let len = data.len() as u64;
        let buf = Buffer::from(data);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tmp = format!(
                "{TMP_DIR}/{:016x}{:016x}",
                rand::random::<u64>(),
                rand::random::<u64>()
            );
            self.block(self.op.write(&tmp, buf.clone()))
                .map_err(|e| self.err("write", path, e))?;
            let size = self
                .block(self.op.stat(&tmp))
                .map(|m| m.content_length())
                .map_err(|e| self.err("write", path, e));
            match size {
                Ok(n) if n == len => {}
                Ok(n) => {
                    let _ = self.block(self.op.delete(&tmp));
                    // An upload replayed after a failure can leave extra
                    // bytes: upload again from the start.
                    if attempt < 3 {
                        continue;
                    }
                    return Err(Error::Backend {
                        op: "write",
                        path: format!("{}/{path}", self.location.trim_end_matches('/')),
                        not_found: false,
                        reason: format!("uploaded {n} bytes, {len} expected"),
                    });
                }
                Err(e) => {
                    let _ = self.block(self.op.delete(&tmp));
                    return Err(e);
                }
            }
            return match self.block(self.op.rename(&tmp, path)) {
                Ok(()) => Ok(()),
                Err(e) => {
                    // A rename whose reply was lost and that was then
                    // replayed fails although it happened.
                    let done = matches!(self.block(self.op.stat(path)), Ok(m) if m.content_length() == len)
                        && matches!(self.block(self.op.stat(&tmp)), Err(e) if e.kind() == OdKind::NotFound);
                    if done {
                        Ok(())
                    } else {
                        let _ = self.block(self.op.delete(&tmp));
                        Err(self.err("write", path, e))
                    }
                }
            };
        }
    }
}

/// Pack files live under this directory of a repository.
const PACK_DIR_PREFIX: &str = "data/";

/// Asks the kernel to drop a written, synced file's pages from the page
/// cache. A backup writes packs that nothing reads again soon; left
/// cached, hundreds of megabytes of them push the applications' own files
/// out of memory, and finding fresh memory for each new pack made the
/// kernel's share of a 1.2 GiB tree's backup 1.6 s instead of 0.85 s.
fn drop_cached_pages(file: &Path) {
    advise(
        file,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
}

/// Gives the kernel advice about a local file's pages. Only advice: a
/// failure changes nothing that matters, so it is ignored.
fn advise(file: &Path, offset: u64, len: u64, advice: nix::fcntl::PosixFadviseAdvice) {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    if let Ok(f) = std::fs::File::open(file) {
        let _ = nix::fcntl::posix_fadvise(&f, offset, len, advice);
    }
}

fn retry_layer() -> RetryLayer {
    RetryLayer::new()
        .with_jitter()
        .with_max_times(6)
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(10))
}

/// The backend's own runtime, shut down when the backend is dropped.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    fn get(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("runtime is present until drop")
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

fn runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cairn-io")
        .enable_time()
        .enable_io()
        .build()
        .map(|rt| Runtime(Some(rt)))
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

/// A short, one-line account of an OpenDAL error: its kind, message (the
/// code and message of an S3 error) and causes, without the request
/// details OpenDAL adds as context.
pub(crate) fn describe(e: &opendal::Error) -> String {
    let kind = match e.kind() {
        OdKind::PermissionDenied => "permission denied",
        OdKind::NotFound => "not found",
        OdKind::ConfigInvalid => "invalid configuration",
        OdKind::RateLimited => "rate limited",
        OdKind::Unsupported => "not supported",
        OdKind::AlreadyExists => "already exists",
        OdKind::IsADirectory => "is a directory",
        OdKind::NotADirectory => "not a directory",
        _ => "",
    };
    let mut parts: Vec<String> = Vec::new();
    if !kind.is_empty() {
        parts.push(kind.to_string());
    }
    let msg = s3_error_text(e.message()).unwrap_or_else(|| e.message().trim().to_string());
    if !msg.is_empty() {
        parts.push(msg);
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        parts.push(s.to_string());
        src = s.source();
    }
    let mut out: Vec<String> = Vec::new();
    for p in parts {
        let p = p.replace(['\n', '\r'], " ");
        if !out.iter().any(|o| o.contains(p.as_str())) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return e.kind().to_string();
    }
    out.join(": ")
}

/// `CODE: message` out of OpenDAL's rendering of an S3 error body
/// (`S3Error { code: "NoSuchBucket", message: "...", ... }`).
fn s3_error_text(msg: &str) -> Option<String> {
    /// The Debug-quoted string after `name: "`, unescaped.
    fn field(s: &str, name: &str) -> Option<String> {
        let start = s.find(&format!("{name}: \""))? + name.len() + 3;
        let mut out = String::new();
        let mut chars = s[start..].chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out),
                '\\' => match chars.next()? {
                    'n' | 'r' | 't' => out.push(' '),
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
        None
    }
    if !msg.starts_with("S3Error") {
        return None;
    }
    let code = field(msg, "code")?;
    match field(msg, "message") {
        Some(m) if !m.trim().is_empty() => Some(format!("{code}: {}", m.trim())),
        _ => Some(code),
    }
}

impl Backend for OpendalBackend {
    fn location(&self) -> &str {
        &self.location
    }

    fn connections(&self) -> usize {
        self.connections
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        if let Some(r) = self.read_direct(path, None, &mut buf) {
            return r.map(|()| buf);
        }
        self.block(self.op.read(path))
            .map(|b| Vec::from(b.to_bytes()))
            .map_err(|e| self.err("read", path, e))
    }

    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        if let Some(r) = self.read_direct(path, Some((offset, len)), &mut buf) {
            return r.map(|()| buf);
        }
        let opts = ReadOptions {
            range: BytesRange::new(offset, Some(len)),
            ..Default::default()
        };
        let buf = self
            .block(self.op.read_options(path, opts))
            .map_err(|e| self.err("read", path, e))?;
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

    fn read_range_into(&self, path: &str, offset: u64, len: u64, buf: &mut Vec<u8>) -> Result<()> {
        if let Some(r) = self.read_direct(path, Some((offset, len)), buf) {
            return r;
        }
        *buf = self.read_range(path, offset, len)?;
        Ok(())
    }

    fn will_read(&self, path: &str, offset: u64, len: u64) {
        if let Some(root) = self.local_root.as_ref().filter(|_| self.direct_reads) {
            advise(
                &root.join(path),
                offset,
                len,
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
            );
        }
    }

    fn write(&self, path: &str, data: Vec<u8>) -> Result<()> {
        self.write_reusing(path, data).map(|_| ())
    }

    fn write_reusing(&self, path: &str, data: Vec<u8>) -> Result<Option<Vec<u8>>> {
        if self.rename_writes {
            return self.write_via_tmp(path, data).map(|()| None);
        }
        let buf = Buffer::from(data);
        self.block(self.op.write(path, buf.clone()))
            .map_err(|e| self.err("write", path, e))?;
        self.sync_parent(path)?;
        if let Some(root) = &self.local_root {
            if path.starts_with(PACK_DIR_PREFIX) {
                drop_cached_pages(&root.join(path));
            }
        }
        // The service has let go of its copies once the write returned;
        // should one still hold the bytes, they are left to it (taking
        // them back would copy the whole file).
        let bytes = buf.to_bytes();
        drop(buf);
        Ok(bytes.is_unique().then(|| Vec::from(bytes)))
    }

    fn list(&self, dir: &str) -> Result<Vec<FileInfo>> {
        let opts = ListOptions {
            recursive: true,
            ..Default::default()
        };
        let entries = match self.block(self.op.list_options(dir, opts)) {
            Ok(e) => e,
            Err(e) if e.kind() == OdKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err("list", dir, e)),
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
            Err(e) => Err(self.err("stat", path, e)),
        }
    }

    fn prepare_layout(&self) -> Result<()> {
        // Object stores have no directories, and remote file systems get
        // theirs created on demand by each upload.
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
            .map_err(|e| self.err("delete", path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory served as remote storage is: every read and write
    /// through OpenDAL's fs service, none of the local shortcuts.
    fn through_opendal(root: &Path, rename_writes: bool) -> OpendalBackend {
        let op =
            Operator::new(opendal::services::Fs::default().root(root.to_str().unwrap())).unwrap();
        let opts = RemoteOptions {
            connections: 1,
            rename_writes,
            faults: None,
        };
        OpendalBackend::remote_with(op, "fs".into(), &opts).unwrap()
    }

    /// Pages of the file at `path` that are in the page cache.
    fn resident_pages(path: &Path) -> usize {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(path).unwrap();
        let len = f.metadata().unwrap().len() as usize;
        let page = 4096;
        let pages = len.div_ceil(page);
        let mut vec = vec![0u8; pages];
        // SAFETY: a read-only shared mapping of an open file, unmapped
        // before return; mincore writes one byte per page into `vec`.
        unsafe {
            let addr = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            );
            assert_ne!(addr, libc::MAP_FAILED);
            assert_eq!(libc::mincore(addr, len, vec.as_mut_ptr()), 0);
            libc::munmap(addr, len);
        }
        vec.iter().filter(|b| *b & 1 == 1).count()
    }

    /// A written pack leaves the page cache once it is safely stored;
    /// other files stay cached. (The directory is on the build's disk, not
    /// a tmpfs, whose pages cannot be dropped.)
    #[test]
    fn written_packs_leave_the_page_cache() {
        let exe = std::env::current_exe().unwrap();
        let dir = tempfile::tempdir_in(exe.parent().unwrap()).unwrap();
        let local = OpendalBackend::local(dir.path(), true).unwrap();
        let data: Vec<u8> = (0..4_000_000u32)
            .map(|i| (i * 13 + i / 509) as u8)
            .collect();
        local.write("index/0011", data.clone()).unwrap();
        local.write("data/00/0011", data.clone()).unwrap();
        let pages = data.len().div_ceil(4096);
        assert_eq!(resident_pages(&dir.path().join("index/0011")), pages);
        let left = resident_pages(&dir.path().join("data/00/0011"));
        assert!(left < pages / 100, "{left} of {pages} pages still cached");
        assert_eq!(local.read("data/00/0011").unwrap(), data);
    }

    /// `will_read` has the kernel fetch the range into the page cache
    /// before it is read, and only that range.
    #[test]
    fn local_writes_hand_the_buffer_back() {
        let dir = tempfile::tempdir().unwrap();
        let local = OpendalBackend::local(dir.path(), true).unwrap();
        let mut data = Vec::with_capacity(3 << 20);
        data.extend((0..2_000_000u32).map(|i| (i * 7 + i / 331) as u8));
        let want = data.clone();
        let (ptr, cap) = (data.as_ptr(), data.capacity());
        let back = local
            .write_reusing("data/00/0033", data)
            .unwrap()
            .expect("a local write returns its buffer");
        // The same memory, not a copy, with its spare capacity kept.
        assert_eq!((back.as_ptr(), back.capacity()), (ptr, cap));
        assert_eq!(back, want);
        assert_eq!(
            std::fs::read(dir.path().join("data/00/0033")).unwrap(),
            want
        );
        // Storage that keeps the bytes (here, renamed uploads) does not.
        let remote = through_opendal(dir.path(), true);
        assert!(remote
            .write_reusing("data/00/0044", want.clone())
            .unwrap()
            .is_none());
        assert_eq!(
            std::fs::read(dir.path().join("data/00/0044")).unwrap(),
            want
        );
    }

    #[test]
    fn will_read_fetches_ahead() {
        let exe = std::env::current_exe().unwrap();
        let dir = tempfile::tempdir_in(exe.parent().unwrap()).unwrap();
        let local = OpendalBackend::local(dir.path(), true).unwrap();
        if !local.direct_reads {
            // Injected faults route reads through OpenDAL: nothing to hint.
            return;
        }
        let data = vec![7u8; 8 << 20];
        local.write("data/00/0022", data).unwrap();
        let file = dir.path().join("data/00/0022");
        assert!(resident_pages(&file) < 20);
        local.will_read("data/00/0022", 2 << 20, 4 << 20);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while resident_pages(&file) < 1024 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let resident = resident_pages(&file);
        assert!(
            (1024..1024 + 64).contains(&resident),
            "{resident} pages resident after a hint for 1024"
        );
    }

    /// Direct local reads answer exactly as OpenDAL's fs service does over
    /// the same directory: whole files, ranges, ranges into a reused
    /// buffer, short reads and missing files.
    #[test]
    fn direct_local_reads_match_opendal() {
        let dir = tempfile::tempdir().unwrap();
        let local = OpendalBackend::local(dir.path(), true).unwrap();
        assert!(local.direct_reads || std::env::var_os("CAIRN_FAULTS").is_some());
        let od = through_opendal(dir.path(), false);
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        local.write("data/ab/abcd", data.clone()).unwrap();
        for b in [&local, &od] {
            assert_eq!(b.read("data/ab/abcd").unwrap(), data);
            assert_eq!(
                b.read_range("data/ab/abcd", 4_000_000, 1_000_000).unwrap(),
                &data[4_000_000..]
            );
            // A buffer holding other bytes, larger than the read, is
            // replaced, not appended to.
            let mut buf = vec![9u8; 3 << 20];
            b.read_range_into("data/ab/abcd", 17, 2_500_000, &mut buf)
                .unwrap();
            assert_eq!(buf, &data[17..2_500_017]);
            b.read_range_into("data/ab/abcd", 0, 10, &mut buf).unwrap();
            assert_eq!(buf, &data[..10]);
            // Past the end: an error naming the file (OpenDAL's own
            // wording differs from the direct read's "short read").
            for e in [
                b.read_range("data/ab/abcd", 4_999_990, 20).unwrap_err(),
                b.read_range_into("data/ab/abcd", 4_999_990, 20, &mut buf)
                    .unwrap_err(),
            ] {
                assert!(e.to_string().contains("data/ab/abcd"), "{e}");
            }
            for e in [
                b.read("data/ab/none").unwrap_err(),
                b.read_range("data/ab/none", 0, 1).unwrap_err(),
                b.read_range_into("data/ab/none", 0, 1, &mut buf)
                    .unwrap_err(),
            ] {
                assert!(e.is_not_found(), "{e}");
                assert!(e.to_string().contains("data/ab/none"), "{e}");
            }
        }
    }

    #[test]
    fn s3_error_text_extracts_code_and_message() {
        let m = r#"S3Error { code: "NoSuchBucket", message: "Bucket not found: nope", resource: "", request_id: "" }"#;
        assert_eq!(
            s3_error_text(m).as_deref(),
            Some("NoSuchBucket: Bucket not found: nope")
        );
        assert_eq!(s3_error_text("plain"), None);
    }

    #[test]
    fn describe_is_one_line_and_short() {
        let e = opendal::Error::new(
            OdKind::PermissionDenied,
            r#"S3Error { code: "AccessDenied", message: "no\nway \"here\"", resource: "", request_id: "" }"#,
        )
        .with_context("uri", "http://x/y")
        .with_context("response", "Parts { status: 403 }");
        let d = describe(&e);
        assert_eq!(d, r#"permission denied: AccessDenied: no way "here""#);
        assert!(!d.contains('\n'));
    }
}
