//! Backup: walks the source trees, reads each new or changed file once,
//! chunks, deduplicates and packs its content, writes a tree blob per
//! directory, and finally the snapshot. Directories are processed in
//! parallel with rayon; each file is streamed, so memory is bounded by the
//! number of threads times the largest chunk, whatever the tree's size.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, Metadata};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, FixedOffset};
use rayon::prelude::*;

use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::excludes::Excludes;
use crate::fsmeta::{kind_of, node_from_metadata, read_xattrs, unchanged};
use crate::host::NameCache;
use crate::id::Id;
use crate::lock::Cancel;
use crate::pack::BlobType;
use crate::packer::Packer;
use crate::repofile::snapshot::{Snapshot, Summary};
use crate::repofile::tree::{Node, NodeKind, Tree};
use crate::repository::Repository;

/// Signature that marks a cache directory (bford.info/cachedir).
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// Content read from standard input instead of the file system.
pub struct StdinSource {
    pub filename: String,
    pub reader: Box<dyn Read + Send + Sync>,
}

/// How the parent snapshot is chosen.
#[derive(Debug, Clone, Default)]
pub enum ParentChoice {
    /// The latest snapshot with the same host and paths.
    #[default]
    Auto,
    Explicit(Id),
    None,
}

pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub excludes: Excludes,
    pub exclude_caches: bool,
    pub one_file_system: bool,
    pub tags: Vec<String>,
    pub host: Option<String>,
    pub time: Option<DateTime<FixedOffset>>,
    pub parent: ParentChoice,
    /// Reread every file even when the parent says it is unchanged.
    pub force: bool,
    pub dry_run: bool,
    pub stdin: Option<StdinSource>,
    /// Live SQLite databases, captured through SQLite in a read transaction.
    pub sqlite: Vec<PathBuf>,
    /// How long to wait for a database lock before giving up on it.
    pub sqlite_timeout: std::time::Duration,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            paths: Vec::new(),
            excludes: Excludes::default(),
            exclude_caches: false,
            one_file_system: false,
            tags: Vec::new(),
            host: None,
            time: None,
            parent: ParentChoice::Auto,
            force: false,
            dry_run: false,
            stdin: None,
            sqlite: Vec::new(),
            sqlite_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// Progress callbacks; every method has a no-op default.
pub trait BackupProgress: Sync {
    fn bytes_read(&self, _n: u64) {}
    fn file_done(&self, _path: &Path) {}
    fn warning(&self, _path: &Path, _message: &str) {}
}

/// Progress sink that ignores everything.
pub struct NoProgress;
impl BackupProgress for NoProgress {}

/// A source file that could not be backed up.
#[derive(Debug, Clone)]
pub struct Warning {
    pub path: PathBuf,
    pub message: String,
}

pub struct BackupOutcome {
    pub snapshot: Snapshot,
    /// `None` for a dry run.
    pub snapshot_id: Option<Id>,
    pub warnings: Vec<Warning>,
}

#[derive(Default)]
struct Counters {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unmodified: AtomicU64,
    files_failed: AtomicU64,
    dirs_new: AtomicU64,
    dirs_changed: AtomicU64,
    dirs_unmodified: AtomicU64,
    bytes_read: AtomicU64,
    total_bytes: AtomicU64,
    total_files: AtomicU64,
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Errors while reading one source file: the source's are warnings, the
/// repository's end the backup.
enum FileError {
    Source(std::io::Error),
    Fatal(Error),
}

impl From<std::io::Error> for FileError {
    fn from(e: std::io::Error) -> Self {
        FileError::Source(e)
    }
}

/// A hardlinked file's mtime and content, reused for its other names.
type HardlinkContent = (i64, Vec<Id>);

struct Archiver<'a> {
    repo: &'a Repository,
    packer: Packer,
    chunker: Chunker,
    opts: &'a BackupOptions,
    progress: &'a dyn BackupProgress,
    cancel: &'a Cancel,
    names: NameCache,
    counters: Counters,
    warnings: Mutex<Vec<Warning>>,
    /// Content of hardlinked files already read, by (device, inode).
    hardlinks: Mutex<HashMap<(u64, u64), HardlinkContent>>,
    /// Databases to capture through SQLite.
    sqlite: std::collections::HashSet<PathBuf>,
    /// Threads that hash and seal a live database's pages (see
    /// `seal_pages`), made on first use.
    capture_pool: std::sync::OnceLock<Option<rayon::ThreadPool>>,
}

