use std::io::Write;

use anyhow::{bail, Result};

use cairn_engine::repofile::tree::NodeKind;
use cairn_engine::selector::{self, SnapshotFilter};
use cairn_engine::sqlite::{self, ExportFormat};
use cairn_engine::{restorer, Repository};

use crate::args::{Global, SqliteCommand};
use crate::{context, exit};

/// Writes the database at `spec` to a temporary file (in the cache
/// directory when one is given), removed when the returned handle drops.
fn fetch(
    g: &Global,
    repo: &Repository,
    spec: &str,
    as_of: &Option<String>,
) -> Result<tempfile::NamedTempFile> {
    let (s, path) = selector::split_spec(spec);
    let Some(path) = path else {
        bail!("give the database as SNAPSHOT:PATH");
    };
    let snap = selector::find_snapshot(repo, s, &SnapshotFilter::default(), super::as_of(as_of)?)?;
    let node = selector::find_node(repo, &snap, path.as_bytes())?;
    if node.kind != NodeKind::File {
        bail!("{path} is not a file in snapshot {}", snap.id.short());
    }
    let mut b = tempfile::Builder::new();
    b.prefix(".cairn-sqlite-");
    let mut tmp = match &g.cache_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            b.tempfile_in(d)?
        }
        None => b.tempfile()?,
    };
    restorer::dump_file(repo, &node, tmp.as_file_mut())?;
    tmp.as_file().sync_all()?;
    if !sqlite::is_sqlite(tmp.path())? {
        bail!(
            "{path} in snapshot {} is not a SQLite database",
            snap.id.short()
        );
    }
    Ok(tmp)
}

pub fn run(g: &Global, c: SqliteCommand) -> Result<i32> {
    let s = context::session(g, context::Locking::Shared)?;
    match c {
        SqliteCommand::Tables { spec, as_of } => {
            let tmp = fetch(g, &s.repo, &spec, &as_of)?;
            let t = sqlite::tables(tmp.path())?;
            if g.json {
                let v: Vec<_> = t
                    .iter()
                    .map(|(n, c)| serde_json::json!({"table": n, "rows": c}))
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for (n, c) in t {
                    println!("{c:>12}  {n}");
                }
            }
        }
        SqliteCommand::Export {
            spec,
            table,
            format,
            as_of,
        } => {
            let format = match format.as_str() {
                "sql" => ExportFormat::Sql,
                "csv" => ExportFormat::Csv,
                f => bail!("unknown format {f:?}: use sql or csv"),
            };
            let tmp = fetch(g, &s.repo, &spec, &as_of)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            sqlite::export_table(tmp.path(), &table, format, &mut out)?;
            out.flush()?;
        }
    }
    Ok(exit::OK)
}
