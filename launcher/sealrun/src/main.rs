//! `sealrun`: runs sealed WebAssembly apps. Parses flags and dispatches to
//! the `sealrun` library; the README lists every exit code.
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sealrun::cache::CodeCache;
use sealrun::launch;
use sealrun::launch::Source;
use sealrun::native::TrustPolicy;
use sealrun::runner::package_hints;
use sealrun::runner::{self, DirGrant, GuestConfig};
use sealrun::ui::{Stderr, Ui, human_bytes};
use sealrun::{LaunchError, desktop, device, doctor, dongle, floating, gui, online, store};
use sealrun_format::VendorPublicKey;

#[derive(Parser)]
#[command(
    name = "sealrun",
    version,
    about = "Run sealed WebAssembly apps licensed to this device",
    after_help = "Run a package directly: sealrun tool.sealed -- ARGS",
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a sealed app
    Run(RunArgs),
    /// Print this device's code, to send to a vendor for a license
    Id,
    /// Manage installed licenses
    #[command(subcommand)]
    License(LicenseCommand),
    /// Get a license for this device with an activation code
    Activate {
        /// The activation code from the vendor
        code: String,
        /// The vendor's licensing server, e.g. https://licenses.example
        #[arg(long, env = online::SERVER_ENV, value_name = "URL")]
        server: Option<String>,
    },
    /// Download an app and its license in one step: sealrun install URL --code CODE
    Install {
        /// The product's address, e.g. https://licenses.example/products/com.acme.tool
        url: String,
        /// The activation code from the vendor
        #[arg(long)]
        code: String,
        /// Folder for the package [default: $XDG_DATA_HOME/sealrun/apps]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Also add the app to the desktop's menu, with its name and icon
        #[arg(long)]
        menu: bool,
    },
    /// Give this device's activation back, so the license can move to another device
    Deactivate {
        /// The app's package (*.sealed)
        package: PathBuf,
    },
    /// Compile an app ahead of time into the encrypted cache (e.g. from an installer)
    Prepare {
        /// The package (*.sealed)
        package: PathBuf,
        /// Use this license file instead of searching
        #[arg(long)]
        license: Option<PathBuf>,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Manage the encrypted compiled-code cache
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Decide whose precompiled native code may run (none by default)
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Hardware keys (dongles)
    #[command(subcommand)]
    Dongle(DongleCommand),
    /// Show what the launcher sees (for support tickets)
    Doctor,
    /// Open packages with a double-click: register sealrun with this user's desktop
    #[command(subcommand)]
    Desktop(DesktopCommand),
}

#[derive(Subcommand)]
enum DesktopCommand {
    /// Register sealrun as the handler of *.sealed packages, with its icon (for this user, no root)
    Install,
    /// Remove that registration and the menu entries of apps
    Uninstall,
}

#[derive(Subcommand)]
enum DongleCommand {
    /// List attached tokens and what they license
    List {
        /// Also log in (once per token) to show the terms of the licenses sealed to each
        #[arg(long)]
        terms: bool,
        #[command(flatten)]
        token: TokenArgs,
    },
}

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

#[derive(Subcommand)]
enum TrustCommand {
    /// Let apps from this vendor run their precompiled native code, outside the wasm sandbox
    AllowNative {
        /// A package from the vendor (*.sealed), or the vendor key in hex
        vendor: String,
    },
    /// Stop running a vendor's native code (apps compile from wasm again)
    Remove {
        /// A package from the vendor (*.sealed), or the vendor key in hex
        vendor: String,
    },
    /// List vendors whose native code may run
    List,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// List cache entries, least recently used first
    List,
    /// Print the cache's total size and its cap
    Size,
    /// Remove every entry (apps compile again on their next launch)
    Clear,
}

