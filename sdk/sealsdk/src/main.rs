//! `sealsdk`: the vendor's command-line tool. Parses flags and dispatches to
//! the `sealrun_sdk` library; see `sealsdk --help` and the README for the
//! exit codes.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sealrun_format::device::DeviceCode;
use sealrun_format::license::{Feature, Meter, SeatUnit};
use sealrun_format::limits::DEFAULT_CHUNK_SIZE_LOG2;
use sealrun_format::package::{AppKind, Capability};
use sealrun_format::{Error as FormatError, Release};
use sealrun_sdk::client::{self, Client};
use sealrun_sdk::dates::{self, DayEdge};
use sealrun_sdk::inspect::{self, Artifact};
use sealrun_sdk::issue::{self, IssueOptions};
use sealrun_sdk::keystore::{self, Keystore};
use sealrun_sdk::ledger_state::LedgerRecords;
use sealrun_sdk::seal::{self, SealOptions};
use sealrun_sdk::{SdkError, ledger, server, verify};

mod advice;

/// Exit codes; the README documents them.
mod exit {
    pub(crate) const VERIFY_FAILED: u8 = 1;
    // 2 is clap's usage error.
    pub(crate) const BAD_INPUT: u8 = 3;
    pub(crate) const KEYSTORE: u8 = 4;
    pub(crate) const WRITE_FAILED: u8 = 5;
    pub(crate) const SERVER: u8 = 6;
    pub(crate) const TOKEN: u8 = 7;
}

