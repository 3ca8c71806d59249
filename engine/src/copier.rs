//! Copying snapshots from one repository into another, as operators do to
//! keep a second copy in another place.
//!
//! Blob IDs are keyed per repository, so nothing can be copied as stored:
//! every blob the target lacks is read from the source (authenticated and
//! verified there), identified under the target's ID key, and sealed under
//! the target's keys. Chunk boundaries are kept as they are, so a copied
//! file has the same blobs in both repositories.
//!
//! What the target already holds is found without reading data: each
//! snapshot copied earlier (recorded in its `copy_of`) is walked side by
//! side with its source, which maps source blob and tree IDs to the
//! target's. An unchanged directory is then reused whole and an unchanged
//! file costs no read, so a daily copy reads only what changed.
//!
//! Write order per snapshot is the backup's: packs, then the index that
//! lists them, then the snapshot. An interrupted copy leaves packs that are
//! indexed and reused by the next run, and no snapshot that lacks data.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::Index;
use crate::lock::Cancel;
use crate::pack::{self, BlobType};
use crate::packer::Packer;
use crate::repofile::snapshot::{CopyOrigin, Snapshot};
use crate::repofile::tree::{encode_list, Node, NodeKind, Tree, LIST_LEN};
use crate::repository::Repository;

/// Threads reading from the source: copying waits on storage more than on
/// the CPU, so more requests are kept in flight than there are cores.
const MIN_THREADS: usize = 8;

#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Read and count, store nothing.
    pub dry_run: bool,
}

/// A source snapshot and its copy in the target.
#[derive(Debug, Clone, Serialize)]
pub struct CopiedSnapshot {
    pub source: String,
    /// The copy's ID (`None` for a dry run).
    pub target: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    /// Snapshots copied by this run.
    pub copied: Vec<CopiedSnapshot>,
    /// Snapshots the target already had, with their copies there.
    pub skipped: Vec<CopiedSnapshot>,
    pub data_blobs_added: u64,
    pub tree_blobs_added: u64,
    /// Plaintext bytes of the blobs added to the target.
    pub bytes_added: u64,
    /// The same blobs as stored (compressed and sealed).
    pub bytes_added_stored: u64,
    /// Data blobs read from the source.
    pub blobs_read: u64,
    /// Plaintext bytes of those blobs.
    pub bytes_read: u64,
}

/// Progress callbacks; every method has a no-op default.
pub trait CopyProgress: Sync {
    fn snapshot_started(&self, _source: &Snapshot, _number: usize, _of: usize) {}
    fn bytes_read(&self, _n: u64) {}
}

pub struct NoCopyProgress;
impl CopyProgress for NoCopyProgress {}

/// Whether two snapshots record the same backup: same start time, host,
/// user, paths and tags. Catches copies whose `copy_of` names another
/// repository (a chain of copies) or was lost.
fn same_backup(a: &Snapshot, b: &Snapshot) -> bool {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    a.time == b.time
        && a.hostname == b.hostname
        && a.username == b.username
        && sorted(&a.paths) == sorted(&b.paths)
        && sorted(&a.tags) == sorted(&b.tags)
}

/// The target's copy of `s`, if it has one.
fn existing_copy<'a>(
    src: &Repository,
    dst: &Repository,
    s: &Snapshot,
    targets: &'a [Snapshot],
) -> Option<&'a Snapshot> {
    targets
        .iter()
        .find(|d| {
            d.copy_of
                == Some(CopyOrigin {
                    repository: *src.id(),
                    snapshot: s.id,
                })
        })
        // A snapshot that was itself copied from the target.
        .or_else(|| match s.copy_of {
            Some(o) if o.repository == *dst.id() => targets.iter().find(|d| d.id == o.snapshot),
            _ => None,
        })
        .or_else(|| targets.iter().find(|d| same_backup(s, d)))
}

/// Source-to-target ID maps, shared by the threads of one run.
#[derive(Default)]
struct Maps {
    data: Mutex<HashMap<Id, Id>>,
    trees: Mutex<HashMap<Id, Id>>,
}

impl Maps {
    fn data(&self, s: &Id) -> Option<Id> {
        self.data
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(s)
            .copied()
    }

    fn tree(&self, s: &Id) -> Option<Id> {
        self.trees
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(s)
            .copied()
    }

    fn set_data(&self, s: Id, d: Id) {
        self.data
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(s, d);
    }

    fn set_tree(&self, s: Id, d: Id) {
        self.trees
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(s, d);
    }
}

