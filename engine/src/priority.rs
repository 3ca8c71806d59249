//! Running in the background. A backup of a live machine competes with the
//! applications it protects (a database taking writes, a web server); run
//! at low priority, it takes the CPU and the disk only when they are not
//! wanted, and costs them nothing when the machine is otherwise idle.

/// Lowest CPU priority: the `nice` value given to a background run.
pub const NICE: i32 = 19;

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
