//! Error paths: each fails with its documented exit code and one line on
//! stderr that says what went wrong and where, without a panic.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::process::Command;

use crate::common::*;

#[test]
fn wrong_password_exits_12() {
    let f = Fixture::new();
    let mut c = f.command_with_password("not the password");
    c.arg("snapshots");
    let line = run_command(c).fails(12);
    assert!(line.contains("password"), "{line}");
}

#[test]
fn missing_repository_exits_10() {
    let f = Fixture::uninit();
    let line = f.run(["snapshots"]).fails(10);
    assert!(
        line.contains(&*f.repo.to_string_lossy()),
        "message does not name the repository: {line}"
    );
    assert!(!f.repo.exists(), "opening created the repository directory");
    // An existing but empty directory is no repository either.
    fs::create_dir(&f.repo).unwrap();
    f.run(["snapshots"]).fails(10);
    // Backing up into a missing repository does not create one.
    let g = Fixture::uninit();
    write(&g.path("src/a"), b"a");
    g.run(["backup".as_ref(), g.path("src").as_os_str()])
        .fails(10);
}

#[test]
fn repository_path_that_is_a_file_exits_10() {
    let f = Fixture::uninit();
    write(&f.repo, b"not a repository");
    let line = f.run(["snapshots"]).fails(10);
    assert!(line.contains(&*f.repo.to_string_lossy()), "{line}");
    // init refuses too, and leaves the file alone.
    let r = f.run(["init", "--kdf-memory", "8", "--kdf-iterations", "1"]);
    assert_ne!(r.code, 0, "init over a regular file succeeded");
    r.error_line();
    assert_eq!(fs::read(&f.repo).unwrap(), b"not a repository");
}

#[test]
fn init_over_an_existing_repository_fails_and_keeps_it() {
    let f = Fixture::new();
    write(&f.path("src/a"), b"a");
    let id = snap_id(&f.backup([f.path("src")]));
    let config = fs::read(f.repo.join("config")).unwrap();
    let keys = dir_files(&f.repo.join("keys"));

    let line = f
        .run(["init", "--kdf-memory", "8", "--kdf-iterations", "1"])
        .fails(1);
    assert!(line.contains("exists"), "{line}");
    // Also with another password.
    let mut c = f.command_with_password("another password");
    c.args(["init", "--kdf-memory", "8", "--kdf-iterations", "1"]);
    run_command(c).fails(1);

    assert_eq!(fs::read(f.repo.join("config")).unwrap(), config);
    assert_eq!(dir_files(&f.repo.join("keys")), keys);
    let snaps = f.all_snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["id"].as_str(), Some(id.as_str()));
    let out = f.ok(["dump".as_ref(), spec(&id, &f.path("src/a")).as_os_str()]);
    assert_eq!(out.stdout, b"a");
}

#[test]
fn restore_into_an_unusable_target_fails() {
    let f = Fixture::new();
    write(&f.path("src/a"), b"a");
    f.backup([f.path("src")]);
    let file = f.path("a-file");
    write(&file, b"x");

    // The target's parent is a regular file.
    let target = file.join("target");
    let line = f
        .run([
            OsStr::new("restore"),
            OsStr::new("latest"),
            OsStr::new("--target"),
            target.as_os_str(),
        ])
        .fails(1);
    assert!(
        line.contains(&*target.to_string_lossy()) || line.contains(&*file.to_string_lossy()),
        "message does not name the target: {line}"
    );
    // The target itself is a regular file.
    let line = f
        .run([
            OsStr::new("restore"),
            OsStr::new("latest"),
            OsStr::new("--target"),
            file.as_os_str(),
        ])
        .fails(1);
    assert!(line.contains(&*file.to_string_lossy()), "{line}");
    assert_eq!(fs::read(&file).unwrap(), b"x", "the file was changed");
}

#[test]
fn truncated_pack_fails_restore_naming_the_pack() {
    let f = Fixture::new();
    write(&f.path("src/big"), &pseudo_random(50, 4 * MIB));
    write(&f.path("src/small"), b"small");
    let id = snap_id(&f.backup([f.path("src")]));
    let packs = files_by_size(&f.repo.join("data"));
    let (pack, size) = packs.first().cloned().expect("a pack");
    assert!(size > 4 * MIB as u64, "largest pack is {size} bytes");
    OpenOptions::new()
        .write(true)
        .open(&pack)
        .unwrap()
        .set_len(size / 2)
        .unwrap();
    let name = pack.file_name().unwrap().to_string_lossy().into_owned();

    let target = f.path("restore");
    let r = f.run([
        OsStr::new("restore"),
        OsStr::new(&id),
        OsStr::new("--target"),
        target.as_os_str(),
    ]);
    assert_ne!(r.code, 0, "restore from a truncated pack succeeded");
    r.code(1);
    r.error_line();
    assert!(
        r.stderr.contains(&name),
        "no message names the pack {name}: {}",
        r.stderr
    );

    // dump of the damaged file fails the same way.
    let r = f.run(["dump".as_ref(), spec(&id, &f.path("src/big")).as_os_str()]);
    let line = r.fails(1);
    assert!(line.contains(&name), "{line}");
}

