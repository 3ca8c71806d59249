use anyhow::{bail, Result};

use cairn_engine::browse;
use cairn_engine::excludes::ExcludesBuilder;
use cairn_engine::repofile::snapshot::Snapshot;
use cairn_engine::selector::{self, SnapshotFilter};

use crate::args::{DiffArgs, FindArgs, Global, StatsArgs, TagArgs};
use crate::output::bytes;
use crate::{context, exit};

fn split_tags(v: &[String]) -> Vec<String> {
    v.iter()
        .flat_map(|t| t.split(','))
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

/// The snapshots named, or all that match the filter.
pub(super) fn pick(
    all: &[Snapshot],
    names: &[String],
    filter: &SnapshotFilter,
) -> Result<Vec<Snapshot>> {
    if names.is_empty() {
        return Ok(all.iter().filter(|s| filter.matches(s)).cloned().collect());
    }
    names
        .iter()
        .map(|n| Ok(selector::select(all, n, filter, None)?.clone()))
        .collect()
}

pub fn find(g: &Global, a: FindArgs) -> Result<i32> {
    let s = context::session(g, context::Locking::Shared)?;
    let mut b = ExcludesBuilder::new();
    for p in &a.patterns {
        b.add(p, a.ignore_case)?;
    }
    let pattern = b.build()?;
    let all = s.repo.snapshots()?;
    let snaps = pick(&all, &a.snapshots, &super::filter(&a.filter))?;
    let found = browse::find(&s.repo, &snaps, &pattern, &s.cancel)?;
    if g.json {
        println!("{}", serde_json::to_string(&found)?);
    } else {
        for f in &found {
            let t = chrono::DateTime::from_timestamp_nanos(f.mtime)
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S");
            println!("{}  {:>12}  {t}  {}", &f.snapshot[..8], f.size, f.path);
        }
        if !g.quiet {
            eprintln!("{} matches in {} snapshots", found.len(), snaps.len());
        }
    }
    Ok(exit::OK)
}

pub fn diff(g: &Global, a: DiffArgs) -> Result<i32> {
    let s = context::session(g, context::Locking::Shared)?;
    let all = s.repo.snapshots()?;
    let f = SnapshotFilter::default();
    let from = selector::select(&all, &a.from, &f, None)?;
    let to = selector::select(&all, &a.to, &f, None)?;
    let d = browse::diff(&s.repo, from, to, &s.cancel)?;
    if g.json {
        println!("{}", serde_json::to_string(&d)?);
    } else {
        for x in &d {
            println!("{}    {}", x.change.symbol(), x.path);
        }
        if !g.quiet {
            let count = |c| d.iter().filter(|x| x.change == c).count();
            println!(
                "\n{} added, {} removed, {} modified, {} metadata only",
                count(browse::Change::Added),
                count(browse::Change::Removed),
                count(browse::Change::Modified),
                count(browse::Change::Metadata)
            );
        }
    }
    Ok(exit::OK)
}

pub fn stats(g: &Global, a: StatsArgs) -> Result<i32> {
    let s = context::session(g, context::Locking::Shared)?;
    let all = s.repo.snapshots()?;
    let snaps = pick(&all, &a.snapshots, &super::filter(&a.filter))?;
    let st = browse::stats(&s.repo, &snaps, &s.cancel)?;
    if g.json {
        println!("{}", serde_json::to_string(&st)?);
    } else {
        println!("snapshots:            {}", st.snapshots);
        println!("files:                {}", st.total_files);
        println!("restore size:         {}", bytes(st.restore_size));
        println!("deduplicated size:    {}", bytes(st.deduplicated_size));
        println!("stored size:          {}", bytes(st.stored_size));
        println!("repository size:      {}", bytes(st.repository_size));
        println!(
            "blobs:                {} data, {} tree",
            st.data_blobs, st.tree_blobs
        );
        println!("compression ratio:    {:.2}x", st.compression_ratio);
        println!("deduplication ratio:  {:.2}x", st.deduplication_ratio);
    }
    Ok(exit::OK)
}

pub fn tag(g: &Global, a: TagArgs) -> Result<i32> {
    if a.add.is_empty() && a.remove.is_empty() && a.set.is_empty() {
        bail!("nothing to do: give --add, --remove or --set");
    }
    if !a.set.is_empty() && (!a.add.is_empty() || !a.remove.is_empty()) {
        bail!("--set cannot be combined with --add or --remove");
    }
    let s = context::session(g, context::Locking::Exclusive)?;
    let all = s.repo.snapshots()?;
    let snaps = pick(&all, &a.snapshots, &super::filter(&a.filter))?;
    let set = split_tags(&a.set);
    let set = (!a.set.is_empty()).then_some(set.as_slice());
    let mut changed = Vec::new();
    for snap in &snaps {
        if let Some(id) = browse::retag(
            &s.repo,
            snap,
            &split_tags(&a.add),
            &split_tags(&a.remove),
            set,
        )? {
            changed.push((snap.id, id));
        }
    }
    if g.json {
        let v: Vec<_> = changed
            .iter()
            .map(|(o, n)| serde_json::json!({"old": o.to_hex(), "new": n.to_hex()}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
    } else if !g.quiet {
        for (o, n) in &changed {
            println!("snapshot {} is now {}", o.short(), n.short());
        }
        println!("{} snapshots changed", changed.len());
    }
    Ok(exit::OK)
}
