//! Tree blobs: one directory's entries with their full metadata, as CBOR.
//! A directory node points at its subtree's blob ID and a file node lists
//! its content blobs in order, so a snapshot is a Merkle tree.

use serde::{Deserialize, Serialize};

use super::{from_cbor, to_cbor};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::limits;

/// The kind of file system object a node records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    Chardev,
    Blockdev,
}

/// One extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// Extra facts about a file captured from a live SQLite database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqliteMeta {
    pub page_size: u32,
    pub page_count: u64,
    pub journal_mode: String,
    pub user_version: i64,
    /// BLAKE3 of the `sqlite_schema` rows, hex.
    pub schema_hash: String,
    pub sqlite_version: String,
}

/// One directory entry. Times are nanoseconds since the Unix epoch. A
/// regular file with `links > 1` belongs to a hardlink group: the nodes of a
/// snapshot sharing `(device, inode)` are restored as one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission bits with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub mtime: i64,
    pub ctime: i64,
    pub atime: i64,
    pub inode: u64,
    pub device: u64,
    pub links: u64,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub link_target: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
    /// Device number of character and block devices.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    /// Content blobs of a file, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Id>,
    /// For files with many blobs, instead of `content`: list blobs (tree
    /// type, CBOR arrays of at most [`LIST_LEN`] IDs) whose concatenation is
    /// the content. List `i` always covers blobs `i*LIST_LEN..`, so a change
    /// to a few blobs rewrites only the lists that hold them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<Id>,
    /// Tree blob of a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<SqliteMeta>,
}

/// IDs per content list blob.
pub const LIST_LEN: usize = 64;

/// Decodes a content list blob. Every list but a file's `last` holds
/// exactly [`LIST_LEN`] IDs: list `i` covers blobs `i*LIST_LEN..`, and a
/// short list in the middle would shift every blob after it.
pub fn decode_list(b: &[u8], what: &str, last: bool) -> Result<Vec<Id>> {
    let v: Vec<Id> = from_cbor(b, what)?;
    if v.is_empty() || v.len() > LIST_LEN || (!last && v.len() != LIST_LEN) {
        return Err(Error::corrupt(
            what,
            "content list has an impossible length",
        ));
    }
    Ok(v)
}

/// Encodes a content list blob.
pub fn encode_list(ids: &[Id]) -> Vec<u8> {
    to_cbor(&ids)
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Node {
    /// A node of `kind` named `name` with nothing else set: owner 0, mode
    /// 0, times 0, one link, no content, children or extras. Builders of
    /// synthetic nodes fill in what they know on top of it.
    pub fn bare(name: &[u8], kind: NodeKind) -> Node {
        Node {
            name: name.to_vec(),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime: 0,
            ctime: 0,
            atime: 0,
            inode: 0,
            device: 0,
            links: 1,
            size: 0,
            link_target: None,
            xattrs: Vec::new(),
            rdev: 0,
            content: Vec::new(),
            lists: Vec::new(),
            subtree: None,
            sqlite: None,
        }
    }

    /// The name as an OS string (names are arbitrary bytes on Unix).
    pub fn os_name(&self) -> &std::ffi::OsStr {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(&self.name)
    }

    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// Checks what a reader relies on for one node: a valid name, mode bits
    /// within `0o7777`, and the kind-specific fields present exactly where
    /// they belong (`subtree` iff a directory, `link_target` iff a symlink;
    /// `content`, `lists` and `sqlite` only on files, never both `content`
    /// and `lists`; `rdev` only on devices).
    pub fn check(&self, what: &str) -> Result<()> {
        if self.name.is_empty()
            || self.name == b"."
            || self.name == b".."
            || self.name.iter().any(|&c| c == b'/' || c == 0)
        {
            return Err(Error::corrupt(
                what,
                format!("invalid entry name {:?}", self.name_lossy()),
            ));
        }
        let bad = |m: &str| Err(Error::corrupt(what, format!("{}: {m}", self.name_lossy())));
        if self.mode > 0o7777 {
            return bad("mode has bits beyond 0o7777");
        }
        if (self.kind == NodeKind::Dir) != self.subtree.is_some() {
            return bad("directory without subtree or subtree on a non-directory");
        }
        if (self.kind == NodeKind::Symlink) != self.link_target.is_some() {
            return bad("symlink without target or target on a non-symlink");
        }
        if self.kind != NodeKind::File && !(self.content.is_empty() && self.lists.is_empty()) {
            return bad("content on a non-file");
        }
        if !self.content.is_empty() && !self.lists.is_empty() {
            return bad("both a content list and content lists");
        }
        if self.kind != NodeKind::File && self.sqlite.is_some() {
            return bad("SQLite facts on a non-file");
        }
        if !matches!(self.kind, NodeKind::Chardev | NodeKind::Blockdev) && self.rdev != 0 {
            return bad("device number on a non-device");
        }
        Ok(())
    }
}

/// A directory's entries, sorted by name bytes, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn encode(&self) -> Vec<u8> {
        to_cbor(self)
    }

    /// Decodes and checks the invariants every reader relies on: names are
    /// non-empty, contain no `/` or NUL, are not `.` or `..`, and are
    /// strictly sorted (so no duplicates); each node carries only the
    /// fields its kind can have (see [`Node::check`]).
    pub fn decode(b: &[u8], what: &str) -> Result<Tree> {
        if b.len() as u64 > limits::MAX_TREE {
            return Err(Error::Limit {
                path: what.to_string(),
                what: "tree",
                size: b.len() as u64,
                limit: limits::MAX_TREE,
            });
        }
        let t: Tree = from_cbor(b, what)?;
        for (i, n) in t.nodes.iter().enumerate() {
            n.check(what)?;
            if i > 0 && t.nodes[i - 1].name >= n.name {
                return Err(Error::corrupt(
                    what,
                    "tree entries are not sorted or repeat a name",
                ));
            }
        }
        Ok(t)
    }

    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}
