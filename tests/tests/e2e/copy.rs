//! `cairn copy` between local repositories: snapshots arrive with every
//! file, attribute and database intact under the target's own keys; copies
//! already made are skipped and cost no reads; selection and dry runs;
//! errors that name the repository; and a copy killed at many points
//! leaves a target that `check` passes and the next run completes.
//! (Copies to and from S3 and SFTP are in remote.rs.)

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

const OTHER_PASSWORD: &str = "a different password for the copy";

/// A second, empty repository with its own password.
fn target() -> Fixture {
    let mut f = Fixture::uninit();
    f.password = OTHER_PASSWORD.to_string();
    f.init();
    f
}

/// `cairn copy --json ARGS` into `to` from `from`; the exit code and the
/// parsed report (when it succeeded).
fn copy(to: &Fixture, from: &Fixture, args: &[&str]) -> Run {
    let mut c = to.command();
    c.arg("copy")
        .arg("--from-repo")
        .arg(&from.repo)
        .env("CAIRN_FROM_PASSWORD", &from.password)
        .args(args);
    run_command(c)
}

fn copy_ok(to: &Fixture, from: &Fixture, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let r = copy(to, from, &a);
    r.code(0);
    r.json()
}

fn count(v: &Value, key: &str) -> usize {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .len()
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// A SQLite database large enough that its pages are stored in content
/// lists (more than 128 pages).
fn make_database(path: &Path, rows: u32) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let db = rusqlite::Connection::open(path).expect("open database");
    db.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB);",
    )
    .expect("schema");
    db.execute(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<?1)
         INSERT INTO t(v) SELECT randomblob(200) FROM c",
        [rows],
    )
    .expect("rows");
}

/// What identifies a snapshot across repositories.
fn identity(s: &Value) -> (String, String, String, String, String) {
    (
        s["time"].as_str().expect("time").to_string(),
        s["hostname"].as_str().expect("hostname").to_string(),
        s["username"].as_str().expect("username").to_string(),
        s["paths"].to_string(),
        s["tags"].to_string(),
    )
}

fn restore(f: &Fixture, spec: &std::ffi::OsStr, target: &Path) {
    let mut c = f.command();
    c.arg("restore")
        .arg(spec)
        .arg("--target")
        .arg(target)
        .arg("--verify");
    run_command(c).code(0);
}

fn dump(f: &Fixture, spec: &std::ffi::OsStr) -> Vec<u8> {
    let mut c = f.command();
    c.arg("dump").arg(spec);
    let r = run_command(c);
    r.code(0);
    r.stdout
}

fn check_read_data(f: &Fixture) {
    let r = f.ok(["check", "--read-data"]);
    assert!(
        r.stdout_str().contains("no errors"),
        "check: {}",
        r.stdout_str()
    );
}

