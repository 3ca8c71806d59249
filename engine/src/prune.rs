//! `prune`: removes data no snapshot references.
//!
//! Order on storage, so that a prune killed at any instant leaves a
//! repository that `check` passes and that the next prune finishes:
//! 1. repacked blobs go to new packs (indexed by new index files);
//! 2. one new index lists every pack still needed and supersedes all
//!    index files read at the start;
//! 3. the superseded index files are deleted;
//! 4. packs are deleted last. A pack that became unused is not deleted at
//!    once: the new index records it as obsolete with the time, and a later
//!    prune deletes it once the grace period has passed and it is still
//!    unused (or puts it back in the index if a snapshot needs it after
//!    all). `instant_delete` skips the grace period.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::Index;
use crate::lock::Cancel;
use crate::pack::{self, BlobType, PackEntry};
use crate::packer::Packer;
use crate::repofile::indexfile::{IndexFile, IndexPack, ObsoletePack};
use crate::repofile::tree::NodeKind;
use crate::repository::{file_name, pack_path, Repository, DATA, INDEX};

/// Largest number of blobs listed in one index file written by prune.
const BLOBS_PER_INDEX: usize = 200_000;

#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Share of unused bytes tolerated in packs that are kept (0.05 = 5%).
    pub max_unused: f64,
    /// Most bytes of packs to repack in one run.
    pub max_repack_size: Option<u64>,
    /// Grace period before an unused pack is deleted.
    pub keep_delete: chrono::Duration,
    /// Delete unused packs at once (only safe when no one else writes).
    pub instant_delete: bool,
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused: 0.05,
            max_repack_size: None,
            keep_delete: chrono::Duration::hours(24),
            instant_delete: false,
            dry_run: false,
        }
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub snapshots: usize,
    pub packs: usize,
    pub blobs_used: usize,
    pub blobs_unused: usize,
    pub bytes_used: u64,
    pub bytes_unused: u64,
    pub packs_kept: usize,
    pub packs_repacked: usize,
    pub bytes_repacked: u64,
    pub packs_unused: usize,
    pub packs_unindexed: usize,
    pub packs_marked_obsolete: usize,
    pub packs_restored: usize,
    pub packs_deleted: usize,
    pub bytes_deleted: u64,
    /// Bytes that will be freed once obsolete packs pass the grace period.
    pub bytes_pending: u64,
    pub index_files_written: usize,
    pub index_files_deleted: usize,
}

pub trait PruneProgress: Sync {
    fn phase(&self, _what: &str) {}
}

pub struct NoPruneProgress;
impl PruneProgress for NoPruneProgress {}

