//! Structure-aware: builds a valid pack from arbitrary blobs with the real
//! writer, checks it round-trips, then applies arbitrary mutations and
//! checks that parsing never panics and never yields anything but the
//! original entries and plaintexts.
#![no_main]

use arbitrary::Arbitrary;
use cairn_engine::pack::{self, BlobType, PackWriter};
use cairn_fuzz::{key, open_blob_both, REPO};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Mutation {
    Flip {
        at: u32,
        mask: u8,
    },
    Truncate {
        at: u32,
    },
    Extend {
        bytes: Vec<u8>,
    },
    Insert {
        at: u32,
        bytes: Vec<u8>,
    },
    Remove {
        at: u32,
        len: u16,
    },
    SetU32 {
        at: u32,
        value: u32,
    },
    /// Copies a range over another (moves blobs and entries around).
    Copy {
        from: u32,
        to: u32,
        len: u16,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    tree: bool,
    level: u8,
    blobs: Vec<Vec<u8>>,
    mutations: Vec<Mutation>,
}

fn pos(at: u32, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        at as usize % (len + 1)
    }
}

fn mutate(b: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Flip { at, mask } => {
            if !b.is_empty() {
                let i = *at as usize % b.len();
                b[i] ^= mask | 1;
            }
        }
        Mutation::Truncate { at } => b.truncate(pos(*at, b.len())),
        Mutation::Extend { bytes } => b.extend_from_slice(bytes),
        Mutation::Insert { at, bytes } => {
            let i = pos(*at, b.len());
            b.splice(i..i, bytes.iter().copied());
        }
        Mutation::Remove { at, len } => {
            let i = pos(*at, b.len());
            let j = (i + *len as usize).min(b.len());
            b.drain(i..j);
        }
        Mutation::SetU32 { at, value } => {
            if b.len() >= 4 {
                let i = *at as usize % (b.len() - 3);
                b[i..i + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
        Mutation::Copy { from, to, len } => {
            if !b.is_empty() {
                let f = *from as usize % b.len();
                let t = *to as usize % b.len();
                let n = (*len as usize).min(b.len() - f).min(b.len() - t);
                let src = b[f..f + n].to_vec();
                b[t..t + n].copy_from_slice(&src);
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let k = key();
    let t = if input.tree {
        BlobType::Tree
    } else {
        BlobType::Data
    };
    let level = i32::from(input.level % 3) + 1;
    let mut w = PackWriter::new(t, 1024);
    let mut plains = Vec::new();
    // One pair of buffers for every blob, as the packer reuses them.
    let (mut scratch, mut sealed) = (Vec::new(), Vec::new());
    for b in input.blobs.iter().take(64) {
        let id = k.blob_id(b);
        let c = pack::seal_blob_into(k, &REPO, t, &id, b, level, &mut scratch, &mut sealed);
        w.add(id, &sealed, b.len() as u32, c);
        plains.push(b.clone());
    }
    let p = w.finish(k, &REPO);

    // Unmutated: the header lists exactly what was written, and every blob
    // opens to its plaintext.
    let entries = pack::parse_pack(k, &REPO, &p.bytes, "p").expect("valid pack parses");
    assert_eq!(entries, p.entries);
    for (e, plain) in entries.iter().zip(&plains) {
        let s = &p.bytes[e.offset as usize..(e.offset + e.length) as usize];
        assert_eq!(&open_blob_both(e, s).expect("blob opens"), plain);
    }
    let enc = pack::encode_entries(&entries);
    assert_eq!(
        pack::decode_entries(&enc, None, "p").expect("entries"),
        entries
    );

    // Mutated: parsing never panics; a header that authenticates is the
    // original one, its entries stay inside the mutated file, and a blob
    // either opens to its original plaintext or fails.
    let mut bytes = p.bytes.clone();
    for m in input.mutations.iter().take(8) {
        mutate(&mut bytes, m);
    }
    match pack::parse_pack(k, &REPO, &bytes, "p") {
        Ok(got) => {
            assert_eq!(got, entries, "a mutated pack yielded other entries");
            for (e, plain) in got.iter().zip(&plains) {
                let end = e.offset as usize + e.length as usize;
                assert!(end <= bytes.len(), "entry outside the pack");
                if let Some(b) = open_blob_both(e, &bytes[e.offset as usize..end]) {
                    assert_eq!(&b, plain, "a mutated blob opened to other data");
                }
            }
        }
        Err(_) => assert_ne!(bytes, p.bytes, "an unmutated pack failed"),
    }
});
