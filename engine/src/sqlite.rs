//! Consistent online capture of live SQLite databases, and checks of
//! restored ones.
//!
//! A database is read through SQLite itself, inside one read transaction:
//! in WAL mode that is a snapshot that never blocks writers; in rollback
//! journal mode it holds the shared lock that SQLite's own backup would.
//! Pages are streamed from the `sqlite_dbpage` virtual table, so no
//! temporary copy of the database is made. The stored file is the
//! database as of the last transaction committed before the capture.
//! Nothing is written to the database, and closing does not checkpoint it.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::error::{Error, Result};
use crate::lock::Cancel;
use crate::repofile::tree::SqliteMeta;

const MAGIC: &[u8; 16] = b"SQLite format 3\0";

fn err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Sqlite {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn sql_err(path: &Path, timeout: Duration, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => err(
            path,
            format!(
                "database stayed locked longer than the --sqlite-timeout of {}s",
                timeout.as_secs_f64()
            ),
        ),
        Some(ErrorCode::NotADatabase) => err(path, "not a SQLite database"),
        Some(ErrorCode::DatabaseCorrupt) => err(path, format!("database is corrupt: {e}")),
        _ => err(path, e.to_string()),
    }
}

/// Whether a file starts with the SQLite header.
pub fn is_sqlite(path: &Path) -> Result<bool> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = [0u8; 16];
    match f.read_exact(&mut h) {
        Ok(()) => Ok(&h == MAGIC),
        Err(_) => Ok(false),
    }
}

/// Whether a database file's header says it is in WAL mode (read and write
/// versions 2, bytes 18 and 19). A capture of such a database blocks no
/// writer. Anything unreadable, not a regular file (a FIFO would block the
/// open) or not SQLite is reported as not WAL; the capture itself then
/// gives the error.
pub fn is_wal(path: &Path) -> bool {
    let mut h = [0u8; 20];
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
        && std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut h))
            .is_ok()
        && &h[..16] == MAGIC
        && h[18] == 2
        && h[19] == 2
}

/// Streams the pages of a consistent state of the database to `page`, in
/// order, and returns its metadata. A database in WAL mode is read at a
/// lower CPU priority (`priority::CAPTURE_NICE`), which the calling thread
/// keeps: call this on a thread of its own.
pub fn capture(
    path: &Path,
    timeout: Duration,
    cancel: &Cancel,
    mut page: impl FnMut(&[u8]) -> Result<()>,
) -> Result<SqliteMeta> {
    if !is_sqlite(path)? {
        return Err(err(path, "not a SQLite database (bad header)"));
    }
    // Read-only, so that closing can never checkpoint the application's
    // database; read-write (never writing) only where SQLite cannot set up
    // a read-only WAL connection. Closing does not checkpoint either way.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|c| {
        c.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|_| c)
    })
    .or_else(|_| {
        Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    })
    .map_err(|e| sql_err(path, timeout, e))?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .map_err(|e| sql_err(path, timeout, e))?;
    conn.busy_timeout(timeout)
        .map_err(|e| sql_err(path, timeout, e))?;
    let se = |e| sql_err(path, timeout, e);
    conn.execute_batch("BEGIN DEFERRED").map_err(se)?;
    // The first read starts the transaction and fixes the snapshot.
    let _: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(se)?;
    let page_size: u32 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(se)?;
    let page_count: u64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(se)?;
    let journal_mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(se)?;
    if journal_mode.eq_ignore_ascii_case("wal") {
        // In WAL mode the capture blocks no writer, so the application
        // should win the CPU when both want it: the capture only keeps its
        // read snapshot open longer. A rollback-journal capture keeps its
        // priority, since writers wait for its lock. Best effort: at normal
        // priority the capture is still correct.
        let _ = crate::priority::lower_this_thread(crate::priority::CAPTURE_NICE);
    }
    let user_version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(se)?;
    let sqlite_version: String = conn
        .query_row("SELECT sqlite_version()", [], |r| r.get(0))
        .map_err(se)?;
    let mut h = blake3::Hasher::new();
    {
        let mut st = conn
            .prepare(
                "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema ORDER BY rowid",
            )
            .map_err(se)?;
        let mut rows = st.query([]).map_err(se)?;
        while let Some(r) = rows.next().map_err(se)? {
            for i in 0..4 {
                let v: String = r.get(i).map_err(se)?;
                h.update(&(v.len() as u64).to_le_bytes());
                h.update(v.as_bytes());
            }
        }
    }
    {
        let mut st = conn
            .prepare("SELECT pgno, data FROM sqlite_dbpage('main') ORDER BY pgno")
            .map_err(|e| err(path, format!("cannot read pages ({e}); this cairn was built without SQLITE_ENABLE_DBPAGE_VTAB")))?;
        let mut rows = st.query([]).map_err(se)?;
        let mut expected: u64 = 1;
        while let Some(r) = rows.next().map_err(se)? {
            cancel.check()?;
            let pgno: i64 = r.get(0).map_err(se)?;
            let data = r.get_ref(1).map_err(se)?;
            let data = data
                .as_blob()
                .map_err(|e| err(path, format!("page {pgno}: {e}")))?;
            if pgno as u64 != expected || data.len() != page_size as usize {
                return Err(err(
                    path,
                    format!("page {pgno} is out of order or has the wrong size"),
                ));
            }
            page(data)?;
            expected += 1;
        }
        if expected - 1 != page_count {
            return Err(err(
                path,
                format!("read {} pages, the database has {page_count}", expected - 1),
            ));
        }
    }
    conn.execute_batch("COMMIT").map_err(se)?;
    Ok(SqliteMeta {
        page_size,
        page_count,
        journal_mode,
        user_version,
        schema_hash: h.finalize().to_hex().to_string(),
        sqlite_version,
    })
}

