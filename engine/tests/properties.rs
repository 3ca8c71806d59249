//! Property tests of the format's encoders and decoders: every encoder's
//! output decodes to the value encoded, and every decoder, given arbitrary
//! or damaged bytes, returns `Ok` or `Err` and never panics. Also the
//! regression tests of hostile inputs (fuzzing finds and review findings):
//! each decodes an exact input and asserts a clean error.

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_bytes::ByteBuf;

use cairn_engine::compress;
use cairn_engine::crypto::MasterKey;
use cairn_engine::format::{self, FileType, Role};
use cairn_engine::limits;
use cairn_engine::pack::{self, BlobType, PackEntry, PackWriter};
use cairn_engine::repofile::config::{ChunkerParams, Config};
use cairn_engine::repofile::indexfile::{IndexFile, IndexPack};
use cairn_engine::repofile::keyfile::{KdfParams, KeyFile};
use cairn_engine::repofile::snapshot::{CopyOrigin, Snapshot, Summary};
use cairn_engine::repofile::tree::{self, Node, NodeKind, SqliteMeta, Tree, Xattr};
use cairn_engine::repofile::{
    decompress_declared, from_cbor, open_metadata, seal_metadata, to_cbor,
};
use cairn_engine::Id;

const SECRET: [u8; 32] = [0x42; 32];
const REPO: Id = Id([0x17; 32]);

fn key() -> &'static MasterKey {
    static K: std::sync::OnceLock<MasterKey> = std::sync::OnceLock::new();
    K.get_or_init(|| MasterKey::from_secret(SECRET))
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---- strategies ----

fn arb_id() -> impl Strategy<Value = Id> {
    any::<[u8; 32]>().prop_map(Id)
}

