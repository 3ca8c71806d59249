//! Deduplication: unchanged files are neither reread nor stored again, a
//! forced reread stores nothing new, and a small insertion in a large file
//! stores only the chunks around it.

use std::fs;

use crate::common::*;

const BIG: usize = 30 * MIB;

#[test]
fn unchanged_forced_and_shifted_backups_deduplicate() {
    let f = Fixture::new();
    let src = f.path("src");
    write(&src.join("big.bin"), &pseudo_random(30, BIG));
    write(&src.join("a.txt"), b"alpha\n");
    write(&src.join("sub/b.txt"), &pseudo_random(31, 200_000));
    write(&src.join("sub/deeper/c.bin"), &pseudo_random(32, 2 * MIB));
    write(&src.join("sub/empty"), b"");
    let data = f.repo.join("data");

    let first = f.backup([&src]);
    let id1 = snap_id(&first);
    assert_eq!(stat(&first, "total_files"), 5, "{first}");
    assert_eq!(stat(&first, "files_new"), 5, "{first}");
    let total_bytes = stat(&first, "total_bytes");
    assert_eq!(total_bytes, (BIG + 6 + 200_000 + 2 * MIB) as u64);
    assert_eq!(stat(&first, "bytes_read"), total_bytes);
    assert!(stat(&first, "data_blobs_added") >= 4, "{first}");
    assert!(first["parent"].is_null(), "{first}");
    let size1 = dir_bytes(&data);
    assert!(size1 > BIG as u64, "random data does not compress: {size1}");

    // Unchanged: nothing read, no data stored, the first is the parent.
    let second = f.backup([&src]);
    assert_eq!(second["parent"].as_str(), Some(id1.as_str()), "{second}");
    assert_eq!(stat(&second, "data_blobs_added"), 0, "{second}");
    assert_eq!(stat(&second, "bytes_read"), 0, "{second}");
    assert_eq!(stat(&second, "files_unmodified"), 5, "{second}");
    assert_eq!(stat(&second, "files_new"), 0, "{second}");
    assert_eq!(stat(&second, "files_changed"), 0, "{second}");
    assert_eq!(stat(&second, "total_files"), 5, "{second}");
    assert_eq!(stat(&second, "total_bytes"), total_bytes, "{second}");
    let size2 = dir_bytes(&data);
    assert!(
        size2 - size1 < 64 * 1024,
        "unchanged backup grew data/ by {} bytes",
        size2 - size1
    );

    // --force rereads everything and still stores no data.
    let forced = f.backup([src.as_os_str(), "--force".as_ref()]);
    assert_eq!(stat(&forced, "bytes_read"), total_bytes, "{forced}");
    assert_eq!(stat(&forced, "data_blobs_added"), 0, "{forced}");
    // Only tree metadata may be new: the directories above the source
    // (/tmp) change whenever other programs create files there.
    assert!(stat(&forced, "bytes_added") < 64 * 1024, "{forced}");
    assert_eq!(stat(&forced, "files_unmodified"), 0, "{forced}");
    let size3 = dir_bytes(&data);
    assert!(
        size3 - size2 < 64 * 1024,
        "forced backup grew data/ by {} bytes",
        size3 - size2
    );

    // 100 bytes inserted in the middle of the big file.
    let mut big = pseudo_random(30, BIG);
    big.splice(BIG / 2..BIG / 2, pseudo_random(99, 100));
    fs::write(src.join("big.bin"), &big).unwrap();
    let shifted = f.backup([&src]);
    let id4 = snap_id(&shifted);
    assert_eq!(stat(&shifted, "files_changed"), 1, "{shifted}");
    assert_eq!(stat(&shifted, "files_unmodified"), 4, "{shifted}");
    assert_eq!(stat(&shifted, "bytes_read"), big.len() as u64, "{shifted}");
    let blobs = stat(&shifted, "data_blobs_added");
    assert!(
        (1..=3).contains(&blobs),
        "inserting 100 bytes added {blobs} data blobs: {shifted}"
    );
    let added = stat(&shifted, "bytes_added");
    assert!(
        added > 0 && added < (BIG / 3) as u64,
        "inserting 100 bytes into {BIG} added {added} bytes: {shifted}"
    );
    let size4 = dir_bytes(&data);
    assert!(
        size4 - size3 < (BIG / 3) as u64,
        "data/ grew by {} bytes for a 100-byte insertion",
        size4 - size3
    );
    assert!(
        size4 - size3 <= stat(&shifted, "bytes_added_stored") + 64 * 1024,
        "data/ grew by {} bytes, more than the {} stored bytes reported",
        size4 - size3,
        stat(&shifted, "bytes_added_stored")
    );

    // The new version restores to the new content, the first to the old.
    let out = f.ok([
        "dump".as_ref(),
        spec(&id4, &src.join("big.bin")).as_os_str(),
    ]);
    assert!(out.stdout == big, "dump of the changed file differs");
    let out = f.ok([
        "dump".as_ref(),
        spec(&id1, &src.join("big.bin")).as_os_str(),
    ]);
    assert!(
        out.stdout == pseudo_random(30, BIG),
        "dump of the original file differs"
    );
}

