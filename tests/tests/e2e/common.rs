//! Helpers shared by the end-to-end tests: finding (and building) the
//! `cairn` binary, a per-test fixture with its own temporary directory and
//! repository, running commands, and building file trees.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use filetime::FileTime;
use serde_json::Value;

pub const PASSWORD: &str = "correct horse battery staple";
pub const MIB: usize = 1 << 20;

/// Environment variables cairn reads; removed from every command so that
/// the caller's environment cannot leak into a test.
const CAIRN_VARS: &[&str] = &[
    "CAIRN_REPOSITORY",
    "CAIRN_PASSWORD",
    "CAIRN_PASSWORD_FILE",
    "CAIRN_PASSWORD_COMMAND",
    "CAIRN_NEW_PASSWORD_FILE",
    "CAIRN_CACHE_DIR",
    "CAIRN_LOW_PRIORITY",
    "CAIRN_FROM_REPOSITORY",
    "CAIRN_FROM_PASSWORD",
    "CAIRN_FROM_PASSWORD_FILE",
    "CAIRN_FROM_PASSWORD_COMMAND",
];

/// The `cairn` binary of this workspace, built on first use.
///
/// The test executable lives in `<target>/<profile>/deps/`; the binary is
/// `<target>/<profile>/cairn`. `cargo test` does not build a package's
/// binary unless that package has integration tests, so the first call runs
/// `cargo build -p cairn` with the same profile and target directory (a
/// no-op taking a fraction of a second when it is up to date). If that build
/// fails (say, someone is mid-edit) an existing binary is used with a
/// warning. `CAIRN_E2E_BIN` overrides all of this.
pub fn cairn_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(find_or_build)
}

fn find_or_build() -> PathBuf {
    if let Some(p) = std::env::var_os("CAIRN_E2E_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("path of the test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable is not in <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("target directory");
    let bin = profile_dir.join("cairn");
    let profile = profile_dir
        .file_name()
        .and_then(OsStr::to_str)
        .expect("profile directory name");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--quiet", "-p", "cairn"])
        .env("CARGO_TARGET_DIR", target_dir)
        .stdin(Stdio::null());
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        other => {
            assert!(
                bin.is_file(),
                "`cargo build -p cairn` failed ({other:?}) and there is no {}",
                bin.display()
            );
            eprintln!(
                "warning: `cargo build -p cairn` failed ({other:?}); testing the existing {}",
                bin.display()
            );
        }
    }
    assert!(bin.is_file(), "no cairn binary at {}", bin.display());
    bin
}

/// The outcome of one command.
pub struct Run {
    pub cmdline: String,
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Panics unless the exit code is `code`.
    pub fn code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            code,
            "`{}` exited with {} instead of {code}\nstdout: {}\nstderr: {}",
            self.cmdline,
            self.code,
            self.stdout_str(),
            self.stderr
        );
        self.no_panic()
    }

    pub fn no_panic(&self) -> &Run {
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "`{}` panicked: {}",
            self.cmdline,
            self.stderr
        );
        self
    }

    /// The stderr line starting with `cairn: `, asserting there is exactly
    /// one such line.
    pub fn error_line(&self) -> String {
        self.no_panic();
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("cairn: "))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "`{}`: expected exactly one `cairn: ` line on stderr, got: {:?}",
            self.cmdline,
            self.stderr
        );
        lines[0].to_string()
    }

    /// Asserts that the command failed with `code` and that stderr is
    /// exactly one line starting with `cairn: `; returns that line.
    pub fn fails(&self, code: i32) -> String {
        self.code(code);
        let all: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            all.len(),
            1,
            "`{}`: expected one line on stderr, got: {:?}",
            self.cmdline,
            self.stderr
        );
        self.error_line()
    }

    /// Stdout parsed as one JSON value.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`{}`: stdout is not JSON ({e}): {:?}",
                self.cmdline,
                self.stdout_str()
            )
        })
    }

    /// Stdout parsed as JSON lines.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout_str()
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("`{}`: line is not JSON ({e}): {l:?}", self.cmdline))
            })
            .collect()
    }
}

