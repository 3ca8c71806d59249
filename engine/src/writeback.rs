//! Background write-back of files that will be synced when complete.
//!
//! A restored database is synced before it is renamed into place. Left to
//! the kernel, none of its pages reach the disk before that sync (a few
//! hundred MiB stay under the dirty-page thresholds), so the sync then
//! writes the whole file while the restore waits. A thread that asks the
//! kernel every few tens of milliseconds to start writing what is dirty
//! lets the disk work while the pack workers decrypt, and leaves the final
//! sync little to do. The thread is the one that blocks when the disk's
//! queue is full; the workers never do (asking from the workers themselves
//! stalled them in that queue).

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often dirty pages are handed to the disk.
const INTERVAL: Duration = Duration::from_millis(50);

/// Starts write-back of a set of files until dropped.
pub struct WriteBack {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl WriteBack {
    /// Starts the thread for the files that can be opened; with none, no
    /// thread. Write-back is only a head start for the final sync, which
    /// alone makes the files durable, so errors here are ignored.
    pub fn start<'a>(paths: impl IntoIterator<Item = &'a Path>) -> WriteBack {
        let files: Vec<File> = paths
            .into_iter()
            .filter_map(|p| File::open(p).ok())
            .collect();
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = if files.is_empty() {
            None
        } else {
            let s = stop.clone();
            std::thread::Builder::new()
                .name("cairn-writeback".into())
                .spawn(move || run(&files, &s))
                .ok()
        };
        WriteBack { stop, thread }
    }
}

fn run(files: &[File], stop: &(Mutex<bool>, Condvar)) {
    let (lock, wake) = stop;
    let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let (s, _) = wake
            .wait_timeout_while(stopped, INTERVAL, |s| !*s)
            .unwrap_or_else(|e| e.into_inner());
        stopped = s;
        if *stopped {
            return;
        }
        drop(stopped);
        for f in files {
            start_writing(f);
        }
        stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
    }
}

/// Asks the kernel to start writing the file's dirty pages, without
/// waiting for them to reach the disk.
fn start_writing(f: &File) {
    use std::os::fd::AsRawFd;
    // Safety: `f` is an open descriptor for the whole call; the call only
    // schedules I/O and touches no memory of ours.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

impl Drop for WriteBack {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn starts_and_stops_with_and_without_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let mut f = File::create(&p).unwrap();
        f.write_all(&vec![7u8; 1 << 20]).unwrap();
        let wb = WriteBack::start([p.as_path()]);
        assert!(wb.thread.is_some());
        std::thread::sleep(INTERVAL * 3);
        // Dropping stops the thread at once, not after its interval.
        let t = std::time::Instant::now();
        drop(wb);
        assert!(t.elapsed() < INTERVAL * 20);
        assert_eq!(std::fs::read(&p).unwrap(), vec![7u8; 1 << 20]);
        // A missing file is skipped: no thread, and dropping returns.
        let none = WriteBack::start([d.path().join("missing").as_path()]);
        assert!(none.thread.is_none());
    }
}
