//! One pack's part of a restore: reading the pack in spans, opening each
//! blob where it lies, and writing the plaintexts into the files being
//! restored, joined into vectored writes, with zero blocks left as holes.

use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::IoSlice;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{FilePlan, RestoreProgress};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::pack::{self, PackEntry};
use crate::repository::{pack_path, Repository, READ_SPAN};

/// A pack read covering several blobs is used when the bytes between them
/// are at most this share of what is read.
const MAX_GAP_SHARE: f64 = 0.5;

/// What every pack worker shares: the files, and where progress and
/// errors go.
pub(super) struct PackContext<'a> {
    pub(super) files: &'a [FilePlan],
    pub(super) progress: &'a dyn RestoreProgress,
    pub(super) written: &'a AtomicU64,
    pub(super) err: &'a (dyn Fn(&Path, String) + Sync),
}

/// Where one blob's plaintext goes: (file, offset) pairs. Nearly every blob
/// goes to one place, kept inline; a blob repeated in a file or shared by
/// files keeps a list. (A database restores over a hundred thousand page
/// blobs; a list each was that many allocations.)
pub(super) enum Targets {
    One([(usize, u64); 1]),
    Many(Vec<(usize, u64)>),
}

impl Targets {
    pub(super) fn one(file: usize, offset: u64) -> Targets {
        Targets::One([(file, offset)])
    }

    pub(super) fn as_slice(&self) -> &[(usize, u64)] {
        match self {
            Targets::One(t) => t,
            Targets::Many(v) => v,
        }
    }

    /// Adds the places of `other` (the same blob) to these.
    pub(super) fn append(&mut self, other: Targets) {
        let mut v = match std::mem::replace(self, Targets::Many(Vec::new())) {
            Targets::One(t) => t.to_vec(),
            Targets::Many(v) => v,
        };
        v.extend_from_slice(other.as_slice());
        *self = Targets::Many(v);
    }
}

/// Restores the blobs that one pack holds. The pack is read in spans into
/// `buf`; every blob of a span is decrypted where it lies, and the
/// plaintexts that continue one another in a file go to it in one
/// vectored write straight from `buf`, so a database's pages are copied
/// only by the kernel.
pub(super) fn restore_pack(
    repo: &Repository,
    pack_id: &Id,
    blobs: &[(PackEntry, Targets)],
    ctx: &PackContext,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let PackContext {
        files,
        progress,
        written,
        err,
    } = *ctx;
    let path = pack_path(pack_id);
    let backend = repo.backend();
    let mut out = Outputs {
        files,
        open: HashMap::new(),
        failed: HashSet::new(),
        err,
    };
    // The last blob of this pack each file needs: it is closed after that.
    let mut last_use: HashMap<usize, usize> = HashMap::new();
    for (k, (_, targets)) in blobs.iter().enumerate() {
        for (fi, _) in targets.as_slice() {
            last_use.insert(*fi, k);
        }
    }
    let spans = read_spans(blobs);
    for (s, &(i, j, start, end)) in spans.iter().enumerate() {
        // The next span is fetched by the storage (a local disk's
        // read-ahead) while this one is decrypted and written.
        if let Some(&(_, _, next_start, next_end)) = spans.get(s + 1) {
            backend.will_read(&path, next_start, next_end - next_start);
        }
        backend.read_range_into(&path, start, end - start, buf)?;
        // Blobs are opened in offset order, each where it lies: the part of
        // the buffer up to a blob's end is split off and, once the blob is
        // decrypted, only read from, so the joiner can hold its plaintext
        // while the next blob is decrypted. Only decompressed plaintexts
        // are copied, into the joiner, and are freed blob by blob.
        let mut joiner = WriteJoiner::default();
        let mut rest: &mut [u8] = buf.as_mut_slice();
        let mut consumed = 0usize;
        for (k, (e, targets)) in blobs[i..j].iter().enumerate() {
            let at = (u64::from(e.offset) - start) as usize;
            let opened = if at < consumed {
                Err(Error::corrupt(
                    &path,
                    format!("blob {} overlaps the blob before it", e.id),
                ))
            } else {
                let (head, tail) =
                    std::mem::take(&mut rest).split_at_mut(at + e.length as usize - consumed);
                rest = tail;
                let from = at - consumed;
                consumed = at + e.length as usize;
                // A blob that only goes to files checked once written is
                // not checked here.
                let check = if targets
                    .as_slice()
                    .iter()
                    .all(|(fi, _)| files[*fi].check_later)
                {
                    pack::IdCheck::Later
                } else {
                    pack::IdCheck::Now
                };
                match pack::open_blob_in_place(
                    repo.key(),
                    repo.id(),
                    e,
                    &mut head[from..],
                    &path,
                    check,
                ) {
                    Ok(pack::Opened::InPlace(r)) => {
                        let head: &[u8] = head;
                        Ok(Plain::Borrowed(&head[from + r.start..from + r.end]))
                    }
                    Ok(pack::Opened::Decompressed(d)) => Ok(Plain::Owned(d)),
                    Err(x) => Err(x),
                }
            };
            match opened {
                Ok(plain) => {
                    let bytes = match &plain {
                        Plain::Borrowed(p) => p.len(),
                        Plain::Owned(d) => d.len(),
                    } as u64;
                    for (fi, off) in targets.as_slice() {
                        match &plain {
                            Plain::Borrowed(p) => {
                                for (a, b) in data_runs(p, *off) {
                                    joiner.write(&mut out, *fi, *off + a as u64, &p[a..b]);
                                }
                            }
                            Plain::Owned(d) => {
                                for (a, b) in data_runs(d, *off) {
                                    joiner.write_copy(&mut out, *fi, *off + a as u64, &d[a..b]);
                                }
                            }
                        }
                        written.fetch_add(bytes, Ordering::Relaxed);
                        progress.bytes_written(bytes);
                    }
                }
                Err(x) => {
                    for (fi, _) in targets.as_slice() {
                        err(&files[*fi].target, format!("{x}; file is incomplete"));
                    }
                }
            }
            for (fi, _) in targets.as_slice() {
                if last_use.get(fi) == Some(&(i + k)) {
                    joiner.flush_file(&mut out, *fi);
                    out.close(*fi);
                }
            }
        }
        joiner.flush(&mut out);
    }
    out.close_all();
    Ok(())
}