/// Runs a prepared command, capturing everything.
pub fn run_command(mut cmd: Command) -> Run {
    let cmdline = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmdline}: {e}"));
    Run {
        cmdline,
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Waits for a spawned command whose pipes the test drove itself.
pub fn wait_run(child: std::process::Child, cmdline: &str) -> Run {
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {cmdline}: {e}"));
    Run {
        cmdline: cmdline.into(),
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A temporary directory holding a repository (and whatever a test puts
/// beside it), with the password every command gets.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub password: String,
}

impl Fixture {
    /// A fixture with an initialised repository.
    pub fn new() -> Fixture {
        let f = Fixture::uninit();
        f.init();
        f
    }

    /// A fixture whose repository does not exist yet.
    pub fn uninit() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("cairn-e2e-")
            .tempdir()
            .expect("temporary directory");
        let repo = dir.path().join("repo");
        Fixture {
            dir,
            repo,
            password: PASSWORD.to_string(),
        }
    }

    pub fn init(&self) {
        self.ok(["init", "--kdf-memory", "8", "--kdf-iterations", "1"]);
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A `cairn` command for this repository and password (neither from
    /// the process environment).
    pub fn command(&self) -> Command {
        self.command_with_password(&self.password)
    }

    pub fn command_with_password(&self, password: &str) -> Command {
        let mut c = bare_command();
        c.arg("-r").arg(&self.repo).env("CAIRN_PASSWORD", password);
        c
    }

    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.command();
        c.args(args);
        run_command(c)
    }

    /// Runs and asserts exit code 0.
    pub fn ok<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let r = self.run(args);
        r.code(0);
        r
    }

    /// `backup --json ARGS...`, asserting success; the summary object.
    pub fn backup<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.command();
        c.args(["backup", "--json"]).args(args);
        let r = run_command(c);
        r.code(0);
        let v = r.json();
        assert_eq!(v["message_type"], "summary", "{v}");
        v
    }

    /// Every snapshot, from `snapshots --json`.
    pub fn all_snapshots(&self) -> Vec<Value> {
        self.snapshots(std::iter::empty::<&str>())
    }

    /// `snapshots --json ARGS...`.
    pub fn snapshots<I, S>(&self, args: I) -> Vec<Value>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.command();
        c.args(["snapshots", "--json"]).args(args);
        let r = run_command(c);
        r.code(0);
        match r.json() {
            Value::Array(a) => a,
            v => panic!("snapshots --json is not an array: {v}"),
        }
    }
}

/// `cairn` with a clean environment and no repository or password.
pub fn bare_command() -> Command {
    let mut c = Command::new(cairn_bin());
    clean_env(&mut c);
    c.stdin(Stdio::null());
    c
}

/// Removes cairn's variables from a command's environment.
pub fn clean_env(c: &mut Command) {
    for v in CAIRN_VARS {
        c.env_remove(v);
    }
}

/// `SNAP:PATH` for an absolute path (which may not be UTF-8).
pub fn spec(snap: &str, path: &Path) -> OsString {
    let mut s = OsString::from(snap);
    s.push(":");
    s.push(path.as_os_str());
    s
}

/// A snapshot ID out of a backup summary.
pub fn snap_id(summary: &Value) -> String {
    summary["snapshot_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no snapshot_id in {summary}"))
        .to_string()
}

/// A counter out of a backup summary.
pub fn stat(summary: &Value, name: &str) -> u64 {
    summary["summary"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no summary.{name} in {summary}"))
}

/// Where a whole-snapshot restore into `target` puts absolute `path`.
pub fn under(target: &Path, path: &Path) -> PathBuf {
    target.join(path.strip_prefix("/").expect("absolute path"))
}

/// Deterministic pseudo-random bytes (xorshift64*), so runs are
/// reproducible.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn write(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

pub fn cstring(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

pub fn mkfifo(p: &Path) {
    let c = cstring(p);
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o640) };
    assert_eq!(r, 0, "mkfifo {}", p.display());
}

pub fn mknod_char(p: &Path, major: u32, minor: u32) {
    let c = cstring(p);
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe {
        libc::mknod(
            c.as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(major, minor),
        )
    };
    assert_eq!(r, 0, "mknod {}", p.display());
}