#[test]
fn identical_files_in_one_backup_are_stored_once() {
    let f = Fixture::new();
    let src = f.path("src");
    let content = pseudo_random(40, 3 * MIB);
    for name in ["a", "b", "sub/c", "sub/deeper/d"] {
        write(&src.join(name), &content);
    }
    let b = f.backup([&src]);
    assert_eq!(stat(&b, "total_files"), 4);
    assert_eq!(stat(&b, "bytes_read"), 4 * content.len() as u64);
    let stored = dir_bytes(&f.repo.join("data"));
    assert!(
        stored < 2 * content.len() as u64,
        "four copies of {} bytes took {stored} bytes in data/",
        content.len()
    );
    assert!(
        stat(&b, "bytes_added") <= content.len() as u64 + 64 * 1024,
        "{b}"
    );
    // A file repeating one block uses the block's inner chunks again and
    // again. The restore opens each shared blob once and writes it to every
    // place in every file that holds it.
    //
    // How soon the cuts fall into step with the block depends on the
    // repository's random chunker seed: with normalised chunking a cut's
    // place depends on the previous cut, so the cuts may cycle over two or
    // three repeats before they repeat. Simulated over 3,000 seeds, eight
    // repeats of a 4 MiB block added at most 3.34 blocks (1.5 typically);
    // a block without any candidate cut is cut at the 8 MiB maximum, which
    // is two whole blocks, so it repeats as well.
    let block = pseudo_random(41, 4 * MIB);
    let repeats = 8;
    let repeated: Vec<u8> = block
        .iter()
        .copied()
        .cycle()
        .take(repeats * block.len())
        .collect();
    write(&src.join("sub/repeated"), &repeated);
    let b = f.backup([&src]);
    assert!(
        stat(&b, "bytes_added") < (repeats / 2 * block.len()) as u64,
        "{repeats} repeats of a {} byte block added {b}",
        block.len()
    );
    let target = f.path("restored");
    f.ok([
        "restore".as_ref(),
        "latest".as_ref(),
        "--verify".as_ref(),
        "--target".as_ref(),
        target.as_os_str(),
    ]);
    let inside = target.join(src.strip_prefix("/").unwrap());
    for name in ["a", "b", "sub/c", "sub/deeper/d"] {
        assert!(
            fs::read(inside.join(name)).unwrap() == content,
            "{name} differs"
        );
    }
    assert!(fs::read(inside.join("sub/repeated")).unwrap() == repeated);
}

#[test]
fn unchanged_backup_reports_no_new_directories() {
    let f = Fixture::new();
    let src = f.path("src");
    write(&src.join("a"), b"a");
    write(&src.join("sub/b"), b"b");
    write(&src.join("sub/deeper/c"), b"c");
    // Directories in the snapshot: src, sub, deeper and every parent of
    // src up to and including the root.
    let dirs = 3 + src.ancestors().count() as u64 - 1;
    let dir_counts = |v: &serde_json::Value| {
        (
            stat(v, "dirs_new"),
            stat(v, "dirs_changed"),
            stat(v, "dirs_unmodified"),
        )
    };
    let first = f.backup([&src]);
    let (n, c, u) = dir_counts(&first);
    assert_eq!((n, c, u), (dirs, 0, 0), "first backup: {first}");
    // The second backup may see changed directories (reading them can
    // update their access times); none is new.
    for i in 2..=3 {
        let v = f.backup([&src]);
        let (n, c, u) = dir_counts(&v);
        assert_eq!(
            n, 0,
            "backup {i} of an unchanged tree reports {n} new directories: {v}"
        );
        assert_eq!(n + c + u, dirs, "backup {i}: {v}");
        assert_eq!(stat(&v, "files_unmodified"), 3, "backup {i}: {v}");
    }
}
