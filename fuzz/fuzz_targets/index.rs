//! Index files: whole stored files with the fixed key, and arbitrary CBOR
//! sealed as an index body; every accepted pack's entries must lie inside
//! the pack.
#![no_main]

use cairn_engine::format::{FileType, Role};
use cairn_engine::limits;
use cairn_engine::pack;
use cairn_engine::repofile::indexfile::IndexFile;
use cairn_engine::repofile::{open_metadata, to_cbor};
use cairn_fuzz::{key, seal_cbor_as_file, REPO};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let k = key();
    let _ = open_metadata::<IndexFile>(k, &REPO, FileType::Index, Role::Index, data, "i");
    let f = seal_cbor_as_file(FileType::Index, Role::Index, data);
    let Ok(idx) = open_metadata::<IndexFile>(k, &REPO, FileType::Index, Role::Index, &f, "i")
    else {
        return;
    };
    for p in &idx.packs {
        assert!(p.size <= limits::MAX_PACK);
        // What readers call today, and the stricter bound.
        let es = pack::decode_entries(&p.blobs, Some(p.size), "i").expect("validated on decode");
        assert_eq!(p.entries("i").expect("validated on decode"), es);
        for e in &es {
            assert!(u64::from(e.offset) + u64::from(e.length) + 48 <= p.size);
        }
    }
    // Decoded values re-encode to something that decodes to them.
    let again: IndexFile =
        cairn_engine::repofile::from_cbor(&to_cbor(&idx), "i").expect("re-decode");
    assert_eq!(again, idx);
});
