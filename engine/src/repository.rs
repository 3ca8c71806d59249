//! An open repository: storage, keys, config and index, and the reads and
//! writes of whole files every command builds on.

use std::sync::{Arc, OnceLock, RwLock};

use rayon::prelude::*;

use crate::backend::Backend;
use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::format::{FileType, Role};
use crate::id::Id;
use crate::index::Index;
use crate::limits;
use crate::pack::{self, BlobType};
use crate::repofile::config::{ChunkerParams, Config};
use crate::repofile::indexfile::IndexFile;
use crate::repofile::keyfile::{KdfParams, KeyFile};
use crate::repofile::snapshot::Snapshot;
use crate::repofile::tree::Tree;
use crate::repofile::{open_metadata, seal_metadata};

/// Directory of each file type.
pub const KEYS: &str = "keys/";
pub const DATA: &str = "data/";
pub const INDEX: &str = "index/";
pub const SNAPSHOTS: &str = "snapshots/";
pub const LOCKS: &str = "locks/";
pub const CONFIG: &str = "config";

/// Largest single ranged read when fetching blobs that lie together.
pub const READ_SPAN: u64 = 4 << 20;
/// Blobs further apart than this in a pack are fetched in separate reads.
const READ_GAP: u64 = 64 << 10;

/// Blobs of one pack fetched in one ranged read.
struct Span {
    pack: Id,
    start: u64,
    end: u64,
    entries: Vec<pack::PackEntry>,
}

/// Storage path of a pack.
pub fn pack_path(id: &Id) -> String {
    let h = id.to_hex();
    format!("{DATA}{}/{h}", &h[..2])
}

/// Options fixed at `init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub kdf_memory_kib: u32,
    pub kdf_iterations: u32,
    pub pack_size: u64,
    pub compression: i32,
    pub chunker: ChunkerParams,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf_memory_kib: 64 << 10,
            kdf_iterations: 3,
            pack_size: 16 << 20,
            compression: 3,
            chunker: ChunkerParams::default(),
        }
    }
}

/// A key file as listed by `key list`.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: Id,
    pub current: bool,
    pub created: String,
    pub hostname: String,
    pub username: String,
}

pub struct Repository {
    backend: Arc<dyn Backend>,
    key: Arc<MasterKey>,
    key_id: Id,
    config: Config,
    index: RwLock<Arc<Index>>,
    /// Threads for reads from storage that wants more requests in flight
    /// than there are cores; made on first use.
    io_pool: OnceLock<Option<rayon::ThreadPool>>,
}

impl Repository {
    /// Creates a repository: config and a first key file.
    pub fn init(
        backend: Arc<dyn Backend>,
        password: &[u8],
        opts: &InitOptions,
    ) -> Result<Repository> {
        if backend.size(CONFIG)?.is_some() {
            return Err(Error::RepositoryExists(backend.location().to_string()));
        }
        if !backend.list(KEYS)?.is_empty() || !backend.list(DATA)?.is_empty() {
            return Err(Error::RepositoryExists(backend.location().to_string()));
        }
        backend.prepare_layout()?;
        let config = Config::new(opts.pack_size, opts.compression, opts.chunker);
        config.validate("new config")?;
        let key = MasterKey::generate();
        let kdf = KdfParams::new(opts.kdf_memory_kib, opts.kdf_iterations, 1);
        kdf.validate("new key")?;
        let kf = KeyFile::create(
            password,
            kdf,
            &config.id,
            key.secret(),
            crate::host::hostname(),
            crate::host::username(),
        )?;
        // The key goes first: a config without a key is unusable, a key
        // without a config is invisible and `init` can be re-run.
        let key_bytes = kf.encode();
        let key_id = Id::of_stored(&key_bytes);
        backend.write(&format!("{KEYS}{key_id}"), key_bytes)?;
        backend.write(CONFIG, config.encode(&key))?;
        Ok(Repository {
            backend,
            key: Arc::new(key),
            key_id,
            config,
            index: RwLock::new(Arc::new(Index::default())),
            io_pool: OnceLock::new(),
        })
    }

