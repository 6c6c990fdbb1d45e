//! One launch, from a plan the CLI made and the package it opened once:
//! hardening and scrubbing, this device, the license (`license`), the run
//! slot and the floating seat, the code (`runtime`), and the run with what
//! must stay true while it lasts (the dongle attached, the seat held).
use std::path::{Path, PathBuf};

use sealrun_format::package::{AppKind, Manifest};

use crate::error::LaunchError;
use crate::license::{self, clock, device, dongle, floating, store};
use crate::platform::{hardening, scrub};
use crate::runtime::{self, LoadWith, OpenedPackage, Source, cache::CodeCache, runner};
use crate::ui::{Stderr, Ui};
use crate::watch::Watch;

/// Everything a run needs from the command line and the config file,
/// checked before anything is decrypted.
pub(crate) struct RunPlan {
    /// `--license`: this file only.
    pub(crate) license: Option<PathBuf>,
    /// Where dongles are found.
    pub(crate) tokens: dongle::Options,
    /// `--license-server`.
    pub(crate) license_server: Option<String>,
    /// `--wait`: wait in line for a floating seat.
    pub(crate) wait: bool,
    /// `--on-seat-loss`.
    pub(crate) on_seat_loss: floating::OnSeatLoss,
    /// `--no-cache`.
    pub(crate) no_cache: bool,
    /// What the guest gets.
    pub(crate) guest: runner::GuestConfig,
    /// The app's settings from the config file were applied; once the
    /// package's signature and license check out they are remembered as
    /// this vendor's.
    pub(crate) settings_used: bool,
    /// `sealrun serve`: the app is an HTTP service to serve, not a command.
    pub(crate) serve: Option<runtime::http::ServeOptions>,
}

/// Runs the app in `package` as `plan` says; its exit code.
pub(crate) fn run(plan: RunPlan, package: OpenedPackage, ui: &dyn Ui) -> Result<u8, LaunchError> {
    if !hardening::harden_process() {
        tracing::debug!("process hardening is not available on this system");
    }
    let cache = if plan.no_cache { None } else { Some(CodeCache::from_env()?) };
    // A command given to `serve` is refused before any license is used
    // (once its signature shows the kind is the vendor's).
    if plan.serve.is_some() && package.manifest().kind != AppKind::ComponentHttpProxy {
        package.verify_signature()?;
        return Err(crate::error::GuestError::cannot_start(
            "it is a command, not an HTTP service (a wasi:http/proxy component); run it with `sealrun run`",
        ));
    }
    // Keys, plaintext and compiled code pass through the heap and the stack
    // until the module is loaded: freed blocks are zeroed until then, and
    // the stack below this frame right after.
    let scrubbing = scrub::Scrubbing::start();
    let device = device::load_or_create()?;
    let mut unlocked = unlock_for_run(&plan, &package, &device)?;
    let seat = unlocked.seat.clone();
    // The seat goes back however the run ends: normally (the guard), or
    // stopped by a signal, the timeout or a lost dongle (the stop hook).
    let _seat_guard = seat.clone().map(floating::SeatGuard);
    if let Some(seat) = &seat {
        let s = seat.clone();
        runner::at_stop(move || s.release());
    }
    let manifest = package.manifest();
    for hint in runner::package_hints(manifest, &plan.guest) {
        eprintln!("sealrun: note: {hint}");
    }
    // Held until the process ends: one of the runs the license's count allows.
    let _run_slot = dongle::RunSlot::claim(&unlocked.license, &device.secret)?;
    let engine = match &plan.serve {
        Some(opts) => runtime::serve_engine(opts)?,
        None => runtime::engine_for(manifest.kind)?,
    };
    // A floating seat is renewed while the app decrypts and compiles, and
    // once more just before it starts.
    let keep_alive = seat.clone().map(floating::KeepAlive::start);
    let with = LoadWith {
        key: unlocked.key(),
        device_secret: &device.secret,
        now: clock::now(),
        cache: cache.as_ref(),
        ui,
        serving: plan.serve.is_some(),
    };
    let loaded = runtime::load(&package, engine, &with)?;
    // The content key goes now, while freed memory is still scrubbed (a
    // `let Unlocked { dongle, .. }` would keep it until the run ends).
    let attached = unlocked.dongle.take();
    drop(unlocked);
    if plan.settings_used {
        // Signature and license checked out: the settings are this vendor's.
        crate::config::remember_app_vendor(&manifest.product, &manifest.vendor_key);
    }
    drop(keep_alive);
    drop(scrubbing);
    scrub::scrub_stack();
    if let Some(seat) = &seat {
        seat.ensure_live()?;
    }
    let watch = match (attached, seat) {
        (Some(attached), _) => Some(Box::new(dongle::DongleWatch::new(attached)?) as Box<dyn Watch>),
        (None, Some(seat)) => Some(Box::new(floating::SeatWatch::new(seat, plan.on_seat_loss)) as Box<dyn Watch>),
        (None, None) => None,
    };
    tracing::debug!(source = ?loaded.source, "module ready");
    let code = match &plan.serve {
        Some(opts) => runtime::serve(&loaded, &plan.guest, opts, watch)?,
        None => runtime::run(&loaded, &plan.guest, watch)?,
    };
    // WASI preview 1 only lets an app exit with 0..=125 (higher values trap).
    Ok(u8::try_from(code).unwrap_or(u8::MAX))
}

