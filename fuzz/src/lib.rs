//! Shared pieces of cairn's fuzz targets: a fixed key and repository ID,
//! helpers that wrap arbitrary bytes in valid framing (so that the fuzzer
//! reaches the parsers that run after authentication, which it could never
//! reach by forging a MAC), and the generator of the seed corpora.
//!
//! Each target does two things with its input: it decodes it as a stored
//! file exactly as a reader would (the attack surface of hostile storage),
//! and it seals it with the fixed key as the plaintext of such a file and
//! decodes that (the parsers behind the MAC, which a key holder's bug or a
//! future format change could feed).

use std::path::Path;
use std::sync::OnceLock;

use cairn_engine::chunker::Chunker;
use cairn_engine::crypto::{seal_with_key, MasterKey};
use cairn_engine::format::{self, FileType, Role};
use cairn_engine::id::Id;
use cairn_engine::pack::{self, BlobType, PackEntry, PackWriter};
use cairn_engine::repofile::config::{ChunkerParams, Config};
use cairn_engine::repofile::indexfile::{IndexFile, IndexPack, ObsoletePack};
use cairn_engine::repofile::keyfile::{KdfParams, KeyFile};
use cairn_engine::repofile::snapshot::{Snapshot, Summary};
use cairn_engine::repofile::tree::{Node, NodeKind, SqliteMeta, Tree, Xattr};
use cairn_engine::repofile::{seal_metadata, seal_metadata_body, to_cbor};

/// Master secret of every fuzz target that uses a fixed key.
pub const SECRET: [u8; 32] = [0x42; 32];
/// Repository ID of every fuzz target that uses a fixed one.
pub const REPO: Id = Id([0x17; 32]);
/// Password of the seed key files.
pub const PASSWORD: &[u8] = b"fuzz password";
/// Wrapping key used to seal arbitrary key-file plaintexts.
pub const WRAP_KEY: [u8; 32] = [0x5a; 32];

/// The fixed master key.
pub fn key() -> &'static MasterKey {
    static K: OnceLock<MasterKey> = OnceLock::new();
    K.get_or_init(|| MasterKey::from_secret(SECRET))
}

/// Opens a blob both ways a reader does, from a copy (`open_blob`) and
/// where it lies (`open_blob_in_place`, as a restore does), and checks
/// that they agree on the plaintext or on the error.
pub fn open_blob_both(e: &PackEntry, sealed: &[u8]) -> Option<Vec<u8>> {
    let copy = pack::open_blob(key(), &REPO, e, sealed, "p");
    let mut buf = sealed.to_vec();
    let in_place = pack::open_blob_in_place(key(), &REPO, e, &mut buf, "p", pack::IdCheck::Now).map(|o| match o {
        pack::Opened::InPlace(r) => buf[r].to_vec(),
        pack::Opened::Decompressed(d) => d,
    });
    match (copy, in_place) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "in-place opening gave other plaintext");
            Some(a)
        }
        (Err(a), Err(b)) => {
            assert_eq!(
                a.to_string(),
                b.to_string(),
                "in-place opening failed otherwise"
            );
            None
        }
        (a, b) => panic!("openings disagree: {a:?} against {b:?}"),
    }
}

/// The associated data of a key file's wrapped secret (format-spec §5).
pub fn key_wrap_aad() -> Vec<u8> {
    let mut a = format::header(FileType::Key).to_vec();
    a.push(Role::KeyWrap as u8);
    a
}

/// `raw length || zstd(cbor)`: a metadata body's plaintext (format-spec §7).
pub fn metadata_plain(cbor: &[u8]) -> Vec<u8> {
    let mut p = (cbor.len() as u64).to_le_bytes().to_vec();
    p.extend_from_slice(&zstd::bulk::compress(cbor, 1).expect("zstd compresses"));
    p
}

/// `header || seal(plain)`: a metadata file around an arbitrary plaintext.
pub fn seal_plain_as_file(ft: FileType, role: Role, plain: &[u8]) -> Vec<u8> {
    let mut f = format::header(ft).to_vec();
    f.extend_from_slice(&key().seal(&format::aad(ft, &REPO, role, None), plain));
    f
}

