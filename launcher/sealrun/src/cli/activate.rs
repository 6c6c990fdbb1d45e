//! `sealrun activate CODE`: a license for this device from the vendor's
//! licensing server.
use std::process::ExitCode;

use clap::Args;

use crate::LaunchError;
use crate::license::{device, online};

#[derive(Args)]
pub(super) struct ActivateArgs {
    /// The activation code from the vendor
    code: String,
    /// The vendor's licensing server, e.g. https://licenses.example
    #[arg(long, env = online::SERVER_ENV, value_name = "URL")]
    server: Option<String>,
}

pub(super) fn execute(a: ActivateArgs) -> Result<ExitCode, LaunchError> {
    let server = a.server.or_else(configured_activation_server).ok_or_else(|| {
        LaunchError::Usage(
            "which licensing server? Pass --server URL (the vendor tells you), or set SEALRUN_SERVER \
             or activation_server in the config file"
                .into(),
        )
    })?;
    println!("{}", activate(&server, &a.code)?);
    Ok(ExitCode::SUCCESS)
}

/// The licensing server for activations: `$SEALRUN_SERVER`, else the
/// config file's `activation_server`.
pub(super) fn activation_server() -> Option<String> {
    std::env::var(online::SERVER_ENV).ok().filter(|s| !s.is_empty()).or_else(configured_activation_server)
}

fn configured_activation_server() -> Option<String> {
    crate::config::Config::load().ok().and_then(|c| c.activation_server)
}

/// Redeems an activation code; the line that says what was installed.
pub(super) fn activate(server: &str, code: &str) -> Result<String, LaunchError> {
    let d = device::load_or_create()?;
    let (dest, l) = online::activate(server, code, &d)?;
    Ok(format!(
        "activated: license {} for {} {} installed as {}",
        l.terms.license_id_hex(),
        l.terms.product,
        l.terms.releases,
        dest.display()
    ))
}
