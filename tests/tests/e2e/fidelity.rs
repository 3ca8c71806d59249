//! A restore reproduces the backed-up tree exactly: every file type,
//! content, hardlinks, holes, owners, modes, xattrs, ACLs and nanosecond
//! times, as judged by `rsync -aHAXn --checksum` and by direct comparison.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use filetime::FileTime;

use crate::common::*;

const SPARSE_SIZE: u64 = 100 * MIB as u64;

/// Builds the tree; returns whether ACLs were set.
fn build_tree(src: &Path) -> bool {
    fs::create_dir_all(src).unwrap();

    // Regular files of various sizes; the big one spans several chunks
    // (the maximum chunk is 8 MiB).
    write(&src.join("empty"), b"");
    write(&src.join("one-byte"), b"x");
    write(&src.join("small.txt"), &pseudo_random(1, 3 * 1024 + 7));
    write(&src.join("big.bin"), &pseudo_random(2, 20 * MIB));

    // Awkward names.
    write(&src.join(OsStr::from_bytes(b"non-utf8-\xff\xfe")), b"bytes");
    write(&src.join("with space"), b"space");
    write(&src.join("new\nline"), b"newline");
    write(&src.join("ünïcødé ✓"), b"unicode");

    // A sparse file: 100 MiB with a few bytes written.
    let sparse = src.join("sparse");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&sparse)
        .unwrap();
    f.set_len(SPARSE_SIZE).unwrap();
    for off in [0u64, 4096 * 1000 + 17, 50 * MIB as u64, SPARSE_SIZE - 3] {
        f.write_all_at(b"abc", off).unwrap();
    }
    drop(f);

    // Hardlinks: three names for one inode, and a pair across directories.
    write(&src.join("links/a"), b"hardlinked three times");
    fs::hard_link(src.join("links/a"), src.join("links/b")).unwrap();
    fs::hard_link(src.join("links/a"), src.join("links/c")).unwrap();
    write(&src.join("d1/pair"), b"hardlinked across directories");
    fs::create_dir_all(src.join("d2")).unwrap();
    fs::hard_link(src.join("d1/pair"), src.join("d2/pair")).unwrap();

    // Symlinks: dangling, to a directory, absolute.
    std::os::unix::fs::symlink("does/not/exist", src.join("dangling")).unwrap();
    std::os::unix::fs::symlink("d1", src.join("link-to-dir")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", src.join("absolute-link")).unwrap();

    // Special files.
    mkfifo(&src.join("fifo"));
    mknod_char(&src.join("null-device"), 1, 3);

    // Extended attributes, on a file and a directory, binary values too.
    write(&src.join("xattrs"), b"has xattrs");
    xattr::set(src.join("xattrs"), "user.comment", b"hello").unwrap();
    xattr::set(src.join("xattrs"), "user.binary", &[0u8, 255, 1, 254]).unwrap();
    xattr::set(src.join("d1"), "user.dir", b"directory attribute").unwrap();

    // POSIX ACLs: an access ACL on a file, a default ACL on a directory.
    write(&src.join("acl-file"), b"acl");
    fs::create_dir_all(src.join("acl-dir")).unwrap();
    let acls = if have("setfacl") {
        let st = Command::new("setfacl")
            .args(["-m", "u:1234:rwx,g:5678:r"])
            .arg(src.join("acl-file"))
            .status()
            .unwrap();
        assert!(st.success(), "setfacl on a file");
        let st = Command::new("setfacl")
            .args(["-d", "-m", "u:1234:rx"])
            .arg(src.join("acl-dir"))
            .status()
            .unwrap();
        assert!(st.success(), "setfacl -d on a directory");
        true
    } else {
        eprintln!("note: setfacl not installed; ACLs are not tested");
        false
    };

    // Owners (before modes: chown clears setuid/setgid bits).
    write(&src.join("owned"), b"owned by 1234:5678");
    std::os::unix::fs::chown(src.join("owned"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::lchown(src.join("dangling"), Some(4321), Some(8765)).unwrap();
    fs::create_dir_all(src.join("owned-dir")).unwrap();
    std::os::unix::fs::chown(src.join("owned-dir"), Some(1234), Some(5678)).unwrap();

    // Special mode bits.
    write(&src.join("setuid"), b"#!/bin/sh\n");
    chmod(&src.join("setuid"), 0o4755);
    write(&src.join("setgid"), b"#!/bin/sh\n");
    chmod(&src.join("setgid"), 0o2755);
    fs::create_dir_all(src.join("sticky")).unwrap();
    write(&src.join("sticky/inside"), b"in a sticky dir");
    chmod(&src.join("sticky"), 0o1777);
    fs::create_dir_all(src.join("setgid-dir")).unwrap();
    chmod(&src.join("setgid-dir"), 0o2775);
    write(&src.join("private"), b"0600");
    chmod(&src.join("private"), 0o600);
    write(&src.join("no-perms"), b"0000");
    chmod(&src.join("no-perms"), 0o000);

    // An empty directory.
    fs::create_dir_all(src.join("empty-dir")).unwrap();

    // Nanosecond times on files, a symlink and directories; set last, and
    // deepest first, so nothing changes them afterwards.
    let mut ns = 123_456_789u32;
    let mut next = || {
        ns = (ns + 98_765_431) % 1_000_000_000;
        FileTime::from_unix_time(1_600_000_000 + i64::from(ns % 1000), ns)
    };
    for f in [
        "empty",
        "one-byte",
        "small.txt",
        "big.bin",
        "sparse",
        "links/a",
        "d1/pair",
        "owned",
        "setuid",
        "xattrs",
    ] {
        filetime::set_file_mtime(src.join(f), next()).unwrap();
    }
    let t = next();
    filetime::set_symlink_file_times(src.join("dangling"), t, t).unwrap();

    // A read-only directory with files inside.
    write(&src.join("readonly/inner.txt"), b"inside a read-only dir");
    write(&src.join("readonly/sub/deeper"), b"deeper");
    chmod(&src.join("readonly"), 0o555);

    for d in [
        "links",
        "d1",
        "d2",
        "empty-dir",
        "readonly/sub",
        "readonly",
        "sticky",
        "",
    ] {
        filetime::set_file_mtime(src.join(d), next()).unwrap();
    }
    acls
}

fn mtime_ns(m: &fs::Metadata) -> (i64, i64) {
    (m.mtime(), m.mtime_nsec())
}

/// Groups of paths sharing an inode (for entries with more than one link).
fn link_groups(entries: &BTreeMap<PathBuf, fs::Metadata>) -> BTreeSet<Vec<PathBuf>> {
    let mut by_inode: BTreeMap<(u64, u64), Vec<PathBuf>> = BTreeMap::new();
    for (p, m) in entries {
        if !m.is_dir() && m.nlink() > 1 {
            by_inode
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(p.clone());
        }
    }
    by_inode.into_values().collect()
}

#[test]
fn restore_reproduces_every_file_type_and_attribute() {
    assert!(is_root(), "the fidelity test needs root (devices, owners)");
    assert!(have("rsync"), "rsync is required by the end-to-end tests");
    let f = Fixture::new();
    let src = f.path("src");
    let acls = build_tree(&src);

    let b = f.backup([&src]);
    assert!(
        b["errors"].as_array().unwrap().is_empty(),
        "backup reported errors: {b}"
    );
    let id = snap_id(&b);

    let target = f.path("restore");
    let r = f.ok([
        OsStr::new("restore"),
        OsStr::new(&id),
        OsStr::new("--target"),
        target.as_os_str(),
        OsStr::new("--verify"),
        OsStr::new("--json"),
    ]);
    let summary = r.json();
    assert!(
        summary["errors"].as_array().unwrap().is_empty(),
        "restore reported errors: {summary}"
    );
    assert!(
        summary["verified_files"].as_u64().unwrap() >= 20,
        "restore --verify checked too few files: {summary}"
    );
    let restored = under(&target, &src);

    // rsync compares content (checksums), types, modes, owners, devices,
    // symlink targets, hardlinks, ACLs, xattrs and (second-granular) times.
    let mut s = src.as_os_str().to_owned();
    s.push("/");
    let mut d = restored.as_os_str().to_owned();
    d.push("/");
    let out = Command::new("rsync")
        .args(["-aHAXn", "--checksum", "--itemize-changes", "--delete"])
        .arg(&s)
        .arg(&d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rsync failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "rsync -aHAXn --checksum found differences between {} and {}",
        src.display(),
        restored.display()
    );

    // Nanosecond mtimes of everything, types, modes, owners.
    let a = walk(&src);
    let b = walk(&restored);
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "restored tree has different names"
    );
    for (p, ma) in &a {
        let mb = &b[p];
        assert_eq!(
            mtime_ns(ma),
            mtime_ns(mb),
            "mtime of {} differs",
            p.display()
        );
        assert_eq!(ma.mode(), mb.mode(), "mode of {} differs", p.display());
        assert_eq!(
            (ma.uid(), ma.gid()),
            (mb.uid(), mb.gid()),
            "owner of {}",
            p.display()
        );
        if ma.file_type().is_char_device() {
            assert_eq!(ma.rdev(), mb.rdev(), "device number of {}", p.display());
        }
        if ma.is_file() {
            assert_eq!(ma.size(), mb.size(), "size of {}", p.display());
        }
    }

    // Hardlink groups.
    let ga = link_groups(&a);
    assert_eq!(ga.len(), 2, "source hardlink groups: {ga:?}");
    assert_eq!(ga, link_groups(&b), "hardlink groups differ");

    // Direct checks of what rsync also checks, so a failure says what.
    assert_eq!(b[Path::new("setuid")].mode() & 0o7777, 0o4755);
    assert_eq!(b[Path::new("setgid")].mode() & 0o7777, 0o2755);
    assert_eq!(b[Path::new("sticky")].mode() & 0o7777, 0o1777);
    assert_eq!(b[Path::new("readonly")].mode() & 0o7777, 0o555);
    assert_eq!(
        xattr::get(restored.join("xattrs"), "user.binary").unwrap(),
        Some(vec![0u8, 255, 1, 254])
    );
    assert_eq!(
        xattr::get(restored.join("d1"), "user.dir").unwrap(),
        Some(b"directory attribute".to_vec())
    );
    if acls {
        for (p, name) in [
            ("acl-file", "system.posix_acl_access"),
            ("acl-dir", "system.posix_acl_default"),
        ] {
            let want = xattr::get(src.join(p), name).unwrap();
            assert!(want.is_some());
            assert_eq!(
                xattr::get(restored.join(p), name).unwrap(),
                want,
                "{name} of {p}"
            );
        }
    }
    assert_eq!(
        fs::read_link(restored.join("dangling")).unwrap(),
        Path::new("does/not/exist")
    );
    assert!(b[Path::new("fifo")].file_type().is_fifo());
    assert_eq!(
        fs::read(restored.join(OsStr::from_bytes(b"non-utf8-\xff\xfe"))).unwrap(),
        b"bytes"
    );
    assert_eq!(
        fs::read(restored.join("big.bin")).unwrap(),
        pseudo_random(2, 20 * MIB)
    );
    // The sparse file is still sparse.
    // (Checked last, so that a failure here does not hide the others.)
    let m = fs::metadata(restored.join("sparse")).unwrap();
    let source_alloc = fs::metadata(src.join("sparse")).unwrap().blocks() * 512;
    assert_eq!(m.len(), SPARSE_SIZE);
    assert!(source_alloc < MIB as u64, "source is not sparse");
    let mut buf = [0u8; 3];
    fs::File::open(restored.join("sparse"))
        .unwrap()
        .read_exact_at(&mut buf, 50 * MIB as u64)
        .unwrap();
    assert_eq!(&buf, b"abc");
    assert!(
        m.blocks() * 512 < 4 * MIB as u64,
        "restored sparse file of {SPARSE_SIZE} bytes occupies {} bytes on disk (source: {source_alloc})",
        m.blocks() * 512
    );
}

/// A pack of thousands of small files, many of them sharing one blob, is
/// restored under a descriptor limit far below the file count: the
/// restorer closes each file after its last blob and bounds what stays
/// open, instead of failing with "Too many open files".
#[test]
fn restore_of_many_small_files_stays_within_a_low_descriptor_limit() {
    let f = Fixture::new();
    let src = f.path("src");
    for i in 0..3000u64 {
        let len = 100 + (i as usize * 7) % 400;
        write(
            &src.join(format!("d{}/f{i}", i % 10)),
            &pseudo_random(i, len),
        );
    }
    let shared = pseudo_random(99_999, 3000);
    for i in 0..200 {
        write(&src.join(format!("same/s{i}")), &shared);
    }
    let b = f.backup([&src]);
    assert!(b["errors"].as_array().unwrap().is_empty(), "{b}");

    let target = f.path("restore");
    let mut sh = Command::new("bash");
    clean_env(&mut sh);
    sh.stdin(std::process::Stdio::null())
        .arg("-c")
        .arg(r#"ulimit -n 128 && exec "$0" "$@""#)
        .arg(cairn_bin())
        .arg("-r")
        .arg(&f.repo)
        .args(["restore", "latest", "--json", "--target"])
        .arg(&target)
        .env("CAIRN_PASSWORD", &f.password)
        .env("RAYON_NUM_THREADS", "2");
    let r = run_command(sh);
    r.code(0);
    let summary = r.json();
    assert!(
        summary["errors"].as_array().unwrap().is_empty(),
        "restore reported errors: {summary}"
    );
    let restored = under(&target, &src);
    let want = files_by_size(&src);
    assert_eq!(want.len(), 3200);
    for (p, _) in want {
        let rel = p.strip_prefix(&src).unwrap();
        let got = fs::read(restored.join(rel)).unwrap();
        assert!(got == fs::read(&p).unwrap(), "{} differs", rel.display());
    }
}
