//! `cairn forget`: removes snapshots by a retention policy (restic's
//! `--keep-*` rules, per group) or by ID, and optionally prunes afterwards.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use cairn_engine::forget::{self, GroupDecision, GroupKey, KeepPolicy};
use cairn_engine::prune::PruneOptions;
use cairn_engine::repofile::snapshot::Snapshot;
use cairn_engine::selector;
use cairn_engine::Id;

use crate::args::{ForgetArgs, Global};
use crate::{context, exit};

fn policy(a: &ForgetArgs) -> KeepPolicy {
    KeepPolicy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within: a.keep_within,
        within_hourly: a.keep_within_hourly,
        within_daily: a.keep_within_daily,
        within_weekly: a.keep_within_weekly,
        within_monthly: a.keep_within_monthly,
        within_yearly: a.keep_within_yearly,
        tags: a.keep_tag.clone(),
        min_keep: a.keep_min,
    }
}

pub fn run(g: &Global, a: ForgetArgs) -> Result<i32> {
    let policy = policy(&a);
    let by_id = !a.ids.is_empty();
    if by_id && (!policy.is_empty() || policy.min_keep > 0) {
        bail!("snapshot IDs cannot be combined with --keep-* options");
    }
    if !by_id && policy.is_empty() {
        bail!(
            "no policy given: refusing to remove every snapshot (use --keep-* options, or name the snapshots to remove)"
        );
    }
    let prune_opts = a.prune.then(|| PruneOptions {
        dry_run: a.dry_run,
        ..PruneOptions::default()
    });

    let session = context::session(g, context::Locking::Exclusive)?;
    let repo = &session.repo;
    let filter = super::filter(&a.filter);
    let snaps = repo.snapshots()?;

    let decisions = if by_id {
        let mut ids: Vec<Id> = Vec::new();
        for spec in &a.ids {
            let id = selector::select(&snaps, spec, &filter, None)?.id;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        forget::plan_ids(snaps, &ids, &a.group_by)?
    } else {
        let snaps: Vec<Snapshot> = snaps.into_iter().filter(|s| filter.matches(s)).collect();
        forget::plan(snaps, &policy, &a.group_by, chrono::Utc::now())?
    };

    session.cancel.check()?;
    let removed = forget::apply(repo, &decisions, a.dry_run)?;

    if g.json {
        println!("{}", decisions_json(&decisions));
    } else if !g.quiet {
        print_human(
            &decisions,
            (!by_id).then_some(&policy),
            a.dry_run,
            removed.len(),
        );
    }

    if let Some(opts) = prune_opts {
        if removed.is_empty() {
            if !g.quiet && !g.json {
                println!("no snapshots removed; prune skipped");
            }
        } else if a.dry_run {
            // prune reads the snapshots from the repository, where the
            // forgotten ones are still present on a dry run.
            if !g.quiet && !g.json {
                println!("dry run: prune skipped (run `cairn prune --dry-run` after forgetting)");
            }
        } else {
            session.cancel.check()?;
            if !g.quiet && !g.json {
                println!();
            }
            return super::prune::run_in(g, &session, &opts);
        }
    }
    Ok(exit::OK)
}

fn time(s: &Snapshot) -> String {
    s.time
        .with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn decisions_json(decisions: &[GroupDecision]) -> Value {
    Value::Array(
        decisions
            .iter()
            .map(|d| {
                json!({
                    "group": {
                        "host": d.key.hostname,
                        "paths": d.key.paths,
                        "tags": d.key.tags,
                    },
                    "keep": d.keep.iter().map(|(s, r)| json!({
                        "id": s.id.to_hex(),
                        "time": s.time.to_rfc3339(),
                        "reasons": r,
                    })).collect::<Vec<_>>(),
                    "remove": d.remove.iter().map(|s| json!({
                        "id": s.id.to_hex(),
                        "time": s.time.to_rfc3339(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// Prints rows of cells, each cell one or more lines, in aligned columns.
fn table(header: &[&str], rows: &[Vec<Vec<String>>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            for line in cell {
                *w = (*w).max(line.chars().count());
            }
        }
    }
    let line = |cells: &[&str]| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    let total: usize = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
    line(header);
    println!("{}", "-".repeat(total));
    for row in rows {
        let height = row.iter().map(Vec::len).max().unwrap_or(1).max(1);
        for i in 0..height {
            let cells: Vec<&str> = row
                .iter()
                .map(|c| c.get(i).map(String::as_str).unwrap_or(""))
                .collect();
            line(&cells);
        }
    }
    println!("{}", "-".repeat(total));
}

fn row(s: &Snapshot, reasons: Option<&[String]>) -> Vec<Vec<String>> {
    let mut r = vec![
        vec![s.id.short()],
        vec![time(s)],
        vec![s.hostname.clone()],
        vec![s.tags.join(",")],
    ];
    if let Some(reasons) = reasons {
        r.push(reasons.to_vec());
    }
    r.push(s.paths.clone());
    r
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        "snapshot"
    } else {
        "snapshots"
    }
}

fn print_human(
    decisions: &[GroupDecision],
    policy: Option<&KeepPolicy>,
    dry_run: bool,
    removed: usize,
) {
    if let Some(p) = policy {
        println!("applying policy: {p}");
    }
    for d in decisions {
        println!();
        if d.key == GroupKey::default() {
            println!("all snapshots:");
        } else {
            println!("snapshots for {}:", d.key);
        }
        if policy.is_some() {
            println!("keep {} {}:", d.keep.len(), plural(d.keep.len()));
            let rows: Vec<_> = d
                .keep
                .iter()
                .map(|(s, r)| row(s, Some(r.as_slice())))
                .collect();
            table(&["ID", "Time", "Host", "Tags", "Reasons", "Paths"], &rows);
        }
        if !d.remove.is_empty() {
            println!(
                "{} {} {}:",
                if dry_run { "would remove" } else { "remove" },
                d.remove.len(),
                plural(d.remove.len())
            );
            let rows: Vec<_> = d.remove.iter().map(|s| row(s, None)).collect();
            table(&["ID", "Time", "Host", "Tags", "Paths"], &rows);
        }
    }
    println!();
    if dry_run {
        println!("would remove {removed} {}", plural(removed));
    } else {
        println!("{removed} {} removed", plural(removed));
    }
}
