//! `repair index` rebuilds the index from the pack headers (adopting packs
//! an interrupted backup left unindexed); with `read_data` it also reads
//! every pack, and moves the intact blobs of a damaged pack to new packs so
//! that the damaged pack drops out of the index. `repair snapshots`
//! rewrites snapshots whose trees reference blobs that are gone: what is
//! still there is kept, damaged files and directories are kept under a
//! `.damaged` name, and the originals are left in place unless asked.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::{peek_type, FileType, Role};
use crate::id::Id;
use crate::index::Index;
use crate::lock::Cancel;
use crate::pack::{self, BlobType, PackEntry};
use crate::packer::Packer;
use crate::repofile::indexfile::{IndexFile, IndexPack, ObsoletePack};
use crate::repofile::keyfile::KeyFile;
use crate::repofile::open_metadata;
use crate::repofile::snapshot::Snapshot;
use crate::repofile::tree::{Node, NodeKind, Tree};
use crate::repository::{
    check_name, file_name, pack_path, Repository, DATA, INDEX, KEYS, SNAPSHOTS,
};

#[derive(Debug, Default, Serialize)]
pub struct IndexRepairReport {
    pub packs: usize,
    pub packs_indexed: usize,
    pub packs_adopted: usize,
    pub packs_damaged: usize,
    pub blobs_salvaged: usize,
    pub blobs_lost: usize,
    pub index_files_written: usize,
    pub index_files_removed: usize,
    /// Files found in `index/` that belong elsewhere, moved back there.
    pub files_relocated: usize,
    pub problems: Vec<String>,
}

/// A damaged pack: ID, size, intact entries, its bytes, and the number of
/// blobs lost.
type DamagedPack = (Id, u64, Vec<PackEntry>, Vec<u8>, usize);

/// Rebuilds the index from the packs themselves.
pub fn repair_index(
    repo: &Repository,
    read_data: bool,
    cancel: &Cancel,
) -> Result<IndexRepairReport> {
    let mut report = IndexRepairReport::default();
    let old_index: Vec<Id> = repo
        .backend()
        .list(INDEX)?
        .iter()
        .filter_map(|f| Id::from_hex(file_name(&f.path)).ok())
        .collect();
    let previously: HashSet<Id> = match repo.read_index_files() {
        Ok(files) => Repository::live_index_files(files)
            .iter()
            .flat_map(|(_, f)| f.packs.iter().map(|p| p.id).collect::<Vec<_>>())
            .collect(),
        Err(_) => {
            // Something in index/ is not a readable index file. What is
            // another kind of file is put back where it belongs before the
            // old index files are removed, so that nothing is lost with them.
            relocate_misplaced(repo, &old_index, &mut report)?;
            HashSet::new()
        }
    };
    let stored: Vec<(Id, u64)> = repo
        .backend()
        .list(DATA)?
        .into_iter()
        .filter_map(|f| Id::from_hex(file_name(&f.path)).ok().map(|id| (id, f.size)))
        .collect();
    report.packs = stored.len();

    /// What reading one pack found.
    enum Outcome {
        Good(Vec<PackEntry>),
        /// Entries that are intact (with the pack's bytes), and the problem.
        Damaged(Vec<PackEntry>, Vec<u8>, usize, String),
        Unreadable(String),
    }
    let outcomes: Vec<(Id, u64, Outcome)> = stored
        .par_iter()
        .map(|(id, size)| {
            if cancel.is_cancelled() {
                return (*id, *size, Outcome::Unreadable("interrupted".into()));
            }
            if !read_data {
                return match repo.pack_entries(id) {
                    Ok(es) => (*id, *size, Outcome::Good(es)),
                    Err(e) => (*id, *size, Outcome::Unreadable(e.to_string())),
                };
            }
            let path = pack_path(id);
            let bytes = match repo.backend().read(&path) {
                Ok(b) => b,
                Err(e) => return (*id, *size, Outcome::Unreadable(e.to_string())),
            };
            let entries = match pack::parse_pack(repo.key(), repo.id(), &bytes, &path) {
                Ok(es) => es,
                Err(e) => return (*id, *size, Outcome::Unreadable(e.to_string())),
            };
            let name_ok = check_name(&path, &bytes);
            let mut good = Vec::new();
            let mut bad = 0;
            for e in &entries {
                let ok = bytes
                    .get(e.offset as usize..(e.offset + e.length) as usize)
                    .map(|s| pack::open_blob(repo.key(), repo.id(), e, s, &path).is_ok())
                    .unwrap_or(false);
                if ok {
                    good.push(*e);
                } else {
                    bad += 1;
                }
            }
            match (name_ok, bad) {
                (Ok(()), 0) => (*id, *size, Outcome::Good(entries)),
                (Err(e), _) => (
                    *id,
                    *size,
                    Outcome::Damaged(good, bytes, bad, e.to_string()),
                ),
                (Ok(()), n) => (
                    *id,
                    *size,
                    Outcome::Damaged(good, bytes, n, format!("{n} blobs fail authentication")),
                ),
            }
        })
        .collect();
    cancel.check()?;

    let mut index_packs: Vec<IndexPack> = Vec::new();
    let mut have: HashSet<Id> = HashSet::new();
    let mut damaged: Vec<DamagedPack> = Vec::new();
    for (id, size, o) in outcomes {
        match o {
            Outcome::Good(es) => {
                if !previously.contains(&id) {
                    report.packs_adopted += 1;
                }
                have.extend(es.iter().map(|e| e.id));
                index_packs.push(IndexPack {
                    id,
                    size,
                    blobs: pack::encode_entries(&es),
                });
            }
            Outcome::Damaged(good, bytes, bad, why) => {
                report.problems.push(why);
                damaged.push((id, size, good, bytes, bad));
            }
            Outcome::Unreadable(why) => report
                .problems
                .push(format!("{}: {why}; left out of the index", pack_path(&id))),
        }
    }
    report.packs_damaged = damaged.len();

    // Salvage intact blobs of damaged packs that exist nowhere else.
    let packer = Packer::with_known(repo, Arc::new(Index::default()), false);
    let mut obsolete = Vec::new();
    for (id, size, good, bytes, bad) in &damaged {
        report.blobs_lost += bad;
        for e in good {
            if have.contains(&e.id) || !packer.claim(&e.id) {
                continue;
            }
            let sealed = &bytes[e.offset as usize..(e.offset + e.length) as usize];
            packer.add(e.blob_type, e.id, sealed, e.raw_length, e.compressed)?;
            report.blobs_salvaged += 1;
        }
        obsolete.push(ObsoletePack {
            id: *id,
            size: *size,
            since: chrono::Utc::now().to_rfc3339(),
        });
    }
    let written = packer.finish()?;
    index_packs.extend(written.packs);
    report.packs_indexed = index_packs.len();

    let mut supersedes = old_index;
    supersedes.extend(written.index_files);
    let f = IndexFile {
        supersedes: supersedes.clone(),
        packs: index_packs,
        obsolete,
    };
    repo.save_index(&f)?;
    report.index_files_written = 1;
    for id in &supersedes {
        repo.backend().delete(&format!("{INDEX}{id}"))?;
    }
    report.index_files_removed = supersedes.len();
    repo.load_index()?;
    Ok(report)
}

