//! Choosing snapshots: `latest`, a full ID or unique prefix, optionally with
//! `@TIME` (newest at or before that time) and `:PATH` (a path inside it),
//! filtered by host, tag and path.

use chrono::{DateTime, FixedOffset, Local, NaiveDateTime, TimeZone};

use crate::error::{Error, Result};
use crate::repofile::snapshot::Snapshot;
use crate::repofile::tree::{Node, NodeKind};
use crate::repository::Repository;

/// Which snapshots a command considers.
#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    pub hosts: Vec<String>,
    /// Each entry is a comma-separated set of tags that must all be present;
    /// a snapshot matches if any entry does.
    pub tags: Vec<String>,
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&s.hostname))
            && (self.tags.is_empty()
                || self.tags.iter().any(|set| {
                    set.split(',')
                        .filter(|t| !t.is_empty())
                        .all(|t| s.tags.iter().any(|x| x == t))
                }))
            && (self.paths.is_empty() || self.paths.iter().all(|p| s.paths.contains(p)))
    }
}

/// Parses a time given on the command line: RFC 3339, or a local time as
/// `YYYY-MM-DD[ T]HH:MM[:SS]` or `YYYY-MM-DD`.
pub fn parse_time(s: &str) -> Result<DateTime<FixedOffset>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t);
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return local(n, s);
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(n) = d.and_hms_opt(23, 59, 59) {
            return local(n, s);
        }
    }
    Err(Error::InvalidArgument(format!(
        "cannot read time {s:?} (use RFC 3339 or YYYY-MM-DDTHH:MM:SS)"
    )))
}

fn local(n: NaiveDateTime, s: &str) -> Result<DateTime<FixedOffset>> {
    Local
        .from_local_datetime(&n)
        .earliest()
        .map(|t| t.fixed_offset())
        .ok_or_else(|| {
            Error::InvalidArgument(format!("time {s:?} does not exist in the local time zone"))
        })
}

/// Splits `SNAPSHOT[:PATH]`. A time selector contains colons itself, so
/// after `@` only `:/` starts a path.
pub fn split_spec(spec: &str) -> (&str, Option<&str>) {
    if let Some(i) = spec.find(":/") {
        return (&spec[..i], Some(&spec[i + 1..]));
    }
    if spec.contains('@') {
        return (spec, None);
    }
    match spec.split_once(':') {
        Some((s, p)) => (s, Some(p)),
        None => (spec, None),
    }
}

/// Resolves a snapshot selector (without `:PATH`) among `snaps` (oldest
/// first). `as_of` bounds `latest` like `latest@TIME` does.
pub fn select<'a>(
    snaps: &'a [Snapshot],
    spec: &str,
    filter: &SnapshotFilter,
    as_of: Option<DateTime<FixedOffset>>,
) -> Result<&'a Snapshot> {
    let (name, at) = match spec.split_once('@') {
        Some((n, t)) => (n, Some(parse_time(t)?)),
        None => (spec, None),
    };
    let at = at.or(as_of);
    if name == "latest" {
        return snaps
            .iter()
            .rev()
            .filter(|s| filter.matches(s))
            .find(|s| at.is_none_or(|t| s.time <= t))
            .ok_or_else(|| Error::SnapshotNotFound(spec.to_string()));
    }
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::SnapshotNotFound(spec.to_string()));
    }
    let name = name.to_ascii_lowercase();
    let found: Vec<&Snapshot> = snaps
        .iter()
        .filter(|s| s.id.to_hex().starts_with(&name))
        .collect();
    match found.as_slice() {
        [s] => Ok(s),
        [] => Err(Error::SnapshotNotFound(spec.to_string())),
        _ => Err(Error::AmbiguousSnapshot(spec.to_string())),
    }
}

