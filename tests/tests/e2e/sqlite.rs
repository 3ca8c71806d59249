//! Live SQLite databases (`backup --sqlite`): consistent captures while
//! another process writes, journal files never stored, page-level
//! deduplication, every restore path, bad inputs, and point-in-time
//! selection.
//!
//! Databases are built and written by `tests/support/sqlite_writer.py`
//! (python3's built-in sqlite3 module), always in a separate process, and
//! checked here with rusqlite. `sqlite export --format sql` output is loaded
//! with the sqlite3 command-line shell.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use crate::common::*;

/// Every balance starts at this (see sqlite_writer.py).
const START_BALANCE: i64 = 1000;
const ACCOUNTS: i64 = 1000;

fn helper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("support/sqlite_writer.py")
}

fn python() -> Command {
    let mut c = Command::new("python3");
    c.arg(helper()).stdin(Stdio::null());
    c
}

/// Runs the helper to completion, asserting success.
fn py<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = python();
    c.args(args);
    let r = run_command(c);
    r.code(0);
    r
}

/// A helper process running in the background; killed when dropped.
struct Bg {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Bg {
    fn spawn<I, S>(args: I) -> Bg
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = python();
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = c.spawn().expect("spawn python3 sqlite_writer.py");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Bg { child, stdout }
    }

    /// The next line of the helper's stdout (blocks).
    fn line(&mut self) -> String {
        let mut l = String::new();
        self.stdout.read_line(&mut l).unwrap();
        assert!(
            !l.is_empty(),
            "the helper exited early: {:?}",
            self.child.try_wait()
        );
        l.trim_end().to_string()
    }

    /// Closes the helper's stdin and waits for it; its remaining stdout.
    fn finish(&mut self) -> String {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).unwrap();
        let st = self.child.wait().unwrap();
        assert!(st.success(), "helper failed: {st:?}; stdout: {rest}");
        rest
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The writer of `transfer`: moves money between accounts until stopped.
struct Writer {
    bg: Bg,
    stop: PathBuf,
}

impl Writer {
    fn start(db: &Path, stop: &Path, extra: &[&str]) -> Writer {
        let mut args: Vec<std::ffi::OsString> = vec![
            "transfer".into(),
            db.into(),
            "--stop".into(),
            stop.into(),
            "--seconds".into(),
            "90".into(),
        ];
        args.extend(extra.iter().map(Into::into));
        let mut bg = Bg::spawn(args);
        // The writer says so once its first transfer is committed.
        assert_eq!(bg.line(), "running");
        Writer {
            bg,
            stop: stop.to_path_buf(),
        }
    }