/// Moves files of `index/` that are snapshots or packs of this repository
/// (they authenticate as such) or well-formed key files to their own
/// directory, unless a file of that name, and so of those bytes, is there
/// already.
fn relocate_misplaced(
    repo: &Repository,
    names: &[Id],
    report: &mut IndexRepairReport,
) -> Result<()> {
    for id in names {
        let from = format!("{INDEX}{id}");
        let Ok(bytes) = repo.backend().read(&from) else {
            continue;
        };
        if check_name(&from, &bytes).is_err() {
            continue;
        }
        // Only a file that opens as what its header claims is moved: a
        // damaged index file whose type byte changed is not a snapshot.
        let (to, genuine) = match peek_type(&bytes) {
            Some(FileType::Snapshot) => (
                format!("{SNAPSHOTS}{id}"),
                open_metadata::<Snapshot>(
                    repo.key(),
                    repo.id(),
                    FileType::Snapshot,
                    Role::Snapshot,
                    &bytes,
                    &from,
                )
                .is_ok(),
            ),
            Some(FileType::Pack) => (
                pack_path(id),
                pack::parse_pack(repo.key(), repo.id(), &bytes, &from).is_ok(),
            ),
            Some(FileType::Key) => (
                format!("{KEYS}{id}"),
                KeyFile::decode(&bytes, &from).is_ok(),
            ),
            _ => continue,
        };
        if !genuine {
            continue;
        }
        if repo.backend().size(&to)?.is_none() {
            repo.backend().write(&to, bytes)?;
        }
        report.files_relocated += 1;
        report
            .problems
            .push(format!("{from} belongs in {to}; moved there"));
    }
    Ok(())
}

#[derive(Debug, Default, Serialize)]
pub struct SnapshotRepairReport {
    pub snapshots: usize,
    pub repaired: Vec<(String, String)>,
    pub damaged_files: usize,
    pub damaged_dirs: usize,
    pub originals_removed: usize,
}

struct Rewriter<'a> {
    repo: &'a Repository,
    index: Arc<Index>,
    packer: &'a Packer,
    cache: HashMap<Id, Option<Id>>,
    files: usize,
    dirs: usize,
    dry_run: bool,
}

