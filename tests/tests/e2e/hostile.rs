//! A hostile repository: files written by someone with write access to the
//! storage. Files moved between directories, copied in from other
//! repositories, truncated, extended and bit-flipped in every region (with
//! their original name, and renamed to the hash of their new content so
//! that authentication, not the name check, has to catch them), replayed
//! old index files, and key files with absurd KDF parameters.
//!
//! Every case must be rejected with exit code 1 (12 where the damage is
//! indistinguishable from a wrong password), a single stderr line naming
//! the file, no panic, no hang; `cairn check` must report it; and what was
//! not damaged must still restore byte for byte.

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// Longest any command may take before the test calls it a hang.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs a command, killing it and failing the test if it outlives `limit`.
pub(crate) fn run_bounded(mut cmd: Command, limit: Duration) -> Run {
    let cmdline = format!("{cmd:?}");
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmdline}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{cmdline}` did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        cmdline,
        code: status.code().unwrap_or(-1),
        stdout: out.join().expect("stdout reader"),
        stderr: String::from_utf8_lossy(&err.join().expect("stderr reader")).into_owned(),
    }
}

fn run<S: Into<OsString>>(f: &Fixture, args: impl IntoIterator<Item = S>) -> Run {
    let mut c = f.command();
    c.args(args.into_iter().map(Into::into));
    run_bounded(c, LIMIT)
}

fn ok<S: Into<OsString>>(f: &Fixture, args: impl IntoIterator<Item = S>) -> Run {
    let r = run(f, args);
    r.code(0);
    r
}

/// Asserts that `r` failed with `code`, printing one line that starts with
/// `cairn: ` and names one of `needles`; returns the line.
fn fails_naming(r: &Run, code: i32, needles: &[String], case: &str) -> String {
    assert!(
        !r.stderr.contains("panicked") && !r.stderr.contains("RUST_BACKTRACE"),
        "[{case}] `{}` panicked: {}",
        r.cmdline,
        r.stderr
    );
    assert_eq!(
        r.code, code,
        "[{case}] `{}` exited with {} instead of {code}; stderr: {}",
        r.cmdline, r.code, r.stderr
    );
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("cairn: "),
        "[{case}] `{}`: expected one `cairn: ` line on stderr, got {:?}",
        r.cmdline,
        r.stderr
    );
    assert!(
        needles.iter().any(|n| lines[0].contains(n.as_str())),
        "[{case}] `{}`: error does not name any of {needles:?}: {}",
        r.cmdline,
        lines[0]
    );
    lines[0].to_string()
}

/// `check --json` (with `--read-data` if asked) must fail and report one
/// of `needles` in an error finding, or, when the repository cannot even be
/// opened, fail like any other command with `open_code`.
fn check_reports(f: &Fixture, read_data: bool, needles: &[String], open_code: i32, case: &str) {
    let mut args = vec!["check", "--json"];
    if read_data {
        args.push("--read-data");
    }
    let r = run(f, args);
    if r.stdout.is_empty() {
        fails_naming(&r, open_code, needles, case);
        return;
    }
    r.no_panic();
    assert_eq!(
        r.code,
        1,
        "[{case}] check exited with {}: {}",
        r.code,
        r.stdout_str()
    );
    let rep = r.json();
    let hit = rep["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|x| x["severity"] == "error")
        .any(|x| {
            let msg = x["message"].as_str().unwrap_or_default();
            let pack = x["pack"].as_str().unwrap_or_default();
            needles
                .iter()
                .any(|n| msg.contains(n.as_str()) || (!pack.is_empty() && n == pack))
        });
    assert!(
        hit,
        "[{case}] check has no error naming any of {needles:?}: {rep}"
    );
}

fn check_passes(f: &Fixture, read_data: bool, case: &str) {
    let mut args = vec!["check", "--json"];
    if read_data {
        args.push("--read-data");
    }
    let r = run(f, args);
    r.no_panic();
    assert_eq!(r.code, 0, "[{case}] check failed: {}", r.stdout_str());
}

fn hex_name(p: &Path) -> String {
    p.file_name()
        .and_then(|n| n.to_str())
        .expect("file name")
        .to_string()
}

fn hash_hex(b: &[u8]) -> String {
    blake3::hash(b).to_hex().to_string()
}

/// Where a file with storage ID `id` lives in directory `dir`.
fn stored_path(repo: &Path, dir: &str, id: &str) -> PathBuf {
    if dir == "data" {
        repo.join("data").join(&id[..2]).join(id)
    } else {
        repo.join(dir).join(id)
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let t = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &t);
        } else {
            fs::copy(e.path(), &t).expect("copy");
        }
    }
}

/// The files directly in (or, for `data`, below) a repository directory.
fn files_in(repo: &Path, dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walk(&repo.join(dir))
        .into_iter()
        .filter(|(_, m)| m.is_file())
        .map(|(p, _)| repo.join(dir).join(p))
        .collect();
    v.sort();
    v
}

const KEEP: u64 = 4;
const KEEP_LEN: usize = 50_000;
const BIG_LEN: usize = 1_500_000;

/// A pristine repository to copy for each case: a first ("good") snapshot
/// of `src/keep`, then a second ("victim") one that adds `src/victim/big`,
/// whose data lies in packs of its own (packs are 1 MiB).
struct World {
    base: Fixture,
    src: PathBuf,
    good: String,
    victim: String,
    /// The index file written by the first backup (it lists the good data).
    good_index: String,
    /// A data pack holding only `victim/big`'s blobs, and their places.
    victim_pack: String,
    victim_blobs: Vec<(usize, usize)>,
}

impl World {
    fn new() -> World {
        let base = Fixture::uninit();
        let mut c = base.command();
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
        let src = base.path("src");
        for i in 0..KEEP {
            write(
                &src.join("keep").join(format!("k{i}")),
                &pseudo_random(i, KEEP_LEN),
            );
        }
        let good = snap_id(&base.backup([&src]));
        let idx = files_in(&base.repo, "index");
        assert_eq!(idx.len(), 1, "one index file after the first backup");
        let good_index = hex_name(&idx[0]);
        write(&src.join("victim").join("big"), &pseudo_random(99, BIG_LEN));
        let victim = snap_id(&base.backup([&src]));

        let tree: Value = base
            .ok([
                "cat".into(),
                "tree".into(),
                spec(&victim, &src.join("victim"))
                    .into_string()
                    .expect("utf-8"),
            ])
            .json();
        let blob = tree["nodes"][0]["content"][0]
            .as_str()
            .expect("big's first blob")
            .to_string();
        let mut found = None;
        for p in files_in(&base.repo, "data") {
            let name = hex_name(&p);
            let v: Value = base.ok(["cat", "pack", &name]).json();
            let blobs = v["blobs"].as_array().expect("blobs");
            if blobs.iter().any(|b| b["id"] == blob.as_str()) {
                let mut places: Vec<(usize, usize)> = blobs
                    .iter()
                    .map(|b| {
                        (
                            b["offset"].as_u64().expect("offset") as usize,
                            b["length"].as_u64().expect("length") as usize,
                        )
                    })
                    .collect();
                places.sort();
                found = Some((name, places));
            }
        }
        let (victim_pack, victim_blobs) = found.expect("the pack holding victim/big");
        World {
            base,
            src,
            good,
            victim,
            good_index,
            victim_pack,
            victim_blobs,
        }
    }

    /// A fresh copy of the pristine repository.
    fn copy(&self) -> Fixture {
        let f = Fixture::uninit();
        copy_tree(&self.base.repo, &f.repo);
        f
    }

    fn restore_good(&self, f: &Fixture, case: &str) {
        let out = f.path("out-good");
        let _ = fs::remove_dir_all(&out);
        let r = run(
            f,
            [
                OsString::from("restore"),
                spec(&self.good, &self.src.join("keep")),
                "--target".into(),
                out.clone().into_os_string(),
            ],
        );
        assert_eq!(
            r.code, 0,
            "[{case}] restore of the good snapshot: {}",
            r.stderr
        );
        for i in 0..KEEP {
            assert!(
                fs::read(out.join(format!("k{i}"))).ok() == Some(pseudo_random(i, KEEP_LEN)),
                "[{case}] keep/k{i} restored wrong"
            );
        }
    }

    fn restore_victim(&self, f: &Fixture, case: &str) {
        let out = f.path("out-victim");
        let _ = fs::remove_dir_all(&out);
        let r = run(
            f,
            [
                OsString::from("restore"),
                spec(&self.victim, &self.src.join("victim")),
                "--target".into(),
                out.clone().into_os_string(),
            ],
        );
        assert_eq!(
            r.code, 0,
            "[{case}] restore of the victim snapshot: {}",
            r.stderr
        );
        assert!(
            fs::read(out.join("big")).ok() == Some(pseudo_random(99, BIG_LEN)),
            "[{case}] victim/big restored wrong"
        );
    }

    fn dump_victim_args(&self) -> Vec<OsString> {
        vec![
            "dump".into(),
            spec(&self.victim, &self.src.join("victim").join("big")),
        ]
    }
}

/// What a damaging step did: the names a message may use for the file.
struct Hit {
    needles: Vec<String>,
    /// The file's new storage ID when it was renamed to its new hash.
    new_id: Option<String>,
}

/// Replaces the file `dir/id` with `bytes`, keeping its name or renaming
/// it to the hash of the new bytes.
fn replace(repo: &Path, dir: &str, id: &str, bytes: &[u8], rename: bool) -> Hit {
    let old = stored_path(repo, dir, id);
    if !rename {
        fs::write(&old, bytes).expect("write");
        return Hit {
            needles: vec![id.to_string()],
            new_id: None,
        };
    }
    let new = hash_hex(bytes);
    fs::remove_file(&old).expect("remove");
    write(&stored_path(repo, dir, &new), bytes);
    Hit {
        needles: vec![id.to_string(), new.clone()],
        new_id: Some(new),
    }
}

/// Copies `from_repo/dir/id` to `repo/to_dir/id` (under its own name).
fn plant(from_repo: &Path, dir: &str, id: &str, repo: &Path, to_dir: &str) -> Hit {
    let b = fs::read(stored_path(from_repo, dir, id)).expect("read source");
    write(&stored_path(repo, to_dir, id), &b);
    Hit {
        needles: vec![id.to_string()],
        new_id: Some(id.to_string()),
    }
}

/// A command expected to fail in a case.
#[derive(Clone, Copy, Debug)]
enum Probe {
    Snapshots,
    /// Must refuse, deleting nothing.
    Prune,
    RestoreGood,
    DumpVictim,
    /// `cat pack` of the damaged file under its new name.
    CatPackNew,
    CatPackOld,
}

fn probe_args(w: &World, p: Probe, hit: &Hit) -> Vec<OsString> {
    match p {
        Probe::Snapshots => vec!["snapshots".into()],
        Probe::Prune => vec!["prune".into(), "--instant-delete".into()],
        Probe::RestoreGood => vec![
            "restore".into(),
            spec(&w.good, &w.src.join("keep")),
            "--target".into(),
            w.base.path("never-written").into_os_string(),
        ],
        Probe::DumpVictim => w.dump_victim_args(),
        Probe::CatPackNew => vec![
            "cat".into(),
            "pack".into(),
            hit.new_id.clone().expect("renamed").into(),
        ],
        Probe::CatPackOld => vec!["cat".into(), "pack".into(), w.victim_pack.clone().into()],
    }
}

/// What must still hold after the damage has been reported.
#[derive(Clone, Copy, Debug)]
enum After {
    /// Nothing else can be said (the repository cannot be opened).
    Nothing,
    /// The good snapshot restores byte-identical as it is.
    Good,
    /// `repair index` recovers: check passes, both snapshots restore.
    RepairIndex,
    /// A renamed pack: `repair index` adopts it if its header opens, and
    /// then the damage is still caught (by `check --read-data`, and when
    /// the blobs were damaged, by reading them); the good data is intact.
    RepairRenamedPack { blobs_damaged: bool },
    /// A planted foreign pack: the good data restores, and `repair index`
    /// does not adopt it, so check still reports it.
    ForeignPack,
}

/// Damages a copy of the repository (the world's pristine one is given).
type Damage = Box<dyn Fn(&World, &Path) -> Hit>;

struct Case {
    name: String,
    damage: Damage,
    probes: Vec<Probe>,
    code: i32,
    check_read_data: bool,
    after: After,
}

fn run_case(w: &World, c: &Case) {
    let f = w.copy();
    let mut hit = (c.damage)(w, &f.repo);
    if c.code == 12 {
        // Indistinguishable from a wrong password, and reported as one.
        hit.needles.push("wrong password".into());
    }
    let case = c.name.as_str();
    for &p in &c.probes {
        let data_before = files_in(&f.repo, "data").len();
        let r = run(&f, probe_args(w, p, &hit));
        fails_naming(&r, c.code, &hit.needles, case);
        if matches!(p, Probe::Prune) {
            assert_eq!(
                files_in(&f.repo, "data").len(),
                data_before,
                "[{case}] a failed prune deleted packs"
            );
        }
    }
    check_reports(&f, c.check_read_data, &hit.needles, c.code, case);
    match c.after {
        After::Nothing => {}
        After::Good => w.restore_good(&f, case),
        After::RepairIndex => {
            ok(&f, ["repair", "index"]);
            check_passes(&f, true, case);
            w.restore_good(&f, case);
            w.restore_victim(&f, case);
        }
        After::RepairRenamedPack { blobs_damaged } => {
            let new = hit.new_id.clone().expect("renamed");
            ok(&f, ["repair", "index"]);
            let needles = vec![new.clone()];
            if blobs_damaged {
                let r = run(&f, w.dump_victim_args());
                fails_naming(&r, 1, &needles, case);
            }
            check_reports(&f, true, &needles, 1, case);
            w.restore_good(&f, case);
        }
        After::ForeignPack => {
            w.restore_good(&f, case);
            w.restore_victim(&f, case);
            ok(&f, ["repair", "index"]);
            let r = run(&f, ["cat", "pack", hit.new_id.as_deref().expect("planted")]);
            fails_naming(&r, 1, &hit.needles, case);
            check_reports(&f, false, &hit.needles, 1, case);
            w.restore_good(&f, case);
            w.restore_victim(&f, case);
        }
    }
}

/// Runs every case, each on its own copy of the repository, and fails
/// naming all the cases that failed.
fn run_cases(w: &World, cases: &[Case]) {
    let mut failed = Vec::new();
    for c in cases {
        if catch_unwind(AssertUnwindSafe(|| run_case(w, c))).is_err() {
            failed.push(c.name.clone());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed: {failed:#?}",
        failed.len(),
        cases.len()
    );
}

// ---- truncation, extension and flipped bits ----

/// A change to a file's bytes.
#[derive(Clone, Copy, Debug)]
enum Edit {
    Truncate(usize),
    Append(usize),
    Flip(usize),
    /// Overwrite with these little-endian bytes at an offset.
    Put(usize, u32),
}

fn apply(b: &[u8], e: Edit) -> Vec<u8> {
    let mut v = b.to_vec();
    match e {
        Edit::Truncate(n) => v.truncate(n),
        Edit::Append(n) => v.extend(pseudo_random(n as u64 + 5, n)),
        Edit::Flip(i) => v[i] ^= 0x01,
        Edit::Put(i, x) => v[i..i + 4].copy_from_slice(&x.to_le_bytes()),
    }
    v
}

/// Truncations to 0, 1, the header's length, half and all but one byte,
/// and two extensions.
fn size_edits(len: usize) -> Vec<(String, Edit)> {
    let mut v: Vec<(String, Edit)> = [0, 1, 8, len / 2, len - 1]
        .into_iter()
        .map(|n| (format!("truncated to {n}"), Edit::Truncate(n)))
        .collect();
    v.push(("extended by 1".into(), Edit::Append(1)));
    v.push(("extended by 4096".into(), Edit::Append(4096)));
    v
}

/// Flips in the common header and in a sealed part starting at `sealed`
/// and ending at `end`.
fn header_flips() -> Vec<(String, Edit)> {
    vec![
        ("flipped magic".into(), Edit::Flip(0)),
        ("flipped version".into(), Edit::Flip(5)),
        ("flipped file type".into(), Edit::Flip(6)),
        ("flipped flags".into(), Edit::Flip(7)),
    ]
}

fn sealed_flips(what: &str, sealed: usize, end: usize) -> Vec<(String, Edit)> {
    vec![
        (format!("flipped {what} nonce"), Edit::Flip(sealed + 3)),
        (
            format!("flipped {what} ciphertext"),
            Edit::Flip(sealed + 24 + (end - sealed - 40) / 2),
        ),
        (format!("flipped {what} tag"), Edit::Flip(end - 1)),
    ]
}

/// Cases for one whole-file edit of `dir/id`, with the original name and
/// (unless `config`) renamed to its new hash.
fn edit_cases(
    kind: &str,
    dir: &'static str,
    id: &str,
    original: &[u8],
    edits: Vec<(String, Edit)>,
    plan: impl Fn(&Edit, bool) -> (Vec<Probe>, i32, bool, After),
) -> Vec<Case> {
    let mut out = Vec::new();
    let renames: &[bool] = if dir == "config" {
        &[false]
    } else {
        &[false, true]
    };
    for (label, e) in edits {
        for &rename in renames {
            let bytes = apply(original, e);
            let id = id.to_string();
            let (probes, code, check_read_data, after) = plan(&e, rename);
            out.push(Case {
                name: format!(
                    "{kind} {label}{}",
                    if rename { ", renamed to its hash" } else { "" }
                ),
                damage: Box::new(move |_, repo| {
                    if dir == "config" {
                        fs::write(repo.join("config"), &bytes).expect("write config");
                        Hit {
                            needles: vec!["config:".into()],
                            new_id: None,
                        }
                    } else {
                        replace(repo, dir, &id, &bytes, rename)
                    }
                }),
                probes,
                code,
                check_read_data,
                after,
            });
        }
    }
    out
}

fn read_stored(w: &World, dir: &str, id: &str) -> Vec<u8> {
    fs::read(stored_path(&w.base.repo, dir, id)).expect("read")
}

#[test]
fn damaged_snapshot_files_are_rejected() {
    let w = World::new();
    let b = read_stored(&w, "snapshots", &w.victim);
    let mut edits = size_edits(b.len());
    edits.extend(header_flips());
    edits.extend(sealed_flips("body", 8, b.len()));
    let cases = edit_cases("snapshot", "snapshots", &w.victim, &b, edits, |_, _| {
        (vec![Probe::Snapshots, Probe::Prune], 1, false, After::Good)
    });
    run_cases(&w, &cases);
}

#[test]
fn damaged_index_files_are_rejected() {
    let w = World::new();
    let b = read_stored(&w, "index", &w.good_index);
    let mut edits = size_edits(b.len());
    edits.extend(header_flips());
    edits.extend(sealed_flips("body", 8, b.len()));
    let cases = edit_cases("index", "index", &w.good_index, &b, edits, |_, _| {
        (
            vec![Probe::Snapshots, Probe::RestoreGood],
            1,
            false,
            After::RepairIndex,
        )
    });
    run_cases(&w, &cases);
}

#[test]
fn damaged_config_is_rejected() {
    let w = World::new();
    let b = fs::read(w.base.repo.join("config")).expect("config");
    let mut edits = size_edits(b.len());
    edits.push(("truncated to 40".into(), Edit::Truncate(40)));
    edits.extend(header_flips());
    edits.push(("flipped clear repository ID".into(), Edit::Flip(8 + 5)));
    edits.extend(sealed_flips("body", 40, b.len()));
    let cases = edit_cases("config", "config", "", &b, edits, |_, _| {
        (vec![Probe::Snapshots], 1, false, After::Nothing)
    });
    run_cases(&w, &cases);
}

/// The offset of `needle` in `hay`.
fn find_bytes(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|x| x == needle)
        .expect("bytes present")
}

/// The key file's clear CBOR map.
fn key_cbor(b: &[u8]) -> Vec<(ciborium::Value, ciborium::Value)> {
    let v: ciborium::Value = ciborium::from_reader(&b[8..]).expect("key CBOR");
    v.into_map().expect("map")
}

fn cbor_get<'a>(m: &'a [(ciborium::Value, ciborium::Value)], k: &str) -> &'a ciborium::Value {
    &m.iter()
        .find(|(x, _)| x.as_text() == Some(k))
        .unwrap_or_else(|| panic!("no {k} in the key file"))
        .1
}

fn only_key(repo: &Path) -> (String, Vec<u8>) {
    let keys = files_in(repo, "keys");
    assert_eq!(keys.len(), 1, "one key file");
    (hex_name(&keys[0]), fs::read(&keys[0]).expect("key"))
}

#[test]
fn damaged_key_files_are_rejected() {
    let w = World::new();
    let (id, b) = only_key(&w.base.repo);
    let m = key_cbor(&b);
    let wrapped = cbor_get(&m, "wrapped").as_bytes().expect("wrapped").clone();
    let salt = cbor_get(cbor_get(&m, "kdf").as_map().expect("kdf"), "salt")
        .as_bytes()
        .expect("salt")
        .clone();
    let ws = find_bytes(&b, &wrapped);
    let mut edits = size_edits(b.len());
    edits.extend(header_flips());
    edits.extend(sealed_flips("wrapped", ws, ws + wrapped.len()));
    edits.push(("flipped salt".into(), Edit::Flip(find_bytes(&b, &salt) + 7)));
    edits.push(("too large".into(), Edit::Append(70 << 10)));
    let cases = edit_cases("key", "keys", &id, &b, edits, |e, rename| {
        // With its name intact the name check catches everything. Renamed,
        // a changed wrapped secret or salt only makes the password fail.
        let password_fails = rename && matches!(e, Edit::Flip(i) if *i >= 8);
        let code = if password_fails { 12 } else { 1 };
        (vec![Probe::Snapshots], code, false, After::Nothing)
    });
    run_cases(&w, &cases);
}

#[test]
fn damaged_packs_are_rejected() {
    let w = World::new();
    let id = w.victim_pack.clone();
    let b = read_stored(&w, "data", &id);
    let p = b.len();
    let h = u32::from_le_bytes(b[p - 8..p - 4].try_into().expect("4 bytes")) as usize;
    let (o, l) = w.victim_blobs[0];
    assert_eq!(o, 8, "the first blob follows the file header");

    /// Which part of the pack an edit hits.
    #[derive(Clone, Copy, PartialEq)]
    enum Part {
        FileHeader,
        Blobs,
        /// Sealed header, trailer, or the file's size.
        Tail,
    }
    let mut edits: Vec<(String, Edit, Part)> = Vec::new();
    for (n, e) in size_edits(p) {
        edits.push((n, e, Part::Tail));
    }
    for (n, e) in header_flips() {
        edits.push((n, e, Part::FileHeader));
    }
    for (n, e) in sealed_flips("first blob's", o, o + l) {
        edits.push((n, e, Part::Blobs));
    }
    for (n, e) in sealed_flips("pack header", p - 8 - h, p - 8) {
        edits.push((n, e, Part::Tail));
    }
    edits.push((
        "flipped trailer length".into(),
        Edit::Flip(p - 8),
        Part::Tail,
    ));
    edits.push((
        "flipped trailer magic".into(),
        Edit::Flip(p - 1),
        Part::Tail,
    ));
    for (n, x) in [
        ("u32::MAX", u32::MAX),
        ("16 MiB + 1", (16 << 20) + 1),
        ("the pack's size", p as u32),
        ("39", 39),
    ] {
        edits.push((
            format!("trailer header length set to {n}"),
            Edit::Put(p - 8, x),
            Part::Tail,
        ));
    }
    let mut cases = Vec::new();
    for (label, e, part) in edits {
        for rename in [false, true] {
            let bytes = apply(&b, e);
            let size_changed = bytes.len() != p;
            let (probes, read_data, after) = match (rename, part) {
                (false, Part::FileHeader) => (vec![], true, After::Good),
                (false, Part::Blobs) => (vec![Probe::DumpVictim], true, After::Good),
                (false, Part::Tail) => (vec![Probe::CatPackOld], !size_changed, After::Good),
                (true, Part::FileHeader) => (
                    vec![Probe::DumpVictim],
                    false,
                    After::RepairRenamedPack {
                        blobs_damaged: false,
                    },
                ),
                (true, Part::Blobs) => (
                    vec![Probe::DumpVictim],
                    false,
                    After::RepairRenamedPack {
                        blobs_damaged: true,
                    },
                ),
                (true, Part::Tail) => (
                    vec![Probe::DumpVictim, Probe::CatPackNew],
                    false,
                    After::RepairRenamedPack {
                        blobs_damaged: false,
                    },
                ),
            };
            let id = id.clone();
            cases.push(Case {
                name: format!(
                    "pack {label}{}",
                    if rename { ", renamed to its hash" } else { "" }
                ),
                damage: Box::new(move |_, repo| replace(repo, "data", &id, &bytes, rename)),
                probes,
                code: 1,
                check_read_data: read_data,
                after,
            });
        }
    }
    run_cases(&w, &cases);
}

// ---- files moved between directories or copied from elsewhere ----

/// A second repository with the same password. With `twin`, it shares the
/// first one's master secret (so its ciphertexts are made with the same
/// keys) and differs only in its repository ID: only the associated data
/// can tell its files apart. It holds a backup of the same tree.
fn other_repository(w: &World, twin: bool) -> Fixture {
    use cairn_engine::backend::{self, OpenOptions};
    use cairn_engine::crypto::MasterKey;
    use cairn_engine::repofile::config::{ChunkerParams, Config};
    use cairn_engine::repofile::keyfile::{KdfParams, KeyFile};
    use cairn_engine::{Id, Repository};

    let o = Fixture::uninit();
    if twin {
        let loc = |p: &Path| p.to_str().expect("utf-8 path").to_string();
        let first = Repository::open(
            backend::open(&loc(&w.base.repo), &OpenOptions::default(), false).expect("backend"),
            w.base.password.as_bytes(),
        )
        .expect("open the first repository");
        let secret = *first.key().secret();
        let be = backend::open(&loc(&o.repo), &OpenOptions::default(), true).expect("backend");
        be.prepare_layout().expect("layout");
        let cfg = Config::new(1 << 20, 3, ChunkerParams::default());
        assert_ne!(cfg.id, *first.id());
        let kf = KeyFile::create(
            o.password.as_bytes(),
            KdfParams::new(8 << 10, 1, 1),
            &cfg.id,
            &secret,
            "twin".into(),
            "twin".into(),
        )
        .expect("key file");
        let kb = kf.encode();
        be.write(&format!("keys/{}", Id::of_stored(&kb)), kb)
            .expect("write key");
        be.write("config", cfg.encode(&MasterKey::from_secret(secret)))
            .expect("write config");
    } else {
        let mut c = o.command();
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
    }
    o.backup([&w.src]);
    o
}

fn one_file(repo: &Path, dir: &str) -> String {
    let v = files_in(repo, dir);
    hex_name(v.last().expect("a file"))
}

fn swap_case(
    name: &str,
    from: Option<&Fixture>,
    dir: &'static str,
    id: String,
    to: &'static str,
) -> Case {
    let (probes, after) = match to {
        "snapshots" => (vec![Probe::Snapshots, Probe::Prune], After::Good),
        "index" => (
            vec![Probe::Snapshots, Probe::RestoreGood],
            After::RepairIndex,
        ),
        _ => (vec![Probe::CatPackNew], After::ForeignPack),
    };
    let from_repo = from.map(|f| f.repo.clone());
    Case {
        name: name.to_string(),
        damage: Box::new(move |w, repo| {
            let src = from_repo.clone().unwrap_or_else(|| w.base.repo.clone());
            plant(&src, dir, &id, repo, to)
        }),
        probes,
        code: 1,
        check_read_data: false,
        after,
    }
}

#[test]
fn files_in_the_wrong_directory_are_rejected() {
    let w = World::new();
    let (key, _) = only_key(&w.base.repo);
    let cases = vec![
        swap_case(
            "snapshot copied into index/",
            None,
            "snapshots",
            w.good.clone(),
            "index",
        ),
        swap_case("key copied into index/", None, "keys", key.clone(), "index"),
        swap_case(
            "pack copied into snapshots/",
            None,
            "data",
            w.victim_pack.clone(),
            "snapshots",
        ),
        swap_case(
            "index copied into snapshots/",
            None,
            "index",
            w.good_index.clone(),
            "snapshots",
        ),
        swap_case("key copied into snapshots/", None, "keys", key, "snapshots"),
        swap_case(
            "snapshot copied into data/",
            None,
            "snapshots",
            w.good.clone(),
            "data",
        ),
        swap_case(
            "index copied into data/",
            None,
            "index",
            w.good_index.clone(),
            "data",
        ),
    ];
    run_cases(&w, &cases);
}

#[test]
fn files_from_another_repository_are_rejected() {
    let w = World::new();
    let mut cases = Vec::new();
    let others = [
        ("another repository", other_repository(&w, false)),
        (
            "a repository sharing the master secret",
            other_repository(&w, true),
        ),
    ];
    for (what, o) in &others {
        cases.push(swap_case(
            &format!("snapshot from {what}"),
            Some(o),
            "snapshots",
            one_file(&o.repo, "snapshots"),
            "snapshots",
        ));
        cases.push(swap_case(
            &format!("index from {what}"),
            Some(o),
            "index",
            one_file(&o.repo, "index"),
            "index",
        ));
        for p in files_in(&o.repo, "data") {
            cases.push(swap_case(
                &format!("pack {} from {what}", &hex_name(&p)[..8]),
                Some(o),
                "data",
                hex_name(&p),
                "data",
            ));
        }
        // Its key file: opens with the password, but names another
        // repository. Beside this repository's key it is skipped; as the
        // only key it is refused.
        let (okey, _) = only_key(&o.repo);
        let orepo = o.repo.clone();
        let name = format!("key from {what} in place of the key");
        cases.push(Case {
            name,
            damage: Box::new(move |_, repo| {
                let (mine, _) = only_key(repo);
                fs::remove_file(repo.join("keys").join(&mine)).expect("remove key");
                plant(&orepo, "keys", &okey, repo, "keys")
            }),
            probes: vec![Probe::Snapshots],
            code: 1,
            check_read_data: false,
            after: After::Nothing,
        });
    }
    run_cases(&w, &cases);

    // Beside the right key, a foreign key file changes nothing, and
    // `check`, which tries the password on every key, names it.
    for (what, o) in &others {
        let f = w.copy();
        check_passes(&f, false, "before planting a key");
        let (okey, _) = only_key(&o.repo);
        plant(&o.repo, "keys", &okey, &f.repo, "keys");
        let r = run(&f, ["snapshots", "--json"]);
        assert_eq!(r.code, 0, "key from {what} beside the key: {}", r.stderr);
        w.restore_good(&f, what);
        w.restore_victim(&f, what);
        check_reports(
            &f,
            false,
            std::slice::from_ref(&okey),
            0,
            &format!("key from {what} beside the key"),
        );
    }
}

// ---- replayed index files ----

fn save_dir(repo: &Path, dir: &str) -> Vec<(String, Vec<u8>)> {
    files_in(repo, dir)
        .into_iter()
        .map(|p| (hex_name(&p), fs::read(&p).expect("read")))
        .collect()
}

fn put_back(repo: &Path, dir: &str, files: &[(String, Vec<u8>)]) {
    for (n, b) in files {
        write(&repo.join(dir).join(n), b);
    }
}

#[test]
fn index_superseded_by_repair_put_back_is_ignored() {
    let w = World::new();
    let f = w.copy();
    let old = save_dir(&f.repo, "index");
    ok(&f, ["repair", "index"]);
    let new = save_dir(&f.repo, "index");
    assert_eq!(new.len(), 1, "repair writes one index file");
    assert!(old.iter().all(|(n, _)| !new.iter().any(|(m, _)| m == n)));
    put_back(&f.repo, "index", &old);

    // The superseding file wins: nothing changes, nothing is reported.
    ok(&f, ["snapshots"]);
    check_passes(&f, true, "replayed after repair");
    w.restore_good(&f, "replayed after repair");
    w.restore_victim(&f, "replayed after repair");
    // A prune supersedes them again and deletes them.
    ok(&f, ["prune"]);
    assert_eq!(files_in(&f.repo, "index").len(), 1);
    check_passes(&f, true, "replayed after repair, pruned");
    w.restore_good(&f, "replayed after repair, pruned");
    w.restore_victim(&f, "replayed after repair, pruned");
}

#[test]
fn index_listing_pruned_packs_put_back_is_harmless() {
    let w = World::new();
    let f = w.copy();
    let old = save_dir(&f.repo, "index");
    let victim_pack = stored_path(&f.repo, "data", &w.victim_pack);
    ok(&f, ["forget", &w.victim]);
    ok(&f, ["prune", "--instant-delete"]);
    assert!(!victim_pack.exists(), "prune deleted the victim's pack");
    let pruned = save_dir(&f.repo, "index");

    // Put back beside the index that superseded it: ignored.
    put_back(&f.repo, "index", &old);
    ok(&f, ["snapshots"]);
    check_passes(&f, true, "replayed beside its successor");
    w.restore_good(&f, "replayed beside its successor");

    // With its successor deleted too (a rollback): the deleted packs are
    // reported, prune refuses to run, and nothing good is lost.
    for (n, _) in &pruned {
        fs::remove_file(f.repo.join("index").join(n)).expect("remove");
    }
    let needles = vec![w.victim_pack.clone()];
    check_reports(&f, false, &needles, 1, "rolled back index");
    let data_before = files_in(&f.repo, "data").len();
    let r = run(&f, ["prune", "--instant-delete"]);
    fails_naming(&r, 1, &needles, "prune after rollback");
    assert_eq!(files_in(&f.repo, "data").len(), data_before);
    w.restore_good(&f, "rolled back index");
    ok(&f, ["repair", "index"]);
    check_passes(&f, true, "rolled back index, repaired");
    w.restore_good(&f, "rolled back index, repaired");
}

// ---- key files with hostile KDF parameters ----

/// The key file with some `kdf` fields replaced, renamed to its hash.
fn hostile_key(b: &[u8], set: &[(&str, u64)]) -> Vec<u8> {
    let mut m = key_cbor(b);
    for (k, v) in m.iter_mut() {
        if k.as_text() == Some("kdf") {
            let kdf = v.as_map_mut().expect("kdf map");
            for (name, val) in set {
                let slot = kdf
                    .iter_mut()
                    .find(|(x, _)| x.as_text() == Some(name))
                    .unwrap_or_else(|| panic!("no kdf.{name}"));
                slot.1 = ciborium::Value::Integer((*val).into());
            }
        }
    }
    let mut out = b[..8].to_vec();
    ciborium::into_writer(&ciborium::Value::Map(m), &mut out).expect("encode");
    out
}

#[test]
fn key_files_with_hostile_kdf_parameters_fail_fast() {
    let w = World::new();
    let (id, b) = only_key(&w.base.repo);
    let params: &[(&str, &[(&str, u64)])] = &[
        ("memory 4 TiB", &[("memory_kib", 4 << 30)]),
        ("memory 4 GiB + 1 KiB", &[("memory_kib", (4 << 20) + 1)]),
        ("memory u64::MAX", &[("memory_kib", u64::MAX)]),
        ("memory 1 KiB", &[("memory_kib", 1)]),
        (
            "iterations u32::MAX",
            &[("iterations", u64::from(u32::MAX))],
        ),
        ("iterations 65", &[("iterations", 65)]),
        ("iterations 0", &[("iterations", 0)]),
        ("parallelism 0", &[("parallelism", 0)]),
        ("parallelism 2^24", &[("parallelism", 1 << 24)]),
        (
            "everything absurd",
            &[
                ("memory_kib", (4 << 20) + 1),
                ("iterations", 1 << 20),
                ("parallelism", 1 << 20),
            ],
        ),
    ];
    let mut failed = Vec::new();
    for (name, set) in params {
        let hk = hostile_key(&b, set);
        let hid = hash_hex(&hk);
        let r = catch_unwind(AssertUnwindSafe(|| {
            // As the only key: refused, naming it, before any KDF work.
            let f = w.copy();
            fs::remove_file(f.repo.join("keys").join(&id)).expect("remove key");
            write(&f.repo.join("keys").join(&hid), &hk);
            let case = format!("only key, {name}");
            let mut c = f.command();
            c.arg("snapshots");
            let t = Instant::now();
            let r = run_bounded(c, Duration::from_secs(5));
            let took = t.elapsed();
            fails_naming(&r, 1, std::slice::from_ref(&hid), &case);
            assert!(took < Duration::from_secs(5), "[{case}] took {took:?}");
            check_reports(&f, false, std::slice::from_ref(&hid), 1, &case);

            // Beside the real key: skipped (quickly), reported by check.
            let f = w.copy();
            write(&f.repo.join("keys").join(&hid), &hk);
            let case = format!("extra key, {name}");
            let mut c = f.command();
            c.arg("snapshots");
            let t = Instant::now();
            let r = run_bounded(c, Duration::from_secs(5));
            assert_eq!(r.code, 0, "[{case}] {}", r.stderr);
            assert!(t.elapsed() < Duration::from_secs(5), "[{case}] too slow");
            check_reports(&f, false, std::slice::from_ref(&hid), 1, &case);
            w.restore_good(&f, &case);
        }));
        if r.is_err() {
            failed.push(*name);
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}

#[test]
fn damaged_extra_key_is_reported_and_skipped() {
    let w = World::new();
    let f0 = w.copy();
    // A second key, for another password.
    let pw2 = f0.path("pw2");
    write(&pw2, b"another password");
    let mut c = f0.command();
    c.args(["key", "add", "--kdf-memory", "8", "--kdf-iterations", "1"])
        .arg("--new-password-file")
        .arg(&pw2);
    run_bounded(c, LIMIT).code(0);
    let keys = files_in(&f0.repo, "keys");
    assert_eq!(keys.len(), 2);
    let (mine, _) = only_key(&w.base.repo);
    let extra = keys
        .iter()
        .map(|p| hex_name(p))
        .find(|n| *n != mine)
        .expect("the added key");
    let b = fs::read(f0.repo.join("keys").join(&extra)).expect("key");
    let mut failed = Vec::new();
    for (label, e) in size_edits(b.len()).into_iter().chain(header_flips()) {
        for rename in [false, true] {
            let case = format!("extra key {label}, renamed {rename}");
            let r = catch_unwind(AssertUnwindSafe(|| {
                let f = Fixture::uninit();
                copy_tree(&f0.repo, &f.repo);
                let hit = replace(&f.repo, "keys", &extra, &apply(&b, e), rename);
                let r = run(&f, ["snapshots"]);
                assert_eq!(r.code, 0, "[{case}] {}", r.stderr);
                check_reports(&f, false, &hit.needles, 1, &case);
                w.restore_good(&f, &case);
            }));
            if r.is_err() {
                failed.push(case);
            }
        }
    }
    assert!(failed.is_empty(), "failed: {failed:#?}");
}

/// Snapshots and packs *moved* (not copied) into `index/` are the only
/// copies there are: `repair index` must put them back where they belong
/// rather than delete them with the old index files.
#[test]
fn repair_index_puts_files_moved_into_index_back() {
    let w = World::new();
    let f = w.copy();
    for (dir, id) in [("snapshots", &w.victim), ("data", &w.victim_pack)] {
        let from = stored_path(&f.repo, dir, id);
        let b = fs::read(&from).expect("read");
        fs::remove_file(&from).expect("remove");
        write(&stored_path(&f.repo, "index", id), &b);
    }
    // Whichever misplaced file is met first is the one named.
    let r = run(&f, ["snapshots"]);
    fails_naming(
        &r,
        1,
        &[w.victim.clone(), w.victim_pack.clone()],
        "snapshot and pack moved into index/",
    );
    let r = ok(&f, ["repair", "index"]);
    assert!(
        r.stdout_str().contains(&w.victim[..8]) || r.stderr.contains(&w.victim),
        "repair index does not say it moved the snapshot: {}{}",
        r.stdout_str(),
        r.stderr
    );
    assert!(stored_path(&f.repo, "snapshots", &w.victim).is_file());
    assert!(stored_path(&f.repo, "data", &w.victim_pack).is_file());
    assert!(files_in(&f.repo, "index")
        .iter()
        .all(|p| hex_name(p) != w.victim && hex_name(p) != w.victim_pack));
    check_passes(&f, true, "after repair of files moved into index/");
    w.restore_good(&f, "after repair of files moved into index/");
    w.restore_victim(&f, "after repair of files moved into index/");
}

/// An index whose entries for a pack overlap (only a key holder, or a bug,
/// can write one; the pack itself is intact) makes restore report the
/// file it cannot complete and fail, without a panic and without writing
/// the overlapping bytes as if they were the file's; the other file of the
/// snapshot is restored whole.
#[test]
fn overlapping_index_entries_are_reported_by_restore() {
    use cairn_engine::backend::{self, OpenOptions};
    use cairn_engine::pack::{encode_entries, BlobType};
    use cairn_engine::Repository;

    let f = Fixture::new();
    let src = f.path("src");
    fs::create_dir_all(&src).expect("mkdir");
    let big = pseudo_random(41, 6 << 20);
    write(&src.join("big"), &big);
    write(&src.join("small"), b"untouched by the damage");
    f.backup([&src]);

    let loc = f.repo.to_str().expect("utf-8 path").to_string();
    let repo = Repository::open(
        backend::open(&loc, &OpenOptions::default(), false).expect("backend"),
        f.password.as_bytes(),
    )
    .expect("open the repository");
    let mut forged = 0;
    for (old, mut file) in repo.read_index_files().expect("index files") {
        for p in &mut file.packs {
            let mut entries = p.entries("index").expect("entries");
            entries.sort_by_key(|e| e.offset);
            let data: Vec<usize> = (0..entries.len())
                .filter(|&i| entries[i].blob_type == BlobType::Data)
                .collect();
            if forged == 0 && data.len() >= 2 {
                // The second data blob now starts in the middle of the first.
                let (a, b) = (data[0], data[1]);
                entries[b].offset = entries[a].offset + entries[a].length / 2;
                p.blobs = encode_entries(&entries);
                forged += 1;
            }
        }
        repo.save_index(&file).expect("write the forged index");
        repo.backend()
            .delete(&format!("index/{old}"))
            .expect("remove the original index");
    }
    assert_eq!(forged, 1, "no pack with two data blobs to forge");

    let target = f.path("target");
    let r = f.run([
        OsString::from("restore"),
        OsString::from("latest"),
        OsString::from("--target"),
        target.clone().into_os_string(),
    ]);
    assert_ne!(r.code, 0, "restore succeeded: {}", r.stderr);
    r.no_panic();
    assert!(r.stderr.contains("overlaps"), "{}", r.stderr);
    assert!(r.stderr.contains("big"), "{}", r.stderr);
    assert_eq!(
        fs::read(under(&target, &src.join("small"))).expect("small restored"),
        b"untouched by the damage"
    );
    if let Ok(got) = fs::read(under(&target, &src.join("big"))) {
        assert_ne!(got, big, "a damaged restore cannot have produced the file");
    }
    // Reading the data finds the index at odds with the pack's header,
    // naming the pack and the file that depends on it.
    let c = f.run(["check", "--read-data"]);
    c.code(1);
    let out = format!("{}{}", c.stdout_str(), c.stderr);
    assert!(
        out.contains("pack header does not match the index") && out.contains("data/"),
        "{out}"
    );
    assert!(out.contains(&format!("{}/big", src.display())), "{out}");
}