/// Tells the storage that the first read of a pack's restore is coming.
pub(super) fn will_read_first_span(
    repo: &Repository,
    pack_id: &Id,
    blobs: &[(PackEntry, Targets)],
) {
    if let Some(&(_, _, start, end)) = read_spans(blobs).first() {
        repo.backend()
            .will_read(&pack_path(pack_id), start, end - start);
    }
}

/// Groups a pack's blobs, sorted by offset, into reads of at most
/// [`READ_SPAN`] bytes whose gaps (bytes of blobs not needed) are at most
/// [`MAX_GAP_SHARE`] of the read: (first blob, end blob, start offset, end
/// offset).
fn read_spans(blobs: &[(PackEntry, Targets)]) -> Vec<(usize, usize, u64, u64)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < blobs.len() {
        let start = u64::from(blobs[i].0.offset);
        let mut end = start + u64::from(blobs[i].0.length);
        let mut used = end - start;
        let mut j = i + 1;
        while j < blobs.len() {
            let e = &blobs[j].0;
            let new_end = (u64::from(e.offset) + u64::from(e.length)).max(end);
            let new_used = used + u64::from(e.length);
            if new_end - start > READ_SPAN
                // Overlapping entries (a damaged index) use more than the
                // extent: no gap, and the overlap is reported when opened.
                || (new_end - start).saturating_sub(new_used) as f64
                    > MAX_GAP_SHARE * (new_end - start) as f64
            {
                break;
            }
            end = new_end;
            used = new_used;
            j += 1;
        }
        spans.push((i, j, start, end));
        i = j;
    }
    spans
}

/// Open files a pack worker keeps at most. A pack of small files touches
/// thousands of them; each is closed after its last blob in the pack, and
/// should many stay open at once (blobs shared by many files), all are
/// closed and reopened on demand, so descriptors stay bounded whatever the
/// repository holds.
const MAX_OPEN_FILES: usize = 32;

/// The files one pack's blobs go to, each opened once while it is being
/// written (a database restores thousands of page blobs from one pack into
/// one file). A file that cannot be opened is reported once.
struct Outputs<'a> {
    files: &'a [FilePlan],
    open: HashMap<usize, fs::File>,
    failed: HashSet<usize>,
    err: &'a (dyn Fn(&Path, String) + Sync),
}