/// Files with more content blobs than this store them in list blobs.
const LISTS_ABOVE_FILE: usize = 4096;
/// Databases, whose pages change individually, use lists sooner.
const LISTS_ABOVE_SQLITE: usize = 2 * crate::repofile::tree::LIST_LEN;
/// Files at least this large have their chunks sealed in parallel.
const SPREAD_ABOVE: u64 = 4 << 20;
/// Bytes of one file's chunks waiting to be sealed by other threads.
const SEAL_AHEAD: usize = 4 << 20;
/// Pages captured before their blobs are hashed and sealed in parallel.
const SQLITE_BATCH: usize = 1024;

/// The directories leading to the backed-up paths.
#[derive(Default)]
struct VDir {
    children: BTreeMap<Vec<u8>, VEntry>,
}

enum VEntry {
    Target(PathBuf),
    Dir(PathBuf, VDir),
}

impl VDir {
    fn insert(&mut self, path: &Path) {
        let comps: Vec<&std::ffi::OsStr> = path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        let mut dir = self;
        let mut so_far = PathBuf::from("/");
        for (i, c) in comps.iter().enumerate() {
            so_far.push(c);
            let key = c.as_bytes().to_vec();
            if i + 1 == comps.len() {
                dir.children.insert(key, VEntry::Target(so_far.clone()));
                return;
            }
            let e = dir
                .children
                .entry(key)
                .or_insert_with(|| VEntry::Dir(so_far.clone(), VDir::default()));
            match e {
                VEntry::Target(_) => return,
                VEntry::Dir(_, sub) => dir = sub,
            }
        }
    }
}

/// Makes a source path absolute and resolves symlinks in every component
/// but the last (a symlink named on the command line is stored as such).
pub fn normalize_source(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).map_err(|e| Error::io(p, e))?;
    let meta = fs::symlink_metadata(&abs).map_err(|e| Error::io(p, e))?;
    if meta.file_type().is_symlink() {
        let parent = abs.parent().unwrap_or(Path::new("/"));
        let name = abs
            .file_name()
            .ok_or_else(|| Error::InvalidArgument(format!("{}: not a usable path", p.display())))?;
        Ok(fs::canonicalize(parent)
            .map_err(|e| Error::io(parent, e))?
            .join(name))
    } else {
        fs::canonicalize(&abs).map_err(|e| Error::io(p, e))
    }
}

