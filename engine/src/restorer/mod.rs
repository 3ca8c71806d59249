//! Restore: plans the files of a snapshot (or a part of it), then reads
//! each needed pack once, in parallel, verifying every blob's hash on the
//! way out, and writes blobs at their offsets. Runs of zeros are left as
//! holes, so sparse files stay sparse. Metadata comes last: ownership (as
//! root), mode, extended attributes, then times, directories deepest first.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use filetime::FileTime;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::excludes::Excludes;
use crate::id::{Id, IdMap};
use crate::lock::Cancel;
use crate::pack::PackEntry;
use crate::repofile::tree::{Node, NodeKind};
use crate::repository::{pack_path, Repository};

mod unpack;
use unpack::{restore_pack, PackContext};

pub struct RestoreOptions {
    pub target: PathBuf,
    /// When non-empty, only matching paths (and what lies below them) are
    /// restored. Patterns are matched against paths inside the snapshot.
    pub include: Option<Excludes>,
    pub exclude: Excludes,
    /// Reread every restored file and compare it with the snapshot.
    pub verify: bool,
    /// Restore owners (default when running as root).
    pub owners: bool,
}

pub trait RestoreProgress: Sync {
    fn planned(&self, _files: u64, _bytes: u64) {}
    fn bytes_written(&self, _n: u64) {}
    fn warning(&self, _path: &Path, _message: &str) {}
}

pub struct NoRestoreProgress;
impl RestoreProgress for NoRestoreProgress {}

#[derive(Debug, Default, Clone)]
pub struct RestoreOutcome {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub bytes: u64,
    pub verified_files: u64,
    /// Problems that did not stop the restore, with the path concerned.
    pub errors: Vec<(PathBuf, String)>,
    /// Restored SQLite databases that passed `PRAGMA integrity_check`.
    pub databases_ok: Vec<PathBuf>,
}

/// Blobs to take from one pack: each with the (file, offset) places it goes.
type PackJob = Vec<(PackEntry, unpack::Targets)>;

struct FilePlan {
    target: PathBuf,
    node: Node,
    /// Content blob IDs (list blobs resolved).
    content: Vec<Id>,
    /// For databases: the final path; `target` is then a temporary name
    /// in the same directory, renamed once the file is complete.
    final_path: Option<PathBuf>,
    /// The blobs are checked against their IDs in the written file, before
    /// it is moved into place, rather than as they are decrypted (see
    /// [`defer_id_checks`]).
    check_later: bool,
}

#[derive(Default)]
struct Plan {
    /// Directories in creation order (parents first).
    dirs: Vec<(PathBuf, Node)>,
    files: Vec<FilePlan>,
    /// Symlinks, FIFOs, sockets and devices.
    others: Vec<(PathBuf, Node)>,
    /// (new path, index of the file it links to).
    links: Vec<(PathBuf, usize)>,
    /// First restored file of each hardlink group.
    groups: HashMap<(u64, u64), usize>,
}

