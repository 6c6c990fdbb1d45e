//! `wordfreq`: a small real-world tool exercising directory listing, file
//! reads and file writes through preopened directories.
//!
//! Usage: `wordfreq INPUT_DIR OUTPUT_FILE [--top N]`
//!
//! Reads every regular file directly in INPUT_DIR (non-recursive, sorted by
//! name), splits the text into words (runs of Unicode alphanumeric
//! characters, lowercased), counts them and writes the top N (default 20)
//! to OUTPUT_FILE as `COUNT\tWORD` lines, sorted by count descending then
//! word ascending. Prints `files=F words=W distinct=D` to stdout.
//! Non-UTF-8 bytes are decoded lossily.
//!
//! Exit codes: 0 success, 2 bad usage (message on stderr), 1 I/O error
//! (message on stderr naming the path).
//!
//! Host tests check: output file content and summary line for a known input
//! set, that an input dir mapped read-only plus a writable output dir works,
//! and that missing grants produce exit 1 with the path in the message.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: wordfreq INPUT_DIR OUTPUT_FILE [--top N]";

struct Args {
    input: PathBuf,
    output: PathBuf,
    top: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut top = 20usize;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "--top" {
            let v = it.next().ok_or("--top needs a value")?;
            top = v
                .parse()
                .map_err(|_| format!("invalid --top value: {v:?}"))?;
        } else if let Some(v) = arg.strip_prefix("--top=") {
            top = v
                .parse()
                .map_err(|_| format!("invalid --top value: {v:?}"))?;
        } else if arg.starts_with("--") {
            return Err(format!("unknown option: {arg}"));
        } else {
            positional.push(arg);
        }
    }
    if positional.len() != 2 {
        return Err(format!(
            "expected 2 positional arguments, got {}",
            positional.len()
        ));
    }
    let output = PathBuf::from(positional.pop().unwrap());
    let input = PathBuf::from(positional.pop().unwrap());
    Ok(Args { input, output, top })
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> String {
    format!("wordfreq: {what} {}: {e}", path.display())
}

fn run(args: &Args) -> Result<String, String> {
    let entries =
        std::fs::read_dir(&args.input).map_err(|e| io_err(&args.input, "cannot read directory", e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err(&args.input, "cannot read directory", e))?;
        let path = entry.path();
        let ft = entry
            .file_type()
            .map_err(|e| io_err(&path, "cannot stat", e))?;
        if ft.is_file() {
            files.push(path);
        }
    }
    files.sort();

    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut total = 0u64;
    for path in &files {
        let bytes = std::fs::read(path).map_err(|e| io_err(path, "cannot read", e))?;
        let text = String::from_utf8_lossy(&bytes);
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            total += 1;
            *counts.entry(word.to_lowercase()).or_insert(0) += 1;
        }
    }

    let distinct = counts.len();
    let mut sorted: Vec<(String, u64)> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

    let mut report = String::new();
    for (word, count) in sorted.iter().take(args.top) {
        let _ = writeln!(report, "{count}\t{word}");
    }
    std::fs::write(&args.output, report).map_err(|e| io_err(&args.output, "cannot write", e))?;

    Ok(format!(
        "files={} words={} distinct={}",
        files.len(),
        total,
        distinct
    ))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("wordfreq: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("{msg}");
            ExitCode::from(1)
        }
    }
}
