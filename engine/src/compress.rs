//! zstd compression with the declared-size discipline: decompression
//! allocates at most the declared size, and the result must be exactly it.

use crate::error::{Error, Result};

use std::cell::RefCell;

thread_local! {
    // Creating a zstd context costs more than compressing a small file, so
    // each thread keeps one per level.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// A compressed blob is kept only when it saves more than this share of
/// the plaintext (1/32, about 3%). Below that, decompressing on every
/// restore costs more than the space saved: a database of random text
/// pages saved 2.7% by compression while zstd's Huffman decoding took a
/// quarter of its restore's CPU time.
pub const MIN_SAVING_DIVISOR: usize = 32;

/// Compresses; `None` when compression would not save more than
/// 1/`MIN_SAVING_DIVISOR` of the data.
pub fn compress(data: &[u8], level: i32) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    compress_into(data, level, &mut out).then_some(out)
}

/// Like [`compress`], into `out` (whose contents are replaced), so that a
/// caller compressing many blobs reuses one buffer; false (and `out`'s
/// contents unspecified) when compression does not save enough.
pub fn compress_into(data: &[u8], level: i32, out: &mut Vec<u8>) -> bool {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            match zstd::bulk::Compressor::new(level) {
                Ok(c) => *slot = Some((level, c)),
                Err(_) => return false,
            }
        }
        let Some((_, c)) = slot.as_mut() else {
            return false;
        };
        // Output is accepted only when it saves enough. zstd writes up to
        // the buffer's capacity: a fresh buffer of exactly `limit` also
        // stops it early when it cannot; a reused, larger one is judged by
        // the size of the result.
        let limit = data.len() - data.len() / MIN_SAVING_DIVISOR;
        out.clear();
        out.reserve(limit);
        matches!(c.compress_to_buffer(data, out), Ok(n) if n < limit)
    })
}

/// Decompresses into exactly `declared` bytes, failing if the frame holds
/// more or less, never allocating beyond `declared` (which the caller has
/// already checked against the format's limits).
pub fn decompress_exact(data: &[u8], declared: usize, path: &str) -> Result<Vec<u8>> {
    // The format stores exactly one frame. Checking its extent and the
    // content size it declares (when it declares one) rejects a frame that
    // disagrees with `declared` before any output buffer is allocated.
    match zstd::zstd_safe::find_frame_compressed_size(data) {
        Ok(n) if n == data.len() => {}
        Ok(_) => return Err(Error::corrupt(path, "data follows the compressed frame")),
        Err(_) => return Err(Error::corrupt(path, "not a zstd frame")),
    }
    match zstd::zstd_safe::get_frame_content_size(data) {
        Ok(Some(n)) if n != declared as u64 => {
            return Err(Error::corrupt(
                path,
                format!("compressed frame holds {n} bytes, {declared} declared"),
            ))
        }
        Ok(_) => {}
        Err(_) => return Err(Error::corrupt(path, "not a zstd frame")),
    }
    let mut out = Vec::with_capacity(declared);
    let n = DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                zstd::bulk::Decompressor::new()
                    .map_err(|e| Error::corrupt(path, format!("zstd init: {e}")))?,
            );
        }
        match slot.as_mut() {
            Some(d) => d
                .decompress_to_buffer(data, &mut out)
                .map_err(|e| Error::corrupt(path, format!("decompression failed: {e}"))),
            None => Err(Error::corrupt(path, "zstd unavailable")),
        }
    })?;
    if n != declared {
        return Err(Error::corrupt(
            path,
            format!("decompressed to {n} bytes, {declared} declared"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_size_enforced() {
        let data = vec![5u8; 100_000];
        let c = compress(&data, 3).unwrap();
        assert_eq!(decompress_exact(&c, data.len(), "t").unwrap(), data);
        assert!(decompress_exact(&c, data.len() - 1, "t").is_err());
        assert!(decompress_exact(&c, data.len() + 1, "t").is_err());
        assert!(decompress_exact(b"garbage", 10, "t").is_err());
        assert!(compress(&[1, 2, 3], 3).is_none());
    }

    /// Noise from a fixed-seed generator, so the test sees the same bytes
    /// every run.
    fn noise(n: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn small_savings_are_not_worth_decompressing() {
        // 110 zero bytes in 4 KiB of noise: zstd saves about 2.5%, kept raw.
        let mut page = noise(3986);
        page.extend_from_slice(&[0u8; 110]);
        let z = zstd::bulk::compress(&page, 3).unwrap();
        assert!(z.len() < page.len(), "zstd finds a saving");
        assert!(z.len() >= page.len() - page.len() / MIN_SAVING_DIVISOR);
        assert!(compress(&page, 3).is_none());
        // 600 zero bytes: saves about 14%, kept compressed.
        let mut page = noise(3496);
        page.extend_from_slice(&[0u8; 600]);
        let c = compress(&page, 3).unwrap();
        assert!(c.len() < page.len() - page.len() / MIN_SAVING_DIVISOR);
        assert_eq!(decompress_exact(&c, page.len(), "t").unwrap(), page);
    }

    /// A reused buffer, larger than any limit and holding earlier output,
    /// gives the same decisions and the same bytes as a fresh one.
    #[test]
    fn reused_buffer_decides_as_a_fresh_one() {
        let mut out = Vec::with_capacity(8 << 20);
        out.extend_from_slice(b"left over from an earlier blob");
        let mut barely = noise(4096 - 110);
        barely.extend_from_slice(&[0u8; 110]);
        let mut text = noise(50_000);
        text.extend(std::iter::repeat_n(b'a', 200_000));
        for data in [noise(100_000), barely, text.clone(), noise(3), text] {
            let fresh = compress(&data, 3);
            let kept = compress_into(&data, 3, &mut out);
            assert_eq!(kept, fresh.is_some(), "{} bytes", data.len());
            if let Some(f) = fresh {
                assert_eq!(out, f);
                assert_eq!(decompress_exact(&out, data.len(), "t").unwrap(), data);
            }
        }
    }
}