/// Restores `node` (a directory, file or other object found at `snap_path`
/// in a snapshot) into `opts.target`: a directory's contents go directly
/// into the target, anything else becomes a child of the target.
pub fn restore(
    repo: &Repository,
    node: &Node,
    snap_path: &str,
    opts: &RestoreOptions,
    progress: &dyn RestoreProgress,
    cancel: &Cancel,
) -> Result<RestoreOutcome> {
    let mut plan = Plan::default();
    fs::create_dir_all(&opts.target).map_err(|e| Error::io(&opts.target, e))?;
    let base = PathBuf::from(if snap_path.is_empty() { "/" } else { snap_path });
    if node.kind == NodeKind::Dir {
        plan_dir(repo, node, &base, &opts.target, opts, &mut plan, 0)?;
    } else {
        let target = opts.target.join(node.os_name());
        plan_entry(repo, node, &base, &target, opts, &mut plan, 0, true)?;
    }
    let total: u64 = plan.files.iter().map(|f| f.node.size).sum();
    progress.planned(plan.files.len() as u64, total);
    defer_id_checks(&mut plan.files, available_memory());

    let errors = Mutex::new(Vec::new());
    let err = |p: &Path, m: String| {
        progress.warning(p, &m);
        errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((p.to_path_buf(), m));
    };

    // Directories, then empty files of the right size.
    for (d, _) in &plan.dirs {
        make_dir(d)?;
    }
    let created: Vec<bool> = plan
        .files
        .par_iter()
        .map(
            |f| match create_file(&f.target, f.node.size, f.final_path.is_some()) {
                Ok(()) => true,
                Err(e) => {
                    match &f.final_path {
                        Some(fin) => {
                            let _ = fs::remove_file(&f.target);
                            err(fin, format!("database not restored: {e}"));
                        }
                        None => err(&f.target, e.to_string()),
                    }
                    false
                }
            },
        )
        .collect();

    // Content, pack by pack.
    let index = repo.index();
    let mut by_pack: IdMap<PackJob> = IdMap::default();
    // A file's consecutive blobs are mostly in one pack, whose job is kept
    // at hand until a blob from another pack comes.
    let mut cur: Option<(Id, PackJob)> = None;
    for (fi, f) in plan.files.iter().enumerate() {
        if !created[fi] {
            continue;
        }
        let mut off = 0u64;
        for id in &f.content {
            let Some(loc) = index.get(id) else {
                err(
                    &f.target,
                    format!("blob {id} is missing from the repository; file is incomplete"),
                );
                break;
            };
            if cur.as_ref().map(|(p, _)| *p) != Some(loc.pack) {
                if let Some((p, job)) = cur.take() {
                    by_pack.insert(p, job);
                }
                let job = by_pack.remove(&loc.pack).unwrap_or_default();
                cur = Some((loc.pack, job));
            }
            if let Some((_, job)) = &mut cur {
                job.push((loc.entry, unpack::Targets::one(fi, off)));
            }
            off += u64::from(loc.entry.raw_length);
        }
    }
    if let Some((p, job)) = cur {
        by_pack.insert(p, job);
    }
    let written = AtomicU64::new(0);
    let mut jobs: Vec<(Id, PackJob)> = by_pack.into_iter().collect();
    jobs.sort_by_key(|(id, _)| *id);
    jobs.par_iter_mut().for_each(|(_, blobs)| {
        // A blob needed in several places is opened once: its places are
        // gathered on its first mention, in plan order (the sort is stable).
        blobs.sort_by_key(|(e, _)| (e.offset, e.id));
        blobs.dedup_by(|(e, t), (first, places)| {
            let same = e.offset == first.offset && e.id == first.id;
            if same {
                places.append(std::mem::replace(t, unpack::Targets::Many(Vec::new())));
            }
            same
        });
    });
    // Databases are synced before their rename: their pages go to the
    // disk while the packs are decrypted, not all at once at the end.
    let writeback = crate::writeback::WriteBack::start(
        plan.files
            .iter()
            .filter(|f| f.final_path.is_some())
            .map(|f| f.target.as_path()),
    );
    repo.in_io_pool(|| {
        // Each worker reads every span of its packs into the same buffer.
        jobs.par_iter()
            .enumerate()
            .for_each_init(Vec::new, |buf, (k, (pack_id, blobs))| {
                if cancel.is_cancelled() {
                    return;
                }
                // A worker mostly takes the packs in order: the next one's
                // first read is fetched while this one is restored.
                if let Some((next_id, next_blobs)) = jobs.get(k + 1) {
                    unpack::will_read_first_span(repo, next_id, next_blobs);
                }
                let ctx = PackContext {
                    files: &plan.files,
                    progress,
                    written: &written,
                    err: &err,
                };
                if let Err(e) = restore_pack(repo, pack_id, blobs, &ctx, buf) {
                    match e {
                        Error::Interrupted => {}
                        e => {
                            let path = pack_path(pack_id);
                            err(Path::new(&path), e.to_string());
                        }
                    }
                }
            })
    });
    drop(writeback);
    if let Err(e) = cancel.check() {
        // Databases only ever reach their final path whole.
        for f in plan.files.iter().filter(|f| f.final_path.is_some()) {
            let _ = fs::remove_file(&f.target);
        }
        return Err(e);
    }
    // Files some of whose content could not be restored (errors so far are
    // about creating and filling files; metadata errors come later and do
    // not make a database incomplete).
    let incomplete: HashSet<PathBuf> = errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(p, _)| p.clone())
        .collect();

    // Hardlinks, then the other objects.
    for (path, fi) in &plan.links {
        let _ = fs::remove_file(path);
        if let Err(e) = fs::hard_link(&plan.files[*fi].target, path) {
            err(path, format!("cannot create hardlink: {e}"));
        }
    }
    for (path, n) in &plan.others {
        if let Err(e) = make_other(path, n) {
            err(path, e);
        }
    }

    // Metadata: files and others, then directories deepest first.
    let owners = opts.owners;
    // (Not for files that could not be created: that error is reported.)
    plan.files
        .par_iter()
        .zip(&created)
        .filter(|(_, made)| **made)
        .for_each(|(f, _)| {
            if let Err(e) = apply_metadata(&f.target, &f.node, owners) {
                err(&f.target, e);
            }
        });
    for (path, n) in &plan.others {
        if n.kind != NodeKind::Socket {
            if let Err(e) = apply_metadata(path, n, owners) {
                err(path, e);
            }
        }
    }
    // Databases (before directory times are set, since renaming into a
    // directory changes its mtime): durable under the temporary name, then renamed into place
    // and checked by SQLite.
    let mut databases_ok = Vec::new();
    for (fi, f) in plan.files.iter().enumerate() {
        let Some(fin) = &f.final_path else { continue };
        if !created[fi] {
            continue;
        }
        // A database some of whose pages could not be restored is not
        // moved over whatever is at its final path.
        if incomplete.contains(&f.target) {
            let _ = fs::remove_file(&f.target);
            err(
                fin,
                "database not restored: some of its content could not be read (see above); \
                 anything already at this path is left as it was"
                    .to_string(),
            );
            continue;
        }
        match finish_database(repo, f, fin) {
            Ok(()) => databases_ok.push(fin.clone()),
            Err(e) => {
                let _ = fs::remove_file(&f.target);
                err(fin, e.to_string());
            }
        }
    }

    for (path, n) in plan.dirs.iter().rev() {
        if let Err(e) = apply_metadata(path, n, owners) {
            err(path, e);
        }
    }

    let mut outcome = RestoreOutcome {
        files: plan.files.len() as u64 + plan.links.len() as u64,
        dirs: plan.dirs.len() as u64,
        others: plan.others.len() as u64,
        bytes: total,
        verified_files: 0,
        errors: Vec::new(),
        databases_ok,
    };
    if opts.verify {
        let verified = AtomicU64::new(0);
        plan.files.par_iter().for_each(|f| {
            match verify_file(
                repo,
                f.final_path.as_ref().unwrap_or(&f.target),
                &f.node,
                &f.content,
            ) {
                Ok(()) => {
                    verified.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => err(&f.target, e.to_string()),
            }
        });
        outcome.verified_files = verified.into_inner();
    }
    outcome.errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(outcome)
}

