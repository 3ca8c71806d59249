//! Remote repositories on real servers: the whole life of a repository
//! (init, backups, snapshots, restore compared with rsync, check
//! --read-data, forget, prune, check) on S3 and on SFTP, storage faults
//! injected under the retry layer, and permanent errors that must fail at
//! once with one line naming the repository.
//!
//! The servers come from `.ci/garage.sh start` (S3: sets `CAIRN_TEST_S3`
//! and the AWS_ variables) and `.ci/sshd.sh start` (SFTP: sets
//! `CAIRN_TEST_SFTP` and ~/.ssh/config). Without those variables the tests
//! are skipped with a note, except under `CI=true`, where they fail: CI
//! must not skip them silently. Every test works below its own prefix or
//! directory, so they run in parallel.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;

const FAULTS: &str = "CAIRN_FAULTS";

/// The base URL of a test server, or `None` to skip (a failure when
/// `CI=true`).
fn server(var: &str, script: &str) -> Option<String> {
    if let Ok(v) = std::env::var(var) {
        if !v.trim().is_empty() {
            return Some(v.trim().to_string());
        }
    }
    let how = format!("start a server with `eval \"$({script} start)\"`");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{var} is not set although CI=true: {how} before the tests (see .ci/run)");
    }
    eprintln!("note: {var} is not set, so this test is skipped; {how}");
    None
}

fn s3() -> Option<String> {
    server("CAIRN_TEST_S3", ".ci/garage.sh")
}

fn sftp() -> Option<String> {
    server("CAIRN_TEST_SFTP", ".ci/sshd.sh")
}

/// A unique location below `base` for one test.
fn unique(base: &str, name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}/{name}-{}-{:x}",
        base.trim_end_matches('/'),
        std::process::id(),
        nanos
    )
}

/// A repository at a URL, with a temporary directory for the source tree,
/// restores and the metadata cache.
struct Remote {
    f: Fixture,
    url: String,
    env: Vec<(String, String)>,
}

impl Remote {
    fn new(url: String) -> Remote {
        let dir = tempfile::Builder::new()
            .prefix("cairn-e2e-remote-")
            .tempdir()
            .expect("temporary directory");
        Remote {
            f: Fixture {
                dir,
                repo: PathBuf::from(&url),
                password: PASSWORD.to_string(),
            },
            url,
            env: Vec::new(),
        }
    }

    fn with_env(mut self, k: &str, v: &str) -> Remote {
        self.env.push((k.into(), v.into()));
        self
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.f.path(rel)
    }

    fn command(&self) -> Command {
        let mut c = self.f.command();
        c.env_remove(FAULTS);
        c.arg("--cache-dir").arg(self.path("cache"));
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.command();
        c.args(args);
        run_command(c)
    }

    fn ok<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let r = self.run(args);
        r.code(0);
        r
    }

    fn init(&self, extra: &[&str]) {
        let mut a = vec!["init", "--kdf-memory", "8", "--kdf-iterations", "1"];
        a.extend_from_slice(extra);
        let r = self.ok(a);
        assert!(r.stdout_str().contains(&self.url), "{}", r.stdout_str());
    }

    fn backup(&self, src: &Path) -> String {
        let r = self.ok([OsStr::new("backup"), OsStr::new("--json"), src.as_os_str()]);
        let v = r.json();
        assert_eq!(v["message_type"], "summary", "{v}");
        assert!(
            v["errors"].as_array().is_none_or(|e| e.is_empty()),
            "backup reported errors: {v}"
        );
        snap_id(&v)
    }

    fn snapshot_ids(&self) -> Vec<String> {
        let r = self.ok(["snapshots", "--json"]);
        r.json()
            .as_array()
            .expect("snapshots --json is an array")
            .iter()
            .map(|s| s["id"].as_str().expect("snapshot id").to_string())
            .collect()
    }

    /// Restores `snap` and compares the copy of `src` in it with `src`.
    fn restore_and_compare(&self, snap: &str, src: &Path, target: &str) {
        let target = self.path(target);
        self.ok([
            OsStr::new("restore"),
            OsStr::new(snap),
            OsStr::new("--target"),
            target.as_os_str(),
            OsStr::new("--verify"),
        ]);
        assert_same_tree(src, &under(&target, src));
    }

    fn check_read_data(&self) {
        let r = self.ok(["check", "--read-data"]);
        assert!(
            r.stdout_str().contains("no errors"),
            "check: {}",
            r.stdout_str()
        );
    }
}

