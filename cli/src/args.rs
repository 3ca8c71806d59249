//! Command-line syntax. restic's verbs and habits, so operators feel at home.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Deduplicating, encrypted backups of file trees and live SQLite databases"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct Global {
    /// Repository location: a directory, s3:https://HOST/BUCKET/PREFIX,
    /// sftp:USER@HOST:/PATH, sftp://USER@HOST:PORT/PATH or opendal:SERVICE
    #[arg(short = 'r', long = "repo", env = "CAIRN_REPOSITORY", global = true)]
    pub repo: Option<String>,
    /// Storage option KEY=VALUE for a remote repository (repeatable), e.g.
    /// -o region=eu-west-1, -o root=/path with opendal:SERVICE
    #[arg(short = 'o', long = "option", value_name = "KEY=VALUE", global = true)]
    pub option: Vec<String>,
    /// At most N concurrent requests to remote storage (default: 5 for S3,
    /// 2 for SFTP)
    #[arg(long, value_name = "N", global = true, value_parser = clap::value_parser!(u16).range(1..))]
    pub connections: Option<u16>,
    /// Read the repository password from a file
    #[arg(long, env = "CAIRN_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Run a shell command and use its output as the password
    #[arg(long, env = "CAIRN_PASSWORD_COMMAND", global = true)]
    pub password_command: Option<String>,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more detail: -v logs every storage request (operation, path,
    /// bytes, time, outcome) to stderr
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Directory of the local metadata cache
    #[arg(long, env = "CAIRN_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Do not use the local metadata cache
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Wait up to DURATION (e.g. 30s, 5m) for a conflicting lock to go away
    #[arg(long, value_name = "DURATION", global = true)]
    pub retry_lock: Option<String>,
    /// Do not lock the repository (read-only commands on read-only storage)
    #[arg(long, global = true)]
    pub no_lock: bool,
    /// Run in the background: lowest CPU priority (nice 19) and the idle
    /// I/O class, so the machine's applications keep the CPU and disk
    #[arg(
        long,
        env = "CAIRN_LOW_PRIORITY",
        global = true,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub low_priority: bool,
    /// The environment variable holding the password (CAIRN_PASSWORD unless
    /// this describes copy's source repository)
    #[arg(skip)]
    pub password_var: Option<&'static str>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a new repository
    Init(InitArgs),
    /// Back up files and directories into a new snapshot
    Backup(BackupArgs),
    /// List snapshots
    Snapshots(FilterArgs),
    /// List the files in a snapshot
    Ls(LsArgs),
    /// Restore a snapshot, a directory or a file
    Restore(RestoreArgs),
    /// Write one file from a snapshot to standard output
    Dump(DumpArgs),
    /// Print a repository object in readable form
    Cat(CatArgs),
    /// Manage the keys (passwords) of a repository
    #[command(subcommand)]
    Key(KeyCommand),
    /// Check the repository for damage
    Check(CheckArgs),
    /// Remove snapshots by a retention policy, or by ID
    Forget(ForgetArgs),
    /// Remove data that no snapshot references
    Prune(PruneArgs),
    /// Repair a damaged repository
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Find files and directories by name or path across snapshots
    Find(FindArgs),
    /// Show what changed between two snapshots
    Diff(DiffArgs),
    /// Show sizes, deduplication and compression
    Stats(StatsArgs),
    /// Add, remove or set snapshot tags
    Tag(TagArgs),
    /// Copy snapshots from another repository into this one
    Copy(CopyArgs),
    /// Look into a SQLite database in a snapshot without restoring it
    #[command(subcommand)]
    Sqlite(SqliteCommand),
    /// Remove stale locks (or all locks with --remove-all)
    Unlock {
        /// Remove every lock, including those of running processes
        #[arg(long)]
        remove_all: bool,
    },
    /// Print version information
    Version,
}

