//! Pack files: encrypted blobs of one type, followed by an encrypted header
//! that lists them and a fixed-size trailer that locates the header.
//!
//! ```text
//! header(8) | blob ... | sealed pack header | header length u32 LE | "CPAK"
//! ```

use crate::crypto::{MasterKey, OVERHEAD};
use crate::error::{Error, Result};
use crate::format::{self, aad, FileType, Role, HEADER_LEN};
use crate::id::Id;
use crate::limits;

/// Bytes of one pack header entry.
pub const ENTRY_LEN: usize = 48;
/// Bytes of the trailer.
pub const TRAILER_LEN: usize = 8;
pub const TRAILER_MAGIC: &[u8; 4] = b"CPAK";

/// What a blob holds. Packs never mix types, so that tree packs (small,
/// needed by every listing) can be cached without the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobType {
    Data,
    Tree,
}

impl BlobType {
    fn code(self) -> u8 {
        match self {
            BlobType::Data => 1,
            BlobType::Tree => 2,
        }
    }

    fn from_code(c: u8) -> Option<BlobType> {
        match c {
            1 => Some(BlobType::Data),
            2 => Some(BlobType::Tree),
            _ => None,
        }
    }

    pub fn role(self) -> Role {
        match self {
            BlobType::Data => Role::DataBlob,
            BlobType::Tree => Role::TreeBlob,
        }
    }
}

/// One blob's place in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    pub blob_type: BlobType,
    /// Whether the plaintext was zstd-compressed before encryption.
    pub compressed: bool,
    /// Offset of the blob's encrypted part in the pack.
    pub offset: u32,
    /// Length of the encrypted part (nonce, ciphertext, tag).
    pub length: u32,
    /// Length of the blob's plaintext after decompression.
    pub raw_length: u32,
    pub id: Id,
}

/// Encodes entries as the fixed 48-byte records of the pack header (also
/// used inside index files).
pub fn encode_entries(entries: &[PackEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_LEN);
    for e in entries {
        out.push(e.blob_type.code());
        out.push(u8::from(e.compressed));
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.length.to_le_bytes());
        out.extend_from_slice(&e.raw_length.to_le_bytes());
        out.extend_from_slice(&e.id.0);
    }
    out
}

/// Decodes and validates pack header records. `pack_data_end`, when known,
/// is where the blob area ends; every entry must lie within it.
pub fn decode_entries(b: &[u8], pack_data_end: Option<u64>, path: &str) -> Result<Vec<PackEntry>> {
    let n = check_entries_len(b, path)?;
    let mut out = Vec::with_capacity(n);
    for rec in b.chunks_exact(ENTRY_LEN) {
        out.push(decode_entry(rec, pack_data_end, path)?);
    }
    Ok(out)
}

/// Applies the checks of [`decode_entries`] without keeping the entries.
pub fn check_entries(b: &[u8], pack_data_end: Option<u64>, path: &str) -> Result<()> {
    check_entries_len(b, path)?;
    for rec in b.chunks_exact(ENTRY_LEN) {
        decode_entry(rec, pack_data_end, path)?;
    }
    Ok(())
}

/// The number of entries in `b`, after checking it is a whole number of
/// them and within the format's limit.
fn check_entries_len(b: &[u8], path: &str) -> Result<usize> {
    if !b.len().is_multiple_of(ENTRY_LEN) {
        return Err(Error::corrupt(
            path,
            "pack header length is not a whole number of entries",
        ));
    }
    let n = b.len() / ENTRY_LEN;
    if n as u64 > limits::MAX_PACK_ENTRIES {
        return Err(Error::corrupt(path, "too many pack entries"));
    }
    Ok(n)
}

