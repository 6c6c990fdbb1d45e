//! `sealrun-floatd`: the site floating license manager. Parses flags and
//! dispatches to the library; the README lists every exit code.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sealrun_floatd::config::Config;
use sealrun_floatd::{FloatdError, admin, daemon, serve};

/// Where the configuration is looked for when --config is not given.
const DEFAULT_CONFIG: &str = "/etc/sealrun-floatd/floatd.toml";

#[derive(Parser)]
#[command(
    name = "sealrun-floatd",
    version,
    about = "Lend the seats of floating licenses to the computers of a network",
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the floating licenses of the configuration
    Serve {
        /// The configuration file
        #[arg(long, default_value = DEFAULT_CONFIG, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print this host's device code, for the vendor to issue a floating license to
    Id {
        /// The configuration file (its state_dir holds the host's device key)
        #[arg(long, default_value = DEFAULT_CONFIG, value_name = "FILE")]
        config: PathBuf,
    },
    /// Show seats in use, their holders, since when, and their last heartbeat
    Status {
        /// The configuration file (to find the local daemon)
        #[arg(long, default_value = DEFAULT_CONFIG, value_name = "FILE")]
        config: PathBuf,
        /// Ask this daemon instead, e.g. http://floatd.lan:27580
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// CA certificates (PEM) for an https:// daemon
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// End a lease: it is not renewed again, and its seat returns when it lapses
    Revoke {
        /// The lease id (from `status`)
        lease: String,
        /// The configuration file (the admin token is in its state_dir)
        #[arg(long, default_value = DEFAULT_CONFIG, value_name = "FILE")]
        config: PathBuf,
        /// CA certificates (PEM) for an https:// daemon
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SEALRUN_FLOATD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sealrun-floatd: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(command: Command) -> Result<(), FloatdError> {
    match command {
        Command::Serve { config } => {
            let config = Config::load(&config)?;
            config.check_serving()?;
            // The daemon holds the content keys it lends and every lease's
            // proof key: hardened like the launcher (no core dumps, not
            // dumpable, so other processes of its user cannot read its
            // memory), before any key is unwrapped.
            if !sealrun::platform::hardening::harden_process() {
                tracing::warn!("process hardening is not available on this system: core dumps may hold keys");
            }
            let rt = tokio::runtime::Runtime::new().map_err(|source| FloatdError::Io {
                action: "cannot start the runtime for",
                path: config.path.clone(),
                source,
            })?;
            rt.block_on(serve::serve(&config, |addr, tls| {
                let scheme = if tls { "https" } else { "http" };
                // Tests and scripts wait for this line.
                eprintln!("sealrun-floatd: listening on {scheme}://{addr}");
            }))
        }
        Command::Id { config } => {
            let config = Config::load(&config)?;
            println!("{}", daemon::host_device(&config)?.code);
            Ok(())
        }
        Command::Status { config, server, ca, json } => {
            let url = match server {
                Some(s) => s.trim_end_matches('/').to_owned(),
                None => Config::load(&config)?.local_url(),
            };
            let s = admin::status(&url, ca.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            } else {
                print!("{}", admin::format_status(&s));
            }
            Ok(())
        }
        Command::Revoke { lease, config, ca } => {
            let config = Config::load(&config)?;
            let path = config.admin_token_file();
            let token = std::fs::read_to_string(&path).map_err(|source| FloatdError::Io {
                action: "cannot read the admin token",
                path,
                source,
            })?;
            let ms = admin::revoke(&config.local_url(), ca.as_deref(), token.trim(), &lease)?;
            println!(
                "revoked lease {lease}; its holder can no longer renew it, and the seat returns within {} s",
                ms.div_ceil(1000)
            );
            Ok(())
        }
    }
}
