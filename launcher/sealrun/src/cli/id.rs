//! `sealrun id`: this device's code, for the vendor.
use std::process::ExitCode;

use crate::LaunchError;
use crate::license::device;

pub(super) fn execute() -> Result<ExitCode, LaunchError> {
    let d = device::load_or_create()?;
    println!("{}", d.code);
    Ok(ExitCode::SUCCESS)
}
