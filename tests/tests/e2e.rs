//! End-to-end tests of the `cairn` binary: real file trees in temporary
//! directories, real repositories, real restores compared with rsync.
//!
//! The tests run the workspace's `target/<profile>/cairn`, building it once
//! first (see `common::cairn_bin`). They expect to run as root (devices,
//! owners, setuid bits) with rsync installed; setfacl and setpriv are used
//! when present. Each test has its own temporary directory and repository,
//! so they run in parallel.

#[path = "e2e/common.rs"]
mod common;

#[path = "e2e/cli.rs"]
mod cli;
#[path = "e2e/copy.rs"]
mod copy;
#[path = "e2e/crash.rs"]
mod crash;
#[path = "e2e/dedup.rs"]
mod dedup;
#[path = "e2e/errors.rs"]
mod errors;
#[path = "e2e/fidelity.rs"]
mod fidelity;
#[path = "e2e/hostile.rs"]
mod hostile;
#[path = "e2e/json.rs"]
mod json;
#[path = "e2e/partial.rs"]
mod partial;
#[path = "e2e/remote.rs"]
mod remote;
#[path = "e2e/repair.rs"]
mod repair;
#[path = "e2e/sqlite.rs"]
mod sqlite;
