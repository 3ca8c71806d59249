//! Restoring parts of a snapshot: a directory, a file, `--include` and
//! `--exclude`; `dump` of a file and of a directory.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use crate::common::*;

struct Tree {
    f: Fixture,
    src: std::path::PathBuf,
    id: String,
}

fn tree() -> Tree {
    let f = Fixture::new();
    let src = f.path("src");
    write(&src.join("a.txt"), b"a\n");
    write(&src.join("b.log"), b"b\n");
    write(&src.join("sub/c.txt"), b"c\n");
    write(&src.join("sub/d.log"), b"d\n");
    write(&src.join("sub/deeper/e.txt"), b"e\n");
    write(&src.join("sub/deeper/big.bin"), &pseudo_random(7, 3 * MIB));
    write(&src.join("other/f.txt"), b"f\n");
    let b = f.backup([&src]);
    let id = snap_id(&b);
    Tree { f, src, id }
}

fn restore(t: &Tree, what: &OsStr, target: &Path, extra: &[&str]) {
    let mut args = vec![
        OsStr::new("restore"),
        what,
        OsStr::new("--target"),
        target.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    t.f.ok(args);
}

#[test]
fn restore_a_directory_puts_its_contents_into_the_target() {
    let t = tree();
    let target = t.f.path("t-dir");
    restore(&t, &spec(&t.id, &t.src.join("sub")), &target, &[]);
    assert_eq!(
        file_list(&target),
        ["c.txt", "d.log", "deeper/big.bin", "deeper/e.txt"]
    );
    assert_eq!(fs::read(target.join("c.txt")).unwrap(), b"c\n");
    assert_eq!(
        fs::read(target.join("deeper/big.bin")).unwrap(),
        pseudo_random(7, 3 * MIB)
    );
    // `latest` works the same as an ID, and so does a unique ID prefix.
    let target2 = t.f.path("t-dir-latest");
    restore(
        &t,
        &spec("latest", &t.src.join("sub/deeper")),
        &target2,
        &[],
    );
    assert_eq!(file_list(&target2), ["big.bin", "e.txt"]);
    let target3 = t.f.path("t-dir-prefix");
    restore(&t, &spec(&t.id[..8], &t.src.join("other")), &target3, &[]);
    assert_eq!(file_list(&target3), ["f.txt"]);
}

#[test]
fn restore_a_file_puts_it_into_the_target() {
    let t = tree();
    let target = t.f.path("t-file");
    restore(&t, &spec(&t.id, &t.src.join("sub/c.txt")), &target, &[]);
    assert_eq!(file_list(&target), ["c.txt"]);
    assert_eq!(fs::read(target.join("c.txt")).unwrap(), b"c\n");
}

#[test]
fn restore_include_selects_matching_paths_only() {
    let t = tree();
    let target = t.f.path("t-include");
    restore(&t, OsStr::new(&t.id), &target, &["--include", "*.txt"]);
    let root = under(&target, &t.src);
    let got: Vec<String> = file_list(&target);
    let prefix = root.strip_prefix(&target).unwrap().to_string_lossy();
    let want: Vec<String> = ["a.txt", "other/f.txt", "sub/c.txt", "sub/deeper/e.txt"]
        .iter()
        .map(|p| format!("{prefix}/{p}"))
        .collect();
    assert_eq!(got, want);

    // A path pattern includes everything below it.
    let target = t.f.path("t-include-dir");
    let pattern = t.src.join("sub/deeper");
    restore(
        &t,
        OsStr::new(&t.id),
        &target,
        &["--include", pattern.to_str().unwrap()],
    );
    let want: Vec<String> = ["sub/deeper/big.bin", "sub/deeper/e.txt"]
        .iter()
        .map(|p| format!("{prefix}/{p}"))
        .collect();
    assert_eq!(file_list(&target), want);
}

#[test]
fn restore_exclude_leaves_matching_paths_out() {
    let t = tree();
    let target = t.f.path("t-exclude");
    restore(
        &t,
        &spec(&t.id, &t.src),
        &target,
        &["--exclude", "*.log", "--exclude", "deeper"],
    );
    assert_eq!(
        file_list(&target),
        ["a.txt", "other/f.txt", "sub/c.txt"],
        "excluded files were restored"
    );
    assert!(!target.join("sub/deeper").exists());
}

#[test]
fn dump_writes_a_file_and_refuses_a_directory() {
    let t = tree();
    let out = t.f.ok([
        "dump".as_ref(),
        spec(&t.id, &t.src.join("sub/deeper/big.bin")).as_os_str(),
    ]);
    assert!(
        out.stdout == pseudo_random(7, 3 * MIB),
        "dump output differs from the source ({} bytes)",
        out.stdout.len()
    );
    let out = t.f.ok([
        "dump".as_ref(),
        spec("latest", &t.src.join("a.txt")).as_os_str(),
    ]);
    assert_eq!(out.stdout, b"a\n");

    let r =
        t.f.run(["dump".as_ref(), spec(&t.id, &t.src.join("sub")).as_os_str()]);
    let line = r.fails(1);
    assert!(r.stdout.is_empty(), "dump of a directory wrote to stdout");
    assert!(
        line.contains("sub"),
        "message does not name the path: {line}"
    );

    let r = t.f.run([
        "dump".as_ref(),
        spec(&t.id, &t.src.join("nope")).as_os_str(),
    ]);
    let line = r.fails(1);
    assert!(
        line.contains("nope"),
        "message does not name the path: {line}"
    );
}

#[test]
fn non_utf8_names_can_be_listed_dumped_and_restored() {
    use std::os::unix::ffi::OsStrExt;
    let f = Fixture::new();
    let dir = f.path("src").join(OsStr::from_bytes(b"dir-\xe9"));
    let file = dir.join(OsStr::from_bytes(b"file-\xff\xfe"));
    write(&file, b"latin-1 and invalid bytes");
    let id = snap_id(&f.backup([f.path("src")]));

    // ls of the directory (the name given as raw bytes).
    let r = f.ok(["ls".as_ref(), spec(&id, &dir).as_os_str()]);
    assert_eq!(r.stdout_str().lines().count(), 2, "{}", r.stdout_str());
    let out = f.ok(["dump".as_ref(), spec(&id, &file).as_os_str()]);
    assert_eq!(out.stdout, b"latin-1 and invalid bytes");
    let target = f.path("t");
    f.ok([
        "restore".as_ref(),
        spec(&id, &file).as_os_str(),
        "--target".as_ref(),
        target.as_os_str(),
    ]);
    assert_eq!(
        fs::read(target.join(OsStr::from_bytes(b"file-\xff\xfe"))).unwrap(),
        b"latin-1 and invalid bytes"
    );
}

#[test]
fn restore_over_an_earlier_restore_repairs_it() {
    let t = tree();
    let target = t.f.path("t-again");
    let what = spec(&t.id, &t.src);
    restore(&t, &what, &target, &[]);
    // Damage the restored tree: change, truncate, delete, replace a file
    // by a directory.
    write(&target.join("a.txt"), b"changed");
    fs::OpenOptions::new()
        .write(true)
        .open(target.join("sub/deeper/big.bin"))
        .unwrap()
        .set_len(10)
        .unwrap();
    fs::remove_file(target.join("sub/c.txt")).unwrap();
    fs::remove_file(target.join("b.log")).unwrap();
    fs::create_dir(target.join("b.log")).unwrap();
    write(&target.join("extra"), b"not in the snapshot");

    restore(&t, &what, &target, &[]);
    for p in [
        "a.txt",
        "b.log",
        "sub/c.txt",
        "sub/d.log",
        "sub/deeper/e.txt",
        "sub/deeper/big.bin",
        "other/f.txt",
    ] {
        assert!(
            fs::read(target.join(p)).unwrap() == fs::read(t.src.join(p)).unwrap(),
            "{p} differs after restoring again"
        );
    }
}
