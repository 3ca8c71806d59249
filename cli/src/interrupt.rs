//! SIGINT and SIGTERM set a flag that long operations poll, so that they
//! stop at a consistent point, index what they stored and exit with 130.
//! A second signal ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // Second signal: leave now. _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

pub fn install() {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        // Safety: the handler only touches an atomic and calls _exit.
        unsafe {
            let _ = signal::sigaction(s, &action);
        }
    }
}

pub fn flag() -> &'static AtomicBool {
    &INTERRUPTED
}
