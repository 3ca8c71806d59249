//! 32-byte identifiers: blob IDs (keyed BLAKE3 of plaintext) and storage
//! file names (plain BLAKE3 of the stored bytes).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A map keyed by IDs that a key holder computed: blob IDs, and pack IDs
/// read from authenticated index files. Such IDs are already uniformly
/// random, so they are folded, not hashed, into a table's hash: SipHash
/// over all 32 bytes cost a 530 MiB database restore 6% of its user CPU.
/// Not for names listed from storage, which anyone with write access
/// there could choose to collide.
pub type IdMap<V> = std::collections::HashMap<Id, V, BuildIdHasher>;
/// A set of IDs that a key holder computed; see [`IdMap`].
pub type IdSet = std::collections::HashSet<Id, BuildIdHasher>;
/// Builds [`IdHasher`]s.
pub type BuildIdHasher = std::hash::BuildHasherDefault<IdHasher>;

/// Hashes an [`Id`] by folding its four 8-byte words together: no mixing
/// is needed for bytes that are already uniformly random.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
        }
    }

    fn write_usize(&mut self, _len: usize) {
        // The length prefix of a slice: the same for every ID.
    }
}

/// A 256-bit identifier, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

impl Id {
    pub const LEN: usize = 32;

    /// The storage name of a file: the unkeyed BLAKE3 hash of its bytes, so
    /// that anyone can detect storage corruption without the key.
    pub fn of_stored(bytes: &[u8]) -> Id {
        Id(*blake3::hash(bytes).as_bytes())
    }

    pub fn random() -> Id {
        let mut b = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
        Id(b)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex digits, as shown in listings.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    pub fn from_hex(s: &str) -> Result<Id> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b)
            .map_err(|_| Error::InvalidArgument(format!("{s:?} is not a 64-digit hex ID")))?;
        Ok(Id(b))
    }

    pub fn from_slice(s: &[u8]) -> Option<Id> {
        <[u8; 32]>::try_from(s).ok().map(Id)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

/// In the repository's CBOR an ID is a 32-byte byte string; in
/// human-readable formats (JSON output) it is hex, so it can be pasted back
/// into a command.
impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Id, D::Error> {
        if d.is_human_readable() {
            let s: String = Deserialize::deserialize(d)?;
            return Id::from_hex(&s)
                .map_err(|_| serde::de::Error::custom("expected a 64-digit hex ID"));
        }
        let b: serde_bytes::ByteBuf = Deserialize::deserialize(d)?;
        Id::from_slice(&b).ok_or_else(|| serde::de::Error::invalid_length(b.len(), &"32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    /// Every byte of an ID reaches its hash, so IDs that share a prefix
    /// (as a hostile key holder could make) still spread over the table.
    #[test]
    fn id_hash_depends_on_every_byte() {
        let build = BuildIdHasher::default();
        let base = Id([0x5a; 32]);
        let h = build.hash_one(base);
        for i in 0..Id::LEN {
            let mut other = base;
            other.0[i] ^= 1;
            assert_ne!(build.hash_one(other), h, "byte {i} ignored");
        }
        let mut map: IdMap<usize> = IdMap::default();
        for i in 0..1000usize {
            let mut id = Id::default();
            id.0[24..].copy_from_slice(&(i as u64).to_le_bytes());
            map.insert(id, i);
        }
        assert_eq!(map.len(), 1000);
        assert!((0..1000usize).all(|i| {
            let mut id = Id::default();
            id.0[24..].copy_from_slice(&(i as u64).to_le_bytes());
            map.get(&id) == Some(&i)
        }));
    }
}