#[test]
fn damaged_snapshot_file_fails_naming_it() {
    let f = Fixture::new();
    write(&f.path("src/a"), b"a");
    let id = snap_id(&f.backup([f.path("src")]));
    let file = f.repo.join("snapshots").join(&id);
    let len = fs::metadata(&file).unwrap().len();
    let fh = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&file)
        .unwrap();
    let mut b = [0u8; 1];
    fh.read_exact_at(&mut b, len / 2).unwrap();
    b[0] ^= 0x01;
    fh.write_all_at(&b, len / 2).unwrap();
    drop(fh);

    let line = f.run(["snapshots"]).fails(1);
    assert!(line.contains(&id), "message does not name {id}: {line}");
    let r = f.run(["snapshots", "--json"]);
    r.code(1);
    r.error_line();
    assert!(r.stdout.is_empty(), "{}", r.stdout_str());
}

#[test]
fn unreadable_source_file_exits_3_and_is_left_out() {
    assert!(is_root(), "this test switches to user nobody");
    if !have("setpriv") {
        panic!("setpriv (util-linux) is needed to run cairn as nobody");
    }
    let f = Fixture::new();
    chmod(f.dir.path(), 0o755);
    let src = f.path("src");
    write(&src.join("public.txt"), b"everyone may read this");
    write(&src.join("sub/also-public"), b"also");
    write(&src.join("sub/secret"), b"root only");
    chmod(&src.join("sub/secret"), 0o600);
    let st = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&f.repo)
        .status()
        .unwrap();
    assert!(st.success());

    let as_nobody = || {
        let mut c = Command::new("setpriv");
        clean_env(&mut c);
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        c
    };
    // The binary may sit below a directory nobody cannot enter (/root):
    // then run a copy.
    let mut bin = cairn_bin().to_path_buf();
    let mut probe = as_nobody();
    probe.arg(&bin).arg("version");
    if run_command(probe).code != 0 {
        bin = f.path("cairn");
        fs::copy(cairn_bin(), &bin).unwrap();
        chmod(&bin, 0o755);
    }

    let mut c = as_nobody();
    c.arg(&bin)
        .arg("-r")
        .arg(&f.repo)
        .args(["backup", "--json"])
        .arg(&src)
        .env("CAIRN_PASSWORD", &f.password)
        .stdin(std::process::Stdio::null());
    let r = run_command(c);
    r.code(3);
    let v = r.json();
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{v}");
    assert_eq!(
        errors[0]["path"].as_str(),
        Some(&*src.join("sub/secret").to_string_lossy()),
        "{v}"
    );
    assert!(stat(&v, "files_failed") >= 1, "{v}");
    // With --json, warnings on stderr are JSON lines too.
    for l in r.stderr.lines() {
        serde_json::from_str::<serde_json::Value>(l)
            .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {l}"));
    }
    let id = snap_id(&v);

    let snaps = f.all_snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["id"].as_str(), Some(id.as_str()));
    let target = f.path("restore");
    f.ok([
        "restore".as_ref(),
        spec(&id, &src).as_os_str(),
        "--target".as_ref(),
        target.as_os_str(),
    ]);
    assert_eq!(file_list(&target), ["public.txt", "sub/also-public"]);
}

#[test]
fn other_user_errors_are_one_line() {
    let f = Fixture::new();
    write(&f.path("src/a"), b"a");
    f.backup([f.path("src")]);

    // No password anywhere (stdin is not a terminal).
    let mut c = bare_command();
    c.arg("-r").arg(&f.repo).arg("snapshots");
    let line = run_command(c).fails(1);
    assert!(line.contains("password"), "{line}");
    // No repository given.
    let mut c = bare_command();
    c.env("CAIRN_PASSWORD", PASSWORD).arg("snapshots");
    let line = run_command(c).fails(1);
    assert!(line.contains("repo"), "{line}");
    // Unknown snapshot, unknown path.
    let line = f.run(["ls", "0123abcd"]).fails(1);
    assert!(line.contains("0123abcd"), "{line}");
    let line = f.run(["ls", "latest:/no/such/path"]).fails(1);
    assert!(line.contains("/no/such/path"), "{line}");
    // A source that does not exist.
    let missing = f.path("missing");
    let line = f.run(["backup".as_ref(), missing.as_os_str()]).fails(1);
    assert!(line.contains(&*missing.to_string_lossy()), "{line}");
    // Bad times and patterns.
    let line = f
        .run([
            "backup".as_ref(),
            f.path("src").as_os_str(),
            "--time".as_ref(),
            "yesterday".as_ref(),
        ])
        .fails(1);
    assert!(line.contains("yesterday"), "{line}");
    let line = f.run(["ls", "latest@tomorrow"]).fails(1);
    assert!(line.contains("tomorrow"), "{line}");
    let line = f
        .run([
            "backup".as_ref(),
            f.path("src").as_os_str(),
            "--exclude".as_ref(),
            "a[".as_ref(),
        ])
        .fails(1);
    assert!(line.contains("a["), "{line}");
    // A missing exclude file.
    let line = f
        .run([
            "backup".as_ref(),
            f.path("src").as_os_str(),
            "--exclude-file".as_ref(),
            f.path("no-such-file").as_os_str(),
        ])
        .fails(1);
    assert!(line.contains("no-such-file"), "{line}");
    // Nothing got written by the failed backups.
    assert_eq!(f.all_snapshots().len(), 1);
}