/// A metadata file whose body is the given (arbitrary) CBOR.
pub fn seal_cbor_as_file(ft: FileType, role: Role, cbor: &[u8]) -> Vec<u8> {
    seal_plain_as_file(ft, role, &metadata_plain(cbor))
}

/// A config file around arbitrary CBOR: header || REPO || sealed body.
pub fn seal_cbor_as_config(cbor: &[u8]) -> Vec<u8> {
    let mut f = format::header(FileType::Config).to_vec();
    f.extend_from_slice(&REPO.0);
    f.extend_from_slice(&key().seal(
        &format::aad(FileType::Config, &REPO, Role::Config, None),
        &metadata_plain(cbor),
    ));
    f
}

// ---- sample values, built with the real encoders ----

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        user: Some("alice".into()),
        mtime: 1_700_000_000_123_456_789,
        ctime: 1_700_000_000_000_000_000,
        atime: -5,
        inode: 42,
        device: 2049,
        ..Node::bare(name, kind)
    }
}

/// A tree with one node of every kind and every optional field used.
pub fn sample_tree() -> Tree {
    let mut file = node(b"a.txt", NodeKind::File);
    file.size = 11;
    file.content = vec![Id([1; 32]), Id([2; 32])];
    file.xattrs = vec![Xattr {
        name: b"user.k".to_vec(),
        value: b"v".to_vec(),
    }];
    file.sqlite = Some(SqliteMeta {
        page_size: 4096,
        page_count: 3,
        journal_mode: "wal".into(),
        user_version: -1,
        schema_hash: "00".repeat(32),
        sqlite_version: "3.46.0".into(),
    });
    let mut dev = node(b"dev", NodeKind::Chardev);
    dev.rdev = 0x0103;
    let mut dir = node(b"dir", NodeKind::Dir);
    dir.mode = 0o1777;
    dir.subtree = Some(Id([3; 32]));
    let mut link = node(b"link", NodeKind::Symlink);
    link.link_target = Some(b"../target".to_vec());
    let mut big = node(b"big", NodeKind::File);
    big.size = 1 << 30;
    big.lists = vec![Id([6; 32])];
    let mut nodes = vec![
        file,
        big,
        node(b"blk", NodeKind::Blockdev),
        dev,
        dir,
        node(b"fifo", NodeKind::Fifo),
        link,
        node(b"sock", NodeKind::Socket),
        node(&[0xff, 0xfe, b'x'], NodeKind::File),
    ];
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Tree { nodes }
}

pub fn sample_snapshot(summary: bool) -> Snapshot {
    Snapshot {
        time: chrono::DateTime::parse_from_rfc3339("2026-11-03T10:15:00.123456789+01:00")
            .expect("valid time"),
        hostname: "host".into(),
        username: "alice".into(),
        uid: 1000,
        gid: 1000,
        paths: vec!["/home/alice".into(), "/etc".into()],
        tags: vec!["daily".into()],
        tree: Id([9; 32]),
        parent: summary.then_some(Id([8; 32])),
        program_version: "cairn 0.1.0".into(),
        summary: summary.then(|| Summary {
            files_new: 1,
            total_files: 3,
            duration_ns: 1_000_000,
            ..Summary::default()
        }),
        original: None,
        copy_of: None,
        id: Id::default(),
    }
}

/// A real pack of a few blobs and its entries.
pub fn sample_pack(t: BlobType, blobs: &[&[u8]]) -> (Vec<u8>, Vec<PackEntry>) {
    let mut w = PackWriter::new(t, 1024);
    let (mut scratch, mut sealed) = (Vec::new(), Vec::new());
    for b in blobs {
        let id = key().blob_id(b);
        let c = pack::seal_blob_into(key(), &REPO, t, &id, b, 3, &mut scratch, &mut sealed);
        w.add(id, &sealed, b.len() as u32, c);
    }
    let p = w.finish(key(), &REPO);
    (p.bytes, p.entries)
}

