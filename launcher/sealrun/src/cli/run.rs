//! `sealrun run PACKAGE` (and `sealrun PACKAGE`): the arguments and the
//! user's settings for the app become a [`RunPlan`], checked before anything
//! is decrypted; the session runs it. From a desktop (`--desktop`) the same
//! run shows its messages in dialogs too, and console apps get a terminal.
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::TokenArgs;
use crate::LaunchError;
use crate::error::LicenseError;
use crate::license::floating;
use crate::runtime::OpenedPackage;
use crate::runtime::net::NetGrants;
use crate::runtime::runner::{self, DirGrant, GuestConfig};
use crate::session::{self, RunPlan};
use crate::ui::gui;
use crate::ui::{Stderr, Ui};

#[derive(Args, Clone)]
pub(super) struct RunArgs {
    /// The package (*.sealed)
    pub(super) package: PathBuf,
    /// Use this license file instead of searching
    #[arg(long)]
    pub(super) license: Option<PathBuf>,
    /// Grant a directory: HOST[::GUEST][:ro] (repeatable)
    #[arg(long = "dir", value_name = "HOST[::GUEST][:ro]")]
    pub(super) dirs: Vec<String>,
    /// Give the app an environment variable: NAME=VALUE, or NAME to pass this one through (repeatable)
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    pub(super) env: Vec<String>,
    /// Let the app connect to HOST:PORT over TCP (and UDP with --allow-udp); components only (repeatable)
    #[arg(long = "allow-connect", value_name = "HOST:PORT")]
    pub(super) allow_connect: Vec<String>,
    /// Let the app listen on ADDR:PORT (an IP address of this machine); components only (repeatable)
    #[arg(long = "allow-listen", value_name = "ADDR:PORT")]
    pub(super) allow_listen: Vec<String>,
    /// Let the app look up host names (DNS); components only
    #[arg(long)]
    pub(super) allow_dns: bool,
    /// Let the app use UDP, to the --allow-connect and from the --allow-listen addresses; components only
    #[arg(long)]
    pub(super) allow_udp: bool,
    /// Memory limit for the app, in MiB
    #[arg(long, default_value_t = runner::DEFAULT_MAX_MEMORY_MIB, value_name = "MIB")]
    pub(super) max_memory: u64,
    /// Stop the app after this many seconds [default: no limit]
    #[arg(long, value_name = "SECS")]
    pub(super) timeout: Option<f64>,
    /// Neither read nor write the compiled-code cache (compile every time)
    #[arg(long)]
    pub(super) no_cache: bool,
    #[command(flatten)]
    pub(super) token: TokenArgs,
    /// Take a seat of a floating license from this license server (sealrun-floatd) [default: $SEALRUN_LICENSE_SERVER, the config file, or a *.floating file]
    #[arg(long, value_name = "HOST:PORT")]
    pub(super) license_server: Option<String>,
    /// When every floating seat is in use, wait in line for one instead of giving up
    #[arg(long)]
    pub(super) wait: bool,
    /// What to do when the floating seat is lost while the app runs
    #[arg(long, value_enum, default_value_t = SeatLoss::Pause)]
    pub(super) on_seat_loss: SeatLoss,
    /// Started from a desktop (the file manager's double-click): show messages in dialogs as well,
    /// log them, and open console apps in a terminal window
    #[arg(long)]
    pub(super) desktop: bool,
    /// Arguments for the app (after --)
    #[arg(last = true)]
    pub(super) args: Vec<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum SeatLoss {
    /// Pause the app until the seat is back
    Pause,
    /// Stop the app
    Stop,
}

pub(super) fn execute(a: RunArgs) -> Result<ExitCode, LaunchError> {
    if a.desktop {
        return Ok(from_desktop(a));
    }
    check_package_path(&a.package)?;
    run(a, None, &Stderr).map(ExitCode::from)
}

/// A package whose path holds control characters is refused before it is
/// read (also by `serve`): the path is shown in messages, dialogs and the log, where a line
/// break or an escape sequence in a downloaded file's name could forge
/// text ("your copy is blocked, call …").
pub(super) fn check_package_path(package: &std::path::Path) -> Result<(), LaunchError> {
    let text = package.to_string_lossy();
    if text.chars().any(sealrun_format::text::is_escaped_when_shown) {
        return Err(LaunchError::Usage(format!(
            "the package's path {} holds control characters (line breaks or escape sequences); rename the file",
            sealrun_format::text::shown(&text)
        )));
    }
    Ok(())
}

/// Runs the app (in `opened`, or opened now); its exit code.
fn run(a: RunArgs, opened: Option<OpenedPackage>, ui: &dyn Ui) -> Result<u8, LaunchError> {
    let package = match opened {
        Some(p) => Ok(p),
        None => OpenedPackage::open(&a.package),
    };
    let plan = plan(a, package.as_ref().ok().map(|p| p.manifest()))?;
    session::run(plan, package?, ui)
}

/// The plan for a run: what the user set for this app in the config file
/// first (when the package could be read), then the arguments, every one
/// checked.
pub(super) fn plan(
    mut a: RunArgs,
    manifest: Option<&sealrun_format::package::Manifest>,
) -> Result<RunPlan, LaunchError> {
    let mut settings_used = false;
    if let Some(m) = manifest {
        let mut config = crate::config::Config::load()?;
        match config.take_app_settings(&m.product, &m.vendor_key) {
            Ok(Some(app)) => {
                settings_used = true;
                a.dirs.splice(0..0, app.dirs);
                a.env.splice(0..0, app.env);
                a.allow_connect.splice(0..0, app.connect);
                a.allow_listen.splice(0..0, app.listen);
                a.allow_dns |= app.dns;
                a.allow_udp |= app.udp;
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
                crate::config::file().display(),
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
    let net =
        NetGrants::parse(&a.allow_connect, &a.allow_listen, a.allow_dns, a.allow_udp).map_err(LaunchError::Usage)?;
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
    let program_name = a.package.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let on_seat_loss = match a.on_seat_loss {
        SeatLoss::Pause => floating::OnSeatLoss::Pause,
        SeatLoss::Stop => floating::OnSeatLoss::Stop,
    };
    Ok(RunPlan {
        tokens: a.token.options(),
        license: a.license,
        license_server: a.license_server,
        wait: a.wait,
        on_seat_loss,
        no_cache: a.no_cache,
        guest: GuestConfig { program_name, args: a.args, env, dirs, max_memory_mib: a.max_memory, timeout, net },
        settings_used,
        serve: None,
    })
}

/// A launch from a file manager: the same run and the same messages and
/// exit code, with the messages also in dialogs and the log, and console
/// apps in a terminal window.
fn from_desktop(a: RunArgs) -> ExitCode {
    use std::io::IsTerminal;
    let front = gui::Desktop::new(&a.package);
    if let Err(e) = check_package_path(&a.package) {
        let text = super::advice::message(&e);
        eprintln!("sealrun: {text}");
        front.error(&text);
        return ExitCode::from(e.exit_code());
    }
    let mut front = front;
    // Opened once here; a package that cannot be opened is reported by the
    // run below, in its place among the other checks.
    let mut opened = OpenedPackage::open(&a.package).ok();
    if let Some(p) = &opened {
        front.set_app(&p.manifest().display_name);
    }
    // A command component is a console app as much as a module is.
    let console = opened.as_ref().is_some_and(|p| {
        use sealrun_format::package::AppKind;
        matches!(p.manifest().kind, AppKind::Console | AppKind::ComponentCommand)
    });
    let attended = std::io::stdin().is_terminal() || std::io::stdout().is_terminal();
    let mut activated = false;
    if console && !attended && !gui::in_terminal() {
        // A license problem is told here, in a dialog alone, rather than
        // in a terminal window opened only to say it.
        let checked = match &opened {
            Some(p) => session::check_license(p, a.license.as_deref(), a.license_server.as_deref(), &a.token.options()),
            None => OpenedPackage::open(&a.package).map(drop),
        };
        if let Err(e) = checked
            && let Some(code) = handle_launch_error(&front, e, &mut activated)
        {
            return ExitCode::from(code);
        }
        match gui::Terminal::find() {
            Some(term) => {
                front.log(&format!("opening in a terminal window ({})", term.program().display()));
                let args: Vec<OsString> =
                    super::normalise_args(std::env::args_os().collect()).into_iter().skip(1).collect();
                match super::desktop::current_exe()
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
        let code = match run(a.clone(), opened.take(), &front) {
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
    eprintln!("{}", super::error_line(&e));
    let text = super::advice::message(&e);
    match &e {
        LaunchError::License(LicenseError::NotFound { device, .. }) if !*activated => {
            let server = super::activate::activation_server();
            match front.no_license(&text, &device.to_string(), server.as_deref()) {
                gui::LicenseChoice::Activate(code) => {
                    match super::activate::activate(server.as_deref().unwrap_or_default(), &code) {
                        Ok(message) => {
                            println!("{message}");
                            front.info(&message);
                            *activated = true;
                            None
                        }
                        Err(e) => {
                            eprintln!("{}", super::error_line(&e));
                            front.error(&super::advice::message(&e));
                            Some(e.exit_code())
                        }
                    }
                }
                gui::LicenseChoice::Close => Some(e.exit_code()),
            }
        }
        _ => {
            front.error(&text);
            Some(e.exit_code())
        }
    }
}