/// Resolves one selector. `latest` needs every snapshot; an ID or prefix
/// loads only the snapshot files whose names match, so that a damaged or
/// foreign file in `snapshots/` does not stop access to the others.
pub fn find_snapshot(
    repo: &Repository,
    spec: &str,
    filter: &SnapshotFilter,
    as_of: Option<DateTime<FixedOffset>>,
) -> Result<Snapshot> {
    let name = spec.split_once('@').map_or(spec, |(n, _)| n);
    if name == "latest" || name.is_empty() || !name.chars().all(|c| c.is_ascii_hexdigit()) {
        let snaps = repo.snapshots()?;
        return select(&snaps, spec, filter, as_of).cloned();
    }
    if let Some((_, t)) = spec.split_once('@') {
        // Only `latest` uses the time, but a malformed one is still an error.
        parse_time(t)?;
    }
    let prefix = name.to_ascii_lowercase();
    let ids: Vec<_> = repo
        .snapshot_ids()?
        .into_iter()
        .filter(|id| id.to_hex().starts_with(&prefix))
        .collect();
    match ids.as_slice() {
        [id] => repo.load_snapshot(id),
        [] => Err(Error::SnapshotNotFound(spec.to_string())),
        _ => Err(Error::AmbiguousSnapshot(spec.to_string())),
    }
}

/// A virtual directory node for a snapshot's root tree.
pub fn root_node(s: &Snapshot) -> Node {
    let t = s.time.timestamp_nanos_opt().unwrap_or(0);
    Node {
        mode: 0o755,
        uid: s.uid,
        gid: s.gid,
        mtime: t,
        ctime: t,
        atime: t,
        subtree: Some(s.tree),
        ..Node::bare(b"/", NodeKind::Dir)
    }
}

/// Splits `SNAPSHOT[:PATH]` given as raw bytes: the selector must be text,
/// the path may be any bytes (file names need not be UTF-8).
pub fn split_spec_bytes(spec: &[u8]) -> Result<(String, Option<Vec<u8>>)> {
    let at = spec.windows(2).position(|w| w == b":/");
    let (sel, path) = match at {
        Some(i) => (&spec[..i], Some(spec[i + 1..].to_vec())),
        None if spec.contains(&b'@') => (spec, None),
        None => match spec.iter().position(|&b| b == b':') {
            Some(i) => (&spec[..i], Some(spec[i + 1..].to_vec())),
            None => (spec, None),
        },
    };
    let sel = std::str::from_utf8(sel)
        .map_err(|_| Error::SnapshotNotFound(String::from_utf8_lossy(sel).into_owned()))?;
    Ok((sel.to_string(), path))
}

/// Finds the node at `path` (absolute, `/`-separated bytes) in a snapshot.
pub fn find_node(repo: &Repository, s: &Snapshot, path: &[u8]) -> Result<Node> {
    let shown = || String::from_utf8_lossy(path).into_owned();
    let mut node = root_node(s);
    for comp in path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        let Some(sub) = node.subtree.filter(|_| node.kind == NodeKind::Dir) else {
            return Err(Error::PathNotFound(shown()));
        };
        let tree = repo.load_tree(&sub)?;
        node = tree
            .find(comp)
            .cloned()
            .ok_or_else(|| Error::PathNotFound(shown()))?;
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert!(parse_time("2026-11-20T14:30:00Z").is_ok());
        assert!(parse_time("2026-11-20T14:30:00").is_ok());
        assert!(parse_time("2026-11-20 14:30").is_ok());
        assert!(parse_time("2026-11-20").is_ok());
        assert!(parse_time("yesterday").is_err());
        assert_eq!(split_spec("abc:/x/y"), ("abc", Some("/x/y")));
        assert_eq!(split_spec("latest"), ("latest", None));
        assert_eq!(
            split_spec("latest@2026-11-20T14:30:00:/db"),
            ("latest@2026-11-20T14:30:00", Some("/db"))
        );
        assert_eq!(
            split_spec("latest@2026-11-20T14:30:00"),
            ("latest@2026-11-20T14:30:00", None)
        );
    }
}
