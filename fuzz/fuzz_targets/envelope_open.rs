//! Arbitrary bytes opened as every kind of sealed metadata file with a
//! fixed key, both as a whole stored file and as the plaintext of a body
//! sealed by the harness (reaching decompression and CBOR decoding).
#![no_main]

use cairn_engine::format::{FileType, Role};
use cairn_engine::lock::LockInfo;
use cairn_engine::repofile::indexfile::IndexFile;
use cairn_engine::repofile::snapshot::Snapshot;
use cairn_engine::repofile::{decompress_declared, open_metadata, open_metadata_body};
use cairn_fuzz::{key, seal_plain_as_file, REPO};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;

const KINDS: [(FileType, Role); 4] = [
    (FileType::Config, Role::Config),
    (FileType::Index, Role::Index),
    (FileType::Snapshot, Role::Snapshot),
    (FileType::Lock, Role::Lock),
];

fuzz_target!(|data: &[u8]| {
    let k = key();
    // As stored files (only the seeds, sealed with the fixed key, open).
    for (ft, role) in KINDS {
        let _ = open_metadata::<IgnoredAny>(k, &REPO, ft, role, data, "f");
        let _ = open_metadata_body::<IgnoredAny>(k, &REPO, ft, role, data, "f");
    }
    let _ = open_metadata::<Snapshot>(k, &REPO, FileType::Snapshot, Role::Snapshot, data, "f");
    let _ = open_metadata::<IndexFile>(k, &REPO, FileType::Index, Role::Index, data, "f");

    // As the authenticated plaintext of a body. Declared sizes between
    // 4 MiB and the format's limit are skipped: they are legal, and the
    // reader allocates them, which would only slow the fuzzer down.
    if data.len() >= 8 {
        let declared = u64::from_le_bytes(data[..8].try_into().unwrap());
        if declared > 4 << 20 && declared <= cairn_engine::limits::MAX_METADATA_PLAIN {
            return;
        }
    }
    let plain_ok = decompress_declared(data, "p").is_ok();
    let f = seal_plain_as_file(FileType::Snapshot, Role::Snapshot, data);
    let s = open_metadata::<Snapshot>(k, &REPO, FileType::Snapshot, Role::Snapshot, &f, "f");
    assert!(plain_ok || s.is_err());
    let f = seal_plain_as_file(FileType::Index, Role::Index, data);
    let _ = open_metadata::<IndexFile>(k, &REPO, FileType::Index, Role::Index, &f, "f");
    let f = seal_plain_as_file(FileType::Lock, Role::Lock, data);
    let _ = open_metadata::<LockInfo>(k, &REPO, FileType::Lock, Role::Lock, &f, "f");
    // The wrong role never opens.
    assert!(open_metadata::<IgnoredAny>(k, &REPO, FileType::Lock, Role::Index, &f, "f").is_err());
});
