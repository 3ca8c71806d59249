//! Content-defined chunking of file contents (FastCDC 2020 with the
//! repository's seed), streamed so memory stays bounded by the largest
//! chunk whatever the file size.

use std::io::Read;

use fastcdc::v2020::{Normalization, StreamCDC};

use crate::repofile::config::ChunkerParams;

/// Splits streams into chunks with fixed parameters and seed.
#[derive(Debug, Clone, Copy)]
pub struct Chunker {
    params: ChunkerParams,
    seed: u64,
}

impl Chunker {
    pub fn new(params: ChunkerParams, seed: u64) -> Chunker {
        Chunker { params, seed }
    }

    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Calls `each` with every chunk of `reader`, in order. A stream
    /// shorter than the minimum chunk size is one chunk (empty streams give
    /// none). Stops at the first error, from reading or from `each`.
    pub fn for_each_chunk<R: Read, E: From<std::io::Error>>(
        &self,
        mut reader: R,
        size_hint: u64,
        mut each: impl FnMut(Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let p = self.params;
        if size_hint < u64::from(p.min_size) {
            // Small files: one read into an exact buffer, no chunker state.
            let mut buf = Vec::with_capacity(size_hint as usize + 1);
            (&mut reader)
                .take(u64::from(p.min_size))
                .read_to_end(&mut buf)?;
            if buf.len() < p.min_size as usize {
                if !buf.is_empty() {
                    each(buf)?;
                }
                return Ok(());
            }
            // The file grew past the minimum while we read: chunk it all.
            return self.stream(std::io::Cursor::new(buf).chain(reader), each);
        }
        self.stream(reader, each)
    }

    fn stream<R: Read, E: From<std::io::Error>>(
        &self,
        reader: R,
        mut each: impl FnMut(Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let p = self.params;
        let cdc = StreamCDC::with_level_and_seed(
            reader,
            p.min_size,
            p.avg_size,
            p.max_size,
            Normalization::Level1,
            self.seed,
        );
        for c in cdc {
            match c {
                Ok(chunk) => each(chunk.data)?,
                Err(fastcdc::v2020::Error::IoError(e)) => return Err(e.into()),
                Err(e) => return Err(std::io::Error::other(e.to_string()).into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, mut s: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    fn cut(c: &Chunker, data: &[u8]) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        c.for_each_chunk::<_, std::io::Error>(data, data.len() as u64, |ch| {
            v.push(ch);
            Ok(())
        })
        .unwrap();
        v
    }

    #[test]
    fn chunks_reassemble_and_respect_bounds() {
        let p = ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
        };
        let c = Chunker::new(p, 42);
        let data = pseudo_random(1 << 20, 1);
        let chunks = cut(&c, &data);
        assert_eq!(chunks.concat(), data);
        for ch in &chunks[..chunks.len() - 1] {
            assert!(ch.len() >= 4096 && ch.len() <= 65536);
        }
        assert!(cut(&c, &[]).is_empty());
        assert_eq!(cut(&c, b"abc"), vec![b"abc".to_vec()]);
    }

    #[test]
    fn seed_changes_boundaries_and_insertions_stay_local() {
        let p = ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
        };
        let data = pseudo_random(1 << 20, 2);
        let a = cut(&Chunker::new(p, 1), &data);
        let b = cut(&Chunker::new(p, 2), &data);
        assert_ne!(
            a.iter().map(Vec::len).collect::<Vec<_>>(),
            b.iter().map(Vec::len).collect::<Vec<_>>()
        );
        let mut edited = data.clone();
        edited.splice(500_000..500_000, b"inserted bytes".iter().copied());
        let e = cut(&Chunker::new(p, 1), &edited);
        let old: std::collections::HashSet<_> = a.iter().collect();
        let new_chunks = e.iter().filter(|c| !old.contains(c)).count();
        assert!(new_chunks <= 3, "{new_chunks} chunks changed");
    }
}