fn child_path(base: &Path, name: &[u8]) -> PathBuf {
    base.join(OsStr::from_bytes(name))
}

fn selected(opts: &RestoreOptions, snap_path: &Path) -> (bool, bool) {
    // (selected itself, may contain selected entries)
    if opts.exclude.is_excluded(snap_path) {
        return (false, false);
    }
    match &opts.include {
        None => (true, true),
        Some(inc) => {
            let mut p = Some(snap_path);
            while let Some(q) = p {
                if inc.is_excluded(q) {
                    return (true, true);
                }
                p = q.parent();
            }
            (false, true)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn plan_entry(
    repo: &Repository,
    n: &Node,
    snap_path: &Path,
    target: &Path,
    opts: &RestoreOptions,
    plan: &mut Plan,
    depth: usize,
    forced: bool,
) -> Result<bool> {
    let (sel, descend) = if forced {
        (true, true)
    } else {
        selected(opts, snap_path)
    };
    match n.kind {
        NodeKind::Dir => {
            if !descend {
                return Ok(false);
            }
            let at = plan.dirs.len();
            plan.dirs.push((target.to_path_buf(), n.clone()));
            let any = plan_dir(repo, n, snap_path, target, opts, plan, depth + 1)?;
            if !any && !sel {
                plan.dirs.truncate(at);
                return Ok(false);
            }
            Ok(true)
        }
        _ if !sel => Ok(false),
        NodeKind::File => {
            if n.links > 1 {
                if let Some(&fi) = plan.groups.get(&(n.device, n.inode)) {
                    plan.links.push((target.to_path_buf(), fi));
                    return Ok(true);
                }
                plan.groups.insert((n.device, n.inode), plan.files.len());
            }
            let (write_to, final_path) = if n.sqlite.is_some() {
                let mut tmp = n.name.clone();
                tmp.splice(0..0, b".".iter().copied());
                tmp.extend_from_slice(
                    format!(".cairn-restore-{}", Id::random().short()).as_bytes(),
                );
                (
                    target.with_file_name(OsStr::from_bytes(&tmp)),
                    Some(target.to_path_buf()),
                )
            } else {
                (target.to_path_buf(), None)
            };
            plan.files.push(FilePlan {
                target: write_to,
                node: n.clone(),
                content: repo.file_content(n)?,
                final_path,
                check_later: false,
            });
            Ok(true)
        }
        _ => {
            plan.others.push((target.to_path_buf(), n.clone()));
            Ok(true)
        }
    }
}

fn plan_dir(
    repo: &Repository,
    dir: &Node,
    snap_path: &Path,
    target: &Path,
    opts: &RestoreOptions,
    plan: &mut Plan,
    depth: usize,
) -> Result<bool> {
    if depth > crate::limits::MAX_TREE_DEPTH {
        return Err(Error::corrupt(
            snap_path.display().to_string(),
            "tree nesting exceeds the format limit",
        ));
    }
    let Some(sub) = dir.subtree else {
        return Ok(false);
    };
    let tree = repo.load_tree(&sub)?;
    let mut any = false;
    for n in &tree.nodes {
        let sp = child_path(snap_path, &n.name);
        let tp = child_path(target, &n.name);
        any |= plan_entry(repo, n, &sp, &tp, opts, plan, depth, false)?;
    }
    Ok(any)
}

fn make_dir(d: &Path) -> Result<()> {
    match fs::symlink_metadata(d) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => fs::remove_file(d).map_err(|e| Error::io(d, e))?,
        Err(_) => {}
    }
    fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    // Owner-writable until the final mode is applied at the end.
    fs::set_permissions(d, fs::Permissions::from_mode(0o700)).map_err(|e| Error::io(d, e))
}

/// Creates (or truncates) a file to be filled at `size` bytes; with
/// `reserve`, its blocks are allocated at once (see [`reserve_blocks`]).
fn create_file(p: &Path, size: u64, reserve: bool) -> std::io::Result<()> {
    if let Ok(m) = fs::symlink_metadata(p) {
        if !m.is_file() || m.nlink() > 1 {
            if m.is_dir() {
                fs::remove_dir_all(p)?;
            } else {
                fs::remove_file(p)?;
            }
        }
    }
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)?;
    f.set_len(size)?;
    if reserve {
        reserve_blocks(&f, size)?;
    }
    Ok(())
}

/// Allocates a database's blocks before its pages are written. Into a
/// sparse file, the file system reserves space page by page as pages
/// arrive (ext4's delayed allocation: about 7% of a 530 MiB database's
/// restore time); allocated blocks take them without that work, and a disk
/// too small for the database is found here, before anything is written.
/// A file system that cannot allocate ahead keeps the sparse file. (Only
/// databases: zero runs of other files are kept as holes.)
fn reserve_blocks(f: &fs::File, size: u64) -> std::io::Result<()> {
    use nix::errno::Errno;
    let Ok(len) = libc::off_t::try_from(size) else {
        return Ok(());
    };
    if len == 0 {
        return Ok(());
    }
    match nix::fcntl::fallocate(f, nix::fcntl::FallocateFlags::empty(), 0, len) {
        Err(e @ (Errno::ENOSPC | Errno::EDQUOT | Errno::EFBIG)) => Err(std::io::Error::other(
            format!("cannot allocate {size} bytes for it: {}", e.desc()),
        )),
        // Not supported here (EOPNOTSUPP), or refused for this file: the
        // writes allocate as they go.
        _ => Ok(()),
    }
}

use std::os::unix::fs::MetadataExt;

fn make_other(path: &Path, n: &Node) -> std::result::Result<(), String> {
    if let Ok(m) = fs::symlink_metadata(path) {
        let r = if m.is_dir() {
            fs::remove_dir_all(path)
        } else {
            fs::remove_file(path)
        };
        r.map_err(|e| format!("cannot replace existing entry: {e}"))?;
    }
    let mode = nix::sys::stat::Mode::from_bits_truncate(n.mode & 0o7777);
    match n.kind {
        NodeKind::Symlink => {
            let t = n.link_target.as_deref().unwrap_or_default();
            std::os::unix::fs::symlink(OsStr::from_bytes(t), path)
                .map_err(|e| format!("cannot create symlink: {e}"))
        }
        NodeKind::Fifo => {
            nix::unistd::mkfifo(path, mode).map_err(|e| format!("cannot create FIFO: {e}"))
        }
        NodeKind::Chardev | NodeKind::Blockdev => {
            let kind = if n.kind == NodeKind::Chardev {
                nix::sys::stat::SFlag::S_IFCHR
            } else {
                nix::sys::stat::SFlag::S_IFBLK
            };
            nix::sys::stat::mknod(path, kind, mode, n.rdev)
                .map_err(|e| format!("cannot create device node: {e}"))
        }
        // A socket is only meaningful while its server listens; like other
        // tools, restore leaves it out.
        NodeKind::Socket => Ok(()),
        NodeKind::File | NodeKind::Dir => Ok(()),
    }
}

fn apply_metadata(path: &Path, n: &Node, owners: bool) -> std::result::Result<(), String> {
    let is_link = n.kind == NodeKind::Symlink;
    if owners {
        std::os::unix::fs::lchown(path, Some(n.uid), Some(n.gid))
            .map_err(|e| format!("cannot set owner: {e}"))?;
    }
    if !is_link {
        fs::set_permissions(path, fs::Permissions::from_mode(n.mode & 0o7777))
            .map_err(|e| format!("cannot set mode: {e}"))?;
        for x in &n.xattrs {
            if let Err(e) = xattr::set(path, OsStr::from_bytes(&x.name), &x.value) {
                return Err(format!(
                    "cannot set extended attribute {}: {e}",
                    String::from_utf8_lossy(&x.name)
                ));
            }
        }
    }
    let t = |ns: i64| {
        FileTime::from_unix_time(
            ns.div_euclid(1_000_000_000),
            ns.rem_euclid(1_000_000_000) as u32,
        )
    };
    filetime::set_symlink_file_times(path, t(n.atime), t(n.mtime))
        .map_err(|e| format!("cannot set times: {e}"))
}

/// Databases whose blobs are checked against their IDs in the written
/// file rather than as they are decrypted: the check then runs beside
/// SQLite's integrity check, on a core that would otherwise wait for it,
/// instead of taking a share of both cores while pages are written (a
/// 530 MiB database restored about 6% faster). Only while the databases
/// fit in half the memory available, so that the reread comes from the
/// page cache, not the disk.
fn defer_id_checks(files: &mut [FilePlan], available: u64) {
    let mut room = available / 2;
    for f in files.iter_mut().filter(|f| f.final_path.is_some()) {
        if f.node.size <= room {
            room -= f.node.size;
            f.check_later = true;
        }
    }
}

/// Memory the kernel could give without swapping (`MemAvailable`), or 0
/// when it does not say.
fn available_memory() -> u64 {
    let Ok(info) = fs::read_to_string("/proc/meminfo") else {
        return 0;
    };
    info.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .map_or(0, |kib| kib.saturating_mul(1024))
}

/// Moves a completely written database into place and checks it. SQLite
/// checks the file while the kernel makes it durable, since one is CPU
/// and the other disk, and, for a database whose blobs were not checked
/// as they were decrypted, its bytes are checked against their IDs on
/// another thread; the rename comes only once all are done. A database
/// whose bytes are not the snapshot's is not moved into place. One that
/// fails SQLite's check is (its bytes are the snapshot's, checked blob by
/// blob) and the failure is reported.
fn finish_database(repo: &Repository, plan: &FilePlan, fin: &Path) -> Result<()> {
    let tmp = plan.target.as_path();
    let f = OpenOptions::new()
        .read(true)
        .open(tmp)
        .map_err(|e| Error::io(tmp, e))?;
    let (synced, verified, checked) = std::thread::scope(|s| {
        let sync = s.spawn(|| f.sync_all());
        let verify = plan
            .check_later
            .then(|| s.spawn(|| verify_file(repo, tmp, &plan.node, &plan.content)));
        let checked = crate::sqlite::integrity_check(tmp);
        let synced = sync
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("sync thread panicked")));
        let verified = match verify {
            Some(v) => v.join().unwrap_or_else(|_| {
                Err(Error::VerifyFailed {
                    path: tmp.display().to_string(),
                    reason: "the check's thread panicked".into(),
                })
            }),
            None => Ok(()),
        };
        (synced, verified, checked)
    });
    synced.map_err(|e| Error::io(tmp, e))?;
    verified.map_err(|e| match e {
        Error::VerifyFailed { reason, .. } => Error::VerifyFailed {
            path: fin.display().to_string(),
            reason: format!(
                "{reason}; database not restored, anything already at this path is left as it was"
            ),
        },
        e => e,
    })?;
    drop(f);
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut p = fin.as_os_str().to_owned();
        p.push(suffix);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(PathBuf::from(p), e)),
        }
    }
    fs::rename(tmp, fin).map_err(|e| Error::io(fin, e))?;
    if let Some(dir) = fin.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    // The check ran under the temporary name: report the final one.
    checked.map_err(|e| match e {
        Error::Sqlite { reason, .. } => Error::Sqlite {
            path: fin.display().to_string(),
            reason,
        },
        e => e,
    })
}

