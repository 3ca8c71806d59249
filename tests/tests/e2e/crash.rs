//! Crash safety: a backup and a prune killed with SIGKILL at many points
//! spread over their run leave a repository that `check` passes, that the
//! next run completes, and whose snapshots restore identically; backups
//! running while a prune runs lose nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

const KILL_POINTS: u32 = 20;

/// A tree of `files` files of `size` bytes in five directories.
fn make_tree(root: &Path, seed: u64, files: usize, size: usize) {
    for i in 0..files {
        let p = root.join(format!("d{}", i % 5)).join(format!("f{i}"));
        write(&p, &pseudo_random(seed + i as u64, size));
    }
}

/// Runs cairn with `args`, killing it with SIGKILL after `delay` unless it
/// finished first. Returns true when it was killed.
fn run_and_kill(f: &Fixture, repo: &Path, args: &[&str], delay: Duration) -> bool {
    let mut c = bare_command();
    c.arg("-r")
        .arg(repo)
        .env("CAIRN_PASSWORD", &f.password)
        .args(args);
    kill_after(c, delay)
}

fn timed(f: &Fixture, repo: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let mut c = bare_command();
    c.arg("-r")
        .arg(repo)
        .env("CAIRN_PASSWORD", &f.password)
        .args(args);
    run_command(c).code(0);
    start.elapsed()
}

fn cairn(f: &Fixture, repo: &Path, args: &[&str]) -> Run {
    let mut c = bare_command();
    c.arg("-r")
        .arg(repo)
        .env("CAIRN_PASSWORD", &f.password)
        .args(args);
    run_command(c)
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let t = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            fs::copy(e.path(), &t).expect("copy");
        }
    }
}

/// Asserts that every file under `expected` is restored with the same
/// bytes from `snapshot:expected`, and nothing else is.
fn assert_restores(f: &Fixture, repo: &Path, snapshot: &str, expected: &Path, scratch: &Path) {
    let _ = fs::remove_dir_all(scratch);
    let mut spec = std::ffi::OsString::from(format!("{snapshot}:"));
    spec.push(expected.as_os_str());
    let mut c = bare_command();
    c.arg("-r")
        .arg(repo)
        .env("CAIRN_PASSWORD", &f.password)
        .arg("restore")
        .arg(&spec)
        .arg("--target")
        .arg(scratch)
        .arg("--verify");
    run_command(c).code(0);
    assert_eq!(
        file_list(expected),
        file_list(scratch),
        "restored file list of {snapshot}"
    );
    for (p, _) in files_by_size(expected) {
        let rel = p.strip_prefix(expected).expect("prefix");
        assert_eq!(
            fs::read(&p).expect("read"),
            fs::read(scratch.join(rel)).expect("read restored"),
            "{}",
            rel.display()
        );
    }
}

fn check_passes(f: &Fixture, repo: &Path, what: &str) {
    let r = cairn(f, repo, &["check"]);
    assert_eq!(
        r.code,
        0,
        "check failed {what}:\n{}\n{}",
        r.stdout_str(),
        r.stderr
    );
}

#[test]
fn backup_killed_at_many_points_leaves_a_consistent_repository() {
    let f = Fixture::uninit();
    run_command({
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
        c
    })
    .code(0);
    let a = f.path("a");
    let b = f.path("b");
    make_tree(&a, 1, 20, 300_000);
    make_tree(&b, 1000, 60, 400_000);
    let s1 = snap_id(&f.backup([&a]));

    // How long a complete backup of b takes, measured on a copy.
    let probe = f.path("probe");
    copy_dir(&f.repo, &probe);
    let full = timed(&f, &probe, &["backup", b.to_str().expect("utf-8")]);
    fs::remove_dir_all(&probe).expect("rm probe");

    let mut killed = 0;
    for i in 0..KILL_POINTS {
        let at = full.mul_f64((f64::from(i) + 0.5) / f64::from(KILL_POINTS));
        if run_and_kill(&f, &f.repo, &["backup", b.to_str().expect("utf-8")], at) {
            killed += 1;
        }
        check_passes(&f, &f.repo, &format!("after killing a backup at {at:?}"));
    }
    assert!(
        killed >= KILL_POINTS / 2,
        "only {killed} of {KILL_POINTS} runs were killed before finishing"
    );
    // Killed runs may have left complete snapshots only if they finished
    // writing them; every snapshot of b must restore as b.
    let r = cairn(
        &f,
        &f.repo,
        &["backup", "--json", b.to_str().expect("utf-8")],
    );
    r.code(0);
    let s2 = snap_id(&r.json());
    check_passes(&f, &f.repo, "after the completing backup");
    cairn(&f, &f.repo, &["prune", "--instant-delete"]).code(0);
    let r = cairn(&f, &f.repo, &["check", "--read-data"]);
    assert_eq!(r.code, 0, "{}", r.stdout_str());
    assert_restores(&f, &f.repo, &s1, &a, &f.path("out1"));
    assert_restores(&f, &f.repo, &s2, &b, &f.path("out2"));
}

