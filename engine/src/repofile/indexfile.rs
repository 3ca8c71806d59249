//! Index files: which blobs each pack holds. An index file may name older
//! index files it supersedes; readers ignore superseded files.

use serde::{Deserialize, Serialize};

use crate::crypto::OVERHEAD;
use crate::error::{Error, Result};
use crate::format::HEADER_LEN;
use crate::id::Id;
use crate::limits;
use crate::pack::{self, PackEntry, TRAILER_LEN};

/// Smallest possible pack: file header, an empty sealed header, trailer.
pub const MIN_PACK_SIZE: u64 = (HEADER_LEN + OVERHEAD + TRAILER_LEN) as u64;

/// One pack's entry in an index file.
///
/// Decoding checks it (see [`IndexPack::validate`]), so every `IndexPack`
/// read from an index file has a plausible size and entries that lie
/// inside the pack's blob area.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawIndexPack")]
pub struct IndexPack {
    pub id: Id,
    /// The pack file's size in bytes.
    pub size: u64,
    /// The pack header's 48-byte records, verbatim (format-spec, "Packs").
    #[serde(with = "serde_bytes")]
    pub blobs: Vec<u8>,
}

/// `IndexPack` as it appears in CBOR, before validation.
#[derive(Deserialize)]
struct RawIndexPack {
    id: Id,
    size: u64,
    #[serde(with = "serde_bytes")]
    blobs: Vec<u8>,
}

impl TryFrom<RawIndexPack> for IndexPack {
    type Error = String;

    fn try_from(r: RawIndexPack) -> std::result::Result<IndexPack, String> {
        let p = IndexPack {
            id: r.id,
            size: r.size,
            blobs: r.blobs,
        };
        let what = format!("pack {}", p.id);
        match p.validate(&what) {
            Ok(()) => Ok(p),
            Err(Error::Corrupt { reason, .. }) => Err(format!("{what}: {reason}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl IndexPack {
    /// Where the pack's blob area ends at the latest: the pack header is at
    /// least one sealed part long and the trailer follows it (format-spec,
    /// "Index files").
    pub fn data_end_bound(&self) -> u64 {
        self.size.saturating_sub((OVERHEAD + TRAILER_LEN) as u64)
    }

    /// Checks the pack's size against the format's limits and every entry
    /// against the pack's blob area, without keeping the entries.
    pub fn validate(&self, path: &str) -> Result<()> {
        if self.size > limits::MAX_PACK {
            return Err(Error::Limit {
                path: path.to_string(),
                what: "pack",
                size: self.size,
                limit: limits::MAX_PACK,
            });
        }
        if self.size < MIN_PACK_SIZE {
            return Err(Error::corrupt(path, "pack size is too small for a pack"));
        }
        // The header's entries plus its sealing must fit between the file
        // header and the trailer.
        let header_len = self.blobs.len() as u64 + OVERHEAD as u64;
        if header_len > limits::MAX_PACK_HEADER
            || header_len + (HEADER_LEN + TRAILER_LEN) as u64 > self.size
        {
            return Err(Error::corrupt(path, "pack entries do not fit the pack"));
        }
        pack::check_entries(&self.blobs, Some(self.data_end_bound()), path)
    }

    /// The pack's entries, each checked to lie inside the blob area as far
    /// as the index can tell.
    pub fn entries(&self, path: &str) -> Result<Vec<PackEntry>> {
        pack::decode_entries(&self.blobs, Some(self.data_end_bound()), path)
    }
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
