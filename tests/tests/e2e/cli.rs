//! Command-line behaviours: stdin backups, tags and hosts, recorded times
//! and `latest@TIME`, dry runs, exclusions, keys, `cat`, `ls`, `version`.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::process::Stdio;

use serde_json::Value;

use crate::common::*;

fn time_of(snap: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    let t = snap["time"]
        .as_str()
        .unwrap_or_else(|| panic!("no time: {snap}"));
    chrono::DateTime::parse_from_rfc3339(t).unwrap_or_else(|e| panic!("time {t:?}: {e}"))
}

fn rfc3339(s: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(s).unwrap()
}

/// Names in `ls --json` output (after the snapshot line).
fn ls_paths(f: &Fixture, what: &OsStr) -> Vec<String> {
    let lines = f
        .ok([OsStr::new("ls"), what, OsStr::new("--json")])
        .json_lines();
    assert!(lines[0]["id"].is_string(), "first line is not a snapshot");
    lines[1..]
        .iter()
        .map(|n| n["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn stdin_backup_dumps_back_identically() {
    let f = Fixture::new();
    let mut input = b"-- SQL dump\nCREATE TABLE t (x);\n".to_vec();
    input.extend(pseudo_random(60, 3 * MIB));
    let mut c = f.command();
    c.args(["backup", "--stdin", "--stdin-filename", "db.sql", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = wait_run(child, "cairn backup --stdin");
    writer.join().unwrap();
    let v = out.code(0).json();
    assert_eq!(stat(&v, "total_bytes"), input.len() as u64, "{v}");
    assert_eq!(stat(&v, "total_files"), 1, "{v}");

    let dumped = f.ok(["dump", "latest:/db.sql"]);
    assert!(dumped.stdout == input, "dump differs from the input");
    let snaps = f.all_snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["paths"], serde_json::json!(["/db.sql"]));

    // A file name with a slash is refused.
    let mut c = f.command();
    c.args(["backup", "--stdin", "--stdin-filename", "a/b"]);
    let line = run_command(c).fails(1);
    assert!(line.contains("a/b"), "{line}");
    // --stdin with paths is refused.
    let mut c = f.command();
    c.args(["backup", "--stdin", "/etc/hostname"]);
    run_command(c).fails(1);
    assert_eq!(f.all_snapshots().len(), 1);
}

#[test]
fn tags_hosts_and_paths_filter_snapshots() {
    let f = Fixture::new();
    write(&f.path("src/a"), b"a");
    write(&f.path("other/b"), b"b");
    let src = f.path("src");
    let other = f.path("other");
    let s1 = snap_id(&f.backup([
        src.as_os_str(),
        "--tag".as_ref(),
        "daily".as_ref(),
        "--host".as_ref(),
        "alpha".as_ref(),
    ]));
    let s2 = snap_id(&f.backup([
        src.as_os_str(),
        "--tag".as_ref(),
        "weekly,offsite".as_ref(),
        "--host".as_ref(),
        "beta".as_ref(),
    ]));
    let s3 = snap_id(&f.backup([
        other.as_os_str(),
        "--tag".as_ref(),
        "daily".as_ref(),
        "--tag".as_ref(),
        "offsite".as_ref(),
        "--host".as_ref(),
        "alpha".as_ref(),
    ]));
    let ids = |v: Vec<Value>| -> Vec<String> {
        let mut ids: Vec<String> = v
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<&String>| -> Vec<String> {
        v.sort();
        v.into_iter().cloned().collect()
    };

    let all = f.all_snapshots();
    assert_eq!(all.len(), 3);
    let first = all
        .iter()
        .find(|s| s["id"] == s1.as_str())
        .expect("first snapshot listed");
    assert_eq!(first["hostname"], "alpha");
    assert_eq!(first["tags"], serde_json::json!(["daily"]));
    assert_eq!(first["paths"], serde_json::json!([src.to_str().unwrap()]));
    let second = all.iter().find(|s| s["id"] == s2.as_str()).unwrap();
    assert_eq!(second["tags"], serde_json::json!(["weekly", "offsite"]));

    assert_eq!(ids(f.snapshots(["--tag", "daily"])), sorted(vec![&s1, &s3]));
    assert_eq!(
        ids(f.snapshots(["--tag", "offsite"])),
        sorted(vec![&s2, &s3])
    );
    assert_eq!(
        ids(f.snapshots(["--tag", "daily,offsite"])),
        vec![s3.clone()]
    );
    assert_eq!(
        ids(f.snapshots(["--tag", "weekly", "--tag", "daily,offsite"])),
        sorted(vec![&s2, &s3])
    );
    assert_eq!(ids(f.snapshots(["--host", "beta"])), vec![s2.clone()]);
    assert_eq!(
        ids(f.snapshots(["--host", "alpha"])),
        sorted(vec![&s1, &s3])
    );
    assert_eq!(
        ids(f.snapshots(["--host", "alpha", "--tag", "daily,offsite"])),
        vec![s3.clone()]
    );
    assert!(f.snapshots(["--host", "gamma"]).is_empty());
    assert!(f.snapshots(["--tag", "nope"]).is_empty());
    assert_eq!(
        ids(f.snapshots(["--path", other.to_str().unwrap()])),
        vec![s3.clone()]
    );

    // `latest` honours the filters.
    let l = f
        .ok(["ls", "latest", "--host", "beta", "--json"])
        .json_lines();
    assert_eq!(l[0]["id"].as_str(), Some(s2.as_str()));
}

#[test]
fn recorded_time_and_latest_at_time_select_snapshots() {
    let f = Fixture::new();
    let file = f.path("src/file");
    write(&file, b"old content");
    let old = snap_id(&f.backup([
        f.path("src").as_os_str(),
        "--time".as_ref(),
        "2020-01-02T03:04:05Z".as_ref(),
    ]));
    write(&file, b"new content, longer");
    let new = snap_id(&f.backup([
        f.path("src").as_os_str(),
        "--time".as_ref(),
        "2021-06-07T08:09:10.5+02:00".as_ref(),
    ]));

    let snaps = f.all_snapshots();
    assert_eq!(snaps.len(), 2);
    let by_id = |id: &str| snaps.iter().find(|s| s["id"] == id).unwrap().clone();
    assert_eq!(time_of(&by_id(&old)), rfc3339("2020-01-02T03:04:05Z"));
    assert_eq!(
        time_of(&by_id(&new)),
        rfc3339("2021-06-07T08:09:10.5+02:00")
    );

    // latest@TIME: the newest at or before TIME.
    let pick = |sel: &str| -> String {
        f.ok(["ls", sel, "--json"]).json_lines()[0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(pick("latest@2020-06-01T00:00:00Z"), old);
    assert_eq!(pick("latest@2020-01-02T03:04:05Z"), old, "at exactly TIME");
    assert_eq!(pick("latest@2022-01-01T00:00:00Z"), new);
    assert_eq!(pick("latest"), new);
    let r = f.run(["ls", "latest@2019-01-01T00:00:00Z"]);
    r.fails(1);

    // --as-of on ls, dump and restore; latest@TIME:PATH for dump.
    let l = f
        .ok(["ls", "latest", "--as-of", "2020-12-31T00:00:00Z", "--json"])
        .json_lines();
    assert_eq!(l[0]["id"].as_str(), Some(old.as_str()));
    let out = f.ok([
        "dump".as_ref(),
        spec("latest@2020-12-31T00:00:00Z", &file).as_os_str(),
    ]);
    assert_eq!(out.stdout, b"old content");
    let out = f.ok([
        "dump".as_ref(),
        spec("latest", &file).as_os_str(),
        "--as-of".as_ref(),
        "2020-12-31T00:00:00Z".as_ref(),
    ]);
    assert_eq!(out.stdout, b"old content");
    let target = f.path("restored");
    f.ok([
        "restore".as_ref(),
        spec("latest", &file).as_os_str(),
        "--as-of".as_ref(),
        "2020-12-31T00:00:00Z".as_ref(),
        "--target".as_ref(),
        target.as_os_str(),
    ]);
    assert_eq!(std::fs::read(target.join("file")).unwrap(), b"old content");
}

#[test]
fn dry_run_writes_nothing() {
    let f = Fixture::new();
    write(&f.path("src/a"), &pseudo_random(70, 2 * MIB));
    write(&f.path("src/b"), b"b");
    let count = |d: &str| dir_files(&f.repo.join(d));
    let before = (count("data"), count("index"), count("snapshots"));
    let v = f.backup([f.path("src").as_os_str(), "--dry-run".as_ref()]);
    assert_eq!(v["dry_run"], true, "{v}");
    assert!(v["snapshot_id"].is_null(), "{v}");
    assert_eq!(stat(&v, "total_files"), 2, "{v}");
    assert!(stat(&v, "data_blobs_added") >= 2, "{v}");
    assert_eq!(
        (count("data"), count("index"), count("snapshots")),
        before,
        "a dry run wrote to the repository"
    );
    assert!(f.all_snapshots().is_empty());

    // A real backup afterwards stores everything (the dry run did not
    // leave the index believing the blobs exist).
    let v = f.backup([f.path("src")]);
    assert!(stat(&v, "data_blobs_added") >= 2, "{v}");
    assert!(count("data") > before.0);
    let out = f.ok([
        "dump".as_ref(),
        spec("latest", &f.path("src/a")).as_os_str(),
    ]);
    assert!(out.stdout == pseudo_random(70, 2 * MIB));
}

#[test]
fn excludes_leave_out_matching_paths() {
    let f = Fixture::new();
    let src = f.path("src");
    for p in [
        "keep.txt",
        "drop.tmp",
        "sub/keep2.txt",
        "sub/drop2.tmp",
        "app.log",
        "APP.LOG",
        "Mixed.Log",
        "notes.logx",
        "secret/inner.txt",
        "sub/secret/inner.txt",
        "build/out/x",
        "build/keep",
        "cache/CACHEDIR.TAG",
        "cache/blob",
        "cache/nested/deep",
        "fakecache/CACHEDIR.TAG",
        "fakecache/kept",
    ] {
        write(&src.join(p), b"x");
    }
    write(
        &src.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n",
    );
    write(&src.join("fakecache/CACHEDIR.TAG"), b"not a signature");
    let exclude_file = f.path("excludes");
    write(&exclude_file, b"# comment line\n\n  secret  \nbuild/out\n");

    let id = snap_id(&f.backup([
        src.as_os_str(),
        "--exclude".as_ref(),
        "*.tmp".as_ref(),
        "--exclude-file".as_ref(),
        exclude_file.as_os_str(),
        "--iexclude".as_ref(),
        "*.LOG".as_ref(),
        "--exclude-caches".as_ref(),
    ]));
    let s = src.to_str().unwrap();
    let mut got: Vec<String> = ls_paths(&f, &spec(&id, &src))
        .into_iter()
        .map(|p| p.strip_prefix(s).unwrap_or(&p).to_string())
        .collect();
    got.sort();
    let want = [
        "",
        "/build",
        "/build/keep",
        "/cache",
        "/cache/CACHEDIR.TAG",
        "/fakecache",
        "/fakecache/CACHEDIR.TAG",
        "/fakecache/kept",
        "/keep.txt",
        "/notes.logx",
        "/sub",
        "/sub/keep2.txt",
    ];
    assert_eq!(got, want);
}

#[test]
fn keys_add_remove_and_passwd() {
    let f = Fixture::new();
    write(&f.path("src/a"), b"a");
    f.backup([f.path("src")]);
    let second = f.path("second-password");
    write(&second, b"second password\n");

    let added = f
        .ok([
            "key".as_ref(),
            "add".as_ref(),
            "--new-password-file".as_ref(),
            second.as_os_str(),
            "--kdf-memory".as_ref(),
            "8".as_ref(),
            "--kdf-iterations".as_ref(),
            "1".as_ref(),
            "--json".as_ref(),
        ])
        .json();
    let new_id = added["id"].as_str().unwrap().to_string();

    // The second password opens the repository (trailing newline stripped).
    let mut c = f.command_with_password("second password");
    c.args(["snapshots", "--json"]);
    let r = run_command(c);
    r.code(0);
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let keys = f.ok(["key", "list", "--json"]).json();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys.iter().filter(|k| k["current"] == true).count(),
        1,
        "{keys:?}"
    );
    let first_id = keys.iter().find(|k| k["id"] != new_id.as_str()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The key in use cannot be removed.
    let line = f.run(["key", "remove", &first_id]).fails(1);
    assert!(line.contains("in use"), "{line}");
    // Removing the second key locks the second password out.
    f.ok(["key", "remove", &new_id[..12]]);
    let mut c = f.command_with_password("second password");
    c.arg("snapshots");
    run_command(c).fails(12);
    assert_eq!(
        f.ok(["key", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // passwd: the new password works, the old one no longer does.
    let third = f.path("third-password");
    write(&third, b"third password");
    f.ok([
        "key".as_ref(),
        "passwd".as_ref(),
        "--new-password-file".as_ref(),
        third.as_os_str(),
        "--kdf-memory".as_ref(),
        "8".as_ref(),
        "--kdf-iterations".as_ref(),
        "1".as_ref(),
    ]);
    f.run(["snapshots"]).fails(12);
    let mut c = f.command_with_password("third password");
    c.args(["snapshots", "--json"]);
    let r = run_command(c);
    r.code(0);
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let mut c = f.command_with_password("third password");
    c.args([
        "dump".as_ref(),
        spec("latest", &f.path("src/a")).as_os_str(),
    ]);
    let r = run_command(c);
    r.code(0);
    assert_eq!(r.stdout, b"a");

    // Password from a file and from a command work too.
    let pwfile = f.path("pwfile");
    write(&pwfile, b"third password\n");
    let mut c = bare_command();
    c.arg("-r")
        .arg(&f.repo)
        .arg("--password-file")
        .arg(&pwfile)
        .arg("snapshots");
    run_command(c).code(0);
    let mut c = bare_command();
    c.arg("-r")
        .arg(&f.repo)
        .args(["--password-command", "echo third password", "snapshots"]);
    run_command(c).code(0);
    // And the repository from CAIRN_REPOSITORY.
    let mut c = bare_command();
    c.env("CAIRN_REPOSITORY", &f.repo)
        .env("CAIRN_PASSWORD", "third password")
        .arg("snapshots");
    run_command(c).code(0);
}

#[test]
fn cat_shows_repository_objects() {
    let f = Fixture::new();
    write(&f.path("src/a"), b"a");
    let id = snap_id(&f.backup([f.path("src")]));
    let config = f.ok(["cat", "config"]).json();
    let ch = &config["chunker"];
    let (min, avg, max) = (
        ch["min_size"].as_u64().unwrap(),
        ch["avg_size"].as_u64().unwrap(),
        ch["max_size"].as_u64().unwrap(),
    );
    assert!(min > 0 && min <= avg && avg <= max, "{config}");
    assert_eq!(max, 8 << 20, "{config}");
    assert_eq!(config["version"], 1, "{config}");

    let snap = f.ok(["cat", "snapshot", &id]).json();
    assert_eq!(snap["id"].as_str(), Some(id.as_str()));
    let short = f.ok(["cat", "snapshot", &id[..8]]).json();
    assert_eq!(short, snap);

    let tree = f
        .ok([
            "cat".as_ref(),
            "tree".as_ref(),
            spec(&id, &f.path("src")).as_os_str(),
        ])
        .json();
    let names: Vec<&str> = tree["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a"]);

    let keys = f.ok(["key", "list", "--json"]).json();
    let key_id = keys[0]["id"].as_str().unwrap().to_string();
    let key = f.ok(["cat", "key", &key_id]).json();
    assert!(key["kdf"].is_object(), "{key}");

    let pack = files_by_size(&f.repo.join("data"))[0].0.clone();
    let pack_id = pack.file_name().unwrap().to_str().unwrap().to_string();
    let p = f.ok(["cat", "pack", &pack_id]).json();
    assert!(!p["blobs"].as_array().unwrap().is_empty(), "{p}");

    let idx = files_by_size(&f.repo.join("index"))[0].0.clone();
    let idx_id = idx.file_name().unwrap().to_str().unwrap().to_string();
    let i = f.ok(["cat", "index", &idx_id]).json();
    assert!(!i["packs"].as_array().unwrap().is_empty(), "{i}");

    let line = f.run(["cat", "nonsense"]).fails(1);
    assert!(line.contains("nonsense"), "{line}");
}

#[test]
fn ls_lists_names_and_long_format() {
    let f = Fixture::new();
    let src = f.path("src");
    write(&src.join("plain.txt"), b"12345");
    write(&src.join("dir/inner"), b"x");
    std::os::unix::fs::symlink("plain.txt", src.join("link")).unwrap();
    chmod(&src.join("plain.txt"), 0o640);
    let id = snap_id(&f.backup([&src]));

    let r = f.ok(["ls".as_ref(), spec(&id, &src).as_os_str()]);
    let s = src.to_str().unwrap();
    let lines: Vec<String> = r.stdout_str().lines().map(String::from).collect();
    assert_eq!(
        lines,
        [
            s.to_string(),
            format!("{s}/dir"),
            format!("{s}/dir/inner"),
            format!("{s}/link"),
            format!("{s}/plain.txt"),
        ]
    );

    let r = f.ok(["ls".as_ref(), spec(&id, &src).as_os_str(), "-l".as_ref()]);
    let out = r.stdout_str();
    let plain = out
        .lines()
        .find(|l| l.ends_with("/plain.txt"))
        .unwrap_or_else(|| panic!("plain.txt missing from ls -l: {out}"));
    assert!(plain.starts_with("-rw-r-----"), "{plain}");
    assert!(plain.contains(" 5 "), "size missing: {plain}");
    let link = out.lines().find(|l| l.contains("/link")).unwrap();
    assert!(link.starts_with('l'), "{link}");
    assert!(link.ends_with("-> plain.txt"), "{link}");
    let dir = out.lines().find(|l| l.ends_with("/dir")).unwrap();
    assert!(dir.starts_with('d'), "{dir}");

    // The whole snapshot lists the source's parents too.
    let all = ls_paths(&f, OsStr::new(&id));
    assert_eq!(all[0], "/");
    assert!(all.contains(&format!("{s}/dir/inner")), "{all:?}");
}

#[test]
fn version_prints_the_version() {
    let mut c = bare_command();
    c.arg("version");
    let r = run_command(c);
    r.code(0);
    let out = r.stdout_str();
    assert!(out.starts_with("cairn "), "{out}");
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
    let mut c = bare_command();
    c.arg("--version");
    let r = run_command(c);
    r.code(0);
    assert!(r.stdout_str().contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn parent_option_and_snapshot_relations() {
    let f = Fixture::new();
    let src = f.path("src");
    write(&src.join("a"), &pseudo_random(80, MIB));
    let s1 = snap_id(&f.backup([&src]));
    let s2 = f.backup([&src]);
    assert_eq!(s2["parent"].as_str(), Some(s1.as_str()));
    // An explicit parent by prefix.
    let s3 = f.backup([src.as_os_str(), "--parent".as_ref(), s1[..10].as_ref()]);
    assert_eq!(s3["parent"].as_str(), Some(s1.as_str()), "{s3}");
    assert_eq!(stat(&s3, "bytes_read"), 0, "{s3}");
    // Another host has no parent.
    let s4 = f.backup([src.as_os_str(), "--host".as_ref(), "elsewhere".as_ref()]);
    assert!(s4["parent"].is_null(), "{s4}");

    // snapshots --json records the relation, usable as a selector.
    let snaps = f.all_snapshots();
    let second = snaps
        .iter()
        .find(|s| s["id"] == snap_id(&s2).as_str())
        .unwrap();
    assert_eq!(
        second["parent"].as_str(),
        Some(s1.as_str()),
        "snapshots --json gives the parent as {} instead of the parent's ID",
        second["parent"]
    );
    assert!(
        second["tree"].is_string(),
        "snapshots --json gives the tree as {} instead of a hex ID",
        second["tree"]
    );
}

#[test]
fn closed_stdout_does_not_panic() {
    let f = Fixture::new();
    let src = f.path("src");
    write(&src.join("big"), &pseudo_random(100, 3 * MIB));
    for i in 0..50 {
        write(&src.join(format!("f{i}")), b"x");
    }
    let id = snap_id(&f.backup([&src]));
    let pack = files_by_size(&f.repo.join("data"))[0].0.clone();
    let pack_id = pack.file_name().unwrap().to_str().unwrap().to_string();
    let big = spec(&id, &src.join("big"));
    let cases: Vec<Vec<&OsStr>> = vec![
        vec!["snapshots".as_ref()],
        vec!["snapshots".as_ref(), "--json".as_ref()],
        vec!["ls".as_ref(), id.as_ref()],
        vec!["ls".as_ref(), id.as_ref(), "-l".as_ref()],
        vec!["cat".as_ref(), "config".as_ref()],
        vec!["cat".as_ref(), "pack".as_ref(), pack_id.as_ref()],
        vec!["dump".as_ref(), big.as_os_str()],
        vec!["key".as_ref(), "list".as_ref()],
        vec!["version".as_ref()],
    ];
    let mut panics = Vec::new();
    for args in cases {
        let mut c = f.command();
        c.args(&args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        // Close the reading end before cairn writes, like `| head -0`.
        drop(child.stdout.take());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        if err.contains("panicked") || status.code() == Some(101) {
            let first = err.lines().find(|l| l.contains("panicked")).unwrap_or("");
            panics.push(format!("cairn {args:?}: {status}: {first}"));
        }
    }
    assert!(
        panics.is_empty(),
        "with stdout closed, these panicked:\n{}",
        panics.join("\n")
    );
}

#[test]
fn one_file_system_does_not_cross_mount_points() {
    let f = Fixture::new();
    let src = f.path("src");
    write(&src.join("here"), b"on the source file system");
    let Some(_mount) = Mount::tmpfs(&src.join("mnt"), "8m") else {
        eprintln!("note: cannot mount a tmpfs here; --one-file-system is not tested");
        return;
    };
    write(&src.join("mnt/elsewhere"), b"on another file system");
    let s = src.to_str().unwrap();

    let id = snap_id(&f.backup([src.as_os_str(), "-x".as_ref()]));
    let paths = ls_paths(&f, &spec(&id, &src));
    assert_eq!(
        paths,
        [s.to_string(), format!("{s}/here"), format!("{s}/mnt")],
        "with -x"
    );
    let id = snap_id(&f.backup([&src]));
    let paths = ls_paths(&f, &spec(&id, &src));
    assert!(
        paths.contains(&format!("{s}/mnt/elsewhere")),
        "without -x: {paths:?}"
    );
}

/// The nice value and I/O priority of every thread of process `pid`.
fn thread_priorities(pid: u32) -> Vec<(String, i64, i64)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let tid: i32 = t.file_name().to_string_lossy().parse().unwrap();
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // Fields after the parenthesised name: state is field 3, nice 19.
        let close = stat.rfind(')').unwrap();
        let name = stat[stat.find('(').unwrap() + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let nice: i64 = fields[16].parse().unwrap();
        // Safety: ioprio_get only reads the thread's I/O priority.
        let ioprio = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, tid) };
        out.push((name, nice, ioprio));
    }
    out
}

/// Starts a stdin backup, waits until its worker threads exist, and
/// returns every thread's priorities; then lets the backup finish.
fn priorities_of_a_backup(f: &Fixture, flag: bool, env: bool) -> Vec<(String, i64, i64)> {
    let mut c = f.command();
    if flag {
        c.arg("--low-priority");
    }
    if env {
        c.env("CAIRN_LOW_PRIORITY", "1");
    }
    c.args(["backup", "--stdin", "--stdin-filename", "p.bin", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let pid = child.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut seen = thread_priorities(pid);
    while seen.iter().filter(|t| t.0 == "cairn-io").count() == 0 {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("backup ended before reading its input ({status}): {err}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no I/O threads started: {seen:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        seen = thread_priorities(pid);
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&pseudo_random(61, MIB)).unwrap();
    drop(stdin);
    let out = wait_run(child, "cairn backup --stdin");
    assert!(out.code(0).stderr.is_empty(), "{}", out.stderr);
    seen
}

#[test]
fn low_priority_puts_every_thread_in_the_background() {
    let f = Fixture::new();
    // Safety: reads this thread's nice value and I/O priority.
    let (own_nice, own_io) = unsafe {
        (
            i64::from(libc::getpriority(libc::PRIO_PROCESS, 0)),
            libc::syscall(libc::SYS_ioprio_get, 1, 0),
        )
    };
    let normal = priorities_of_a_backup(&f, false, false);
    assert!(normal.len() > 1, "{normal:?}");
    for (name, nice, io) in &normal {
        assert_eq!(
            (*nice, *io),
            (own_nice, own_io),
            "thread {name} of a normal run"
        );
    }
    // Idle class (3) in the class bits, from the flag and from the
    // environment alike.
    let idle = 3i64 << 13;
    for (flag, env) in [(true, false), (false, true)] {
        let low = priorities_of_a_backup(&f, flag, env);
        assert!(low.len() > 1, "{low:?}");
        for (name, nice, io) in &low {
            assert_eq!(
                (*nice, *io),
                (19, idle),
                "thread {name} with flag={flag} env={env}"
            );
        }
    }
    assert_eq!(f.all_snapshots().len(), 3);
}

/// `-v` logs every storage request on stderr, one line each, with the
/// bytes moved and the outcome; what it logs is what is in the repository.
#[test]
fn verbose_logs_every_storage_request() {
    let f = Fixture::new();
    let src = f.path("src");
    write(&src.join("a"), &pseudo_random(62, 300 << 10));
    write(&src.join("b"), b"small");
    let quiet = f.ok([OsStr::new("backup"), src.as_os_str()]);
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);

    write(&src.join("c"), &pseudo_random(63, 200 << 10));
    let r = f.ok([OsStr::new("-v"), OsStr::new("backup"), src.as_os_str()]);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(
        lines.iter().all(|l| l.starts_with("storage: ")),
        "{}",
        r.stderr
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("storage: read config -> ")));
    // Every logged upload is in the repository with the logged size.
    let mut uploads = 0;
    for l in &lines {
        let Some(rest) = l.strip_prefix("storage: write ") else {
            continue;
        };
        let (path, rest) = rest.split_once(" (").unwrap();
        let bytes: u64 = rest.split_once(" B)").unwrap().0.parse().unwrap();
        assert!(rest.contains("-> ok in "), "{l}");
        if path.starts_with("locks/") {
            continue;
        }
        let on_disk = std::fs::metadata(f.repo.join(path)).unwrap().len();
        assert_eq!(on_disk, bytes, "{l}");
        uploads += 1;
    }
    // At least a data pack, an index and the snapshot.
    for dir in ["data/", "index/", "snapshots/"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("storage: write {dir}"))),
            "no upload to {dir}: {}",
            r.stderr
        );
    }
    assert!(uploads >= 3);

    // A request that fails is logged with its error.
    let pack = lines
        .iter()
        .find_map(|l| l.strip_prefix("storage: write data/"))
        .map(|rest| format!("data/{}", rest.split_once(' ').unwrap().0))
        .unwrap();
    std::fs::remove_file(f.repo.join(&pack)).unwrap();
    let target = f.path("out");
    let r = f.run([
        OsStr::new("-v"),
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
    r.no_panic();
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.starts_with(&format!("storage: read {pack} ")) && l.contains("-> error: ")),
        "{}",
        r.stderr
    );
}
