//! `sealrun cache list|size|clear`: the encrypted compiled-code cache.
use std::process::ExitCode;

use clap::Subcommand;

use crate::LaunchError;
use crate::runtime::cache::CodeCache;
use crate::ui::human_bytes;

#[derive(Subcommand)]
pub(super) enum CacheCommand {
    /// List cache entries, least recently used first
    List,
    /// Print the cache's total size and its cap
    Size,
    /// Remove every entry (apps compile again on their next launch)
    Clear,
}

pub(super) fn execute(c: CacheCommand) -> Result<ExitCode, LaunchError> {
    let cache = CodeCache::from_env()?;
    match c {
        CacheCommand::List => {
            let entries = cache.list();
            if entries.is_empty() {
                println!("the compiled-code cache in {} is empty", cache.dir().display());
            }
            for e in entries {
                let used = e.last_used.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                println!(
                    "{:>9}  last used {}  {}  {}",
                    human_bytes(e.size),
                    sealrun_host::time::rfc3339(used),
                    e.label,
                    e.path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
                );
            }
        }
        CacheCommand::Size => {
            let entries = cache.list();
            let total: u64 = entries.iter().map(|e| e.size).sum();
            let cap = if cache.enabled() { human_bytes(cache.cap()) } else { "off".into() };
            let n = entries.len();
            let noun = if n == 1 { "entry" } else { "entries" };
            println!("{} in {n} {noun} (cap {cap}) in {}", human_bytes(total), cache.dir().display());
        }
        CacheCommand::Clear => {
            let (n, bytes) = cache.clear()?;
            let noun = if n == 1 { "entry" } else { "entries" };
            println!("removed {n} {noun} ({}) from {}", human_bytes(bytes), cache.dir().display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
