//! Damage and its repair: a flipped byte in a pack, a deleted pack, a
//! truncated index file and a damaged tree blob are each found by `check`,
//! which names the affected snapshots and paths; `repair` brings the
//! repository back to a state `check` passes, losing only what was
//! damaged. Also forget, find, diff and stats from the command line.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

/// Source tree: `keep/` files that must survive, and `victim/big` whose
/// data ends up in packs of its own: `keep/` is backed up first, so the
/// second backup stores only `big` (the repository's packs are 1 MiB).
fn setup() -> (Fixture, PathBuf, String) {
    let f = Fixture::uninit();
    let mut c = f.command();
    c.args([
        "init",
        "--kdf-memory",
        "8",
        "--kdf-iterations",
        "1",
        "--pack-size",
        "1",
    ]);
    run_command(c).code(0);
    let src = f.path("src");
    for i in 0..4 {
        write(
            &src.join("keep").join(format!("k{i}")),
            &pseudo_random(i, 50_000),
        );
    }
    f.backup([&src]);
    write(
        &src.join("victim").join("big"),
        &pseudo_random(99, 3_000_000),
    );
    let id = snap_id(&f.backup([&src]));
    (f, src, id)
}

fn check_json(f: &Fixture, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["check", "--json"];
    a.extend_from_slice(args);
    let r = f.run(&a);
    r.no_panic();
    (r.code, r.json())
}

fn errors(report: &Value) -> Vec<&Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|x| x["severity"] == "error")
        .collect()
}

/// Paths named as affected by any error finding.
fn affected_paths(report: &Value) -> Vec<String> {
    errors(report)
        .iter()
        .flat_map(|x| x["affected"].as_array().cloned().unwrap_or_default())
        .map(|a| a["path"].as_str().expect("path").to_string())
        .collect()
}

/// The pack holding the data blob at `offset` into `file` of snapshot.
fn data_pack_of(f: &Fixture, id: &str, file: &Path) -> String {
    let tree: Value = f
        .ok([
            "cat".into(),
            "tree".into(),
            spec(id, file.parent().expect("parent"))
                .into_string()
                .expect("utf-8"),
        ])
        .json();
    let node = tree["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == file.file_name().expect("name").to_str().expect("utf-8"))
        .expect("node")
        .clone();
    let blob = node["content"][0]
        .as_str()
        .expect("content is hex IDs")
        .to_string();
    for p in fs::read_dir(f.repo.join("data"))
        .expect("data")
        .flat_map(|d| fs::read_dir(d.expect("dir").path()).expect("sub"))
    {
        let p = p.expect("pack").path();
        let name = p
            .file_name()
            .expect("name")
            .to_str()
            .expect("utf-8")
            .to_string();
        let v: Value = f.ok(["cat", "pack", &name]).json();
        if v["blobs"]
            .as_array()
            .expect("blobs")
            .iter()
            .any(|b| b["id"] == blob.as_str())
        {
            return name;
        }
    }
    panic!("no pack holds blob {blob}");
}

fn pack_path(f: &Fixture, name: &str) -> PathBuf {
    f.repo.join("data").join(&name[..2]).join(name)
}

fn restore_keep_equal(f: &Fixture, id: &str, src: &Path) {
    let out = f.path("out-keep");
    let _ = fs::remove_dir_all(&out);
    f.ok([
        "restore".into(),
        spec(id, &src.join("keep")),
        "--target".into(),
        out.clone().into_os_string(),
    ]);
    for i in 0..4 {
        assert_eq!(
            fs::read(out.join(format!("k{i}"))).expect("restored"),
            pseudo_random(i, 50_000),
            "keep/k{i} changed"
        );
    }
}

fn latest_id(f: &Fixture) -> String {
    let s = f.all_snapshots();
    s.last().expect("a snapshot")["id"]
        .as_str()
        .expect("id")
        .to_string()
}

#[test]
fn flipped_byte_in_a_pack_is_found_traced_and_repaired() {
    let (f, src, id) = setup();
    let big = src.join("victim").join("big");
    let pack = pack_path(&f, &data_pack_of(&f, &id, &big));
    let mut b = fs::read(&pack).expect("pack");
    b[100] ^= 0x01;
    fs::write(&pack, b).expect("write");

    let (code, rep) = check_json(&f, &["--read-data"]);
    assert_ne!(code, 0, "check --read-data missed the flipped byte");
    let paths = affected_paths(&rep);
    assert!(
        paths.iter().any(|p| p.ends_with("/victim/big")),
        "affected paths {paths:?}"
    );
    assert!(errors(&rep).iter().any(|e| e["affected"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x["snapshot"] == id.as_str()))));

    f.ok(["repair", "index", "--read-data"]);
    f.ok(["repair", "snapshots", "--forget"]);
    let (code, rep) = check_json(&f, &["--read-data"]);
    assert_eq!(code, 0, "check after repair: {rep}");
    let new = latest_id(&f);
    restore_keep_equal(&f, &new, &src);
    let ls = f
        .ok(["ls".into(), spec(&new, &src.join("victim"))])
        .stdout_str();
    assert!(ls.contains("big.damaged"), "damaged file not marked: {ls}");
}

