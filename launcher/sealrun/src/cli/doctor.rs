//! `sealrun doctor`: what the launcher sees, for support tickets. Prints no
//! secret and not the raw machine ID.
use super::advice::message;
use std::fmt::Write as _;

use sealrun_format::license::{Binding, License};

use crate::license::{device, store};
use crate::platform::dirs;
use sealrun_host::time::rfc3339 as fmt_time;

/// The wasmtime version this launcher is built with (checked against
/// Cargo.lock by a test).
pub(super) const WASMTIME_VERSION: &str = "48.0.8";

/// CPU features that matter for speed: AES and carry-less multiply for
/// decryption, AVX2 for compiled guest code.
fn cpu_features() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let checks = [
            ("aes", std::arch::is_x86_feature_detected!("aes")),
            ("pclmulqdq", std::arch::is_x86_feature_detected!("pclmulqdq")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("sha", std::arch::is_x86_feature_detected!("sha")),
        ];
        checks.iter().map(|(n, on)| format!("{n}{}", if *on { "+" } else { "-" })).collect::<Vec<_>>().join(" ")
    }
    #[cfg(target_arch = "aarch64")]
    {
        let aes = std::arch::is_aarch64_feature_detected!("aes");
        format!("aes{}", if aes { "+" } else { "-" })
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "unknown".to_owned()
    }
}

/// How a double-click reaches the launcher, and where its messages go.
fn desktop(s: &mut String) {
    use crate::ui::gui::{Backend, Terminal};
    let user = dirs::data_home().join("applications").join(crate::ui::desktop::DESKTOP_FILE);
    let system = std::path::Path::new("/usr/share/applications").join(crate::ui::desktop::DESKTOP_FILE);
    let handler = if user.is_file() {
        format!("registered for this user ({})", user.display())
    } else if system.is_file() {
        format!("registered system-wide ({})", system.display())
    } else {
        "not registered (`sealrun desktop install` makes a double-click run packages)".to_owned()
    };
    let _ = writeln!(s, "desktop:       {handler}");
    let dialogs = match Backend::detect() {
        Backend::Zenity(p) | Backend::Kdialog(p) | Backend::Notify(p) => p.display().to_string(),
        Backend::LogOnly => {
            "none (no display, or no zenity, kdialog or notify-send): messages go to the log".to_owned()
        }
    };
    let _ = writeln!(s, "  dialogs:     {dialogs}");
    let terminal = Terminal::find().map_or_else(|| "none found".to_owned(), |t| t.program().display().to_string());
    let _ = writeln!(s, "  terminal:    {terminal}");
    let _ = writeln!(s, "  log:         {}", dirs::state_dir().join("launcher.log").display());
}

/// The floating license servers the launcher knows of, without asking
/// them anything.
fn floating_servers(s: &mut String) {
    use crate::license::floating::{FLOATING_EXT, FloatingFile, SERVER_ENV};
    let mut known = Vec::new();
    if let Some(v) = std::env::var(SERVER_ENV).ok().filter(|v| !v.trim().is_empty()) {
        known.push(format!("{v} (from {SERVER_ENV}; asked first)"));
    }
    match crate::config::Config::load() {
        Ok(c) => {
            if let Some(v) = c.license_server {
                known.push(format!("{v} (license_server in {})", crate::config::file().display()));
            }
        }
        Err(e) => known.push(format!("PROBLEM: {}", message(&e))),
    }
    let installed = std::fs::read_dir(dirs::licenses_dir())
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten().map(|e| e.path()));
    for p in installed.filter(|p| p.extension().is_some_and(|e| e == FLOATING_EXT)) {
        match FloatingFile::read(&p) {
            Ok(f) => {
                let what = f.product.unwrap_or_else(|| "every product".into());
                known.push(format!("{} for {what} ({})", f.server, p.display()));
            }
            Err(e) => known.push(format!("PROBLEM: {}", message(&e))),
        }
    }
    if known.is_empty() {
        let _ = writeln!(
            s,
            "license server: none known (floating licenses: --license-server, {SERVER_ENV} or a *.floating file)"
        );
    }
    for k in known {
        let _ = writeln!(s, "license server: {k}");
    }
}

