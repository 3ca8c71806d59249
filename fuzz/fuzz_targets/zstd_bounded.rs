//! Declared-size decompression: declared (u32 LE, capped at 1 MiB + 1) ||
//! level (u8) || frame. Also compresses the frame bytes and checks the
//! round trip.
#![no_main]

use cairn_engine::compress::{compress, decompress_exact};
use libfuzzer_sys::fuzz_target;

const CAP: usize = (1 << 20) + 1;

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let declared = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize % (CAP + 1);
    let level = i32::from(data[4] % 22) + 1;
    let frame = &data[5..];
    if let Ok(out) = decompress_exact(frame, declared, "z") {
        assert_eq!(out.len(), declared);
    }
    if let Some(c) = compress(frame, level.min(6)) {
        assert!(c.len() < frame.len());
        assert_eq!(
            decompress_exact(&c, frame.len(), "z").expect("round trip"),
            frame
        );
        assert!(decompress_exact(&c, frame.len() + 1, "z").is_err());
        if !frame.is_empty() {
            assert!(decompress_exact(&c, frame.len() - 1, "z").is_err());
        }
    }
});
