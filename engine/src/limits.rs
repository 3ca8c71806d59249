//! The format's size limits (format-spec, "Limits"). Every reader checks a
//! length against these before allocating for it, so no length read from
//! storage can make cairn allocate without bound.

/// Largest pack file a reader accepts.
pub const MAX_PACK: u64 = 1 << 30;
/// Largest encrypted pack header.
pub const MAX_PACK_HEADER: u64 = 16 << 20;
/// Largest number of blobs in one pack.
pub const MAX_PACK_ENTRIES: u64 = MAX_PACK_HEADER / crate::pack::ENTRY_LEN as u64;
/// Largest blob plaintext (uncompressed).
pub const MAX_BLOB: u64 = 64 << 20;
/// Largest index, snapshot, config or lock file.
pub const MAX_METADATA_FILE: u64 = 512 << 20;
/// Largest decompressed metadata object (index, snapshot, config, lock).
pub const MAX_METADATA_PLAIN: u64 = 1 << 30;
/// Largest key file.
pub const MAX_KEY_FILE: u64 = 64 << 10;
/// Largest tree blob plaintext.
pub const MAX_TREE: u64 = MAX_BLOB;
/// Deepest directory nesting accepted in a snapshot.
pub const MAX_TREE_DEPTH: usize = 1024;
/// Argon2id bounds accepted from a key file, checked before any work.
pub const MAX_KDF_MEMORY_KIB: u32 = 4 << 20;
pub const MIN_KDF_MEMORY_KIB: u32 = 8 << 10;
pub const MAX_KDF_ITERATIONS: u32 = 64;
pub const MAX_KDF_PARALLELISM: u32 = 64;
