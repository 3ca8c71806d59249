//! Looking across snapshots: `find` (paths matching a pattern), `diff`
//! (what changed between two snapshots), `stats` (sizes and ratios) and
//! `tag` (rewriting a snapshot's tags).

use std::collections::HashSet;

use serde::Serialize;

use crate::error::Result;
use crate::excludes::Excludes;
use crate::id::Id;
use crate::lock::Cancel;
use crate::pack::BlobType;
use crate::repofile::snapshot::Snapshot;
use crate::repofile::tree::{Node, NodeKind, Tree};
use crate::repository::{Repository, SNAPSHOTS};

fn join(path: &str, name: &[u8]) -> String {
    format!(
        "{}/{}",
        path.trim_end_matches('/'),
        String::from_utf8_lossy(name)
    )
}

/// A match of `find`.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub snapshot: String,
    pub path: String,
    pub kind: NodeKind,
    pub size: u64,
    pub mtime: i64,
}

/// Every path in the snapshots whose name (or, for patterns with `/`,
/// whole path) matches.
pub fn find(
    repo: &Repository,
    snaps: &[Snapshot],
    pattern: &Excludes,
    cancel: &Cancel,
) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    for s in snaps {
        let mut stack = vec![(s.tree, "/".to_string())];
        while let Some((t, path)) = stack.pop() {
            cancel.check()?;
            let tree = repo.load_tree(&t)?;
            for n in &tree.nodes {
                let p = join(&path, &n.name);
                if pattern.is_excluded(std::path::Path::new(&p)) {
                    out.push(Found {
                        snapshot: s.id.to_hex(),
                        path: p.clone(),
                        kind: n.kind,
                        size: n.size,
                        mtime: n.mtime,
                    });
                }
                if let Some(sub) = n.subtree {
                    stack.push((sub, p));
                }
            }
        }
    }
    Ok(out)
}

/// How a path differs between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    /// Content (or type) changed.
    Modified,
    /// Only metadata (mode, owner, times, xattrs) changed.
    Metadata,
}

