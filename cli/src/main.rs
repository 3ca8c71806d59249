//! The `cairn` binary: parses arguments, runs one engine operation, prints
//! its result as text or JSON, and exits with a documented code.

mod args;
mod commands;
mod context;
mod interrupt;
mod output;

use clap::Parser;

use cairn_engine::{Error, ErrorKind};

/// Exit codes (README, "Exit codes").
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const PARTIAL: i32 = 3;
    pub const NO_REPOSITORY: i32 = 10;
    pub const LOCKED: i32 = 11;
    pub const WRONG_PASSWORD: i32 = 12;
    pub const INTERRUPTED: i32 = 130;
}

fn exit_code(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<Error>().map(Error::kind) {
        Some(ErrorKind::NoRepository) => exit::NO_REPOSITORY,
        Some(ErrorKind::WrongPassword) => exit::WRONG_PASSWORD,
        Some(ErrorKind::Locked) => exit::LOCKED,
        Some(ErrorKind::Interrupted) => exit::INTERRUPTED,
        _ => exit::ERROR,
    }
}

/// Serves buffers of 4 MiB and more (pack buffers, chunking windows, the
/// key derivation's memory) straight from the kernel and returns them on
/// free. glibc's default raises this threshold after the first such free
/// and then keeps large freed buffers in per-thread arenas, which on a
/// backup adds some 50 MiB of peak memory for no speed gained.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // Safety: mallopt only changes allocator parameters; called at
    // startup, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

fn main() {
    let cli = args::Cli::parse();
    // Like other Unix tools, end quietly when a reader such as `head`
    // closes the pipe.
    // Safety: resetting a signal disposition at startup, before threads.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tune_allocator();
    // Before any worker thread is started, so that all of them inherit it.
    set_priority(&cli);
    interrupt::install();
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cairn: {}", one_line(&e));
            exit_code(&e)
        }
    };
    std::process::exit(code);
}

/// Lowers this process's priority where it should yield to the machine's
/// applications: everywhere with `--low-priority`; and for a backup that
/// captures live databases all in WAL mode, to the capture's priority from
/// the start, so that its key derivation and index loading, too, give way
/// to the application writing the database (a WAL capture blocks no
/// writer, so running longer costs the application nothing). A backup
/// naming a database in rollback-journal mode keeps normal priority: its
/// writers wait for the capture's lock.
fn set_priority(cli: &args::Cli) {
    use cairn_engine::priority;
    let result = if cli.global.low_priority {
        priority::lower()
    } else {
        match &cli.command {
            args::Command::Backup(b)
                if !b.sqlite.is_empty()
                    && b.sqlite.iter().all(|p| cairn_engine::sqlite::is_wal(p)) =>
            {
                priority::lower_this_thread(priority::CAPTURE_NICE)
            }
            _ => Ok(()),
        }
    };
    if let Err(e) = result {
        eprintln!("cairn: warning: cannot lower priority, running at normal priority: {e}");
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}