/// Whether this build has `cairn forget`.
fn has_forget() -> bool {
    let mut c = bare_command();
    c.args(["forget", "--help"]);
    run_command(c).code == 0
}

/// The whole life of a repository at `url`.
fn full_flow(url: String) {
    let t0 = Instant::now();
    let r = Remote::new(url);
    let src = r.path("src");
    build_tree(&src, 20 * MIB);

    r.init(&[]);
    // A second init finds the repository.
    let line = r
        .run(["init", "--kdf-memory", "8", "--kdf-iterations", "1"])
        .fails(1);
    assert!(line.contains("exists") && line.contains(&r.url), "{line}");

    let first = r.backup(&src);
    // Change the tree: a new file, a changed file, a removed file.
    write(&src.join("new-file"), &pseudo_random(11, 500_000));
    write(&src.join("many/d0/f000.txt"), b"changed");
    fs::remove_file(src.join("dup-b")).unwrap();
    let second = r.backup(&src);
    let ids = r.snapshot_ids();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&first) && ids.contains(&second), "{ids:?}");

    r.restore_and_compare(&second, &src, "restore1");
    // Without the cache, straight from the storage.
    let ls = r.ok([
        OsString::from("--no-cache"),
        OsString::from("ls"),
        spec(&second, &src),
    ]);
    assert!(ls.stdout_str().contains("new-file"), "{}", ls.stdout_str());
    r.check_read_data();

    if has_forget() {
        r.ok(["forget", "--keep-last", "1"]);
        assert_eq!(r.snapshot_ids(), vec![second.clone()]);
    } else {
        eprintln!("note: this build has no `cairn forget`; the forget step is skipped");
    }
    r.ok(["prune", "--instant-delete"]);
    r.check_read_data();
    r.restore_and_compare("latest", &src, "restore2");

    // Wrong password: exit 12.
    let mut c = r.f.command_with_password("wrong");
    c.arg("--cache-dir").arg(r.path("cache")).arg("snapshots");
    run_command(c).fails(12);
    eprintln!("{}: full flow in {:.1?}", r.url, t0.elapsed());
}

#[test]
fn s3_init_backup_restore_check_forget_prune() {
    let Some(base) = s3() else { return };
    full_flow(unique(&base, "flow"));
}

#[test]
fn sftp_init_backup_restore_check_forget_prune() {
    let Some(base) = sftp() else { return };
    full_flow(unique(&base, "flow"));
}

/// `copy --json --from-repo FROM` into `to`; the report.
fn copy_into(to: &Remote, from: &Remote) -> serde_json::Value {
    let mut c = to.command();
    c.args(["copy", "--json", "--from-repo", &from.url])
        .env("CAIRN_FROM_PASSWORD", &from.f.password);
    let r = run_command(c);
    r.code(0);
    r.json()
}

fn copied(rep: &serde_json::Value) -> (usize, usize, u64) {
    let n = |k: &str| rep[k].as_array().map_or(usize::MAX, Vec::len);
    (
        n("copied"),
        n("skipped"),
        rep["blobs_read"].as_u64().unwrap_or(u64::MAX),
    )
}