struct Copier<'a> {
    src: &'a Repository,
    dst: &'a Repository,
    maps: &'a Maps,
    cancel: &'a Cancel,
    progress: &'a dyn CopyProgress,
    blobs_read: AtomicU64,
    bytes_read: AtomicU64,
}

impl Copier<'_> {
    /// Learns the IDs of an earlier copy by walking the source tree `s` and
    /// its copy `d` together. Only entries whose names, kinds, sizes and
    /// blob counts agree are mapped; anything unreadable is left unmapped
    /// (it is then simply read again), since this only saves work.
    fn seed(&self, s: Id, d: Id) -> Result<()> {
        self.cancel.check()?;
        if self.maps.tree(&s).is_some() {
            return Ok(());
        }
        let (Ok(st), Ok(dt)) = (self.src.load_tree(&s), self.dst.load_tree(&d)) else {
            return Ok(());
        };
        self.maps.set_tree(s, d);
        st.nodes.par_iter().try_for_each(|sn| {
            let Some(dn) = dt.find(&sn.name) else {
                return Ok(());
            };
            if sn.kind != dn.kind {
                return Ok(());
            }
            match (sn.kind, sn.subtree, dn.subtree) {
                (NodeKind::Dir, Some(a), Some(b)) => self.seed(a, b),
                (NodeKind::File, _, _) if sn.size == dn.size => {
                    if let (Ok(a), Ok(b)) = (self.src.file_content(sn), self.dst.file_content(dn)) {
                        if a.len() == b.len() {
                            let mut m = self.maps.data.lock().unwrap_or_else(|e| e.into_inner());
                            m.extend(a.into_iter().zip(b));
                        }
                    }
                    Ok(())
                }
                _ => Ok(()),
            }
        })
    }

    /// The target ID of the source data blob `s`, copying it if the target
    /// lacks it.
    fn data(&self, packer: &Packer, s: &Id) -> Result<Id> {
        if let Some(d) = self.maps.data(s) {
            if packer.known().has_type(&d, BlobType::Data) || packer.has(&d) {
                return Ok(d);
            }
        }
        self.cancel.check()?;
        let plain = self.src.read_blob(s)?;
        self.blobs_read.fetch_add(1, Ordering::Relaxed);
        self.bytes_read
            .fetch_add(plain.len() as u64, Ordering::Relaxed);
        self.progress.bytes_read(plain.len() as u64);
        let d = packer.save(BlobType::Data, &plain)?;
        self.maps.set_data(*s, d);
        Ok(d)
    }

    /// The target ID of the source tree `s`, copying it and everything it
    /// references that the target lacks.
    fn tree(&self, packer: &Packer, s: &Id) -> Result<Id> {
        if let Some(d) = self.maps.tree(s) {
            if packer.known().has_type(&d, BlobType::Tree) || packer.has(&d) {
                return Ok(d);
            }
        }
        self.cancel.check()?;
        let t = self.src.load_tree(s)?;
        let nodes = t
            .nodes
            .par_iter()
            .map(|n| self.node(packer, n))
            .collect::<Result<Vec<Node>>>()?;
        let d = packer.save(BlobType::Tree, &Tree { nodes }.encode())?;
        self.maps.set_tree(*s, d);
        Ok(d)
    }

    fn node(&self, packer: &Packer, n: &Node) -> Result<Node> {
        let mut n = n.clone();
        match n.kind {
            NodeKind::Dir => {
                if let Some(sub) = n.subtree {
                    n.subtree = Some(self.tree(packer, &sub)?);
                }
            }
            NodeKind::File if !n.content.is_empty() || !n.lists.is_empty() => {
                let content = self
                    .src
                    .file_content(&n)?
                    .par_iter()
                    .map(|b| self.data(packer, b))
                    .collect::<Result<Vec<Id>>>()?;
                // The same shape as in the source: lists stay lists.
                if n.lists.is_empty() {
                    n.content = content;
                } else {
                    n.lists = content
                        .chunks(LIST_LEN)
                        .map(|part| packer.save(BlobType::Tree, &encode_list(part)))
                        .collect::<Result<Vec<Id>>>()?;
                }
            }
            _ => {}
        }
        Ok(n)
    }
}