/// Runs `PRAGMA integrity_check` on a database file; `Ok(())` when SQLite
/// answers `ok`, otherwise its findings.
pub fn integrity_check(path: &Path) -> Result<()> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| err(path, e.to_string()))?;
    // Reading the pages through a memory map instead of a read call each
    // halves the check's time on a large database.
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    conn.execute_batch(&format!("PRAGMA mmap_size = {}", len.min(1 << 31)))
        .map_err(|e| err(path, e.to_string()))?;
    let mut st = conn
        .prepare("PRAGMA integrity_check")
        .map_err(|e| err(path, e.to_string()))?;
    let rows: Vec<String> = st
        .query_map([], |r| r.get(0))
        .and_then(|m| m.collect())
        .map_err(|e| err(path, format!("integrity check failed: {e}")))?;
    if rows.len() == 1 && rows[0] == "ok" {
        Ok(())
    } else {
        Err(err(
            path,
            format!("integrity check failed: {}", rows.join("; ")),
        ))
    }
}

/// Opens a private copy of a database (taken out of a snapshot) read-only.
/// A copy of a WAL database is first switched to rollback mode in its
/// header (bytes 18 and 19), so SQLite creates no -wal or -shm files beside
/// it; the pages are unchanged.
fn open_copy(path: &Path) -> Result<Connection> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let mut h = [0u8; 20];
    f.read_exact(&mut h)
        .map_err(|_| err(path, "not a SQLite database (too short)"))?;
    if h[18] == 2 || h[19] == 2 {
        f.seek(SeekFrom::Start(18))
            .and_then(|_| f.write_all(&[1, 1]))
            .map_err(|e| Error::io(path, e))?;
    }
    drop(f);
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| err(path, e.to_string()))
}

/// Tables with their row counts.
pub fn tables(path: &Path) -> Result<Vec<(String, i64)>> {
    let conn = open_copy(path)?;
    let mut st = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .map_err(|e| err(path, e.to_string()))?;
    let names: Vec<String> = st
        .query_map([], |r| r.get(0))
        .and_then(|m| m.collect())
        .map_err(|e| err(path, e.to_string()))?;
    let mut out = Vec::new();
    for n in names {
        let c: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM {}", quote_ident(&n)),
                [],
                |r| r.get(0),
            )
            .map_err(|e| err(path, format!("{n}: {e}")))?;
        out.push((n, c));
    }
    Ok(out)
}