/// The license for a run, local or a floating seat, telling the user when
/// they wait in line for a seat.
fn unlock_for_run(
    plan: &RunPlan,
    package: &OpenedPackage,
    device: &device::Device,
) -> Result<license::Unlocked, LaunchError> {
    let mut last = None;
    let mut on_queued = |product: &str, server: &str, position: u32, seats: u32| {
        if last != Some(position) {
            last = Some(position);
            let all = if seats == 1 { "the only seat".to_owned() } else { format!("all {seats} seats") };
            eprintln!("sealrun: {all} of {product} are in use; waiting in line (position {position}) for {server}…");
        }
    };
    let how = license::RunLicense {
        license: plan.license.as_deref(),
        tokens: &plan.tokens,
        license_server: plan.license_server.as_deref(),
        wait: plan.wait,
    };
    license::unlock_for_run(package.path(), package.manifest(), &how, device, clock::now(), &mut on_queued)
}

/// Whether a local license opens `package`, checked before a terminal
/// window is opened for it. Skipped (Ok) where the check would have to ask
/// something: a floating license server (a seat), or licenses sealed to
/// dongles (a PIN); the launch in the window deals with those.
pub(crate) fn check_license(
    package: &OpenedPackage,
    license: Option<&Path>,
    license_server: Option<&str>,
    tokens: &dongle::Options,
) -> Result<(), LaunchError> {
    let product = &package.manifest().product;
    let dongle_licenses = std::fs::read_dir(store::dongle_licenses_dir()).is_ok_and(|mut d| d.next().is_some());
    let floating_file = license.is_some_and(|l| l.extension().is_some_and(|e| e == floating::FLOATING_EXT));
    if dongle_licenses || floating_file || floating::find_server(license_server, product)?.is_some() {
        return Ok(());
    }
    // The key is unwrapped and dropped at once; this process then waits for
    // the window, so it is hardened and scrubbed as a launch is.
    hardening::harden_process();
    let scrubbing = scrub::Scrubbing::start();
    let checked = device::load_or_create().and_then(|device| {
        license::unlock(package.path(), package.manifest(), license, &device, clock::now(), tokens).map(drop)
    });
    drop(scrubbing);
    scrub::scrub_stack();
    checked
}

/// Compiles the app in the package at `path` into `cache` ahead of time;
/// its manifest and where its code came from.
pub(crate) fn prepare(
    path: &Path,
    license: Option<&Path>,
    tokens: &dongle::Options,
    cache: &CodeCache,
) -> Result<(Manifest, Source), LaunchError> {
    hardening::harden_process();
    let device = device::load_or_create()?;
    let package = OpenedPackage::open(path)?;
    let unlocked = license::unlock(path, package.manifest(), license, &device, clock::now(), tokens)?;
    let kind = package.manifest().kind;
    let engine = runtime::engine_for(kind)?;
    let with = LoadWith {
        key: unlocked.key(),
        device_secret: &device.secret,
        now: clock::now(),
        cache: Some(cache),
        ui: &Stderr,
        // An HTTP service is compiled as `serve` loads it.
        serving: kind == AppKind::ComponentHttpProxy,
    };
    let loaded = runtime::load(&package, engine, &with)?;
    Ok((package.manifest().clone(), loaded.source))
}
