//! `sealrun deactivate PACKAGE`: this device's activation given back.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::LaunchError;
use crate::license::{device, online};

#[derive(Args)]
pub(super) struct DeactivateArgs {
    /// The app's package (*.sealed)
    package: PathBuf,
}

pub(super) fn execute(a: DeactivateArgs) -> Result<ExitCode, LaunchError> {
    let d = device::load_or_create()?;
    let n = online::deactivate(&a.package, &d)?;
    println!("gave back {n} activation(s); the license was removed from this device and can be activated on another");
    Ok(ExitCode::SUCCESS)
}
