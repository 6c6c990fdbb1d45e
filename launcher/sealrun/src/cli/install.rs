//! `sealrun install URL --code CODE`: an app and its license in one step.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::TokenArgs;
use crate::LaunchError;
use crate::license::{device, online};
use crate::runtime::cache::CodeCache;
use crate::runtime::package::read_verified_manifest;

#[derive(Args)]
pub(super) struct InstallArgs {
    /// The product's address, e.g. https://licenses.example/products/com.acme.tool
    url: String,
    /// The activation code from the vendor
    #[arg(long)]
    code: String,
    /// Folder for the package [default: $XDG_DATA_HOME/sealrun/apps]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Also add the app to the desktop's menu, with its name and icon
    #[arg(long)]
    menu: bool,
    /// Do not compile the app now (its first launch compiles it instead)
    #[arg(long)]
    no_prepare: bool,
}

pub(super) fn execute(a: InstallArgs) -> Result<ExitCode, LaunchError> {
    use std::io::IsTerminal;
    let d = device::load_or_create()?;
    let dir = a.dir.unwrap_or_else(online::apps_dir);
    let i = online::install(&a.url, &a.code, &dir, &d, std::io::stderr().is_terminal())?;
    println!("installed {} {} as {}", i.name, i.release, i.package.display());
    println!("license: {}", i.license.display());
    // Compiled into the cache now, with the progress display, so that the
    // first launch is a warm one. The app is installed either way: a
    // failure here is a warning, and the first launch compiles instead.
    let cache = CodeCache::from_env()?;
    if !a.no_prepare && cache.enabled() {
        match super::prepare::prepare(&i.package, Some(&i.license), &TokenArgs::default(), &cache) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!(
                "sealrun: warning: {} was installed but not compiled ahead ({}); its first launch compiles it",
                i.name,
                super::advice::message(&e)
            ),
        }
    }
    println!("run it with: sealrun {}", i.package.display());
    if a.menu {
        super::desktop::add_menu_entry(&i.package, &read_verified_manifest(&i.package)?)?;
    }
    Ok(ExitCode::SUCCESS)
}