/// Bytes a file is reread in when checked against its blob IDs.
const VERIFY_READ: u64 = 1 << 20;

/// Rereads a restored file, a megabyte at a time, and checks every chunk
/// against its blob ID.
fn verify_file(repo: &Repository, path: &Path, n: &Node, content: &[Id]) -> Result<()> {
    let index = repo.index();
    let failed = |reason: String| Error::VerifyFailed {
        path: path.display().to_string(),
        reason,
    };
    let f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if len != n.size {
        return Err(failed(format!("size {len}, {} expected", n.size)));
    }
    // `buf` holds the file's bytes from offset `at`.
    let (mut buf, mut at) = (Vec::new(), 0u64);
    let mut off = 0u64;
    for id in content {
        let loc = index
            .get(id)
            .ok_or_else(|| failed(format!("blob {id} missing from the index")))?;
        let need = u64::from(loc.entry.raw_length);
        let end = off
            .checked_add(need)
            .filter(|e| *e <= len)
            .ok_or_else(|| failed(format!("content runs past the end at offset {off}")))?;
        if end > at + buf.len() as u64 {
            at = off;
            buf.resize(need.max(VERIFY_READ.min(len - off)) as usize, 0);
            f.read_exact_at(&mut buf, at)
                .map_err(|e| Error::io(path, e))?;
        }
        let from = (off - at) as usize;
        if repo.key().blob_id(&buf[from..from + need as usize]) != *id {
            return Err(failed(format!("content at offset {off} differs")));
        }
        off = end;
    }
    Ok(())
}

