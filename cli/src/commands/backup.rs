use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use indicatif::ProgressBar;

use cairn_engine::archiver::{self, BackupOptions, BackupProgress, ParentChoice, StdinSource};
use cairn_engine::excludes::ExcludesBuilder;
use cairn_engine::selector::{self, SnapshotFilter};

use crate::args::{BackupArgs, Global};
use crate::output::{self, bytes};
use crate::{context, exit};

struct Progress {
    bar: ProgressBar,
    quiet: bool,
    json: bool,
    lines: Mutex<()>,
}

impl BackupProgress for Progress {
    fn bytes_read(&self, n: u64) {
        self.bar.inc(n);
    }

    fn warning(&self, path: &Path, message: &str) {
        if self.json {
            let _g = self.lines.lock();
            eprintln!(
                "{}",
                serde_json::json!({"message_type": "error", "path": output::path(path), "error": message})
            );
        } else if !self.quiet {
            self.bar
                .suspend(|| eprintln!("warning: {}: {message}", output::path(path)));
        }
    }
}

pub fn run(g: &Global, a: BackupArgs) -> Result<i32> {
    let session = context::session(g, context::Locking::Shared)?;
    let repo = &session.repo;
    let mut ex = ExcludesBuilder::new();
    for p in &a.exclude {
        ex.add(p, false)?;
    }
    for p in &a.iexclude {
        ex.add(p, true)?;
    }
    for f in &a.exclude_file {
        ex.add_file(f, false)?;
    }
    for f in &a.iexclude_file {
        ex.add_file(f, true)?;
    }
    let parent = match &a.parent {
        Some(spec) => {
            let snaps = repo.snapshots()?;
            ParentChoice::Explicit(
                selector::select(&snaps, spec, &SnapshotFilter::default(), None)?.id,
            )
        }
        None => ParentChoice::Auto,
    };
    let time = match &a.time {
        Some(t) => Some(selector::parse_time(t)?),
        None => None,
    };
    let stdin = a.stdin.then(|| StdinSource {
        filename: a.stdin_filename.clone(),
        reader: Box::new(std::io::stdin()),
    });
    if a.stdin && !a.paths.is_empty() {
        anyhow::bail!("--stdin takes no paths");
    }
    let opts = BackupOptions {
        paths: a.paths.clone(),
        excludes: ex.build()?,
        exclude_caches: a.exclude_caches,
        one_file_system: a.one_file_system,
        tags: a
            .tags
            .iter()
            .flat_map(|t| t.split(','))
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
        host: a.host.clone(),
        time,
        parent,
        force: a.force,
        dry_run: a.dry_run,
        stdin,
        sqlite: a.sqlite.clone(),
        sqlite_timeout: context::parse_duration(&a.sqlite_timeout)?,
    };
    let progress = Progress {
        bar: output::byte_bar(g, None, "backup"),
        quiet: g.quiet,
        json: g.json,
        lines: Mutex::new(()),
    };
    let out = archiver::backup(repo, opts, &progress, &session.cancel).context("backup failed")?;
    progress.bar.finish_and_clear();
    let s = &out.snapshot;
    let sum = s.summary.clone().unwrap_or_default();
    if g.json {
        println!(
            "{}",
            serde_json::json!({
                "message_type": "summary",
                "snapshot_id": out.snapshot_id.map(|i| i.to_hex()),
                "dry_run": a.dry_run,
                "parent": s.parent.map(|i| i.to_hex()),
                "summary": sum,
                "errors": out.warnings.iter().map(|w| serde_json::json!({"path": output::path(&w.path), "error": w.message})).collect::<Vec<_>>(),
            })
        );
    } else if !g.quiet {
        if let Some(p) = s.parent {
            println!("using parent snapshot {}", p.short());
        }
        println!(
            "Files: {:>8} new, {:>8} changed, {:>8} unmodified",
            sum.files_new, sum.files_changed, sum.files_unmodified
        );
        println!(
            "Dirs:  {:>8} new, {:>8} changed, {:>8} unmodified",
            sum.dirs_new, sum.dirs_changed, sum.dirs_unmodified
        );
        println!(
            "Added to the repository: {} ({} stored) in {} data and {} tree blobs",
            bytes(sum.bytes_added),
            bytes(sum.bytes_added_stored),
            sum.data_blobs_added,
            sum.tree_blobs_added
        );
        println!(
            "processed {} files, {} in {}",
            sum.total_files,
            bytes(sum.total_bytes),
            output::duration(sum.duration_ns)
        );
        match out.snapshot_id {
            Some(id) => println!("snapshot {} saved", id.short()),
            None => println!("dry run: nothing was written"),
        }
        if !out.warnings.is_empty() {
            eprintln!(
                "warning: {} files or directories could not be read and are not in the snapshot",
                out.warnings.len()
            );
        }
    }
    Ok(if out.warnings.is_empty() {
        exit::OK
    } else {
        exit::PARTIAL
    })
}
