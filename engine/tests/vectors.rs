//! The format's test vectors (format-spec/vectors/): files written once by
//! this test with `CAIRN_WRITE_VECTORS=1`, committed, and decoded by every
//! later run, so a change to the byte format cannot go unnoticed.

use std::path::PathBuf;

use cairn_engine::crypto::MasterKey;
use cairn_engine::format::{FileType, Role};
use cairn_engine::pack::{self, BlobType, PackWriter};
use cairn_engine::repofile::config::{ChunkerParams, Config};
use cairn_engine::repofile::keyfile::{KdfParams, KeyFile};
use cairn_engine::repofile::snapshot::Snapshot;
use cairn_engine::repofile::tree::{Node, NodeKind, Tree};
use cairn_engine::repofile::{open_metadata, seal_metadata};
use cairn_engine::Id;

const PASSWORD: &[u8] = b"cairn test vector";
const SECRET: [u8; 32] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    26, 27, 28, 29, 30, 31,
];
const REPO_ID: [u8; 32] = [0xab; 32];
const BLOB_A: &[u8] = b"hello, cairn";

fn blob_b() -> Vec<u8> {
    b"compressible ".repeat(100)
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../format-spec/vectors")
}

fn tree() -> Tree {
    Tree {
        nodes: vec![Node {
            name: b"greeting.txt".to_vec(),
            kind: NodeKind::File,
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            user: Some("alice".into()),
            group: Some("alice".into()),
            mtime: 1_700_000_000_123_456_789,
            ctime: 1_700_000_000_123_456_789,
            atime: 1_700_000_000_123_456_789,
            inode: 42,
            device: 2049,
            links: 1,
            size: BLOB_A.len() as u64,
            link_target: None,
            xattrs: Vec::new(),
            rdev: 0,
            content: vec![MasterKey::from_secret(SECRET).blob_id(BLOB_A)],
            subtree: None,
            lists: Vec::new(),
            sqlite: None,
        }],
    }
}

fn snapshot(tree_id: Id) -> Snapshot {
    Snapshot {
        time: chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00.5+01:00").unwrap(),
        hostname: "vector-host".into(),
        username: "alice".into(),
        uid: 1000,
        gid: 1000,
        paths: vec!["/home/alice".into()],
        tags: vec!["test".into()],
        tree: tree_id,
        parent: None,
        program_version: "cairn 0.1.0".into(),
        summary: None,
        original: None,
        copy_of: None,
        id: Id::default(),
    }
}

fn write_vectors() {
    let d = dir();
    std::fs::create_dir_all(&d).unwrap();
    let key = MasterKey::from_secret(SECRET);
    let repo = Id(REPO_ID);
    let kf = KeyFile::create(
        PASSWORD,
        KdfParams::new(8 << 10, 1, 1),
        &repo,
        &SECRET,
        "vector-host".into(),
        "alice".into(),
    )
    .unwrap();
    std::fs::write(d.join("key"), kf.encode()).unwrap();
    let mut cfg = Config::new(16 << 20, 3, ChunkerParams::default());
    cfg.id = repo;
    cfg.created = "2026-11-22T09:00:00+00:00".into();
    std::fs::write(d.join("config"), cfg.encode(&key)).unwrap();
    let mut w = PackWriter::new(BlobType::Data, 4096);
    let (mut scratch, mut sealed) = (Vec::new(), Vec::new());
    for b in [BLOB_A.to_vec(), blob_b()] {
        let id = key.blob_id(&b);
        let c = pack::seal_blob_into(
            &key,
            &repo,
            BlobType::Data,
            &id,
            &b,
            3,
            &mut scratch,
            &mut sealed,
        );
        w.add(id, &sealed, b.len() as u32, c);
    }
    let p = w.finish(&key, &repo);
    std::fs::write(d.join("pack"), &p.bytes).unwrap();
    let t = tree();
    let tid = key.blob_id(&t.encode());
    std::fs::write(d.join("tree.cbor"), t.encode()).unwrap();
    let s = seal_metadata(
        &key,
        &repo,
        FileType::Snapshot,
        Role::Snapshot,
        &snapshot(tid),
    );
    std::fs::write(d.join("snapshot"), s).unwrap();
}

#[test]
fn vectors_decode() {
    if std::env::var_os("CAIRN_WRITE_VECTORS").is_some() {
        write_vectors();
    }
    let d = dir();
    let read = |n: &str| std::fs::read(d.join(n)).unwrap_or_else(|e| panic!("vector {n}: {e}"));

    // Key file: the password unwraps the known secret and repository ID;
    // another password does not.
    let kf = KeyFile::decode(&read("key"), "key").unwrap();
    assert_eq!(kf.kdf.memory_kib, 8 << 10);
    assert_eq!(
        kf.unwrap_secret(PASSWORD, "key").unwrap(),
        Some((SECRET, Id(REPO_ID)))
    );
    assert_eq!(kf.unwrap_secret(b"wrong", "key").unwrap(), None);

    // Subkeys derived from the secret.
    let key = MasterKey::from_secret(SECRET);
    assert_eq!(
        key.blob_id(BLOB_A).to_hex(),
        include_str!("../../format-spec/vectors/blob-a.id").trim()
    );
    assert_eq!(
        format!("{:016x}", key.chunker_seed()),
        include_str!("../../format-spec/vectors/chunker-seed").trim()
    );

    // Config.
    let cfg = Config::decode(&read("config"), &key, "config").unwrap();
    assert_eq!(cfg.id, Id(REPO_ID));
    assert_eq!(cfg.chunker, ChunkerParams::default());
    assert_eq!(cfg.pack_size, 16 << 20);

    // Pack: two data blobs, the second compressed.
    let pack_bytes = read("pack");
    let entries = pack::parse_pack(&key, &Id(REPO_ID), &pack_bytes, "pack").unwrap();
    assert_eq!(entries.len(), 2);
    assert!(!entries[0].compressed && entries[1].compressed);
    for (e, want) in entries.iter().zip([BLOB_A.to_vec(), blob_b()]) {
        let s = &pack_bytes[e.offset as usize..(e.offset + e.length) as usize];
        assert_eq!(
            pack::open_blob(&key, &Id(REPO_ID), e, s, "pack").unwrap(),
            want
        );
    }

    // Tree CBOR is canonical: decoding and re-encoding gives the same bytes.
    let tb = read("tree.cbor");
    let t = Tree::decode(&tb, "tree").unwrap();
    assert_eq!(t, tree());
    assert_eq!(t.encode(), tb);

    // Snapshot.
    let s: Snapshot = open_metadata(
        &key,
        &Id(REPO_ID),
        FileType::Snapshot,
        Role::Snapshot,
        &read("snapshot"),
        "snapshot",
    )
    .unwrap();
    assert_eq!(s, snapshot(key.blob_id(&tb)));
    // The same bytes are refused in another role.
    assert!(open_metadata::<Snapshot>(
        &key,
        &Id(REPO_ID),
        FileType::Index,
        Role::Index,
        &read("snapshot"),
        "snapshot"
    )
    .is_err());
}

#[test]
fn derived_values_file() {
    // Written with the vectors: the expected blob ID and chunker seed, so a
    // reader in another language can check its key derivation.
    if std::env::var_os("CAIRN_WRITE_VECTORS").is_some() {
        let key = MasterKey::from_secret(SECRET);
        std::fs::write(
            dir().join("blob-a.id"),
            format!("{}\n", key.blob_id(BLOB_A)),
        )
        .unwrap();
        std::fs::write(
            dir().join("chunker-seed"),
            format!("{:016x}\n", key.chunker_seed()),
        )
        .unwrap();
    }
}
