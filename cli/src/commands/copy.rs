//! `cairn copy`: replicates snapshots from another repository.

use anyhow::{Context, Result};
use indicatif::ProgressBar;

use cairn_engine::copier::{self, CopyOptions, CopyProgress};
use cairn_engine::lock::Cancel;
use cairn_engine::repofile::snapshot::Snapshot;

use crate::args::{CopyArgs, Global};
use crate::output::{self, bytes};
use crate::{context, exit};

struct Progress {
    bar: ProgressBar,
}

impl CopyProgress for Progress {
    fn snapshot_started(&self, s: &Snapshot, number: usize, of: usize) {
        self.bar
            .set_message(format!("snapshot {} ({number}/{of})", s.id.short()));
    }

    fn bytes_read(&self, n: u64) {
        self.bar.inc(n);
    }
}

/// The global options as they apply to the source repository: its own
/// location, password and storage settings; the cache and lock settings
/// are shared.
fn source_options(g: &Global, a: &CopyArgs) -> Global {
    let mut s = g.clone();
    s.repo = Some(a.from_repo.clone());
    s.option = a.from_option.clone();
    s.connections = a.from_connections;
    s.password_file = a.from_password_file.clone();
    s.password_command = a.from_password_command.clone();
    s.password_var = Some("CAIRN_FROM_PASSWORD");
    s
}

pub fn run(g: &Global, a: CopyArgs) -> Result<i32> {
    let sg = source_options(g, &a);
    // One flag for both: an interruption, or either lock lost, stops it.
    let cancel = Cancel::new(crate::interrupt::flag());
    let src = context::session_with(&sg, context::Locking::Shared, cancel.clone())
        .with_context(|| format!("source repository {}", a.from_repo))?;
    let dst = context::session_with(g, context::Locking::Shared, cancel.clone())?;
    let all = src.repo.snapshots()?;
    let snaps = super::browse::pick(&all, &a.snapshots, &super::filter(&a.filter))?;
    let progress = Progress {
        bar: output::byte_bar(g, None, "copying"),
    };
    let opts = CopyOptions { dry_run: a.dry_run };
    let r = copier::copy(&src.repo, &dst.repo, &snaps, &opts, &progress, &cancel);
    progress.bar.finish_and_clear();
    let rep = r?;
    if g.json {
        println!("{}", serde_json::to_string(&rep)?);
    } else if !g.quiet {
        for c in &rep.skipped {
            println!(
                "snapshot {} is already in {} as {}",
                &c.source[..8],
                dst.repo.location(),
                c.target.as_deref().map_or("?", |t| &t[..8])
            );
        }
        for c in &rep.copied {
            match &c.target {
                Some(t) => println!("snapshot {} copied as {}", &c.source[..8], &t[..8]),
                None => println!("snapshot {} would be copied", &c.source[..8]),
            }
        }
        println!(
            "{} snapshots {}copied, {} already present; read {} in {} blobs, added {} data and {} tree blobs ({} stored)",
            rep.copied.len(),
            if a.dry_run { "would be " } else { "" },
            rep.skipped.len(),
            bytes(rep.bytes_read),
            rep.blobs_read,
            rep.data_blobs_added,
            rep.tree_blobs_added,
            bytes(rep.bytes_added_stored)
        );
    }
    Ok(exit::OK)
}