impl Change {
    pub fn symbol(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub change: Change,
    pub path: String,
    pub kind: NodeKind,
}

fn same_metadata(a: &Node, b: &Node) -> bool {
    a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.mtime == b.mtime
        && a.xattrs == b.xattrs
        && a.link_target == b.link_target
        && a.rdev == b.rdev
}

fn load(repo: &Repository, id: Option<Id>) -> Result<Tree> {
    match id {
        Some(id) => repo.load_tree(&id),
        None => Ok(Tree::default()),
    }
}

fn diff_trees(
    repo: &Repository,
    a: Option<Id>,
    b: Option<Id>,
    path: &str,
    out: &mut Vec<Difference>,
    cancel: &Cancel,
) -> Result<()> {
    cancel.check()?;
    if a == b {
        return Ok(());
    }
    let ta = load(repo, a)?;
    let tb = load(repo, b)?;
    let (mut i, mut j) = (0, 0);
    while i < ta.nodes.len() || j < tb.nodes.len() {
        let na = ta.nodes.get(i);
        let nb = tb.nodes.get(j);
        let ord = match (na, nb) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                let x = &ta.nodes[i];
                let p = join(path, &x.name);
                out.push(Difference {
                    change: Change::Removed,
                    path: p.clone(),
                    kind: x.kind,
                });
                if x.kind == NodeKind::Dir {
                    diff_trees(repo, x.subtree, None, &p, out, cancel)?;
                }
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let y = &tb.nodes[j];
                let p = join(path, &y.name);
                out.push(Difference {
                    change: Change::Added,
                    path: p.clone(),
                    kind: y.kind,
                });
                if y.kind == NodeKind::Dir {
                    diff_trees(repo, None, y.subtree, &p, out, cancel)?;
                }
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (&ta.nodes[i], &tb.nodes[j]);
                let p = join(path, &x.name);
                if x.kind != y.kind {
                    out.push(Difference {
                        change: Change::Modified,
                        path: p.clone(),
                        kind: y.kind,
                    });
                    if x.kind == NodeKind::Dir {
                        diff_trees(repo, x.subtree, None, &p, out, cancel)?;
                    }
                    if y.kind == NodeKind::Dir {
                        diff_trees(repo, None, y.subtree, &p, out, cancel)?;
                    }
                } else if x.kind == NodeKind::File && (x.content != y.content || x.lists != y.lists)
                {
                    out.push(Difference {
                        change: Change::Modified,
                        path: p,
                        kind: y.kind,
                    });
                } else {
                    if !same_metadata(x, y) {
                        out.push(Difference {
                            change: Change::Metadata,
                            path: p.clone(),
                            kind: y.kind,
                        });
                    }
                    if x.kind == NodeKind::Dir {
                        diff_trees(repo, x.subtree, y.subtree, &p, out, cancel)?;
                    }
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

/// The differences from snapshot `a` to snapshot `b`, in path order.
pub fn diff(
    repo: &Repository,
    a: &Snapshot,
    b: &Snapshot,
    cancel: &Cancel,
) -> Result<Vec<Difference>> {
    let mut out = Vec::new();
    diff_trees(repo, Some(a.tree), Some(b.tree), "/", &mut out, cancel)?;
    Ok(out)
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub snapshots: usize,
    /// Files (counted once per snapshot) and their total size: what a
    /// restore of every selected snapshot would write.
    pub total_files: u64,
    pub restore_size: u64,
    pub data_blobs: u64,
    pub tree_blobs: u64,
    /// Plaintext size of the distinct blobs the snapshots use.
    pub deduplicated_size: u64,
    /// Stored (compressed, encrypted) size of those blobs.
    pub stored_size: u64,
    /// Size of every pack in the repository.
    pub repository_size: u64,
    /// Plaintext over stored size of the used blobs.
    pub compression_ratio: f64,
    /// Restore size over deduplicated size.
    pub deduplication_ratio: f64,
}

pub fn stats(repo: &Repository, snaps: &[Snapshot], cancel: &Cancel) -> Result<Stats> {
    let index = repo.index();
    let mut st = Stats {
        snapshots: snaps.len(),
        ..Default::default()
    };
    let mut seen: HashSet<Id> = HashSet::new();
    let mut account = |id: &Id, st: &mut Stats| {
        if seen.insert(*id) {
            if let Some(l) = index.get(id) {
                match l.entry.blob_type {
                    BlobType::Data => st.data_blobs += 1,
                    BlobType::Tree => st.tree_blobs += 1,
                }
                st.deduplicated_size += u64::from(l.entry.raw_length);
                st.stored_size += u64::from(l.entry.length);
            }
            true
        } else {
            false
        }
    };
    for s in snaps {
        // Trees are walked once per snapshot for the restore size.
        let mut stack = vec![s.tree];
        while let Some(t) = stack.pop() {
            cancel.check()?;
            account(&t, &mut st);
            let tree = repo.load_tree(&t)?;
            for n in &tree.nodes {
                match n.kind {
                    NodeKind::Dir => stack.extend(n.subtree),
                    NodeKind::File => {
                        st.total_files += 1;
                        st.restore_size += n.size;
                        for l in &n.lists {
                            account(l, &mut st);
                        }
                        for b in &repo.file_content(n)? {
                            account(b, &mut st);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    st.repository_size = index.packs().iter().map(|(_, s)| s).sum();
    st.compression_ratio = if st.stored_size > 0 {
        st.deduplicated_size as f64 / st.stored_size as f64
    } else {
        0.0
    };
    st.deduplication_ratio = if st.deduplicated_size > 0 {
        st.restore_size as f64 / st.deduplicated_size as f64
    } else {
        0.0
    };
    Ok(st)
}

/// Changes a snapshot's tags: writes the changed snapshot, then removes the
/// old file. Returns the new ID, or `None` when nothing changed.
pub fn retag(
    repo: &Repository,
    s: &Snapshot,
    add: &[String],
    remove: &[String],
    set: Option<&[String]>,
) -> Result<Option<Id>> {
    let mut tags: Vec<String> = match set {
        Some(t) => t.to_vec(),
        None => s.tags.clone(),
    };
    for t in add {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    tags.retain(|t| !remove.contains(t));
    if tags == s.tags {
        return Ok(None);
    }
    let mut n = s.clone();
    n.tags = tags;
    n.original = Some(s.original.unwrap_or(s.id));
    let id = repo.save_snapshot(&n)?;
    repo.backend().delete(&format!("{SNAPSHOTS}{}", s.id))?;
    Ok(Some(id))
}
