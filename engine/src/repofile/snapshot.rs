//! Snapshots: the root of one backup, with who, when, what and how it went.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::id::Id;

/// What a backup did, recorded in its snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub dirs_new: u64,
    pub dirs_changed: u64,
    pub dirs_unmodified: u64,
    /// Files that could not be read and are missing from the snapshot.
    pub files_failed: u64,
    pub data_blobs_added: u64,
    pub tree_blobs_added: u64,
    /// Bytes of file content read from the source.
    pub bytes_read: u64,
    /// Plaintext bytes of new blobs.
    pub bytes_added: u64,
    /// Bytes of new blobs as stored (compressed and encrypted).
    pub bytes_added_stored: u64,
    /// Total size of the files in the snapshot.
    pub total_bytes: u64,
    pub total_files: u64,
    pub duration_ns: u64,
}

/// Where a copied snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyOrigin {
    /// The source repository's ID (from its config).
    pub repository: Id,
    /// The snapshot's storage ID in the source repository.
    pub snapshot: Id,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub time: DateTime<FixedOffset>,
    pub hostname: String,
    pub username: String,
    pub uid: u32,
    pub gid: u32,
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub tree: Id,
    #[serde(default)]
    pub parent: Option<Id>,
    pub program_version: String,
    #[serde(default)]
    pub summary: Option<Summary>,
    /// The snapshot this one rewrote (tag changes, repairs), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
    /// For a snapshot made by `copy`: the repository and snapshot it was
    /// copied from, so that a later copy skips it and can reuse its data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_of: Option<CopyOrigin>,
    /// The snapshot's own ID (its file name); not stored.
    #[serde(skip)]
    pub id: Id,
}