fn damaged_name(name: &[u8], taken: &HashSet<Vec<u8>>) -> Vec<u8> {
    let mut n = 0;
    loop {
        let mut v = name.to_vec();
        v.extend_from_slice(
            if n == 0 {
                b".damaged".to_vec()
            } else {
                format!(".damaged-{n}").into_bytes()
            }
            .as_slice(),
        );
        if !taken.contains(&v) {
            return v;
        }
        n += 1;
    }
}

impl Rewriter<'_> {
    /// The ID of the repaired tree, or `None` when it needs no repair.
    fn tree(&mut self, id: &Id) -> Result<Option<Id>> {
        if let Some(r) = self.cache.get(id) {
            return Ok(*r);
        }
        let tree = match self.repo.load_tree(id) {
            Ok(t) => t,
            Err(_) => {
                // The whole directory is lost: an empty one stands in.
                self.dirs += 1;
                let r = Some(self.save(Tree::default())?);
                self.cache.insert(*id, r);
                return Ok(r);
            }
        };
        let taken: HashSet<Vec<u8>> = tree.nodes.iter().map(|n| n.name.clone()).collect();
        let mut changed = false;
        let mut nodes: Vec<Node> = Vec::with_capacity(tree.nodes.len());
        for n in &tree.nodes {
            let mut n = n.clone();
            match n.kind {
                NodeKind::Dir => {
                    if let Some(sub) = n.subtree {
                        let lost = !self.index.has_type(&sub, BlobType::Tree);
                        if let Some(new) = self.tree(&sub)? {
                            n.subtree = Some(new);
                            if lost {
                                n.name = damaged_name(&n.name, &taken);
                            }
                            changed = true;
                        }
                    }
                }
                NodeKind::File => {
                    let lists_ok = n
                        .lists
                        .iter()
                        .all(|l| self.index.has_type(l, BlobType::Tree));
                    let mut content = if lists_ok {
                        self.repo.file_content(&n).unwrap_or_default()
                    } else {
                        n.content.clone()
                    };
                    let before = content.len();
                    content.retain(|b| self.index.has_type(b, BlobType::Data));
                    if content.len() != before || !lists_ok {
                        n.content = content;
                        n.lists.clear();
                        n.size = n
                            .content
                            .iter()
                            .filter_map(|b| self.index.get(b))
                            .map(|l| u64::from(l.entry.raw_length))
                            .sum();
                        n.name = damaged_name(&n.name, &taken);
                        self.files += 1;
                        changed = true;
                    }
                }
                _ => {}
            }
            nodes.push(n);
        }
        let r = if changed {
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            Some(self.save(Tree { nodes })?)
        } else {
            None
        };
        self.cache.insert(*id, r);
        Ok(r)
    }

    fn save(&self, t: Tree) -> Result<Id> {
        let b = t.encode();
        if self.dry_run {
            return Ok(self.repo.key().blob_id(&b));
        }
        self.packer.save(BlobType::Tree, &b)
    }
}

/// Rewrites snapshots that reference missing blobs or trees.
pub fn repair_snapshots(
    repo: &Repository,
    forget_originals: bool,
    dry_run: bool,
    cancel: &Cancel,
) -> Result<SnapshotRepairReport> {
    let mut report = SnapshotRepairReport::default();
    let snaps = repo.snapshots()?;
    report.snapshots = snaps.len();
    let packer = Packer::new(repo, dry_run);
    let mut rw = Rewriter {
        repo,
        index: repo.index(),
        packer: &packer,
        cache: HashMap::new(),
        files: 0,
        dirs: 0,
        dry_run,
    };
    let mut new_snaps: Vec<(Snapshot, Snapshot)> = Vec::new();
    for s in &snaps {
        cancel.check()?;
        let r = rw.tree(&s.tree);
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                packer.abort();
                return Err(e);
            }
        };
        if let Some(tree) = r {
            let mut n = s.clone();
            n.tree = tree;
            n.parent = Some(s.id);
            n.original = Some(s.original.unwrap_or(s.id));
            if !n.tags.iter().any(|t| t == "repaired") {
                n.tags.push("repaired".into());
            }
            new_snaps.push((s.clone(), n));
        }
    }
    report.damaged_files = rw.files;
    report.damaged_dirs = rw.dirs;
    packer.finish()?;
    for (old, new) in new_snaps {
        let id = if dry_run {
            Id::default()
        } else {
            repo.save_snapshot(&new)?
        };
        report.repaired.push((old.id.to_hex(), id.to_hex()));
        if forget_originals && !dry_run {
            repo.backend().delete(&format!("{SNAPSHOTS}{}", old.id))?;
            report.originals_removed += 1;
        }
    }
    if report.repaired.is_empty() && report.damaged_files + report.damaged_dirs > 0 {
        return Err(Error::corrupt(
            repo.location(),
            "damage found but no snapshot was rewritten",
        ));
    }
    Ok(report)
}