    /// Stops the writer; its report `{"transactions": N, "vacuums": M}`.
    fn stop(mut self) -> Value {
        write(&self.stop, b"");
        let out = self.bg.finish();
        let last = out.lines().last().unwrap_or_default().to_string();
        serde_json::from_str(&last).unwrap_or_else(|e| panic!("writer report {last:?}: {e}"))
    }
}

fn open_ro(p: &Path) -> Connection {
    Connection::open_with_flags(
        p,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("open {}: {e}", p.display()))
}

fn integrity(c: &Connection) -> String {
    let mut st = c.prepare("PRAGMA integrity_check").unwrap();
    let rows: Vec<String> = st
        .query_map([], |r| r.get(0))
        .and_then(|m| m.collect())
        .unwrap_or_else(|e| vec![format!("error: {e}")]);
    rows.join("; ")
}

fn scalar(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// What a restored bank database says about itself.
#[derive(Debug)]
struct Bank {
    integrity: String,
    sum: i64,
    accounts: i64,
    txns: i64,
    ledger: i64,
    /// Accounts whose balance is not 1000 plus the ledger's incoming
    /// minus outgoing amounts.
    disagreeing: i64,
}

fn bank(p: &Path) -> Bank {
    let c = open_ro(p);
    Bank {
        integrity: integrity(&c),
        sum: scalar(&c, "SELECT sum(balance) FROM accounts"),
        accounts: scalar(&c, "SELECT count(*) FROM accounts"),
        txns: scalar(&c, "SELECT v FROM meta WHERE k = 'txns'"),
        ledger: scalar(&c, "SELECT count(*) FROM ledger"),
        disagreeing: scalar(
            &c,
            "SELECT count(*) FROM accounts a WHERE a.balance != 1000 \
             + coalesce((SELECT sum(amount) FROM ledger WHERE dst = a.id), 0) \
             - coalesce((SELECT sum(amount) FROM ledger WHERE src = a.id), 0)",
        ),
    }
}

fn assert_consistent(b: &Bank, what: &str) {
    assert_eq!(b.integrity, "ok", "{what}: {b:?}");
    assert_eq!(b.accounts, ACCOUNTS, "{what}: {b:?}");
    assert_eq!(
        b.sum,
        START_BALANCE * ACCOUNTS,
        "{what}: total balance changed: {b:?}"
    );
    assert_eq!(
        b.ledger, b.txns,
        "{what}: ledger rows and meta.txns disagree (a torn transaction): {b:?}"
    );
    assert_eq!(
        b.disagreeing, 0,
        "{what}: balances disagree with the ledger: {b:?}"
    );
}

/// All rows of a table, by rowid.
fn rows(c: &Connection, table: &str) -> Vec<Vec<SqlValue>> {
    let sql = format!(
        "SELECT * FROM \"{}\" ORDER BY rowid",
        table.replace('"', "\"\"")
    );
    let mut st = c.prepare(&sql).unwrap();
    let n = st.column_count();
    st.query_map([], |r| (0..n).map(|i| r.get::<_, SqlValue>(i)).collect())
        .and_then(|m| m.collect())
        .unwrap()
}

/// The node of `path` in a snapshot, from `ls --json SNAP:PATH`.
fn node_at(f: &Fixture, snap: &str, path: &Path) -> Value {
    let r = f.ok([
        "--json".as_ref(),
        "ls".as_ref(),
        spec(snap, path).as_os_str(),
    ]);
    let want = path.to_str().unwrap();
    r.json_lines()
        .into_iter()
        .find(|v| v["path"] == want)
        .unwrap_or_else(|| panic!("{want} not in `ls {snap}`: {}", r.stdout_str()))
}

/// Every path in a snapshot, from `ls SNAP`.
fn ls_paths(f: &Fixture, snap: &str) -> Vec<String> {
    f.ok(["ls", snap])
        .stdout_str()
        .lines()
        .map(String::from)
        .collect()
}

fn dump(f: &Fixture, spec_: &std::ffi::OsStr) -> Vec<u8> {
    f.ok(["dump".as_ref(), spec_]).stdout
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn create_bank(db: &Path, journal: &str, page_size: u32) {
    py([
        "create".as_ref(),
        db.as_os_str(),
        "--journal".as_ref(),
        journal.as_ref(),
        "--page-size".as_ref(),
        page_size.to_string().as_ref(),
        "--accounts".as_ref(),
        ACCOUNTS.to_string().as_ref(),
        "--filler-rows".as_ref(),
        "700".as_ref(),
        "--filler-bytes".as_ref(),
        "2000".as_ref(),
    ]);
}

// ------------------------------------------------------------ consistency

/// A writer process transfers money flat out while cairn takes five
/// backups; every snapshot restores to a database that passes the
/// integrity check, keeps the total balance, and holds whole transactions
/// only.
fn consistent_under_concurrent_writer(journal: &str, page_size: u32, writer_args: &[&str]) {
    let f = Fixture::new();
    let db = f.path("live/app.db");
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    create_bank(&db, journal, page_size);
    let writer = Writer::start(&db, &f.path("stop"), writer_args);

    let mut snaps = Vec::new();
    for _ in 0..5 {
        let s = f.backup([
            "--sqlite".as_ref(),
            db.as_os_str(),
            "--sqlite-timeout".as_ref(),
            "60s".as_ref(),
        ]);
        assert_eq!(s["errors"], serde_json::json!([]), "{s}");
        snaps.push(snap_id(&s));
    }
    let report = writer.stop();
    let committed = report["transactions"].as_i64().unwrap();
    eprintln!("{journal}/{page_size} {writer_args:?}: writer report {report}");
    assert!(committed > 0, "the writer committed nothing: {report}");

    let node = node_at(&f, &snaps[4], &db);
    assert_eq!(node["sqlite"]["page_size"], page_size, "{node}");
    assert_eq!(node["sqlite"]["journal_mode"], journal, "{node}");
    assert_eq!(
        node["size"].as_u64().unwrap(),
        node["sqlite"]["page_count"].as_u64().unwrap() * page_size as u64,
        "{node}"
    );

    let mut txns = Vec::new();
    for (i, snap) in snaps.iter().enumerate() {
        let target = f.path(&format!("restore{i}"));
        let r = f.ok([
            "restore".as_ref(),
            spec(snap, &db).as_os_str(),
            "--target".as_ref(),
            target.as_os_str(),
        ]);
        let restored = target.join("app.db");
        let line = format!("database {}: integrity check ok", restored.display());
        assert!(
            r.stdout_str().contains(&line),
            "restore of {snap} does not report {line:?}: {}",
            r.stdout_str()
        );
        let b = bank(&restored);
        assert_consistent(&b, &format!("snapshot {i} ({snap})"));
        assert!(b.txns <= committed, "{b:?}, writer committed {committed}");
        txns.push(b.txns);
    }
    eprintln!("{journal}/{page_size}: transfers in the snapshots: {txns:?}");
    assert!(
        txns.windows(2).all(|w| w[0] <= w[1]),
        "snapshots went back in time: {txns:?}"
    );
    assert!(
        txns[4] > txns[0],
        "the writer made no progress during the backups: {txns:?}"
    );
}

#[test]
fn sqlite_wal_4k_pages_consistent_under_concurrent_writer() {
    consistent_under_concurrent_writer("wal", 4096, &[]);
}

#[test]
fn sqlite_wal_64k_pages_consistent_under_concurrent_writer() {
    consistent_under_concurrent_writer("wal", 65536, &[]);
}

#[test]
fn sqlite_rollback_journal_consistent_under_concurrent_writer() {
    // synchronous=OFF only spares the disk; locking is the same.
    consistent_under_concurrent_writer("delete", 4096, &["--synchronous", "OFF"]);
}

#[test]
fn sqlite_consistent_while_vacuumed() {
    // Every 25 transfers: fill and empty a scratch table (so the page
    // count changes), then VACUUM.
    consistent_under_concurrent_writer("wal", 4096, &["--vacuum-every", "25"]);
}

// ------------------------------------------------------- never stored

#[test]
fn sqlite_wal_and_shm_are_never_stored() {
    let f = Fixture::new();
    let dir = f.path("app");
    let db = dir.join("app.db");
    fs::create_dir_all(&dir).unwrap();
    create_bank(&db, "wal", 4096);
    {
        let c = Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA user_version = 42").unwrap();
    }
    write(&dir.join("notes.txt"), b"notes\n");
    // A -wal whose database is not named with --sqlite is an ordinary file.
    write(&dir.join("other.db-wal"), &pseudo_random(1, 5000));

    // Another process keeps the database open with 20 rows only in the WAL.
    let mut holder = Bg::spawn(["hold-wal".as_ref(), db.as_os_str()]);
    assert_eq!(holder.line(), "ready");
    let wal = with_suffix(&db, "-wal");
    let shm = with_suffix(&db, "-shm");
    assert!(fs::metadata(&wal).unwrap().len() > 0, "no WAL frames");
    assert!(shm.exists());

    // The database named relatively, its directory absolutely.
    let mut c = f.command();
    c.current_dir(f.dir.path())
        .args(["backup", "--json", "--sqlite", "app/app.db"])
        .arg(&dir);
    let r = run_command(c);
    r.code(0);
    let s = r.json();
    assert_eq!(s["errors"], serde_json::json!([]), "{s}");
    let snap = snap_id(&s);

    let paths = ls_paths(&f, &snap);
    let has = |p: &Path| paths.iter().any(|l| l == p.to_str().unwrap());
    assert!(has(&db), "app.db missing: {paths:#?}");
    assert!(has(&dir.join("notes.txt")), "{paths:#?}");
    assert!(has(&dir.join("other.db-wal")), "{paths:#?}");
    assert!(
        !paths.iter().any(|l| l.ends_with("app.db-wal")
            || l.ends_with("app.db-shm")
            || l.ends_with("app.db-journal")),
        "a journal file of app.db was stored: {paths:#?}"
    );

    // `cat tree` of the directory: app.db carries its SQLite facts.
    let r = f.ok([
        "cat".as_ref(),
        "tree".as_ref(),
        spec("latest", &dir).as_os_str(),
    ]);
    let tree = r.json();
    let nodes = tree["nodes"].as_array().expect("nodes");
    let names: Vec<&Value> = nodes.iter().map(|n| &n["name"]).collect();
    assert_eq!(
        names,
        ["app.db", "notes.txt", "other.db-wal"],
        "entries of {}: {tree}",
        dir.display()
    );
    let app = &nodes[0];
    let meta = &app["sqlite"];
    assert_eq!(meta["page_size"], 4096, "{app}");
    assert_eq!(meta["journal_mode"], "wal", "{app}");
    assert_eq!(meta["user_version"], 42, "{app}");
    let pages = meta["page_count"].as_u64().expect("page_count");
    assert!(pages > 100, "{app}");
    assert_eq!(app["size"].as_u64(), Some(pages * 4096), "{app}");
    assert!(
        meta["schema_hash"].as_str().is_some_and(|h| h.len() == 64),
        "{app}"
    );
    assert!(meta["sqlite_version"].as_str().is_some(), "{app}");
    assert!(nodes[1].get("sqlite").is_none_or(Value::is_null), "{tree}");

    // The rows that were only in the WAL are in the captured database.
    let out = f.path("dumped.db");
    write(&out, &dump(&f, &spec(&snap, &db)));
    let c = open_ro(&out);
    assert_eq!(integrity(&c), "ok");
    assert_eq!(scalar(&c, "SELECT count(*) FROM held"), 20);
    assert_eq!(scalar(&c, "SELECT count(*) FROM accounts"), ACCOUNTS);
    drop(c);

    // Without --sqlite the same directory's WAL is just a file.
    let s = f.backup([&dir]);
    let plain = ls_paths(&f, &snap_id(&s));
    assert!(
        plain.iter().any(|l| l.ends_with("/app/app.db-wal")),
        "without --sqlite the -wal file is an ordinary file: {plain:#?}"
    );
    holder.finish();
}

// ------------------------------------------------------- writer's core

/// Fills `db` with 20,000 rows of 1000 random bytes (about 21 MB).
fn bulk_db(db: &Path) {
    py([
        "bulk".as_ref(),
        db.as_os_str(),
        "--rows".as_ref(),
        "20000".as_ref(),
        "--row-bytes".as_ref(),
        "1000".as_ref(),
    ]);
}

/// The name and nice value of each of a process's threads.
fn threads(pid: u32) -> Vec<(String, i32)> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("stat")).ok())
        .filter_map(|stat| {
            // pid (comm) state ... with nice the 19th field.
            let name = &stat[stat.find('(')? + 1..stat.rfind(')')?];
            let rest = &stat[stat.rfind(')')? + 2..];
            let nice = rest.split(' ').nth(16)?.parse().ok()?;
            Some((name.to_string(), nice))
        })
        .collect()
}

