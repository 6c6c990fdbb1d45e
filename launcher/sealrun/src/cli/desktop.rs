//! `sealrun desktop install|uninstall`: double-click support for this
//! user, and the menu entries of apps.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::LaunchError;
use crate::ui::desktop;

#[derive(Subcommand)]
pub(super) enum DesktopCommand {
    /// Register sealrun as the handler of *.sealed packages, with its icon (for this user, no root)
    Install,
    /// Remove that registration and the menu entries of apps
    Uninstall,
}

pub(super) fn execute(c: DesktopCommand) -> Result<ExitCode, LaunchError> {
    let done = match c {
        DesktopCommand::Install => {
            let exe = current_exe()?;
            let r = desktop::install(&exe)?;
            println!("*.sealed packages now open with {} for this user", exe.display());
            r
        }
        DesktopCommand::Uninstall => {
            let r = desktop::uninstall()?;
            if r.files.is_empty() {
                println!("sealrun was not registered with this user's desktop");
            } else {
                println!("removed sealrun's desktop registration for this user");
            }
            r
        }
    };
    for f in &done.files {
        println!("  {}", f.display());
    }
    for n in &done.notes {
        eprintln!("sealrun: note: {n}");
    }
    Ok(ExitCode::SUCCESS)
}

/// This launcher's own path, for desktop entries.
pub(super) fn current_exe() -> Result<PathBuf, LaunchError> {
    std::env::current_exe().map_err(|source| LaunchError::Io {
        action: "cannot find",
        path: PathBuf::from("this program's own path"),
        source,
    })
}

/// Adds `package`'s app to the menu with the manifest `m`, which the caller
/// read with `read_verified_manifest`: the entry shows its name
/// and icon, which only its vendor may set.
pub(super) fn add_menu_entry(
    package: &std::path::Path,
    m: &sealrun_format::package::Manifest,
) -> Result<(), LaunchError> {
    let entry = desktop::add_app_entry(
        &current_exe()?,
        package,
        &m.vendor_key,
        &m.product,
        &m.display_name,
        m.icon.as_deref(),
    )?;
    println!("added {} to the menu ({})", m.display_name, entry.display());
    Ok(())
}
