//! File framing shared by every stored file: the 8-byte header and the
//! associated data that binds each ciphertext to its file type, role,
//! repository and (for blobs) ID.

use crate::error::{Error, Result};
use crate::id::Id;

/// First bytes of every stored file.
pub const MAGIC: &[u8; 5] = b"CAIRN";
/// Repository format version this engine reads and writes.
pub const VERSION: u8 = 1;
/// Length of [`header`].
pub const HEADER_LEN: usize = 8;

/// What a stored file is; the third field of its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FileType {
    Config = 1,
    Key = 2,
    Pack = 3,
    Index = 4,
    Snapshot = 5,
    Lock = 6,
}

impl FileType {
    pub fn name(self) -> &'static str {
        match self {
            FileType::Config => "config",
            FileType::Key => "key",
            FileType::Pack => "pack",
            FileType::Index => "index",
            FileType::Snapshot => "snapshot",
            FileType::Lock => "lock",
        }
    }

    /// The name with its indefinite article, for messages.
    fn with_article(self) -> String {
        match self {
            FileType::Index => "an index".to_string(),
            t => format!("a {}", t.name()),
        }
    }

    fn from_u8(b: u8) -> Option<FileType> {
        Some(match b {
            1 => FileType::Config,
            2 => FileType::Key,
            3 => FileType::Pack,
            4 => FileType::Index,
            5 => FileType::Snapshot,
            6 => FileType::Lock,
            _ => return None,
        })
    }
}

/// The role of one ciphertext, bound into its associated data so that no
/// ciphertext can be replayed in another role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    Config = 1,
    Index = 2,
    Snapshot = 3,
    Lock = 4,
    PackHeader = 5,
    DataBlob = 6,
    TreeBlob = 7,
    KeyWrap = 8,
}

/// The header every stored file starts with: magic, version, type, flags.
pub fn header(ft: FileType) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..5].copy_from_slice(MAGIC);
    h[5] = VERSION;
    h[6] = ft as u8;
    h
}

/// The file type a stored file's header claims, if it has a valid header
/// of this format version. Says nothing about whether the rest is intact.
pub fn peek_type(bytes: &[u8]) -> Option<FileType> {
    if bytes.len() < HEADER_LEN || &bytes[..5] != MAGIC || bytes[5] != VERSION || bytes[7] != 0 {
        return None;
    }
    FileType::from_u8(bytes[6])
}

/// Checks a file's header against the type expected where it was found and
/// returns the rest of the file.
pub fn strip_header<'a>(bytes: &'a [u8], expected: FileType, path: &str) -> Result<&'a [u8]> {
    if bytes.len() < HEADER_LEN || &bytes[..5] != MAGIC {
        return Err(Error::corrupt(path, "not a cairn file (bad magic)"));
    }
    if bytes[5] != VERSION {
        return Err(Error::corrupt(
            path,
            format!(
                "format version {} is not supported (this cairn reads version {VERSION})",
                bytes[5]
            ),
        ));
    }
    match FileType::from_u8(bytes[6]) {
        Some(t) if t == expected => {}
        Some(t) => {
            return Err(Error::corrupt(
                path,
                format!(
                    "is {} file where {} file belongs",
                    t.with_article(),
                    expected.with_article()
                ),
            ))
        }
        None => {
            return Err(Error::corrupt(
                path,
                format!("unknown file type {}", bytes[6]),
            ))
        }
    }
    if bytes[7] != 0 {
        return Err(Error::corrupt(path, "reserved header flags are set"));
    }
    Ok(&bytes[HEADER_LEN..])
}

/// Associated data: header || repository ID || role || blob ID (blobs only).
pub fn aad(ft: FileType, repo: &Id, role: Role, blob: Option<&Id>) -> Vec<u8> {
    let mut a = Vec::with_capacity(HEADER_LEN + 32 + 1 + 32);
    a.extend_from_slice(&header(ft));
    a.extend_from_slice(&repo.0);
    a.push(role as u8);
    if let Some(id) = blob {
        a.extend_from_slice(&id.0);
    }
    a
}