struct PackInfo {
    size: u64,
    entries: Vec<PackEntry>,
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Walks every snapshot and returns the blobs they reference; blobs not in
/// `index` are returned separately.
fn used_blobs(repo: &Repository, cancel: &Cancel) -> Result<(HashSet<Id>, HashSet<Id>, usize)> {
    let snaps = repo.snapshots()?;
    let index = repo.index();
    let mut used = HashSet::new();
    let mut missing = HashSet::new();
    let mut stack: Vec<Id> = snaps.iter().map(|s| s.tree).collect();
    while let Some(t) = stack.pop() {
        cancel.check()?;
        if !used.insert(t) {
            continue;
        }
        if !index.has_type(&t, BlobType::Tree) {
            missing.insert(t);
            continue;
        }
        let tree = repo.load_tree(&t)?;
        for n in &tree.nodes {
            match n.kind {
                NodeKind::Dir => stack.extend(n.subtree),
                NodeKind::File => {
                    for l in &n.lists {
                        if used.insert(*l) && !index.has_type(l, BlobType::Tree) {
                            missing.insert(*l);
                        }
                    }
                    let content = if n.lists.iter().all(|l| index.has_type(l, BlobType::Tree)) {
                        repo.file_content(n)?
                    } else {
                        n.content.clone()
                    };
                    for b in &content {
                        if used.insert(*b) && !index.has_type(b, BlobType::Data) {
                            missing.insert(*b);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok((used, missing, snaps.len()))
}

pub fn prune(
    repo: &Repository,
    opts: &PruneOptions,
    progress: &dyn PruneProgress,
    cancel: &Cancel,
) -> Result<PruneReport> {
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    progress.phase("reading index");
    let all_files = repo.read_index_files()?;
    let old_index_ids: Vec<Id> = all_files.iter().map(|(id, _)| *id).collect();
    let live = Repository::live_index_files(all_files);
    let mut packs: HashMap<Id, PackInfo> = HashMap::new();
    let mut order: Vec<Id> = Vec::new();
    let mut obsolete: HashMap<Id, ObsoletePack> = HashMap::new();
    for (id, f) in &live {
        let path = format!("{INDEX}{id}");
        for p in &f.packs {
            let entries = pack::decode_entries(&p.blobs, Some(p.size), &path)?;
            if let std::collections::hash_map::Entry::Vacant(v) = packs.entry(p.id) {
                order.push(p.id);
                v.insert(PackInfo {
                    size: p.size,
                    entries,
                });
            }
        }
        for o in &f.obsolete {
            obsolete.entry(o.id).or_insert_with(|| o.clone());
        }
    }
    let stored: HashMap<Id, u64> = repo
        .backend()
        .list(DATA)?
        .into_iter()
        .filter_map(|f| Id::from_hex(file_name(&f.path)).ok().map(|id| (id, f.size)))
        .collect();
    for id in &order {
        if !stored.contains_key(id) {
            return Err(Error::corrupt(pack_path(id), "indexed pack is missing from storage; run `cairn check` and `cairn repair index` before pruning"));
        }
    }
    obsolete.retain(|id, _| stored.contains_key(id));
    report.packs = stored.len();

    // Unindexed packs (interrupted backups): candidates for deletion, but
    // also for restoring if a snapshot needs them.
    let unindexed: Vec<Id> = stored
        .keys()
        .filter(|id| !packs.contains_key(id) && !obsolete.contains_key(id))
        .copied()
        .collect();
    report.packs_unindexed = unindexed.len();

    let build_index = |packs: &HashMap<Id, PackInfo>, order: &[Id]| {
        let mut idx = Index::default();
        for id in order {
            if let Some(p) = packs.get(id) {
                idx.add_pack(*id, p.size, &p.entries);
            }
        }
        idx
    };
    repo.set_index(build_index(&packs, &order));

    progress.phase("finding used blobs");
    let (mut used, mut missing, nsnaps) = used_blobs(repo, cancel)?;
    report.snapshots = nsnaps;
    let mut restored: HashSet<Id> = HashSet::new();
    if !missing.is_empty() {
        // Look for the missing blobs in obsolete and unindexed packs.
        let candidates: Vec<Id> = obsolete.keys().chain(unindexed.iter()).copied().collect();
        let headers: Vec<(Id, Result<Vec<PackEntry>>)> = candidates
            .par_iter()
            .map(|id| (*id, repo.pack_entries(id)))
            .collect();
        for (id, h) in headers {
            let Ok(entries) = h else { continue };
            if entries.iter().any(|e| missing.contains(&e.id)) {
                let size = stored.get(&id).copied().unwrap_or_default();
                order.push(id);
                packs.insert(id, PackInfo { size, entries });
                restored.insert(id);
                obsolete.remove(&id);
            }
        }
        repo.set_index(build_index(&packs, &order));
        let (u, m, _) = used_blobs(repo, cancel)?;
        used = u;
        missing = m;
        if !missing.is_empty() {
            return Err(Error::corrupt(
                repo.location(),
                format!("{} blobs referenced by snapshots are in no pack; run `cairn check` and `cairn repair` before pruning", missing.len()),
            ));
        }
    }
    report.packs_restored = restored.len();

    // One copy of each used blob; count used and unused bytes per pack.
    let mut chosen: HashSet<Id> = HashSet::new();
    let mut pack_used: HashMap<Id, (u64, Vec<PackEntry>)> = HashMap::new();
    for id in &order {
        let p = &packs[id];
        let mut u = (0u64, Vec::new());
        for e in &p.entries {
            if used.contains(&e.id) && chosen.insert(e.id) {
                u.0 += u64::from(e.length);
                u.1.push(*e);
                report.blobs_used += 1;
                report.bytes_used += u64::from(e.length);
            } else {
                report.blobs_unused += 1;
                report.bytes_unused += u64::from(e.length);
            }
        }
        pack_used.insert(*id, u);
    }

    let mut remove: Vec<Id> = Vec::new();
    let mut repack: Vec<Id> = Vec::new();
    let mut keep: Vec<Id> = Vec::new();
    let mut candidates: Vec<(f64, Id)> = Vec::new();
    // Unused bytes of a pack: its blobs that no snapshot needs (or that
    // have a copy elsewhere), with their header entries.
    let unused_of = |id: &Id| -> u64 {
        let chosen_n = pack_used[id].1.len();
        let all_n = packs[id].entries.len();
        let all: u64 = packs[id].entries.iter().map(|e| u64::from(e.length)).sum();
        (all - pack_used[id].0) + ((all_n - chosen_n) * pack::ENTRY_LEN) as u64
    };
    for id in &order {
        let es = &pack_used[id].1;
        let size = packs[id].size;
        if es.is_empty() {
            remove.push(*id);
        } else {
            let u = unused_of(id);
            if u > 0 {
                candidates.push((u as f64 / size as f64, *id));
            }
            keep.push(*id);
        }
    }
    // Repack the packs with the most unused space until the kept packs'
    // unused share is within the limit (or the repack budget is spent).
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let kept_size: u64 = keep.iter().map(|id| packs[id].size).sum();
    let mut kept_unused: u64 = keep.iter().map(unused_of).sum();
    let mut budget = opts.max_repack_size.unwrap_or(u64::MAX);
    let mut to_repack: HashSet<Id> = HashSet::new();
    for (_, id) in candidates {
        if kept_size == 0 || (kept_unused as f64) <= opts.max_unused * kept_size as f64 {
            break;
        }
        let size = packs[&id].size;
        if size > budget {
            continue;
        }
        budget -= size;
        kept_unused -= unused_of(&id);
        to_repack.insert(id);
    }
    keep.retain(|id| {
        if to_repack.contains(id) {
            repack.push(*id);
            false
        } else {
            true
        }
    });
    report.packs_kept = keep.len();
    report.packs_unused = remove.len();
    report.packs_repacked = repack.len();
    report.bytes_repacked = repack.iter().map(|id| packs[id].size).sum();

    // What becomes obsolete now, and which obsolete packs are deleted.
    let t = now();
    let mut newly: Vec<ObsoletePack> = Vec::new();
    for id in remove
        .iter()
        .chain(repack.iter())
        .chain(unindexed.iter().filter(|id| !restored.contains(id)))
    {
        newly.push(ObsoletePack {
            id: *id,
            size: stored.get(id).copied().unwrap_or_default(),
            since: t.to_rfc3339(),
        });
    }
    let mut delete: Vec<(Id, u64)> = Vec::new();
    let mut still: Vec<ObsoletePack> = Vec::new();
    for o in obsolete.into_values().chain(newly) {
        let expired = DateTime::parse_from_rfc3339(&o.since)
            .map(|s| t.signed_duration_since(s) >= opts.keep_delete)
            .unwrap_or(true);
        if opts.instant_delete || expired {
            delete.push((o.id, o.size));
        } else {
            still.push(o);
        }
    }
    report.packs_marked_obsolete = still.len();
    report.bytes_pending = still.iter().map(|o| o.size).sum();
    report.packs_deleted = delete.len();
    report.bytes_deleted = delete.iter().map(|(_, s)| s).sum();
    if opts.dry_run {
        return Ok(report);
    }

    // 1. Repack.
    progress.phase("repacking");
    let packer = Packer::with_known(repo, Arc::new(Index::default()), false);
    for id in &repack {
        cancel.check()?;
        let path = pack_path(id);
        let bytes = repo.backend().read(&path)?;
        for e in &pack_used[id].1 {
            let sealed = bytes
                .get(e.offset as usize..(e.offset + e.length) as usize)
                .ok_or_else(|| Error::corrupt(&path, "blob lies outside the pack"))?;
            // Verified before it is copied, so damage is never spread.
            pack::open_blob(repo.key(), repo.id(), e, sealed, &path)?;
            if packer.claim(&e.id) {
                packer.add(e.blob_type, e.id, sealed, e.raw_length, e.compressed)?;
            }
        }
    }
    let written = packer.finish()?;

    // 2. The new index.
    progress.phase("writing index");
    let mut supersedes = old_index_ids.clone();
    supersedes.extend(written.index_files.iter().copied());
    let mut all_packs: Vec<IndexPack> = keep
        .iter()
        .map(|id| IndexPack {
            id: *id,
            size: packs[id].size,
            blobs: pack::encode_entries(&packs[id].entries),
        })
        .collect();
    all_packs.extend(written.packs);
    let mut files: Vec<IndexFile> = Vec::new();
    let mut cur = IndexFile {
        supersedes: supersedes.clone(),
        packs: Vec::new(),
        obsolete: still,
    };
    let mut count = 0;
    for p in all_packs {
        let n = p.blobs.len() / pack::ENTRY_LEN;
        if count + n > BLOBS_PER_INDEX && !cur.packs.is_empty() {
            files.push(std::mem::replace(
                &mut cur,
                IndexFile {
                    supersedes: supersedes.clone(),
                    packs: Vec::new(),
                    obsolete: Vec::new(),
                },
            ));
            count = 0;
        }
        count += n;
        cur.packs.push(p);
    }
    files.push(cur);
    for f in &files {
        cancel.check()?;
        repo.save_index(f)?;
    }
    report.index_files_written = files.len();

    // 3. Old index files.
    progress.phase("removing old index files");
    for id in &supersedes {
        repo.backend().delete(&format!("{INDEX}{id}"))?;
    }
    report.index_files_deleted = supersedes.len();

    // 4. Packs.
    progress.phase("removing packs");
    for (id, _) in &delete {
        repo.backend().delete(&pack_path(id))?;
    }
    repo.load_index()?;
    Ok(report)
}
