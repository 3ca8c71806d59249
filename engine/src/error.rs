//! The engine's one error type.
//!
//! Every failure an operator can meet maps to a kind with a message that
//! names what failed and where, so that the CLI can print a single line and
//! pick a documented exit code without inspecting strings.

use std::path::PathBuf;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error the engine reports. Messages are one line, name the object
/// (file, path, snapshot) involved, and say what to do where there is
/// something to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no repository at {0} (run `cairn init` to create one)")]
    NoRepository(String),
    #[error("a repository already exists at {0}")]
    RepositoryExists(String),
    #[error("{0} is not a directory and cannot hold a repository")]
    NotADirectory(String),
    #[error("wrong password: no key in {0} opens with it")]
    WrongPassword(String),
    #[error("{path}: corrupt or tampered data: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("{path}: exceeds the format limit for {what} ({size} > {limit} bytes)")]
    Limit {
        path: String,
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("storage {op} of {path} failed: {reason}")]
    Backend {
        op: &'static str,
        path: String,
        reason: String,
        /// True when the object does not exist.
        not_found: bool,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no snapshot matches {0}")]
    SnapshotNotFound(String),
    #[error("snapshot prefix {0} is ambiguous: use more characters")]
    AmbiguousSnapshot(String),
    #[error("{0}: no such path in the snapshot")]
    PathNotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("repository is locked: {0}")]
    Locked(String),
    #[error("interrupted")]
    Interrupted,
    #[error("SQLite database {path}: {reason}")]
    Sqlite { path: String, reason: String },
    #[error("{path}: restored data does not match the snapshot: {reason}")]
    VerifyFailed { path: String, reason: String },
}

/// Coarse classes of [`Error`], so callers can choose exit codes and
/// retry policies without matching every variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NoRepository,
    WrongPassword,
    Locked,
    Interrupted,
    Other,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoRepository(_) | Error::NotADirectory(_) => ErrorKind::NoRepository,
            Error::WrongPassword(_) => ErrorKind::WrongPassword,
            Error::Locked(_) => ErrorKind::Locked,
            Error::Interrupted => ErrorKind::Interrupted,
            _ => ErrorKind::Other,
        }
    }

    pub(crate) fn corrupt(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True when a storage read failed because the object is absent.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::Backend {
                not_found: true,
                ..
            }
        )
    }
}

/// Errors are cloned where one failure must be reported to several
/// callers (every worker feeding a stopped uploader), so that each sees
/// the cause rather than a secondary "stopped" message. An I/O error is
/// rebuilt from its kind and message, which is all a report uses.
impl Clone for Error {
    fn clone(&self) -> Self {
        match self {
            Error::NoRepository(s) => Error::NoRepository(s.clone()),
            Error::RepositoryExists(s) => Error::RepositoryExists(s.clone()),
            Error::NotADirectory(s) => Error::NotADirectory(s.clone()),
            Error::WrongPassword(s) => Error::WrongPassword(s.clone()),
            Error::Corrupt { path, reason } => Error::Corrupt {
                path: path.clone(),
                reason: reason.clone(),
            },
            Error::Limit {
                path,
                what,
                size,
                limit,
            } => Error::Limit {
                path: path.clone(),
                what,
                size: *size,
                limit: *limit,
            },
            Error::Backend {
                op,
                path,
                reason,
                not_found,
            } => Error::Backend {
                op,
                path: path.clone(),
                reason: reason.clone(),
                not_found: *not_found,
            },
            Error::Io { path, source } => Error::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::SnapshotNotFound(s) => Error::SnapshotNotFound(s.clone()),
            Error::AmbiguousSnapshot(s) => Error::AmbiguousSnapshot(s.clone()),
            Error::PathNotFound(s) => Error::PathNotFound(s.clone()),
            Error::InvalidArgument(s) => Error::InvalidArgument(s.clone()),
            Error::Locked(s) => Error::Locked(s.clone()),
            Error::Interrupted => Error::Interrupted,
            Error::Sqlite { path, reason } => Error::Sqlite {
                path: path.clone(),
                reason: reason.clone(),
            },
            Error::VerifyFailed { path, reason } => Error::VerifyFailed {
                path: path.clone(),
                reason: reason.clone(),
            },
        }
    }
}