#[derive(Args, Clone)]
struct RunArgs {
    /// The package (*.sealed)
    package: PathBuf,
    /// Use this license file instead of searching
    #[arg(long)]
    license: Option<PathBuf>,
    /// Grant a directory: HOST[::GUEST][:ro] (repeatable)
    #[arg(long = "dir", value_name = "HOST[::GUEST][:ro]")]
    dirs: Vec<String>,
    /// Give the app an environment variable: NAME=VALUE, or NAME to pass this one through (repeatable)
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    env: Vec<String>,
    /// Memory limit for the app, in MiB
    #[arg(long, default_value_t = runner::DEFAULT_MAX_MEMORY_MIB, value_name = "MIB")]
    max_memory: u64,
    /// Stop the app after this many seconds [default: no limit]
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// Neither read nor write the compiled-code cache (compile every time)
    #[arg(long)]
    no_cache: bool,
    #[command(flatten)]
    token: TokenArgs,
    /// Take a seat of a floating license from this license server (sealrun-floatd) [default: $SEALRUN_LICENSE_SERVER, the config file, or a *.floating file]
    #[arg(long, value_name = "HOST:PORT")]
    license_server: Option<String>,
    /// When every floating seat is in use, wait in line for one instead of giving up
    #[arg(long)]
    wait: bool,
    /// What to do when the floating seat is lost while the app runs
    #[arg(long, value_enum, default_value_t = SeatLoss::Pause)]
    on_seat_loss: SeatLoss,
    /// Started from a desktop (the file manager's double-click): show messages in dialogs as well,
    /// log them, and open console apps in a terminal window
    #[arg(long)]
    desktop: bool,
    /// Arguments for the app (after --)
    #[arg(last = true)]
    args: Vec<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SeatLoss {
    /// Pause the app until the seat is back
    Pause,
    /// Stop the app
    Stop,
}

#[derive(Subcommand)]
enum LicenseCommand {
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

const SUBCOMMANDS: &[&str] = &[
    "run",
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

/// Zeroes freed memory while a launch handles secrets (see `scrub`).
#[global_allocator]
static ALLOC: sealrun::scrub::ScrubbingAlloc = sealrun::scrub::ScrubbingAlloc;

fn main() -> ExitCode {
    // Before anything else, while the process has one thread.
    dongle::take_pin_from_env();
    if std::env::var_os("SEALRUN_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("SEALRUN_LOG"))
            .with_writer(std::io::stderr)
            .init();
    }
    let cli = Cli::parse_from(normalise_args(std::env::args_os().collect()));
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sealrun: {}", sealrun_format::text::shown_lines(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// A package whose path holds control characters is refused before it is
/// read: the path is shown in messages, dialogs and the log, where a line
/// break or an escape sequence in a downloaded file's name could forge
/// text ("your copy is blocked, call …").
fn check_package_path(package: &std::path::Path) -> Result<(), LaunchError> {
    let text = package.to_string_lossy();
    if text.chars().any(sealrun_format::text::is_escaped_when_shown) {
        return Err(LaunchError::Usage(format!(
            "the package's path {} holds control characters (line breaks or escape sequences); rename the file",
            sealrun_format::text::shown(&text)
        )));
    }
    Ok(())
}

fn dispatch(command: Command) -> Result<ExitCode, LaunchError> {
    if let Command::Run(a) = &command
        && !a.desktop
    {
        check_package_path(&a.package)?;
    }
    match command {
        Command::Run(a) if a.desktop => Ok(run_from_desktop(a)),
        Command::Run(a) => run(a, &Stderr).map(ExitCode::from),
        Command::Id => {
            let d = device::load_or_create()?;
            println!("{}", d.code);
            Ok(ExitCode::SUCCESS)
        }
        Command::License(LicenseCommand::Add { file, .. })
            if file.extension().is_some_and(|e| e == sealrun::floating::FLOATING_EXT) =>
        {
            let (dest, f) = sealrun::floating::install(&file)?;
            let what = f.product.as_deref().map_or_else(|| "every product".to_owned(), |p| p.to_owned());
            println!("installed the floating license server {} for {what} as {}", f.server, dest.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::License(LicenseCommand::Add { file, menu }) => {
            let d = device::load_or_create()?;
            // The package is checked (once) before the license is stored.
            let manifest = menu.as_deref().map(launch::read_verified_manifest).transpose()?;
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
                add_menu_entry(&package, &m)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::License(LicenseCommand::List) => {
            let all = store::all();
            if all.is_empty() {
                println!("no licenses installed");
            }
            for p in all {
                println!("{}", p.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Activate { code, server } => {
            let server = server.or_else(configured_activation_server).ok_or_else(|| {
                LaunchError::Usage(
                    "which licensing server? Pass --server URL (the vendor tells you), or set SEALRUN_SERVER \
                     or activation_server in the config file"
                        .into(),
                )
            })?;
            println!("{}", activate(&server, &code)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Install { url, code, dir, menu } => {
            use std::io::IsTerminal;
            let d = device::load_or_create()?;
            let dir = dir.unwrap_or_else(online::apps_dir);
            let i = online::install(&url, &code, &dir, &d, std::io::stderr().is_terminal())?;
            println!("installed {} {} as {}", i.name, i.release, i.package.display());
            println!("license: {}", i.license.display());
            println!("run it with: sealrun {}", i.package.display());
            if menu {
                add_menu_entry(&i.package, &launch::read_verified_manifest(&i.package)?)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Deactivate { package } => {
            let d = device::load_or_create()?;
            let n = online::deactivate(&package, &d)?;
            println!(
                "gave back {n} activation(s); the license was removed from this device and can be activated on another"
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Prepare { package, license, token } => prepare(&package, license.as_deref(), &token.options()),
        Command::Dongle(DongleCommand::List { terms, token }) => dongle_list(&token.options(), terms),
        Command::Cache(c) => cache_command(c),
        Command::Trust(t) => trust_command(t),
        Command::Doctor => {
            print!("{}", doctor::report());
            Ok(ExitCode::SUCCESS)
        }
        Command::Desktop(c) => desktop_command(c),
    }
}

/// This launcher's own path, for desktop entries.
fn current_exe() -> Result<PathBuf, LaunchError> {
    std::env::current_exe().map_err(|source| LaunchError::Io {
        action: "cannot find",
        path: PathBuf::from("this program's own path"),
        source,
    })
}

/// Adds `package`'s app to the menu with the manifest `m`, which the caller
/// read with [`launch::read_verified_manifest`]: the entry shows its name
/// and icon, which only its vendor may set.
fn add_menu_entry(package: &std::path::Path, m: &sealrun_format::package::Manifest) -> Result<(), LaunchError> {
    let entry = desktop::add_app_entry(
        &current_exe()?,
        package,
        &m.vendor_key,
        &m.product,
        &m.display_name,
        m.icon.as_deref(),
    )?;
    println!("added {} to the menu ({})", m.display_name, entry.display());
    Ok(())
}

fn desktop_command(c: DesktopCommand) -> Result<ExitCode, LaunchError> {
    let done = match c {
        DesktopCommand::Install => {
            let exe = current_exe()?;
            let r = desktop::install(&exe)?;
            println!("*.sealed packages now open with {} for this user", exe.display());
            r
        }
        DesktopCommand::Uninstall => {
            let r = desktop::uninstall()?;
            if r.files.is_empty() {
                println!("sealrun was not registered with this user's desktop");
            } else {
                println!("removed sealrun's desktop registration for this user");
            }
            r
        }
    };
    for f in &done.files {
        println!("  {}", f.display());
    }
    for n in &done.notes {
        eprintln!("sealrun: note: {n}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A launch from a file manager: the same run and the same messages and
/// exit code, with the messages also in dialogs and the log, and console
/// apps in a terminal window.
fn run_from_desktop(a: RunArgs) -> ExitCode {
    use std::io::IsTerminal;
    let front = gui::Desktop::new(&a.package);
    if let Err(e) = check_package_path(&a.package) {
        let text = e.to_string();
        eprintln!("sealrun: {text}");
        front.error(&text);
        return ExitCode::from(e.exit_code());
    }
    let mut front = front;
    let header = launch::read_header(&a.package).ok();
    if let Some(h) = &header {
        front.set_app(&h.manifest.display_name);
    }
    let console = header.as_ref().is_some_and(|h| h.manifest.kind == sealrun_format::package::AppKind::Console);
    let attended = std::io::stdin().is_terminal() || std::io::stdout().is_terminal();
    let mut activated = false;
    if console && !attended && !gui::in_terminal() {
        // A license problem is told here, in a dialog alone, rather than
        // in a terminal window opened only to say it.
        if let Err(e) = license_precheck(&a)
            && let Some(code) = handle_launch_error(&front, e, &mut activated)
        {
            return ExitCode::from(code);
        }
        match gui::Terminal::find() {
            Some(term) => {
                front.log(&format!("opening in a terminal window ({})", term.program().display()));
                let args: Vec<OsString> = normalise_args(std::env::args_os().collect()).into_iter().skip(1).collect();
                match current_exe()
                    .map_err(|e| e.to_string())
                    .and_then(|exe| term.run(&exe, &args).map_err(|e| e.to_string()))
                {
                    Ok(status) => {
                        return ExitCode::from(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(u8::MAX));
                    }
                    Err(e) => {
                        front.log(&format!("cannot open {}: {e}; running without a terminal", term.program().display()))
                    }
                }
            }
            None => front.log(&format!(
                "no terminal emulator found (set ${} or $TERMINAL); running without one",
                gui::TERMINAL_ENV
            )),
        }
    }
    loop {
        let code = match run(a.clone(), &front) {
            Ok(code) => {
                front.log(&format!("the app ended with exit code {code}"));
                code
            }
            Err(e) => match handle_launch_error(&front, e, &mut activated) {
                Some(code) => code,
                None => continue,
            },
        };
        gui::hold(front.app(), code);
        return ExitCode::from(code);
    }
}

/// Prints a launch error and shows it; a missing license gets its own
/// dialog, whose Activate… may mend it (once). `None`: activated, try
/// again; else the exit code.
fn handle_launch_error(front: &gui::Desktop, e: LaunchError, activated: &mut bool) -> Option<u8> {
    eprintln!("sealrun: {}", sealrun_format::text::shown_lines(&e.to_string()));
    let text = e.to_string();
    match &e {
        LaunchError::NoLicense { device, .. } if !*activated => {
            let server = activation_server();
            match front.no_license(&text, &device.to_string(), server.as_deref()) {
                gui::LicenseChoice::Activate(code) => match activate(server.as_deref().unwrap_or_default(), &code) {
                    Ok(message) => {
                        println!("{message}");
                        front.info(&message);
                        *activated = true;
                        None
                    }
                    Err(e) => {
                        eprintln!("sealrun: {}", sealrun_format::text::shown_lines(&e.to_string()));
                        front.error(&e.to_string());
                        Some(e.exit_code())
                    }
                },
                gui::LicenseChoice::Close => Some(e.exit_code()),
            }
        }
        _ => {
            front.error(&text);
            Some(e.exit_code())
        }
    }
}

/// Whether a local license opens `a.package`, checked before a terminal
/// window is opened for it. Skipped (Ok) where the check would have to ask
/// something: a floating license server (a seat), or licenses sealed to
/// dongles (a PIN); the launch in the window deals with those.
fn license_precheck(a: &RunArgs) -> Result<(), LaunchError> {
    let product = launch::read_header(&a.package)?.manifest.product;
    let dongle_licenses = std::fs::read_dir(store::dongle_licenses_dir()).is_ok_and(|mut d| d.next().is_some());
    let floating_file = a.license.as_ref().is_some_and(|l| l.extension().is_some_and(|e| e == floating::FLOATING_EXT));
    if dongle_licenses || floating_file || floating::find_server(a.license_server.as_deref(), &product)?.is_some() {
        return Ok(());
    }
    // The key is unwrapped and dropped at once; this process then waits for
    // the window, so it is hardened and scrubbed as a launch is.
    sealrun::hardening::harden_process();
    let scrubbing = sealrun::scrub::Scrubbing::start();
    let checked = device::load_or_create().and_then(|device| {
        launch::open_with(&a.package, a.license.as_deref(), &device, sealrun::clock::now(), &a.token.options())
            .map(drop)
    });
    drop(scrubbing);
    sealrun::scrub::scrub_stack();
    checked
}

/// The licensing server for activations: `$SEALRUN_SERVER`, else the
/// config file's `activation_server`.
fn activation_server() -> Option<String> {
    std::env::var(online::SERVER_ENV).ok().filter(|s| !s.is_empty()).or_else(configured_activation_server)
}

fn configured_activation_server() -> Option<String> {
    sealrun::config::Config::load().ok().and_then(|c| c.activation_server)
}

/// Redeems an activation code; the line that says what was installed.
fn activate(server: &str, code: &str) -> Result<String, LaunchError> {
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

/// Runs the app; its exit code.
fn run(mut a: RunArgs, ui: &dyn Ui) -> Result<u8, LaunchError> {
    // What the user set for this app in the config file comes first.
    let mut settings_used = false;
    if let Ok(h) = launch::read_header(&a.package) {
        let mut config = sealrun::config::Config::load()?;
        match config.take_app_settings(&h.manifest.product, &h.manifest.vendor_key) {
            Ok(Some(app)) => {
                settings_used = true;
                a.dirs.splice(0..0, app.dirs);
                a.env.splice(0..0, app.env);
                if a.args.is_empty() {
                    a.args = app.args;
                }
            }
            Ok(None) => {}
            Err(other) => eprintln!(
                "sealrun: note: the settings for {} in {} belong to the packages of vendor {} ({}), and this \
                 package is signed by vendor {}: they are not applied. If you trust this vendor with them, set \
                 vendor = \"{}\" under [apps.\"{}\"].",
                other.product,
                sealrun::config::file().display(),
                other.theirs,
                other.bound_in.display(),
                other.this,
                other.this,
                other.product
            ),
        }
    }
    let dirs = a.dirs.iter().map(|d| DirGrant::parse(d)).collect::<Result<Vec<_>, _>>().map_err(LaunchError::Usage)?;
    // Checked before anything is decrypted, like every other argument.
    let timeout = runner::parse_timeout(a.timeout).map_err(LaunchError::Usage)?;
    let mut env = Vec::new();
    for e in &a.env {
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => env.push((k.to_owned(), v.to_owned())),
            None if !e.is_empty() => {
                if let Ok(v) = std::env::var(e) {
                    env.push((e.clone(), v));
                }
            }
            _ => {
                return Err(LaunchError::Usage(format!("--env {e:?}: expected NAME=VALUE or NAME")));
            }
        }
    }
    for d in &dirs {
        if !d.host.is_dir() {
            return Err(LaunchError::Usage(format!("--dir: {} is not a directory", d.host.display())));
        }
    }
    if !sealrun::hardening::harden_process() {
        tracing::debug!("process hardening is not available on this system");
    }
    let cache = if a.no_cache { None } else { Some(CodeCache::from_env()?) };
    // Keys, plaintext and compiled code pass through the heap and the stack
    // until the module is loaded: freed blocks are zeroed until then, and
    // the stack below this frame right after.
    let scrubbing = sealrun::scrub::Scrubbing::start();
    let device = device::load_or_create()?;
    let (opened, seat) = open_for_run(&a, &device)?;
    // The seat goes back however the run ends: normally (the guard), or
    // stopped by a signal, the timeout or a lost dongle (the stop hook).
    let _seat_guard = seat.clone().map(floating::SeatGuard);
    if let Some(seat) = &seat {
        let s = seat.clone();
        runner::at_stop(move || s.release());
    }
    for hint in package_hints(&opened.manifest, &dirs, &env) {
        eprintln!("sealrun: note: {hint}");
    }
    // Held until the process ends: one of the runs the license's count allows.
    let _run_slot = dongle::RunSlot::claim(&opened.license, &device.secret)?;
    let engine = runner::engine()?;
    // A floating seat is renewed while the app decrypts and compiles, and
    // once more just before it starts.
    let keep_alive = seat.clone().map(floating::KeepAlive::start);
    let (product, vendor) = (opened.manifest.product.clone(), opened.manifest.vendor_key);
    let mut loaded = opened.load(&device, engine, cache.as_ref(), ui)?;
    if settings_used {
        // Signature and license checked out: the settings are this vendor's.
        sealrun::config::remember_app_vendor(&product, &vendor);
    }
    drop(keep_alive);
    drop(scrubbing);
    sealrun::scrub::scrub_stack();
    if let Some(seat) = &seat {
        seat.ensure_live()?;
    }
    let on_loss = match a.on_seat_loss {
        SeatLoss::Pause => floating::OnSeatLoss::Pause,
        SeatLoss::Stop => floating::OnSeatLoss::Stop,
    };
    let watch = match (loaded.dongle.take(), seat) {
        (Some(attached), _) => Some(Box::new(dongle::DongleWatch::new(attached)?) as Box<dyn runner::Watch>),
        (None, Some(seat)) => Some(Box::new(floating::SeatWatch::new(seat, on_loss)) as Box<dyn runner::Watch>),
        (None, None) => None,
    };
    tracing::debug!(source = ?loaded.source, "module ready");
    let program_name = a.package.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let cfg = GuestConfig { program_name, args: a.args, env, dirs, max_memory_mib: a.max_memory, timeout };
    let code = runner::run_watched(&loaded.engine, &loaded.module, &cfg, watch)?;
    // WASI preview 1 only lets an app exit with 0..=125 (higher values trap).
    Ok(u8::try_from(code).unwrap_or(u8::MAX))
}

/// The package opened with a local license or a floating seat, telling the
/// user when they wait in line for one.
fn open_for_run(
    a: &RunArgs,
    device: &device::Device,
) -> Result<(launch::Opened, Option<std::sync::Arc<floating::Seat>>), LaunchError> {
    let mut last = None;
    let mut on_queued = |product: &str, server: &str, position: u32, seats: u32| {
        if last != Some(position) {
            last = Some(position);
            let all = if seats == 1 { "the only seat".to_owned() } else { format!("all {seats} seats") };
            eprintln!("sealrun: {all} of {product} are in use; waiting in line (position {position}) for {server}…");
        }
    };
    let how = launch::RunLicense {
        license: a.license.as_deref(),
        tokens: &a.token.options(),
        license_server: a.license_server.as_deref(),
        wait: a.wait,
    };
    launch::open_for_run(&a.package, &how, device, sealrun::clock::now(), &mut on_queued)
}

fn prepare(
    package: &std::path::Path,
    license: Option<&std::path::Path>,
    tokens: &dongle::Options,
) -> Result<ExitCode, LaunchError> {
    let cache = CodeCache::from_env()?;
    if !cache.enabled() {
        return Err(LaunchError::Usage(format!(
            "the compiled-code cache is off ({}=0), so there is nothing to prepare; unset it and try again",
            sealrun::cache::CACHE_MAX_ENV
        )));
    }
    sealrun::hardening::harden_process();
    let device = device::load_or_create()?;
    let opened = launch::open_with(package, license, &device, sealrun::clock::now(), tokens)?;
    let engine = runner::engine()?;
    let loaded = opened.load(&device, engine, Some(&cache), &Stderr)?;
    let name = format!("{} {}", loaded.manifest.display_name, loaded.manifest.release);
    match loaded.source {
        Source::Cache { entry } => println!("{name} is ready: already compiled for this device ({})", entry.display()),
        Source::Compiled { took, stored: Some((entry, size)) } => println!(
            "{name} is ready: compiled in {:.1} s, cached encrypted ({}) in {}",
            took.as_secs_f64(),
            human_bytes(size),
            entry.display()
        ),
        Source::Native { took, stored: Some((entry, size)) } => println!(
            "{name} is ready: the vendor's precompiled code verified and loaded in {:.1} s, cached encrypted ({}) in {}",
            took.as_secs_f64(),
            human_bytes(size),
            entry.display()
        ),
        Source::Compiled { stored: None, .. } | Source::Native { stored: None, .. } => {
            return Err(LaunchError::Io {
                action: "cannot write the compiled-code cache in",
                path: cache.dir().to_owned(),
                source: std::io::Error::other("the app compiled, but its cache entry could not be saved (see above)"),
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn dongle_list(opts: &dongle::Options, terms: bool) -> Result<ExitCode, LaunchError> {
    let (tokens, problems) = dongle::list(opts)?;
    for p in &problems {
        eprintln!("sealrun: warning: {p}");
    }
    let device = device::load_or_create()?;
    let sealed: Vec<(PathBuf, sealrun_format::dongle::SealedLicense)> = std::fs::read_dir(store::dongle_licenses_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter_map(|p| {
            let bytes = store::read_license_file(&p).ok()?;
            sealrun_format::dongle::SealedLicense::parse(&bytes).ok().map(|s| (p, s))
        })
        .collect();
    if tokens.is_empty() {
        println!("no token is attached");
    }
    let mut tried: Vec<String> = Vec::new();
    for t in &tokens {
        let v = &t.token;
        println!("token \"{}\" (serial {}, {}) via {}", v.label, v.serial, v.model, t.module.display());
        match &v.record {
            None => println!("  not a Sealrun dongle"),
            Some(Err(e)) => println!("  DAMAGED attach record: {e}"),
            Some(Ok(r)) => {
                let here = if r.device == device.code { "this device" } else { "ANOTHER device" };
                println!(
                    "  dongle {}, vendor {}, permitted on {here} ({})",
                    r.dongle,
                    r.vendor_key.short_id(),
                    r.device
                );
                let mine: Vec<_> = sealed.iter().filter(|(_, s)| s.dongle == r.dongle).collect();
                if mine.is_empty() {
                    println!("  no installed license is sealed to it");
                    continue;
                }
                // Their terms need the token: only with --terms, one login
                // per token (the same token may show through two modules),
                // and a refusal is reported, never retried.
                let opened = if terms && !tried.contains(&v.serial) {
                    tried.push(v.serial.clone());
                    let envelopes: Vec<_> = mine.iter().map(|(_, s)| s).collect();
                    match opts.pin(&v.label).and_then(|pin| dongle::open_licenses(t, &pin, &envelopes)) {
                        Ok(o) => Some(o),
                        Err(e) => {
                            println!("  cannot show the terms: {e}");
                            None
                        }
                    }
                } else {
                    None
                };
                for (i, (path, _)) in mine.iter().enumerate() {
                    match opened.as_ref().and_then(|o| o.get(i)) {
                        Some(Ok(l)) => println!(
                            "  license {}: {} {} for {}, {}, expires {}",
                            path.display(),
                            l.terms.product,
                            l.terms.releases,
                            l.terms.licensee,
                            l.terms.binding.describe(),
                            l.terms.expires.map(sealrun_host::time::rfc3339).unwrap_or_else(|| "never".into())
                        ),
                        Some(Err(e)) => println!("  license {}: DAMAGED: {e}", path.display()),
                        None => {
                            println!("  license {} (`sealrun dongle list --terms` shows its terms)", path.display())
                        }
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cache_command(c: CacheCommand) -> Result<ExitCode, LaunchError> {
    let cache = CodeCache::from_env()?;
    match c {
        CacheCommand::List => {
            let entries = cache.list();
            if entries.is_empty() {
                println!("the compiled-code cache in {} is empty", cache.dir().display());
            }
            for e in entries {
                let used = e.last_used.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                println!(
                    "{:>9}  last used {}  {}  {}",
                    human_bytes(e.size),
                    sealrun_host::time::rfc3339(used),
                    e.label,
                    e.path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
                );
            }
        }
        CacheCommand::Size => {
            let entries = cache.list();
            let total: u64 = entries.iter().map(|e| e.size).sum();
            let cap = if cache.enabled() { human_bytes(cache.cap()) } else { "off".into() };
            let n = entries.len();
            let noun = if n == 1 { "entry" } else { "entries" };
            println!("{} in {n} {noun} (cap {cap}) in {}", human_bytes(total), cache.dir().display());
        }
        CacheCommand::Clear => {
            let (n, bytes) = cache.clear()?;
            let noun = if n == 1 { "entry" } else { "entries" };
            println!("removed {n} {noun} ({}) from {}", human_bytes(bytes), cache.dir().display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A vendor key from hex, or from the header of a package.
fn vendor_of(arg: &str) -> Result<(VendorPublicKey, String), LaunchError> {
    if let Some(key) = sealrun::native::parse_key(arg) {
        return Ok((key, String::new()));
    }
    let path = std::path::Path::new(arg);
    let header = launch::read_header(path)?;
    let m = header.manifest;
    Ok((m.vendor_key, format!("{} ({})", m.display_name, m.product)))
}

fn trust_command(t: TrustCommand) -> Result<ExitCode, LaunchError> {
    let mut policy = TrustPolicy::load()?;
    let file = sealrun::native::trust_file();
    match t {
        TrustCommand::AllowNative { vendor } => {
            let (key, note) = vendor_of(&vendor)?;
            let what = if note.is_empty() {
                format!("vendor {}", key.short_id())
            } else {
                format!("the vendor of {note}, key {}", key.short_id())
            };
            if policy.allow(key, &note)? {
                println!("native code from {what} may now run on this device ({})", file.display());
                eprintln!(
                    "sealrun: note: native code runs outside the wasm sandbox, with all of your user's rights; \
                     undo with `sealrun trust remove {key}`"
                );
            } else {
                println!("native code from {what} was already allowed");
            }
        }
        TrustCommand::Remove { vendor } => {
            let (key, _) = vendor_of(&vendor)?;
            if policy.remove(&key)? {
                println!("native code from vendor {} will no longer run; its apps compile from wasm", key.short_id());
            } else {
                println!("vendor {} was not allowed to run native code", key.short_id());
            }
        }
        TrustCommand::List => {
            if policy.native.is_empty() {
                println!("no vendor may run native code (the default)");
            }
            for (k, note) in &policy.native {
                println!("{k} {note}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
