//! The repository's files other than packs: config, key files, index files,
//! snapshots, locks, and the tree blobs' CBOR. Each module holds one file
//! type's structure and its encoding.

pub mod config;
pub mod indexfile;
pub mod keyfile;
pub mod snapshot;
pub mod tree;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::format::{self, aad, FileType, Role};
use crate::id::Id;
use crate::limits;

/// Encodes a value as CBOR.
pub fn to_cbor<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing CBOR into a Vec fails only for values serde cannot represent,
    // which none of the format's types are.
    ciborium::into_writer(v, &mut out).expect("format types encode as CBOR");
    out
}

/// Decodes exactly one CBOR item that must fill `b`, reporting a failure
/// against `path`.
///
/// Hostile input is safe here: byte and text strings are read in bounded
/// pieces (a header declaring a 2^60-byte string fails at the end of the
/// input instead of allocating), sequences preallocate at most serde's
/// cautious size hint, and nesting deeper than ciborium's recursion limit
/// (256) is an error, not a stack overflow.
pub fn from_cbor<T: DeserializeOwned>(b: &[u8], path: &str) -> Result<T> {
    let mut rest = b;
    let v = ciborium::from_reader(&mut rest).map_err(|e| {
        let why = match e {
            ciborium::de::Error::Io(_) => "truncated".to_string(),
            ciborium::de::Error::Syntax(at) => format!("syntax error at byte {at}"),
            ciborium::de::Error::Semantic(_, m) => m,
            ciborium::de::Error::RecursionLimitExceeded => "nested too deeply".to_string(),
        };
        Error::corrupt(path, format!("invalid CBOR: {why}"))
    })?;
    if !rest.is_empty() {
        return Err(Error::corrupt(
            path,
            format!("{} bytes follow the CBOR value", rest.len()),
        ));
    }
    Ok(v)
}

/// The sealed body of a metadata file: raw length (u64 LE) || zstd(CBOR),
/// encrypted with associated data binding file type, repository and role.
pub fn seal_metadata_body<T: Serialize>(
    key: &MasterKey,
    repo: &Id,
    ft: FileType,
    role: Role,
    v: &T,
) -> Vec<u8> {
    let cbor = to_cbor(v);
    let mut plain = Vec::with_capacity(cbor.len() / 2 + 16);
    plain.extend_from_slice(&(cbor.len() as u64).to_le_bytes());
    // zstd fails only on allocation failure.
    plain.extend_from_slice(&zstd::bulk::compress(&cbor, 3).expect("zstd compresses"));
    key.seal(&aad(ft, repo, role, None), &plain)
}

/// A whole metadata file: header || sealed body.
pub fn seal_metadata<T: Serialize>(
    key: &MasterKey,
    repo: &Id,
    ft: FileType,
    role: Role,
    v: &T,
) -> Vec<u8> {
    let mut file = format::header(ft).to_vec();
    file.extend_from_slice(&seal_metadata_body(key, repo, ft, role, v));
    file
}

/// Authenticates, decompresses and decodes a sealed body.
pub fn open_metadata_body<T: DeserializeOwned>(
    key: &MasterKey,
    repo: &Id,
    ft: FileType,
    role: Role,
    body: &[u8],
    path: &str,
) -> Result<T> {
    let plain = key.open(&aad(ft, repo, role, None), body).ok_or_else(|| {
        Error::corrupt(
            path,
            "fails authentication (wrong repository, wrong role, or damaged)",
        )
    })?;
    let cbor = decompress_declared(&plain, path)?;
    from_cbor(&cbor, path)
}

/// Checks the size and header of a metadata file, then opens its body.
pub fn open_metadata<T: DeserializeOwned>(
    key: &MasterKey,
    repo: &Id,
    ft: FileType,
    role: Role,
    bytes: &[u8],
    path: &str,
) -> Result<T> {
    if bytes.len() as u64 > limits::MAX_METADATA_FILE {
        return Err(Error::Limit {
            path: path.to_string(),
            what: ft.name(),
            size: bytes.len() as u64,
            limit: limits::MAX_METADATA_FILE,
        });
    }
    let body = format::strip_header(bytes, ft, path)?;
    open_metadata_body(key, repo, ft, role, body, path)
}

/// Splits `raw length || zstd frame` and decompresses within the limits.
pub fn decompress_declared(plain: &[u8], path: &str) -> Result<Vec<u8>> {
    if plain.len() < 8 {
        return Err(Error::corrupt(path, "metadata body is truncated"));
    }
    let mut l = [0u8; 8];
    l.copy_from_slice(&plain[..8]);
    let raw = u64::from_le_bytes(l);
    if raw > limits::MAX_METADATA_PLAIN {
        return Err(Error::Limit {
            path: path.to_string(),
            what: "decompressed metadata",
            size: raw,
            limit: limits::MAX_METADATA_PLAIN,
        });
    }
    crate::compress::decompress_exact(&plain[8..], raw as usize, path)
}
