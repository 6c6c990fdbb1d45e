//! What the launcher tells the user: here, warnings and the progress of a
//! first compile that takes long enough to notice; in `gui`, the dialogs
//! and terminal windows of a launch from the desktop; in `desktop`, the
//! registration with the desktop (file type, menu entries).
pub mod desktop;
pub(crate) mod gui;

use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A compile shorter than this shows nothing: about the point where a user
/// starts to wonder whether the double-click worked.
pub const COMPILE_NOTICE_AFTER: Duration = Duration::from_secs(1);

/// Where the launcher reports while it prepares an app. The terminal gets
/// [`Stderr`]; a desktop front end can show the same in a dialog.
pub trait Ui: Sync {
    /// Something went wrong that the launcher works around (e.g. a damaged
    /// cache entry it rebuilds).
    fn warn(&self, message: &str);
    /// Runs `compile`, telling the user what is going on if it takes longer
    /// than [`COMPILE_NOTICE_AFTER`]; `cached` says whether the result will
    /// be kept for later launches.
    fn compiling(&self, what: &str, module_len: u64, cached: bool, compile: &mut dyn FnMut());
}

/// Reports on stderr: a spinner with the elapsed time on a terminal, two
/// plain lines otherwise (for logs and file-manager launches).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stderr;

impl Ui for Stderr {
    fn warn(&self, message: &str) {
        eprintln!("sealrun: warning: {message}");
    }

    fn compiling(&self, what: &str, module_len: u64, cached: bool, compile: &mut dyn FnMut()) {
        let tty = std::io::stderr().is_terminal();
        report_compile(&mut std::io::stderr(), tty, what, module_len, cached, compile);
    }
}

/// Runs `compile` and, once it has taken [`COMPILE_NOTICE_AFTER`], says so
/// on `out`: as a spinner if `tty`, else as a line, and a closing line with
/// the time taken. A quick compile writes nothing.
pub fn report_compile(
    out: &mut (dyn Write + Send),
    tty: bool,
    what: &str,
    module_len: u64,
    cached: bool,
    compile: &mut dyn FnMut(),
) {
    let started = Instant::now();
    let (done, wait) = mpsc::channel::<()>();
    let message = format!("compiling {what} for this device ({})", human_bytes(module_len));
    let (first, last) = if cached {
        (
            "; this happens once, later launches start from the encrypted cache",
            "; later launches start from the encrypted cache",
        )
    } else {
        (" (the compiled-code cache is off for this launch)", "")
    };
    let shown = std::thread::scope(|s| {
        let out = &mut *out;
        let reporter = s.spawn(move || {
            if wait.recv_timeout(COMPILE_NOTICE_AFTER) != Err(mpsc::RecvTimeoutError::Timeout) {
                return (false, out);
            }
            if !tty {
                let _ = writeln!(out, "sealrun: {message}{first}");
                let _ = wait.recv();
                return (true, out);
            }
            let bar = indicatif::ProgressBar::new_spinner().with_message(message);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            let _ = wait.recv();
            bar.finish_and_clear();
            (true, out)
        });
        compile();
        drop(done);
        reporter.join().ok()
    });
    if let Some((true, out)) = shown {
        let _ = writeln!(out, "sealrun: compiled {what} in {:.1} s{last}", started.elapsed().as_secs_f64());
    }
}

/// A byte count for people, in binary units: "66.1 MiB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_compile_is_announced_and_a_short_one_is_not() {
        let mut out = Vec::new();
        let mut ran = false;
        report_compile(&mut out, false, "Big App", 69_300_000, true, &mut || {
            std::thread::sleep(COMPILE_NOTICE_AFTER + Duration::from_millis(300));
            ran = true;
        });
        assert!(ran);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("sealrun: compiling Big App for this device (66.1 MiB); this happens once"));
        assert!(lines[1].starts_with("sealrun: compiled Big App in 1."), "{text}");

        let mut out = Vec::new();
        report_compile(&mut out, false, "Small App", 1000, true, &mut || {});
        assert!(out.is_empty());

        let mut out = Vec::new();
        report_compile(&mut out, false, "Big App", 1 << 20, false, &mut || {
            std::thread::sleep(COMPILE_NOTICE_AFTER + Duration::from_millis(300));
        });
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("sealrun: compiling Big App for this device (1.0 MiB) (the compiled-code cache is off")
        );
        assert!(!text.contains("later launches"), "{text}");
    }

    #[test]
    fn bytes_for_people() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(69_300_000), "66.1 MiB");
        assert_eq!(human_bytes(2 << 30), "2.0 GiB");
    }
}
