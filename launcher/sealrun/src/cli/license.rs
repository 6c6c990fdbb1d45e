//! `sealrun license add|list`: the installed licenses.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::LaunchError;
use crate::license::{device, floating, store};
use crate::runtime::package::read_verified_manifest;

#[derive(Subcommand)]
pub(super) enum LicenseCommand {
    /// Install a license file for this device
    Add {
        /// The license file, or a *.floating file naming the site's license server
        file: PathBuf,
        /// Also add this package's app to the desktop's menu, with its name and icon
        #[arg(long, value_name = "PACKAGE")]
        menu: Option<PathBuf>,
    },
    /// List installed licenses
    List,
}

pub(super) fn execute(c: LicenseCommand) -> Result<ExitCode, LaunchError> {
    match c {
        LicenseCommand::Add { file, .. } if file.extension().is_some_and(|e| e == floating::FLOATING_EXT) => {
            let (dest, f) = floating::install(&file)?;
            let what = f.product.as_deref().map_or_else(|| "every product".to_owned(), |p| p.to_owned());
            println!("installed the floating license server {} for {what} as {}", f.server, dest.display());
        }
        LicenseCommand::Add { file, menu } => {
            let d = device::load_or_create()?;
            // The package is checked (once) before the license is stored.
            let manifest = menu.as_deref().map(read_verified_manifest).transpose()?;
            match store::add_any(&file, &d)? {
                (dest, store::Added::Plain(l)) => println!(
                    "installed license {} for {} {} ({}) as {}",
                    l.terms.license_id_hex(),
                    l.terms.product,
                    l.terms.releases,
                    l.terms.licensee,
                    dest.display()
                ),
                (dest, store::Added::Sealed(s)) => println!(
                    "installed a license sealed to dongle {} as {} (its terms are read from the dongle when the app runs)",
                    s.dongle,
                    dest.display()
                ),
            }
            if let (Some(package), Some(m)) = (menu, manifest) {
                super::desktop::add_menu_entry(&package, &m)?;
            }
        }
        LicenseCommand::List => {
            let all = store::all();
            if all.is_empty() {
                println!("no licenses installed");
            }
            for p in all {
                println!("{}", p.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
