//! The chunker over arbitrary data with parameters from the input, clamped
//! to valid (small) ranges: min (u16) || avg (u16) || max (u16) || seed
//! (u64) || data. Chunks must reassemble the input and respect min/max
//! except the last.
#![no_main]

use cairn_engine::chunker::Chunker;
use cairn_engine::repofile::config::ChunkerParams;
use cairn_fuzz::check_chunks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 14 {
        return;
    }
    let u16_at = |i: usize| u32::from(u16::from_le_bytes([data[i], data[i + 1]]));
    let min = 64 + u16_at(0) % (4096 - 64 + 1);
    let avg_lo = min.max(256);
    let avg = avg_lo + u16_at(2) % (16384 - avg_lo + 1);
    let max_lo = avg.max(1024);
    let max = max_lo + u16_at(4) % (65536 - max_lo + 1);
    let seed = u64::from_le_bytes(data[6..14].try_into().unwrap());
    let body = &data[14..];
    let c = Chunker::new(
        ChunkerParams {
            min_size: min,
            avg_size: avg,
            max_size: max,
        },
        seed,
    );
    // The true size, and wrong hints in both directions (files change
    // while they are read).
    check_chunks(&c, body, body.len() as u64);
    check_chunks(&c, body, 0);
    check_chunks(&c, body, u64::MAX);
});
