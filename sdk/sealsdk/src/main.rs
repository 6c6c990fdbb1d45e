//! `sealsdk`: the vendor's command-line tool. Parses flags and dispatches to
//! the `sealrun_sdk` library; see `sealsdk --help` and the README for the
//! exit codes.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sealrun_format::device::DeviceCode;
use sealrun_format::limits::DEFAULT_CHUNK_SIZE_LOG2;
use sealrun_format::package::Capability;
use sealrun_format::{Error as FormatError, Release};
use sealrun_sdk::dates::{self, DayEdge};
use sealrun_sdk::inspect::{self, Artifact};
use sealrun_sdk::issue::{self, IssueOptions};
use sealrun_sdk::keystore::{self, Keystore};
use sealrun_sdk::seal::{self, SealOptions};
use sealrun_sdk::{SdkError, verify};

/// Exit codes; the README documents them.
mod exit {
    pub(crate) const VERIFY_FAILED: u8 = 1;
    // 2 is clap's usage error.
    pub(crate) const BAD_INPUT: u8 = 3;
    pub(crate) const KEYSTORE: u8 = 4;
    pub(crate) const WRITE_FAILED: u8 = 5;
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
    /// Show what a package or license says (no secrets)
    Inspect {
        /// A .sealed or .license file
        file: PathBuf,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
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
    /// Output package [default: INPUT with .sealed]
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Ask the user for a directory at this guest path (append :rw if the app writes there)
    #[arg(long = "request-dir", value_name = "GUEST[:rw]")]
    request_dir: Vec<String>,
    /// Ask the user for this environment variable
    #[arg(long = "request-env", value_name = "NAME")]
    request_env: Vec<String>,
    /// Chunk size in KiB (a power of two from 4 to 16384)
    #[arg(long, default_value_t = 1 << (DEFAULT_CHUNK_SIZE_LOG2 - 10), value_name = "KIB")]
    chunk_kib: u32,
    /// Also ship native code precompiled for TARGET, e.g. x86_64-linux (repeatable; used only where users trust your key with native code)
    #[arg(long, value_name = "TARGET")]
    precompile: Vec<String>,
}

#[derive(Subcommand)]
enum LicenseCommand {
    /// Issue a license bound to one device
    Issue(IssueArgs),
}

#[derive(Args)]
struct IssueArgs {
    /// Product id
    #[arg(long)]
    product: String,
    /// The customer's device code (from `sealrun id`)
    #[arg(long)]
    device: String,
    /// Who the license is for
    #[arg(long)]
    licensee: String,
    /// Last day of validity, YYYY-MM-DD (UTC, inclusive) or RFC 3339 [default: never expires]
    #[arg(long)]
    expires: Option<String>,
    /// First day of validity [default: one day before now]
    #[arg(long)]
    not_before: Option<String>,
    /// Enable a feature (repeatable)
    #[arg(long = "feature")]
    features: Vec<String>,
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
            };
            print!("{out}");
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
    let output = a.output.unwrap_or_else(|| a.input.with_extension("sealed"));
    let opts = SealOptions {
        product: a.product,
        release: a.release,
        display_name: a.name,
        capabilities,
        chunk_size_log2: log2 as u8 + 10,
        progress: true,
        precompile: a.precompile,
    };
    let report = seal::seal_file(ks, &a.input, &output, &opts)?;
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
    Ok(())
}

fn issue_cmd(a: IssueArgs, ks: &Keystore) -> Result<(), SdkError> {
    let device: DeviceCode = a.device.parse()?;
    let opts = IssueOptions {
        product: a.product,
        releases: a.releases.as_deref().map(issue::parse_range).transpose()?,
        device,
        licensee: a.licensee,
        not_before: a.not_before.as_deref().map(|s| dates::parse(s, DayEdge::Start)).transpose()?,
        expires: a.expires.as_deref().map(|s| dates::parse(s, DayEdge::End)).transpose()?,
        features: a.features,
        now: dates::now(),
    };
    let bytes = issue::issue(ks, &opts)?;
    issue::write_license(&a.output, &bytes)?;
    let lic = sealrun_format::license::License::parse(&bytes)?;
    println!(
        "issued license {} for {} ({}) to device {}; wrote {}",
        lic.terms.license_id_hex(),
        lic.terms.product,
        lic.terms.releases,
        device,
        a.output.display()
    );
    Ok(())
}