fn arb_name() -> impl Strategy<Value = Vec<u8>> {
    vec(
        any::<u8>().prop_filter("no NUL or /", |&c| c != 0 && c != b'/'),
        1..12,
    )
    .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn arb_sqlite() -> impl Strategy<Value = SqliteMeta> {
    (
        any::<u32>(),
        any::<u64>(),
        ".{0,8}",
        any::<i64>(),
        "[0-9a-f]{0,64}",
        ".{0,8}",
    )
        .prop_map(
            |(page_size, page_count, journal_mode, user_version, schema_hash, sqlite_version)| {
                SqliteMeta {
                    page_size,
                    page_count,
                    journal_mode,
                    user_version,
                    schema_hash,
                    sqlite_version,
                }
            },
        )
}

/// A node without its name whose fields fit its kind.
fn arb_node_body() -> impl Strategy<Value = Node> {
    let kind = prop_oneof![
        Just(NodeKind::File),
        Just(NodeKind::Dir),
        Just(NodeKind::Symlink),
        Just(NodeKind::Fifo),
        Just(NodeKind::Socket),
        Just(NodeKind::Chardev),
        Just(NodeKind::Blockdev),
    ];
    let common = (
        kind,
        0u32..=0o7777,
        any::<u32>(),
        any::<u32>(),
        option::of(".{0,6}"),
        option::of(".{0,6}"),
        any::<(i64, i64, i64)>(),
        any::<(u64, u64, u64, u64)>(),
        vec(
            (arb_bytes(8), arb_bytes(8)).prop_map(|(name, value)| Xattr { name, value }),
            0..3,
        ),
    );
    let specific = (
        arb_bytes(16),
        1u64..u64::MAX,
        vec(arb_id(), 0..4),
        any::<bool>(),
        arb_id(),
        option::of(arb_sqlite()),
    );
    (common, specific).prop_map(
        |(
            (
                kind,
                mode,
                uid,
                gid,
                user,
                group,
                (mtime, ctime, atime),
                (inode, device, links, size),
                xattrs,
            ),
            (target, rdev, ids, as_lists, subtree, sqlite),
        )| {
            let file = kind == NodeKind::File;
            Node {
                name: Vec::new(),
                kind,
                mode,
                uid,
                gid,
                user,
                group,
                mtime,
                ctime,
                atime,
                inode,
                device,
                links,
                size,
                link_target: (kind == NodeKind::Symlink).then_some(target),
                xattrs,
                rdev: if matches!(kind, NodeKind::Chardev | NodeKind::Blockdev) {
                    rdev
                } else {
                    0
                },
                content: if file && !as_lists {
                    ids.clone()
                } else {
                    Vec::new()
                },
                lists: if file && as_lists { ids } else { Vec::new() },
                subtree: (kind == NodeKind::Dir).then_some(subtree),
                sqlite: if file { sqlite } else { None },
            }
        },
    )
}

/// Trees with sorted, unique, valid names (a BTreeMap orders byte strings
/// as the format does).
fn arb_tree() -> impl Strategy<Value = Tree> {
    btree_map(arb_name(), arb_node_body(), 0..6).prop_map(|m: BTreeMap<Vec<u8>, Node>| Tree {
        nodes: m
            .into_iter()
            .map(|(name, mut n)| {
                n.name = name;
                n
            })
            .collect(),
    })
}

fn arb_time() -> impl Strategy<Value = chrono::DateTime<chrono::FixedOffset>> {
    // Years 1970..9999, offsets in whole minutes within ±23:59.
    (0i64..253_402_300_799, 0u32..1_000_000_000, -1439i32..=1439).prop_map(|(s, ns, off)| {
        let offset = chrono::FixedOffset::east_opt(off * 60).expect("offset in range");
        chrono::DateTime::from_timestamp(s, ns)
            .expect("time in range")
            .with_timezone(&offset)
    })
}

fn arb_snapshot() -> impl Strategy<Value = Snapshot> {
    (
        arb_time(),
        (".{0,10}", ".{0,10}", any::<u32>(), any::<u32>()),
        (vec("/.{0,10}", 0..3), vec(".{0,6}", 0..3)),
        (
            arb_id(),
            option::of(arb_id()),
            ".{0,10}",
            option::of(arb_id()),
        ),
        option::of(any::<[u64; 15]>()),
        option::of((arb_id(), arb_id())),
    )
        .prop_map(
            |(
                time,
                (hostname, username, uid, gid),
                (paths, tags),
                (tree, parent, program_version, original),
                summary,
                copy_of,
            )| {
                Snapshot {
                    time,
                    hostname,
                    username,
                    uid,
                    gid,
                    paths,
                    tags,
                    tree,
                    parent,
                    program_version,
                    summary: summary.map(|v| Summary {
                        files_new: v[0],
                        files_changed: v[1],
                        files_unmodified: v[2],
                        dirs_new: v[3],
                        dirs_changed: v[4],
                        dirs_unmodified: v[5],
                        files_failed: v[6],
                        data_blobs_added: v[7],
                        tree_blobs_added: v[8],
                        bytes_read: v[9],
                        bytes_added: v[10],
                        bytes_added_stored: v[11],
                        total_bytes: v[12],
                        total_files: v[13],
                        duration_ns: v[14],
                    }),
                    original,
                    copy_of: copy_of.map(|(repository, snapshot)| CopyOrigin {
                        repository,
                        snapshot,
                    }),
                    id: Id::default(),
                }
            },
        )
}

/// Valid pack entries (as a reader accepts them) laid out from offset 8.
fn arb_entries(max: usize) -> impl Strategy<Value = Vec<PackEntry>> {
    vec(
        (
            any::<bool>(),
            any::<bool>(),
            0u32..=limits::MAX_BLOB as u32,
            0u32..1000,
            arb_id(),
        ),
        0..max,
    )
    .prop_map(|v| {
        let mut offset = 8u32;
        v.into_iter()
            .map(|(tree, compressed, raw_length, shrink, id)| {
                let full = raw_length + 40;
                let length = if compressed {
                    full - shrink.min(raw_length)
                } else {
                    full
                };
                let e = PackEntry {
                    blob_type: if tree { BlobType::Tree } else { BlobType::Data },
                    compressed,
                    offset,
                    length,
                    raw_length,
                    id,
                };
                // Keep offsets small enough that a pack of them stays
                // under MAX_PACK; lengths need not be contiguous.
                offset = offset.wrapping_add(length % (1 << 20));
                e
            })
            .collect()
    })
}

fn data_end(entries: &[PackEntry]) -> u64 {
    entries
        .iter()
        .map(|e| u64::from(e.offset) + u64::from(e.length))
        .max()
        .unwrap_or(8)
}

fn arb_index() -> impl Strategy<Value = IndexFile> {
    (
        vec(arb_id(), 0..3),
        vec((arb_id(), arb_entries(6), 0u64..1000), 0..4),
    )
        .prop_map(|(supersedes, packs)| IndexFile {
            supersedes,
            packs: packs
                .into_iter()
                .map(|(id, entries, slack)| {
                    let header = 40 + 48 * entries.len() as u64;
                    IndexPack {
                        id,
                        size: (data_end(&entries) + header + 8 + slack).min(limits::MAX_PACK),
                        blobs: pack::encode_entries(&entries),
                    }
                })
                .filter(|p| p.validate("p").is_ok())
                .collect(),
            obsolete: Vec::new(),
        })
}

fn arb_chunker() -> impl Strategy<Value = ChunkerParams> {
    (64u32..=1 << 20, 256u32..=4 << 20, 1024u32..=16 << 20).prop_map(|(a, b, c)| {
        let mut v = [a, b, c];
        v.sort_unstable();
        ChunkerParams {
            min_size: v[0],
            avg_size: v[1].max(256),
            max_size: v[2].max(1024),
        }
    })
}

fn arb_config() -> impl Strategy<Value = Config> {
    (
        arb_id(),
        arb_chunker(),
        (1u64 << 20)..=(512 << 20),
        1i32..=22,
        ".{0,20}",
    )
        .prop_map(|(id, chunker, pack_size, compression, created)| Config {
            version: 1,
            id,
            chunker,
            pack_size,
            compression,
            created,
        })
}

// ---- round trips ----

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn tree_round_trips(t in arb_tree()) {
        let b = t.encode();
        prop_assert!(b.len() as u64 <= limits::MAX_TREE);
        prop_assert_eq!(Tree::decode(&b, "t").unwrap(), t.clone());
        // Deterministic: equal trees, equal bytes.
        prop_assert_eq!(Tree::decode(&b, "t").unwrap().encode(), b);
    }

    #[test]
    fn content_list_round_trips(ids in vec(arb_id(), 1..=tree::LIST_LEN)) {
        let b = tree::encode_list(&ids);
        prop_assert_eq!(tree::decode_list(&b, "l", true).unwrap(), ids.clone());
        // Only a file's last list may be short.
        prop_assert_eq!(tree::decode_list(&b, "l", false).is_ok(), ids.len() == tree::LIST_LEN);
    }

    #[test]
    fn snapshot_round_trips(s in arb_snapshot()) {
        let f = seal_metadata(key(), &REPO, FileType::Snapshot, Role::Snapshot, &s);
        let back: Snapshot = open_metadata(key(), &REPO, FileType::Snapshot, Role::Snapshot, &f, "s").unwrap();
        prop_assert_eq!(back, s);
    }

    #[test]
    fn index_round_trips(idx in arb_index()) {
        let f = seal_metadata(key(), &REPO, FileType::Index, Role::Index, &idx);
        let back: IndexFile = open_metadata(key(), &REPO, FileType::Index, Role::Index, &f, "i").unwrap();
        prop_assert_eq!(&back, &idx);
        for p in &back.packs {
            let es = p.entries("i").unwrap();
            prop_assert_eq!(pack::encode_entries(&es), p.blobs.clone());
            prop_assert_eq!(pack::decode_entries(&p.blobs, Some(p.size), "i").unwrap(), es);
        }
    }

    #[test]
    fn config_round_trips(mut c in arb_config()) {
        c.id = REPO;
        let b = c.encode(key());
        prop_assert_eq!(Config::peek_id(&b, "c").unwrap(), REPO);
        prop_assert_eq!(Config::decode(&b, key(), "c").unwrap(), c);
    }

    #[test]
    fn pack_entries_round_trip(entries in arb_entries(20)) {
        let b = pack::encode_entries(&entries);
        prop_assert_eq!(b.len(), entries.len() * pack::ENTRY_LEN);
        prop_assert_eq!(pack::decode_entries(&b, None, "p").unwrap(), entries.clone());
        let end = data_end(&entries);
        prop_assert_eq!(pack::decode_entries(&b, Some(end), "p").unwrap(), entries.clone());
        prop_assert!(pack::check_entries(&b, Some(end), "p").is_ok());
        if !entries.is_empty() {
            prop_assert!(pack::decode_entries(&b, Some(end - 1), "p").is_err());
            prop_assert!(pack::check_entries(&b, Some(end - 1), "p").is_err());
        }
    }

    #[test]
    fn sealed_metadata_round_trips_and_binds_its_place(data in arb_bytes(2000), other in arb_id()) {
        let v = ByteBuf::from(data);
        let f = seal_metadata(key(), &REPO, FileType::Lock, Role::Lock, &v);
        let back: ByteBuf = open_metadata(key(), &REPO, FileType::Lock, Role::Lock, &f, "m").unwrap();
        prop_assert_eq!(back, v);
        prop_assume!(other != REPO);
        prop_assert!(open_metadata::<ByteBuf>(key(), &other, FileType::Lock, Role::Lock, &f, "m").is_err());
        prop_assert!(open_metadata::<ByteBuf>(key(), &REPO, FileType::Lock, Role::Index, &f, "m").is_err());
        let mut moved = f.clone();
        moved[6] = FileType::Index as u8;
        prop_assert!(open_metadata::<ByteBuf>(key(), &REPO, FileType::Index, Role::Lock, &moved, "m").is_err());
    }

    #[test]
    fn packs_round_trip(blobs in vec(arb_bytes(3000), 0..6), tree in any::<bool>()) {
        let t = if tree { BlobType::Tree } else { BlobType::Data };
        let mut w = PackWriter::new(t, 1024);
        let (mut scratch, mut sealed) = (Vec::new(), Vec::new());
        for b in &blobs {
            let id = key().blob_id(b);
            let c = pack::seal_blob_into(key(), &REPO, t, &id, b, 3, &mut scratch, &mut sealed);
            w.add(id, &sealed, b.len() as u32, c);
        }
        let p = w.finish(key(), &REPO);
        let es = pack::parse_pack(key(), &REPO, &p.bytes, "p").unwrap();
        prop_assert_eq!(&es, &p.entries);
        for (e, b) in es.iter().zip(&blobs) {
            let s = &p.bytes[e.offset as usize..(e.offset + e.length) as usize];
            prop_assert_eq!(&pack::open_blob(key(), &REPO, e, s, "p").unwrap(), b);
        }
    }

    #[test]
    fn zstd_round_trips(data in arb_bytes(5000), level in 1i32..=9) {
        if let Some(c) = compress::compress(&data, level) {
            prop_assert_eq!(compress::decompress_exact(&c, data.len(), "z").unwrap(), data.clone());
            prop_assert!(compress::decompress_exact(&c, data.len() + 1, "z").is_err());
            let mut trailing = c.clone();
            trailing.push(0);
            prop_assert!(compress::decompress_exact(&trailing, data.len(), "z").is_err());
        }
    }
}

