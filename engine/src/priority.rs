//! Running in the background. A backup of a live machine competes with the
//! applications it protects (a database taking writes, a web server); run
//! at low priority, it takes the CPU and the disk only when they are not
//! wanted, and costs them nothing when the machine is otherwise idle.

/// Lowest CPU priority: the `nice` value given to a background run.
pub const NICE: i32 = 19;

/// CPU priority of a database capture that blocks no writer (WAL mode):
/// when it and the application compete for a core, the application gets
/// about nine tenths of it; on an idle core the capture runs at full speed.
pub const CAPTURE_NICE: i32 = 10;

/// Linux's idle I/O scheduling class (`ioprio_set(2)`): disk time only when
/// no other process wants it, where the disk's scheduler honours classes
/// (BFQ); others ignore it.
#[cfg(target_os = "linux")]
pub const IOPRIO_CLASS_IDLE: i32 = 3;

#[cfg(target_os = "linux")]
const IOPRIO_CLASS_SHIFT: i32 = 13;
#[cfg(target_os = "linux")]
const IOPRIO_WHO_PROCESS: i32 = 1;

/// Moves the calling thread to the lowest CPU priority and, on Linux, to
/// the idle I/O class. Both are per thread and inherited by the threads it
/// creates afterwards, so this must run before any worker thread exists.
/// Lowering one's own priority needs no privilege; an error means the
/// system refused it and the run can go on at normal priority.
pub fn lower() -> std::io::Result<()> {
    // Safety: plain system calls on the calling thread with constant
    // arguments.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[cfg(target_os = "linux")]
    {
        let prio = IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT;
        // Safety: as above.
        let r = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Lowers the calling thread alone to `nice` (never raises it: a thread
/// already at a lower priority, as under `--low-priority`, stays there).
/// Linux keeps a priority per thread; elsewhere this would change the whole
/// process, so it does nothing. The thread keeps the priority until it
/// exits: an unprivileged thread cannot raise it again.
pub fn lower_this_thread(nice: i32) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // On Linux a `who` of 0 is the calling thread, as in `lower`.
        // -1 is also a valid priority; an error is told by errno alone.
        // Safety: plain system calls on the calling thread with constant
        // arguments.
        let now = unsafe {
            *libc::__errno_location() = 0;
            libc::getpriority(libc::PRIO_PROCESS, 0)
        };
        if now == -1 && std::io::Error::last_os_error().raw_os_error() != Some(0) {
            return Err(std::io::Error::last_os_error());
        }
        if now >= nice {
            return Ok(());
        }
        // Safety: as above.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn nice_of_this_thread() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Field 19, counted after the parenthesised command name.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(16).unwrap().parse().unwrap()
    }

    /// Only the calling thread is lowered, and never raised back.
    #[test]
    fn lowers_only_the_calling_thread() {
        let main_before = nice_of_this_thread();
        let (lowered, again) = std::thread::spawn(|| {
            lower_this_thread(CAPTURE_NICE).unwrap();
            let lowered = nice_of_this_thread();
            lower_this_thread(CAPTURE_NICE - 5).unwrap();
            (lowered, nice_of_this_thread())
        })
        .join()
        .unwrap();
        assert_eq!(lowered, CAPTURE_NICE.max(main_before));
        assert_eq!(again, lowered, "a lower priority is kept");
        assert_eq!(
            nice_of_this_thread(),
            main_before,
            "other threads unchanged"
        );
    }
}
