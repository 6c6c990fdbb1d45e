//! `sealrun serve PACKAGE`: a licensed HTTP service (a `wasi:http/proxy`
//! component) on this machine. The arguments become the same plan as a
//! run's (license, grants, cache), with how to serve added; the session
//! checks the license, takes the seat and loads the code as for a run, and
//! `runtime::http` serves.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::TokenArgs;
use super::run::{self, RunArgs, SeatLoss};
use crate::LaunchError;
use crate::runtime::OpenedPackage;
use crate::runtime::http::{
    DEFAULT_LISTEN, DEFAULT_MAX_CONCURRENT, DEFAULT_REQUEST_MEMORY_MIB, DEFAULT_REQUEST_TIMEOUT_SECS, ServeOptions,
};
use crate::runtime::runner;
use crate::session;
use crate::ui::Stderr;

/// Most requests `--max-concurrent` allows at once: each holds an instance
/// with up to `--max-memory`, and thousands would exhaust the machine
/// before the limit meant anything.
const MAX_CONCURRENT: usize = 4096;

#[derive(Args)]
pub(super) struct ServeArgs {
    /// The package (*.sealed) of an HTTP service
    package: PathBuf,
    /// Listen on this address (loopback unless you say otherwise)
    #[arg(long, default_value = DEFAULT_LISTEN, value_name = "ADDR:PORT")]
    listen: String,
    /// Each request's time limit, in seconds; a request over it gets 504
    #[arg(long, default_value_t = DEFAULT_REQUEST_TIMEOUT_SECS, value_name = "SECS")]
    request_timeout: f64,
    /// Memory limit of each request's instance, in MiB
    #[arg(long, default_value_t = DEFAULT_REQUEST_MEMORY_MIB, value_name = "MIB")]
    max_memory: u64,
    /// Requests served at once; more wait for a slot
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENT, value_name = "N")]
    max_concurrent: usize,
    /// Append the access log (a line per request) to this file [default: stderr]
    #[arg(long, value_name = "FILE")]
    access_log: Option<PathBuf>,
    /// Use this license file instead of searching
    #[arg(long)]
    license: Option<PathBuf>,
    /// Take a seat of a floating license from this license server (one seat for the whole service)
    #[arg(long, value_name = "HOST:PORT")]
    license_server: Option<String>,
    /// When every floating seat is in use, wait in line for one instead of giving up
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    token: TokenArgs,
    /// Grant the service a directory: HOST[::GUEST][:ro] (repeatable)
    #[arg(long = "dir", value_name = "HOST[::GUEST][:ro]")]
    dirs: Vec<String>,
    /// Give the service an environment variable: NAME=VALUE, or NAME to pass this one through (repeatable)
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    env: Vec<String>,
    /// Let the service connect to HOST:PORT (TCP and outgoing HTTP) (repeatable)
    #[arg(long = "allow-connect", value_name = "HOST:PORT")]
    allow_connect: Vec<String>,
    /// Let the service look up host names (DNS)
    #[arg(long)]
    allow_dns: bool,
    /// Neither read nor write the compiled-code cache (compile every time)
    #[arg(long)]
    no_cache: bool,
}

/// How to serve, from the arguments; the message names the problem.
fn serve_options(a: &ServeArgs) -> Result<ServeOptions, LaunchError> {
    let listen = sealrun_format::net::parse_listen(&a.listen)
        .map_err(|why| LaunchError::Usage(format!("--listen {:?}: {why}", a.listen)))?;
    let request_timeout = runner::parse_timeout(Some(a.request_timeout))
        .map_err(|why| LaunchError::Usage(why.replace("--timeout", "--request-timeout")))?
        .expect("a value was given");
    if a.max_concurrent == 0 || a.max_concurrent > MAX_CONCURRENT {
        return Err(LaunchError::Usage(format!(
            "--max-concurrent {}: give a number of requests from 1 to {MAX_CONCURRENT}",
            a.max_concurrent
        )));
    }
    Ok(ServeOptions { listen, request_timeout, max_concurrent: a.max_concurrent, access_log: a.access_log.clone() })
}

pub(super) fn execute(a: ServeArgs) -> Result<ExitCode, LaunchError> {
    run::check_package_path(&a.package)?;
    let opts = serve_options(&a)?;
    let package = OpenedPackage::open(&a.package);
    // The same plan as a run: settings from the config file, grants and
    // license, all checked before anything is decrypted.
    let as_run = RunArgs {
        package: a.package,
        license: a.license,
        dirs: a.dirs,
        env: a.env,
        allow_connect: a.allow_connect,
        allow_listen: Vec::new(),
        allow_dns: a.allow_dns,
        allow_udp: false,
        max_memory: a.max_memory,
        timeout: None,
        no_cache: a.no_cache,
        token: a.token,
        license_server: a.license_server,
        wait: a.wait,
        on_seat_loss: SeatLoss::Pause,
        desktop: false,
        args: Vec::new(),
    };
    let mut plan = run::plan(as_run, package.as_ref().ok().map(|p| p.manifest()))?;
    plan.serve = Some(opts);
    session::run(plan, package?, &Stderr).map(ExitCode::from)
}
