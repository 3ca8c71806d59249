//! Facts about the machine and its users, recorded in snapshots, key files
//! and tree nodes.

use std::collections::HashMap;
use std::sync::Mutex;

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

pub fn uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

pub fn gid() -> u32 {
    nix::unistd::getgid().as_raw()
}

pub fn username() -> String {
    user_name(uid()).unwrap_or_else(|| uid().to_string())
}

pub fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

pub fn group_name(gid: u32) -> Option<String> {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
}

/// Memoises uid/gid to name look-ups, which otherwise read /etc/passwd
/// once per file.
#[derive(Default)]
pub struct NameCache {
    users: Mutex<HashMap<u32, Option<String>>>,
    groups: Mutex<HashMap<u32, Option<String>>>,
}

impl NameCache {
    pub fn user(&self, uid: u32) -> Option<String> {
        let mut m = self.users.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(uid).or_insert_with(|| user_name(uid)).clone()
    }

    pub fn group(&self, gid: u32) -> Option<String> {
        let mut m = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(gid).or_insert_with(|| group_name(gid)).clone()
    }
}