/// Writes a file's content to `out`, in order, reading neighbouring blobs
/// together.
pub fn dump_file(repo: &Repository, n: &Node, out: &mut dyn std::io::Write) -> Result<()> {
    if n.kind != NodeKind::File {
        return Err(Error::InvalidArgument(format!(
            "{} is not a regular file",
            n.name_lossy()
        )));
    }
    repo.read_blobs(&repo.file_content(n)?, |b| {
        out.write_all(&b)
            .map_err(|e| Error::io("standard output", e))
    })?;
    out.flush().map_err(|e| Error::io("standard output", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str, size: u64, database: bool) -> FilePlan {
        FilePlan {
            target: PathBuf::from(name),
            node: Node {
                size,
                ..Node::bare(name.as_bytes(), NodeKind::File)
            },
            content: Vec::new(),
            final_path: database.then(|| PathBuf::from(name)),
            check_later: false,
        }
    }

    /// Databases are checked once written while they fit, in plan order,
    /// in half the memory available; other files never are.
    #[test]
    fn id_checks_are_deferred_for_databases_that_fit() {
        let mut files = vec![
            plan("a.db", 300, true),
            plan("big.db", 800, true),
            plan("file", 10, false),
            plan("b.db", 200, true),
            plan("c.db", 1, true),
        ];
        defer_id_checks(&mut files, 1000);
        let later: Vec<bool> = files.iter().map(|f| f.check_later).collect();
        assert_eq!(later, [true, false, false, true, false]);
        defer_id_checks(&mut files[1..2], 0);
        assert!(!files[1].check_later);
        assert!(available_memory() > 0, "no MemAvailable in /proc/meminfo");
    }
}
