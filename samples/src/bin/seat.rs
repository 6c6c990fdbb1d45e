//! `seat`: proves when it ran, for floating-license tests: the guests
//! themselves record that no more than N ran at once.
//!
//! Usage: `seat FILE MS`.
//!
//! Writes `start <unix-nanos>` to FILE (in a granted directory), works for
//! MS milliseconds (sleeping through WASI's clock), then appends
//! `end <unix-nanos>` and prints `seat done`.
//!
//! Host tests check: the file holds a start and an end at least MS apart.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(path), Some(ms)) = (args.first(), args.get(1).and_then(|m| m.parse::<u64>().ok())) else {
        eprintln!("usage: seat FILE MS");
        return ExitCode::from(2);
    };
    let mut f = match std::fs::File::create(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("seat: cannot create {path}: {e}");
            return ExitCode::from(1);
        }
    };
    if writeln!(f, "start {}", nanos()).and_then(|()| f.sync_all()).is_err() {
        return ExitCode::from(1);
    }
    std::thread::sleep(Duration::from_millis(ms));
    if writeln!(f, "end {}", nanos()).and_then(|()| f.sync_all()).is_err() {
        return ExitCode::from(1);
    }
    println!("seat done");
    ExitCode::SUCCESS
}
