use anyhow::Result;

use cairn_engine::lock::{self, Cancel, LockTiming};
use cairn_engine::repair;

use crate::args::{Global, RepairCommand};
use crate::{context, exit};

pub fn run(g: &Global, r: RepairCommand) -> Result<i32> {
    match r {
        RepairCommand::Index { read_data } => {
            // The index may be what is broken: open without loading it.
            let repo = context::open_unlocked(g)?;
            let cancel = Cancel::new(crate::interrupt::flag());
            let retry = g
                .retry_lock
                .as_deref()
                .map(context::parse_duration)
                .transpose()?
                .unwrap_or_default();
            let _lock = lock::lock(&repo, true, retry, LockTiming::default(), &cancel)?;
            let rep = repair::repair_index(&repo, read_data, &cancel)?;
            if g.json {
                println!("{}", serde_json::to_string(&rep)?);
            } else {
                for p in &rep.problems {
                    eprintln!("warning: {p}");
                }
                if !g.quiet {
                    println!(
                        "indexed {} of {} packs ({} adopted); {} damaged packs: {} blobs salvaged, {} lost; {} old index files replaced",
                        rep.packs_indexed, rep.packs, rep.packs_adopted, rep.packs_damaged, rep.blobs_salvaged, rep.blobs_lost, rep.index_files_removed
                    );
                    if rep.blobs_lost > 0 {
                        println!("run `cairn repair snapshots --forget` to rewrite the snapshots that used the lost blobs");
                    }
                }
            }
            Ok(exit::OK)
        }
        RepairCommand::Snapshots { forget, dry_run } => {
            let s = context::session(g, context::Locking::Exclusive)?;
            let rep = repair::repair_snapshots(&s.repo, forget, dry_run, &s.cancel)?;
            if g.json {
                println!("{}", serde_json::to_string(&rep)?);
            } else if !g.quiet {
                for (old, new) in &rep.repaired {
                    if dry_run {
                        println!("snapshot {} would be repaired", &old[..8]);
                    } else {
                        println!("snapshot {} repaired as {}", &old[..8], &new[..8]);
                    }
                }
                println!(
                    "{} of {} snapshots {}repaired: {} damaged files and {} lost directories kept under .damaged names; {} originals removed",
                    rep.repaired.len(),
                    rep.snapshots,
                    if dry_run { "would be " } else { "" },
                    rep.damaged_files,
                    rep.damaged_dirs,
                    rep.originals_removed
                );
            }
            Ok(exit::OK)
        }
    }
}