proptest! {
    // Each case runs Argon2 (8 MiB, one pass) twice.
    #![proptest_config(config(8))]

    #[test]
    fn keyfile_round_trips(
        salt in vec(any::<u8>(), 16..=64),
        master in any::<[u8; 32]>(),
        repo in arb_id(),
        password in arb_bytes(20),
        labels in (".{0,10}", ".{0,10}"),
    ) {
        let kdf = KdfParams {
            algorithm: "argon2id".into(),
            memory_kib: limits::MIN_KDF_MEMORY_KIB,
            iterations: 1,
            parallelism: 1,
            salt,
        };
        let k = KeyFile::create(&password, kdf.clone(), &repo, &master, labels.0.clone(), labels.1.clone()).unwrap();
        let d = KeyFile::decode(&k.encode(), "k").unwrap();
        prop_assert_eq!(&d.kdf, &kdf);
        prop_assert_eq!(&d.hostname, &labels.0);
        prop_assert_eq!(&d.username, &labels.1);
        prop_assert_eq!(d.unwrap_secret(&password, "k").unwrap(), Some((master, repo)));
        let mut wrong = password.clone();
        wrong.push(1);
        prop_assert_eq!(d.unwrap_secret(&wrong, "k").unwrap(), None);
    }
}

// ---- arbitrary bytes: Ok or Err, never a panic ----

