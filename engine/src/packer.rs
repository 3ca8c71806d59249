//! Collects new blobs into packs and stores them in the background, then
//! indexes them. Order on storage: a pack is stored before any index file
//! lists it, so an index never points at a missing pack.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::backend::Backend;
use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::format::{FileType, Role};
use crate::id::{Id, IdSet};
use crate::index::Index;
use crate::pack::{self, BlobType, PackWriter};
use crate::repofile::indexfile::{IndexFile, IndexPack};
use crate::repofile::seal_metadata;
use crate::repository::{pack_path, Repository, INDEX};

thread_local! {
    // Each sealing thread compresses and seals every blob into the same
    // two buffers, instead of two fresh ones per chunk that the allocator
    // gives back to the system and the next chunk faults in again (the
    // sysroot's first backup: 586 -> 214 madvise calls, anonymous page
    // faults 2.3% -> 1.8% of its CPU samples).
    static SEAL_BUFFERS: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Seal buffers grown beyond this (by a chunk far above the average) are
/// freed after use rather than kept by the thread.
const KEEP_SEAL_BUFFER: usize = 4 << 20;

/// Packs stored before an intermediate index file is written, so that an
/// interrupted backup leaves most of its work indexed and reusable.
const PACKS_PER_INDEX: usize = 64;

/// Counters of what was added.
#[derive(Debug, Default)]
pub struct PackerStats {
    pub data_blobs: AtomicU64,
    pub tree_blobs: AtomicU64,
    pub bytes_added: AtomicU64,
    pub bytes_stored: AtomicU64,
}

/// What the packer wrote, once finished.
#[derive(Debug, Default)]
pub struct PackerResult {
    pub packs: Vec<IndexPack>,
    pub index_files: Vec<Id>,
}

/// The background uploader, and once it has stopped, how it ended: every
/// caller that finds it stopped must report the same cause.
enum Uploader {
    Running(JoinHandle<Result<PackerResult>>),
    Failed(Error),
    Finished,
}

/// Buffers of stored packs, for the next data packs to fill; at most
/// [`MAX_SPARE_BUFFERS`].
type Spare = Arc<Mutex<Vec<Vec<u8>>>>;

/// A data pack is handed to the uploader as the next one starts, so the
/// buffer of the pack stored before is the one the next pack needs: one is
/// enough, and data packs hold at most three buffers (one being filled,
/// one being stored, one kept), against two before they were reused.
/// Tree packs fill slowly and rarely and take fresh memory, so that a full
/// buffer does not sit in a tree pack for most of a backup.
const MAX_SPARE_BUFFERS: usize = 1;

/// Deduplicates and packs blobs for one run. Safe to share across threads.
pub struct Packer {
    key: Arc<MasterKey>,
    repo_id: Id,
    level: i32,
    pack_size: usize,
    /// Room reserved per pack buffer: the target size plus the largest
    /// blob that can close it plus a typical header, so the buffer is not
    /// reallocated (and briefly doubled) when the last blob overshoots.
    /// Untouched capacity costs address space, not memory.
    pack_capacity: usize,
    known: Arc<Index>,
    claimed: Mutex<IdSet>,
    open: [Mutex<Option<PackWriter>>; 2],
    tx: Mutex<Option<SyncSender<PackWriter>>>,
    worker: Mutex<Uploader>,
    spare: Spare,
    pub stats: PackerStats,
}

impl Packer {
    /// Starts a packer for `repo`. With `dry_run`, packs are built but not
    /// stored.
    pub fn new(repo: &Repository, dry_run: bool) -> Packer {
        Packer::with_known(repo, repo.index(), dry_run)
    }

    /// A packer that deduplicates only against `known` (prune's repacking
    /// uses an empty index, since every blob it copies is indexed already).
    pub fn with_known(repo: &Repository, known: Arc<Index>, dry_run: bool) -> Packer {
        // A rendezvous: a full pack waits for the uploader rather than
        // queueing, so at most one pack per type is being filled and one
        // uploaded, which bounds memory; storing a pack is faster than
        // filling one, so workers rarely wait.
        let (tx, rx) = sync_channel::<PackWriter>(0);
        let backend = repo.backend().clone();
        let key = repo.key().clone();
        let repo_id = *repo.id();
        let spare = Spare::default();
        let returned = spare.clone();
        let worker = match std::thread::Builder::new()
            .name("cairn-upload".into())
            .spawn(move || upload_loop(rx, backend, key, repo_id, dry_run, returned))
        {
            Ok(h) => Uploader::Running(h),
            Err(e) => Uploader::Failed(Error::InvalidArgument(format!(
                "cannot start the pack uploader: {e}"
            ))),
        };
        Packer {
            key: repo.key().clone(),
            repo_id,
            level: repo.config().compression,
            pack_size: repo.config().pack_size as usize,
            pack_capacity: repo.config().pack_size as usize
                + repo.config().chunker.max_size as usize
                + (256 << 10),
            known,
            claimed: Mutex::new(IdSet::default()),
            open: [Mutex::new(None), Mutex::new(None)],
            tx: Mutex::new(Some(tx)),
            worker: Mutex::new(worker),
            spare,
            stats: PackerStats::default(),
        }
    }

    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    /// Whether the repository (or this run) already has the blob.
    pub fn has(&self, id: &Id) -> bool {
        self.known.contains(id)
            || self
                .claimed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(id)
    }

    /// The index as it was when the run started.
    pub fn known(&self) -> &Index {
        &self.known
    }

    /// Claims a blob for storing: true when it is new, in which case the
    /// caller must [`Packer::add`] it.
    pub fn claim(&self, id: &Id) -> bool {
        !self.known.contains(id)
            && self
                .claimed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(*id)
    }

    /// Computes a blob's ID and stores it if new. Returns the ID.
    pub fn save(&self, t: BlobType, plain: &[u8]) -> Result<Id> {
        let id = self.key.blob_id(plain);
        if self.claim(&id) {
            self.seal_and_add(t, id, plain)?;
        }
        Ok(id)
    }

    /// Compresses, encrypts and adds a blob claimed with [`Packer::claim`]
    /// under `id`, which must be its blob ID.
    pub fn seal_and_add(&self, t: BlobType, id: Id, plain: &[u8]) -> Result<()> {
        SEAL_BUFFERS.with(|cell| {
            let (scratch, sealed) = &mut *cell.borrow_mut();
            let compressed = pack::seal_blob_into(
                &self.key,
                &self.repo_id,
                t,
                &id,
                plain,
                self.level,
                scratch,
                sealed,
            );
            let r = self.add(t, id, sealed, plain.len() as u32, compressed);
            for b in [scratch, sealed] {
                if b.capacity() > KEEP_SEAL_BUFFER {
                    *b = Vec::new();
                }
            }
            r
        })
    }

    /// Adds a sealed blob previously claimed.
    pub fn add(
        &self,
        t: BlobType,
        id: Id,
        sealed: &[u8],
        raw_len: u32,
        compressed: bool,
    ) -> Result<()> {
        match t {
            BlobType::Data => self.stats.data_blobs.fetch_add(1, Ordering::Relaxed),
            BlobType::Tree => self.stats.tree_blobs.fetch_add(1, Ordering::Relaxed),
        };
        self.stats
            .bytes_added
            .fetch_add(u64::from(raw_len), Ordering::Relaxed);
        self.stats
            .bytes_stored
            .fetch_add(sealed.len() as u64, Ordering::Relaxed);
        let slot = &self.open[t as usize];
        let mut g = slot.lock().unwrap_or_else(|e| e.into_inner());
        let w = g.get_or_insert_with(|| {
            let spare = match t {
                BlobType::Data => self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop(),
                BlobType::Tree => None,
            };
            match spare {
                Some(buf) => PackWriter::with_buffer(t, buf),
                None => PackWriter::new(t, self.pack_capacity),
            }
        });
        w.add(id, sealed, raw_len, compressed);
        if w.len() >= self.pack_size || w.count() as u64 >= crate::limits::MAX_PACK_ENTRIES / 2 {
            if let Some(w) = g.take() {
                // Handed over with the slot still held: no other thread
                // starts a new pack of this type until the uploader has
                // taken this one, so at most two are in memory per type.
                self.send(w)?;
            }
        }
        Ok(())
    }

    fn send(&self, w: PackWriter) -> Result<()> {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match tx {
            Some(tx) if tx.send(w).is_ok() => Ok(()),
            // The uploader stopped: its error is the one to report.
            _ => Err(self
                .join_worker()
                .err()
                .unwrap_or_else(|| Error::InvalidArgument("pack uploader stopped".into()))),
        }
    }

    /// Waits for the uploader to stop and returns how it ended. The lock is
    /// held while joining, so concurrent callers wait and then all see the
    /// uploader's own error.
    fn join_worker(&self) -> Result<PackerResult> {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut g = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *g, Uploader::Finished) {
            Uploader::Running(h) => {
                let r = h.join().unwrap_or_else(|_| {
                    Err(Error::InvalidArgument("pack uploader panicked".into()))
                });
                if let Err(e) = &r {
                    *g = Uploader::Failed(e.clone());
                }
                r
            }
            Uploader::Failed(e) => {
                *g = Uploader::Failed(e.clone());
                Err(e)
            }
            Uploader::Finished => Err(Error::InvalidArgument(
                "pack uploader already finished".into(),
            )),
        }
    }

    /// Stores the partly filled packs, waits for all uploads, and writes the
    /// last index file.
    pub fn finish(&self) -> Result<PackerResult> {
        for slot in &self.open {
            let w = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(w) = w {
                if !w.is_empty() {
                    self.send(w)?;
                }
            }
        }
        self.join_worker()
    }

    /// Abandons blobs not yet in a stored pack but indexes every pack
    /// already stored, so an interrupted run's work is reused next time.
    pub fn abort(&self) {
        for slot in &self.open {
            slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
        let _ = self.join_worker();
    }
}

fn upload_loop(
    rx: Receiver<PackWriter>,
    backend: Arc<dyn Backend>,
    key: Arc<MasterKey>,
    repo_id: Id,
    dry_run: bool,
    spare: Spare,
) -> Result<PackerResult> {
    let mut result = PackerResult::default();
    let mut pending: Vec<IndexPack> = Vec::new();
    let write_index = |pending: &mut Vec<IndexPack>, result: &mut PackerResult| -> Result<()> {
        if pending.is_empty() || dry_run {
            result.packs.append(pending);
            return Ok(());
        }
        let f = IndexFile {
            supersedes: Vec::new(),
            packs: std::mem::take(pending),
            obsolete: Vec::new(),
        };
        let bytes = seal_metadata(&key, &repo_id, FileType::Index, Role::Index, &f);
        let id = Id::of_stored(&bytes);
        backend.write(&format!("{INDEX}{id}"), bytes)?;
        result.index_files.push(id);
        result.packs.extend(f.packs);
        Ok(())
    };
    let mut failure = None;
    for w in rx.iter() {
        let p = w.finish(&key, &repo_id);
        let size = p.bytes.len() as u64;
        let done = if dry_run {
            Some(p.bytes)
        } else {
            match backend.write_reusing(&pack_path(&p.id), p.bytes) {
                Ok(b) => b,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        };
        if let Some(b) = done {
            let mut s = spare.lock().unwrap_or_else(|e| e.into_inner());
            if s.len() < MAX_SPARE_BUFFERS {
                s.push(b);
            }
        }
        pending.push(IndexPack {
            id: p.id,
            size,
            blobs: pack::encode_entries(&p.entries),
        });
        if pending.len() >= PACKS_PER_INDEX {
            if let Err(e) = write_index(&mut pending, &mut result) {
                failure = Some(e);
                break;
            }
        }
    }
    drop(rx);
    // Index what was stored even when failing, then report the failure.
    let r = write_index(&mut pending, &mut result);
    match (failure, r) {
        (Some(e), _) | (None, Err(e)) => Err(e),
        (None, Ok(())) => Ok(result),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::OpendalBackend;
    use crate::repository::InitOptions;

    fn noise(seed: u8, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        let mut h = blake3::Hasher::new();
        h.update(&[seed]);
        h.finalize_xof().fill(&mut v);
        v
    }

    /// When storing packs fails, every worker feeding the packer reports
    /// the storage error itself, whichever of them notices first, so the
    /// operator sees the cause and not a secondary "uploader stopped".
    #[test]
    fn every_worker_sees_the_uploaders_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(OpendalBackend::local(dir.path(), true).unwrap());
        let opts = InitOptions {
            kdf_memory_kib: crate::limits::MIN_KDF_MEMORY_KIB,
            kdf_iterations: 1,
            pack_size: 1 << 20,
            ..Default::default()
        };
        let repo = Repository::init(backend, b"pw", &opts).unwrap();
        // A file where the data directory belongs: every pack upload fails.
        let data = dir.path().join("data");
        std::fs::remove_dir_all(&data).unwrap();
        std::fs::write(&data, b"not a directory").unwrap();
        let packer = Packer::new(&repo, false);
        let errors: Vec<Error> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..6u8)
                .map(|t| {
                    let packer = &packer;
                    s.spawn(move || {
                        for i in 0..8u8 {
                            let blob = noise(t * 16 + i, 700 << 10);
                            if let Err(e) = packer.save(BlobType::Data, &blob) {
                                return Some(e);
                            }
                        }
                        packer.finish().err()
                    })
                })
                .collect();
            hs.into_iter().filter_map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(errors.len(), 6, "every worker fails");
        for e in &errors {
            let m = e.to_string();
            assert!(
                matches!(e, Error::Backend { .. }) && m.contains("data/"),
                "worker reported {m:?} instead of the storage error"
            );
        }
    }
}