/// The report as text.
pub(super) fn report() -> String {
    let mut s = String::new();
    let _ = writeln!(s, "sealrun {} (wasmtime {WASMTIME_VERSION})", env!("CARGO_PKG_VERSION"));
    let machine = match device::machine_id() {
        Ok(_) if std::env::var_os(device::MACHINE_ID_ENV).is_some_and(|v| !v.is_empty()) => {
            format!("present (from {})", device::MACHINE_ID_ENV)
        }
        Ok(_) => "present (from the operating system)".to_owned(),
        Err(e) => format!("MISSING: {}", message(&e)),
    };
    let _ = writeln!(s, "machine id:    {machine}");
    let device = match device::load_or_create() {
        Ok(d) => {
            let _ = writeln!(s, "device code:   {}", d.code);
            let _ = writeln!(s, "device key:    {}", d.key_file.display());
            Some(d)
        }
        Err(e) => {
            let _ = writeln!(s, "device:        PROBLEM: {}", message(&e));
            None
        }
    };
    let this = device.as_ref().map(|d| d.code);
    let _ = writeln!(s, "data dir:      {}", dirs::data_dir().display());
    let clock = match device.as_ref().map(crate::license::clock::read) {
        None => String::new(),
        Some(Ok(None)) => "; no time-limited license has been used here yet".into(),
        Some(Ok(Some(seen))) => {
            format!("; a time-limited license was last used here at {}", fmt_time(seen.at_ms / 1000))
        }
        Some(Err(e)) => format!("; PROBLEM: {}", message(&e).lines().next().unwrap_or_default()),
    };
    let _ = writeln!(s, "clock:         {}{clock}", fmt_time(crate::license::clock::now()));
    let licenses = store::all();
    let _ = writeln!(s, "licenses:      {} installed", licenses.len());
    for path in licenses {
        let bytes = store::read_license_file(&path).ok();
        let sealed = bytes.as_deref().and_then(|b| sealrun_format::dongle::SealedLicense::parse(b).ok());
        let line = match (bytes.as_deref().and_then(|b| License::parse(b).ok()), sealed) {
            (_, Some(sealed)) => format!("sealed to dongle {} (its terms need the dongle)", sealed.dongle),
            (Some(l), None) => {
                let binding = match l.terms.binding {
                    Binding::Device(d) if Some(d) == this => "this device".to_owned(),
                    Binding::Device(_) => "ANOTHER device".to_owned(),
                    b @ (Binding::Dongle { .. } | Binding::Floating { .. }) => b.describe(),
                };
                let expires = l.terms.expires.map(fmt_time).unwrap_or_else(|| "never".into());
                format!(
                    "{} {} for {}, expires {expires}, {binding}",
                    l.terms.product, l.terms.releases, l.terms.licensee
                )
            }
            (None, None) => "unreadable or damaged".to_owned(),
        };
        let _ = writeln!(s, "  {}: {line}", path.display());
    }
    floating_servers(&mut s);
    match crate::runtime::cache::CodeCache::from_env() {
        Ok(c) if c.enabled() => {
            let entries = c.list();
            let size: u64 = entries.iter().map(|e| e.size).sum();
            let _ = writeln!(
                s,
                "code cache:    {} ({} entries, {} of {})",
                c.dir().display(),
                entries.len(),
                crate::ui::human_bytes(size),
                crate::ui::human_bytes(c.cap())
            );
        }
        Ok(c) => {
            let _ =
                writeln!(s, "code cache:    off ({}=0); {}", crate::runtime::cache::CACHE_MAX_ENV, c.dir().display());
        }
        Err(e) => {
            let _ = writeln!(s, "code cache:    PROBLEM: {}", message(&e));
        }
    }
    // Hardware keys: which modules were found and what they see (public
    // information only: no login, no PIN).
    match crate::license::dongle::list(&crate::license::dongle::Options::default()) {
        Ok((tokens, problems)) => {
            let modules = crate::license::dongle::Options::default().modules().unwrap_or_default();
            if modules.is_empty() {
                let _ = writeln!(s, "dongles:       no PKCS#11 module found (none needed without dongle licenses)");
            } else {
                let list: Vec<String> = modules.iter().map(|m| m.display().to_string()).collect();
                let _ = writeln!(s, "dongles:       {} token(s) via {}", tokens.len(), list.join(", "));
            }
            for t in tokens {
                let what = match &t.token.record {
                    None => "not a Sealrun dongle".to_owned(),
                    Some(Ok(r)) if Some(r.device) == this => format!("dongle {}, permitted on this device", r.dongle),
                    Some(Ok(r)) => format!("dongle {}, permitted on ANOTHER device", r.dongle),
                    Some(Err(e)) => format!("DAMAGED attach record: {e}"),
                };
                let _ = writeln!(s, "  \"{}\" (serial {}): {what}", t.token.label, t.token.serial);
            }
            for p in problems {
                let _ = writeln!(s, "  PROBLEM: {}", message(&p).lines().next().unwrap_or_default());
            }
        }
        Err(e) => {
            let _ = writeln!(s, "dongles:       PROBLEM: {}", message(&e));
        }
    }
    let native = match crate::runtime::native::TrustPolicy::load() {
        Ok(p) if p.native.is_empty() => "off: no vendor may run precompiled native code (the default)".to_owned(),
        Ok(p) => format!("{} vendor key(s) may run precompiled native code (`sealrun trust list`)", p.native.len()),
        Err(e) => format!("PROBLEM: {}", message(&e)),
    };
    let _ = writeln!(s, "native code:   {native}");
    desktop(&mut s);
    match sysinfo::System::new() {
        Ok(mut sys) => {
            sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
            sys.refresh_memory();
            let brand = sys.cpus().first().map(|c| c.brand().trim().to_owned()).unwrap_or_default();
            let _ = writeln!(s, "cpu:           {brand} ({} logical cores) {}", sys.cpus().len(), cpu_features());
            let _ = writeln!(s, "memory:        {} MiB total", sys.total_memory() >> 20);
        }
        Err(e) => {
            let _ = writeln!(s, "cpu:           {} (system information unavailable: {e})", cpu_features());
        }
    }
    let os = sysinfo::System::long_os_version().unwrap_or_else(|_| std::env::consts::OS.into());
    let _ = writeln!(s, "os:            {os}");
    s
}

/// `sealrun doctor`: prints the report.
pub(super) fn execute() -> Result<std::process::ExitCode, crate::LaunchError> {
    print!("{}", report());
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn wasmtime_version_matches_the_lock_file() {
        let lock = include_str!("../../../../Cargo.lock");
        let needle = format!("name = \"wasmtime\"\nversion = \"{}\"", super::WASMTIME_VERSION);
        assert!(lock.contains(&needle), "update WASMTIME_VERSION to the locked wasmtime");
    }
}