#[test]
fn interrupted_backup_exits_130_and_keeps_the_repository_consistent() {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let f = Fixture::new();
    let mut c = f.command();
    c.args(["backup", "--stdin", "--stdin-filename", "endless"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    // Feed data until cairn goes away.
    let writer = std::thread::spawn(move || {
        for i in 0.. {
            if stdin.write_all(&pseudo_random(1000 + i, MIB)).is_err() {
                return;
            }
            w.fetch_add(MIB as u64, Ordering::SeqCst);
        }
    });
    // Interrupt once cairn has consumed more than two packs' worth.
    let start = Instant::now();
    while written.load(Ordering::SeqCst) < 40 * MIB as u64 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "cairn did not read its input"
        );
        assert!(child.try_wait().unwrap().is_none(), "cairn exited early");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) on our own child's pid.
    let r = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(r, 0);
    let run = wait_run(child, "cairn backup --stdin (interrupted)");
    writer.join().unwrap();
    let line = run.fails(130);
    assert!(line.contains("interrupted"), "{line}");
    assert!(
        f.all_snapshots().is_empty(),
        "an interrupted backup saved a snapshot"
    );

    // Every indexed pack exists, and every stored pack is indexed.
    let mut indexed = std::collections::BTreeSet::new();
    for (idx, _) in files_by_size(&f.repo.join("index")) {
        let id = idx.file_name().unwrap().to_str().unwrap().to_string();
        let v = f.ok(["cat", "index", &id]).json();
        for p in v["packs"].as_array().unwrap() {
            indexed.insert(p["id"].as_str().unwrap().to_string());
        }
    }
    let stored: std::collections::BTreeSet<String> = files_by_size(&f.repo.join("data"))
        .into_iter()
        .map(|(p, _)| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert!(
        indexed.is_subset(&stored),
        "index lists packs that do not exist: {:?}",
        indexed.difference(&stored).collect::<Vec<_>>()
    );
    assert_eq!(
        stored, indexed,
        "packs stored by the interrupted backup are not indexed"
    );

    // The repository works as before.
    write(&f.path("src/a"), &pseudo_random(1000, MIB));
    let id = snap_id(&f.backup([f.path("src")]));
    let target = f.path("restore");
    f.ok([
        "restore".as_ref(),
        spec(&id, &f.path("src")).as_os_str(),
        "--target".as_ref(),
        target.as_os_str(),
        "--verify".as_ref(),
    ]);
    assert!(fs::read(target.join("a")).unwrap() == pseudo_random(1000, MIB));
}

#[test]
fn exclusive_command_during_a_backup_exits_11() {
    use std::io::Write;
    use std::time::{Duration, Instant};

    let f = Fixture::new();
    write(&f.path("src/a"), b"a");
    let first = snap_id(&f.backup([f.path("src")]));

    // A backup from stdin holds its (shared) lock until its input ends.
    let mut c = f.command();
    c.args(["backup", "--stdin", "--stdin-filename", "slow", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"some data").unwrap();
    let locks = f.repo.join("locks");
    let start = Instant::now();
    while dir_files(&locks) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the backup took no lock in {}",
            locks.display()
        );
        assert!(child.try_wait().unwrap().is_none(), "backup exited early");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Shared with the backup: fine.
    f.ok(["snapshots"]);
    // Exclusive: refused, also after a short wait.
    let line = f.run(["tag", "--add", "x", &first]).fails(11);
    assert!(line.contains("lock") || line.contains("held"), "{line}");
    let t = Instant::now();
    f.run(["--retry-lock", "1s", "tag", "--add", "x", &first])
        .fails(11);
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "--retry-lock did not wait"
    );

    drop(stdin);
    wait_run(child, "cairn backup --stdin").code(0);
    assert_eq!(dir_files(&locks), 0, "the backup left its lock behind");
    // Now the exclusive command goes through.
    f.ok(["tag", "--add", "x", &first]);
    let tagged = f.snapshots(["--tag", "x"]);
    assert_eq!(tagged.len(), 1);
}
