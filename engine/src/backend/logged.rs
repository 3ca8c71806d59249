//! A decorator that reports every storage request (what, where, how many
//! bytes, how long, and how it ended) to a sink the caller chooses, so that
//! an operator can see what a slow or failing run asks of its storage.

use std::sync::Arc;
use std::time::Instant;

use super::{Backend, FileInfo};
use crate::error::Result;

/// Receives one line per storage request.
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

pub struct LoggedBackend {
    inner: Arc<dyn Backend>,
    sink: LogSink,
}

impl LoggedBackend {
    pub fn wrap(inner: Arc<dyn Backend>, sink: LogSink) -> Arc<dyn Backend> {
        Arc::new(LoggedBackend { inner, sink })
    }

    /// Runs one request and reports it: `OP PATH [DETAIL] -> OUTCOME in MS`.
    fn logged<T>(
        &self,
        op: &str,
        path: &str,
        detail: String,
        outcome: impl Fn(&T) -> String,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let start = Instant::now();
        let r = f();
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let end = match &r {
            Ok(v) => outcome(v),
            Err(e) => format!("error: {e}"),
        };
        let sep = if detail.is_empty() { "" } else { " " };
        (self.sink)(&format!(
            "storage: {op} {path}{sep}{detail} -> {end} in {ms:.1} ms"
        ));
        r
    }
}

impl Backend for LoggedBackend {
    fn location(&self) -> &str {
        self.inner.location()
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.logged(
            "read",
            path,
            String::new(),
            |b: &Vec<u8>| format!("{} B", b.len()),
            || self.inner.read(path),
        )
    }

    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.logged(
            "read",
            path,
            format!("at {offset} ({len} B)"),
            |b: &Vec<u8>| format!("{} B", b.len()),
            || self.inner.read_range(path, offset, len),
        )
    }

    fn read_range_into(&self, path: &str, offset: u64, len: u64, buf: &mut Vec<u8>) -> Result<()> {
        self.logged(
            "read",
            path,
            format!("at {offset} ({len} B)"),
            |n: &usize| format!("{n} B"),
            || {
                self.inner
                    .read_range_into(path, offset, len, buf)
                    .map(|()| buf.len())
            },
        )
        .map(|_| ())
    }

    fn write(&self, path: &str, data: Vec<u8>) -> Result<()> {
        let len = data.len();
        self.logged(
            "write",
            path,
            format!("({len} B)"),
            |_: &()| "ok".into(),
            || self.inner.write(path, data),
        )
    }

    fn write_reusing(&self, path: &str, data: Vec<u8>) -> Result<Option<Vec<u8>>> {
        let len = data.len();
        self.logged(
            "write",
            path,
            format!("({len} B)"),
            |_: &Option<Vec<u8>>| "ok".into(),
            || self.inner.write_reusing(path, data),
        )
    }

    fn list(&self, dir: &str) -> Result<Vec<FileInfo>> {
        self.logged(
            "list",
            dir,
            String::new(),
            |v: &Vec<FileInfo>| format!("{} files", v.len()),
            || self.inner.list(dir),
        )
    }

    fn size(&self, path: &str) -> Result<Option<u64>> {
        self.logged(
            "stat",
            path,
            String::new(),
            |s: &Option<u64>| match s {
                Some(n) => format!("{n} B"),
                None => "absent".into(),
            },
            || self.inner.size(path),
        )
    }

    fn delete(&self, path: &str) -> Result<()> {
        self.logged(
            "delete",
            path,
            String::new(),
            |_: &()| "ok".into(),
            || self.inner.delete(path),
        )
    }

    fn prepare_layout(&self) -> Result<()> {
        self.logged(
            "create layout",
            "",
            String::new(),
            |_: &()| "ok".into(),
            || self.inner.prepare_layout(),
        )
    }

    fn will_read(&self, path: &str, offset: u64, len: u64) {
        self.inner.will_read(path, offset, len)
    }

    fn cache_packs(&self, packs: &[String]) {
        self.inner.cache_packs(packs)
    }

    fn connections(&self) -> usize {
        self.inner.connections()
    }
}