/// Every decoder in the format, fed the same bytes.
fn decode_everything(b: &[u8]) {
    let k = key();
    let _ = format::strip_header(b, FileType::Pack, "x");
    let _ = Tree::decode(b, "x");
    let _ = tree::decode_list(b, "x", true);
    let _ = KeyFile::decode(b, "x");
    let _ = Config::peek_id(b, "x");
    let _ = Config::decode(b, k, "x");
    let _ = open_metadata::<IndexFile>(k, &REPO, FileType::Index, Role::Index, b, "x");
    let _ = open_metadata::<Snapshot>(k, &REPO, FileType::Snapshot, Role::Snapshot, b, "x");
    let _ = from_cbor::<IndexFile>(b, "x");
    let _ = from_cbor::<Snapshot>(b, "x");
    let _ = from_cbor::<Config>(b, "x");
    let _ = from_cbor::<KeyFile>(b, "x");
    let _ = pack::parse_pack(k, &REPO, b, "x");
    let _ = pack::decode_entries(b, None, "x");
    let _ = pack::decode_entries(b, Some(b.len() as u64), "x");
    let _ = pack::header_len_from_trailer(b, b.len() as u64, "x");
    if b.len() >= 8 {
        let _ = pack::header_len_from_trailer(&b[b.len() - 8..], b.len() as u64, "x");
        let raw = u64::from_le_bytes(b[..8].try_into().unwrap());
        // Legal but large declared sizes are allocated; keep them small.
        if raw <= 1 << 20 || raw > limits::MAX_METADATA_PLAIN {
            let _ = decompress_declared(b, "x");
        }
    }
    let _ = compress::decompress_exact(b, b.len() * 4, "x");
    let _ = compress::decompress_exact(b, 0, "x");
}