/// Quotes an SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn sql_literal(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => {
            if f.is_finite() {
                format!("{f:?}")
            } else if f.is_nan() {
                "NULL".into()
            } else if f > 0.0 {
                "9e999".into()
            } else {
                "-9e999".into()
            }
        }
        // Text that is not UTF-8, or holds control characters that some SQL
        // shells rewrite (CR before LF), is written as bytes cast to text,
        // so it loads back exactly.
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) if !s.chars().any(|c| c.is_control() && c != '\t' && c != '\n') => {
                format!("'{}'", s.replace('\'', "''"))
            }
            _ => format!("CAST(X'{}' AS TEXT)", hex::encode(t)),
        },
        ValueRef::Blob(b) => format!("X'{}'", hex::encode(b)),
    }
}

fn csv_field(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    let s = match v {
        ValueRef::Null => return String::new(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format!("{f:?}"),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => hex::encode(b),
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Output format of [`export_table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Statements that recreate the table (and its indexes) and fill it.
    Sql,
    /// A header row and one row per record; blobs as hex.
    Csv,
}

/// Writes one table's schema and rows.
pub fn export_table(
    path: &Path,
    table: &str,
    format: ExportFormat,
    out: &mut dyn std::io::Write,
) -> Result<u64> {
    let conn = open_copy(path)?;
    let io = |e: std::io::Error| Error::io("standard output", e);
    let create: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .map_err(|_| err(path, format!("no table named {table:?}")))?;
    let mut st = conn
        .prepare(&format!("SELECT * FROM {}", quote_ident(table)))
        .map_err(|e| err(path, e.to_string()))?;
    let cols: Vec<String> = st.column_names().iter().map(|c| c.to_string()).collect();
    let mut n = 0u64;
    match format {
        ExportFormat::Sql => {
            writeln!(out, "BEGIN TRANSACTION;").map_err(io)?;
            if let Some(c) = create {
                writeln!(out, "{c};").map_err(io)?;
            }
        }
        ExportFormat::Csv => {
            let header: Vec<String> = cols
                .iter()
                .map(|c| csv_field(rusqlite::types::ValueRef::Text(c.as_bytes())))
                .collect();
            writeln!(out, "{}", header.join(",")).map_err(io)?;
        }
    }
    let mut rows = st.query([]).map_err(|e| err(path, e.to_string()))?;
    let q = quote_ident(table);
    while let Some(r) = rows.next().map_err(|e| err(path, e.to_string()))? {
        let mut vals = Vec::with_capacity(cols.len());
        for i in 0..cols.len() {
            let v = r.get_ref(i).map_err(|e| err(path, e.to_string()))?;
            vals.push(match format {
                ExportFormat::Sql => sql_literal(v),
                ExportFormat::Csv => csv_field(v),
            });
        }
        match format {
            ExportFormat::Sql => {
                writeln!(out, "INSERT INTO {q} VALUES({});", vals.join(",")).map_err(io)?
            }
            ExportFormat::Csv => writeln!(out, "{}", vals.join(",")).map_err(io)?,
        }
        n += 1;
    }
    if format == ExportFormat::Sql {
        drop(rows);
        let mut ix = conn
            .prepare("SELECT sql FROM sqlite_schema WHERE type IN ('index', 'trigger') AND tbl_name = ?1 AND sql IS NOT NULL")
            .map_err(|e| err(path, e.to_string()))?;
        let stmts: Vec<String> = ix
            .query_map([table], |r| r.get(0))
            .and_then(|m| m.collect())
            .map_err(|e| err(path, e.to_string()))?;
        for s in stmts {
            writeln!(out, "{s};").map_err(io)?;
        }
        writeln!(out, "COMMIT;").map_err(io)?;
    }
    out.flush().map_err(io)?;
    Ok(n)
}