pub fn sample_index() -> IndexFile {
    let (bytes, entries) = sample_pack(BlobType::Data, &[b"hello", &[7u8; 3000]]);
    let (tbytes, tentries) = sample_pack(BlobType::Tree, &[&sample_tree().encode()]);
    IndexFile {
        supersedes: vec![Id([4; 32])],
        packs: vec![
            IndexPack {
                id: Id::of_stored(&bytes),
                size: bytes.len() as u64,
                blobs: pack::encode_entries(&entries),
            },
            IndexPack {
                id: Id::of_stored(&tbytes),
                size: tbytes.len() as u64,
                blobs: pack::encode_entries(&tentries),
            },
        ],
        obsolete: vec![ObsoletePack {
            id: Id([5; 32]),
            size: 1000,
            since: "2026-11-03T10:15:00Z".into(),
        }],
    }
}

pub fn sample_config() -> Config {
    let mut c = Config::new(
        16 << 20,
        3,
        ChunkerParams {
            min_size: 1024,
            avg_size: 4096,
            max_size: 16384,
        },
    );
    c.id = REPO;
    c.created = "2026-11-03T10:15:00+00:00".into();
    c
}

/// A key file with the cheapest accepted KDF, opening with [`PASSWORD`].
pub fn sample_keyfile() -> KeyFile {
    let kdf = KdfParams {
        algorithm: "argon2id".into(),
        memory_kib: cairn_engine::limits::MIN_KDF_MEMORY_KIB,
        iterations: 1,
        parallelism: 1,
        salt: vec![3; 16],
    };
    KeyFile::create(PASSWORD, kdf, &REPO, &SECRET, "host".into(), "user".into()).expect("key file")
}

/// [`sample_keyfile`], made once (it runs Argon2).
pub fn sample_keyfile_cached() -> &'static KeyFile {
    static K: OnceLock<KeyFile> = OnceLock::new();
    K.get_or_init(sample_keyfile)
}

/// The seed inputs of one target, named.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let k = key();
    let tree = sample_tree();
    let snap = sample_snapshot(true);
    let index = sample_index();
    let cfg = sample_config();
    let n = |s: &str, b: Vec<u8>| (s.to_string(), b);
    match target {
        "envelope_open" | "envelope_random_key" => {
            let mut v = vec![
                n(
                    "snapshot",
                    seal_metadata(k, &REPO, FileType::Snapshot, Role::Snapshot, &snap),
                ),
                n(
                    "index",
                    seal_metadata(k, &REPO, FileType::Index, Role::Index, &index),
                ),
                n(
                    "index-empty",
                    seal_metadata(
                        k,
                        &REPO,
                        FileType::Index,
                        Role::Index,
                        &IndexFile::default(),
                    ),
                ),
                n(
                    "config-body",
                    seal_metadata_body(k, &REPO, FileType::Config, Role::Config, &cfg),
                ),
                n("plain-snapshot", metadata_plain(&to_cbor(&snap))),
                n("plain-index", metadata_plain(&to_cbor(&index))),
            ];
            if target == "envelope_random_key" {
                // Input layout: secret (32) || repository ID (32) || file.
                for (_, b) in v.iter_mut() {
                    let mut x = SECRET.to_vec();
                    x.extend_from_slice(&REPO.0);
                    x.extend_from_slice(b);
                    *b = x;
                }
            }
            v
        }
        "pack_parse" => {
            let (data, _) = sample_pack(BlobType::Data, &[b"abc", &[0u8; 5000], b""]);
            let (tree_pack, entries) = sample_pack(BlobType::Tree, &[&tree.encode()]);
            let (empty, _) = sample_pack(BlobType::Data, &[]);
            vec![
                n("data", data),
                n("tree", tree_pack),
                n("empty", empty),
                n("entries", pack::encode_entries(&entries)),
            ]
        }
        "pack_structured" => vec![n("small", vec![0u8; 64]), n("ones", vec![1u8; 256])],
        "keyfile" => {
            let kf = sample_keyfile_cached();
            let wrapped_plain = to_cbor(&WrappedSecretSeed {
                repository: REPO,
                master: serde_bytes::ByteBuf::from(SECRET.to_vec()),
            });
            // Accepted but costly parameters (the harness must not run
            // Argon2 on them) and rejected ones (decoding must refuse them
            // before any work).
            let mut dear = kf.clone();
            dear.kdf.memory_kib = cairn_engine::limits::MAX_KDF_MEMORY_KIB;
            dear.kdf.iterations = cairn_engine::limits::MAX_KDF_ITERATIONS;
            let mut hostile = kf.clone();
            hostile.kdf.memory_kib = u32::MAX;
            hostile.kdf.iterations = u32::MAX;
            vec![
                n("key", kf.encode()),
                n("wrapped-plain", wrapped_plain),
                n("kdf-max", dear.encode()),
                n("kdf-hostile", hostile.encode()),
            ]
        }
        "config" => vec![n("config", cfg.encode(k)), n("cbor", to_cbor(&cfg))],
        "index" => vec![
            n(
                "index",
                seal_metadata(k, &REPO, FileType::Index, Role::Index, &index),
            ),
            n("cbor", to_cbor(&index)),
            n("cbor-empty", to_cbor(&IndexFile::default())),
        ],
        "snapshot" => vec![
            n(
                "snapshot",
                seal_metadata(k, &REPO, FileType::Snapshot, Role::Snapshot, &snap),
            ),
            n("cbor", to_cbor(&snap)),
            n("cbor-minimal", to_cbor(&sample_snapshot(false))),
        ],
        "tree" => vec![
            n("tree", tree.encode()),
            n("empty", Tree::default().encode()),
        ],
        "zstd_bounded" => {
            let data: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
            let mut v = (data.len() as u32).to_le_bytes().to_vec();
            v.push(3);
            v.extend_from_slice(&zstd::bulk::compress(&data, 3).expect("zstd"));
            let mut w = 5u32.to_le_bytes().to_vec();
            w.push(1);
            w.extend_from_slice(b"hello");
            vec![n("frame", v), n("raw", w)]
        }
        "chunker" => {
            let mut s = 1u64;
            let mut v: Vec<u8> = vec![0, 4, 0, 16, 0, 64, 1, 2, 3, 4, 5, 6, 7, 8];
            v.extend((0..20000).map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            }));
            vec![n("random", v)]
        }
        _ => Vec::new(),
    }
}