    /// Opens a repository with a password, trying every key file.
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Repository> {
        let loc = backend.location().to_string();
        let cfg_bytes = match backend.read(CONFIG) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Err(Error::NoRepository(loc)),
            Err(e) => return Err(e),
        };
        let repo_id = Config::peek_id(&cfg_bytes, CONFIG)?;
        let keys = backend.list(KEYS)?;
        if keys.is_empty() {
            return Err(Error::corrupt(format!("{loc}/keys"), "no key files"));
        }
        let mut last_err = None;
        for k in &keys {
            if k.size > limits::MAX_KEY_FILE {
                last_err = Some(Error::Limit {
                    path: k.path.clone(),
                    what: "key file",
                    size: k.size,
                    limit: limits::MAX_KEY_FILE,
                });
                continue;
            }
            let r = backend
                .read(&k.path)
                .and_then(|b| {
                    check_name(&k.path, &b)?;
                    KeyFile::decode(&b, &k.path)
                })
                .and_then(|kf| kf.unwrap_secret(password, &k.path));
            match r {
                Ok(Some((secret, rid))) => {
                    if rid != repo_id {
                        // Either the key was copied in from another
                        // repository or the config's clear ID was altered;
                        // name both, since either file may be the bad one.
                        last_err = Some(Error::corrupt(
                            CONFIG,
                            format!(
                                "repository ID {repo_id} does not match {}, which belongs to repository {rid}",
                                k.path
                            ),
                        ));
                        continue;
                    }
                    let key = MasterKey::from_secret(secret);
                    let config = Config::decode(&cfg_bytes, &key, CONFIG)?;
                    let key_id = Id::from_hex(file_name(&k.path)).unwrap_or_default();
                    return Ok(Repository {
                        backend,
                        key: Arc::new(key),
                        key_id,
                        config,
                        index: RwLock::new(Arc::new(Index::default())),
                        io_pool: OnceLock::new(),
                    });
                }
                Ok(None) => {}
                Err(e) => last_err = Some(e),
            }
        }
        match last_err {
            // Every key that could be read rejected the password.
            Some(e) if keys.len() == 1 => Err(e),
            _ => Err(Error::WrongPassword(loc)),
        }
    }

    /// The key file this repository was opened with.
    pub fn key_id(&self) -> &Id {
        &self.key_id
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn key(&self) -> &Arc<MasterKey> {
        &self.key
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn id(&self) -> &Id {
        &self.config.id
    }

    pub fn location(&self) -> &str {
        self.backend.location()
    }

    // ---- keys ----

    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for f in self.backend.list(KEYS)? {
            let b = self.backend.read(&f.path)?;
            let kf = KeyFile::decode(&b, &f.path)?;
            let id = Id::from_hex(file_name(&f.path))?;
            out.push(KeyInfo {
                id,
                current: id == self.key_id,
                created: kf.created,
                hostname: kf.hostname,
                username: kf.username,
            });
        }
        Ok(out)
    }

    /// Adds a key file for another password; returns its ID.
    pub fn add_key(&self, password: &[u8], kdf_memory_kib: u32, kdf_iterations: u32) -> Result<Id> {
        let kdf = KdfParams::new(kdf_memory_kib, kdf_iterations, 1);
        kdf.validate("new key")?;
        let kf = KeyFile::create(
            password,
            kdf,
            self.id(),
            self.key.secret(),
            crate::host::hostname(),
            crate::host::username(),
        )?;
        let b = kf.encode();
        let id = Id::of_stored(&b);
        self.backend.write(&format!("{KEYS}{id}"), b)?;
        Ok(id)
    }

    /// Removes a key file; the key in use cannot be removed.
    pub fn remove_key(&self, id: &Id) -> Result<()> {
        if *id == self.key_id {
            return Err(Error::InvalidArgument(
                "refusing to remove the key in use (use `key passwd` to change it)".into(),
            ));
        }
        let p = format!("{KEYS}{id}");
        if self.backend.size(&p)?.is_none() {
            return Err(Error::InvalidArgument(format!("no key {id}")));
        }
        self.backend.delete(&p)
    }

    /// Replaces the current key with one for a new password: the new key
    /// file is written before the old one is removed.
    pub fn change_password(
        &mut self,
        password: &[u8],
        kdf_memory_kib: u32,
        kdf_iterations: u32,
    ) -> Result<Id> {
        let new = self.add_key(password, kdf_memory_kib, kdf_iterations)?;
        self.backend.delete(&format!("{KEYS}{}", self.key_id))?;
        self.key_id = new;
        Ok(new)
    }

    /// Resolves a key-ID prefix.
    pub fn find_key(&self, prefix: &str) -> Result<Id> {
        let ids: Vec<Id> = self
            .backend
            .list(KEYS)?
            .iter()
            .filter_map(|f| Id::from_hex(file_name(&f.path)).ok())
            .filter(|id| id.to_hex().starts_with(prefix))
            .collect();
        match ids.as_slice() {
            [id] => Ok(*id),
            [] => Err(Error::InvalidArgument(format!("no key matches {prefix}"))),
            _ => Err(Error::InvalidArgument(format!(
                "key prefix {prefix} is ambiguous"
            ))),
        }
    }

    // ---- whole files ----

    /// Reads a content-addressed file and checks its name against its hash.
    pub fn read_file(&self, path: &str, limit: u64) -> Result<Vec<u8>> {
        if let Some(size) = self.backend.size(path)? {
            if size > limit {
                return Err(Error::Limit {
                    path: path.to_string(),
                    what: "file",
                    size,
                    limit,
                });
            }
        }
        let b = self.backend.read(path)?;
        check_name(path, &b)?;
        Ok(b)
    }

    /// Stores a content-addressed file under `dir`, returning its ID.
    pub fn write_file(&self, dir: &str, bytes: Vec<u8>) -> Result<Id> {
        let id = Id::of_stored(&bytes);
        self.backend.write(&format!("{dir}{id}"), bytes)?;
        Ok(id)
    }

    // ---- index ----

    /// Reads and decodes every index file, in parallel.
    pub fn read_index_files(&self) -> Result<Vec<(Id, IndexFile)>> {
        let files = self.backend.list(INDEX)?;
        self.in_io_pool(|| {
            files
                .par_iter()
                .map(|f| {
                    let id = Id::from_hex(file_name(&f.path))
                        .map_err(|_| Error::corrupt(&f.path, "not an index file name"))?;
                    let b = self.read_file(&f.path, limits::MAX_METADATA_FILE)?;
                    let idx: IndexFile = open_metadata(
                        &self.key,
                        self.id(),
                        FileType::Index,
                        Role::Index,
                        &b,
                        &f.path,
                    )?;
                    Ok((id, idx))
                })
                .collect()
        })
    }

    /// The index files that count: those no other index file supersedes.
    pub fn live_index_files(files: Vec<(Id, IndexFile)>) -> Vec<(Id, IndexFile)> {
        let superseded: std::collections::HashSet<Id> = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        files
            .into_iter()
            .filter(|(id, _)| !superseded.contains(id))
            .collect()
    }

    /// Loads every index file not superseded by another.
    pub fn load_index(&self) -> Result<()> {
        let files = Self::live_index_files(self.read_index_files()?);
        let blobs = files
            .iter()
            .flat_map(|(_, f)| &f.packs)
            .map(|p| p.blobs.len() / pack::ENTRY_LEN)
            .sum();
        let mut index = Index::with_capacity(blobs);
        for (id, f) in &files {
            for p in &f.packs {
                let path = format!("{INDEX}{id}");
                let entries = pack::decode_entries(&p.blobs, Some(p.size), &path)?;
                index.add_pack(p.id, p.size, &entries);
            }
        }
        let tree_packs: std::collections::HashSet<String> = index
            .blobs()
            .filter(|b| b.entry.blob_type == BlobType::Tree)
            .map(|b| pack_path(&b.pack))
            .collect();
        self.backend
            .cache_packs(&tree_packs.into_iter().collect::<Vec<_>>());
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(index);
        Ok(())
    }

    /// The current index (cheap to clone; replaced, not mutated).
    pub fn index(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_index(&self, index: Index) {
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(index);
    }

    /// Writes an index file; returns its ID.
    pub fn save_index(&self, f: &IndexFile) -> Result<Id> {
        let b = seal_metadata(&self.key, self.id(), FileType::Index, Role::Index, f);
        self.write_file(INDEX, b)
    }

    // ---- blobs ----

    /// Reads, authenticates, decompresses and verifies one blob.
    pub fn read_blob(&self, id: &Id) -> Result<Vec<u8>> {
        let loc = self.index().get(id).ok_or_else(|| {
            Error::corrupt(self.location(), format!("blob {id} is not in the index"))
        })?;
        let path = pack_path(&loc.pack);
        let sealed = self.backend.read_range(
            &path,
            u64::from(loc.entry.offset),
            u64::from(loc.entry.length),
        )?;
        pack::open_blob(&self.key, self.id(), &loc.entry, &sealed, &path)
    }

    /// Runs `f`, whose parallel work is mostly waiting for storage reads,
    /// on enough threads to keep the backend's connections busy: on a
    /// remote service one request per core leaves most of the bandwidth
    /// idle while each waits out its latency. Local storage runs `f` on
    /// the ordinary pool.
    pub fn in_io_pool<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let pool = self.io_pool.get_or_init(|| {
            let want = self.backend.connections();
            if want <= rayon::current_num_threads() {
                return None;
            }
            rayon::ThreadPoolBuilder::new()
                .num_threads(want)
                .thread_name(|i| format!("cairn-io-{i}"))
                .build()
                .ok()
        });
        match pool {
            Some(p) => p.install(f),
            None => f(),
        }
    }

    /// Reads many blobs and hands each plaintext to `each` in the order of
    /// `ids`. Blobs that lie next to one another in a pack (a file's chunks,
    /// a database's pages) are fetched in one ranged read of up to
    /// [`READ_SPAN`] bytes, and the reads of a batch run in parallel, so a
    /// file of a hundred thousand page blobs costs a few hundred requests,
    /// not a hundred thousand. Memory stays within a batch of spans.
    pub fn read_blobs(
        &self,
        ids: &[Id],
        mut each: impl FnMut(Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let index = self.index();
        let batch = 2 * rayon::current_num_threads().max(self.backend.connections());
        let mut spans: Vec<Span> = Vec::with_capacity(batch);
        let flush = |spans: &mut Vec<Span>, each: &mut dyn FnMut(Vec<u8>) -> Result<()>| {
            let read: Vec<Result<Vec<Vec<u8>>>> =
                self.in_io_pool(|| spans.par_iter().map(|s| self.read_span(s)).collect());
            spans.clear();
            for r in read {
                for b in r? {
                    each(b)?;
                }
            }
            Ok::<(), Error>(())
        };
        for id in ids {
            let loc = index.get(id).ok_or_else(|| {
                Error::corrupt(self.location(), format!("blob {id} is not in the index"))
            })?;
            let (off, len) = (u64::from(loc.entry.offset), u64::from(loc.entry.length));
            let joined = spans.last_mut().is_some_and(|s| {
                let fits = s.pack == loc.pack
                    && off >= s.end
                    && off - s.end <= READ_GAP
                    && off + len - s.start <= READ_SPAN;
                if fits {
                    s.end = off + len;
                    s.entries.push(loc.entry);
                }
                fits
            });
            if joined {
                continue;
            }
            if spans.len() == batch {
                flush(&mut spans, &mut each)?;
            }
            spans.push(Span {
                pack: loc.pack,
                start: off,
                end: off + len,
                entries: vec![loc.entry],
            });
        }
        flush(&mut spans, &mut each)
    }

    fn read_span(&self, s: &Span) -> Result<Vec<Vec<u8>>> {
        let path = pack_path(&s.pack);
        let buf = self.backend.read_range(&path, s.start, s.end - s.start)?;
        s.entries
            .iter()
            .map(|e| {
                let a = (u64::from(e.offset) - s.start) as usize;
                let sealed = buf
                    .get(a..a + e.length as usize)
                    .ok_or_else(|| Error::corrupt(&path, "pack is shorter than its index says"))?;
                pack::open_blob(&self.key, self.id(), e, sealed, &path)
            })
            .collect()
    }

    /// Reads a pack's header (trailer and header only, two ranged reads).
    pub fn pack_entries(&self, id: &Id) -> Result<Vec<pack::PackEntry>> {
        let path = pack_path(id);
        let size = self
            .backend
            .size(&path)?
            .ok_or_else(|| Error::corrupt(&path, "pack is missing"))?;
        if size > limits::MAX_PACK {
            return Err(Error::Limit {
                path,
                what: "pack",
                size,
                limit: limits::MAX_PACK,
            });
        }
        if size < (crate::format::HEADER_LEN + pack::TRAILER_LEN) as u64 {
            return Err(Error::corrupt(&path, "pack is truncated"));
        }
        let trailer = self.backend.read_range(
            &path,
            size - pack::TRAILER_LEN as u64,
            pack::TRAILER_LEN as u64,
        )?;
        let hlen = pack::header_len_from_trailer(&trailer, size, &path)?;
        let sealed =
            self.backend
                .read_range(&path, size - pack::TRAILER_LEN as u64 - hlen, hlen)?;
        pack::open_header(&self.key, self.id(), &sealed, size, &path)
    }

    pub fn load_tree(&self, id: &Id) -> Result<Tree> {
        if !self.index().has_type(id, BlobType::Tree) {
            return Err(Error::corrupt(
                self.location(),
                format!("tree {id} is not in the index"),
            ));
        }
        let b = self.read_blob(id)?;
        Tree::decode(&b, &format!("tree {id}"))
    }

    /// A file node's content blob IDs, reading its list blobs if it has any.
    pub fn file_content(&self, n: &crate::repofile::tree::Node) -> Result<Vec<Id>> {
        if n.lists.is_empty() {
            return Ok(n.content.clone());
        }
        let index = self.index();
        if let Some(l) = n.lists.iter().find(|l| !index.has_type(l, BlobType::Tree)) {
            return Err(Error::corrupt(
                self.location(),
                format!("content list {l} is not in the index"),
            ));
        }
        let mut out = Vec::with_capacity(n.lists.len() * crate::repofile::tree::LIST_LEN);
        let mut i = 0;
        self.read_blobs(&n.lists, |b| {
            let l = &n.lists[i];
            i += 1;
            out.extend(crate::repofile::tree::decode_list(
                &b,
                &format!("content list {l}"),
                i == n.lists.len(),
            )?);
            Ok(())
        })?;
        Ok(out)
    }

    // ---- snapshots ----

    pub fn save_snapshot(&self, s: &Snapshot) -> Result<Id> {
        let b = seal_metadata(&self.key, self.id(), FileType::Snapshot, Role::Snapshot, s);
        self.write_file(SNAPSHOTS, b)
    }

    pub fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        let path = format!("{SNAPSHOTS}{id}");
        let b = match self.read_file(&path, limits::MAX_METADATA_FILE) {
            Err(e) if e.is_not_found() => return Err(Error::SnapshotNotFound(id.to_hex())),
            r => r?,
        };
        let mut s: Snapshot = open_metadata(
            &self.key,
            self.id(),
            FileType::Snapshot,
            Role::Snapshot,
            &b,
            &path,
        )?;
        s.id = *id;
        Ok(s)
    }

    pub fn snapshot_ids(&self) -> Result<Vec<Id>> {
        let mut out = Vec::new();
        for f in self.backend.list(SNAPSHOTS)? {
            out.push(
                Id::from_hex(file_name(&f.path))
                    .map_err(|_| Error::corrupt(&f.path, "not a snapshot file name"))?,
            );
        }
        Ok(out)
    }

    /// All snapshots, oldest first.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>> {
        let ids = self.snapshot_ids()?;
        let mut snaps = self.in_io_pool(|| {
            ids.par_iter()
                .map(|id| self.load_snapshot(id))
                .collect::<Result<Vec<_>>>()
        })?;
        snaps.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        Ok(snaps)
    }
}

