//! `sealrun prepare PACKAGE`: compile an app ahead of time into the
//! encrypted cache.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::TokenArgs;
use crate::LaunchError;
use crate::runtime::Source;
use crate::runtime::cache::{self, CodeCache};
use crate::ui::human_bytes;

#[derive(Args)]
pub(super) struct PrepareArgs {
    /// The package (*.sealed)
    package: PathBuf,
    /// Use this license file instead of searching
    #[arg(long)]
    license: Option<PathBuf>,
    #[command(flatten)]
    token: TokenArgs,
}

pub(super) fn execute(a: PrepareArgs) -> Result<ExitCode, LaunchError> {
    let cache = CodeCache::from_env()?;
    if !cache.enabled() {
        return Err(LaunchError::Usage(format!(
            "the compiled-code cache is off ({}=0), so there is nothing to prepare; unset it and try again",
            cache::CACHE_MAX_ENV
        )));
    }
    println!("{}", prepare(&a.package, a.license.as_deref(), &a.token, &cache)?);
    Ok(ExitCode::SUCCESS)
}

/// Compiles the app in `package` into `cache` (also for `install`); the
/// line that says where it is.
pub(super) fn prepare(
    package: &std::path::Path,
    license: Option<&std::path::Path>,
    token: &TokenArgs,
    cache: &CodeCache,
) -> Result<String, LaunchError> {
    let (manifest, source) = crate::session::prepare(package, license, &token.options(), cache)?;
    let name = format!("{} {}", manifest.display_name, manifest.release);
    Ok(match source {
        Source::Cache { entry } => format!("{name} is ready: already compiled for this device ({})", entry.display()),
        Source::Compiled { took, stored: Some((entry, size)) } => format!(
            "{name} is ready: compiled in {:.1} s, cached encrypted ({}) in {}",
            took.as_secs_f64(),
            human_bytes(size),
            entry.display()
        ),
        Source::Native { took, stored: Some((entry, size)) } => format!(
            "{name} is ready: the vendor's precompiled code verified and loaded in {:.1} s, cached encrypted ({}) in {}",
            took.as_secs_f64(),
            human_bytes(size),
            entry.display()
        ),
        Source::Compiled { stored: None, .. } | Source::Native { stored: None, .. } => {
            return Err(LaunchError::Io {
                action: "cannot write the compiled-code cache in",
                path: cache.dir().to_owned(),
                source: std::io::Error::other("the app compiled, but its cache entry could not be saved (see above)"),
            });
        }
    })
}