/// Copies `snapshots` (of `src`) into `dst`, oldest first, skipping those
/// `dst` already has. Both repositories must have their index loaded.
pub fn copy(
    src: &Repository,
    dst: &Repository,
    snapshots: &[Snapshot],
    opts: &CopyOptions,
    progress: &dyn CopyProgress,
    cancel: &Cancel,
) -> Result<CopyReport> {
    if src.id() == dst.id() {
        return Err(Error::InvalidArgument(format!(
            "{} and {} are the same repository: nothing to copy",
            src.location(),
            dst.location()
        )));
    }
    let mut report = CopyReport::default();
    let targets = dst.snapshots()?;
    let mut todo: Vec<&Snapshot> = Vec::new();
    let mut pairs: Vec<(Id, Id)> = Vec::new();
    // Source snapshot ID to the ID of its copy in the target.
    let mut copies: HashMap<Id, Id> = HashMap::new();
    let mut sorted: Vec<&Snapshot> = snapshots.iter().collect();
    sorted.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
    sorted.dedup_by(|a, b| a.id == b.id);
    for s in sorted {
        match existing_copy(src, dst, s, &targets) {
            Some(d) => {
                pairs.push((s.tree, d.tree));
                copies.insert(s.id, d.id);
                report.skipped.push(CopiedSnapshot {
                    source: s.id.to_hex(),
                    target: Some(d.id.to_hex()),
                });
            }
            None => todo.push(s),
        }
    }
    if todo.is_empty() {
        return Ok(report);
    }
    // Earlier copies of any of the source's snapshots tell what the target
    // holds, not just those selected now.
    for s in src.snapshots()? {
        if let std::collections::hash_map::Entry::Vacant(e) = copies.entry(s.id) {
            if let Some(d) = existing_copy(src, dst, &s, &targets) {
                pairs.push((s.tree, d.tree));
                e.insert(d.id);
            }
        }
    }

    let maps = Maps::default();
    let copier = Copier {
        src,
        dst,
        maps: &maps,
        cancel,
        progress,
        blobs_read: AtomicU64::new(0),
        bytes_read: AtomicU64::new(0),
    };
    let threads = rayon::current_num_threads().max(MIN_THREADS);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("cairn-copy-{i}"))
        .build()
        .map_err(|e| Error::InvalidArgument(format!("cannot start copy threads: {e}")))?;

    pool.install(|| -> Result<()> {
        // Newest first: they share the most with what is copied next.
        for (s, d) in pairs.iter().rev() {
            copier.seed(*s, *d)?;
        }
        Ok(())
    })?;

    let mut known: Arc<Index> = dst.index();
    for (i, s) in todo.iter().enumerate() {
        cancel.check()?;
        progress.snapshot_started(s, i + 1, todo.len());
        let packer = Packer::with_known(dst, known.clone(), opts.dry_run);
        let tree = match pool.install(|| copier.tree(&packer, &s.tree)) {
            Ok(t) => t,
            Err(e) => {
                packer.abort();
                return Err(e);
            }
        };
        let st = &packer.stats;
        report.data_blobs_added += st.data_blobs.load(Ordering::Relaxed);
        report.tree_blobs_added += st.tree_blobs.load(Ordering::Relaxed);
        report.bytes_added += st.bytes_added.load(Ordering::Relaxed);
        report.bytes_added_stored += st.bytes_stored.load(Ordering::Relaxed);
        let stored = packer.finish()?;
        drop(packer);
        // Later snapshots deduplicate against what this one stored.
        let idx = Arc::make_mut(&mut known);
        for p in &stored.packs {
            let entries = pack::decode_entries(&p.blobs, Some(p.size), "new index")?;
            idx.add_pack(p.id, p.size, &entries);
        }
        let mut n = (*s).clone();
        n.tree = tree;
        n.parent = s.parent.and_then(|p| copies.get(&p).copied());
        // `original` names a snapshot of the source; it means nothing here.
        n.original = None;
        n.copy_of = Some(CopyOrigin {
            repository: *src.id(),
            snapshot: s.id,
        });
        let target = if opts.dry_run {
            None
        } else {
            let id = dst.save_snapshot(&n)?;
            copies.insert(s.id, id);
            Some(id.to_hex())
        };
        report.copied.push(CopiedSnapshot {
            source: s.id.to_hex(),
            target,
        });
    }
    if !opts.dry_run {
        dst.set_index(Arc::try_unwrap(known).unwrap_or_else(|a| (*a).clone()));
    }
    report.blobs_read = copier.blobs_read.load(Ordering::Relaxed);
    report.bytes_read = copier.bytes_read.load(Ordering::Relaxed);
    Ok(report)
}
