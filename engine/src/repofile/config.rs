//! The repository config: parameters fixed at `init` that every client must
//! agree on. Stored as `header || repository ID || sealed body`; the ID is
//! in clear so that a client can build associated data before decrypting.

use serde::{Deserialize, Serialize};

use super::{open_metadata_body, seal_metadata_body};
use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::format::{self, FileType, Role};
use crate::id::Id;
use crate::limits;

/// Content-defined chunking sizes, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min_size: 512 << 10,
            avg_size: 1 << 20,
            max_size: 8 << 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Repository format version (1).
    pub version: u32,
    pub id: Id,
    pub chunker: ChunkerParams,
    /// Target size of a pack file in bytes.
    pub pack_size: u64,
    /// zstd level for blobs.
    pub compression: i32,
    /// RFC 3339 time of `init`.
    pub created: String,
}

impl Config {
    pub fn new(pack_size: u64, compression: i32, chunker: ChunkerParams) -> Config {
        Config {
            version: u32::from(format::VERSION),
            id: Id::random(),
            chunker,
            pack_size,
            compression,
            created: chrono::Utc::now().to_rfc3339(),
        }
    }

    /// Checks every parameter against what the engine and format allow.
    pub fn validate(&self, path: &str) -> Result<()> {
        let c = &self.chunker;
        let bad = |m: &str| Err(Error::corrupt(path, m.to_string()));
        if self.version != u32::from(format::VERSION) {
            return bad("unsupported repository version");
        }
        // FastCDC 2020 accepts min 64 B..1 MiB, avg 256 B..4 MiB and
        // max 1 KiB..16 MiB; anything else would abort the chunker.
        if !(64..=(1 << 20)).contains(&c.min_size)
            || !(256..=(4 << 20)).contains(&c.avg_size)
            || !(1024..=(16 << 20)).contains(&c.max_size)
            || c.min_size > c.avg_size
            || c.avg_size > c.max_size
            || u64::from(c.max_size) > limits::MAX_BLOB
        {
            return bad("chunker sizes are out of range");
        }
        if self.pack_size < (1 << 20) || self.pack_size > limits::MAX_PACK / 2 {
            return bad("pack size is out of range (1 MiB to 512 MiB)");
        }
        if !(1..=22).contains(&self.compression) {
            return bad("compression level is out of range (1 to 22)");
        }
        Ok(())
    }

    pub fn encode(&self, key: &MasterKey) -> Vec<u8> {
        let mut out = format::header(FileType::Config).to_vec();
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&seal_metadata_body(
            key,
            &self.id,
            FileType::Config,
            Role::Config,
            self,
        ));
        out
    }

    /// The repository ID, readable without a key.
    pub fn peek_id(bytes: &[u8], path: &str) -> Result<Id> {
        let rest = format::strip_header(bytes, FileType::Config, path)?;
        rest.get(..32)
            .and_then(Id::from_slice)
            .ok_or_else(|| Error::corrupt(path, "config is truncated"))
    }

    pub fn decode(bytes: &[u8], key: &MasterKey, path: &str) -> Result<Config> {
        if bytes.len() as u64 > limits::MAX_METADATA_FILE {
            return Err(Error::corrupt(path, "config is too large"));
        }
        let id = Config::peek_id(bytes, path)?;
        let body = &bytes[format::HEADER_LEN + 32..];
        let cfg: Config = open_metadata_body(key, &id, FileType::Config, Role::Config, body, path)?;
        if cfg.id != id {
            return Err(Error::corrupt(path, "config ID does not match its header"));
        }
        cfg.validate(path)?;
        Ok(cfg)
    }
}