/// Valid encodings of every file type, to damage.
fn valid_files() -> Vec<Vec<u8>> {
    let mut t = Tree::default();
    let mut n = Node {
        name: b"f".to_vec(),
        kind: NodeKind::File,
        mode: 0o644,
        uid: 1,
        gid: 1,
        user: None,
        group: None,
        mtime: 0,
        ctime: 0,
        atime: 0,
        inode: 1,
        device: 1,
        links: 1,
        size: 3,
        link_target: None,
        xattrs: Vec::new(),
        rdev: 0,
        content: vec![Id([1; 32])],
        lists: Vec::new(),
        subtree: None,
        sqlite: None,
    };
    t.nodes.push(n.clone());
    n.name = b"g".to_vec();
    n.kind = NodeKind::Dir;
    n.content.clear();
    n.subtree = Some(Id([2; 32]));
    t.nodes.push(n);
    let mut w = PackWriter::new(BlobType::Data, 64);
    let (mut scratch, mut s) = (Vec::new(), Vec::new());
    for b in [&b"abc"[..], &[0u8; 400][..]] {
        let id = key().blob_id(b);
        let c = pack::seal_blob_into(
            key(),
            &REPO,
            BlobType::Data,
            &id,
            b,
            3,
            &mut scratch,
            &mut s,
        );
        w.add(id, &s, b.len() as u32, c);
    }
    let p = w.finish(key(), &REPO);
    let idx = IndexFile {
        supersedes: vec![Id([3; 32])],
        packs: vec![IndexPack {
            id: p.id,
            size: p.bytes.len() as u64,
            blobs: pack::encode_entries(&p.entries),
        }],
        obsolete: Vec::new(),
    };
    let mut cfg = Config::new(16 << 20, 3, ChunkerParams::default());
    cfg.id = REPO;
    vec![
        t.encode(),
        tree::encode_list(&[Id([4; 32])]),
        p.bytes,
        pack::encode_entries(&p.entries),
        to_cbor(&idx),
        seal_metadata(key(), &REPO, FileType::Index, Role::Index, &idx),
        cfg.encode(key()),
        to_cbor(&cfg),
        compress::compress(&[7u8; 1000], 3).unwrap(),
        keyfile_bytes(),
    ]
}

fn keyfile_bytes() -> Vec<u8> {
    static B: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    B.get_or_init(|| {
        let kdf = KdfParams::new(limits::MIN_KDF_MEMORY_KIB, 1, 1);
        KeyFile::create(b"pw", kdf, &REPO, &SECRET, "h".into(), "u".into())
            .unwrap()
            .encode()
    })
    .clone()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_never_panic(b in arb_bytes(600)) {
        decode_everything(&b);
    }

    #[test]
    fn damaged_files_never_panic(
        which in any::<prop::sample::Index>(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..6),
    ) {
        let files = valid_files();
        let mut b = which.get(&files).clone();
        for (at, v, op) in edits {
            if b.is_empty() {
                b.push(v);
                continue;
            }
            let i = at.index(b.len());
            match op {
                0 => b[i] ^= v | 1,
                1 => b.truncate(i),
                2 => b.insert(i, v),
                _ => { b.remove(i); }
            }
        }
        decode_everything(&b);
    }
}

// ---- review findings and hostile inputs ----

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        mode: 0o755,
        link_target: (kind == NodeKind::Symlink).then(|| b"t".to_vec()),
        subtree: (kind == NodeKind::Dir).then_some(Id([1; 32])),
        ..Node::bare(name, kind)
    }
}

fn decode_one(n: Node) -> cairn_engine::Result<Tree> {
    Tree::decode(&Tree { nodes: vec![n] }.encode(), "t")
}

