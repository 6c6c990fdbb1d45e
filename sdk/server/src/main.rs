//! `sealrun-server`: the licensing service. Parses flags and dispatches to
//! the `sealrun_server` library; the README lists the exit codes.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use sealrun_server::billing::{PlanJson, invoice_csv, invoice_html};
use sealrun_server::config::{CONFIG_ENV, Config};
use sealrun_server::{ServerError, api};

/// Exit codes; the README documents them.
mod exit {
    pub(crate) const FAILED: u8 = 1;
    // 2 is clap's usage error.
    pub(crate) const BAD_INPUT: u8 = 3;
    pub(crate) const SETUP: u8 = 4;
    pub(crate) const IO: u8 = 5;
}

#[derive(Parser)]
#[command(name = "sealrun-server", version, about = "The Sealrun licensing service", max_term_width = 100)]
struct Cli {
    /// Configuration file (TOML) [default: none; SEALRUN_SERVER_* variables and defaults apply]
    #[arg(long, global = true, env = CONFIG_ENV, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the database and master key; prints the admin token once
    Init,
    /// Serve the API
    Serve,
    /// Manage vendors
    #[command(subcommand)]
    Vendor(VendorCommand),
    /// Show or set a vendor's price plan
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Print a vendor's invoice for a month
    Invoice {
        /// Vendor name
        #[arg(long)]
        vendor: String,
        /// Month, YYYY-MM
        #[arg(long)]
        period: String,
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// Make another admin token (prints it once)
    AdminToken,
    /// Revoke a token (admin or vendor)
    RevokeToken {
        /// The token (read from stdin if "-")
        token: String,
    },
    /// Print the OpenAPI document of the API
    Openapi,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Csv,
    Html,
}

#[derive(Subcommand)]
enum VendorCommand {
    /// Create a vendor; prints its first API token once
    Create {
        /// Name: lowercase letters, digits and dashes
        name: String,
    },
    /// List vendors
    List,
    /// Make another API token for a vendor (prints it once)
    Token {
        /// Vendor name
        name: String,
        /// What the token is for
        #[arg(long, default_value = "")]
        label: String,
    },
}

#[derive(Subcommand)]
enum PlanCommand {
    /// Print a vendor's plans: past, in force and scheduled
    Show {
        /// Vendor name
        vendor: String,
    },
    /// Schedule a vendor's next plan (amounts like 1.50); it never applies backwards
    Set {
        /// Vendor name
        vendor: String,
        /// ISO 4217 currency
        #[arg(long, default_value = "EUR")]
        currency: String,
        /// Fee per license issued or activated
        #[arg(long, default_value = "0", value_parser = parse_money)]
        license_fee: u64,
        /// Fee per floating seat
        #[arg(long, default_value = "0", value_parser = parse_money)]
        seat_fee: u64,
        /// Free licenses per month
        #[arg(long, default_value_t = 0)]
        free_licenses: u64,
        /// Fee per transfer (an activation moved to another device)
        #[arg(long, default_value = "0", value_parser = parse_money)]
        transfer_fee: u64,
        /// Fee for one product instead of --license-fee: PRODUCT=AMOUNT (repeatable)
        #[arg(long = "product-fee", value_name = "PRODUCT=AMOUNT")]
        product_fees: Vec<String>,
        /// When the change takes effect: YYYY-MM-DD (UTC midnight) or Unix seconds, now or later [default: now]
        #[arg(long, value_name = "WHEN", value_parser = parse_when)]
        effective_from: Option<i64>,
    },
}

fn parse_when(s: &str) -> Result<i64, String> {
    if let Ok(t) = s.parse::<i64>() {
        return Ok(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, fmt)
        .map(|d| d.with_time(time::Time::MIDNIGHT).assume_utc().unix_timestamp())
        .map_err(|_| "must be a day, YYYY-MM-DD (UTC), or Unix seconds".to_owned())
}

fn parse_money(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not an amount like 12 or 1.50");
    let (units, cents) = s.split_once('.').unwrap_or((s, "0"));
    if units.is_empty() || cents.is_empty() || cents.len() > 2 {
        return Err(bad());
    }
    let units: u64 = units.parse().map_err(|_| bad())?;
    let cents: u64 = format!("{cents:0<2}").parse().map_err(|_| bad())?;
    units.checked_mul(100).and_then(|u| u.checked_add(cents)).ok_or_else(bad)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SEALRUN_SERVER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sealrun-server: error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sealrun-server: error: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn exit_code(e: &ServerError) -> u8 {
    use ServerError as E;
    match e {
        E::Invalid { .. } | E::NotFound(_) | E::Exists(_) | E::Format(_) => exit::BAD_INPUT,
        E::Config { .. }
        | E::ConfigValue { .. }
        | E::BadMasterKey(_)
        | E::WrongMasterKey
        | E::NotInitialised
        | E::AlreadyInitialised
        | E::SchemaTooNew { .. } => exit::SETUP,
        E::Io { .. } | E::Database(_) => exit::IO,
        _ => exit::FAILED,
    }
}

async fn run(cli: Cli) -> Result<(), ServerError> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Init => {
            let r = sealrun_server::init(&config).await?;
            if let Some(k) = &r.master_key_written {
                println!("master key written to {} (back it up: without it no stored key can be read)", k.display());
            }
            println!("database ready: {}", config.database);
            println!("admin token (shown once, store it now): {}", r.admin_token.as_str());
        }
        Command::Serve => {
            sealrun_server::serve(&config, |addr, tls| {
                let scheme = if tls { "https" } else { "http" };
                tracing::info!("listening on {scheme}://{addr}");
                // Machine-readable for scripts and tests that start with port 0.
                println!("listening on {scheme}://{addr}");
            })
            .await?;
        }
        Command::Vendor(VendorCommand::Create { name }) => {
            let svc = sealrun_server::open(&config).await?;
            let v = svc.create_vendor(&name).await?;
            println!("vendor {} created; issuing key {}", v.vendor.name, v.vendor.issuer_key);
            println!("vendor token (shown once, give it to the vendor): {}", v.token);
        }
        Command::Vendor(VendorCommand::List) => {
            let svc = sealrun_server::open(&config).await?;
            for v in svc.vendors().await? {
                let cert = match v.certified_until {
                    Some(t) => format!("certified until {t}"),
                    None => "issuing key not certified yet".into(),
                };
                println!("{}\t{cert}", v.name);
            }
        }
        Command::Vendor(VendorCommand::Token { name, label }) => {
            let svc = sealrun_server::open(&config).await?;
            let id = svc.vendor_id(&name).await?;
            println!("{}", svc.new_vendor_token(id, &label).await?.as_str());
        }
        Command::Plan(PlanCommand::Show { vendor }) => {
            let svc = sealrun_server::open(&config).await?;
            let id = svc.vendor_id(&vendor).await?;
            println!("{}", serde_json::to_string_pretty(&svc.plan_history(id).await?).expect("serialises"));
        }
        Command::Plan(PlanCommand::Set {
            vendor,
            currency,
            license_fee,
            seat_fee,
            free_licenses,
            transfer_fee,
            product_fees,
            effective_from,
        }) => {
            let svc = sealrun_server::open(&config).await?;
            let id = svc.vendor_id(&vendor).await?;
            let mut plan =
                PlanJson { currency, license_fee, seat_fee, transfer_fee, free_licenses, ..PlanJson::default() };
            for pf in product_fees {
                let bad = ServerError::Invalid {
                    field: "--product-fee",
                    problem: "must be PRODUCT=AMOUNT, e.g. com.acme.tool=2.50",
                };
                let (p, a) = pf.split_once('=').ok_or(bad)?;
                let a = parse_money(a).map_err(|_| ServerError::Invalid {
                    field: "--product-fee",
                    problem: "must be PRODUCT=AMOUNT, e.g. com.acme.tool=2.50",
                })?;
                plan.product_fees.insert(p.to_owned(), a);
            }
            svc.set_plan(id, &plan, effective_from).await?;
            println!("{}", serde_json::to_string_pretty(&svc.plan_history(id).await?).expect("serialises"));
        }
        Command::Invoice { vendor, period, format } => {
            let svc = sealrun_server::open(&config).await?;
            let id = svc.vendor_id(&vendor).await?;
            let inv = svc.invoice(id, &period).await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&inv).expect("serialises")),
                Format::Csv => print!("{}", invoice_csv(&inv)),
                Format::Html => print!("{}", invoice_html(&inv)),
            }
        }
        Command::AdminToken => {
            let svc = sealrun_server::open(&config).await?;
            println!("{}", svc.new_admin_token().await?.as_str());
        }
        Command::RevokeToken { token } => {
            let token = if token == "-" {
                let mut s = String::new();
                std::io::stdin().read_line(&mut s).map_err(|source| ServerError::Io {
                    action: "cannot read",
                    path: "stdin".into(),
                    source,
                })?;
                s.trim().to_owned()
            } else {
                token
            };
            let svc = sealrun_server::open(&config).await?;
            if !svc.revoke_token(&token).await? {
                return Err(ServerError::NotFound("token (or it is revoked already)"));
            }
            println!("token revoked");
        }
        Command::Openapi => print!("{}", api::openapi_text()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_money;

    #[test]
    fn money() {
        assert_eq!(parse_money("12"), Ok(1200));
        assert_eq!(parse_money("1.5"), Ok(150));
        assert_eq!(parse_money("0.07"), Ok(7));
        for bad in ["", ".5", "1.", "1.234", "-1", "x"] {
            assert!(parse_money(bad).is_err(), "{bad}");
        }
    }
}
