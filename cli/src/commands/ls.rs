use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use anyhow::Result;

use cairn_engine::repofile::tree::{Node, NodeKind};
use cairn_engine::selector;
use cairn_engine::Repository;

use crate::args::{Global, LsArgs};
use crate::{context, exit};

fn kind_char(k: NodeKind) -> char {
    match k {
        NodeKind::File => '-',
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::Socket => 's',
        NodeKind::Chardev => 'c',
        NodeKind::Blockdev => 'b',
    }
}

fn mode_string(n: &Node) -> String {
    let m = n.mode;
    let mut s = String::with_capacity(10);
    s.push(kind_char(n.kind));
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (i, (b, c)) in bits.iter().enumerate() {
        let set = m & b != 0;
        let ch = match i {
            2 if m & 0o4000 != 0 => {
                if set {
                    's'
                } else {
                    'S'
                }
            }
            5 if m & 0o2000 != 0 => {
                if set {
                    's'
                } else {
                    'S'
                }
            }
            8 if m & 0o1000 != 0 => {
                if set {
                    't'
                } else {
                    'T'
                }
            }
            _ => {
                if set {
                    *c
                } else {
                    '-'
                }
            }
        };
        s.push(ch);
    }
    s
}

fn node_json(n: &Node, path: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(n).unwrap_or(serde_json::Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.insert("name".into(), n.name_lossy().into());
        m.insert("path".into(), path.into());
        m.remove("content");
        if let Some(t) = &n.link_target {
            m.insert(
                "link_target".into(),
                String::from_utf8_lossy(t).into_owned().into(),
            );
        }
        m.remove("xattrs");
    }
    v
}

fn walk(
    repo: &Repository,
    n: &Node,
    path: &str,
    long: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    if json {
        writeln!(out, "{}", node_json(n, path))?;
    } else if long {
        let t = chrono::DateTime::from_timestamp_nanos(n.mtime)
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S");
        let user = n.user.clone().unwrap_or_else(|| n.uid.to_string());
        let group = n.group.clone().unwrap_or_else(|| n.gid.to_string());
        let link = n
            .link_target
            .as_ref()
            .map(|t| format!(" -> {}", String::from_utf8_lossy(t)))
            .unwrap_or_default();
        writeln!(
            out,
            "{} {:>8} {:>8} {:>12} {} {}{}",
            mode_string(n),
            user,
            group,
            n.size,
            t,
            path,
            link
        )?;
    } else {
        writeln!(out, "{path}")?;
    }
    if let (NodeKind::Dir, Some(sub)) = (n.kind, n.subtree) {
        let tree = repo.load_tree(&sub)?;
        for c in &tree.nodes {
            let p = format!("{}/{}", path.trim_end_matches('/'), c.name_lossy());
            walk(repo, c, &p, long, json, out)?;
        }
    }
    Ok(())
}

pub fn run(g: &Global, a: LsArgs) -> Result<i32> {
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
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if g.json {
        writeln!(out, "{}", super::snapshots::snapshot_json(&snap))?;
    } else if !g.quiet {
        eprintln!(
            "snapshot {} of {:?} at {}",
            snap.id.short(),
            snap.paths,
            snap.time
        );
    }
    let shown = if path == "/" || path.is_empty() {
        "/".to_string()
    } else {
        format!("/{}", path.trim_matches('/'))
    };
    walk(repo, &node, &shown, a.long, g.json, &mut out)?;
    out.flush()?;
    Ok(exit::OK)
}