#[test]
fn tree_rejects_fields_on_the_wrong_kind() {
    for kind in [
        NodeKind::File,
        NodeKind::Dir,
        NodeKind::Symlink,
        NodeKind::Fifo,
        NodeKind::Socket,
        NodeKind::Chardev,
        NodeKind::Blockdev,
    ] {
        assert!(decode_one(node(b"n", kind)).is_ok(), "{kind:?}");
        let mut n = node(b"n", kind);
        n.mode = 0o10000;
        assert!(decode_one(n).is_err(), "mode beyond 0o7777 on {kind:?}");
        let mut n = node(b"n", kind);
        n.content = vec![Id([2; 32])];
        assert_eq!(
            decode_one(n).is_ok(),
            kind == NodeKind::File,
            "content on {kind:?}"
        );
        let mut n = node(b"n", kind);
        n.lists = vec![Id([2; 32])];
        assert_eq!(
            decode_one(n).is_ok(),
            kind == NodeKind::File,
            "lists on {kind:?}"
        );
        let mut n = node(b"n", kind);
        n.rdev = 5;
        let device = matches!(kind, NodeKind::Chardev | NodeKind::Blockdev);
        assert_eq!(decode_one(n).is_ok(), device, "rdev on {kind:?}");
        let mut n = node(b"n", kind);
        n.link_target = if kind == NodeKind::Symlink {
            None
        } else {
            Some(b"x".to_vec())
        };
        assert!(decode_one(n).is_err(), "link target on {kind:?}");
        let mut n = node(b"n", kind);
        n.subtree = if kind == NodeKind::Dir {
            None
        } else {
            Some(Id([3; 32]))
        };
        assert!(decode_one(n).is_err(), "subtree on {kind:?}");
    }
    let mut n = node(b"n", NodeKind::File);
    n.content = vec![Id([2; 32])];
    n.lists = vec![Id([3; 32])];
    assert!(decode_one(n).is_err(), "content and lists together");
    for bad in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
        assert!(decode_one(node(bad, NodeKind::Fifo)).is_err(), "{bad:?}");
    }
    let mut t = Tree {
        nodes: vec![node(b"b", NodeKind::Fifo), node(b"a", NodeKind::Fifo)],
    };
    assert!(Tree::decode(&t.encode(), "t").is_err(), "unsorted");
    t.nodes[1].name = b"b".to_vec();
    assert!(Tree::decode(&t.encode(), "t").is_err(), "repeated name");
}

/// An index pack whose entry ends at `end` in a pack of `size` bytes.
fn index_pack(size: u64, offset: u32, raw: u32) -> IndexFile {
    let e = PackEntry {
        blob_type: BlobType::Data,
        compressed: false,
        offset,
        length: raw + 40,
        raw_length: raw,
        id: Id([5; 32]),
    };
    IndexFile {
        supersedes: Vec::new(),
        packs: vec![IndexPack {
            id: Id([6; 32]),
            size,
            blobs: pack::encode_entries(&[e]),
        }],
        obsolete: Vec::new(),
    }
}

fn open_index(idx: &IndexFile) -> cairn_engine::Result<IndexFile> {
    let f = seal_metadata(key(), &REPO, FileType::Index, Role::Index, idx);
    open_metadata(key(), &REPO, FileType::Index, Role::Index, &f, "i")
}

#[test]
fn index_entries_are_bounded_by_the_pack() {
    // Blob at 8..108. Readers bound the blob area by size - 8 - 40 (the
    // smallest sealed header and the trailer; format-spec §10).
    assert!(open_index(&index_pack(108 + 48, 8, 60)).is_ok());
    assert!(open_index(&index_pack(108 + 48 - 1, 8, 60)).is_err());
    assert!(open_index(&index_pack(8, 8, 60)).is_err());
    // Pack larger than the format allows.
    assert!(open_index(&index_pack(limits::MAX_PACK + 1, 8, 60)).is_err());
    assert!(open_index(&index_pack(u64::MAX, 8, 60)).is_err());
    // Offsets near u32::MAX cannot wrap.
    assert!(open_index(&index_pack(limits::MAX_PACK, u32::MAX - 10, 60)).is_err());
    // A pack too small to be one, even without entries.
    let mut idx = index_pack(55, 8, 0);
    idx.packs[0].blobs.clear();
    assert!(open_index(&idx).is_err());
    idx.packs[0].size = 56;
    assert!(open_index(&idx).is_ok());
    // Entries that are not whole records.
    let mut idx = index_pack(1000, 8, 60);
    idx.packs[0].blobs.pop();
    assert!(open_index(&idx).is_err());
}