#[test]
fn copy_replicates_snapshots_and_later_copies_read_only_what_changed() {
    let a = Fixture::new();
    let b = target();
    let src = a.path("src");
    build_tree(&src, 9 * MIB);
    let db = a.path("db/app.db");
    make_database(&db, 20_000);
    let first = snap_id(&a.backup([
        src.as_os_str(),
        "--sqlite".as_ref(),
        db.as_os_str(),
        "--tag".as_ref(),
        "one".as_ref(),
    ]));
    let first_db = dump(&a, &spec(&first, &db));
    let first_tree = a.path("first");
    restore(&a, first.as_ref(), &first_tree);

    write(&src.join("new-file"), &pseudo_random(21, 700_000));
    write(&src.join("many/d1/f001.txt"), b"changed");
    fs::remove_file(src.join("dup-a")).expect("remove");
    make_database(&db, 500);
    snap_id(&a.backup([src.as_os_str(), "--sqlite".as_ref(), db.as_os_str()]));

    let rep = copy_ok(&b, &a, &[]);
    assert_eq!(count(&rep, "copied"), 2, "{rep}");
    assert_eq!(count(&rep, "skipped"), 0, "{rep}");
    assert!(num(&rep, "data_blobs_added") > 0, "{rep}");

    // The same snapshots, under the target's password.
    let ids = |f: &Fixture| {
        let mut v: Vec<_> = f.all_snapshots().iter().map(identity).collect();
        v.sort();
        v
    };
    assert_eq!(ids(&a), ids(&b));
    let b_first = b.snapshots(["--tag", "one"]);
    assert_eq!(b_first.len(), 1, "{b_first:?}");
    assert_eq!(
        b_first[0]["copy_of"]["snapshot"],
        first.as_str(),
        "{b_first:?}"
    );
    let b_first = b_first[0]["id"].as_str().expect("id").to_string();
    assert_ne!(b_first, first, "a copy is a snapshot of the target's own");

    // Every file, attribute and database page arrived.
    let latest = b.path("latest");
    restore(&b, "latest".as_ref(), &latest);
    assert_same_tree(&src, &under(&latest, &src));
    assert_eq!(
        dump(&b, &spec("latest", &db)),
        dump(&a, &spec("latest", &db))
    );
    let copied_first = b.path("copied-first");
    restore(&b, b_first.as_ref(), &copied_first);
    assert_same_tree(&under(&first_tree, &src), &under(&copied_first, &src));
    assert_eq!(dump(&b, &spec(&b_first, &db)), first_db);
    let restored_db = b.path("db-restore");
    restore(&b, &spec(&b_first, &db), &restored_db);
    assert_eq!(fs::read(restored_db.join("app.db")).expect("db"), first_db);
    check_read_data(&b);

    // Nothing new: nothing copied, nothing read.
    let rep = copy_ok(&b, &a, &[]);
    assert_eq!(count(&rep, "copied"), 0, "{rep}");
    assert_eq!(count(&rep, "skipped"), 2, "{rep}");
    assert_eq!(num(&rep, "blobs_read"), 0, "{rep}");

    // One small change: the next copy reads the changed file's blob and
    // the database pages that changed, not the rest.
    write(&src.join("many/d2/f002.txt"), b"changed again");
    make_database(&db, 10);
    a.backup([src.as_os_str(), "--sqlite".as_ref(), db.as_os_str()]);
    let rep = copy_ok(&b, &a, &[]);
    assert_eq!(count(&rep, "copied"), 1, "{rep}");
    assert_eq!(count(&rep, "skipped"), 2, "{rep}");
    assert!(
        num(&rep, "blobs_read") <= 8,
        "an incremental copy read {} blobs: {rep}",
        num(&rep, "blobs_read")
    );
    assert!(num(&rep, "bytes_read") < 200_000, "{rep}");
    let latest2 = b.path("latest2");
    restore(&b, "latest".as_ref(), &latest2);
    assert_same_tree(&src, &under(&latest2, &src));
    assert_eq!(
        dump(&b, &spec("latest", &db)),
        dump(&a, &spec("latest", &db))
    );

    // Copying back finds every snapshot already there.
    let rep = copy_ok(&a, &b, &[]);
    assert_eq!(count(&rep, "copied"), 0, "{rep}");
    assert_eq!(count(&rep, "skipped"), 3, "{rep}");
    check_read_data(&b);
    check_read_data(&a);
}

#[test]
fn copy_selects_snapshots_and_a_dry_run_stores_nothing() {
    let a = Fixture::new();
    let b = target();
    let src = a.path("src");
    let mut ids = Vec::new();
    for (i, tag) in ["x", "y", "z"].iter().enumerate() {
        write(
            &src.join(format!("f{i}")),
            &pseudo_random(i as u64, 300_000),
        );
        ids.push(snap_id(&a.backup([
            src.as_os_str(),
            "--tag".as_ref(),
            tag.as_ref(),
        ])));
    }

    let rep = copy_ok(&b, &a, &["--dry-run"]);
    assert_eq!(count(&rep, "copied"), 3, "{rep}");
    assert!(rep["copied"][0]["target"].is_null(), "{rep}");
    assert!(b.all_snapshots().is_empty());
    assert_eq!(dir_files(&b.repo.join("data")), 0, "a dry run stored packs");
    assert_eq!(
        dir_files(&b.repo.join("index")),
        0,
        "a dry run stored an index"
    );

    let rep = copy_ok(&b, &a, &["--tag", "y"]);
    assert_eq!(count(&rep, "copied"), 1, "{rep}");
    assert_eq!(b.snapshots(["--tag", "y"]).len(), 1);
    assert_eq!(b.all_snapshots().len(), 1);

    let rep = copy_ok(&b, &a, &[&ids[2][..10]]);
    assert_eq!(count(&rep, "copied"), 1, "{rep}");
    assert_eq!(rep["copied"][0]["source"], ids[2].as_str(), "{rep}");

    let rep = copy_ok(&b, &a, &[]);
    assert_eq!(count(&rep, "copied"), 1, "{rep}");
    assert_eq!(count(&rep, "skipped"), 2, "{rep}");
    assert_eq!(b.all_snapshots().len(), 3);
    // Each copy has the files its source snapshot had.
    for tag in ["x", "y", "z"] {
        let s = b.snapshots(["--tag", tag]);
        let mut c = b.command();
        c.args(["ls", "--json", s[0]["id"].as_str().expect("id")]);
        let r = run_command(c);
        r.code(0);
        let n = r.stdout_str().matches("\"name\":\"f").count();
        let expected = 1 + ["x", "y", "z"].iter().position(|t| *t == tag).expect("tag");
        assert_eq!(n, expected, "snapshot tagged {tag}: {}", r.stdout_str());
    }
    check_read_data(&b);
}