/// Mirrors the engine's private wrapped-secret map for seeding.
#[derive(serde::Serialize)]
struct WrappedSecretSeed {
    repository: Id,
    master: serde_bytes::ByteBuf,
}

/// All targets, in the order the runner uses.
pub const TARGETS: &[&str] = &[
    "envelope_open",
    "envelope_random_key",
    "pack_parse",
    "pack_structured",
    "keyfile",
    "config",
    "index",
    "snapshot",
    "tree",
    "zstd_bounded",
    "chunker",
];

/// Writes every target's seeds into `dir/<target>/`.
pub fn write_corpus(dir: &Path) -> std::io::Result<()> {
    for t in TARGETS {
        let d = dir.join(t);
        std::fs::create_dir_all(&d)?;
        for (name, bytes) in seeds(t) {
            std::fs::write(d.join(format!("gen-{name}")), bytes)?;
        }
    }
    Ok(())
}

/// Checks the chunker's contract on `data` (used by the chunker target).
pub fn check_chunks(c: &Chunker, data: &[u8], size_hint: u64) {
    let p = c.params();
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    c.for_each_chunk::<_, std::io::Error>(data, size_hint, |ch| {
        chunks.push(ch.to_vec());
        Ok(())
    })
    .expect("reading a slice cannot fail");
    assert_eq!(chunks.concat(), data, "chunks do not reassemble the input");
    // FastCDC 2020 (fastcdc 3.2) scans two bytes per step from
    // `min_size / 2 * 2`, so with an odd `min_size` a chunk can be one
    // byte short of it (found by this target; seed `odd-min-size`). The
    // chunk boundaries are part of the format (§9.1), so the bound checked
    // is the one the algorithm gives.
    let min = p.min_size as usize & !1;
    if let Some((_, init)) = chunks.split_last() {
        for ch in init {
            assert!(
                ch.len() >= min && ch.len() <= p.max_size as usize,
                "chunk of {} bytes outside {}..={}",
                ch.len(),
                min,
                p.max_size
            );
        }
    }
    if let Some(last) = chunks.last() {
        assert!(!last.is_empty() && last.len() <= p.max_size as usize);
    }
}

/// Keeps `seal_with_key` in the public surface the targets use.
pub fn seal_wrapped(plain: &[u8]) -> Vec<u8> {
    seal_with_key(&WRAP_KEY, &key_wrap_aad(), plain)
}
