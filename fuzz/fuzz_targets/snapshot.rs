//! Snapshots: whole stored files with the fixed key, and arbitrary CBOR
//! sealed as a snapshot body.
#![no_main]

use cairn_engine::format::{FileType, Role};
use cairn_engine::repofile::snapshot::Snapshot;
use cairn_engine::repofile::{from_cbor, open_metadata, to_cbor};
use cairn_fuzz::{key, seal_cbor_as_file, REPO};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let k = key();
    let _ = open_metadata::<Snapshot>(k, &REPO, FileType::Snapshot, Role::Snapshot, data, "s");
    let f = seal_cbor_as_file(FileType::Snapshot, Role::Snapshot, data);
    if let Ok(s) = open_metadata::<Snapshot>(k, &REPO, FileType::Snapshot, Role::Snapshot, &f, "s")
    {
        let again: Snapshot = from_cbor(&to_cbor(&s), "s").expect("re-decode");
        assert_eq!(again, s);
    }
});