#[derive(Args)]
pub struct InitArgs {
    /// Argon2id memory for the key, in MiB (at least 8)
    #[arg(long, default_value_t = 64)]
    pub kdf_memory: u32,
    /// Argon2id iterations for the key
    #[arg(long, default_value_t = 3)]
    pub kdf_iterations: u32,
    /// Target pack size in MiB
    #[arg(long, default_value_t = 16)]
    pub pack_size: u64,
    /// zstd compression level (1-22)
    #[arg(long, default_value_t = 3)]
    pub compression: i32,
}

#[derive(Args)]
pub struct BackupArgs {
    /// Files and directories to back up
    pub paths: Vec<PathBuf>,
    /// Exclude paths matching PATTERN (a name, or a path with `/`)
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Like --exclude, ignoring case
    #[arg(long = "iexclude", value_name = "PATTERN")]
    pub iexclude: Vec<String>,
    /// Read exclude patterns from FILE, one a line
    #[arg(long = "exclude-file", value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Like --exclude-file, ignoring case
    #[arg(long = "iexclude-file", value_name = "FILE")]
    pub iexclude_file: Vec<PathBuf>,
    /// Leave out the contents of directories tagged with CACHEDIR.TAG
    #[arg(long)]
    pub exclude_caches: bool,
    /// Do not cross file system boundaries
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Tag the snapshot (repeatable, or comma-separated)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Host name recorded in the snapshot
    #[arg(long, short = 'H')]
    pub host: Option<String>,
    /// Time recorded in the snapshot (RFC 3339 or YYYY-MM-DD HH:MM:SS)
    #[arg(long)]
    pub time: Option<String>,
    /// Snapshot to compare against instead of the latest matching one
    #[arg(long)]
    pub parent: Option<String>,
    /// Reread every file, ignoring the parent snapshot
    #[arg(short, long)]
    pub force: bool,
    /// Do everything but write to the repository
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Back up standard input as one file
    #[arg(long)]
    pub stdin: bool,
    /// File name for --stdin
    #[arg(long, default_value = "stdin")]
    pub stdin_filename: String,
    /// A live SQLite database to capture consistently through SQLite (repeatable)
    #[arg(long = "sqlite", value_name = "DB")]
    pub sqlite: Vec<PathBuf>,
    /// How long to wait for a locked database, e.g. 30s or 2m
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub sqlite_timeout: String,
}

#[derive(Args, Clone, Default)]
pub struct FilterArgs {
    /// Only snapshots of this host (repeatable)
    #[arg(long = "host", short = 'H')]
    pub hosts: Vec<String>,
    /// Only snapshots with these tags (comma-separated: all of them)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only snapshots including this path
    #[arg(long = "path")]
    pub paths: Vec<String>,
}

