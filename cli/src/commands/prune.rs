use anyhow::{bail, Result};
use indicatif::ProgressBar;

use cairn_engine::prune::{self, PruneOptions, PruneProgress, PruneReport};

use crate::args::{Global, PruneArgs};
use crate::context::{self, Session};
use crate::exit;
use crate::output::{self, bytes};

struct Progress(ProgressBar);

impl PruneProgress for Progress {
    fn phase(&self, what: &str) {
        self.0.set_message(what.to_string());
    }
}

pub fn options(a: &PruneArgs) -> Result<PruneOptions> {
    let pct = a.max_unused.trim().trim_end_matches('%');
    let max_unused: f64 = pct.parse().map_err(|_| {
        anyhow::anyhow!(
            "invalid --max-unused {:?}: use a percentage like 5%",
            a.max_unused
        )
    })?;
    if !(0.0..=100.0).contains(&max_unused) {
        bail!("--max-unused must be between 0% and 100%");
    }
    let keep = context::parse_duration(&a.keep_delete)?;
    Ok(PruneOptions {
        max_unused: max_unused / 100.0,
        max_repack_size: a
            .max_repack_size
            .as_deref()
            .map(cairn_engine::units::parse_size)
            .transpose()?,
        keep_delete: chrono::Duration::from_std(keep)?,
        instant_delete: a.instant_delete,
        dry_run: a.dry_run,
    })
}

pub fn print(g: &Global, r: &PruneReport) {
    if g.json {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    if g.quiet {
        return;
    }
    let would = if r.dry_run { "would " } else { "" };
    println!("{} snapshots; {} packs", r.snapshots, r.packs);
    println!("used:   {} blobs, {}", r.blobs_used, bytes(r.bytes_used));
    println!(
        "unused: {} blobs, {}",
        r.blobs_unused,
        bytes(r.bytes_unused)
    );
    println!(
        "{would}keep {} packs, {would}repack {} packs ({}), {} packs unused, {} unindexed, {} restored to the index",
        r.packs_kept,
        r.packs_repacked,
        bytes(r.bytes_repacked),
        r.packs_unused,
        r.packs_unindexed,
        r.packs_restored
    );
    println!(
        "{would}delete {} packs now, freeing {}",
        r.packs_deleted,
        bytes(r.bytes_deleted)
    );
    if r.packs_marked_obsolete > 0 {
        println!(
            "{} unused packs ({}) are kept until their grace period ends; a later prune deletes them",
            r.packs_marked_obsolete,
            bytes(r.bytes_pending)
        );
    }
}

/// Prunes with a session that already holds the exclusive lock.
pub fn run_in(g: &Global, s: &Session, opts: &PruneOptions) -> Result<i32> {
    let bar = output::byte_bar(g, None, "prune");
    let r = prune::prune(&s.repo, opts, &Progress(bar.clone()), &s.cancel)?;
    bar.finish_and_clear();
    print(g, &r);
    Ok(exit::OK)
}

pub fn run(g: &Global, a: PruneArgs) -> Result<i32> {
    let opts = options(&a)?;
    let s = context::session(g, context::Locking::Exclusive)?;
    run_in(g, &s, &opts)
}
