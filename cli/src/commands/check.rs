use anyhow::Result;
use indicatif::ProgressBar;

use cairn_engine::checker::{self, CheckProgress, ReadData, Severity};
use cairn_engine::lock::{self, Cancel, LockTiming};

use crate::args::{CheckArgs, Global};
use crate::output::{self, bytes};
use crate::{context, exit};

struct Progress(ProgressBar);

impl CheckProgress for Progress {
    fn packs_to_read(&self, _n: usize, total: u64) {
        self.0.set_length(total);
    }
    fn pack_read(&self, n: u64) {
        self.0.inc(n);
    }
}

pub fn run(g: &Global, a: CheckArgs) -> Result<i32> {
    let read = match (&a.read_data_subset, a.read_data) {
        (Some(s), _) => checker::parse_subset(s)?,
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    // The index is loaded by the check itself, file by file, so that a
    // damaged index file is reported instead of stopping it.
    let (repo, password) = context::open_with_password(g)?;
    let cancel = Cancel::new(crate::interrupt::flag());
    let _lock = if g.no_lock {
        None
    } else {
        let retry = g
            .retry_lock
            .as_deref()
            .map(context::parse_duration)
            .transpose()?
            .unwrap_or_default();
        Some(lock::lock(
            &repo,
            false,
            retry,
            LockTiming::default(),
            &cancel,
        )?)
    };
    let bar = output::byte_bar(g, Some(0), "check");
    let report = checker::check(
        &repo,
        read,
        Some(&password),
        &Progress(bar.clone()),
        &cancel,
    )?;
    drop(password);
    bar.finish_and_clear();
    if g.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for f in &report.findings {
            if g.quiet && f.severity != Severity::Error {
                continue;
            }
            let tag = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            println!("{tag}: {}", f.message);
            for x in f.affected.iter().take(20) {
                println!("    snapshot {} {}", &x.snapshot[..8], x.path);
            }
            if f.affected.len() > 20 {
                println!("    ... and {} more", f.affected.len() - 20);
            }
        }
        if !g.quiet {
            println!(
                "checked {} snapshots, {} trees, {} blobs in {} packs; read {} packs ({})",
                report.snapshots,
                report.trees,
                report.blobs,
                report.packs,
                report.packs_read,
                bytes(report.bytes_read)
            );
        }
        match report.errors() {
            0 => {
                if !g.quiet {
                    println!("no errors were found");
                }
            }
            n => eprintln!("cairn: check found {n} errors in {}", repo.location()),
        }
    }
    Ok(if report.errors() == 0 {
        exit::OK
    } else {
        exit::ERROR
    })
}