#[derive(Parser)]
#[command(name = "sealsdk", version, about = "Seal WebAssembly apps and issue Sealrun licenses", max_term_width = 100)]
struct Cli {
    /// Keystore directory [default: $XDG_DATA_HOME/sealsdk]
    #[arg(long, global = true, env = keystore::KEYSTORE_ENV, value_name = "DIR")]
    keystore: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make the vendor signing key (once per vendor; back it up)
    Keygen,
    /// Encrypt and sign a WebAssembly module into a package
    Seal(SealArgs),
    /// Issue licenses
    #[command(subcommand)]
    License(LicenseCommand),
    /// Provision hardware keys (dongles)
    #[command(subcommand)]
    Dongle(DongleCommand),
    /// Show what a package or license says (no secrets)
    Inspect {
        /// A .sealed or .license file
        file: PathBuf,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Work with a licensing server (URL in --server or SEALSDK_SERVER, token in SEALSDK_TOKEN)
    Server(ServerArgs),
    /// Check an invoice against your ledger export
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Check a package's signature, and a license against it
    Verify {
        /// The package
        package: PathBuf,
        /// A license to check against the package
        #[arg(long)]
        license: Option<PathBuf>,
    },
}

#[derive(Args)]
struct SealArgs {
    /// The WebAssembly module (a WASI preview-1 command)
    input: PathBuf,
    /// Product id, e.g. com.acme.tool
    #[arg(long)]
    product: String,
    /// Release, MAJOR.MINOR.PATCH
    #[arg(long)]
    release: Release,
    /// Name shown to end users [default: the product id]
    #[arg(long)]
    name: Option<String>,
    /// The app's icon for desktop menus: a PNG or SVG of at most 7 KiB, carried unencrypted
    #[arg(long, value_name = "FILE")]
    icon: Option<PathBuf>,
    /// Output package [default: INPUT with .sealed]
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Ask the user for a directory at this guest path (append :rw if the app writes there)
    #[arg(long = "request-dir", value_name = "GUEST[:rw]")]
    request_dir: Vec<String>,
    /// Ask the user for this environment variable
    #[arg(long = "request-env", value_name = "NAME")]
    request_env: Vec<String>,
    /// Ask the user to let the app (a component) connect to HOST:PORT
    #[arg(long = "request-connect", value_name = "HOST:PORT")]
    request_connect: Vec<String>,
    /// Ask the user to let the app (a component) listen on ADDR:PORT
    #[arg(long = "request-listen", value_name = "ADDR:PORT")]
    request_listen: Vec<String>,
    /// Ask the user to let the app (a component) look up host names
    #[arg(long)]
    request_dns: bool,
    /// Ask the user to let the app (a component) use UDP
    #[arg(long)]
    request_udp: bool,
    /// Chunk size in KiB (a power of two from 4 to 16384)
    #[arg(long, default_value_t = 1 << (DEFAULT_CHUNK_SIZE_LOG2 - 10), value_name = "KIB")]
    chunk_kib: u32,
    /// Seal with the content key a licensing server keeps for this release, and upload the package to it
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// With --server: do not upload the package
    #[arg(long, requires = "server")]
    no_upload: bool,
    /// Also ship native code precompiled for TARGET, e.g. x86_64-linux (repeatable; used only where users trust your key with native code)
    #[arg(long, value_name = "TARGET")]
    precompile: Vec<String>,
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Check that an invoice matches your ledger export line by line
    Verify {
        /// The ledger export (`sealsdk server ledger -o FILE`)
        #[arg(long)]
        ledger: PathBuf,
        /// The invoice, as JSON (`sealsdk server invoice PERIOD -o FILE`)
        #[arg(long)]
        invoice: PathBuf,
    },
}

#[derive(Args)]
struct ServerArgs {
    /// The server, e.g. https://licenses.example
    #[arg(long, env = client::SERVER_ENV, value_name = "URL")]
    server: Option<String>,
    /// File holding your vendor token [default: the SEALSDK_TOKEN variable]
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: ServerCommand,
}

#[derive(Subcommand)]
enum ServerCommand {
    /// Certify the server's issuing key with your vendor key, so it can issue licenses for you
    Certify {
        /// Days the certificate is valid
        #[arg(long, default_value_t = server::DEFAULT_CERT_DAYS)]
        days: u64,
    },
    /// Show your vendor account
    Whoami,
    /// Manage products
    #[command(subcommand)]
    Product(ProductCommand),
    /// Issue, list, revoke and export licenses
    #[command(subcommand)]
    License(ServerLicenseCommand),
    /// Make, list and revoke activation codes
    #[command(subcommand)]
    Code(CodeCommand),
    /// Provision hardware keys (dongles) whose keys the server keeps
    #[command(subcommand)]
    Dongle(ServerDongleCommand),
    /// Show the server's price plans for you, or accept them (verify checks invoices against accepted plans)
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Export your ledger (JSON lines, ending in the operator-signed head)
    Ledger {
        /// Write to this file instead of stdout
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Your invoice for a month
    Invoice {
        /// Month, YYYY-MM
        period: String,
        /// json, csv or html
        #[arg(long, default_value = "json")]
        format: String,
        /// Write to this file instead of stdout
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PlanCommand {
    /// Print every plan (past, in force and scheduled) and which ones you accepted
    Show,
    /// Accept the plans the server shows now; refuses if a plan you accepted was changed
    Accept,
}

#[derive(Subcommand)]
enum ProductCommand {
    /// Create a product
    Create {
        /// Product id, e.g. com.acme.tool
        product: String,
        /// Name for people
        #[arg(long)]
        name: Option<String>,
    },
    /// List your products and their releases
    List,
    /// Make the content key of a release on the server (seal --server does this by itself)
    Release {
        /// Product id
        product: String,
        /// Release, MAJOR.MINOR.PATCH
        release: Release,
    },
}

/// Which token to make into a dongle, for which device.
#[derive(Args)]
struct ProvisionArgs {
    /// The token driver's PKCS#11 module, e.g. /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so
    #[arg(long, value_name = "FILE")]
    module: PathBuf,
    /// Which token: its index among the slots holding a token, from 0
    #[arg(long, default_value_t = 0)]
    slot: usize,
    /// The device code the dongle may be used on (from `sealrun id` there)
    #[arg(long)]
    device: String,
    /// Read the token's user PIN from the first line of this file [default: $SEALSDK_PIN, or ask]
    #[arg(long, value_name = "FILE")]
    pin_file: Option<PathBuf>,
    /// Replace a Sealrun dongle already on the token (its licenses stop working)
    #[arg(long)]
    replace: bool,
}

#[derive(Subcommand)]
enum ServerDongleCommand {
    /// Have the server make a dongle for a device and write it onto a token
    Provision(ProvisionArgs),
    /// List the dongles provisioned through the server
    List,
}

#[derive(Subcommand)]
enum ServerLicenseCommand {
    /// Issue a license for a device code or a dongle (signed by the server's certified issuing key)
    Issue(Box<IssueArgs>),
    /// List licenses
    List {
        /// Only this product
        #[arg(long)]
        product: Option<String>,
    },
    /// Revoke a license (by id)
    Revoke {
        /// License id (hex)
        license_id: String,
    },
    /// Export every license (json lines or csv)
    Export {
        /// json or csv
        #[arg(long, default_value = "json")]
        format: String,
        /// Write to this file instead of stdout
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CodeCommand {
    /// Make activation codes to sell (printed once, one per line)
    Create {
        /// Product id
        #[arg(long)]
        product: String,
        /// Releases the licenses cover [default: every release]
        #[arg(long)]
        releases: Option<String>,
        /// Licensee written into each license
        #[arg(long)]
        licensee: Option<String>,
        /// Enable a feature, NAME or NAME=VALUE (repeatable)
        #[arg(long = "feature", value_name = "NAME[=VALUE]")]
        features: Vec<Feature>,
        /// A feature that ends this many days after the activation while the license goes on, NAME=DAYS (repeatable)
        #[arg(long = "feature-days", value_name = "NAME=DAYS")]
        feature_days: Vec<String>,
        /// A usage meter of each license: NAME=LIMIT or NAME=LIMIT/month (repeatable)
        #[arg(long = "meter", value_name = "NAME=LIMIT[/month]")]
        meters: Vec<Meter>,
        /// Licenses expire this many days after activation [default: never]
        #[arg(long)]
        license_days: Option<i64>,
        /// Devices that may use one code at once
        #[arg(long, default_value_t = 1)]
        max_activations: i64,
        /// Times an activation may move to another device
        #[arg(long, default_value_t = 3)]
        transfer_limit: i64,
        /// Last day the code can be redeemed, YYYY-MM-DD [default: never]
        #[arg(long)]
        expires: Option<String>,
        /// How many codes
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// List codes (the codes themselves are not stored, only their last characters)
    List {
        /// Only this product
        #[arg(long)]
        product: Option<String>,
    },
    /// Revoke a code by id
    Revoke {
        /// The code's id (from `code list`)
        id: i64,
    },
}

#[derive(Subcommand)]
enum LicenseCommand {
    /// Issue a license bound to one device
    Issue(IssueArgs),
}

#[derive(Subcommand)]
enum DongleCommand {
    /// Make a token into a dongle permitted on one device: sealsdk dongle provision --module M --slot 0 --device CODE
    Provision(ProvisionArgs),
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("holder").required(true).args(["device", "dongle"])))]
struct IssueArgs {
    /// Product id
    #[arg(long)]
    product: String,
    /// The customer's device code (from `sealrun id`)
    #[arg(long)]
    device: Option<String>,
    /// A dongle provisioned from this keystore (its id); the license is sealed to it
    #[arg(long, value_name = "DONGLE-ID", conflicts_with = "device")]
    dongle: Option<String>,
    /// How many copies may run at once with the dongle
    #[arg(long, default_value_t = 1, requires = "dongle")]
    count: u32,
    /// A floating license with this many seats, for the site license manager (sealrun-floatd) on --device (its `sealrun-floatd id`) or with --dongle
    #[arg(long, value_name = "SEATS", conflicts_with = "count")]
    floating: Option<u32>,
    /// Count a floating seat per running copy of the app instead of per computer
    #[arg(long, requires = "floating")]
    per_process: bool,
    /// Who the license is for
    #[arg(long)]
    licensee: String,
    /// Last day of validity, YYYY-MM-DD (UTC, inclusive) or RFC 3339 [default: never expires]
    #[arg(long)]
    expires: Option<String>,
    /// First day of validity [default: one day before now]
    #[arg(long)]
    not_before: Option<String>,
    /// Enable a feature, NAME or NAME=VALUE (the app reads the value) (repeatable)
    #[arg(long = "feature", value_name = "NAME[=VALUE]")]
    features: Vec<Feature>,
    /// A feature that ends on its own after this day, NAME=YYYY-MM-DD (UTC, inclusive) or RFC 3339; the license goes on (repeatable)
    #[arg(long = "feature-expires", value_name = "NAME=DATE")]
    feature_expires: Vec<String>,
    /// A usage meter the app consumes: NAME=LIMIT for the license's life or NAME=LIMIT/month per calendar month (repeatable)
    #[arg(long = "meter", value_name = "NAME=LIMIT[/month]")]
    meters: Vec<Meter>,
    /// Releases covered: 1.2.0, 1.0.0..1.9.9 or 1.0.0.. [default: every release sealed so far]
    #[arg(long)]
    releases: Option<String>,
    /// Output file
    #[arg(short, long)]
    output: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ks = Keystore::at(cli.keystore.clone().unwrap_or_else(keystore::default_dir));
    match run(cli.command, &ks) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sealsdk: error: {e}");
            if let Some(step) = advice::next_step(&e) {
                eprintln!("{step}");
            }
            ExitCode::from(exit_code(&e))
        }
    }
}

fn exit_code(e: &SdkError) -> u8 {
    match e {
        SdkError::NoVendorKey(_)
        | SdkError::VendorKeyExists(_)
        | SdkError::BadKeyFile(_)
        | SdkError::NoContentKeys { .. } => exit::KEYSTORE,
        SdkError::Io { action, .. } if action.starts_with("cannot write") || action.starts_with("cannot create") => {
            exit::WRITE_FAILED
        }
        SdkError::Format { source, .. } if is_verification_failure(source) => exit::VERIFY_FAILED,
        SdkError::LedgerMismatch(_) => exit::VERIFY_FAILED,
        SdkError::LedgerRecords(_) | SdkError::OperatorKeyChanged { .. } => exit::KEYSTORE,
        SdkError::Server { .. } => exit::SERVER,
        SdkError::Unreachable { .. } => exit::SERVER,
        SdkError::Token(_) => exit::TOKEN,
        SdkError::NoDongleKey { .. } => exit::KEYSTORE,
        _ => exit::BAD_INPUT,
    }
}

fn is_verification_failure(e: &FormatError) -> bool {
    !matches!(e, FormatError::InvalidInput { .. })
}

fn run(command: Command, ks: &Keystore) -> Result<ExitCode, SdkError> {
    match command {
        Command::Keygen => {
            let key = ks.create_vendor_key()?;
            println!("vendor key created in {}", ks.dir().display());
            println!("public key: {}", key.public());
            println!("key id:     {}", key.public().short_id());
            println!(
                "Back up {} now: it signs every package and license you make.",
                ks.dir().join("vendor.key").display()
            );
        }
        Command::Seal(a) => seal_cmd(a, ks)?,
        Command::License(LicenseCommand::Issue(a)) => issue_cmd(a, ks)?,
        Command::Dongle(DongleCommand::Provision(ProvisionArgs { module, slot, device, pin_file, replace })) => {
            let device: DeviceCode = device.parse()?;
            let pin = sealrun_sdk::dongle::pin(pin_file.as_deref())?;
            let p = sealrun_sdk::dongle::provision(ks, &module, slot, device, &pin, replace, dates::now())?;
            print_provisioned(&p, "vendor key", "sealsdk license issue");
        }
        Command::Inspect { file, json } => {
            // A license whole, or the first part of a package (enough for its header).
            let limit = u64::from(sealrun_format::limits::MAX_MANIFEST_LEN) + 64 * 1024;
            let bytes = verify::read_bounded(&file, limit)?;
            let artifact = inspect::parse_any(&bytes)
                .ok_or_else(|| SdkError::NotSealrun(file.clone()))?
                .map_err(|source| SdkError::Format { path: file.clone(), source })?;
            let out = match (artifact, json) {
                (Artifact::Package(h), false) => inspect::package_text(&h),
                (Artifact::Package(h), true) => format!("{:#}\n", inspect::package_json(&h)),
                (Artifact::License(l), false) => inspect::license_text(&l),
                (Artifact::License(l), true) => format!("{:#}\n", inspect::license_json(&l)),
                (Artifact::Sealed(s), json) => {
                    let l = inspect::open_sealed(&s, ks).map_err(|e| match e {
                        SdkError::Invalid(source) => SdkError::Format { path: file.clone(), source },
                        other => other,
                    })?;
                    if json {
                        let mut v = inspect::license_json(&l);
                        v["sealed_to_dongle"] = serde_json::json!(s.dongle.to_string());
                        format!("{v:#}\n")
                    } else {
                        format!(
                            "sealed to dongle {} (opened with this keystore's copy of its key)\n{}",
                            s.dongle,
                            inspect::license_text(&l)
                        )
                    }
                }
            };
            print!("{out}");
        }
        Command::Server(a) => server_cmd(a, ks)?,
        Command::Ledger(LedgerCommand::Verify { ledger, invoice }) => {
            let l = std::fs::read_to_string(&ledger).map_err(SdkError::io("cannot read", &ledger))?;
            let i = std::fs::read_to_string(&invoice).map_err(SdkError::io("cannot read", &invoice))?;
            let records = LedgerRecords::in_keystore(ks.dir());
            let v = ledger::verify(&records, &l, &i, dates::now())?;
            println!(
                "invoice {} OK: total {}.{:02} {} matches the ledger ({} entries, chain verified)",
                v.period,
                v.total / 100,
                v.total % 100,
                v.currency,
                v.entries
            );
            println!(
                "  signed by the pinned operator key; extends the {} entries verified before; plans as accepted; \
                 {} of your licenses where the server put them; {} activation code(s) within their limits",
                v.previously_verified, v.issued_checked, v.codes_checked
            );
        }
        Command::Verify { package, license } => {
            let report = verify::verify(&package, license.as_deref(), dates::now())?;
            let m = &report.package.manifest;
            println!("package OK: {} {} signed by vendor key {}", m.product, m.release, m.vendor_key.short_id());
            if let Some(l) = report.license {
                println!(
                    "license OK: {} for {}, releases {}, {}",
                    l.terms.license_id_hex(),
                    l.terms.licensee,
                    l.terms.releases,
                    match l.terms.expires {
                        Some(e) => format!("expires {}", dates::describe_expiry(e)),
                        None => "never expires".to_owned(),
                    }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn seal_cmd(a: SealArgs, ks: &Keystore) -> Result<(), SdkError> {
    let log2 = a.chunk_kib.checked_ilog2().filter(|l| a.chunk_kib.is_power_of_two() && (2..=14).contains(l));
    let Some(log2) = log2 else {
        return Err(FormatError::InvalidInput {
            field: "--chunk-kib",
            problem: "must be a power of two from 4 to 16384",
        }
        .into());
    };
    let mut capabilities = Vec::new();
    for d in a.request_dir {
        let (guest, writable) = match d.strip_suffix(":rw") {
            Some(g) => (g.to_owned(), true),
            None => (d.strip_suffix(":ro").unwrap_or(&d).to_owned(), false),
        };
        capabilities.push(Capability::Dir { writable, guest });
    }
    capabilities.extend(a.request_env.into_iter().map(Capability::Env));
    for to in &a.request_connect {
        let endpoint = sealrun_format::net::Endpoint::parse(to)
            .map_err(|problem| FormatError::InvalidInput { field: "--request-connect", problem })?;
        capabilities.push(Capability::Connect(endpoint.to_string()));
    }
    for on in &a.request_listen {
        let addr = sealrun_format::net::parse_listen(on)
            .map_err(|problem| FormatError::InvalidInput { field: "--request-listen", problem })?;
        capabilities.push(Capability::Listen(addr.to_string()));
    }
    if a.request_dns {
        capabilities.push(Capability::Dns);
    }
    if a.request_udp {
        capabilities.push(Capability::Udp);
    }
    let output = a.output.clone().unwrap_or_else(|| a.input.with_extension("sealed"));
    let icon = match &a.icon {
        None => None,
        Some(path) => {
            let bytes = std::fs::read(path).map_err(SdkError::io("cannot read", path))?;
            if let Some(problem) = sealrun_format::package::icon_problem(&bytes) {
                return Err(SdkError::BadIcon { path: path.clone(), problem });
            }
            Some(bytes)
        }
    };
    let opts = SealOptions {
        product: a.product,
        release: a.release,
        display_name: a.name,
        capabilities,
        chunk_size_log2: log2 as u8 + 10,
        progress: true,
        precompile: a.precompile,
        icon,
    };
    let report = match &a.server {
        Some(url) => {
            let c = Client::new(url, token(None)?)?;
            let s = server::seal_with_server(&c, ks, &a.input, &output, &opts, !a.no_upload)?;
            println!(
                "content key for {} {}: {} on {}",
                opts.product,
                opts.release,
                if s.new_key { "made" } else { "reused" },
                c.base()
            );
            if s.uploaded {
                println!("package uploaded; customers can install it with an activation code");
            }
            s.report
        }
        None => seal::seal_file(ks, &a.input, &output, &opts)?,
    };
    let m = &report.header.manifest;
    let secs = report.encrypt_time.as_secs_f64();
    println!(
        "sealed {} {} into {} ({} bytes, {} chunks, {:.2} s, {:.0} MB/s)",
        m.product,
        m.release,
        report.output.display(),
        report.package_len,
        m.layout().chunk_count(),
        secs,
        m.plaintext_len as f64 / secs.max(1e-9) / 1e6
    );
    if m.kind.is_component() && !report.imports.is_empty() {
        let world = if m.kind == AppKind::ComponentHttpProxy { "wasi:http/proxy" } else { "wasi:cli/command" };
        println!("a component for {world}; it imports {}", report.imports.join(", "));
    }
    Ok(())
}

/// `--feature-days NAME=DAYS` as the server's `feature_days` object.
fn feature_day_map(specs: &[String]) -> Result<serde_json::Map<String, serde_json::Value>, SdkError> {
    const BAD: FormatError =
        FormatError::InvalidInput { field: "--feature-days", problem: "must be NAME=DAYS, e.g. beta=30" };
    specs
        .iter()
        .map(|s| {
            let (name, days) = s.split_once('=').ok_or(BAD)?;
            let days: u32 = days.parse().map_err(|_| BAD)?;
            Ok((name.to_owned(), serde_json::Value::from(days)))
        })
        .collect()
}

fn print_provisioned(p: &sealrun_sdk::dongle::Provisioned, signer: &str, issue: &str) {
    println!("provisioned dongle {} on token \"{}\" (serial {})", p.dongle, p.label, p.serial);
    println!("  permitted device: {}", p.device);
    println!("  record signed by {signer} {}", p.vendor.short_id());
    println!("issue its licenses with: {issue} --dongle {} --product ID --licensee NAME -o FILE", p.dongle);
}

fn issue_cmd(a: IssueArgs, ks: &Keystore) -> Result<(), SdkError> {
    let holder = match (&a.device, &a.dongle) {
        (Some(d), _) => issue::Holder::Device(d.parse()?),
        (None, Some(d)) => issue::Holder::Dongle { dongle: d.parse()?, count: a.count },
        (None, None) => unreachable!("clap requires --device or --dongle"),
    };
    let opts = IssueOptions {
        product: a.product,
        releases: a.releases.as_deref().map(issue::parse_range).transpose()?,
        holder,
        licensee: a.licensee,
        not_before: a.not_before.as_deref().map(|s| dates::parse(s, DayEdge::Start)).transpose()?,
        expires: a.expires.as_deref().map(|s| dates::parse(s, DayEdge::End)).transpose()?,
        features: issue::with_expiries(a.features, &a.feature_expires)?,
        meters: a.meters,
        floating: a.floating.map(|seats| (seats, if a.per_process { SeatUnit::Process } else { SeatUnit::Computer })),
        now: dates::now(),
    };
    let bytes = issue::issue(ks, &opts)?;
    issue::write_license(&a.output, &bytes)?;
    if let Some((seats, unit)) = opts.floating {
        println!(
            "issued a floating license for {} with {seats} seat(s), one per {}, for the license manager on {}; wrote {}",
            opts.product,
            unit.as_str(),
            match holder {
                issue::Holder::Device(d) => format!("device {d}"),
                issue::Holder::Dongle { dongle, .. } => format!("dongle {dongle}"),
            },
            a.output.display()
        );
        return Ok(());
    }
    match holder {
        issue::Holder::Device(device) => {
            let lic = sealrun_format::license::License::parse(&bytes)?;
            println!(
                "issued license {} for {} ({}) to device {}; wrote {}",
                lic.terms.license_id_hex(),
                lic.terms.product,
                lic.terms.releases,
                device,
                a.output.display()
            );
        }
        issue::Holder::Dongle { dongle, count } => println!(
            "issued a license for {} sealed to dongle {dongle} ({count} at once); wrote {}",
            opts.product,
            a.output.display()
        ),
    }
    Ok(())
}

fn print_plan(p: &sealrun_format::ledger::ScheduledPlan, mark: &str) {
    let m = |v: u64| format!("{}.{:02}", v / 100, v % 100);
    let from = if p.effective_from == 0 { "the start".to_owned() } else { dates::format(p.effective_from) };
    println!(
        "from {from}: {} {} per license, {} per seat, {} per transfer, {} free a month [{mark}]",
        p.plan.currency,
        m(p.plan.license_fee),
        m(p.plan.seat_fee),
        m(p.plan.transfer_fee),
        p.plan.free_licenses
    );
    for (product, fee) in &p.plan.product_fees {
        println!("    {product}: {} per license", m(*fee));
    }
}

fn token(file: Option<&std::path::Path>) -> Result<zeroize::Zeroizing<String>, SdkError> {
    if let Some(f) = file {
        let t = zeroize::Zeroizing::new(std::fs::read_to_string(f).map_err(SdkError::io("cannot read", f))?);
        return Ok(zeroize::Zeroizing::new(t.trim().to_owned()));
    }
    match std::env::var(client::TOKEN_ENV) {
        Ok(t) if !t.trim().is_empty() => Ok(zeroize::Zeroizing::new(t.trim().to_owned())),
        _ => Err(SdkError::ServerSetup(
            "no vendor token: set SEALSDK_TOKEN or pass --token-file (the operator gives you the token)",
        )),
    }
}

fn write_out(output: Option<&std::path::Path>, text: &str) -> Result<(), SdkError> {
    match output {
        Some(p) => std::fs::write(p, text).map_err(SdkError::io("cannot write", p)),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn server_cmd(a: ServerArgs, ks: &Keystore) -> Result<(), SdkError> {
    use serde_json::{Value, json};
    let url = a.server.ok_or(SdkError::ServerSetup("no server: pass --server URL or set SEALSDK_SERVER"))?;
    let c = Client::new(&url, token(a.token_file.as_deref())?)?;
    let records = LedgerRecords::in_keystore(ks.dir());
    match a.command {
        ServerCommand::Plan(PlanCommand::Show) => {
            let accepted = records.history()?;
            for p in server::plan_history(&c)? {
                let mark = match accepted.iter().find(|a| a.effective_from == p.effective_from) {
                    Some(a) if a.plan == p.plan => "accepted",
                    Some(_) => "CHANGED since you accepted it",
                    None => "not accepted",
                };
                print_plan(&p, mark);
            }
        }
        ServerCommand::Plan(PlanCommand::Accept) => {
            let added = records.accept(&server::plan_history(&c)?, dates::now())?;
            if added.is_empty() {
                println!("you had accepted every plan the server shows");
            }
            for r in added {
                let p = sealrun_format::ledger::ScheduledPlan { effective_from: r.effective_from, plan: r.plan() };
                print_plan(&p, "accepted now");
            }
        }
        ServerCommand::Certify { days } => {
            let not_after = dates::now() + days * 86_400;
            let issuer = server::certify(&c, ks, not_after)?;
            println!(
                "certified the server's issuing key {} until {}; it can now issue licenses for your vendor key {}",
                issuer.short_id(),
                dates::format(not_after),
                ks.vendor_public()?.short_id()
            );
            let p = server::pin_operator(&c, &records, dates::now())?;
            if p.new {
                println!(
                    "pinned the operator key {} that signs your invoices; ledger records start after entry {}",
                    p.operator.short_id(),
                    p.tracking_from
                );
            } else {
                println!("the operator key {} is the one pinned before", p.operator.short_id());
            }
            if p.codes > 0 {
                println!("recorded {} activation code(s) and their limits", p.codes);
            }
            if records.plans()?.is_empty() {
                println!("next: read `sealsdk server plan show` and accept the plan with `sealsdk server plan accept`");
            }
        }
        ServerCommand::Whoami => {
            let v: Value = c.get("/v1/vendor")?;
            println!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
        }
        ServerCommand::Product(ProductCommand::Create { product, name }) => {
            let _: Value = c.send("POST", "/v1/products", &json!({ "product": product, "name": name }), None)?;
            println!("product {product} created");
        }
        ServerCommand::Product(ProductCommand::List) => {
            let v: Vec<Value> = c.get("/v1/products")?;
            for p in v {
                let releases: Vec<String> = p["releases"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let pkg = if r["package_sha256"].is_string() { "" } else { " (no package)" };
                        format!("{}{pkg}", r["release"].as_str().unwrap_or("?"))
                    })
                    .collect();
                println!(
                    "{}\t{}\t{}",
                    p["product"].as_str().unwrap_or("?"),
                    p["name"].as_str().unwrap_or(""),
                    releases.join(", ")
                );
            }
        }
        ServerCommand::Product(ProductCommand::Release { product, release }) => {
            // Only these fields are read: the content key in the answer is skipped, never kept.
            #[derive(serde::Deserialize)]
            struct Made {
                key_id: String,
                created: bool,
            }
            let path = format!("/v1/products/{product}/releases");
            let m: Made = c.send("POST", &path, &json!({ "release": release.to_string() }), None)?;
            let state = if m.created { "made" } else { "exists" };
            let id = m.key_id.get(..16).unwrap_or(&m.key_id);
            println!("content key for {product} {release} {state} on the server (key id {id})");
        }
        ServerCommand::License(ServerLicenseCommand::Issue(i)) => {
            let device = i.device.as_deref().map(str::parse::<DeviceCode>).transpose()?;
            let dongle = i.dongle.as_deref().map(str::parse::<sealrun_format::dongle::DongleId>).transpose()?;
            let mut body = json!({
                "product": i.product,
                "licensee": i.licensee,
                "releases": i.releases,
                "not_before": i.not_before.as_deref().map(|s| dates::parse(s, DayEdge::Start)).transpose()?,
                "expires": i.expires.as_deref().map(|s| dates::parse(s, DayEdge::End)).transpose()?,
            });
            let features = issue::with_expiries(i.features, &i.feature_expires)?;
            body["features"] = json!(features.iter().map(Feature::spec).collect::<Vec<_>>());
            let ends: serde_json::Map<String, Value> =
                features.iter().filter_map(|f| Some((f.name.clone(), json!(f.expires?)))).collect();
            body["feature_expires"] = Value::Object(ends);
            body["meters"] = json!(i.meters.iter().map(Meter::to_string).collect::<Vec<_>>());
            match (device, dongle) {
                (Some(d), _) => body["device"] = json!(d.to_string()),
                (None, Some(d)) => {
                    body["dongle"] = json!(d.to_string());
                    if i.floating.is_none() {
                        body["count"] = json!(i.count);
                    }
                }
                (None, None) => unreachable!("clap requires --device or --dongle"),
            }
            if let Some(seats) = i.floating {
                body["floating"] = json!(seats);
                body["per_process"] = json!(i.per_process);
            }
            let lic: Value = c.send("POST", "/v1/licenses", &body, Some(&client::request_key()))?;
            use base64::Engine;
            let bytes =
                base64::engine::general_purpose::STANDARD.decode(lic["license"].as_str().unwrap_or_default()).map_err(
                    |_| SdkError::Unreachable { url: c.base().into(), reason: "the license is not base64".into() },
                )?;
            let bad = |e: FormatError| SdkError::Unreachable {
                url: c.base().into(),
                reason: format!("the server sent a bad license: {e}"),
            };
            match sealrun_format::license::AnyLicense::parse(&bytes).map_err(bad)? {
                sealrun_format::license::AnyLicense::Plain(parsed) => {
                    records.add_issued(&parsed.terms.license_id, lic["ledger_seq"].as_u64().unwrap_or(0))?;
                    issue::write_license(&i.output, &bytes)?;
                    println!(
                        "issued license {} for {} ({}) to device {}; wrote {}",
                        parsed.terms.license_id_hex(),
                        parsed.terms.product,
                        parsed.terms.releases,
                        device.map(|d| d.to_string()).unwrap_or_default(),
                        i.output.display()
                    );
                }
                sealrun_format::license::AnyLicense::Sealed(sealed) => {
                    let mut id = [0u8; 16];
                    if hex::decode_to_slice(lic["license_id"].as_str().unwrap_or_default(), &mut id).is_ok() {
                        records.add_issued(&id, lic["ledger_seq"].as_u64().unwrap_or(0))?;
                    }
                    issue::write_license(&i.output, &bytes)?;
                    println!(
                        "issued license {} for {} ({}) sealed to dongle {} ({} at once); wrote {}",
                        lic["license_id"].as_str().unwrap_or_default(),
                        i.product,
                        lic["releases"].as_str().unwrap_or_default(),
                        sealed.dongle,
                        i.count,
                        i.output.display()
                    );
                }
            }
        }
        ServerCommand::Dongle(ServerDongleCommand::Provision(ProvisionArgs {
            module,
            slot,
            device,
            pin_file,
            replace,
        })) => {
            let device: DeviceCode = device.parse()?;
            let pin = sealrun_sdk::dongle::pin(pin_file.as_deref())?;
            let vendor = ks.vendor_public()?;
            let made: Value = c.send("POST", "/v1/dongles", &json!({ "device": device.to_string() }), None)?;
            let p = sealrun_sdk::dongle::provision_from_server(made, (&vendor, &device), &module, slot, &pin, replace)
                .map_err(|e| match e {
                    SdkError::Invalid(e) => SdkError::Unreachable {
                        url: c.base().into(),
                        reason: format!("the server sent a bad dongle: {e}"),
                    },
                    other => other,
                })?;
            print_provisioned(&p, "the server's issuing key for vendor", "sealsdk server license issue");
        }
        ServerCommand::Dongle(ServerDongleCommand::List) => {
            let list: Value = c.get("/v1/dongles")?;
            let all = list.as_array().cloned().unwrap_or_default();
            if all.is_empty() {
                println!("no dongles provisioned through the server");
            }
            for d in all {
                println!(
                    "{}  device {}  since {}",
                    d["dongle_id"].as_str().unwrap_or_default(),
                    d["device"].as_str().unwrap_or_default(),
                    dates::format(d["created_at"].as_u64().unwrap_or_default())
                );
            }
        }
        ServerCommand::License(ServerLicenseCommand::List { product }) => {
            let mut after = 0i64;
            loop {
                let q = match &product {
                    Some(p) => format!("/v1/licenses?after={after}&product={p}"),
                    None => format!("/v1/licenses?after={after}"),
                };
                let page: Value = c.get(&q)?;
                for l in page["licenses"].as_array().into_iter().flatten() {
                    let state = if l["revoked_at"].is_null() { "active" } else { "revoked" };
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        l["license_id"].as_str().unwrap_or("?"),
                        l["product"].as_str().unwrap_or("?"),
                        l["releases"].as_str().unwrap_or("?"),
                        l["licensee"].as_str().unwrap_or(""),
                        state
                    );
                }
                match page["next"].as_i64() {
                    Some(n) => after = n,
                    None => break,
                }
            }
        }
        ServerCommand::License(ServerLicenseCommand::Revoke { license_id }) => {
            let _: Value = c.send("POST", &format!("/v1/licenses/{license_id}/revoke"), &json!({}), None)?;
            println!("license {license_id} revoked");
        }
        ServerCommand::License(ServerLicenseCommand::Export { format, output }) => {
            write_out(output.as_deref(), &c.get_text(&format!("/v1/licenses/export?format={format}"))?)?;
        }
        ServerCommand::Code(CodeCommand::Create {
            product,
            releases,
            licensee,
            features,
            feature_days,
            meters,
            license_days,
            max_activations,
            transfer_limit,
            expires,
            count,
        }) => {
            let body = json!({
                "product": product,
                "releases": releases,
                "licensee": licensee,
                "features": features.iter().map(Feature::spec).collect::<Vec<_>>(),
                "feature_days": feature_day_map(&feature_days)?,
                "meters": meters.iter().map(Meter::to_string).collect::<Vec<_>>(),
                "license_days": license_days,
                "max_activations": max_activations,
                "transfer_limit": transfer_limit,
                "expires_at": expires.as_deref().map(|s| dates::parse(s, DayEdge::End)).transpose()?,
                "count": count,
            });
            let r: Value = c.send("POST", "/v1/codes", &body, None)?;
            server::record_codes(&records, &r["codes"])?;
            for code in r["codes"].as_array().into_iter().flatten() {
                println!("{}", code["code"].as_str().unwrap_or("?"));
            }
        }
        ServerCommand::Code(CodeCommand::List { product }) => {
            let q = product.map_or_else(|| "/v1/codes".to_owned(), |p| format!("/v1/codes?product={p}"));
            let r: Value = c.get(&q)?;
            for code in r["codes"].as_array().into_iter().flatten() {
                let state = if code["revoked_at"].is_null() { "" } else { " revoked" };
                println!(
                    "{}\t…{}\t{}\t{}/{} used\t{}/{} transfers{state}",
                    code["id"],
                    code["hint"].as_str().unwrap_or("?"),
                    code["product"].as_str().unwrap_or("?"),
                    code["used"],
                    code["max_activations"],
                    code["transfers"],
                    code["transfer_limit"]
                );
            }
        }
        ServerCommand::Code(CodeCommand::Revoke { id }) => {
            let _: Value = c.send("POST", &format!("/v1/codes/{id}/revoke"), &json!({}), None)?;
            println!("code {id} revoked");
        }
        ServerCommand::Ledger { output } => write_out(output.as_deref(), &c.get_text("/v1/ledger")?)?,
        ServerCommand::Invoice { period, format, output } => {
            write_out(output.as_deref(), &c.get_text(&format!("/v1/invoices/{period}?format={format}"))?)?;
        }
    }
    Ok(())
}