#[test]
fn pack_entries_sizes_are_consistent() {
    let e = |compressed: bool, length: u32, raw_length: u32| PackEntry {
        blob_type: BlobType::Tree,
        compressed,
        offset: 8,
        length,
        raw_length,
        id: Id([1; 32]),
    };
    let ok = |x: PackEntry| pack::decode_entries(&pack::encode_entries(&[x]), None, "p").is_ok();
    assert!(ok(e(false, 140, 100)));
    assert!(
        !ok(e(false, 139, 100)),
        "uncompressed shorter than raw + 40"
    );
    assert!(!ok(e(false, 141, 100)));
    assert!(ok(e(true, 60, 100)));
    assert!(ok(e(true, 140, 100)));
    assert!(!ok(e(true, 141, 100)), "longer than raw + 40");
    assert!(!ok(e(true, 39, 100)), "shorter than the sealing");
    assert!(!ok(e(true, 100, limits::MAX_BLOB as u32 + 1)));
    let mut b = pack::encode_entries(&[e(false, 140, 100)]);
    b[2] = 1;
    assert!(
        pack::decode_entries(&b, None, "p").is_err(),
        "reserved byte"
    );
    let mut b = pack::encode_entries(&[e(false, 140, 100)]);
    b[0] = 3;
    assert!(pack::decode_entries(&b, None, "p").is_err(), "blob type");
    let mut b = pack::encode_entries(&[e(false, 140, 100)]);
    b[1] = 2;
    assert!(pack::decode_entries(&b, None, "p").is_err(), "compression");
}