#[derive(Args)]
pub struct LsArgs {
    /// SNAPSHOT[:PATH]
    pub snapshot: std::ffi::OsString,
    /// Show mode, owner, size and time
    #[arg(short, long)]
    pub long: bool,
    /// Use the newest snapshot at or before TIME when SNAPSHOT is `latest`
    #[arg(long)]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// SNAPSHOT[:PATH]
    pub snapshot: std::ffi::OsString,
    /// Directory to restore into
    #[arg(short, long)]
    pub target: PathBuf,
    /// Restore only paths matching PATTERN (and what lies below them)
    #[arg(short, long = "include", value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Leave out paths matching PATTERN
    #[arg(short, long = "exclude", value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Reread the restored files and compare them with the snapshot
    #[arg(long)]
    pub verify: bool,
    /// Use the newest snapshot at or before TIME when SNAPSHOT is `latest`
    #[arg(long)]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args)]
pub struct DumpArgs {
    /// SNAPSHOT:PATH of a file
    pub snapshot: std::ffi::OsString,
    /// Use the newest snapshot at or before TIME when SNAPSHOT is `latest`
    #[arg(long)]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args)]
pub struct CatArgs {
    /// config | snapshot ID | index ID | key ID | pack ID | blob ID | tree SNAPSHOT[:PATH]
    pub kind: String,
    pub id: Option<String>,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// List the key files
    List,
    /// Add a key for another password
    Add(NewPasswordArgs),
    /// Remove a key file
    Remove {
        /// Key ID or unique prefix
        id: String,
    },
    /// Change the password of the key in use
    Passwd(NewPasswordArgs),
}

#[derive(Args)]
pub struct NewPasswordArgs {
    /// Read the new password from a file
    #[arg(long, env = "CAIRN_NEW_PASSWORD_FILE")]
    pub new_password_file: Option<PathBuf>,
    /// Argon2id memory for the new key, in MiB
    #[arg(long, default_value_t = 64)]
    pub kdf_memory: u32,
    /// Argon2id iterations for the new key
    #[arg(long, default_value_t = 3)]
    pub kdf_iterations: u32,
}

#[derive(Args)]
pub struct CheckArgs {
    /// Read and verify all data
    #[arg(long)]
    pub read_data: bool,
    /// Read a part of the data: n/m (bucket n of m), P% (random share) or a size like 2G
    #[arg(long, value_name = "SUBSET")]
    pub read_data_subset: Option<String>,
}

#[derive(Args)]
pub struct ForgetArgs {
    /// Snapshots to remove (ID, unique prefix or `latest`) instead of a policy
    pub ids: Vec<String>,
    /// Keep the N newest snapshots (-1 or `unlimited`: all)
    #[arg(short = 'l', long, value_name = "N", allow_negative_numbers = true, value_parser = cairn_engine::forget::parse_keep_count)]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N newest hours with snapshots
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = cairn_engine::forget::parse_keep_count)]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest days with snapshots
    #[arg(short = 'd', long, value_name = "N", allow_negative_numbers = true, value_parser = cairn_engine::forget::parse_keep_count)]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the N newest ISO weeks with snapshots
    #[arg(short = 'w', long, value_name = "N", allow_negative_numbers = true, value_parser = cairn_engine::forget::parse_keep_count)]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest months with snapshots
    #[arg(short = 'm', long, value_name = "N", allow_negative_numbers = true, value_parser = cairn_engine::forget::parse_keep_count)]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest years with snapshots
    #[arg(short = 'y', long, value_name = "N", allow_negative_numbers = true, value_parser = cairn_engine::forget::parse_keep_count)]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot within DURATION (e.g. 1y2m3d4h) of the group's newest
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<cairn_engine::forget::KeepDuration>,
    /// Keep hourly snapshots within DURATION of the group's newest
    #[arg(long, value_name = "DURATION")]
    pub keep_within_hourly: Option<cairn_engine::forget::KeepDuration>,
    /// Keep daily snapshots within DURATION of the group's newest
    #[arg(long, value_name = "DURATION")]
    pub keep_within_daily: Option<cairn_engine::forget::KeepDuration>,
    /// Keep weekly snapshots within DURATION of the group's newest
    #[arg(long, value_name = "DURATION")]
    pub keep_within_weekly: Option<cairn_engine::forget::KeepDuration>,
    /// Keep monthly snapshots within DURATION of the group's newest
    #[arg(long, value_name = "DURATION")]
    pub keep_within_monthly: Option<cairn_engine::forget::KeepDuration>,
    /// Keep yearly snapshots within DURATION of the group's newest
    #[arg(long, value_name = "DURATION")]
    pub keep_within_yearly: Option<cairn_engine::forget::KeepDuration>,
    /// Keep snapshots having all these tags (comma-separated; repeatable; '' = untagged)
    #[arg(long = "keep-tag", value_name = "TAGS")]
    pub keep_tag: Vec<String>,
    /// Always keep the N newest snapshots of each group (a floor under the rules)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_min: u32,
    /// Group snapshots by host, paths and/or tags ('' for one group)
    #[arg(short = 'g', long, value_name = "GROUP", default_value = "host,paths")]
    pub group_by: cairn_engine::forget::GroupBy,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Show what would be removed without removing anything
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Run `prune` (with its default options) after removing snapshots
    #[arg(long)]
    pub prune: bool,
}