#[test]
fn deleted_pack_is_found_and_repaired() {
    let (f, src, id) = setup();
    let big = src.join("victim").join("big");
    let pack = pack_path(&f, &data_pack_of(&f, &id, &big));
    fs::remove_file(&pack).expect("delete pack");

    let (code, rep) = check_json(&f, &[]);
    assert_ne!(code, 0);
    assert!(
        errors(&rep)
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains("missing"))),
        "{rep}"
    );
    assert!(
        affected_paths(&rep)
            .iter()
            .any(|p| p.ends_with("/victim/big")),
        "{rep}"
    );

    f.ok(["repair", "index"]);
    f.ok(["repair", "snapshots", "--forget"]);
    let (code, rep) = check_json(&f, &["--read-data"]);
    assert_eq!(code, 0, "{rep}");
    restore_keep_equal(&f, &latest_id(&f), &src);
}

#[test]
fn truncated_index_is_found_and_rebuilt_losing_nothing() {
    let (f, src, id) = setup();
    let idx = fs::read_dir(f.repo.join("index"))
        .expect("index")
        .next()
        .expect("an index file")
        .expect("entry")
        .path();
    let b = fs::read(&idx).expect("read");
    fs::write(&idx, &b[..b.len() / 2]).expect("truncate");

    let (code, rep) = check_json(&f, &[]);
    assert_ne!(code, 0);
    assert!(
        errors(&rep).iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains(idx.file_name().expect("n").to_str().expect("u")))),
        "{rep}"
    );

    f.ok(["repair", "index"]);
    let (code, rep) = check_json(&f, &["--read-data"]);
    assert_eq!(code, 0, "{rep}");
    // Nothing was lost: the original snapshot restores completely.
    restore_keep_equal(&f, &id, &src);
    let out = f.path("out-big");
    f.ok([
        "restore".into(),
        spec(&id, &src.join("victim").join("big")),
        "--target".into(),
        out.clone().into_os_string(),
        "--verify".into(),
    ]);
    assert_eq!(
        fs::read(out.join("big")).expect("big"),
        pseudo_random(99, 3_000_000)
    );
}

