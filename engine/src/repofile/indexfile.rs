//! Index files: which blobs each pack holds. An index file may name older
//! index files it supersedes; readers ignore superseded files.

use serde::{Deserialize, Serialize};

use crate::id::Id;

/// One pack's entry in an index file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: Id,
    /// The pack file's size in bytes.
    pub size: u64,
    /// The pack header's 48-byte records, verbatim (format-spec, "Packs").
    #[serde(with = "serde_bytes")]
    pub blobs: Vec<u8>,
}

/// A pack no snapshot needed when a prune ran. It is no longer indexed
/// (nothing reads from it) but is kept until the grace period has passed,
/// so that a backup that relied on its blobs while the prune ran can still
/// be repaired; a later prune deletes it, or puts it back in the index if a
/// snapshot turned out to need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObsoletePack {
    pub id: Id,
    pub size: u64,
    /// RFC 3339 time at which the pack was found unused.
    pub since: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    #[serde(default)]
    pub supersedes: Vec<Id>,
    pub packs: Vec<IndexPack>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub obsolete: Vec<ObsoletePack>,
}
