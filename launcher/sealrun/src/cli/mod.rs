//! The command line: every subcommand in its own file, each turning its
//! arguments into a plan for the library and printing the outcome. `main.rs`
//! parses with [`parse`], dispatches with [`execute`] and maps errors to exit
//! codes (the README lists every one).
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::LaunchError;
use crate::license::dongle;

mod activate;
pub mod advice;
mod cache;
mod deactivate;
mod desktop;
mod doctor;
mod dongles;
mod id;
mod install;
mod license;
mod prepare;
mod run;
mod serve;
mod trust;

/// The parsed command line.
#[derive(Parser)]
#[command(
    name = "sealrun",
    version,
    about = "Run sealed WebAssembly apps licensed to this device",
    after_help = "Run a package directly: sealrun tool.sealed -- ARGS",
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a sealed app
    Run(run::RunArgs),
    /// Serve a sealed HTTP service (a wasi:http/proxy component) on this machine
    Serve(serve::ServeArgs),
    /// Print this device's code, to send to a vendor for a license
    Id,
    /// Manage installed licenses
    #[command(subcommand)]
    License(license::LicenseCommand),
    /// Get a license for this device with an activation code
    Activate(activate::ActivateArgs),
    /// Download an app and its license in one step: sealrun install URL --code CODE
    Install(install::InstallArgs),
    /// Give this device's activation back, so the license can move to another device
    Deactivate(deactivate::DeactivateArgs),
    /// Compile an app ahead of time into the encrypted cache (e.g. from an installer)
    Prepare(prepare::PrepareArgs),
    /// Manage the encrypted compiled-code cache
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Decide whose precompiled native code may run (none by default)
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// Hardware keys (dongles)
    #[command(subcommand)]
    Dongle(dongles::DongleCommand),
    /// Show what the launcher sees (for support tickets)
    Doctor,
    /// Open packages with a double-click: register sealrun with this user's desktop
    #[command(subcommand)]
    Desktop(desktop::DesktopCommand),
}

/// Where dongles are found and their PIN comes from (`run`, `prepare`,
/// `dongle list`).
#[derive(Args, Clone, Default)]
struct TokenArgs {
    /// The token driver's PKCS#11 module [default: $SEALRUN_PKCS11_MODULE, the config file, or the usual places]
    #[arg(long, value_name = "FILE")]
    pkcs11_module: Option<PathBuf>,
    /// Read the dongle PIN from the first line of this file [default: $SEALRUN_PIN, $SEALRUN_PIN_FILE, or ask]
    #[arg(long, value_name = "FILE")]
    pin_file: Option<PathBuf>,
}

impl TokenArgs {
    fn options(&self) -> dongle::Options {
        dongle::Options { module: self.pkcs11_module.clone(), pin_file: self.pin_file.clone() }
    }
}

const SUBCOMMANDS: &[&str] = &[
    "run",
    "serve",
    "id",
    "license",
    "activate",
    "install",
    "deactivate",
    "prepare",
    "cache",
    "trust",
    "dongle",
    "doctor",
    "desktop",
    "help",
];

/// `sealrun tool.sealed …` means `sealrun run tool.sealed …`.
fn normalise_args(mut args: Vec<OsString>) -> Vec<OsString> {
    if let Some(first) = args.get(1).and_then(|a| a.to_str())
        && !first.starts_with('-')
        && !SUBCOMMANDS.contains(&first)
    {
        args.insert(1, "run".into());
    }
    args
}

/// Takes what must not reach any program the launcher starts out of the
/// environment (the dongle PIN). First thing in `main`, while the process
/// has one thread.
pub fn take_secrets_from_env() {
    dongle::take_pin_from_env();
}

/// The command line of this process, parsed (clap prints help, versions
/// and usage errors and exits).
pub fn parse() -> Cli {
    Cli::parse_from(normalise_args(std::env::args_os().collect()))
}

/// Runs the subcommand; the exit code on success.
pub fn execute(cli: Cli) -> Result<ExitCode, LaunchError> {
    // An app stopped from a watcher (timeout, signal, lost dongle or seat)
    // is told why with the same advice as any other error.
    crate::runtime::runner::word_stops_with(advice::message);
    match cli.command {
        Command::Run(a) => run::execute(a),
        Command::Serve(a) => serve::execute(a),
        Command::Id => id::execute(),
        Command::License(c) => license::execute(c),
        Command::Activate(a) => activate::execute(a),
        Command::Install(a) => install::execute(a),
        Command::Deactivate(a) => deactivate::execute(a),
        Command::Prepare(a) => prepare::execute(a),
        Command::Dongle(c) => dongles::execute(c),
        Command::Cache(c) => cache::execute(c),
        Command::Trust(c) => trust::execute(c),
        Command::Doctor => doctor::execute(),
        Command::Desktop(c) => desktop::execute(c),
    }
}

/// The line printed for an error, before the process exits with its code.
pub fn error_line(e: &LaunchError) -> String {
    format!("sealrun: {}", sealrun_format::text::shown_lines(&advice::message(e)))
}