#[test]
fn prune_killed_at_many_points_leaves_a_consistent_repository() {
    let f = Fixture::uninit();
    run_command({
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
        c
    })
    .code(0);
    let a = f.path("a");
    let b = f.path("b");
    let c_ = f.path("c");
    make_tree(&a, 1, 20, 250_000);
    make_tree(&b, 500, 25, 250_000);
    // c shares half of a's files, so some packs end up partly used.
    make_tree(&c_, 1, 10, 250_000);
    make_tree(&c_.join("extra"), 900, 10, 250_000);
    let s1 = snap_id(&f.backup([&a]));
    let s2 = snap_id(&f.backup([&b]));
    let s3 = snap_id(&f.backup([&c_]));
    fs::remove_file(f.repo.join("snapshots").join(&s2)).expect("forget s2");
    // Unreferenced blobs in partly used packs: make a's first backup
    // partly unused too by forgetting it and keeping c.
    let pristine = f.path("pristine");
    copy_dir(&f.repo, &pristine);

    let probe = f.path("probe");
    copy_dir(&pristine, &probe);
    let full = timed(
        &f,
        &probe,
        &["prune", "--instant-delete", "--max-unused", "0%"],
    );
    fs::remove_dir_all(&probe).expect("rm probe");

    let work = f.path("work");
    let mut killed = 0;
    for i in 0..KILL_POINTS {
        let _ = fs::remove_dir_all(&work);
        copy_dir(&pristine, &work);
        let at = full.mul_f64((f64::from(i) + 0.5) / f64::from(KILL_POINTS));
        let grace: &[&str] = if i % 2 == 0 {
            &["--instant-delete"]
        } else {
            &["--keep-delete", "0s"]
        };
        let mut args = vec!["prune", "--max-unused", "0%"];
        args.extend_from_slice(grace);
        if run_and_kill(&f, &work, &args, at) {
            killed += 1;
        }
        check_passes(&f, &work, &format!("after killing a prune at {at:?}"));
        cairn(&f, &work, &args).code(0);
        let r = cairn(&f, &work, &["check", "--read-data"]);
        assert_eq!(
            r.code,
            0,
            "check --read-data after the completing prune (kill at {at:?}): {}",
            r.stdout_str()
        );
        let dropped = cairn(&f, &work, &["cat", "snapshot", &s2]);
        assert_ne!(dropped.code, 0, "the forgotten snapshot came back");
        if i % 5 == 0 {
            assert_restores(&f, &work, &s1, &a, &f.path("out1"));
            assert_restores(&f, &work, &s3, &c_, &f.path("out3"));
        }
    }
    assert!(
        killed >= KILL_POINTS / 3,
        "only {killed} of {KILL_POINTS} prunes were killed before finishing"
    );
    // The completed prune removed b's data.
    assert!(
        dir_bytes(&work.join("data")) < dir_bytes(&pristine.join("data")),
        "prune freed nothing"
    );
}

#[test]
fn backups_running_during_prune_lose_nothing() {
    let f = Fixture::uninit();
    run_command({
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
        c
    })
    .code(0);
    // History to prune.
    let old = f.path("old");
    make_tree(&old, 7, 20, 200_000);
    let s_old = snap_id(&f.backup([&old]));
    fs::remove_file(f.repo.join("snapshots").join(&s_old)).expect("forget");
    let trees: Vec<PathBuf> = (0..3).map(|i| f.path(&format!("t{i}"))).collect();
    for (i, t) in trees.iter().enumerate() {
        // Each tree shares files with the forgotten one, so a prune that
        // ignored running backups would delete data they rely on.
        make_tree(t, 7, 10, 200_000);
        make_tree(&t.join("own"), 100 * (i as u64 + 1), 8, 200_000);
    }
    let repo = f.repo.clone();
    let pw = f.password.clone();
    let handles: Vec<_> = trees
        .iter()
        .cloned()
        .map(|t| {
            let repo = repo.clone();
            let pw = pw.clone();
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for _ in 0..2 {
                    let mut c = bare_command();
                    c.arg("-r")
                        .arg(&repo)
                        .env("CAIRN_PASSWORD", &pw)
                        .args(["backup", "--json", "--retry-lock", "5m"])
                        .arg(&t);
                    let r = run_command(c);
                    r.code(0);
                    ids.push(snap_id(&r.json()));
                }
                (t, ids)
            })
        })
        .collect();
    for _ in 0..3 {
        cairn(
            &f,
            &f.repo,
            &[
                "prune",
                "--retry-lock",
                "5m",
                "--instant-delete",
                "--max-unused",
                "0%",
            ],
        )
        .code(0);
    }
    let results: Vec<(PathBuf, Vec<String>)> = handles
        .into_iter()
        .map(|h| h.join().expect("backup thread"))
        .collect();
    cairn(
        &f,
        &f.repo,
        &["prune", "--instant-delete", "--max-unused", "0%"],
    )
    .code(0);
    let r = cairn(&f, &f.repo, &["check", "--read-data"]);
    assert_eq!(r.code, 0, "{}", r.stdout_str());
    for (t, ids) in results {
        for id in ids {
            assert_restores(&f, &f.repo, &id, &t, &f.path("out"));
        }
    }
}
