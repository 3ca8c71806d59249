//! Arbitrary bytes parsed as a whole pack, as a trailer, and as pack
//! header entries (with and without a blob-area bound).
#![no_main]

use cairn_engine::pack::{self, TRAILER_LEN};
use cairn_fuzz::{key, open_blob_both, REPO};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let k = key();
    if let Ok(entries) = pack::parse_pack(k, &REPO, data, "p") {
        // Only the fixed key's seeds authenticate; their entries lie in
        // the blob area and their blobs open or fail cleanly.
        for e in &entries {
            let end = (e.offset as usize).checked_add(e.length as usize).unwrap();
            assert!(end <= data.len());
            let _ = open_blob_both(e, &data[e.offset as usize..end]);
        }
    }
    if data.len() >= TRAILER_LEN {
        let size = data.len() as u64;
        let _ = pack::header_len_from_trailer(&data[data.len() - TRAILER_LEN..], size, "p");
        let _ = pack::header_len_from_trailer(&data[..TRAILER_LEN], u64::MAX, "p");
    }
    let _ = pack::header_len_from_trailer(data, data.len() as u64, "p");
    let bound = data
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()));
    for end in [None, bound, Some(data.len() as u64)] {
        if let Ok(es) = pack::decode_entries(data, end, "p") {
            assert_eq!(pack::encode_entries(&es), data, "entries do not round-trip");
            assert!(pack::check_entries(data, end, "p").is_ok());
            for e in &es {
                assert!(e.length as u64 <= u64::from(e.raw_length) + 40);
                if let Some(end) = end {
                    assert!(u64::from(e.offset) + u64::from(e.length) <= end);
                }
                let _ = open_blob_both(e, data);
            }
        } else {
            assert!(pack::check_entries(data, end, "p").is_err());
        }
    }
    if data.len() >= 16 {
        let size = u64::from_le_bytes(data[..8].try_into().unwrap());
        let _ = pack::open_header(k, &REPO, &data[8..], size, "p");
    }
});
