//! Opening the repository named on the command line with the password
//! from wherever the operator keeps it.

use std::io::IsTerminal;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use cairn_engine::backend::{cache, location, Backend, CachedBackend, LoggedBackend, OpenOptions};
use cairn_engine::lock::{self, Cancel, LockGuard, LockTiming};
use cairn_engine::Repository;

use crate::args::Global;

/// The backend for a repository location (see
/// `cairn_engine::backend::location` for the forms it takes).
pub fn backend(g: &Global, create: bool) -> Result<Arc<dyn Backend>> {
    let Some(repo) = g.repo.as_deref() else {
        bail!("no repository given: use -r/--repo or set CAIRN_REPOSITORY");
    };
    if repo.is_empty() {
        bail!("the repository location is empty");
    }
    let opts = OpenOptions {
        options: OpenOptions::parse_options(&g.option)?,
        connections: g.connections.map(usize::from),
    };
    let backend = location::open(repo, &opts, create)?;
    if g.verbose == 0 {
        return Ok(backend);
    }
    // -v: one line per storage request, below the cache, so that what is
    // logged is what the storage was asked.
    Ok(LoggedBackend::wrap(
        backend,
        Arc::new(|line: &str| eprintln!("{line}")),
    ))
}

fn strip_newline(mut s: Vec<u8>) -> Vec<u8> {
    if s.last() == Some(&b'\n') {
        s.pop();
        if s.last() == Some(&b'\r') {
            s.pop();
        }
    }
    s
}

/// The repository password: --password-file, --password-command (or their
/// CAIRN_ variables), CAIRN_PASSWORD, or a prompt on a terminal.
pub fn password(g: &Global, prompt: &str) -> Result<Vec<u8>> {
    if let Some(f) = &g.password_file {
        let b = std::fs::read(f)
            .with_context(|| format!("cannot read password file {}", f.display()))?;
        return Ok(strip_newline(b));
    }
    if let Some(cmd) = &g.password_command {
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run password command {cmd:?}"))?;
        if !out.status.success() {
            bail!("password command {cmd:?} failed with {}", out.status);
        }
        return Ok(strip_newline(out.stdout));
    }
    let var = g.password_var.unwrap_or("CAIRN_PASSWORD");
    if let Some(p) = std::env::var_os(var) {
        use std::os::unix::ffi::OsStringExt;
        return Ok(p.into_vec());
    }
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(prompt).context("cannot read the password")?;
        return Ok(p.into_bytes());
    }
    let flag = if var == "CAIRN_PASSWORD" {
        "--"
    } else {
        "--from-"
    };
    bail!("no password given: use {flag}password-file, {flag}password-command, {var} or a terminal")
}

/// A new password for `init` and `key add/passwd`: asked twice on a
/// terminal.
pub fn new_password(file: Option<&Path>, g: &Global) -> Result<Vec<u8>> {
    if let Some(f) = file {
        let b = std::fs::read(f)
            .with_context(|| format!("cannot read password file {}", f.display()))?;
        return Ok(strip_newline(b));
    }
    if g.password_file.is_none()
        && g.password_command.is_none()
        && std::env::var_os("CAIRN_PASSWORD").is_none()
        && std::io::stdin().is_terminal()
    {
        let a = rpassword::prompt_password("enter new password: ")?;
        let b = rpassword::prompt_password("enter it again: ")?;
        if a != b {
            bail!("the passwords do not match");
        }
        if a.is_empty() {
            bail!("an empty password is not allowed");
        }
        return Ok(a.into_bytes());
    }
    let p = password(g, "enter new password: ")?;
    if p.is_empty() {
        bail!("an empty password is not allowed");
    }
    Ok(p)
}

/// Wraps the backend with the metadata cache. Remote repositories use it
/// unless `--no-cache`; a local repository only with an explicit
/// `--cache-dir`, since caching would copy files from the same kind of disk.
fn with_cache(g: &Global, backend: Arc<dyn Backend>, remote: bool) -> Result<Arc<dyn Backend>> {
    let remote = remote || g.repo.as_deref().is_some_and(location::is_remote);
    if g.no_cache {
        return Ok(backend);
    }
    let root = match (&g.cache_dir, remote) {
        (Some(d), _) => d.clone(),
        (None, true) => match cache::default_root() {
            Some(d) => d,
            None => return Ok(backend),
        },
        (None, false) => return Ok(backend),
    };
    Ok(CachedBackend::wrap(backend, &root)?)
}

/// What a command holds while it runs: the open repository, its lock, and
/// the cancellation flag shared with the engine.
pub struct Session {
    pub repo: Repository,
    pub cancel: Cancel,
    _lock: Option<LockGuard>,
}

/// How a command locks the repository.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Locking {
    Shared,
    Exclusive,
}

/// Parses durations such as `90s`, `5m`, `2h`, `1d` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid duration {s:?}"))?;
    let mult = match unit {
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => bail!("invalid duration {s:?}: use a number with s, m, h or d"),
    };
    Ok(Duration::from_secs_f64(n * mult))
}

/// Opens the repository, takes its lock and loads its index.
pub fn session(g: &Global, locking: Locking) -> Result<Session> {
    session_with(g, locking, Cancel::new(crate::interrupt::flag()))
}

/// Like [`session`], with a cancellation flag shared with another session,
/// so that losing either lock stops the command.
pub fn session_with(g: &Global, locking: Locking, cancel: Cancel) -> Result<Session> {
    let repo = open_unlocked(g)?;
    let lock = if g.no_lock && locking == Locking::Shared {
        None
    } else {
        let retry = match &g.retry_lock {
            Some(d) => parse_duration(d)?,
            None => Duration::ZERO,
        };
        Some(lock::lock(
            &repo,
            locking == Locking::Exclusive,
            retry,
            LockTiming::default(),
            &cancel,
        )?)
    };
    repo.load_index()?;
    Ok(Session {
        repo,
        cancel,
        _lock: lock,
    })
}

/// Opens the repository without locking it or loading the index.
pub fn open_unlocked(g: &Global) -> Result<Repository> {
    Ok(open_with_password(g)?.0)
}

/// Like [`open_unlocked`], also returning the password, for commands that
/// try it on other key files.
pub fn open_with_password(g: &Global) -> Result<(Repository, Vec<u8>)> {
    let backend = with_cache(g, backend(g, false)?, false)?;
    let pw = password(g, &format!("password for {}: ", backend.location()))?;
    let repo = Repository::open(backend, &pw)?;
    Ok((repo, pw))
}