/// Snapshots travel local -> S3 -> SFTP -> local, each copy under its
/// own password, restoring identically and checking with --read-data at
/// every stop; a repeated copy reads nothing.
#[test]
fn copy_from_local_to_s3_to_sftp_and_back_to_local() {
    let (Some(s3_base), Some(sftp_base)) = (s3(), sftp()) else {
        return;
    };
    let t0 = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("cairn-e2e-copy-")
        .tempdir()
        .expect("temporary directory");
    let local = Remote::new(dir.path().join("first").display().to_string());
    let src = local.path("src");
    build_tree(&src, 8 * MIB);
    local.init(&[]);
    local.backup(&src);
    write(&src.join("added"), &pseudo_random(31, 400_000));
    fs::remove_file(src.join("dup-a")).unwrap();
    local.backup(&src);

    let mut s3r = Remote::new(unique(&s3_base, "copy"));
    s3r.f.password = "s3 password".into();
    s3r.init(&[]);
    let rep = copy_into(&s3r, &local);
    assert_eq!(copied(&rep).0, 2, "{rep}");
    assert_eq!(copied(&rep).1, 0, "{rep}");
    s3r.restore_and_compare("latest", &src, "s3-restore");
    s3r.check_read_data();

    let mut sftpr = Remote::new(unique(&sftp_base, "copy"));
    sftpr.f.password = "sftp password".into();
    sftpr.init(&[]);
    let rep = copy_into(&sftpr, &s3r);
    assert_eq!(copied(&rep).0, 2, "{rep}");
    sftpr.restore_and_compare("latest", &src, "sftp-restore");
    sftpr.check_read_data();
    assert_eq!(copied(&copy_into(&sftpr, &s3r)), (0, 2, 0));

    let back = Remote::new(dir.path().join("back").display().to_string());
    back.init(&[]);
    let rep = copy_into(&back, &sftpr);
    assert_eq!(copied(&rep).0, 2, "{rep}");
    back.restore_and_compare("latest", &src, "back-restore");
    back.check_read_data();
    // The chain's origin recognises every snapshot as its own.
    assert_eq!(copied(&copy_into(&local, &back)), (0, 2, 0));
    eprintln!("copy chain in {:.1?}", t0.elapsed());
}

#[test]
fn s3_missing_repository_and_permanent_errors_fail_at_once() {
    let Some(base) = s3() else { return };
    // An empty prefix is no repository: exit 10, naming the URL.
    let r = Remote::new(unique(&base, "nothing"));
    let line = r.run(["snapshots"]).fails(10);
    assert!(line.contains(&r.url), "{line}");

    // A bucket that does not exist, and a wrong secret: permanent errors,
    // reported at once (no retries) in one line naming the URL.
    let (scheme_host, _) = base
        .trim_start_matches("s3:")
        .rsplit_once('/')
        .expect("s3:ENDPOINT/BUCKET");
    let nobucket = format!("s3:{scheme_host}/no-such-bucket-cairn/x");
    for (url, secret) in [
        (nobucket.as_str(), None),
        (base.as_str(), Some("wrong-secret")),
    ] {
        for args in [
            &["init", "--kdf-memory", "8", "--kdf-iterations", "1"][..],
            &["snapshots"][..],
        ] {
            let mut r = Remote::new(url.to_string());
            if let Some(s) = secret {
                r = r.with_env("AWS_SECRET_ACCESS_KEY", s);
            }
            let t = Instant::now();
            let line = r.run(args).fails(1);
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{args:?} took {:?}: retried?",
                t.elapsed()
            );
            assert!(line.contains(url), "{line}");
            if secret.is_some() {
                assert!(line.contains("permission denied"), "{line}");
            } else {
                assert!(line.contains("NoSuchBucket"), "{line}");
            }
        }
    }
}

#[test]
fn sftp_unreachable_server_fails_at_once() {
    let Some(_) = sftp() else { return };
    // Nothing listens on port 1.
    let r = Remote::new("sftp://root@127.0.0.1:1/tmp/cairn-unreachable".into());
    let t = Instant::now();
    let line = r.run(["snapshots"]).fails(1);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(line.contains(&r.url), "{line}");
    assert!(line.contains("ssh"), "{line}");
}

