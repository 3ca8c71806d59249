//! `check`: verifies that the repository is whole. Structure first (every
//! file decodes and authenticates, every snapshot's trees load, every
//! referenced blob is indexed, every indexed pack exists with the size the
//! index says), then optionally the data itself (every pack re-hashed,
//! every blob decrypted and re-hashed, pack headers compared with the
//! index). Damaged blobs are traced to the snapshots and paths that need
//! them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::lock::Cancel;
use crate::pack::{self, BlobType, PackEntry};
use crate::repofile::snapshot::Snapshot;
use crate::repofile::tree::NodeKind;
use crate::repository::{check_name, file_name, pack_path, Repository, DATA, KEYS};

/// Which packs `--read-data` reads.
#[derive(Debug, Clone, Copy)]
pub enum ReadData {
    None,
    All,
    /// Bucket `n` (1-based) of `m`, by pack ID: a job run daily with
    /// n = day of month covers the repository every m days.
    Bucket(u32, u32),
    /// A random share of the packs, in percent.
    Percent(f64),
    /// Random packs up to about this many bytes.
    Bytes(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

/// A snapshot and a path inside it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Affected {
    pub snapshot: String,
    pub path: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pack: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub affected: Vec<Affected>,
}

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub trees: usize,
    pub packs: usize,
    pub packs_read: usize,
    pub bytes_read: u64,
    pub blobs: usize,
    pub unreferenced_blobs: usize,
    pub findings: Vec<Finding>,
}

impl CheckReport {
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    fn add(&mut self, severity: Severity, message: String) -> &mut Finding {
        self.findings.push(Finding {
            severity,
            message,
            pack: None,
            blob: None,
            affected: Vec::new(),
        });
        self.findings.last_mut().expect("just pushed")
    }
}

/// Progress callbacks for the data-reading phase.
pub trait CheckProgress: Sync {
    fn packs_to_read(&self, _n: usize, _bytes: u64) {}
    fn pack_read(&self, _bytes: u64) {}
}

pub struct NoCheckProgress;
impl CheckProgress for NoCheckProgress {}

fn select_for_reading(packs: &[(Id, u64)], how: ReadData) -> Vec<(Id, u64)> {
    use rand::seq::SliceRandom;
    match how {
        ReadData::None => Vec::new(),
        ReadData::All => packs.to_vec(),
        ReadData::Bucket(n, m) => packs
            .iter()
            .filter(|(id, _)| u32::from_be_bytes([id.0[0], id.0[1], id.0[2], id.0[3]]) % m == n - 1)
            .copied()
            .collect(),
        ReadData::Percent(p) => {
            let mut v = packs.to_vec();
            v.shuffle(&mut rand::thread_rng());
            let n = ((v.len() as f64) * p / 100.0).ceil() as usize;
            v.truncate(n.min(v.len()));
            v
        }
        ReadData::Bytes(limit) => {
            let mut v = packs.to_vec();
            v.shuffle(&mut rand::thread_rng());
            let mut total = 0;
            v.into_iter()
                .take_while(|(_, s)| {
                    let go = total < limit;
                    total += s;
                    go
                })
                .collect()
        }
    }
}