#[derive(Args, Clone)]
pub struct PruneArgs {
    /// Tolerated unused space in kept packs, e.g. 5% (repack beyond it)
    #[arg(long, default_value = "5%")]
    pub max_unused: String,
    /// Repack at most this much per run, e.g. 2G
    #[arg(long, value_name = "SIZE")]
    pub max_repack_size: Option<String>,
    /// Keep unused packs this long before deleting them (guards concurrent backups)
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub keep_delete: String,
    /// Delete unused packs at once (only when no one else writes to the repository)
    #[arg(long)]
    pub instant_delete: bool,
    /// Show what would be done without changing anything
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index from the packs (adopts packs left by interrupted backups)
    Index {
        /// Read every pack and salvage the intact blobs of damaged packs
        #[arg(long)]
        read_data: bool,
    },
    /// Rewrite snapshots that reference missing data, keeping all that remains
    Snapshots {
        /// Remove the original snapshots after writing the repaired ones
        #[arg(long)]
        forget: bool,
        /// Show what would be done without changing anything
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
}

#[derive(Args)]
pub struct FindArgs {
    /// Glob patterns: a name (`*.odt`) or a path with `/` (`/home/*/notes`)
    #[arg(required = true)]
    pub patterns: Vec<String>,
    /// Ignore case
    #[arg(short, long)]
    pub ignore_case: bool,
    /// Search only these snapshots
    #[arg(short, long = "snapshot")]
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args)]
pub struct DiffArgs {
    pub from: String,
    pub to: String,
}

#[derive(Args)]
pub struct StatsArgs {
    /// Snapshots to count (default: all that match the filter)
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args)]
pub struct TagArgs {
    /// Snapshots to change (default: all that match the filter)
    pub snapshots: Vec<String>,
    /// Tags to add
    #[arg(long = "add")]
    pub add: Vec<String>,
    /// Tags to remove
    #[arg(long = "remove")]
    pub remove: Vec<String>,
    /// Replace the tags with these
    #[arg(long = "set")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Subcommand)]
pub enum SqliteCommand {
    /// List the tables of SNAPSHOT:/path/db with their row counts
    Tables {
        /// SNAPSHOT:PATH of a database
        spec: String,
        /// Use the newest snapshot at or before TIME when SNAPSHOT is `latest`
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Write one table's schema and rows as SQL or CSV
    Export {
        /// SNAPSHOT:PATH of a database
        spec: String,
        /// The table to export
        #[arg(long)]
        table: String,
        /// sql (statements that recreate and fill the table) or csv
        #[arg(long, default_value = "sql")]
        format: String,
        /// Use the newest snapshot at or before TIME when SNAPSHOT is `latest`
        #[arg(long)]
        as_of: Option<String>,
    },
}

#[derive(Args)]
pub struct CopyArgs {
    /// Snapshots to copy (default: all that match the filter)
    pub snapshots: Vec<String>,
    /// The repository to copy from (same forms as -r)
    #[arg(long, env = "CAIRN_FROM_REPOSITORY", value_name = "REPO")]
    pub from_repo: String,
    /// Read the source repository's password from a file
    #[arg(long, env = "CAIRN_FROM_PASSWORD_FILE")]
    pub from_password_file: Option<PathBuf>,
    /// Run a shell command and use its output as the source's password
    #[arg(long, env = "CAIRN_FROM_PASSWORD_COMMAND")]
    pub from_password_command: Option<String>,
    /// Storage option KEY=VALUE for the source repository (repeatable)
    #[arg(long = "from-option", value_name = "KEY=VALUE")]
    pub from_option: Vec<String>,
    /// At most N concurrent requests to the source's storage
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub from_connections: Option<u16>,
    /// Show what would be copied without storing anything
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}
