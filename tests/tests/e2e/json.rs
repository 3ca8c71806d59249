//! Every command's `--json` output is JSON: one document, or one document a
//! line for `ls`.

use std::ffi::OsStr;

use serde_json::Value;

use crate::common::*;

#[test]
fn every_json_output_parses() {
    let f = Fixture::uninit();
    let init = f
        .ok([
            "init",
            "--kdf-memory",
            "8",
            "--kdf-iterations",
            "1",
            "--json",
        ])
        .json();
    assert!(init["id"].is_string(), "init --json: {init}");

    let src = f.path("src");
    write(&src.join("a"), b"a");
    write(&src.join("sub/b"), &pseudo_random(90, 100_000));
    std::os::unix::fs::symlink("a", src.join("link")).unwrap();
    let backup = f.backup([&src]);
    let id = snap_id(&backup);
    let dry = f.backup([src.as_os_str(), OsStr::new("--dry-run")]);
    assert_eq!(dry["dry_run"], true);

    let snaps = f.all_snapshots();
    assert_eq!(snaps.len(), 1);
    for field in [
        "id", "short_id", "time", "hostname", "username", "paths", "tags", "tree", "summary",
    ] {
        assert!(
            !snaps[0][field].is_null(),
            "snapshots --json lacks {field}: {}",
            snaps[0]
        );
    }
    assert!(snaps[0].get("parent").is_some(), "no parent field");
    assert!(id.starts_with(snaps[0]["short_id"].as_str().unwrap()));

    let ls = f.ok(["ls", &id, "--json"]).json_lines();
    assert_eq!(ls[0]["id"].as_str(), Some(id.as_str()));
    assert!(ls[1..].iter().all(|n| n["path"].is_string()), "{ls:?}");
    let ls_l = f.ok(["ls", &id, "--json", "--long"]).json_lines();
    assert_eq!(ls_l.len(), ls.len());

    let target = f.path("restore");
    let restore = f
        .ok([
            OsStr::new("restore"),
            OsStr::new(&id),
            OsStr::new("--target"),
            target.as_os_str(),
            OsStr::new("--verify"),
            OsStr::new("--json"),
        ])
        .json();
    assert_eq!(restore["message_type"], "summary", "{restore}");
    assert!(
        restore["errors"].as_array().unwrap().is_empty(),
        "{restore}"
    );

    let keys = f.ok(["key", "list", "--json"]).json();
    assert!(keys.as_array().is_some_and(|k| k.len() == 1), "{keys}");
    let pw = f.path("pw2");
    write(&pw, b"another");
    let added = f
        .ok([
            OsStr::new("key"),
            OsStr::new("add"),
            OsStr::new("--new-password-file"),
            pw.as_os_str(),
            OsStr::new("--kdf-memory"),
            OsStr::new("8"),
            OsStr::new("--kdf-iterations"),
            OsStr::new("1"),
            OsStr::new("--json"),
        ])
        .json();
    assert!(added["id"].is_string(), "{added}");

    let version = f.ok(["version", "--json"]).json();
    assert!(version["version"].is_string(), "{version}");

    let v: Value = f.ok(["cat", "config", "--json"]).json();
    assert!(v["chunker"].is_object(), "{v}");
    let v = f.ok(["cat", "snapshot", &id, "--json"]).json();
    assert_eq!(v["id"].as_str(), Some(id.as_str()));

    // Errors under --json still go to stderr, leaving stdout empty.
    let r = f.run(["ls", "ffffffff", "--json"]);
    r.code(1);
    assert!(r.stdout.is_empty(), "{}", r.stdout_str());
    r.error_line();
}