pub fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// Every entry below `root` (not following symlinks), by path relative to
/// `root`; `root` itself is "".
pub fn walk(root: &Path) -> BTreeMap<PathBuf, fs::Metadata> {
    fn go(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, fs::Metadata>) {
        let full = root.join(rel);
        let m =
            fs::symlink_metadata(&full).unwrap_or_else(|e| panic!("lstat {}: {e}", full.display()));
        let is_dir = m.is_dir();
        out.insert(rel.to_path_buf(), m);
        if is_dir {
            for e in fs::read_dir(&full).unwrap() {
                let e = e.unwrap();
                go(root, &rel.join(e.file_name()), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    go(root, Path::new(""), &mut out);
    out
}

/// The regular-file paths below `root`, relative, as sorted strings.
pub fn file_list(root: &Path) -> Vec<String> {
    walk(root)
        .into_iter()
        .filter(|(_, m)| m.is_file())
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect()
}

/// Total size of the files below `dir` in a repository.
pub fn dir_bytes(dir: &Path) -> u64 {
    walk(dir)
        .values()
        .filter(|m| m.is_file())
        .map(MetadataExt::size)
        .sum()
}

/// Number of files below `dir`.
pub fn dir_files(dir: &Path) -> usize {
    walk(dir).values().filter(|m| m.is_file()).count()
}

/// The files below `dir`, largest first.
pub fn files_by_size(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut v: Vec<(PathBuf, u64)> = walk(dir)
        .into_iter()
        .filter(|(_, m)| m.is_file())
        .map(|(p, m)| (dir.join(p), m.size()))
        .collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    v
}

/// Whether an external program is on the PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program} >/dev/null 2>&1"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Files of every common kind and size, owners, modes, xattrs and times.
pub fn build_tree(src: &Path, big: usize) {
    fs::create_dir_all(src).unwrap();
    write(&src.join("empty"), b"");
    write(&src.join("big.bin"), &pseudo_random(7, big));
    write(&src.join("medium.bin"), &pseudo_random(8, 3 * MIB + 17));
    for i in 0..150u64 {
        let len = (i as usize * 997) % 20_000;
        write(
            &src.join(format!("many/d{}/f{i:03}.txt", i % 7)),
            &pseudo_random(100 + i, len),
        );
    }
    write(&src.join("dup-a"), &pseudo_random(9, 200_000));
    write(&src.join("dup-b"), &pseudo_random(9, 200_000));
    write(&src.join(OsStr::from_bytes(b"non-utf8-\xff")), b"bytes");
    write(&src.join("ünïcødé ✓"), b"unicode");
    write(&src.join("links/a"), b"hardlinked");
    fs::hard_link(src.join("links/a"), src.join("links/b")).unwrap();
    std::os::unix::fs::symlink("links/a", src.join("symlink")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", src.join("dangling")).unwrap();
    mkfifo(&src.join("fifo"));
    write(&src.join("xattrs"), b"has xattrs");
    xattr::set(src.join("xattrs"), "user.comment", b"hello").unwrap();
    write(&src.join("owned"), b"owned");
    std::os::unix::fs::chown(src.join("owned"), Some(1234), Some(5678)).unwrap();
    write(&src.join("private"), b"0600");
    chmod(&src.join("private"), 0o600);
    fs::create_dir_all(src.join("empty-dir")).unwrap();
    let t = FileTime::from_unix_time(1_600_000_000, 123_456_789);
    filetime::set_file_times(src.join("medium.bin"), t, t).unwrap();
    filetime::set_symlink_file_times(src.join("symlink"), t, t).unwrap();
    filetime::set_file_times(src.join("empty-dir"), t, t).unwrap();
}

/// `rsync -aHAXn --checksum` finds no difference between the trees.
pub fn assert_same_tree(src: &Path, restored: &Path) {
    let mut s = src.as_os_str().to_owned();
    s.push("/");
    let mut d = restored.as_os_str().to_owned();
    d.push("/");
    let out = Command::new("rsync")
        .args(["-aHAXn", "--checksum", "--itemize-changes", "--delete"])
        .arg(&s)
        .arg(&d)
        .output()
        .expect("rsync is required by the end-to-end tests");
    assert!(
        out.status.success(),
        "rsync failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "restored tree {} differs from {}",
        restored.display(),
        src.display()
    );
}

/// Runs `c` with its output discarded, killing it with SIGKILL after
/// `delay` unless it ended first. True when it was killed.
pub fn kill_after(mut c: Command, delay: std::time::Duration) -> bool {
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().expect("spawn cairn");
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return false;
        }
        if start.elapsed() >= delay {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// A tmpfs of `size` (as mount takes it: "8m") mounted for the duration
/// of a test; `None` where mounting is not allowed.
pub struct Mount(PathBuf);

impl Mount {
    pub fn tmpfs(at: &Path, size: &str) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "cairn-e2e"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .ok()?;
        st.success().then(|| Mount(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