/// Runs the check. Errors about the repository's content are findings in
/// the report; `Err` means the check itself could not run.
///
/// With the `password` the repository was opened with, every other key
/// file is also tried with it: one that opens but belongs to another
/// repository, or wraps another master secret, was planted or copied in by
/// mistake and is reported. (Keys that do not open with it may be other
/// people's and cannot be told apart from foreign ones.)
pub fn check(
    repo: &Repository,
    read: ReadData,
    password: Option<&[u8]>,
    progress: &dyn CheckProgress,
    cancel: &Cancel,
) -> Result<CheckReport> {
    let mut report = CheckReport::default();

    // Keys.
    for f in repo.backend().list(KEYS)? {
        let r = repo
            .read_file(&f.path, crate::limits::MAX_KEY_FILE)
            .and_then(|b| crate::repofile::keyfile::KeyFile::decode(&b, &f.path));
        let kf = match r {
            Ok(kf) => kf,
            Err(e) => {
                report.add(Severity::Error, e.to_string());
                continue;
            }
        };
        let Some(pw) = password else { continue };
        if file_name(&f.path) == repo.key_id().to_hex() {
            continue;
        }
        cancel.check()?;
        match kf.unwrap_secret(pw, &f.path) {
            Ok(Some((_, rid))) if rid != *repo.id() => {
                report.add(
                    Severity::Error,
                    format!(
                    "{}: key of another repository ({rid}), not of this one ({}); delete the file",
                    f.path,
                    repo.id()
                ),
                );
            }
            Ok(Some((secret, _))) if secret != *repo.key().secret() => {
                report.add(
                    Severity::Error,
                    format!(
                        "{}: wraps a master secret other than this repository's; delete the file",
                        f.path
                    ),
                );
            }
            Ok(_) => {}
            Err(e) => {
                report.add(Severity::Error, e.to_string());
            }
        }
    }

    // Index files, one at a time so that one bad file does not hide others.
    let mut index_files = Vec::new();
    for f in repo.backend().list(crate::repository::INDEX)? {
        let r = Id::from_hex(file_name(&f.path)).and_then(|id| {
            let b = repo.read_file(&f.path, crate::limits::MAX_METADATA_FILE)?;
            let idx: crate::repofile::indexfile::IndexFile = crate::repofile::open_metadata(
                repo.key(),
                repo.id(),
                crate::format::FileType::Index,
                crate::format::Role::Index,
                &b,
                &f.path,
            )?;
            Ok((id, idx))
        });
        match r {
            Ok(x) => index_files.push(x),
            Err(e) => {
                report.add(Severity::Error, format!("{e} (run `cairn repair index`)"));
            }
        }
    }
    let live = Repository::live_index_files(index_files);
    let mut indexed: HashMap<Id, (u64, Vec<PackEntry>)> = HashMap::new();
    let mut obsolete: HashSet<Id> = HashSet::new();
    let mut blob_packs: HashMap<Id, Vec<Id>> = HashMap::new();
    let mut blob_types: HashMap<Id, BlobType> = HashMap::new();
    for (id, f) in &live {
        let path = format!("{}{id}", crate::repository::INDEX);
        for p in &f.packs {
            match pack::decode_entries(&p.blobs, Some(p.size), &path) {
                Ok(es) => {
                    if let Some(first) = es.first() {
                        if es.iter().any(|e| e.blob_type != first.blob_type) {
                            report
                                .add(
                                    Severity::Error,
                                    format!("pack {} mixes data and tree blobs", p.id),
                                )
                                .pack = Some(p.id.to_hex());
                        }
                    }
                    for e in &es {
                        blob_packs.entry(e.id).or_default().push(p.id);
                        blob_types.insert(e.id, e.blob_type);
                    }
                    indexed.insert(p.id, (p.size, es));
                }
                Err(e) => {
                    report.add(Severity::Error, e.to_string());
                }
            }
        }
        for o in &f.obsolete {
            obsolete.insert(o.id);
        }
    }
    report.blobs = blob_packs.len();
    // Trees are read through the index built from the files that decoded.
    let mut built = crate::index::Index::default();
    for (id, (size, es)) in &indexed {
        built.add_pack(*id, *size, es);
    }
    repo.set_index(built);

    // Packs on storage against the index.
    let stored: HashMap<Id, u64> = repo
        .backend()
        .list(DATA)?
        .into_iter()
        .filter_map(|f| Id::from_hex(file_name(&f.path)).ok().map(|id| (id, f.size)))
        .collect();
    report.packs = stored.len();
    let mut missing_packs: HashSet<Id> = HashSet::new();
    for (id, (size, _)) in &indexed {
        match stored.get(id) {
            None => {
                missing_packs.insert(*id);
                let f = report.add(
                    Severity::Error,
                    format!("pack {id} is in the index but missing from storage"),
                );
                f.pack = Some(id.to_hex());
            }
            Some(s) if s != size => {
                missing_packs.insert(*id);
                let f = report.add(
                    Severity::Error,
                    format!("pack {id} has {s} bytes, the index says {size}"),
                );
                f.pack = Some(id.to_hex());
            }
            _ => {}
        }
    }
    for id in stored.keys() {
        if !indexed.contains_key(id) {
            if obsolete.contains(id) {
                report.add(
                    Severity::Info,
                    format!("pack {id} is unused and awaits deletion by prune"),
                );
            } else if let Err(e) = repo.pack_entries(id) {
                // Not something a backup of this repository left: its
                // header does not open (damaged, or from elsewhere).
                let f = report.add(
                    Severity::Error,
                    format!("{e} (the pack is not indexed; `cairn repair index` leaves it out, delete it)"),
                );
                f.pack = Some(id.to_hex());
            } else {
                report.add(Severity::Warning, format!("pack {id} is not indexed (left by an interrupted backup? `cairn repair index` adopts it, `cairn prune` removes it)"));
            }
        }
    }

    // Blobs whose every copy lies in a missing or damaged pack.
    let mut damaged: HashMap<Id, String> = HashMap::new();
    let lost = |blob_packs: &HashMap<Id, Vec<Id>>,
                bad: &HashSet<Id>,
                damaged: &mut HashMap<Id, String>,
                why: &str| {
        for (b, ps) in blob_packs {
            if ps.iter().all(|p| bad.contains(p)) {
                damaged
                    .entry(*b)
                    .or_insert_with(|| format!("{why} {}", ps[0]));
            }
        }
    };
    lost(
        &blob_packs,
        &missing_packs,
        &mut damaged,
        "its pack is missing or truncated:",
    );

    // Data.
    let to_read: Vec<(Id, u64)> = select_for_reading(
        &indexed
            .iter()
            .filter(|(id, _)| !missing_packs.contains(id))
            .map(|(id, (s, _))| (*id, *s))
            .collect::<Vec<_>>(),
        read,
    );
    progress.packs_to_read(to_read.len(), to_read.iter().map(|(_, s)| s).sum());
    let bad_blobs: Mutex<Vec<(Id, Id, String)>> = Mutex::new(Vec::new());
    let bad_packs: Mutex<Vec<(Id, String)>> = Mutex::new(Vec::new());
    // Whole packs at a time: a remote service gets one request per connection.
    repo.in_io_pool(|| {
        to_read.par_iter().for_each(|(pid, _)| {
            if cancel.is_cancelled() {
                return;
            }
            let path = pack_path(pid);
            let r = repo.backend().read(&path);
            let bytes = match r {
                Ok(b) => b,
                Err(e) => {
                    bad_packs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((*pid, e.to_string()));
                    return;
                }
            };
            progress.pack_read(bytes.len() as u64);
            if let Err(e) = check_name(&path, &bytes) {
                bad_packs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((*pid, e.to_string()));
            }
            let want = indexed
                .get(pid)
                .map(|(_, es)| es.as_slice())
                .unwrap_or_default();
            match pack::parse_pack(repo.key(), repo.id(), &bytes, &path) {
                Ok(es) => {
                    let mut a: Vec<_> = es.iter().map(|e| (e.offset, e.id)).collect();
                    let mut b: Vec<_> = want.iter().map(|e| (e.offset, e.id)).collect();
                    a.sort();
                    b.sort();
                    if a != b {
                        bad_packs.lock().unwrap_or_else(|e| e.into_inner()).push((
                            *pid,
                            format!("{path}: pack header does not match the index"),
                        ));
                    }
                }
                Err(e) => bad_packs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((*pid, e.to_string())),
            }
            for e in want {
                let (o, l) = (e.offset as usize, e.length as usize);
                let r = match bytes.get(o..o + l) {
                    Some(sealed) => {
                        pack::open_blob(repo.key(), repo.id(), e, sealed, &path).map(|_| ())
                    }
                    None => Err(Error::corrupt(
                        &path,
                        format!("blob {} lies outside the pack", e.id),
                    )),
                };
                if let Err(x) = r {
                    bad_blobs.lock().unwrap_or_else(|e| e.into_inner()).push((
                        e.id,
                        *pid,
                        x.to_string(),
                    ));
                }
            }
        })
    });
    cancel.check()?;
    report.packs_read = to_read.len();
    report.bytes_read = to_read.iter().map(|(_, s)| s).sum();
    let mut damaged_packs: HashSet<Id> = HashSet::new();
    for (pid, msg) in bad_packs.into_inner().unwrap_or_else(|e| e.into_inner()) {
        damaged_packs.insert(pid);
        let f = report.add(Severity::Error, msg);
        f.pack = Some(pid.to_hex());
    }
    let mut blob_in_bad: HashMap<Id, HashSet<Id>> = HashMap::new();
    for (b, pid, msg) in bad_blobs.into_inner().unwrap_or_else(|e| e.into_inner()) {
        blob_in_bad.entry(b).or_default().insert(pid);
        damaged.entry(b).or_insert(msg);
    }
    // A damaged copy matters only if no good copy exists elsewhere.
    damaged.retain(|b, _| {
        blob_packs.get(b).is_none_or(|ps| {
            ps.iter().all(|p| {
                missing_packs.contains(p) || blob_in_bad.get(b).is_some_and(|s| s.contains(p))
            })
        })
    });

    // Snapshots and their trees.
    let snaps = match repo.snapshot_ids() {
        Ok(ids) => ids,
        Err(e) => {
            report.add(Severity::Error, e.to_string());
            Vec::new()
        }
    };
    let mut loaded: Vec<Snapshot> = Vec::new();
    for id in snaps {
        match repo.load_snapshot(&id) {
            Ok(s) => loaded.push(s),
            Err(e) => {
                report.add(Severity::Error, e.to_string());
            }
        }
    }
    report.snapshots = loaded.len();
    let mut referenced: HashSet<Id> = HashSet::new();
    let mut seen_trees: HashSet<Id> = HashSet::new();
    let mut affected: HashMap<Id, BTreeSet<Affected>> = HashMap::new();
    let mut missing: HashMap<Id, BTreeSet<Affected>> = HashMap::new();
    for s in &loaded {
        cancel.check()?;
        let mut stack: Vec<(Id, String)> = vec![(s.tree, "/".to_string())];
        while let Some((tid, path)) = stack.pop() {
            let here = Affected {
                snapshot: s.id.to_hex(),
                path: path.clone(),
            };
            referenced.insert(tid);
            if damaged.contains_key(&tid) {
                affected.entry(tid).or_default().insert(here.clone());
            }
            if blob_types.get(&tid) != Some(&BlobType::Tree) {
                missing.entry(tid).or_default().insert(here);
                continue;
            }
            // A tree already walked through another snapshot is still
            // walked (paths differ) only when something is damaged.
            let first = seen_trees.insert(tid);
            if !first && damaged.is_empty() {
                continue;
            }
            let tree = match repo.load_tree(&tid) {
                Ok(t) => t,
                Err(e) => {
                    if first {
                        report.add(
                            Severity::Error,
                            format!("snapshot {} {path}: {e}", s.id.short()),
                        );
                    }
                    continue;
                }
            };
            for n in &tree.nodes {
                let p = format!("{}/{}", path.trim_end_matches('/'), n.name_lossy());
                match n.kind {
                    NodeKind::Dir => {
                        if let Some(sub) = n.subtree {
                            stack.push((sub, p));
                        }
                    }
                    NodeKind::File => {
                        let mut content = n.content.clone();
                        for (i, l) in n.lists.iter().enumerate() {
                            referenced.insert(*l);
                            let a = Affected {
                                snapshot: s.id.to_hex(),
                                path: p.clone(),
                            };
                            if damaged.contains_key(l) {
                                affected.entry(*l).or_default().insert(a.clone());
                            }
                            if blob_types.get(l) != Some(&BlobType::Tree) {
                                missing.entry(*l).or_default().insert(a);
                                continue;
                            }
                            match repo.read_blob(l).and_then(|b| {
                                crate::repofile::tree::decode_list(
                                    &b,
                                    &format!("content list {l}"),
                                    i + 1 == n.lists.len(),
                                )
                            }) {
                                Ok(ids) => content.extend(ids),
                                Err(e) => {
                                    report.add(
                                        Severity::Error,
                                        format!("snapshot {} {p}: {e}", s.id.short()),
                                    );
                                }
                            }
                        }
                        for b in &content {
                            referenced.insert(*b);
                            let a = || Affected {
                                snapshot: s.id.to_hex(),
                                path: p.clone(),
                            };
                            if damaged.contains_key(b) {
                                affected.entry(*b).or_default().insert(a());
                            }
                            if blob_types.get(b) != Some(&BlobType::Data) {
                                missing.entry(*b).or_default().insert(a());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    report.trees = seen_trees.len();
    let mut damaged_sorted: Vec<_> = damaged.into_iter().collect();
    damaged_sorted.sort();
    for (b, why) in damaged_sorted {
        let aff: Vec<Affected> = affected
            .remove(&b)
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        let pack = blob_packs.get(&b).and_then(|p| p.first()).map(Id::to_hex);
        let f = report.add(
            Severity::Error,
            format!(
                "blob {b} is damaged ({why}); {} snapshot paths depend on it",
                aff.len()
            ),
        );
        f.blob = Some(b.to_hex());
        f.pack = pack;
        f.affected = aff;
    }
    let mut missing_sorted: Vec<_> = missing.into_iter().collect();
    missing_sorted.sort();
    for (b, aff) in missing_sorted {
        let f = report.add(
            Severity::Error,
            format!("blob {b} is referenced but not in the index"),
        );
        f.blob = Some(b.to_hex());
        f.affected = aff.into_iter().collect();
    }
    report.unreferenced_blobs = blob_packs
        .keys()
        .filter(|b| !referenced.contains(b))
        .count();
    if report.unreferenced_blobs > 0 {
        report.add(
            Severity::Info,
            format!(
                "{} blobs are not referenced by any snapshot (`cairn prune` removes them)",
                report.unreferenced_blobs
            ),
        );
    }
    let _ = damaged_packs;
    Ok(report)
}

/// Parses `--read-data-subset`: `n/m`, `P%` or a size such as `500M`, `2G`.
pub fn parse_subset(s: &str) -> Result<ReadData> {
    let bad = || {
        Error::InvalidArgument(format!(
            "invalid --read-data-subset {s:?}: use n/m, P% or a size like 2G"
        ))
    };
    if let Some((n, m)) = s.split_once('/') {
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let m: u32 = m.trim().parse().map_err(|_| bad())?;
        if m == 0 || n == 0 || n > m {
            return Err(bad());
        }
        return Ok(ReadData::Bucket(n, m));
    }
    if let Some(p) = s.strip_suffix('%') {
        let p: f64 = p.trim().parse().map_err(|_| bad())?;
        if !(p > 0.0 && p <= 100.0) {
            return Err(bad());
        }
        return Ok(ReadData::Percent(p));
    }
    match crate::units::parse_size(s) {
        Ok(n) if n > 0 => Ok(ReadData::Bytes(n)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets() {
        assert!(matches!(
            parse_subset("1/5").unwrap(),
            ReadData::Bucket(1, 5)
        ));
        assert!(matches!(parse_subset("10%").unwrap(), ReadData::Percent(p) if p == 10.0));
        assert!(matches!(parse_subset("2G").unwrap(), ReadData::Bytes(b) if b == 2 << 30));
        assert!(parse_subset("6/5").is_err());
        assert!(parse_subset("0/5").is_err());
        assert!(parse_subset("150%").is_err());
        assert!(parse_subset("x").is_err());
        let packs: Vec<(Id, u64)> = (0..100u8).map(|i| (Id([i; 32]), 10)).collect();
        let mut all = Vec::new();
        for n in 1..=4 {
            all.extend(select_for_reading(&packs, ReadData::Bucket(n, 4)));
        }
        all.sort();
        assert_eq!(all, packs, "buckets 1..=m cover every pack exactly once");
        assert_eq!(
            select_for_reading(&packs, ReadData::Percent(10.0)).len(),
            10
        );
        assert_eq!(select_for_reading(&packs, ReadData::Bytes(55)).len(), 6);
    }
}
