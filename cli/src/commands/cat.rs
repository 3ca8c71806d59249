use std::io::Write;

use anyhow::{bail, Result};

use cairn_engine::format::{FileType, Role};
use cairn_engine::pack::{self, PackEntry};
use cairn_engine::repofile::indexfile::IndexFile;
use cairn_engine::repofile::keyfile::KeyFile;
use cairn_engine::repofile::open_metadata;
use cairn_engine::repository::{self, Repository};
use cairn_engine::{limits, selector, Id};

use crate::args::{CatArgs, Global};
use crate::{context, exit};

fn entry_json(e: &PackEntry) -> serde_json::Value {
    serde_json::json!({
        "type": e.blob_type, "id": e.id.to_hex(), "offset": e.offset, "length": e.length,
        "raw_length": e.raw_length, "compressed": e.compressed,
    })
}

fn resolve(repo: &Repository, dir: &str, prefix: &str) -> Result<Id> {
    if prefix.len() == 64 {
        return Ok(Id::from_hex(prefix)?);
    }
    let found: Vec<Id> = repo
        .backend()
        .list(dir)?
        .iter()
        .filter_map(|f| Id::from_hex(repository::file_name(&f.path)).ok())
        .filter(|id| id.to_hex().starts_with(prefix))
        .collect();
    match found.as_slice() {
        [id] => Ok(*id),
        [] => bail!("no file in {dir} matches {prefix}"),
        _ => bail!("prefix {prefix} is ambiguous in {dir}"),
    }
}

pub fn run(g: &Global, a: CatArgs) -> Result<i32> {
    let session = context::session(g, context::Locking::Shared)?;
    let repo = &session.repo;
    let need = || {
        a.id.clone()
            .ok_or_else(|| anyhow::anyhow!("cat {} needs an ID", a.kind))
    };
    let v = match a.kind.as_str() {
        "config" => serde_json::to_value(repo.config())?,
        "snapshot" => {
            let snaps = repo.snapshots()?;
            let s = selector::select(&snaps, &need()?, &Default::default(), None)?;
            super::snapshots::snapshot_json(s)
        }
        "index" => {
            let id = resolve(repo, repository::INDEX, &need()?)?;
            let path = format!("{}{id}", repository::INDEX);
            let b = repo.read_file(&path, limits::MAX_METADATA_FILE)?;
            let f: IndexFile = open_metadata(
                repo.key(),
                repo.id(),
                FileType::Index,
                Role::Index,
                &b,
                &path,
            )?;
            let mut packs = Vec::new();
            for p in &f.packs {
                let es = pack::decode_entries(&p.blobs, Some(p.size), &path)?;
                packs.push(serde_json::json!({"id": p.id.to_hex(), "size": p.size, "blobs": es.iter().map(entry_json).collect::<Vec<_>>()}));
            }
            serde_json::json!({"supersedes": f.supersedes.iter().map(Id::to_hex).collect::<Vec<_>>(), "packs": packs})
        }
        "key" => {
            let id = resolve(repo, repository::KEYS, &need()?)?;
            let path = format!("{}{id}", repository::KEYS);
            let k = KeyFile::decode(&repo.read_file(&path, limits::MAX_KEY_FILE)?, &path)?;
            serde_json::json!({"kdf": {"algorithm": k.kdf.algorithm, "memory_kib": k.kdf.memory_kib, "iterations": k.kdf.iterations, "parallelism": k.kdf.parallelism},
                "created": k.created, "hostname": k.hostname, "username": k.username})
        }
        "pack" => {
            let id = resolve(repo, repository::DATA, &need()?)?;
            let es = repo.pack_entries(&id)?;
            serde_json::json!({"id": id.to_hex(), "blobs": es.iter().map(entry_json).collect::<Vec<_>>()})
        }
        "blob" => {
            let id = Id::from_hex(&need()?)?;
            let b = repo.read_blob(&id)?;
            std::io::stdout().write_all(&b)?;
            return Ok(exit::OK);
        }
        "tree" => {
            let spec = need()?;
            let (s, p) = selector::split_spec(&spec);
            let snap = selector::find_snapshot(repo, s, &Default::default(), None)?;
            let node = selector::find_node(repo, &snap, p.unwrap_or("/").as_bytes())?;
            let Some(sub) = node.subtree else {
                bail!("{spec} is not a directory");
            };
            let t = repo.load_tree(&sub)?;
            serde_json::json!({"id": sub.to_hex(), "nodes": t.nodes.iter().map(|n| {
                let mut v = serde_json::to_value(n).unwrap_or_default();
                if let Some(m) = v.as_object_mut() { m.insert("name".into(), n.name_lossy().into()); }
                v
            }).collect::<Vec<_>>()})
        }
        other => {
            bail!("cannot cat {other:?}: use config, snapshot, index, key, pack, blob or tree")
        }
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(exit::OK)
}
