use anyhow::Result;

use cairn_engine::repofile::snapshot::Snapshot;

use crate::args::{FilterArgs, Global};
use crate::output::bytes;
use crate::{context, exit};

/// A snapshot as JSON, with its ID.
pub fn snapshot_json(s: &Snapshot) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or(serde_json::Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.insert("id".into(), s.id.to_hex().into());
        m.insert("short_id".into(), s.id.short().into());
    }
    v
}

pub fn run(g: &Global, f: FilterArgs) -> Result<i32> {
    let session = context::session(g, context::Locking::Shared)?;
    let repo = &session.repo;
    let filter = super::filter(&f);
    let snaps: Vec<Snapshot> = repo
        .snapshots()?
        .into_iter()
        .filter(|s| filter.matches(s))
        .collect();
    if g.json {
        let v: Vec<_> = snaps.iter().map(snapshot_json).collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(exit::OK);
    }
    println!(
        "{:<8}  {:<19}  {:<15}  {:<15}  {:>10}  Paths",
        "ID", "Time", "Host", "Tags", "Size"
    );
    println!("{}", "-".repeat(90));
    for s in &snaps {
        let size = s
            .summary
            .as_ref()
            .map(|x| bytes(x.total_bytes))
            .unwrap_or_default();
        let t = s
            .time
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S");
        let mut paths = s.paths.iter();
        println!(
            "{:<8}  {:<19}  {:<15}  {:<15}  {:>10}  {}",
            s.id.short(),
            t,
            s.hostname,
            s.tags.join(","),
            size,
            paths.next().map(String::as_str).unwrap_or("")
        );
        for p in paths {
            println!("{:>75}  {p}", "");
        }
    }
    println!("{}", "-".repeat(90));
    println!("{} snapshots", snaps.len());
    Ok(exit::OK)
}