/// Backs up databases while watching the threads: the names of the
/// page-sealing pool's threads, and the highest nice values seen of the
/// process's first thread and of a capture thread.
fn watch_capture(f: &Fixture, dbs: &[&Path]) -> (std::collections::BTreeSet<String>, i32, i32) {
    let mut c = f.command();
    c.args(["backup", "--json"]);
    for db in dbs {
        c.arg("--sqlite").arg(db);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let pid = child.id();
    let mut pool = std::collections::BTreeSet::new();
    let (mut main_nice, mut capture_nice) = (None, None);
    let mut polls = 0;
    while child.try_wait().unwrap().is_none() {
        polls += 1;
        for (name, nice) in threads(pid) {
            if name.starts_with("cairn-sqlite") {
                pool.insert(name);
            } else if name == "cairn-capture" {
                capture_nice = Some(capture_nice.map_or(nice, |n: i32| n.max(nice)));
            } else if name == "cairn" {
                main_nice = Some(main_nice.map_or(nice, |n: i32| n.max(nice)));
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let r = wait_run(child, "cairn backup --sqlite");
    r.code(0);
    assert!(polls > 5, "the backup ended before it could be watched");
    let main_nice = main_nice.expect("the backup's first thread was never seen");
    let capture_nice = capture_nice.expect("no capture thread was seen");
    (pool, main_nice, capture_nice)
}

/// A live database's pages are hashed and sealed on one thread fewer than
/// there are cores, so that the application writing it keeps a core
/// (`bench/sqlite.sh` measures what that does for a writer's rate). On two
/// cores that one thread is the capturing thread itself: no page-sealing
/// pool is started. A backup whose databases are all in WAL mode, where
/// the capture blocks no writer, runs at nice 10 from its start (key
/// derivation and index loading included), so the application wins the
/// CPU when they compete. Where a database is in rollback-journal mode,
/// its writers wait for the capture's lock: the process keeps its
/// priority, and only a WAL database's capture thread is lowered.
#[test]
fn sqlite_capture_leaves_a_core_to_the_application() {
    let f = Fixture::new();
    let wal = f.path("big.db");
    bulk_db(&wal);
    let rollback = f.path("rollback.db");
    py([
        "bulk".as_ref(),
        rollback.as_os_str(),
        "--journal".as_ref(),
        "delete".as_ref(),
        "--rows".as_ref(),
        "20000".as_ref(),
        "--row-bytes".as_ref(),
        "1000".as_ref(),
    ]);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool_size = if cores <= 2 { 0 } else { cores - 1 };
    let want: std::collections::BTreeSet<String> = (0..pool_size)
        .map(|i| format!("cairn-sqlite-{i}"))
        .collect();
    // cairn starts with the nice value of the thread that spawns it.
    let stat = fs::read_to_string("/proc/thread-self/stat").unwrap();
    let base: i32 = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(16)
        .and_then(|n| n.parse().ok())
        .expect("this test thread's nice value");
    let lowered = base.max(10);

    let (pool, main_nice, capture_nice) = watch_capture(&f, &[&wal]);
    assert_eq!(pool, want, "capture threads on {cores} cores");
    assert_eq!(main_nice, lowered, "nice of a WAL-only backup's process");
    assert_eq!(capture_nice, lowered, "WAL capture thread's nice");

    let (pool, main_nice, capture_nice) = watch_capture(&f, &[&rollback]);
    assert_eq!(pool, want, "capture threads on {cores} cores");
    assert_eq!(main_nice, base, "nice of a rollback-journal backup");
    assert_eq!(capture_nice, base, "rollback-journal capture thread's nice");

    // One database of each kind: normal priority, but the WAL capture
    // thread is still lowered.
    let (_, main_nice, capture_nice) = watch_capture(&f, &[&rollback, &wal]);
    assert_eq!(main_nice, base, "nice of a backup with a rollback database");
    assert_eq!(capture_nice, lowered, "WAL capture thread's nice");
    assert_eq!(f.all_snapshots().len(), 3);
}

// -------------------------------------------------------- incremental

#[test]
fn sqlite_incremental_backup_stores_only_changed_pages() {
    let f = Fixture::new();
    let db = f.path("big.db");
    bulk_db(&db);
    let size = fs::metadata(&db).unwrap().len();
    assert!(size > 20_000_000, "database is only {size} bytes");

    let first = f.backup(["--sqlite".as_ref(), db.as_os_str()]);
    assert!(
        stat(&first, "bytes_added") > size * 9 / 10,
        "first backup added too little: {first}"
    );

    let r = py([
        "update".as_ref(),
        db.as_os_str(),
        "--fraction".as_ref(),
        "0.001".as_ref(),
    ]);
    let updated = r.json()["rows_updated"].as_u64().unwrap();
    assert_eq!(updated, 20);

    let second = f.backup(["--sqlite".as_ref(), db.as_os_str()]);
    let added = stat(&second, "bytes_added");
    let stored = stat(&second, "bytes_added_stored");
    eprintln!(
        "incremental: database {size} bytes, {updated} rows updated: bytes_added {added}, \
         bytes_added_stored {stored}, data blobs {}",
        stat(&second, "data_blobs_added")
    );
    assert!(added > 0, "{second}");
    assert!(
        added < size / 20,
        "updating {updated} rows added {added} bytes for a {size}-byte database: {second}"
    );
    assert!(stored < size / 20, "{second}");
    assert!(
        stat(&second, "data_blobs_added") <= 2 * updated + 16,
        "more pages stored than rows changed: {second}"
    );

    // The database is at rest (WAL checkpointed on close): the snapshot is
    // the file, byte for byte.
    assert!(
        dump(&f, &spec(&snap_id(&second), &db)) == fs::read(&db).unwrap(),
        "dump differs from the quiescent database file"
    );

    // Nothing changed: nothing new at all.
    let third = f.backup(["--sqlite".as_ref(), db.as_os_str()]);
    assert_eq!(stat(&third, "data_blobs_added"), 0, "{third}");
}

// -------------------------------------------------------------- restore

/// Values that stress SQL and CSV quoting.
fn create_rich_db(db: &Path) {
    let c = Connection::open(db).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, owner TEXT);
         CREATE TABLE \"odd \"\"name\"\"\"(k INTEGER PRIMARY KEY, t TEXT, r REAL, b BLOB, n);
         CREATE INDEX odd_t ON \"odd \"\"name\"\"\"(t);
         CREATE TABLE empty(x);",
    )
    .unwrap();
    let tx = c.unchecked_transaction().unwrap();
    for i in 1..=500i64 {
        tx.execute(
            "INSERT INTO accounts VALUES(?1, ?2, ?3)",
            rusqlite::params![i, i * 37 % 1001, format!("owner {i}")],
        )
        .unwrap();
    }
    let texts = [
        "plain",
        "it's \"quoted\"",
        "comma, separated",
        "two\nlines",
        "tab\there",
        "unicode: žluťoučký kůň 🐴",
        "",
        "semicolon; DROP TABLE accounts; --",
    ];
    let reals = [0.1, -2.5, 1e300, -1e-300, 3.0, 123456.789, f64::INFINITY];
    for i in 0..40i64 {
        let t = texts[i as usize % texts.len()];
        let r = reals[i as usize % reals.len()];
        let b = pseudo_random(i as u64, (i as usize * 7) % 50);
        let n: SqlValue = match i % 4 {
            0 => SqlValue::Null,
            1 => SqlValue::Integer(i64::MIN + i),
            2 => SqlValue::Text(format!("n{i}")),
            _ => SqlValue::Real(i as f64 / 3.0),
        };
        tx.execute(
            "INSERT INTO \"odd \"\"name\"\"\" VALUES(?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![i * 10, t, r, b, n],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// Leaves `dir/app.db` as a different database with committed frames in
/// `app.db-wal`, as an application that crashed would; restoring over it
/// must not let that WAL leak into the restored database.
fn plant_stale_wal(db: &Path) {
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    py([
        "crash-wal".as_ref(),
        db.as_os_str(),
        "--rows".as_ref(),
        "300".as_ref(),
    ]);
    assert!(fs::metadata(with_suffix(db, "-wal")).unwrap().len() > 100_000);
    assert!(with_suffix(db, "-shm").exists());
}

fn assert_no_journals(db: &Path) {
    for s in ["-wal", "-shm", "-journal"] {
        let p = with_suffix(db, s);
        assert!(
            !p.exists(),
            "{} is still there after the restore",
            p.display()
        );
    }
}

#[test]
fn sqlite_restore_dump_tables_and_export() {
    assert!(
        have("sqlite3"),
        "the sqlite3 shell is needed (apt-get install sqlite3)"
    );
    let f = Fixture::new();
    let src = f.path("src");
    let db = src.join("app.db");
    fs::create_dir_all(&src).unwrap();
    create_rich_db(&db);
    write(&src.join("notes.txt"), b"not a database\n");
    assert!(
        !with_suffix(&db, "-wal").exists(),
        "WAL not checkpointed on close"
    );
    let original = fs::read(&db).unwrap();

    let s = f.backup([
        "--sqlite".as_ref(),
        db.as_os_str(),
        src.join("notes.txt").as_os_str(),
    ]);
    let snap = snap_id(&s);

    // dump: the quiescent database, byte for byte.
    let dumped = dump(&f, &spec(&snap, &db));
    assert!(dumped == original, "dump differs from the database at rest");

    // restore SNAP:/path/app.db --target D, over a stale database + WAL.
    let d1 = f.path("d1");
    plant_stale_wal(&d1.join("app.db"));
    let r = f.ok([
        "restore".as_ref(),
        spec(&snap, &db).as_os_str(),
        "--target".as_ref(),
        d1.as_os_str(),
    ]);
    let restored1 = d1.join("app.db");
    assert!(
        r.stdout_str().contains(&format!(
            "database {}: integrity check ok",
            restored1.display()
        )),
        "{}",
        r.stdout_str()
    );
    assert_no_journals(&restored1);
    assert!(
        fs::read(&restored1).unwrap() == dumped,
        "restored file differs from dump"
    );

    // restore SNAP --include /path/app.db --target D (JSON), also over
    // stale files.
    let d2 = f.path("d2");
    let restored2 = under(&d2, &db);
    plant_stale_wal(&restored2);
    let r = f.ok([
        "--json".as_ref(),
        "restore".as_ref(),
        snap.as_ref(),
        "--include".as_ref(),
        db.as_os_str(),
        "--target".as_ref(),
        d2.as_os_str(),
    ]);
    let v = r.json();
    assert_eq!(
        v["databases_ok"],
        serde_json::json!([restored2.to_str().unwrap()]),
        "{v}"
    );
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    assert_no_journals(&restored2);
    assert!(
        !under(&d2, &src.join("notes.txt")).exists(),
        "--include restored more than the database"
    );
    assert!(
        fs::read(&restored2).unwrap() == dumped,
        "restored file differs from dump"
    );

    // restore --verify rereads the database after its check.
    let d3 = f.path("d3");
    let r = f.ok([
        "restore".as_ref(),
        spec(&snap, &db).as_os_str(),
        "--target".as_ref(),
        d3.as_os_str(),
        "--verify".as_ref(),
    ]);
    assert!(
        r.stdout_str().contains("verified 1 files"),
        "{}",
        r.stdout_str()
    );

    // The restored databases open and hold the source's rows.
    let srcc = open_ro(&db);
    for restored in [&restored1, &restored2] {
        let c = open_ro(restored);
        assert_eq!(integrity(&c), "ok");
        for t in ["accounts", "odd \"name\"", "empty"] {
            assert_eq!(
                rows(&c, t),
                rows(&srcc, t),
                "table {t} of {}",
                restored.display()
            );
        }
        let has_stale: i64 = scalar(
            &c,
            "SELECT count(*) FROM sqlite_schema WHERE name = 'stale'",
        );
        assert_eq!(
            has_stale,
            0,
            "the stale WAL leaked into {}",
            restored.display()
        );
    }

    // sqlite tables
    let r = f.ok([
        "--json".as_ref(),
        "sqlite".as_ref(),
        "tables".as_ref(),
        spec(&snap, &db).as_os_str(),
    ]);
    assert_eq!(
        r.json(),
        serde_json::json!([
            {"table": "accounts", "rows": 500},
            {"table": "empty", "rows": 0},
            {"table": "odd \"name\"", "rows": 40},
        ])
    );
    let r = f.ok([
        "sqlite".as_ref(),
        "tables".as_ref(),
        spec(&snap, &db).as_os_str(),
    ]);
    let text = r.stdout_str();
    for (t, n) in [("accounts", 500), ("empty", 0), ("odd \"name\"", 40)] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(&n.to_string())
                    && l.trim_end().ends_with(t)),
            "`sqlite tables` does not show {t} with {n} rows: {text}"
        );
    }

    // sqlite export --format sql, loaded into an empty database.
    for t in ["accounts", "odd \"name\"", "empty"] {
        let r = f.ok([
            "sqlite".as_ref(),
            "export".as_ref(),
            spec(&snap, &db).as_os_str(),
            "--table".as_ref(),
            t.as_ref(),
            "--format".as_ref(),
            "sql".as_ref(),
        ]);
        let fresh = f.path(&format!("fresh-{}.db", t.len()));
        let sql = f.path("export.sql");
        write(&sql, &r.stdout);
        let mut c = Command::new("sqlite3");
        c.arg("-bail")
            .arg(&fresh)
            .stdin(fs::File::open(&sql).unwrap());
        let load = run_command(c);
        assert!(
            load.code == 0 && load.stderr.is_empty(),
            "sqlite3 could not load the export of {t}: {}\n{}",
            load.stderr,
            r.stdout_str()
        );
        let c = open_ro(&fresh);
        assert_eq!(rows(&c, t), rows(&srcc, t), "export of {t} as SQL");
        let schema = |c: &Connection| -> Vec<(String, String)> {
            let mut st = c
                .prepare(
                    "SELECT type, sql FROM sqlite_schema WHERE tbl_name = ?1 \
                     AND sql IS NOT NULL ORDER BY type, name",
                )
                .unwrap();
            st.query_map([t], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|m| m.collect())
                .unwrap()
        };
        assert_eq!(schema(&c), schema(&srcc), "schema of {t} after export");
    }

    // --format csv: a header and one record per row.
    let r = f.ok([
        "sqlite".as_ref(),
        "export".as_ref(),
        spec(&snap, &db).as_os_str(),
        "--table".as_ref(),
        "accounts".as_ref(),
        "--format".as_ref(),
        "csv".as_ref(),
    ]);
    let csv = r.stdout_str();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 501, "{csv}");
    assert_eq!(lines[0], "id,balance,owner");
    assert_eq!(lines[1], "1,37,owner 1");
    // Quoted fields with commas and newlines: count records with python's
    // csv module.
    let r = f.ok([
        "sqlite".as_ref(),
        "export".as_ref(),
        spec(&snap, &db).as_os_str(),
        "--table".as_ref(),
        "odd \"name\"".as_ref(),
        "--format".as_ref(),
        "csv".as_ref(),
    ]);
    let csvf = f.path("odd.csv");
    write(&csvf, &r.stdout);
    let mut c = Command::new("python3");
    c.args([
        "-c",
        "import csv, sys; rs = list(csv.reader(open(sys.argv[1], newline=''))); \
         print(len(rs), ','.join(rs[0]), rs[4][1] == 'two\\nlines')",
    ])
    .arg(&csvf);
    let out = run_command(c);
    out.code(0);
    assert_eq!(
        out.stdout_str().trim(),
        "41 k,t,r,b,n True",
        "{}",
        r.stdout_str()
    );

    // Mistakes are one-line errors.
    let r = f.run([
        "sqlite".as_ref(),
        "tables".as_ref(),
        spec(&snap, &src.join("notes.txt")).as_os_str(),
    ]);
    let e = r.fails(1);
    assert!(e.contains("not a SQLite database"), "{e}");
    let r = f.run([
        "sqlite".as_ref(),
        "export".as_ref(),
        spec(&snap, &db).as_os_str(),
        "--table".as_ref(),
        "nope".as_ref(),
    ]);
    let e = r.fails(1);
    assert!(e.contains("nope"), "{e}");
    let r = f.run([
        "sqlite".as_ref(),
        "export".as_ref(),
        spec(&snap, &db).as_os_str(),
        "--table".as_ref(),
        "accounts".as_ref(),
        "--format".as_ref(),
        "xml".as_ref(),
    ]);
    let e = r.fails(1);
    assert!(e.contains("xml"), "{e}");
}

/// `sqlite export --format sql`, loaded with the sqlite3 shell, gives back
/// exactly the stored text also when it holds a carriage return before a
/// line feed (the shell drops such a CR from its input lines; its own
/// `.dump` writes them as `char(13)`) or bytes that are not UTF-8.
#[test]
fn sqlite_export_sql_round_trips_awkward_text() {
    assert!(
        have("sqlite3"),
        "the sqlite3 shell is needed (apt-get install sqlite3)"
    );
    let f = Fixture::new();
    let db = f.path("t.db");
    let cases = [
        ("CR LF inside", "63720D0A6C66"),
        ("CR LF at the end", "6C696E650D0A"),
        ("Latin-1, not UTF-8", "636166E9"),
    ];
    {
        let c = Connection::open(&db).unwrap();
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
            .unwrap();
        for (i, (_, hex)) in cases.iter().enumerate() {
            c.execute_batch(&format!(
                "INSERT INTO t VALUES({i}, CAST(X'{hex}' AS TEXT))"
            ))
            .unwrap();
        }
    }
    let snap = snap_id(&f.backup(["--sqlite".as_ref(), db.as_os_str()]));
    let r = f.ok([
        "sqlite".as_ref(),
        "export".as_ref(),
        spec(&snap, &db).as_os_str(),
        "--table".as_ref(),
        "t".as_ref(),
    ]);
    let sql = f.path("t.sql");
    write(&sql, &r.stdout);
    let fresh = f.path("fresh.db");
    let mut c = Command::new("sqlite3");
    c.arg("-bail")
        .arg(&fresh)
        .stdin(fs::File::open(&sql).unwrap());
    let load = run_command(c);
    assert!(load.code == 0 && load.stderr.is_empty(), "{}", load.stderr);
    let c = open_ro(&fresh);
    let mut wrong = Vec::new();
    for (i, (what, hex)) in cases.iter().enumerate() {
        let (ty, got): (String, String) = c
            .query_row(
                "SELECT typeof(x), hex(x) FROM t WHERE id = ?1",
                [i as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        if ty != "text" || got != *hex {
            wrong.push(format!(
                "{what}: stored text X'{hex}', loaded {ty} X'{got}'"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "`sqlite export --format sql | sqlite3 NEW.db` changed values:\n  {}\nexport:\n{:?}",
        wrong.join("\n  "),
        r.stdout_str()
    );
}

/// Page sizes from 512 bytes (grouped into blobs of at least 4 KiB) to
/// 64 KiB, with page counts that are not multiples of the grouping: the
/// capture of a database at rest is the file.
#[test]
fn sqlite_page_sizes_round_trip_byte_for_byte() {
    let f = Fixture::new();
    let mut dbs = Vec::new();
    for (i, ps) in [512u32, 1024, 2048, 8192, 65536].into_iter().enumerate() {
        let db = f.path(&format!("p{ps}.db"));
        let c = Connection::open(&db).unwrap();
        c.execute_batch(&format!(
            "PRAGMA page_size = {ps}; PRAGMA journal_mode = DELETE; \
             CREATE TABLE t(x BLOB);"
        ))
        .unwrap();
        for j in 0..(3 + i * 5) {
            c.execute(
                "INSERT INTO t VALUES(?1)",
                [pseudo_random(j as u64, 700 + j * 50)],
            )
            .unwrap();
        }
        drop(c);
        dbs.push((db, ps));
    }
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    for (db, _) in &dbs {
        args.push("--sqlite".into());
        args.push(db.into());
    }
    let snap = snap_id(&f.backup(&args));
    for (db, ps) in &dbs {
        let file = fs::read(db).unwrap();
        assert_eq!(file.len() % *ps as usize, 0);
        let node = node_at(&f, &snap, db);
        assert_eq!(node["sqlite"]["page_size"], *ps, "{node}");
        assert_eq!(
            node["sqlite"]["page_count"].as_u64(),
            Some((file.len() / *ps as usize) as u64),
            "{node}"
        );
        assert!(
            dump(&f, &spec(&snap, db)) == file,
            "page size {ps}: dump differs from the file"
        );
        let target = f.path(&format!("r{ps}"));
        let r = f.ok([
            "restore".as_ref(),
            spec(&snap, db).as_os_str(),
            "--target".as_ref(),
            target.as_os_str(),
        ]);
        assert!(
            r.stdout_str().contains("integrity check ok"),
            "{}",
            r.stdout_str()
        );
        let restored = target.join(db.file_name().unwrap());
        assert!(fs::read(&restored).unwrap() == file, "page size {ps}");
    }
}

// ------------------------------------------------------------ bad inputs

#[test]
fn sqlite_bad_databases_warn_and_the_rest_is_saved() {
    let f = Fixture::new();
    let dir = f.path("in");
    fs::create_dir_all(&dir).unwrap();
    write(&dir.join("plain/file.txt"), b"keep me\n");
    let good = dir.join("good.db");
    create_bank(&good, "wal", 4096);

    let not_sqlite = dir.join("not-sqlite.db");
    write(&not_sqlite, &pseudo_random(5, 10_000));
    let missing = dir.join("missing.db");
    // Page 1's header: a page size that is not a power of two.
    let bad_header = dir.join("bad-header.db");
    create_bank(&bad_header, "delete", 4096);
    let mut b = fs::read(&bad_header).unwrap();
    b[16] = 0x03;
    b[17] = 0x00;
    write(&bad_header, &b);
    // Page 1's b-tree header: an invalid page type.
    let bad_schema = dir.join("bad-schema.db");
    create_bank(&bad_schema, "delete", 4096);
    let mut b = fs::read(&bad_schema).unwrap();
    b[100] = 0x00;
    write(&bad_schema, &b);
    // Cut in the middle of a page.
    let truncated = dir.join("truncated.db");
    create_bank(&truncated, "delete", 4096);
    let len = fs::metadata(&truncated).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(len - 4096 - 2000)
        .unwrap();
    // Held with an exclusive lock by another process.
    let locked = dir.join("locked.db");
    create_bank(&locked, "delete", 4096);
    let mut holder = Bg::spawn([
        "hold-exclusive".as_ref(),
        locked.as_os_str(),
        "--seconds".as_ref(),
        "60".as_ref(),
    ]);
    assert_eq!(holder.line(), "locked");

    let bad = [
        (&not_sqlite, "not a SQLite database"),
        (&missing, ""),
        (&bad_header, ""),
        (&bad_schema, "corrupt"),
        (&truncated, "corrupt"),
        (&locked, "--sqlite-timeout"),
    ];
    // One at a time, with --json.
    for (db, reason) in bad {
        let mut c = f.command();
        c.args(["backup", "--json", "--sqlite-timeout", "1s", "--sqlite"])
            .arg(db)
            .arg("--sqlite")
            .arg(&good)
            .arg(dir.join("plain"));
        let t = Instant::now();
        let r = run_command(c);
        let took = t.elapsed();
        r.code(3);
        assert!(
            took < Duration::from_secs(30),
            "{} took {took:?}",
            db.display()
        );
        let v = r.json();
        let errors = v["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 1, "{v}");
        assert_eq!(errors[0]["path"], db.to_str().unwrap(), "{v}");
        let msg = errors[0]["error"].as_str().unwrap();
        assert!(msg.contains(reason), "{}: {msg}", db.display());
        assert!(
            r.stderr.contains(db.to_str().unwrap()),
            "stderr does not name {}: {}",
            db.display(),
            r.stderr
        );
        let snap = snap_id(&v);
        let paths = ls_paths(&f, &snap);
        assert!(
            !paths.iter().any(|p| p == db.to_str().unwrap()),
            "{} is in the snapshot: {paths:#?}",
            db.display()
        );
        assert!(
            paths
                .iter()
                .any(|p| p == dir.join("plain/file.txt").to_str().unwrap()),
            "{paths:#?}"
        );
        let node = node_at(&f, &snap, &good);
        assert_eq!(node["sqlite"]["journal_mode"], "wal", "{node}");
    }

    // All at once, in text: one warning line per database.
    let mut c = f.command();
    c.args(["backup", "--sqlite-timeout", "1s"]);
    for (db, _) in bad {
        c.arg("--sqlite").arg(db);
    }
    c.arg("--sqlite").arg(&good).arg(dir.join("plain"));
    let r = run_command(c);
    r.code(3);
    for (db, _) in bad {
        assert!(
            r.stderr
                .lines()
                .any(|l| l.starts_with("warning: ") && l.contains(db.to_str().unwrap())),
            "no warning naming {}: {}",
            db.display(),
            r.stderr
        );
    }
    let paths = ls_paths(&f, "latest");
    assert!(
        paths.iter().any(|p| p == good.to_str().unwrap()),
        "{paths:#?}"
    );
    assert!(
        paths
            .iter()
            .any(|p| p == dir.join("plain/file.txt").to_str().unwrap()),
        "{paths:#?}"
    );
    drop(holder);
}

/// `--sqlite` names something that is not a database file: a symlink to
/// one, or a directory. Either the database is captured or the user is
/// told; a silent exit 0 with no database in the snapshot loses it.
#[test]
fn sqlite_option_on_symlink_or_directory_is_not_silent() {
    let f = Fixture::new();
    let db = f.path("real.db");
    create_bank(&db, "wal", 4096);
    let link = f.path("link.db");
    std::os::unix::fs::symlink(&db, &link).unwrap();
    let r = f.run([
        "backup".as_ref(),
        "--json".as_ref(),
        "--sqlite".as_ref(),
        link.as_os_str(),
    ]);
    let v = r.json();
    let captured = r.code == 0
        && v["snapshot_id"].as_str().is_some_and(|s| {
            let n = node_at(&f, s, &link);
            n["kind"] == "file" && n["sqlite"]["page_size"] == 4096
        });
    let warned = r.code == 3 && v["errors"][0]["path"] == link.to_str().unwrap();
    assert!(
        captured || warned,
        "`backup --sqlite SYMLINK-TO-DB` exited {} and neither captured the database \
         nor warned: {v}\nsnapshot holds: {:?}",
        r.code,
        v["snapshot_id"]
            .as_str()
            .map(|s| node_at(&f, s, &link)["kind"].clone())
    );

    let dir = f.path("adir");
    fs::create_dir_all(&dir).unwrap();
    let r = f.run([
        "backup".as_ref(),
        "--json".as_ref(),
        "--sqlite".as_ref(),
        dir.as_os_str(),
    ]);
    // With nothing else to back up there is no snapshot to make: a clear
    // error naming the directory, not an empty snapshot that retention
    // would take for the latest backup.
    assert_eq!(
        r.code,
        1,
        "`backup --sqlite DIRECTORY` alone must fail: {}",
        r.stdout_str()
    );
    assert!(
        r.stderr.contains("adir") && r.stderr.contains("not a regular file"),
        "{}",
        r.stderr
    );
    // Beside another path, it is a warning and the rest is saved (exit 3).
    let other = f.path("other.txt");
    fs::write(&other, b"x").unwrap();
    let r = f.run([
        "backup".as_ref(),
        "--json".as_ref(),
        "--sqlite".as_ref(),
        dir.as_os_str(),
        other.as_os_str(),
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);

    // A FIFO: opening it to read would wait for a writer forever, so
    // nothing may open it before its type is checked.
    let fifo = f.path("fifo.db");
    mkfifo(&fifo);
    let mut c = f.command();
    c.args(["backup".as_ref(), "--sqlite".as_ref(), fifo.as_os_str()]);
    let r = crate::hostile::run_bounded(c, Duration::from_secs(60));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("fifo.db") && r.stderr.contains("not a regular file"),
        "{}",
        r.stderr
    );
}

// --------------------------------------------------------- point in time

#[test]
fn sqlite_point_in_time_selection() {
    let f = Fixture::new();
    let db = f.path("pit/app.db");
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    let times = [
        "2030-01-01T10:00:00Z",
        "2030-01-01T11:00:00Z",
        "2030-01-01T12:00:00Z",
    ];
    {
        let c = Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE v(x INTEGER)")
            .unwrap();
    }
    for (i, t) in times.iter().enumerate() {
        // Another process changes the database between backups.
        let mut c = Command::new("python3");
        c.args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
             c.execute('INSERT INTO v VALUES(?)', (int(sys.argv[2]),)); c.commit()",
        ])
        .arg(&db)
        .arg(((i + 1) * 100).to_string());
        run_command(c).code(0);
        f.backup([
            "--sqlite".as_ref(),
            db.as_os_str(),
            "--time".as_ref(),
            t.as_ref(),
        ]);
    }
    let values = |p: &Path| -> Vec<i64> {
        let c = open_ro(p);
        assert_eq!(integrity(&c), "ok");
        let mut st = c.prepare("SELECT x FROM v ORDER BY x").unwrap();
        st.query_map([], |r| r.get(0))
            .and_then(|m| m.collect())
            .unwrap()
    };
    let t2_state = vec![100, 200];
    let between = "2030-01-01T11:30:00Z";

    let check_dump = |sel: &str, extra: &[&str], want: &[i64]| {
        let mut c = f.command();
        c.arg("dump").arg(spec(sel, &db)).args(extra);
        let r = run_command(c);
        r.code(0);
        let p = f.path("dumped.db");
        write(&p, &r.stdout);
        assert_eq!(values(&p), want, "dump {sel} {extra:?}");
        let _ = fs::remove_file(with_suffix(&p, "-shm"));
        let _ = fs::remove_file(with_suffix(&p, "-wal"));
    };
    check_dump(&format!("latest@{between}"), &[], &t2_state);
    check_dump(&format!("latest@{}", times[1]), &[], &t2_state);
    check_dump("latest", &["--as-of", between], &t2_state);
    check_dump(&format!("latest@{}", times[0]), &[], &[100]);
    check_dump("latest", &[], &[100, 200, 300]);

    // Before the first snapshot: nothing to select.
    let r = f.run([
        "dump".as_ref(),
        spec("latest@2029-12-31T00:00:00Z", &db).as_os_str(),
    ]);
    assert_ne!(r.code, 0);
    r.no_panic();

    // restore latest --as-of, and latest@TIME:PATH.
    let target = f.path("r1");
    let r = f.ok([
        "restore".as_ref(),
        "latest".as_ref(),
        "--as-of".as_ref(),
        between.as_ref(),
        "--target".as_ref(),
        target.as_os_str(),
    ]);
    assert!(
        r.stdout_str().contains("integrity check ok"),
        "{}",
        r.stdout_str()
    );
    assert_eq!(values(&under(&target, &db)), t2_state);
    let target = f.path("r2");
    f.ok([
        "restore".as_ref(),
        spec(&format!("latest@{between}"), &db).as_os_str(),
        "--target".as_ref(),
        target.as_os_str(),
    ]);
    assert_eq!(values(&target.join("app.db")), t2_state);

    // sqlite tables --as-of sees the T2 row count.
    let r = f.ok([
        "--json".as_ref(),
        "sqlite".as_ref(),
        "tables".as_ref(),
        spec("latest", &db).as_os_str(),
        "--as-of".as_ref(),
        between.as_ref(),
    ]);
    assert_eq!(r.json(), serde_json::json!([{"table": "v", "rows": 2}]));
}

// ------------------------------------------------------------ side effects

/// A restore sets every directory's times after writing its contents; a
/// database, renamed into place and checked after that, must not leave its
/// directory with the time of the restore.
#[test]
fn sqlite_restore_keeps_the_directory_mtime() {
    let f = Fixture::new();
    let dir = f.path("appdir");
    let db = dir.join("app.db");
    fs::create_dir_all(&dir).unwrap();
    create_bank(&db, "wal", 4096);
    write(&dir.join("other.txt"), b"x");
    let old = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    filetime::set_file_mtime(&dir, old).unwrap();
    let snap = snap_id(&f.backup(["--sqlite".as_ref(), db.as_os_str(), dir.as_os_str()]));
    let target = f.path("r");
    f.ok([
        "restore".as_ref(),
        snap.as_ref(),
        "--target".as_ref(),
        target.as_os_str(),
    ]);
    let m = fs::metadata(under(&target, &dir)).unwrap();
    assert_eq!(
        filetime::FileTime::from_last_modification_time(&m),
        old,
        "restored {} has the restore's mtime, not the snapshot's",
        under(&target, &dir).display()
    );
}

/// Names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A database in `journal` mode of `rows` incompressible 64 KiB rows.
fn blob_rows_db(db: &Path, journal: &str, rows: u64) {
    let c = Connection::open(db).unwrap();
    c.execute_batch(&format!(
        "PRAGMA journal_mode = {journal}; CREATE TABLE t(x BLOB);"
    ))
    .unwrap();
    for j in 0..rows {
        c.execute("INSERT INTO t VALUES(?1)", [pseudo_random(j, 64 << 10)])
            .unwrap();
    }
}

/// A database of `rows` such rows backed up alone: its path and the
/// snapshot.
fn backed_up_blob_db(f: &Fixture, journal: &str, rows: u64) -> (PathBuf, String) {
    let db = f.path("app.db");
    blob_rows_db(&db, journal, rows);
    let snap = snap_id(&f.backup(["--sqlite".as_ref(), db.as_os_str()]));
    (db, snap)
}

/// What a restore target already holds where a database is restored.
fn old_database() -> Vec<u8> {
    b"the database that was here before\n".repeat(300)
}

/// A database restore that cannot complete changes nothing at the final
/// path and leaves no temporary file: with a damaged page the database
/// already there keeps its bytes; with too little room, found before any
/// page is written, nothing is put there. A good restore over the old file
/// then replaces it.
#[test]
fn sqlite_restore_that_cannot_complete_changes_nothing_in_place() {
    let f = Fixture::new();
    let (db, snap) = backed_up_blob_db(&f, "WAL", 48);
    // The captured state (the live file may hold its last pages in -wal).
    let want = dump(&f, &spec(&snap, &db));
    assert!(want.len() > 3 << 20, "database of {} bytes", want.len());
    let restore = |target: &Path| {
        f.run([
            "restore".as_ref(),
            spec(&snap, &db).as_os_str(),
            "--target".as_ref(),
            target.as_os_str(),
        ])
    };

    // Too little room: a 1 MiB file system for a database of over 3 MiB.
    let small = f.path("small");
    match Mount::tmpfs(&small, "1m") {
        Some(_m) => {
            let r = restore(&small);
            r.code(1);
            assert!(
                r.stderr.contains("app.db: database not restored")
                    && r.stderr.contains("No space left on device"),
                "{}",
                r.stderr
            );
            // That one error, and the count.
            assert_eq!(r.stderr.lines().count(), 2, "{}", r.stderr);
            assert!(names_in(&small).is_empty(), "{:?}", names_in(&small));
        }
        None => eprintln!("note: cannot mount a tmpfs here; a full disk is not tested"),
    }

    // A damaged page, with a database already at the final path. The
    // pages are the first blobs of the largest pack.
    let target = f.path("r");
    let old = old_database();
    write(&target.join("app.db"), &old);
    let pack = fs::read_dir(f.repo.join("data"))
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
        .map(|p| p.unwrap().path())
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .expect("a data pack");
    let good = fs::read(&pack).unwrap();
    let mut bad = good.clone();
    bad[100] ^= 0x20;
    fs::write(&pack, &bad).unwrap();
    let r = restore(&target);
    r.code(1);
    assert!(
        r.stderr.contains("app.db: database not restored"),
        "{}",
        r.stderr
    );
    assert!(
        fs::read(target.join("app.db")).unwrap() == old,
        "the database at the final path was replaced by an incomplete one"
    );
    assert_eq!(names_in(&target), ["app.db"]);

    fs::write(&pack, &good).unwrap();
    let r = restore(&target);
    r.code(0);
    assert!(
        r.stdout_str().contains("integrity check ok"),
        "{}",
        r.stdout_str()
    );
    assert!(fs::read(target.join("app.db")).unwrap() == want);
    assert_eq!(names_in(&target), ["app.db"]);
}

/// A restored database's pages are checked against their IDs in the
/// written file before it is moved into place (not as they are decrypted).
/// A page sealed with the repository's key under another page's ID opens,
/// so only that check can find it: the restore fails naming the database,
/// and the database already at the final path stays as it was.
#[test]
fn sqlite_restore_checks_pages_against_their_ids_before_the_rename() {
    use cairn_engine::backend::{self, OpenOptions};
    use cairn_engine::pack::{self, BlobType};
    use cairn_engine::Repository;

    let f = Fixture::new();
    let (db, snap) = backed_up_blob_db(&f, "DELETE", 16);
    let want = fs::read(&db).unwrap();

    // Reseal one stored page's place with other bytes under its ID.
    let repo = Repository::open(
        backend::open(f.repo.to_str().unwrap(), &OpenOptions::default(), false).unwrap(),
        f.password.as_bytes(),
    )
    .unwrap();
    repo.load_index().unwrap();
    let (mut scratch, mut sealed) = (Vec::new(), Vec::new());
    let forged = repo
        .index()
        .blobs()
        .filter(|b| b.entry.blob_type == BlobType::Data && !b.entry.compressed)
        .find(|b| {
            let other = pseudo_random(999, b.entry.raw_length as usize);
            let compressed = pack::seal_blob_into(
                repo.key(),
                repo.id(),
                BlobType::Data,
                &b.entry.id,
                &other,
                3,
                &mut scratch,
                &mut sealed,
            );
            !compressed && sealed.len() == b.entry.length as usize
        })
        .expect("an uncompressed page blob");
    let name = forged.pack.to_hex();
    let path = f.repo.join("data").join(&name[..2]).join(&name);
    let good = fs::read(&path).unwrap();
    let mut bytes = good.clone();
    let at = forged.entry.offset as usize;
    bytes[at..at + sealed.len()].copy_from_slice(&sealed);
    fs::write(&path, &bytes).unwrap();

    let target = f.path("r");
    let old = old_database();
    write(&target.join("app.db"), &old);
    let restore = || {
        f.run([
            "restore".as_ref(),
            spec(&snap, &db).as_os_str(),
            "--target".as_ref(),
            target.as_os_str(),
        ])
    };
    let r = restore();
    r.code(1);
    assert!(
        r.stderr
            .contains("restored data does not match the snapshot")
            && r.stderr.contains("database not restored"),
        "{}",
        r.stderr
    );
    assert!(fs::read(target.join("app.db")).unwrap() == old);
    assert_eq!(names_in(&target), ["app.db"]);
    // dump checks each blob as it opens it, and so finds the page too.
    let d = f.run(["dump".as_ref(), spec(&snap, &db).as_os_str()]);
    assert_ne!(d.code, 0, "dump passed a page that is not its ID's");
    assert!(d.stderr.contains("does not match its ID"), "{}", d.stderr);

    fs::write(&path, &good).unwrap();
    restore().code(0);
    assert!(fs::read(target.join("app.db")).unwrap() == want);
}

/// Metadata that cannot be applied is reported, but does not keep a
/// complete database from its final path: a 10,000-byte extended attribute
/// (which tmpfs holds and ext4 without large attributes refuses) fails on
/// the restored file, and the database is still checked and moved into
/// place.
#[test]
fn sqlite_restore_with_metadata_errors_still_places_the_database() {
    let f = Fixture::new();
    let src = f.path("src");
    let Some(_m) = Mount::tmpfs(&src, "64m") else {
        eprintln!("note: cannot mount a tmpfs here; not tested");
        return;
    };
    let db = src.join("app.db");
    blob_rows_db(&db, "DELETE", 8);
    xattr::set(&db, "user.big", &vec![b'x'; 10_000]).unwrap();
    let target = f.path("r");
    fs::create_dir_all(&target).unwrap();
    let probe = target.join("probe");
    write(&probe, b"");
    if xattr::set(&probe, "user.big", &vec![b'x'; 10_000]).is_ok() {
        eprintln!("note: the target file system takes large attributes; not tested");
        return;
    }
    fs::remove_file(&probe).unwrap();
    let snap = snap_id(&f.backup(["--sqlite".as_ref(), db.as_os_str()]));
    write(&target.join("app.db"), &old_database());
    let r = f.run([
        "restore".as_ref(),
        spec(&snap, &db).as_os_str(),
        "--target".as_ref(),
        target.as_os_str(),
    ]);
    r.code(1);
    assert!(
        r.stderr.contains("cannot set extended attribute user.big")
            && !r.stderr.contains("database not restored"),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout_str().contains("integrity check ok"),
        "{}",
        r.stdout_str()
    );
    assert!(fs::read(target.join("app.db")).unwrap() == fs::read(&db).unwrap());
    assert_eq!(names_in(&target), ["app.db"]);
}

/// A database restore interrupted once its temporary file exists (so while
/// pages are being written) exits 130 with the database already at the
/// final path untouched and the temporary file removed; one that finished
/// first put the whole database there.
#[test]
fn sqlite_restore_interrupted_leaves_the_old_database() {
    let f = Fixture::new();
    let (db, snap) = backed_up_blob_db(&f, "DELETE", 640);
    let want = fs::read(&db).unwrap();
    let target = f.path("r");
    let old = old_database();
    let mut interrupted = 0;
    for round in 0..3 {
        write(&target.join("app.db"), &old);
        let mut c = f.command();
        c.args(["restore".as_ref(), spec(&snap, &db).as_os_str()])
            .args(["--target".as_ref(), target.as_os_str()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let start = Instant::now();
        loop {
            if names_in(&target)
                .iter()
                .any(|n| n.contains(".cairn-restore-"))
            {
                // SAFETY: kill(2) on our own child's pid.
                let r = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
                assert_eq!(r, 0);
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "restore hangs");
            std::thread::sleep(Duration::from_micros(500));
        }
        let run = wait_run(child, "cairn restore (interrupted)");
        let now = fs::read(target.join("app.db")).unwrap();
        match run.code {
            130 => {
                interrupted += 1;
                assert!(now == old, "round {round}: the old database was replaced");
            }
            0 => assert!(now == want, "round {round}: restored database differs"),
            c => panic!("round {round}: exit {c}: {}", run.stderr),
        }
        assert_eq!(names_in(&target), ["app.db"], "round {round}");
    }
    assert!(interrupted > 0, "no restore was interrupted while writing");
}

/// A capture only reads (engine/src/sqlite.rs: "nothing is ever
/// written"): backing up an idle WAL database whose last writer left
/// committed frames in its -wal must capture those frames but must not
/// checkpoint them into the database file, or delete the -wal, as SQLite
/// does when the last read-write connection closes.
#[test]
fn sqlite_backup_leaves_the_database_files_alone() {
    let f = Fixture::new();
    let db = f.path("idle/app.db");
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    create_bank(&db, "wal", 4096);
    py([
        "crash-wal".as_ref(),
        db.as_os_str(),
        "--rows".as_ref(),
        "300".as_ref(),
    ]);
    let wal = with_suffix(&db, "-wal");
    let before = fs::read(&db).unwrap();
    let wal_before = fs::read(&wal).unwrap();
    assert!(!wal_before.is_empty());
    let mtime =
        |p: &Path| filetime::FileTime::from_last_modification_time(&fs::metadata(p).unwrap());
    let mtime_before = mtime(&db);

    let snap = snap_id(&f.backup(["--sqlite".as_ref(), db.as_os_str()]));
    let out = f.path("dumped.db");
    write(&out, &dump(&f, &spec(&snap, &db)));
    assert_eq!(
        scalar(&open_ro(&out), "SELECT count(*) FROM stale"),
        300,
        "the committed frames in the WAL were not captured"
    );

    let mut changed = Vec::new();
    if fs::read(&db).unwrap() != before || mtime(&db) != mtime_before {
        changed.push(format!(
            "{} was rewritten ({} -> {} bytes)",
            db.display(),
            before.len(),
            fs::metadata(&db).unwrap().len()
        ));
    }
    match fs::read(&wal) {
        Ok(w) if w == wal_before => {}
        Ok(w) => changed.push(format!("{} changed ({} bytes)", wal.display(), w.len())),
        Err(e) => changed.push(format!("{}: {e}", wal.display())),
    }
    assert!(
        changed.is_empty(),
        "`backup --sqlite` modified the source database: {changed:?}"
    );
}

/// `sqlite tables` and `sqlite export` work on a temporary copy; nothing
/// of it may stay behind (a WAL-mode copy grows -wal and -shm siblings).
#[test]
fn sqlite_inspection_leaves_no_temporary_files() {
    let f = Fixture::new();
    let db = f.path("w.db");
    create_bank(&db, "wal", 4096);
    let snap = snap_id(&f.backup(["--sqlite".as_ref(), db.as_os_str()]));
    let cache = f.path("cache");
    f.ok([
        "--cache-dir".as_ref(),
        cache.as_os_str(),
        "sqlite".as_ref(),
        "tables".as_ref(),
        spec(&snap, &db).as_os_str(),
    ]);
    f.ok([
        "--cache-dir".as_ref(),
        cache.as_os_str(),
        "sqlite".as_ref(),
        "export".as_ref(),
        spec(&snap, &db).as_os_str(),
        "--table".as_ref(),
        "meta".as_ref(),
    ]);
    let left: Vec<String> = file_list(&cache)
        .into_iter()
        .filter(|p| p.contains(".cairn-sqlite-"))
        .collect();
    assert!(
        left.is_empty(),
        "temporary files left in the cache directory: {left:?}"
    );
}
