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

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    #[serde(default)]
    pub supersedes: Vec<Id>,
    pub packs: Vec<IndexPack>,
}
