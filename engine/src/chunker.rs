//! Content-defined chunking of file contents (FastCDC 2020 with the
//! repository's seed), streamed so memory stays bounded by the largest
//! chunk whatever the file size.

use std::io::Read;

use fastcdc::v2020::{FastCDC, Normalization};

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
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
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
                    each(&buf)?;
                }
                return Ok(());
            }
            // The file grew past the minimum while we read: chunk it all.
            return self.stream(std::io::Cursor::new(buf).chain(reader), u64::MAX, each);
        }
        self.stream(reader, size_hint, each)
    }

    fn stream<R: Read, E: From<std::io::Error>>(
        &self,
        mut reader: R,
        size_hint: u64,
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let p = self.params;
        let max = p.max_size as usize;
        let cap = 2 * max;
        // One buffer per thread, taken for the duration of the stream so a
        // nested use cannot share it. It grows to what the stream needs, so
        // a thread that has read only mid-sized files does not hold (and
        // touch) a full window.
        let mut buf = BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()));
        let want = usize::try_from(size_hint.saturating_add(1)).map_or(cap, |n| n.min(cap));
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let r = (|| -> Result<(), E> {
            let mut filled = 0;
            let mut eof = false;
            loop {
                while filled < cap && !eof {
                    if filled == buf.len() {
                        // The stream is longer than it said: grow.
                        buf.resize(cap, 0);
                    }
                    match reader.read(&mut buf[filled..]) {
                        Ok(0) => eof = true,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                if filled == 0 {
                    return Ok(());
                }
                let cdc = FastCDC::with_level_and_seed(
                    &buf[..filled],
                    p.min_size,
                    p.avg_size,
                    p.max_size,
                    Normalization::Level1,
                    self.seed,
                );
                let mut start = 0;
                // A cut is searched only with a whole maximum-size window
                // ahead (or at the end of the stream), so boundaries do not
                // depend on how reads happened to split the data.
                while start < filled && (eof || filled - start >= max) {
                    let (_, end) = cdc.cut(start, filled - start);
                    each(&buf[start..end])?;
                    start = end;
                }
                buf.copy_within(start..filled, 0);
                filled -= start;
                if eof && filled == 0 {
                    return Ok(());
                }
            }
        })();
        BUFFER.with(|b| *b.borrow_mut() = buf);
        r
    }
}

thread_local! {
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
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
            v.push(ch.to_vec());
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
        // Boundaries match fastcdc's own streaming chunker exactly, whatever
        // the read sizes.
        let reference: Vec<Vec<u8>> = fastcdc::v2020::StreamCDC::with_level_and_seed(
            &data[..],
            4096,
            16384,
            65536,
            Normalization::Level1,
            42,
        )
        .map(|c| c.unwrap().data)
        .collect();
        assert_eq!(chunks, reference);
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                let n = b.len().min(self.0.len()).min(777);
                b[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut dribbled = Vec::new();
        c.for_each_chunk::<_, std::io::Error>(Dribble(&data), data.len() as u64, |ch| {
            dribbled.push(ch.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(dribbled, reference);
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