impl Outputs<'_> {
    /// Writes `parts`, one after another, at `off` in file `fi`.
    fn write(&mut self, fi: usize, off: u64, parts: &mut [IoSlice]) {
        if self.failed.contains(&fi) {
            return;
        }
        let target = &self.files[fi].target;
        if !self.open.contains_key(&fi) {
            if self.open.len() >= MAX_OPEN_FILES {
                self.close_all();
            }
            match OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(target)
            {
                Ok(f) => {
                    self.open.insert(fi, f);
                }
                Err(x) => {
                    (self.err)(target, format!("cannot open for writing: {x}"));
                    self.failed.insert(fi);
                    return;
                }
            }
        }
        if let Some(f) = self.open.get(&fi) {
            if let Err(x) = write_all_vectored_at(f, parts, off) {
                (self.err)(target, format!("write failed: {x}"));
            }
        }
    }

    /// Closes the file. Workers never start a database's write-back
    /// themselves: doing so after every pack blocked them in the disk
    /// queue (about 1.5 s of a 530 MiB database's restore); a separate
    /// thread does it (see [`crate::writeback`]).
    fn close(&mut self, fi: usize) {
        self.open.remove(&fi);
    }

    fn close_all(&mut self) {
        self.open.clear();
    }
}

/// `pwritev` until every byte of `parts` is written at `off`.
fn write_all_vectored_at(
    f: &fs::File,
    mut parts: &mut [IoSlice],
    mut off: u64,
) -> std::io::Result<()> {
    while !parts.is_empty() {
        let at = libc::off_t::try_from(off)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        match nix::sys::uio::pwritev(f, parts, at) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                off += n as u64;
                IoSlice::advance_slices(&mut parts, n);
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Most parts in one vectored write (the kernel's limit, `IOV_MAX`).
const MAX_PARTS: usize = 1024;
/// Copied plaintexts shorter than this are joined with the writes that
/// continue them; longer ones go straight to the file.
const JOIN_BELOW: usize = 64 << 10;
/// Most copied bytes a joiner holds.
const JOIN_MAX: usize = 1 << 20;

/// A blob's plaintext: where it lies in the span, or decompressed.
enum Plain<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

/// One part of a joined write: borrowed from the span being restored, or
/// a range of the joiner's own buffer.
enum Part<'a> {
    Borrowed(&'a [u8]),
    Copied(std::ops::Range<usize>),
}

/// Joins writes that continue one another in the same file into one
/// vectored system call: a database comes back as one small page blob
/// after another, and a call per page would cost more than decrypting
/// it. Plaintexts that lie in the span are borrowed, so the joiner is
/// flushed before the span's buffer is reused; decompressed ones are
/// copied (up to `JOIN_MAX` bytes) so that each is freed at once.
#[derive(Default)]
struct WriteJoiner<'a> {
    file: usize,
    off: u64,
    len: u64,
    parts: Vec<Part<'a>>,
    copied: Vec<u8>,
}

impl<'a> WriteJoiner<'a> {
    /// Starts a new joined write unless `off` in `fi` continues the
    /// current one and `copy` more bytes fit.
    fn start(&mut self, out: &mut Outputs, fi: usize, off: u64, copy: usize) {
        let continues = !self.parts.is_empty()
            && self.file == fi
            && self.off + self.len == off
            && self.parts.len() < MAX_PARTS
            && self.copied.len() + copy <= JOIN_MAX;
        if !continues {
            self.flush(out);
            self.file = fi;
            self.off = off;
        }
    }

    fn write(&mut self, out: &mut Outputs, fi: usize, off: u64, data: &'a [u8]) {
        self.start(out, fi, off, 0);
        self.parts.push(Part::Borrowed(data));
        self.len += data.len() as u64;
    }

    fn write_copy(&mut self, out: &mut Outputs, fi: usize, off: u64, data: &[u8]) {
        if data.len() >= JOIN_BELOW {
            out.write(fi, off, &mut [IoSlice::new(data)]);
            return;
        }
        self.start(out, fi, off, data.len());
        let at = self.copied.len();
        self.copied.extend_from_slice(data);
        self.parts.push(Part::Copied(at..at + data.len()));
        self.len += data.len() as u64;
    }

    fn flush_file(&mut self, out: &mut Outputs, fi: usize) {
        if self.file == fi {
            self.flush(out);
        }
    }

    fn flush(&mut self, out: &mut Outputs) {
        if self.parts.is_empty() {
            return;
        }
        let mut slices: Vec<IoSlice> = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Borrowed(d) => IoSlice::new(d),
                Part::Copied(r) => IoSlice::new(&self.copied[r.clone()]),
            })
            .collect();
        out.write(self.file, self.off, &mut slices);
        self.parts.clear();
        self.copied.clear();
        self.len = 0;
    }
}