/// Decodes and checks one 48-byte record.
fn decode_entry(rec: &[u8], pack_data_end: Option<u64>, path: &str) -> Result<PackEntry> {
    let rec: &[u8; ENTRY_LEN] = rec
        .try_into()
        .map_err(|_| Error::corrupt(path, "truncated pack entry"))?;
    let u32_at = |i: usize| u32::from_le_bytes([rec[i], rec[i + 1], rec[i + 2], rec[i + 3]]);
    let blob_type = BlobType::from_code(rec[0])
        .ok_or_else(|| Error::corrupt(path, format!("unknown blob type {}", rec[0])))?;
    let compressed = match rec[1] {
        0 => false,
        1 => true,
        c => return Err(Error::corrupt(path, format!("unknown compression {c}"))),
    };
    if rec[2] != 0 || rec[3] != 0 {
        return Err(Error::corrupt(
            path,
            "reserved bytes in a pack entry are set",
        ));
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(&rec[16..48]);
    let e = PackEntry {
        blob_type,
        compressed,
        offset: u32_at(4),
        length: u32_at(8),
        raw_length: u32_at(12),
        id: Id(id),
    };
    // Compression is used only when it shrinks a blob, so a sealed blob is
    // never longer than its plaintext plus the AEAD overhead, and an
    // uncompressed one is exactly that long. Together with the limit on
    // `raw_length` this bounds every blob read to `MAX_BLOB` + 40 bytes.
    let sealed_plain_len = u64::from(e.raw_length) + OVERHEAD as u64;
    if (e.length as usize) < OVERHEAD
        || u64::from(e.length) > sealed_plain_len
        || (!e.compressed && u64::from(e.length) != sealed_plain_len)
        || u64::from(e.raw_length) > limits::MAX_BLOB
        || (e.offset as usize) < HEADER_LEN
    {
        return Err(Error::corrupt(
            path,
            format!("blob {} has impossible sizes", e.id),
        ));
    }
    if let Some(end) = pack_data_end {
        if u64::from(e.offset) + u64::from(e.length) > end {
            return Err(Error::corrupt(
                path,
                format!("blob {} lies outside the pack", e.id),
            ));
        }
    }
    Ok(e)
}

/// Accumulates sealed blobs of one type into a pack in memory.
pub struct PackWriter {
    blob_type: BlobType,
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

/// A finished pack, ready to store.
pub struct FinishedPack {
    pub id: Id,
    pub bytes: Vec<u8>,
    pub entries: Vec<PackEntry>,
}

impl PackWriter {
    pub fn new(blob_type: BlobType, capacity: usize) -> PackWriter {
        PackWriter::with_buffer(blob_type, Vec::with_capacity(capacity))
    }

    /// A writer filling `buf` (its contents dropped, its memory kept): the
    /// buffer of a pack already stored.
    pub fn with_buffer(blob_type: BlobType, mut buf: Vec<u8>) -> PackWriter {
        buf.clear();
        buf.extend_from_slice(&format::header(FileType::Pack));
        PackWriter {
            blob_type,
            buf,
            entries: Vec::new(),
        }
    }

    pub fn blob_type(&self) -> BlobType {
        self.blob_type
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn count(&self) -> usize {
        self.entries.len()
    }

    /// Appends an already sealed blob.
    ///
    /// Callers close a pack at its target size (at most half of
    /// `MAX_PACK`) and before its header would exceed `MAX_PACK_HEADER`,
    /// and every sealed blob is at most `MAX_BLOB` + 40 bytes, so offsets
    /// and lengths always fit the entries' 32-bit fields; a pack that would
    /// outgrow the format is a caller bug, caught here in debug builds.
    pub fn add(&mut self, id: Id, sealed: &[u8], raw_length: u32, compressed: bool) {
        debug_assert!(
            (self.buf.len() + sealed.len()) as u64 <= limits::MAX_PACK,
            "pack would exceed MAX_PACK"
        );
        debug_assert!(
            ((self.entries.len() + 1) * ENTRY_LEN + OVERHEAD) as u64 <= limits::MAX_PACK_HEADER,
            "pack header would exceed MAX_PACK_HEADER"
        );
        debug_assert!(u64::from(raw_length) <= limits::MAX_BLOB);
        self.entries.push(PackEntry {
            blob_type: self.blob_type,
            compressed,
            offset: self.buf.len() as u32,
            length: sealed.len() as u32,
            raw_length,
            id,
        });
        self.buf.extend_from_slice(sealed);
    }

    /// Seals the header, appends it and the trailer, and names the pack by
    /// the hash of its bytes.
    pub fn finish(mut self, key: &MasterKey, repo: &Id) -> FinishedPack {
        let plain = encode_entries(&self.entries);
        let sealed = key.seal(&aad(FileType::Pack, repo, Role::PackHeader, None), &plain);
        self.buf.extend_from_slice(&sealed);
        self.buf
            .extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(TRAILER_MAGIC);
        FinishedPack {
            id: Id::of_stored(&self.buf),
            bytes: self.buf,
            entries: self.entries,
        }
    }
}

/// Seals one blob's plaintext into `out` (contents replaced), compressing
/// it first into `scratch` when that helps; returns whether it did. Both
/// buffers are reused from blob to blob by the caller.
#[allow(clippy::too_many_arguments)]
pub fn seal_blob_into(
    key: &MasterKey,
    repo: &Id,
    blob_type: BlobType,
    id: &Id,
    plain: &[u8],
    level: i32,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> bool {
    let a = aad(FileType::Pack, repo, blob_type.role(), Some(id));
    if crate::compress::compress_into(plain, level, scratch) {
        key.seal_into(&a, scratch, out);
        true
    } else {
        key.seal_into(&a, plain, out);
        false
    }
}

/// Authenticates, decrypts, decompresses and re-hashes one blob.
pub fn open_blob(
    key: &MasterKey,
    repo: &Id,
    e: &PackEntry,
    sealed: &[u8],
    path: &str,
) -> Result<Vec<u8>> {
    let a = aad(FileType::Pack, repo, e.blob_type.role(), Some(&e.id));
    let inner = key.open(&a, sealed).ok_or_else(|| auth_failed(e, path))?;
    let plain = match decompressed(e, &inner, path)? {
        Some(d) => d,
        None => inner,
    };
    check_id(key, e, &plain, path)?;
    Ok(plain)
}

/// A blob's plaintext as `open_blob_in_place` leaves it.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// Stored uncompressed: this range of the sealed bytes now holds it.
    InPlace(std::ops::Range<usize>),
    /// Stored compressed: decompressed into a new buffer.
    Decompressed(Vec<u8>),
}

/// When opening a blob checks its plaintext against the blob's ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdCheck {
    /// As it is opened.
    Now,
    /// Not here: the caller checks the bytes where it puts them (a
    /// restored database is checked in its file, before it is moved into
    /// place, on a core its integrity check leaves idle).
    Later,
}

/// Like `open_blob`, with the same checks in the same order (the ID check
/// only with [`IdCheck::Now`]), but decrypts where the sealed bytes lie
/// (`sealed` is changed, whatever the outcome).
pub fn open_blob_in_place(
    key: &MasterKey,
    repo: &Id,
    e: &PackEntry,
    sealed: &mut [u8],
    path: &str,
    check: IdCheck,
) -> Result<Opened> {
    let a = aad(FileType::Pack, repo, e.blob_type.role(), Some(&e.id));
    let r = key
        .open_in_place(&a, sealed)
        .ok_or_else(|| auth_failed(e, path))?;
    let opened = match decompressed(e, &sealed[r.clone()], path)? {
        Some(d) => Opened::Decompressed(d),
        None => Opened::InPlace(r),
    };
    let plain = match &opened {
        Opened::InPlace(r) => &sealed[r.clone()],
        Opened::Decompressed(d) => d.as_slice(),
    };
    if check == IdCheck::Now {
        check_id(key, e, plain, path)?;
    }
    Ok(opened)
}

fn auth_failed(e: &PackEntry, path: &str) -> Error {
    Error::corrupt(path, format!("blob {} fails authentication", e.id))
}

/// The decompressed plaintext of a compressed blob; `None` when the blob
/// is stored as is and `inner` (its decrypted bytes) has the declared
/// length.
fn decompressed(e: &PackEntry, inner: &[u8], path: &str) -> Result<Option<Vec<u8>>> {
    if e.compressed {
        crate::compress::decompress_exact(inner, e.raw_length as usize, path).map(Some)
    } else if inner.len() == e.raw_length as usize {
        Ok(None)
    } else {
        Err(Error::corrupt(
            path,
            format!("blob {} has the wrong length", e.id),
        ))
    }
}

fn check_id(key: &MasterKey, e: &PackEntry, plain: &[u8], path: &str) -> Result<()> {
    if key.blob_id(plain) != e.id {
        return Err(Error::corrupt(
            path,
            format!("blob {} does not match its ID", e.id),
        ));
    }
    Ok(())
}

/// Parses the trailer of a pack whose last `TRAILER_LEN` bytes are given,
/// returning the sealed header's length after checking it fits the pack.
pub fn header_len_from_trailer(trailer: &[u8], pack_size: u64, path: &str) -> Result<u64> {
    if trailer.len() != TRAILER_LEN || &trailer[4..] != TRAILER_MAGIC {
        return Err(Error::corrupt(path, "pack trailer is missing or damaged"));
    }
    let hlen = u64::from(u32::from_le_bytes([
        trailer[0], trailer[1], trailer[2], trailer[3],
    ]));
    if hlen > limits::MAX_PACK_HEADER {
        return Err(Error::Limit {
            path: path.to_string(),
            what: "pack header",
            size: hlen,
            limit: limits::MAX_PACK_HEADER,
        });
    }
    if hlen < OVERHEAD as u64 || hlen + (TRAILER_LEN + HEADER_LEN) as u64 > pack_size {
        return Err(Error::corrupt(
            path,
            "pack header length does not fit the pack",
        ));
    }
    Ok(hlen)
}

/// Opens a pack's sealed header and returns its entries, each checked to
/// lie inside the blob area.
pub fn open_header(
    key: &MasterKey,
    repo: &Id,
    sealed: &[u8],
    pack_size: u64,
    path: &str,
) -> Result<Vec<PackEntry>> {
    let plain = key
        .open(&aad(FileType::Pack, repo, Role::PackHeader, None), sealed)
        .ok_or_else(|| Error::corrupt(path, "pack header fails authentication"))?;
    let data_end = pack_size
        .checked_sub((sealed.len() + TRAILER_LEN) as u64)
        .ok_or_else(|| Error::corrupt(path, "pack header does not fit the pack"))?;
    let entries = decode_entries(&plain, Some(data_end), path)?;
    if let Some(first) = entries.first() {
        if entries.iter().any(|e| e.blob_type != first.blob_type) {
            return Err(Error::corrupt(path, "pack mixes blob types"));
        }
    }
    Ok(entries)
}

/// Reads and checks a complete pack held in memory: header, trailer, and
/// that it starts with a pack file header.
pub fn parse_pack(key: &MasterKey, repo: &Id, bytes: &[u8], path: &str) -> Result<Vec<PackEntry>> {
    if bytes.len() as u64 > limits::MAX_PACK {
        return Err(Error::corrupt(path, "pack exceeds the format's size limit"));
    }
    format::strip_header(bytes, FileType::Pack, path)?;
    let size = bytes.len() as u64;
    if size < (HEADER_LEN + TRAILER_LEN) as u64 {
        return Err(Error::corrupt(path, "pack is truncated"));
    }
    let trailer = &bytes[bytes.len() - TRAILER_LEN..];
    let hlen = header_len_from_trailer(trailer, size, path)? as usize;
    let start = bytes.len() - TRAILER_LEN - hlen;
    open_header(
        key,
        repo,
        &bytes[start..bytes.len() - TRAILER_LEN],
        size,
        path,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seals a data blob at level 3 into reused buffers.
    fn seal_data(
        key: &MasterKey,
        repo: &Id,
        id: &Id,
        b: &[u8],
        scratch: &mut Vec<u8>,
        sealed: &mut Vec<u8>,
    ) -> bool {
        seal_blob_into(key, repo, BlobType::Data, id, b, 3, scratch, sealed)
    }

    #[test]
    fn pack_round_trip_and_damage() {
        let key = MasterKey::generate();
        let repo = Id::random();
        let mut w = PackWriter::new(BlobType::Data, 1024);
        let blobs: Vec<Vec<u8>> = vec![vec![1; 1000], b"short".to_vec(), vec![]];
        let (mut scratch, mut sealed) = (Vec::new(), Vec::new());
        for b in &blobs {
            let id = key.blob_id(b);
            let c = seal_data(&key, &repo, &id, b, &mut scratch, &mut sealed);
            w.add(id, &sealed, b.len() as u32, c);
        }
        let p = w.finish(&key, &repo);
        assert_eq!(p.id, Id::of_stored(&p.bytes));
        let entries = parse_pack(&key, &repo, &p.bytes, "p").unwrap();
        assert_eq!(entries, p.entries);
        for (e, b) in entries.iter().zip(&blobs) {
            let s = &p.bytes[e.offset as usize..(e.offset + e.length) as usize];
            assert_eq!(&open_blob(&key, &repo, e, s, "p").unwrap(), b);
        }
        // Another repository's ID in the associated data fails.
        assert!(parse_pack(&key, &Id::random(), &p.bytes, "p").is_err());
        // Any flipped byte in the header region or trailer fails.
        for i in [
            0,
            5,
            6,
            p.bytes.len() - 1,
            p.bytes.len() - 5,
            p.bytes.len() - 20,
        ] {
            let mut bad = p.bytes.clone();
            bad[i] ^= 0x40;
            assert!(parse_pack(&key, &repo, &bad, "p").is_err(), "flip at {i}");
        }
        for n in 0..p.bytes.len() {
            let _ = parse_pack(&key, &repo, &p.bytes[..n], "p");
        }
        // A blob moved under another ID fails.
        let mut e = entries[0];
        e.id = entries[1].id;
        let s = &p.bytes[e.offset as usize..(e.offset + e.length) as usize];
        assert!(open_blob(&key, &repo, &e, s, "p").is_err());
    }

    /// Opening in place gives the same plaintext, or the same error, as
    /// opening a copy, for compressed and stored blobs, intact or damaged.
    #[test]
    fn open_in_place_agrees_with_open() {
        let key = MasterKey::generate();
        let repo = Id::random();
        let blobs: Vec<Vec<u8>> = vec![vec![1; 5000], (0..=255u8).collect(), vec![]];
        let mut cases = Vec::new();
        let (mut scratch, mut sealed) = (Vec::new(), Vec::new());
        for b in &blobs {
            let id = key.blob_id(b);
            let c = seal_data(&key, &repo, &id, b, &mut scratch, &mut sealed);
            let e = PackEntry {
                blob_type: BlobType::Data,
                id,
                offset: 0,
                length: sealed.len() as u32,
                raw_length: b.len() as u32,
                compressed: c,
            };
            cases.push((e, sealed.clone(), Some(b.clone())));
            let mut flipped = sealed.clone();
            flipped[sealed.len() / 2] ^= 1;
            cases.push((e, flipped, None));
            cases.push((
                PackEntry {
                    compressed: !c,
                    ..e
                },
                sealed.clone(),
                None,
            ));
            cases.push((
                PackEntry {
                    raw_length: e.raw_length + 1,
                    ..e
                },
                sealed.clone(),
                None,
            ));
            cases.push((
                PackEntry {
                    id: Id::random(),
                    ..e
                },
                sealed.clone(),
                None,
            ));
        }
        assert!(cases.iter().any(|(e, _, ok)| e.compressed && ok.is_some()));
        assert!(cases.iter().any(|(e, _, ok)| !e.compressed && ok.is_some()));
        for (e, sealed, want) in cases {
            let copy = open_blob(&key, &repo, &e, &sealed, "p");
            let mut buf = sealed.clone();
            let got =
                open_blob_in_place(&key, &repo, &e, &mut buf, "p", IdCheck::Now).map(|o| match o {
                    Opened::InPlace(r) => buf[r].to_vec(),
                    Opened::Decompressed(d) => d,
                });
            match (&want, copy, got) {
                (Some(w), Ok(c), Ok(g)) => {
                    assert_eq!(&c, w);
                    assert_eq!(&g, w);
                }
                (None, Err(c), Err(g)) => assert_eq!(c.to_string(), g.to_string()),
                (w, c, g) => panic!("{e:?}: want {w:?}, open {c:?}, in place {g:?}"),
            }
        }
    }

    /// `IdCheck::Later` leaves out the ID check and nothing else: a blob
    /// sealed under an ID that is not its content's opens, damage does not.
    #[test]
    fn later_leaves_out_only_the_id_check() {
        let key = MasterKey::generate();
        let repo = Id::random();
        let b = vec![7u8; 3000];
        let wrong = Id::random();
        let (mut scratch, mut sealed) = (Vec::new(), Vec::new());
        let c = seal_data(&key, &repo, &wrong, &b, &mut scratch, &mut sealed);
        let e = PackEntry {
            blob_type: BlobType::Data,
            id: wrong,
            offset: 0,
            length: sealed.len() as u32,
            raw_length: b.len() as u32,
            compressed: c,
        };
        let open = |check: IdCheck, flip: bool| {
            let mut buf = sealed.clone();
            if flip {
                let n = buf.len();
                buf[n / 2] ^= 1;
            }
            open_blob_in_place(&key, &repo, &e, &mut buf, "p", check).map(|o| match o {
                Opened::InPlace(r) => buf[r].to_vec(),
                Opened::Decompressed(d) => d,
            })
        };
        let now = open(IdCheck::Now, false).unwrap_err().to_string();
        assert!(now.contains("does not match its ID"), "{now}");
        assert_eq!(open(IdCheck::Later, false).unwrap(), b);
        assert!(open(IdCheck::Later, true).is_err());
    }
}