/// Faults injected below the retry layer: a backup, check and restore
/// under moderate faults all succeed through retries.
fn flow_with_faults(url: String, faults: &str) {
    let r = Remote::new(url);
    let log = r.path("faults.log");
    let r = r.with_env(FAULTS, &format!("{faults},log={}", log.display()));
    let src = r.path("src");
    build_tree(&src, 6 * MIB);
    r.init(&["--pack-size", "1"]);
    let id = r.backup(&src);
    r.restore_and_compare(&id, &src, "restore");
    // Without the cache, so that every read goes to the storage.
    let chk = r.ok(["--no-cache", "check", "--read-data"]);
    assert!(
        chk.stdout_str().contains("no errors"),
        "{}",
        chk.stdout_str()
    );
    let injected = fs::read_to_string(&log).unwrap_or_default();
    let cuts = injected.lines().filter(|l| l.contains(" cut ")).count();
    let total = injected.lines().count();
    assert!(total >= 10, "too few faults injected: {injected:?}");
    eprintln!("{}: {total} faults injected, {cuts} of them cuts", r.url);
}

#[test]
fn s3_backup_with_injected_faults_completes_through_retries() {
    let Some(base) = s3() else { return };
    flow_with_faults(
        unique(&base, "faults"),
        "fail=0.2,delay_ms=30,cut=0.2,seed=11",
    );
}

#[test]
fn sftp_backup_with_injected_faults_completes_through_retries() {
    let Some(base) = sftp() else { return };
    flow_with_faults(
        unique(&base, "faults"),
        "fail=0.2,delay_ms=10,cut=0.2,seed=12",
    );
}

/// Runs everywhere: a local repository also goes through the fault and
/// retry layers when `CAIRN_FAULTS` is set.
#[test]
fn local_backup_with_injected_faults_completes_through_retries() {
    let dir = tempfile::tempdir().unwrap();
    flow_with_faults(
        dir.path().join("repo").display().to_string(),
        "fail=0.2,cut=0.2,seed=13",
    );
}

/// When the storage stays down longer than the retries last, a backup
/// gives up with one line saying why, and the repository stays
/// consistent: `check --read-data` passes and the next backup works. Under
/// heavy random faults a backup either completes or fails the same way.
#[test]
fn s3_backup_that_gives_up_leaves_a_consistent_repository() {
    let Some(base) = s3() else { return };
    let r = Remote::new(unique(&base, "outage"));
    let src = r.path("src");
    build_tree(&src, 4 * MIB);
    r.init(&["--pack-size", "1"]);
    let backup_under = |faults: &str| -> &'static str {
        let mut c = r.command();
        c.env(FAULTS, faults)
            .args([OsStr::new("backup"), src.as_os_str()]);
        let run = run_command(c);
        let outcome = match run.code {
            0 => "completed",
            1 => {
                let line = run.fails(1);
                assert!(line.contains(FAULTS) && line.contains(&r.url), "{line}");
                "gave up"
            }
            other => panic!("backup under {faults} exited {other}: {}", run.stderr),
        };
        // Without faults the repository checks clean.
        let chk = r.run(["check", "--read-data"]);
        assert_eq!(
            chk.code,
            0,
            "check after a backup under {faults} that {outcome}: {}{}",
            chk.stdout_str(),
            chk.stderr
        );
        outcome
    };
    // The storage goes down while the packs are uploaded.
    let t = Instant::now();
    assert_eq!(backup_under("outage_after=20"), "gave up");
    eprintln!("backup gave up after {:.1?} of retries", t.elapsed());
    let outcome = backup_under("fail=0.4,cut=0.2,seed=5");
    eprintln!("backup under heavy random faults: {outcome}");
    let id = r.backup(&src);
    r.restore_and_compare(&id, &src, "restore");
}
