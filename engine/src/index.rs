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

/// Maps blob IDs to pack entries: 53 bytes per blob (the ID as key, a
/// [`Slot`] and the table's control byte) in a table between half and
/// seven eighths full, so ten million blobs take 0.6 to 1 GiB; pack IDs
/// are stored once.
#[derive(Default, Clone)]
pub struct Index {
    packs: Vec<(Id, u64)>,
    blobs: IdMap<Slot>,
}

/// A blob's pack entry without its ID (the map's key holds that) and with
/// its pack as a position in `packs`.
#[derive(Clone, Copy)]
struct Slot {
    pack: u32,
    offset: u32,
    length: u32,
    raw_length: u32,
    blob_type: BlobType,
    compressed: bool,
}

impl Slot {
    fn entry(&self, id: &Id) -> PackEntry {
        PackEntry {
            blob_type: self.blob_type,
            compressed: self.compressed,
            offset: self.offset,
            length: self.length,
            raw_length: self.raw_length,
            id: *id,
        }
    }
}

impl Index {
    /// An empty index with room for `blobs` blobs, so that loading a large
    /// index does not grow (and rehash) its table a dozen times.
    pub fn with_capacity(blobs: usize) -> Index {
        Index {
            packs: Vec::new(),
            blobs: IdMap::with_capacity_and_hasher(blobs, Default::default()),
        }
    }

    /// Records a pack's blobs. A blob already indexed in another pack keeps
    /// its first location.
    pub fn add_pack(&mut self, pack: Id, size: u64, entries: &[PackEntry]) {
        let idx = self.packs.len() as u32;
        self.packs.push((pack, size));
        self.blobs.reserve(entries.len());
        for e in entries {
            self.blobs.entry(e.id).or_insert(Slot {
                pack: idx,
                offset: e.offset,
                length: e.length,
                raw_length: e.raw_length,
                blob_type: e.blob_type,
                compressed: e.compressed,
            });
        }
    }

    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
        self.blobs.get(id).map(|s| BlobLocation {
            pack: self.packs[s.pack as usize].0,
            entry: s.entry(id),
        })
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    pub fn has_type(&self, id: &Id, t: BlobType) -> bool {
        self.blobs.get(id).is_some_and(|s| s.blob_type == t)
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    pub fn packs(&self) -> &[(Id, u64)] {
        &self.packs
    }

    pub fn blobs(&self) -> impl Iterator<Item = BlobLocation> + '_ {
        self.blobs.iter().map(|(id, s)| BlobLocation {
            pack: self.packs[s.pack as usize].0,
            entry: s.entry(id),
        })
    }
}