/// The last component of a storage path.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Checks that a content-addressed file's bytes hash to its name.
pub fn check_name(path: &str, bytes: &[u8]) -> Result<()> {
    let name = file_name(path);
    if Id::of_stored(bytes).to_hex() != name {
        return Err(Error::corrupt(
            path,
            "contents do not match the file name (damaged in storage)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::OpendalBackend;
    use crate::packer::Packer;

    fn noise(seed: u32, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        let mut h = blake3::Hasher::new();
        h.update(&seed.to_le_bytes());
        h.finalize_xof().fill(&mut v);
        v
    }

    /// Blobs come back in the order asked for, whatever pack they are in
    /// and however often one is asked for; spans across packs and gaps
    /// are split correctly; a blob missing from the index is an error.
    #[test]
    fn read_blobs_returns_every_blob_in_the_order_asked() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(OpendalBackend::local(dir.path(), true).unwrap());
        let opts = InitOptions {
            kdf_memory_kib: limits::MIN_KDF_MEMORY_KIB,
            kdf_iterations: 1,
            pack_size: 1 << 20,
            ..Default::default()
        };
        let repo = Repository::init(backend, b"pw", &opts).unwrap();
        // Page-sized and larger blobs, several packs' worth.
        let blobs: Vec<Vec<u8>> = (0..600u32)
            .map(|i| noise(i, if i % 50 == 0 { 300 << 10 } else { 4096 }))
            .collect();
        let packer = Packer::new(&repo, false);
        let ids: Vec<Id> = blobs
            .iter()
            .map(|b| packer.save(BlobType::Data, b).unwrap())
            .collect();
        packer.finish().unwrap();
        repo.load_index().unwrap();
        assert!(
            repo.index().packs().len() > 2,
            "the blobs span several packs"
        );

        // Forward, backward, repeated and interleaved.
        let mut order: Vec<usize> = (0..600).collect();
        order.extend((0..600).rev());
        order.extend((0..600).step_by(7).chain((0..600).step_by(3)));
        order.extend([5, 5, 5, 0, 599, 0]);
        let asked: Vec<Id> = order.iter().map(|&i| ids[i]).collect();
        let mut got = Vec::new();
        repo.read_blobs(&asked, |b| {
            got.push(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(got.len(), order.len());
        for (k, &i) in order.iter().enumerate() {
            assert!(got[k] == blobs[i], "blob {k} (#{i}) differs");
        }

        let mut bad = asked[..10].to_vec();
        bad.push(Id::random());
        let e = repo.read_blobs(&bad, |_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("not in the index"), "{e}");
    }

    /// Storage that wants more requests in flight than there are cores
    /// gets that many reader threads; local storage keeps the ordinary
    /// pool.
    #[test]
    fn io_pool_matches_the_backends_connections() {
        let opts = InitOptions {
            kdf_memory_kib: limits::MIN_KDF_MEMORY_KIB,
            kdf_iterations: 1,
            ..Default::default()
        };
        let local = tempfile::tempdir().unwrap();
        let repo = Repository::init(
            Arc::new(OpendalBackend::local(local.path(), true).unwrap()),
            b"pw",
            &opts,
        )
        .unwrap();
        let cores = rayon::current_num_threads();
        assert_eq!(repo.in_io_pool(rayon::current_num_threads), cores);

        let remote = tempfile::tempdir().unwrap();
        let root = remote.path().to_str().unwrap();
        let op = opendal::Operator::new(opendal::services::Fs::default().root(root)).unwrap();
        let want = cores + 5;
        let backend = OpendalBackend::remote_with(
            op,
            "remote".into(),
            &crate::backend::RemoteOptions {
                connections: want,
                rename_writes: false,
                faults: None,
            },
        )
        .unwrap();
        let repo = Repository::init(Arc::new(backend), b"pw", &opts).unwrap();
        assert_eq!(repo.in_io_pool(rayon::current_num_threads), want);
        // Work inside the pool runs on its threads, in parallel.
        let names: std::collections::HashSet<String> = repo.in_io_pool(|| {
            (0..want * 4)
                .into_par_iter()
                .map(|_| {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    std::thread::current().name().unwrap_or("").to_string()
                })
                .collect()
        });
        assert!(
            names.iter().all(|n| n.starts_with("cairn-io-")),
            "{names:?}"
        );
        assert!(names.len() > cores, "{names:?}");
    }
}