/// Block size for hole detection: runs of zeros covering whole blocks of
/// the file are not written, so the file system keeps them as holes.
const HOLE_BLOCK: u64 = 4096;

/// The ranges of `data` (to be written at file offset `off`) that must be
/// written: everything except whole file blocks of zeros.
fn data_runs(data: &[u8], off: u64) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = 0usize;
    while i < data.len() {
        // Up to the next block boundary of the file.
        let pos = off + i as u64;
        let end = ((pos / HOLE_BLOCK + 1) * HOLE_BLOCK - off).min(data.len() as u64) as usize;
        let whole = pos.is_multiple_of(HOLE_BLOCK) && (end - i) as u64 == HOLE_BLOCK;
        if !(whole && data[i..end].iter().all(|&b| b == 0)) {
            match runs.last_mut() {
                Some(r) if r.1 == i => r.1 = end,
                _ => runs.push((i, end)),
            }
        }
        i = end;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repofile::tree::{Node, NodeKind};
    use std::path::PathBuf;
    use std::sync::Mutex;

    #[test]
    fn zero_blocks_become_holes() {
        let mut d = vec![0u8; 5 * 4096];
        d[10] = 1;
        d[3 * 4096 + 5] = 1;
        assert_eq!(data_runs(&d, 0), vec![(0, 4096), (3 * 4096, 4 * 4096)]);
        // Unaligned start: partial blocks are always written.
        let r = data_runs(&d, 100);
        assert_eq!(r.first().map(|x| x.0), Some(0));
        assert!(r.iter().all(|(a, b)| a < b && *b <= d.len()));
        assert!(data_runs(&vec![0u8; 8192], 0).is_empty());
        assert_eq!(data_runs(&[0u8; 10], 0), vec![(0, 10)]);
    }

    fn plan_for(target: PathBuf) -> FilePlan {
        let node = Node {
            mode: 0o644,
            ..Node::bare(b"f", NodeKind::File)
        };
        FilePlan {
            target,
            node,
            content: Vec::new(),
            final_path: None,
            check_later: false,
        }
    }

    /// Thousands of small contiguous writes (more than one vectored call
    /// may carry), a gap, and a write after it reach the file byte for
    /// byte; a file that cannot be opened is reported once.
    #[test]
    fn joined_writes_reach_the_file_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, b"").unwrap();
        let bad = d.path().join("missing-dir").join("g");
        let files = vec![plan_for(p.clone()), plan_for(bad)];
        let errors = Mutex::new(Vec::new());
        let err = |p: &Path, m: String| {
            errors.lock().unwrap().push(format!("{}: {m}", p.display()));
        };
        let mut out = Outputs {
            files: &files,
            open: HashMap::new(),
            failed: HashSet::new(),
            err: &err,
        };
        let data: Vec<u8> = (0..3000 * 7).map(|i| (i % 251) as u8).collect();
        let mut j = WriteJoiner::default();
        for (k, c) in data.chunks(7).enumerate() {
            j.write(&mut out, 0, (k * 7) as u64, c);
        }
        // Copied parts join borrowed ones; a long copy goes straight out.
        let copied: Vec<u8> = (0..5000).map(|i| (i % 13) as u8 + 1).collect();
        for (k, c) in copied.chunks(1000).enumerate() {
            j.write_copy(&mut out, 0, (data.len() + k * 1000) as u64, c);
        }
        let long = vec![9u8; 100 << 10];
        j.write_copy(&mut out, 0, 40_000, &long);
        j.write(&mut out, 0, 30_000, b"tail");
        j.write(&mut out, 1, 0, b"lost");
        j.write(&mut out, 1, 4, b"lost");
        j.flush(&mut out);
        j.write(&mut out, 1, 8, b"lost");
        j.flush(&mut out);
        out.close_all();
        let got = fs::read(&p).unwrap();
        assert_eq!(got.len(), 40_000 + long.len());
        assert!(got[..data.len()] == data[..], "joined writes differ");
        let c = data.len() + copied.len();
        assert!(got[data.len()..c] == copied[..], "copied writes differ");
        assert!(got[c..30_000].iter().all(|b| *b == 0));
        assert_eq!(&got[30_000..30_004], b"tail");
        assert!(got[30_004..40_000].iter().all(|b| *b == 0));
        assert!(got[40_000..] == long[..]);
        let errors = errors.into_inner().unwrap();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("cannot open for writing"), "{errors:?}");
    }
}
