//! The in-memory index: where every blob lives. Built from the index files
//! at open; new packs are added as a backup writes them.

use crate::id::{Id, IdMap};
use crate::pack::{BlobType, PackEntry};

/// A blob's location: its pack and its entry there.
#[derive(Debug, Clone, Copy)]
pub struct BlobLocation {
    pub pack: Id,
    pub entry: PackEntry,
}

/// Maps blob IDs to pack entries. About 80 bytes of entry plus hash-table
/// overhead per blob; packs are stored once.
#[derive(Default, Clone)]
pub struct Index {
    packs: Vec<(Id, u64)>,
    blobs: IdMap<(u32, PackEntry)>,
}

impl Index {
    /// Records a pack's blobs. A blob already indexed in another pack keeps
    /// its first location.
    pub fn add_pack(&mut self, pack: Id, size: u64, entries: &[PackEntry]) {
        let idx = self.packs.len() as u32;
        self.packs.push((pack, size));
        self.blobs.reserve(entries.len());
        for e in entries {
            self.blobs.entry(e.id).or_insert((idx, *e));
        }
    }

    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
        self.blobs.get(id).map(|(p, e)| BlobLocation {
            pack: self.packs[*p as usize].0,
            entry: *e,
        })
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    pub fn has_type(&self, id: &Id, t: BlobType) -> bool {
        self.blobs.get(id).is_some_and(|(_, e)| e.blob_type == t)
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    pub fn packs(&self) -> &[(Id, u64)] {
        &self.packs
    }

    pub fn blobs(&self) -> impl Iterator<Item = BlobLocation> + '_ {
        self.blobs.values().map(|(p, e)| BlobLocation {
            pack: self.packs[*p as usize].0,
            entry: *e,
        })
    }
}
