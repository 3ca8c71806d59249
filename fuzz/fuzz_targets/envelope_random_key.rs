//! Metadata opened and sealed under a key and repository ID taken from
//! the input: secret (32) || repository ID (32) || file.
#![no_main]

use cairn_engine::crypto::MasterKey;
use cairn_engine::format::{FileType, Role};
use cairn_engine::id::Id;
use cairn_engine::repofile::indexfile::IndexFile;
use cairn_engine::repofile::snapshot::Snapshot;
use cairn_engine::repofile::{open_metadata, seal_metadata};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;

fuzz_target!(|data: &[u8]| {
    if data.len() < 64 {
        return;
    }
    let k = MasterKey::from_secret(data[..32].try_into().unwrap());
    let repo = Id::from_slice(&data[32..64]).unwrap();
    let file = &data[64..];
    let _ = open_metadata::<Snapshot>(&k, &repo, FileType::Snapshot, Role::Snapshot, file, "f");
    let _ = open_metadata::<IndexFile>(&k, &repo, FileType::Index, Role::Index, file, "f");
    let _ = open_metadata::<IgnoredAny>(&k, &repo, FileType::Lock, Role::Lock, file, "f");
    // Round trip: anything sealed under this key opens to itself, and only
    // in its own place.
    let v = serde_bytes::ByteBuf::from(file.to_vec());
    let sealed = seal_metadata(&k, &repo, FileType::Index, Role::Index, &v);
    let back: serde_bytes::ByteBuf =
        open_metadata(&k, &repo, FileType::Index, Role::Index, &sealed, "f").expect("round trip");
    assert_eq!(back, v);
    assert!(
        open_metadata::<IgnoredAny>(&k, &repo, FileType::Index, Role::Snapshot, &sealed, "f")
            .is_err()
    );
    let mut other = repo;
    other.0[0] ^= 1;
    assert!(
        open_metadata::<IgnoredAny>(&k, &other, FileType::Index, Role::Index, &sealed, "f")
            .is_err()
    );
});