/// Runs a backup and writes its snapshot (unless a dry run).
pub fn backup(
    repo: &Repository,
    mut opts: BackupOptions,
    progress: &dyn BackupProgress,
    cancel: &Cancel,
) -> Result<BackupOutcome> {
    let start = Instant::now();
    let time = opts
        .time
        .unwrap_or_else(|| chrono::Local::now().fixed_offset());
    let hostname = opts.host.clone().unwrap_or_else(crate::host::hostname);
    let stdin = opts.stdin.take();

    let mut paths = Vec::new();
    if let Some(s) = &stdin {
        if s.filename.is_empty()
            || s.filename.contains('/')
            || s.filename == "."
            || s.filename == ".."
        {
            return Err(Error::InvalidArgument(format!(
                "invalid --stdin-filename {:?}",
                s.filename
            )));
        }
        paths.push(PathBuf::from(format!("/{}", s.filename)));
    } else {
        if opts.paths.is_empty() && opts.sqlite.is_empty() {
            return Err(Error::InvalidArgument(
                "nothing to back up: give at least one path".into(),
            ));
        }
        for p in &opts.paths {
            paths.push(normalize_source(p)?);
        }
    }
    let mut sqlite = std::collections::HashSet::new();
    let mut early_warnings = Vec::new();
    for p in &opts.sqlite {
        // A symlink to a database names the database: the database is
        // stored under the name given, with the metadata of what it points to.
        let resolved = normalize_source(p)
            .map_err(|e| e.to_string())
            .and_then(|n| match fs::metadata(&n) {
                Ok(m) if m.is_file() => Ok(n),
                Ok(_) => Err("not a regular file".to_string()),
                Err(e) => Err(e.to_string()),
            });
        match resolved {
            Ok(n) => {
                sqlite.insert(n.clone());
                paths.push(n);
            }
            Err(e) => early_warnings.push(Warning {
                path: p.clone(),
                message: format!("SQLite database not backed up: {e}"),
            }),
        }
    }
    if paths.is_empty() && !early_warnings.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: {}",
            early_warnings[0].path.display(),
            early_warnings[0].message
        )));
    }
    paths.sort();
    paths.dedup();
    let path_strings: Vec<String> = paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();

    let parent = match &opts.parent {
        ParentChoice::None => None,
        _ if opts.force || stdin.is_some() => None,
        ParentChoice::Explicit(id) => Some(repo.load_snapshot(id)?),
        ParentChoice::Auto => repo
            .snapshots()?
            .into_iter()
            .rev()
            .find(|s| s.hostname == hostname && s.paths == path_strings),
    };

    let archiver = Archiver {
        repo,
        packer: Packer::new(repo, opts.dry_run),
        chunker: Chunker::new(repo.config().chunker, repo.key().chunker_seed()),
        opts: &opts,
        progress,
        cancel,
        names: NameCache::default(),
        counters: Counters::default(),
        warnings: Mutex::new(Vec::new()),
        hardlinks: Mutex::new(HashMap::new()),
        sqlite,
        capture_pool: std::sync::OnceLock::new(),
    };
    for w in early_warnings {
        archiver
            .counters
            .files_failed
            .fetch_add(1, Ordering::Relaxed);
        archiver.warn(&w.path, w.message);
    }

    let tree = match stdin {
        Some(s) => archiver.save_stdin(s, time.timestamp_nanos_opt().unwrap_or(0)),
        None => {
            let mut root = VDir::default();
            for p in &paths {
                root.insert(p);
            }
            let parent_tree = match &parent {
                Some(s) => archiver.load_parent_tree(&s.tree, Path::new("/")),
                None => None,
            };
            // The root compares with the parent's root, so an unchanged
            // backup reports no new directory.
            let parent_root = parent.as_ref().map(crate::selector::root_node);
            archiver.save_vdir(
                Path::new("/"),
                &root,
                parent_tree.as_ref(),
                parent_root.as_ref(),
            )
        }
    };
    let tree = match tree {
        Ok(t) => t,
        Err(e) => {
            archiver.packer.abort();
            return Err(e);
        }
    };
    archiver.packer.finish()?;

    let c = &archiver.counters;
    let st = &archiver.packer.stats;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let summary = Summary {
        files_new: get(&c.files_new),
        files_changed: get(&c.files_changed),
        files_unmodified: get(&c.files_unmodified),
        files_failed: get(&c.files_failed),
        dirs_new: get(&c.dirs_new),
        dirs_changed: get(&c.dirs_changed),
        dirs_unmodified: get(&c.dirs_unmodified),
        data_blobs_added: get(&st.data_blobs),
        tree_blobs_added: get(&st.tree_blobs),
        bytes_read: get(&c.bytes_read),
        bytes_added: get(&st.bytes_added),
        bytes_added_stored: get(&st.bytes_stored),
        total_bytes: get(&c.total_bytes),
        total_files: get(&c.total_files),
        duration_ns: start.elapsed().as_nanos() as u64,
    };
    let snapshot = Snapshot {
        time,
        hostname,
        username: crate::host::username(),
        uid: crate::host::uid(),
        gid: crate::host::gid(),
        paths: path_strings,
        tags: opts.tags.clone(),
        tree,
        parent: parent.map(|p| p.id),
        program_version: format!("cairn {}", env!("CARGO_PKG_VERSION")),
        summary: Some(summary),
        original: None,
        copy_of: None,
        id: Id::default(),
    };
    let warnings = archiver
        .warnings
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let snapshot_id = if opts.dry_run {
        None
    } else {
        let id = repo.save_snapshot(&snapshot)?;
        Some(id)
    };
    let mut snapshot = snapshot;
    snapshot.id = snapshot_id.unwrap_or_default();
    Ok(BackupOutcome {
        snapshot,
        snapshot_id,
        warnings,
    })
}