/// CBOR headers declaring huge strings and arrays must fail at the end of
/// the input, not allocate what they declare.
#[test]
fn huge_declared_cbor_lengths_do_not_allocate() {
    let huge = 1u64 << 60;
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for major in [0x5b_u8, 0x7b, 0x9b, 0xbb] {
        // byte string, text string, array, map of 2^60 items
        let mut b = vec![major];
        b.extend_from_slice(&huge.to_be_bytes());
        b.extend_from_slice(&[0; 16]);
        cases.push(b);
    }
    // The same inside a tree: {"nodes": [2^60 items]}, and a node name.
    let mut b = vec![0xa1, 0x65];
    b.extend_from_slice(b"nodes");
    b.push(0x9b);
    b.extend_from_slice(&huge.to_be_bytes());
    cases.push(b);
    let mut b = vec![0xa1, 0x65];
    b.extend_from_slice(b"nodes");
    b.extend_from_slice(&[0x81, 0xa1, 0x64]);
    b.extend_from_slice(b"name");
    b.push(0x5b);
    b.extend_from_slice(&huge.to_be_bytes());
    cases.push(b);
    // Indefinite-length byte string of many small chunks, never closed.
    let mut b = vec![0x5f];
    for _ in 0..1000 {
        b.extend_from_slice(&[0x41, 0]);
    }
    cases.push(b);
    for b in &cases {
        assert!(from_cbor::<ByteBuf>(b, "c").is_err());
        assert!(from_cbor::<String>(b, "c").is_err());
        assert!(from_cbor::<Vec<Id>>(b, "c").is_err());
        assert!(Tree::decode(b, "c").is_err());
        assert!(tree::decode_list(b, "c", true).is_err());
        assert!(from_cbor::<IndexFile>(b, "c").is_err());
        assert!(from_cbor::<serde::de::IgnoredAny>(b, "c").is_err());
        let mut kf = format::header(FileType::Key).to_vec();
        kf.extend_from_slice(b);
        assert!(KeyFile::decode(&kf, "k").is_err());
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for open in [0x81u8, 0xa1] {
        let mut b = vec![0xa2, 0x65];
        b.extend_from_slice(b"nodes");
        b.push(0x80);
        b.extend_from_slice(&[0x61, b'x']);
        for _ in 0..100_000 {
            b.push(open);
            if open == 0xa1 {
                b.extend_from_slice(&[0x61, b'k']);
            }
        }
        b.push(0);
        assert!(Tree::decode(&b, "t").is_err());
        assert!(from_cbor::<serde::de::IgnoredAny>(&b, "t").is_err());
    }
    // Unknown keys at a modest depth are ignored, as the format requires.
    let mut b = vec![0xa2, 0x65];
    b.extend_from_slice(b"nodes");
    b.push(0x80);
    b.extend_from_slice(&[0x61, b'x']);
    b.extend(std::iter::repeat_n(0x81, 20));
    b.push(0);
    assert_eq!(Tree::decode(&b, "t").unwrap(), Tree::default());
}

#[test]
fn cbor_must_fill_its_input() {
    let t = Tree::default().encode();
    assert_eq!(t, [0xa1, 0x65, b'n', b'o', b'd', b'e', b's', 0x80]);
    let mut extra = t.clone();
    extra.push(0);
    assert!(Tree::decode(&extra, "t").is_err());
    let mut kf = keyfile_bytes();
    assert!(KeyFile::decode(&kf, "k").is_ok());
    kf.push(0xf6);
    assert!(KeyFile::decode(&kf, "k").is_err());
    assert!(Tree::decode(&t[..t.len() - 1], "t").is_err());
}

#[test]
fn repeated_map_keys_are_rejected() {
    // {"nodes": [], "nodes": []}
    let mut b = vec![0xa2];
    for _ in 0..2 {
        b.push(0x65);
        b.extend_from_slice(b"nodes");
        b.push(0x80);
    }
    assert!(Tree::decode(&b, "t").is_err());
}

#[test]
fn hostile_kdf_parameters_are_rejected_at_decode() {
    let good = KeyFile::decode(&keyfile_bytes(), "k").unwrap();
    let variants: [fn(&mut KdfParams); 10] = [
        |k| k.memory_kib = limits::MAX_KDF_MEMORY_KIB + 1,
        |k| k.memory_kib = u32::MAX,
        |k| k.memory_kib = limits::MIN_KDF_MEMORY_KIB - 1,
        |k| k.iterations = 0,
        |k| k.iterations = limits::MAX_KDF_ITERATIONS + 1,
        |k| k.parallelism = 0,
        |k| k.parallelism = limits::MAX_KDF_PARALLELISM + 1,
        |k| k.salt = vec![0; 15],
        |k| k.salt = vec![0; 65],
        |k| k.algorithm = "argon2i".into(),
    ];
    for (i, v) in variants.iter().enumerate() {
        let mut kf = good.clone();
        v(&mut kf.kdf);
        let start = std::time::Instant::now();
        assert!(KeyFile::decode(&kf.encode(), "k").is_err(), "variant {i}");
        assert!(kf.unwrap_secret(b"pw", "k").is_err(), "variant {i}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(1),
            "variant {i} did work"
        );
    }
    // Too large a file is rejected before parsing.
    let mut big = keyfile_bytes();
    big.resize(limits::MAX_KEY_FILE as usize + 1, 0);
    assert!(KeyFile::decode(&big, "k").is_err());
}

#[test]
fn zstd_frames_must_match_the_declared_size() {
    let data = vec![9u8; 10_000];
    let c = compress::compress(&data, 3).unwrap();
    assert_eq!(
        compress::decompress_exact(&c, data.len(), "z").unwrap(),
        data
    );
    // The frame declares its size: a different declared size fails before
    // any buffer is allocated, even one far beyond the frame.
    assert!(compress::decompress_exact(&c, 9_999, "z").is_err());
    assert!(compress::decompress_exact(&c, 1 << 30, "z").is_err());
    // Two frames, or trailing bytes, are not one frame.
    let mut two = c.clone();
    two.extend_from_slice(&c);
    assert!(compress::decompress_exact(&two, 20_000, "z").is_err());
    assert!(compress::decompress_exact(&[], 0, "z").is_err());
    assert!(compress::decompress_exact(&c[..c.len() - 1], data.len(), "z").is_err());
    // A metadata body declaring more than the limit is refused unread.
    let mut body = (limits::MAX_METADATA_PLAIN + 1).to_le_bytes().to_vec();
    body.extend_from_slice(&c);
    assert!(matches!(
        decompress_declared(&body, "m"),
        Err(cairn_engine::Error::Limit { .. })
    ));
}

#[test]
fn pack_trailer_and_size_limits() {
    let mut t = 40u32.to_le_bytes().to_vec();
    t.extend_from_slice(pack::TRAILER_MAGIC);
    assert_eq!(pack::header_len_from_trailer(&t, 56, "p").unwrap(), 40);
    assert!(pack::header_len_from_trailer(&t, 55, "p").is_err());
    for h in [0u32, 39, (limits::MAX_PACK_HEADER + 1) as u32, u32::MAX] {
        let mut t = h.to_le_bytes().to_vec();
        t.extend_from_slice(pack::TRAILER_MAGIC);
        assert!(
            pack::header_len_from_trailer(&t, limits::MAX_PACK, "p").is_err(),
            "{h}"
        );
    }
    assert!(pack::header_len_from_trailer(&t[..7], 56, "p").is_err());
    let mut bad = t.clone();
    bad[7] = b'X';
    assert!(pack::header_len_from_trailer(&bad, 56, "p").is_err());
    // A pack must start with a pack header, and be at least header+trailer.
    let mut p = format::header(FileType::Pack).to_vec();
    p.extend_from_slice(&t);
    assert!(pack::parse_pack(key(), &REPO, &p, "p").is_err());
    p[6] = FileType::Index as u8;
    assert!(pack::parse_pack(key(), &REPO, &p, "p").is_err());
}
