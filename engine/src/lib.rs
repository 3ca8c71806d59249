//! cairn's engine: a content-addressed, deduplicating, encrypted backup
//! repository and the operations on it. The engine prints nothing and
//! never exits the process; the `cairn` binary is a thin layer over it.
//!
//! The modules follow the repository's domains: `format`, `crypto`,
//! `compress` and `limits` define bytes; `pack`, `repofile` and `index` the
//! stored objects; `backend` the storage; `repository` ties them together;
//! `archiver`, `restorer`, `copier` and `selector` are the commands' logic.

pub mod archiver;
pub mod backend;
pub mod browse;
pub mod checker;
pub mod chunker;
pub mod compress;
pub mod copier;
pub mod crypto;
pub mod error;
pub mod excludes;
pub mod forget;
pub mod format;
pub mod fsmeta;
pub mod host;
pub mod id;
pub mod index;
pub mod limits;
pub mod lock;
pub mod pack;
pub mod packer;
pub mod priority;
pub mod prune;
pub mod repair;
pub mod repofile;
pub mod repository;
pub mod restorer;
pub mod selector;
pub mod sqlite;
pub mod units;
pub mod writeback;

pub use error::{Error, ErrorKind, Result};
pub use id::Id;
pub use repository::Repository;