impl Archiver<'_> {
    fn warn(&self, path: &Path, message: String) {
        self.progress.warning(path, &message);
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Warning {
                path: path.to_path_buf(),
                message,
            });
    }

    /// `lstat`, except that a database named with `--sqlite` is followed
    /// through a symlink.
    fn stat(&self, p: &Path) -> std::io::Result<Metadata> {
        if self.sqlite.contains(p) {
            fs::metadata(p)
        } else {
            fs::symlink_metadata(p)
        }
    }

    fn check_interrupt(&self) -> Result<()> {
        self.cancel.check()
    }

    fn load_parent_tree(&self, id: &Id, path: &Path) -> Option<Tree> {
        match self.repo.load_tree(id) {
            Ok(t) => Some(t),
            Err(e) => {
                self.warn(
                    path,
                    format!("parent snapshot's tree unreadable, rereading: {e}"),
                );
                None
            }
        }
    }

    fn save_tree(&self, nodes: Vec<Node>, parent: Option<&Node>) -> Result<Id> {
        let bytes = Tree { nodes }.encode();
        if bytes.len() as u64 > crate::limits::MAX_TREE {
            return Err(Error::InvalidArgument(
                "a directory has too many entries for one tree blob".into(),
            ));
        }
        let id = self.packer.save(BlobType::Tree, &bytes)?;
        match parent.and_then(|p| p.subtree) {
            None => inc(&self.counters.dirs_new, 1),
            Some(old) if old == id => inc(&self.counters.dirs_unmodified, 1),
            Some(_) => inc(&self.counters.dirs_changed, 1),
        }
        Ok(id)
    }

    fn save_vdir(
        &self,
        path: &Path,
        dir: &VDir,
        parent: Option<&Tree>,
        parent_node: Option<&Node>,
    ) -> Result<Id> {
        let mut nodes = Vec::new();
        for (name, entry) in &dir.children {
            let pnode = parent.and_then(|t| t.find(name));
            match entry {
                VEntry::Target(p) => {
                    let meta = match self.stat(p) {
                        Ok(m) => m,
                        Err(e) => {
                            inc(&self.counters.files_failed, 1);
                            self.warn(p, e.to_string());
                            continue;
                        }
                    };
                    let dev = meta.dev();
                    if let Some(n) = self.save_entry(p, name, &meta, pnode, dev, 0)? {
                        nodes.push(n);
                    }
                }
                VEntry::Dir(p, sub) => {
                    let meta = fs::symlink_metadata(p).map_err(|e| Error::io(p, e))?;
                    let ptree = pnode
                        .filter(|n| n.kind == NodeKind::Dir)
                        .and_then(|n| n.subtree)
                        .and_then(|id| self.load_parent_tree(&id, p));
                    let subtree = self.save_vdir(p, sub, ptree.as_ref(), pnode)?;
                    let mut node = node_from_metadata(name, &meta, NodeKind::Dir, &self.names);
                    node.xattrs = read_xattrs(p);
                    node.subtree = Some(subtree);
                    nodes.push(node);
                }
            }
        }
        let _ = path;
        self.save_tree(nodes, parent_node)
    }

    /// Saves one file system object; `None` when it had to be skipped.
    fn save_entry(
        &self,
        path: &Path,
        name: &[u8],
        meta: &Metadata,
        parent: Option<&Node>,
        root_dev: u64,
        depth: usize,
    ) -> Result<Option<Node>> {
        self.check_interrupt()?;
        let Some(kind) = kind_of(meta) else {
            self.warn(path, "unsupported file type, skipped".into());
            return Ok(None);
        };
        let mut node = node_from_metadata(name, meta, kind, &self.names);
        node.xattrs = read_xattrs(path);
        let parent = parent.filter(|p| p.kind == kind);
        match kind {
            NodeKind::Dir => {
                if depth >= crate::limits::MAX_TREE_DEPTH {
                    self.warn(path, "directory nesting too deep, skipped".into());
                    return Ok(None);
                }
                let crosses = self.opts.one_file_system && meta.dev() != root_dev;
                let subtree = if crosses {
                    self.save_tree(Vec::new(), parent)?
                } else {
                    match self.save_dir(path, parent, root_dev, depth)? {
                        Some(id) => id,
                        None => return Ok(None),
                    }
                };
                node.subtree = Some(subtree);
            }
            NodeKind::File => {
                inc(&self.counters.total_files, 1);
                let saved = if self.sqlite.contains(path) {
                    self.save_sqlite(path, &mut node, parent)?
                } else {
                    self.save_file(path, &mut node, parent)?
                };
                match saved {
                    true => {}
                    false => return Ok(None),
                }
                inc(&self.counters.total_bytes, node.size);
                self.progress.file_done(path);
            }
            NodeKind::Symlink => match fs::read_link(path) {
                Ok(t) => node.link_target = Some(t.as_os_str().as_bytes().to_vec()),
                Err(e) => {
                    inc(&self.counters.files_failed, 1);
                    self.warn(path, format!("cannot read link: {e}"));
                    return Ok(None);
                }
            },
            _ => {}
        }
        Ok(Some(node))
    }

    fn save_dir(
        &self,
        path: &Path,
        parent: Option<&Node>,
        root_dev: u64,
        depth: usize,
    ) -> Result<Option<Id>> {
        let mut entries = Vec::new();
        let rd = match fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) => {
                inc(&self.counters.files_failed, 1);
                self.warn(path, format!("cannot read directory: {e}"));
                return Ok(None);
            }
        };
        for de in rd {
            match de {
                Ok(de) => entries.push(de.file_name()),
                Err(e) => {
                    inc(&self.counters.files_failed, 1);
                    self.warn(path, format!("cannot read directory: {e}"));
                    return Ok(None);
                }
            }
        }
        entries.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        if !self.sqlite.is_empty() {
            // A named database's journal files would not match the copy
            // captured through SQLite.
            entries.retain(|n| {
                let b = n.as_bytes();
                ![&b"-wal"[..], b"-shm", b"-journal"].iter().any(|suf| {
                    b.ends_with(suf)
                        && self.sqlite.contains(
                            &path.join(std::ffi::OsStr::from_bytes(&b[..b.len() - suf.len()])),
                        )
                })
            });
        }
        if self.opts.exclude_caches && is_cache_dir(path) {
            entries.retain(|n| n.as_bytes() == b"CACHEDIR.TAG");
        }
        let ptree = parent
            .and_then(|n| n.subtree)
            .and_then(|id| self.load_parent_tree(&id, path));
        let results: Vec<Result<Option<Node>>> = entries
            .par_iter()
            .map(|name| {
                let child = path.join(name);
                if self.opts.excludes.is_excluded(&child) {
                    return Ok(None);
                }
                let meta = match self.stat(&child) {
                    Ok(m) => m,
                    Err(e) => {
                        inc(&self.counters.files_failed, 1);
                        self.warn(&child, e.to_string());
                        return Ok(None);
                    }
                };
                let pnode = ptree.as_ref().and_then(|t| t.find(name.as_bytes()));
                self.save_entry(&child, name.as_bytes(), &meta, pnode, root_dev, depth + 1)
            })
            .collect();
        let mut nodes = Vec::with_capacity(results.len());
        for r in results {
            if let Some(n) = r? {
                nodes.push(n);
            }
        }
        Ok(Some(self.save_tree(nodes, parent)?))
    }

    /// Fills a file node's content. Returns false when the file could not
    /// be read (a warning is recorded and the file left out).
    fn save_file(&self, path: &Path, node: &mut Node, parent: Option<&Node>) -> Result<bool> {
        if let Some(old) = parent {
            if !self.opts.force
                && unchanged(old, node)
                && old
                    .content
                    .iter()
                    .chain(&old.lists)
                    .all(|id| self.packer.has(id))
            {
                node.content = old.content.clone();
                node.lists = old.lists.clone();
                inc(&self.counters.files_unmodified, 1);
                return Ok(true);
            }
        }
        let link_key = (node.device, node.inode);
        if node.links > 1 {
            let h = self.hardlinks.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((mtime, content)) = h.get(&link_key) {
                if *mtime == node.mtime {
                    node.content = content.clone();
                    return Ok(true);
                }
            }
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOATIME)
            .open(path)
            .or_else(|_| fs::File::open(path));
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                inc(&self.counters.files_failed, 1);
                self.warn(path, format!("cannot open: {e}"));
                return Ok(false);
            }
        };
        let mut content = Vec::new();
        let mut size = 0u64;
        // A large file's new chunks are sealed by whichever threads are
        // free while this one reads on, so that one big file does not leave
        // the other cores idle at the end of a backup. The bytes handed out
        // are bounded.
        let spread = node.size >= SPREAD_ABOVE;
        let in_flight = AtomicUsize::new(0);
        let failed: Mutex<Option<Error>> = Mutex::new(None);
        let take_failure = || failed.lock().unwrap_or_else(|e| e.into_inner()).take();
        let r = rayon::in_place_scope(|scope| {
            self.chunker
                .for_each_chunk(file, node.size, |chunk: &[u8]| -> Result<(), FileError> {
                    self.cancel.check().map_err(FileError::Fatal)?;
                    if let Some(e) = take_failure() {
                        return Err(FileError::Fatal(e));
                    }
                    size += chunk.len() as u64;
                    inc(&self.counters.bytes_read, chunk.len() as u64);
                    self.progress.bytes_read(chunk.len() as u64);
                    let id = self.packer.key().blob_id(chunk);
                    content.push(id);
                    if !self.packer.claim(&id) {
                        return Ok(());
                    }
                    // Far enough ahead, the reader seals this chunk itself:
                    // that bounds memory without waiting (and without
                    // running unrelated work in the middle of this file).
                    if !spread || in_flight.load(Ordering::Acquire) >= SEAL_AHEAD {
                        return self
                            .packer
                            .seal_and_add(BlobType::Data, id, chunk)
                            .map_err(FileError::Fatal);
                    }
                    in_flight.fetch_add(chunk.len(), Ordering::AcqRel);
                    let owned = chunk.to_vec();
                    let (packer, in_flight, failed) = (&self.packer, &in_flight, &failed);
                    scope.spawn(move |_| {
                        let r = packer.seal_and_add(BlobType::Data, id, &owned);
                        in_flight.fetch_sub(owned.len(), Ordering::AcqRel);
                        if let Err(e) = r {
                            failed
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(e);
                        }
                    });
                    Ok(())
                })
        });
        // Every spawned seal has finished here.
        if let Some(e) = take_failure() {
            return Err(e);
        }
        match r {
            Ok(()) => {}
            Err(FileError::Fatal(e)) => return Err(e),
            Err(FileError::Source(e)) => {
                inc(&self.counters.files_failed, 1);
                self.warn(path, format!("read failed, file left out: {e}"));
                return Ok(false);
            }
        }
        node.size = size;
        self.set_content(node, content, LISTS_ABOVE_FILE)?;
        match parent {
            Some(_) => inc(&self.counters.files_changed, 1),
            None => inc(&self.counters.files_new, 1),
        }
        if node.links > 1 {
            self.hardlinks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(link_key, (node.mtime, node.content.clone()));
        }
        Ok(true)
    }

    /// Records a file's content, in list blobs when it has many blobs.
    fn set_content(&self, node: &mut Node, content: Vec<Id>, lists_above: usize) -> Result<()> {
        if content.len() <= lists_above {
            node.content = content;
            node.lists.clear();
            return Ok(());
        }
        let mut lists = Vec::with_capacity(content.len().div_ceil(crate::repofile::tree::LIST_LEN));
        for part in content.chunks(crate::repofile::tree::LIST_LEN) {
            lists.push(
                self.packer
                    .save(BlobType::Tree, &crate::repofile::tree::encode_list(part))?,
            );
        }
        node.content.clear();
        node.lists = lists;
        Ok(())
    }

    /// Hashes and seals a batch of a database's pages, leaving one core to
    /// the application writing the database while it is captured. With
    /// every core busy hashing, a writer on a two-core machine lost a fifth
    /// of its transaction rate. On two cores the batch is sealed on the
    /// capturing thread itself: a second thread taking turns with it would
    /// be woken, batch after batch, on whichever core was idle a moment,
    /// often the writer's.
    fn seal_pages(&self, batch: &[Vec<u8>]) -> Vec<Result<Id>> {
        let pool = self.capture_pool.get_or_init(|| {
            let cores = rayon::current_num_threads();
            if cores <= 2 {
                return None;
            }
            rayon::ThreadPoolBuilder::new()
                .num_threads(cores - 1)
                .thread_name(|i| format!("cairn-sqlite-{i}"))
                .build()
                .ok()
        });
        let seal = |c: &Vec<u8>| self.packer.save(BlobType::Data, c);
        match pool {
            Some(p) => p.install(|| batch.par_iter().map(seal).collect()),
            None => batch.iter().map(seal).collect(),
        }
    }

    /// Captures a live SQLite database page by page. Returns false (with a
    /// warning) when it cannot be captured.
    fn save_sqlite(&self, path: &Path, node: &mut Node, parent: Option<&Node>) -> Result<bool> {
        let mut content: Vec<Id> = Vec::new();
        let mut batch: Vec<Vec<u8>> = Vec::with_capacity(SQLITE_BATCH);
        let mut size = 0u64;
        let mut fatal: Option<Error> = None;
        let flush = |batch: &mut Vec<Vec<u8>>, content: &mut Vec<Id>| -> Result<()> {
            for id in self.seal_pages(batch) {
                content.push(id?);
            }
            batch.clear();
            Ok(())
        };
        let mut pending: Vec<u8> = Vec::new();
        let capture = || {
            crate::sqlite::capture(path, self.opts.sqlite_timeout, self.cancel, |page| {
                size += page.len() as u64;
                inc(&self.counters.bytes_read, page.len() as u64);
                self.progress.bytes_read(page.len() as u64);
                // Small pages are grouped so that no blob is under 4 KiB.
                pending.extend_from_slice(page);
                if pending.len() >= 4096 {
                    batch.push(std::mem::take(&mut pending));
                }
                if batch.len() >= SQLITE_BATCH {
                    if let Err(e) = flush(&mut batch, &mut content) {
                        fatal = Some(e);
                        return Err(Error::Interrupted);
                    }
                }
                Ok(())
            })
        };
        // A thread of its own, which the capture may lower in priority for
        // as long as it reads a database in WAL mode (see sqlite::capture).
        let r = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("cairn-capture".into())
                .spawn_scoped(s, capture)
                .map_err(|e| Error::io(path, e))?
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        if let Some(e) = fatal {
            return Err(e);
        }
        let meta = match r {
            Ok(m) => m,
            Err(e @ (Error::Interrupted | Error::Locked(_))) => return Err(e),
            Err(e) => {
                inc(&self.counters.files_failed, 1);
                self.warn(path, e.to_string());
                return Ok(false);
            }
        };
        if !pending.is_empty() {
            batch.push(pending);
        }
        flush(&mut batch, &mut content)?;
        node.size = size;
        node.sqlite = Some(meta);
        self.set_content(node, content, LISTS_ABOVE_SQLITE)?;
        match parent {
            Some(_) => inc(&self.counters.files_changed, 1),
            None => inc(&self.counters.files_new, 1),
        }
        Ok(true)
    }

    fn save_stdin(&self, mut s: StdinSource, now_ns: i64) -> Result<Id> {
        let mut content = Vec::new();
        let mut size = 0u64;
        let r = self.chunker.for_each_chunk(
            &mut s.reader,
            u64::MAX,
            |chunk: &[u8]| -> Result<(), FileError> {
                self.cancel.check().map_err(FileError::Fatal)?;
                size += chunk.len() as u64;
                inc(&self.counters.bytes_read, chunk.len() as u64);
                self.progress.bytes_read(chunk.len() as u64);
                content.push(
                    self.packer
                        .save(BlobType::Data, chunk)
                        .map_err(FileError::Fatal)?,
                );
                Ok(())
            },
        );
        match r {
            Ok(()) => {}
            Err(FileError::Fatal(e)) => return Err(e),
            Err(FileError::Source(e)) => return Err(Error::io("standard input", e)),
        }
        inc(&self.counters.files_new, 1);
        inc(&self.counters.total_files, 1);
        inc(&self.counters.total_bytes, size);
        let node = Node {
            name: s.filename.into_bytes(),
            kind: NodeKind::File,
            mode: 0o644,
            uid: crate::host::uid(),
            gid: crate::host::gid(),
            user: self.names.user(crate::host::uid()),
            group: self.names.group(crate::host::gid()),
            mtime: now_ns,
            ctime: now_ns,
            atime: now_ns,
            inode: 0,
            device: 0,
            links: 1,
            size,
            link_target: None,
            xattrs: Vec::new(),
            rdev: 0,
            content,
            subtree: None,
            lists: Vec::new(),
            sqlite: None,
        };
        self.save_tree(vec![node], None)
    }
}

fn is_cache_dir(dir: &Path) -> bool {
    let mut buf = [0u8; CACHEDIR_SIGNATURE.len()];
    match fs::File::open(dir.join("CACHEDIR.TAG")) {
        Ok(mut f) => f.read_exact(&mut buf).is_ok() && buf == CACHEDIR_SIGNATURE,
        Err(_) => false,
    }
}
