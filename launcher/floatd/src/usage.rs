//! The usage log: one JSON line per checkout, renewal, release, expiry,
//! revocation and refusal, in `usage.jsonl` in the state directory. It is
//! the record a site can report to its vendor. Written by a thread of its
//! own, so requests never wait for the disk; rotated by size.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// Rotate the log when it reaches this size: at a heartbeat every 10 s, 100
/// clients write about 130 MiB a day, so a file holds about half a day.
pub const USAGE_LOG_MAX_BYTES: u64 = 64 << 20;
/// Rotated files kept (`usage.jsonl.1` is the newest).
pub const USAGE_LOG_KEEP: u32 = 8;
/// Lines queued for the writer at most: a burst larger than this (the disk
/// stalled) drops lines rather than memory without bound; drops are counted
/// and logged.
pub const USAGE_QUEUE: usize = 100_000;
/// Lines written before the file is flushed, at the latest.
const FLUSH_EVERY: usize = 256;

/// The log's writer.
pub struct UsageLog {
    tx: Option<mpsc::SyncSender<String>>,
    dropped: std::sync::atomic::AtomicU64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UsageLog {
    /// Opens (appending to) the log at `path`.
    pub fn open(path: &Path) -> std::io::Result<UsageLog> {
        let file = open_append(path)?;
        let (tx, rx) = mpsc::sync_channel::<String>(USAGE_QUEUE);
        let path = path.to_owned();
        let thread = std::thread::Builder::new().name("usage-log".into()).spawn(move || write_loop(&path, file, rx))?;
        Ok(UsageLog { tx: Some(tx), dropped: Default::default(), thread: Some(thread) })
    }

    /// Logs one event (`event` names it; `fields` is a JSON object).
    pub fn log(&self, event: &str, mut fields: serde_json::Value) {
        if let Some(map) = fields.as_object_mut() {
            map.insert("ts".into(), now_rfc3339().into());
            map.insert("event".into(), event.into());
        }
        if let Some(tx) = &self.tx
            && let Err(mpsc::TrySendError::Full(_)) = tx.try_send(fields.to_string())
        {
            let n = self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "the usage log cannot keep up; lines were dropped");
            }
        }
    }
}

impl Drop for UsageLog {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().create(true).append(true).mode(0o640).open(path)
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn write_loop(path: &Path, file: std::fs::File, rx: mpsc::Receiver<String>) {
    let mut size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut out = std::io::BufWriter::new(file);
    // Block for a line, write it and whatever else is queued, then flush:
    // at a low rate every line reaches the file at once, at a high rate
    // lines are written in batches.
    while let Ok(first) = rx.recv() {
        let mut pending = 0;
        let mut next = Some(first);
        while let Some(line) = next {
            if size + line.len() as u64 + 1 > USAGE_LOG_MAX_BYTES && size > 0 {
                let _ = out.flush();
                for n in (1..USAGE_LOG_KEEP).rev() {
                    let _ = std::fs::rename(rotated(path, n), rotated(path, n + 1));
                }
                let _ = std::fs::rename(path, rotated(path, 1));
                match open_append(path) {
                    Ok(f) => {
                        out = std::io::BufWriter::new(f);
                        size = 0;
                    }
                    Err(e) => tracing::error!(error = %e, path = %path.display(), "cannot start a new usage log"),
                }
            }
            if writeln!(out, "{line}").is_ok() {
                size += line.len() as u64 + 1;
            }
            pending += 1;
            if pending >= FLUSH_EVERY {
                let _ = out.flush();
                pending = 0;
            }
            next = rx.try_recv().ok();
        }
        let _ = out.flush();
    }
    let _ = out.flush();
}

fn now_rfc3339() -> String {
    sealrun_host::time::now_rfc3339()
}