#[test]
fn damaged_tree_blob_is_found_and_repaired() {
    let (f, src, id) = setup();
    // The victim directory's tree blob, and the pack holding it.
    let tree: Value = f
        .ok([
            "cat".into(),
            "tree".into(),
            spec(&id, &src).into_string().expect("utf-8"),
        ])
        .json();
    let victim = tree["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == "victim")
        .expect("victim")
        .clone();
    let sub = victim["subtree"].as_str().expect("subtree").to_string();
    let mut hit = None;
    for d in fs::read_dir(f.repo.join("data")).expect("data") {
        for p in fs::read_dir(d.expect("d").path()).expect("sub") {
            let p = p.expect("p").path();
            let name = p.file_name().expect("n").to_str().expect("u").to_string();
            let v: Value = f.ok(["cat", "pack", &name]).json();
            if let Some(b) = v["blobs"]
                .as_array()
                .expect("blobs")
                .iter()
                .find(|b| b["id"] == sub.as_str())
            {
                hit = Some((p.clone(), b["offset"].as_u64().expect("offset")));
            }
        }
    }
    let (pack, off) = hit.expect("pack with the tree blob");
    let mut b = fs::read(&pack).expect("pack");
    b[off as usize + 30] ^= 0x80;
    fs::write(&pack, b).expect("write");

    let (code, rep) = check_json(&f, &["--read-data"]);
    assert_ne!(code, 0);
    assert!(
        affected_paths(&rep).iter().any(|p| p.ends_with("/victim")),
        "{rep}"
    );

    f.ok(["repair", "index", "--read-data"]);
    let (code, rep) = check_json(&f, &[]);
    assert_ne!(code, 0, "the lost tree must be reported as missing");
    assert!(
        affected_paths(&rep).iter().any(|p| p.ends_with("/victim")),
        "{rep}"
    );
    f.ok(["repair", "snapshots", "--forget"]);
    let (code, rep) = check_json(&f, &["--read-data"]);
    assert_eq!(code, 0, "{rep}");
    let new = latest_id(&f);
    restore_keep_equal(&f, &new, &src);
    let ls = f.ok(["ls".into(), spec(&new, &src)]).stdout_str();
    assert!(ls.contains("victim.damaged"), "{ls}");
}

#[test]
fn forget_find_diff_stats_from_the_command_line() {
    let f = Fixture::new();
    let src = f.path("src");
    write(&src.join("a.txt"), b"one");
    let mut ids = Vec::new();
    for (i, day) in [
        "2026-01-01",
        "2026-01-02",
        "2026-01-02",
        "2026-02-10",
        "2026-03-05",
    ]
    .iter()
    .enumerate()
    {
        write(&src.join("n.txt"), format!("version {i}").as_bytes());
        ids.push(snap_id(&f.backup([
            "--time".into(),
            format!("{day}T12:0{i}:00Z"),
            src.to_string_lossy().into_owned(),
        ])));
    }
    // keep-daily 2 keeps the newest snapshot of the two newest days.
    let r = f.ok(["forget", "--keep-daily", "2", "--dry-run", "--json"]);
    let groups = r.json_lines()[0].clone();
    let keep: Vec<&str> = groups[0]["keep"]
        .as_array()
        .expect("keep")
        .iter()
        .map(|k| k["id"].as_str().expect("id"))
        .collect();
    assert_eq!(keep, vec![ids[4].as_str(), ids[3].as_str()]);
    assert_eq!(f.all_snapshots().len(), 5, "dry run removed snapshots");
    f.ok(["forget", "--keep-last", "3", "--prune"]);
    let left: Vec<String> = f
        .all_snapshots()
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(left, ids[2..].to_vec());
    let r = f.run(["check", "--read-data"]);
    r.code(0);

    let found: Value = f.ok(["find", "n.txt", "--json"]).json();
    assert_eq!(found.as_array().expect("array").len(), 3);
    let diff: Value = f.ok(["diff", &ids[2], &ids[4], "--json"]).json();
    let changed: Vec<&str> = diff
        .as_array()
        .expect("array")
        .iter()
        .filter(|d| d["change"] == "modified")
        .map(|d| d["path"].as_str().expect("p"))
        .collect();
    assert_eq!(changed.len(), 1);
    assert!(changed[0].ends_with("/n.txt"));
    let st: Value = f.ok(["stats", "--json"]).json();
    assert_eq!(st["snapshots"], 3);
    assert_eq!(st["total_files"], 6);
    assert!(st["repository_size"].as_u64().expect("size") > 0);
}
