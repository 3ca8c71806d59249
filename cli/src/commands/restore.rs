use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result};
use indicatif::ProgressBar;

use cairn_engine::excludes::ExcludesBuilder;
use cairn_engine::restorer::{self, RestoreOptions, RestoreProgress};
use cairn_engine::selector;

use crate::args::{DumpArgs, Global, RestoreArgs};
use crate::output::{self, bytes};
use crate::{context, exit};

struct Progress {
    bar: ProgressBar,
    quiet: bool,
    json: bool,
}

impl RestoreProgress for Progress {
    fn planned(&self, _files: u64, bytes: u64) {
        self.bar.set_length(bytes);
    }

    fn bytes_written(&self, n: u64) {
        self.bar.inc(n);
    }

    fn warning(&self, path: &std::path::Path, message: &str) {
        if self.json {
            eprintln!(
                "{}",
                serde_json::json!({"message_type": "error", "path": output::path(path), "error": message})
            );
        } else if !self.quiet {
            self.bar
                .suspend(|| eprintln!("error: {}: {message}", output::path(path)));
        }
    }
}

pub fn run(g: &Global, a: RestoreArgs) -> Result<i32> {
    let session = context::session(g, context::Locking::Shared)?;
    let repo = &session.repo;
    let (spec, sub) = selector::split_spec_bytes(a.snapshot.as_bytes())?;
    let snap = selector::find_snapshot(
        repo,
        &spec,
        &super::filter(&a.filter),
        super::as_of(&a.as_of)?,
    )?;
    let sub = sub.unwrap_or_else(|| b"/".to_vec());
    let node = selector::find_node(repo, &snap, &sub)?;
    let path_lossy = String::from_utf8_lossy(&sub).into_owned();
    let path = path_lossy.as_str();
    let include = if a.include.is_empty() {
        None
    } else {
        let mut b = ExcludesBuilder::new();
        for p in &a.include {
            b.add(p, false)?;
        }
        Some(b.build()?)
    };
    let mut ex = ExcludesBuilder::new();
    for p in &a.exclude {
        ex.add(p, false)?;
    }
    let opts = RestoreOptions {
        target: a.target.clone(),
        include,
        exclude: ex.build()?,
        verify: a.verify,
        owners: nix::unistd::geteuid().is_root(),
    };
    let progress = Progress {
        bar: output::byte_bar(g, Some(0), "restore"),
        quiet: g.quiet,
        json: g.json,
    };
    let snap_path = format!("/{}", path.trim_matches('/'));
    let out = restorer::restore(repo, &node, &snap_path, &opts, &progress, &session.cancel)
        .with_context(|| format!("restore into {} failed", a.target.display()))?;
    progress.bar.finish_and_clear();
    if g.json {
        println!(
            "{}",
            serde_json::json!({
                "message_type": "summary",
                "snapshot_id": snap.id.to_hex(),
                "files": out.files, "dirs": out.dirs, "others": out.others, "bytes": out.bytes,
                "verified_files": out.verified_files,
                "databases_ok": out.databases_ok.iter().map(|p| output::path(p)).collect::<Vec<_>>(),
                "errors": out.errors.iter().map(|(p, e)| serde_json::json!({"path": output::path(p), "error": e})).collect::<Vec<_>>(),
            })
        );
    } else if !g.quiet {
        println!(
            "restored snapshot {} into {}: {} files, {} directories, {} other, {}",
            snap.id.short(),
            a.target.display(),
            out.files,
            out.dirs,
            out.others,
            bytes(out.bytes)
        );
        if a.verify {
            println!("verified {} files", out.verified_files);
        }
        for d in &out.databases_ok {
            println!("database {}: integrity check ok", d.display());
        }
    }
    if out.errors.is_empty() {
        Ok(exit::OK)
    } else {
        if !g.json {
            eprintln!("cairn: restore finished with {} errors", out.errors.len());
        }
        Ok(exit::ERROR)
    }
}

pub fn dump(g: &Global, a: DumpArgs) -> Result<i32> {
    let session = context::session(g, context::Locking::Shared)?;
    let repo = &session.repo;
    let (spec, sub) = selector::split_spec_bytes(a.snapshot.as_bytes())?;
    let Some(path) = sub else {
        anyhow::bail!("dump needs SNAPSHOT:PATH naming a file");
    };
    let snap = selector::find_snapshot(
        repo,
        &spec,
        &super::filter(&a.filter),
        super::as_of(&a.as_of)?,
    )?;
    let node = selector::find_node(repo, &snap, &path)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    restorer::dump_file(repo, &node, &mut out)?;
    out.flush()?;
    Ok(exit::OK)
}
