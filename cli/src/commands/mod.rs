//! One module per command; each returns the process exit code.

mod backup;
mod browse;
mod cat;
mod check;
mod copy;
mod forget;
mod init;
mod key;
mod ls;
pub mod prune;
mod repair;
mod restore;
mod snapshots;
mod sqlite;

use anyhow::Result;

use crate::args::{Cli, Command, FilterArgs};
use crate::exit;
use cairn_engine::selector::SnapshotFilter;

pub fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => init::run(g, a),
        Command::Backup(a) => backup::run(g, a),
        Command::Snapshots(a) => snapshots::run(g, a),
        Command::Ls(a) => ls::run(g, a),
        Command::Restore(a) => restore::run(g, a),
        Command::Dump(a) => restore::dump(g, a),
        Command::Cat(a) => cat::run(g, a),
        Command::Key(k) => key::run(g, k),
        Command::Check(a) => check::run(g, a),
        Command::Forget(a) => forget::run(g, a),
        Command::Prune(a) => prune::run(g, a),
        Command::Repair(r) => repair::run(g, r),
        Command::Find(a) => browse::find(g, a),
        Command::Diff(a) => browse::diff(g, a),
        Command::Stats(a) => browse::stats(g, a),
        Command::Tag(a) => browse::tag(g, a),
        Command::Copy(a) => copy::run(g, a),
        Command::Sqlite(c) => sqlite::run(g, c),
        Command::Unlock { remove_all } => {
            let repo = crate::context::open_unlocked(g)?;
            let n = cairn_engine::lock::remove_locks(
                &repo,
                remove_all,
                &cairn_engine::lock::LockTiming::default(),
            )?;
            if g.json {
                println!("{}", serde_json::json!({"removed": n}));
            } else if !g.quiet {
                println!("removed {n} lock(s)");
            }
            Ok(exit::OK)
        }
        Command::Version => {
            if g.json {
                println!(
                    "{}",
                    serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "format": cairn_engine::format::VERSION})
                );
            } else {
                println!(
                    "cairn {} (repository format {})",
                    env!("CARGO_PKG_VERSION"),
                    cairn_engine::format::VERSION
                );
            }
            Ok(exit::OK)
        }
    }
}

pub fn filter(f: &FilterArgs) -> SnapshotFilter {
    SnapshotFilter {
        hosts: f.hosts.clone(),
        tags: f.tags.clone(),
        paths: f.paths.clone(),
    }
}

/// Parses an optional `--as-of` time.
pub fn as_of(s: &Option<String>) -> Result<Option<chrono::DateTime<chrono::FixedOffset>>> {
    Ok(match s {
        Some(t) => Some(cairn_engine::selector::parse_time(t)?),
        None => None,
    })
}
