//! Reading file system metadata into tree nodes, and the comparisons that
//! decide whether a file changed since the parent snapshot.

use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::host::NameCache;
use crate::repofile::tree::{Node, NodeKind, Xattr};

fn ns(sec: i64, nsec: i64) -> i64 {
    sec.saturating_mul(1_000_000_000).saturating_add(nsec)
}

pub fn kind_of(m: &Metadata) -> Option<NodeKind> {
    let t = m.file_type();
    Some(if t.is_file() {
        NodeKind::File
    } else if t.is_dir() {
        NodeKind::Dir
    } else if t.is_symlink() {
        NodeKind::Symlink
    } else if t.is_fifo() {
        NodeKind::Fifo
    } else if t.is_socket() {
        NodeKind::Socket
    } else if t.is_char_device() {
        NodeKind::Chardev
    } else if t.is_block_device() {
        NodeKind::Blockdev
    } else {
        return None;
    })
}

/// A node with everything `lstat` tells, without content or subtree.
pub fn node_from_metadata(name: &[u8], m: &Metadata, kind: NodeKind, names: &NameCache) -> Node {
    Node {
        name: name.to_vec(),
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        user: names.user(m.uid()),
        group: names.group(m.gid()),
        mtime: ns(m.mtime(), m.mtime_nsec()),
        ctime: ns(m.ctime(), m.ctime_nsec()),
        atime: ns(m.atime(), m.atime_nsec()),
        inode: m.ino(),
        device: m.dev(),
        links: m.nlink(),
        size: if kind == NodeKind::File { m.size() } else { 0 },
        link_target: None,
        xattrs: Vec::new(),
        rdev: if matches!(kind, NodeKind::Chardev | NodeKind::Blockdev) {
            m.rdev()
        } else {
            0
        },
        content: Vec::new(),
        subtree: None,
        lists: Vec::new(),
        sqlite: None,
    }
}

/// Extended attributes, sorted by name. Unsupported file systems and
/// attributes that vanish meanwhile give none.
pub fn read_xattrs(path: &Path) -> Vec<Xattr> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<Xattr> = names
        .filter_map(|n| {
            let v = xattr::get(path, &n).ok().flatten()?;
            Some(Xattr {
                name: n.as_bytes().to_vec(),
                value: v,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Whether a file's metadata says its content is as recorded in the
/// parent snapshot (same size, mtime, ctime and inode; device numbers are left out
/// because some file systems renumber them at every mount).
pub fn unchanged(old: &Node, new: &Node) -> bool {
    old.kind == NodeKind::File
        && new.kind == NodeKind::File
        && old.size == new.size
        && old.mtime == new.mtime
        && old.ctime == new.ctime
        && old.inode == new.inode
}
