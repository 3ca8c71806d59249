//! Human output helpers: sizes, times, progress bars.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::args::Global;

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

pub fn duration(ns: u64) -> String {
    let d = Duration::from_nanos(ns);
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.2}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// Whether progress bars should be drawn.
pub fn show_progress(g: &Global) -> bool {
    !g.json && !g.quiet && std::io::stderr().is_terminal()
}

/// A byte-counting progress bar, hidden when not on a terminal.
pub fn byte_bar(g: &Global, total: Option<u64>, what: &str) -> ProgressBar {
    if !show_progress(g) {
        return ProgressBar::hidden();
    }
    let pb = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::new_spinner(),
    };
    let tmpl = if total.is_some() {
        format!("{what} [{{elapsed_precise}}] {{wide_bar}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} {{msg}}")
    } else {
        format!("{what} [{{elapsed_precise}}] {{bytes}} {{bytes_per_sec}} {{msg}}")
    };
    if let Ok(s) = ProgressStyle::with_template(&tmpl) {
        pb.set_style(s);
    }
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// A path for messages: lossy UTF-8.
pub fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