#[test]
fn copy_errors_name_the_repository_and_change_nothing() {
    let a = Fixture::new();
    let b = target();
    let src = a.path("src");
    write(&src.join("f"), b"content");
    a.backup([src.as_os_str()]);

    // Wrong source password: exit 12, naming the source.
    let mut c = b.command();
    c.arg("copy")
        .arg("--from-repo")
        .arg(&a.repo)
        .env("CAIRN_FROM_PASSWORD", "wrong");
    let line = run_command(c).fails(12);
    assert!(
        line.contains(&a.repo.display().to_string()) && line.contains("source"),
        "{line}"
    );

    // No source password at all.
    let mut c = b.command();
    c.arg("copy").arg("--from-repo").arg(&a.repo);
    let line = run_command(c).fails(1);
    assert!(line.contains("CAIRN_FROM_PASSWORD"), "{line}");

    // Missing source, missing target.
    let missing = a.path("no-such-repo");
    let mut c = b.command();
    c.arg("copy")
        .arg("--from-repo")
        .arg(&missing)
        .env("CAIRN_FROM_PASSWORD", PASSWORD);
    let line = run_command(c).fails(10);
    assert!(line.contains(&missing.display().to_string()), "{line}");
    let mut c = bare_command();
    c.arg("-r")
        .arg(&missing)
        .env("CAIRN_PASSWORD", PASSWORD)
        .arg("copy")
        .arg("--from-repo")
        .arg(&a.repo)
        .env("CAIRN_FROM_PASSWORD", PASSWORD);
    let line = run_command(c).fails(10);
    assert!(line.contains(&missing.display().to_string()), "{line}");

    // A repository onto itself.
    let line = copy(&a, &a, &[]).fails(1);
    assert!(line.contains("same repository"), "{line}");

    // An unknown snapshot.
    let line = copy(&b, &a, &["deadbeef"]).fails(1);
    assert!(line.contains("deadbeef"), "{line}");

    assert!(b.all_snapshots().is_empty());
    check_read_data(&b);
    assert_eq!(a.all_snapshots().len(), 1);
}

/// Runs a copy into `to`, killing it with SIGKILL after `delay` unless it
/// ended first. True when it was killed.
fn copy_and_kill(to: &Fixture, from: &Fixture, delay: Duration) -> bool {
    let mut c = to.command();
    c.arg("copy")
        .arg("--from-repo")
        .arg(&from.repo)
        .env("CAIRN_FROM_PASSWORD", &from.password);
    kill_after(c, delay)
}

#[test]
fn copy_killed_at_any_point_leaves_a_target_that_checks_and_completes() {
    let a = Fixture::new();
    let src = a.path("src");
    for i in 0..12u64 {
        write(
            &src.join(format!("d{}/f{i}", i % 3)),
            &pseudo_random(500 + i, 4 * MIB + i as usize * 1000),
        );
    }
    a.backup([src.as_os_str()]);
    write(&src.join("later"), &pseudo_random(99, 3 * MIB));
    a.backup([src.as_os_str()]);

    // How long an undisturbed copy takes, to spread the kills over it.
    let probe = target();
    let t0 = Instant::now();
    copy_ok(&probe, &a, &[]);
    let full = t0.elapsed();

    let b = target();
    let mut killed = 0;
    for i in 1..=8u32 {
        let delay = full.mul_f64(f64::from(i) / 9.0);
        if copy_and_kill(&b, &a, delay) {
            killed += 1;
        }
        let r = b.run(["check"]);
        assert_eq!(
            r.code,
            0,
            "check after a copy killed at {delay:?}: {}{}",
            r.stdout_str(),
            r.stderr
        );
    }
    assert!(killed >= 4, "only {killed} of 8 copies were interrupted");
    copy_ok(&b, &a, &[]);
    assert_eq!(b.all_snapshots().len(), 2);
    let out = b.path("restore");
    restore(&b, "latest".as_ref(), &out);
    assert_same_tree(&src, &under(&out, &src));
    check_read_data(&b);
}
