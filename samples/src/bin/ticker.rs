//! `ticker`: a long-running app with visible progress, for pausing and
//! resuming a run (dongle removal) and for run-count limits.
//!
//! Usage: `ticker [N [MS]]` (defaults: N = 10, MS = 100).
//!
//! Prints `tick 0` … `tick N-1`, one line every MS milliseconds (flushed at
//! once), then `done N`. Sleeping goes through WASI's clock, so a paused run
//! shows as a gap in the ticks and nothing lost.
//!
//! Host tests check: the exact output for given N and MS, sealed and plain.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(10);
    let ms: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let mut out = std::io::stdout().lock();
    for i in 0..n {
        if writeln!(out, "tick {i}").and_then(|()| out.flush()).is_err() {
            return ExitCode::from(1);
        }
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    let _ = writeln!(out, "done {n}");
    ExitCode::SUCCESS
}
