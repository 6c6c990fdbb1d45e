//! Per-user desktop registration (`sealrun desktop install` / `uninstall`)
//! and menu entries for installed apps, under the XDG data dir: no root.
//!
//! What it writes, all from `packaging/`:
//! - `$XDG_DATA_HOME/applications/sealrun.desktop`, the handler for
//!   packages, with this launcher's absolute path in `Exec`;
//! - `$XDG_DATA_HOME/mime/packages/sealrun.xml`, the package type, then
//!   `update-mime-database` so file managers see it;
//! - the icon in `$XDG_DATA_HOME/icons/hicolor`, for the launcher and the
//!   package type;
//! - `application/x-sealrun-package=sealrun.desktop;` in the default
//!   applications of `$XDG_CONFIG_HOME/mimeapps.list`.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::LaunchError;
use crate::platform::dirs;

/// The MIME type of sealed packages.
pub const MIME_TYPE: &str = "application/x-sealrun-package";
/// The desktop entry that opens packages.
pub const DESKTOP_FILE: &str = "sealrun.desktop";
/// Prefix of the menu entries made for installed apps: the uninstaller
/// removes exactly these.
pub const APP_ENTRY_PREFIX: &str = "sealrun-app-";

const DESKTOP_TEMPLATE: &str = include_str!("../../../../packaging/linux/sealrun.desktop");
const MIME_XML: &str = include_str!("../../../../packaging/linux/sealrun.xml");
const ICON_SVG: &[u8] = include_bytes!("../../../../packaging/icons/sealrun.svg");
/// The PNG sizes installed per user; the .deb ships every size.
const ICON_PNGS: [(u32, &[u8]); 3] = [
    (48, include_bytes!("../../../../packaging/icons/sealrun-48.png")),
    (128, include_bytes!("../../../../packaging/icons/sealrun-128.png")),
    (256, include_bytes!("../../../../packaging/icons/sealrun-256.png")),
];
const MIME_ICON: &str = "application-x-sealrun-package";

/// What `install` did, for the user.
#[derive(Debug)]
pub struct Registered {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Database tools that ran, or why one could not (then the type shows
    /// up only after the desktop refreshes by itself).
    pub notes: Vec<String>,
}

/// An argument for the `Exec` key of a desktop entry: quoted as the Desktop
/// Entry spec says when it holds anything beyond a plain path, with `%`
/// doubled (field codes) and the string-value escape for backslashes.
pub fn exec_arg(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._+-,:=@%".contains(c);
    let arg = arg.replace('%', "%%");
    if !arg.is_empty() && arg.chars().all(plain) {
        return arg;
    }
    let mut quoted = String::from("\"");
    for c in arg.chars() {
        match c {
            '"' | '`' | '$' => {
                quoted.push('\\');
                quoted.push(c);
            }
            // Escaped once for the quoting rule, and each backslash once
            // more because the key's value is a string.
            '\\' => quoted.push_str("\\\\\\\\"),
            '\n' => quoted.push_str("\\n"),
            _ => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

fn applications_dir() -> PathBuf {
    dirs::data_home().join("applications")
}

fn mime_dir() -> PathBuf {
    dirs::data_home().join("mime")
}

fn icon_files() -> Vec<(PathBuf, &'static [u8])> {
    let hicolor = dirs::data_home().join("icons/hicolor");
    let mut out = vec![
        (hicolor.join("scalable/apps/sealrun.svg"), ICON_SVG),
        (hicolor.join(format!("scalable/mimetypes/{MIME_ICON}.svg")), ICON_SVG),
    ];
    for (size, png) in ICON_PNGS {
        out.push((hicolor.join(format!("{size}x{size}/apps/sealrun.png")), png));
        out.push((hicolor.join(format!("{size}x{size}/mimetypes/{MIME_ICON}.png")), png));
    }
    out
}

/// The handler's desktop entry for the launcher at `exe`.
pub fn handler_entry(exe: &Path) -> String {
    let exec = exec_arg(&exe.to_string_lossy());
    DESKTOP_TEMPLATE.replace("Exec=sealrun ", &format!("Exec={exec} "))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), LaunchError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(LaunchError::io("cannot create", dir))?;
    sealrun_host::fs::write_atomic(path, bytes, 0o644, sealrun_host::fs::Durability::Synced)
        .map_err(LaunchError::io("cannot write", path))
}

fn remove(path: &Path, removed: &mut Vec<PathBuf>) -> Result<(), LaunchError> {
    match fs::remove_file(path) {
        Ok(()) => {
            removed.push(path.to_owned());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LaunchError::io("cannot remove", path)(e)),
    }
}

/// Runs a database tool if it is installed; a note saying what happened
/// otherwise.
fn refresh(tool: &str, args: &[&Path]) -> Option<String> {
    match Command::new(tool).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("{tool} failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some(format!("{tool} is not installed, so the desktop may notice the change only after a new login"))
        }
        Err(e) => Some(format!("cannot run {tool}: {e}")),
    }
}

fn refresh_databases(notes: &mut Vec<String>) {
    let mime = mime_dir();
    if mime.join("packages").is_dir() {
        notes.extend(refresh("update-mime-database", &[&mime]));
    }
    let apps = applications_dir();
    if apps.is_dir() {
        // Optional: only the menu cache of some desktops reads its output.
        if let Some(n) = refresh("update-desktop-database", &[&apps])
            && !n.contains("not installed")
        {
            notes.push(n);
        }
    }
    let hicolor = dirs::data_home().join("icons/hicolor");
    if hicolor.join("icon-theme.cache").is_file() {
        // A stale cache hides new icons; without one GTK reads the folders.
        let _ = Command::new("gtk-update-icon-cache")
            .args(["--quiet", "--ignore-theme-index"])
            .arg(&hicolor)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `mimeapps.list` with `mime=entry;` as the default (`Some`) or without
/// `mime` pointing at `entry` (`None`), other lines kept as they were.
pub fn edit_mimeapps(text: &str, mime: &str, entry: &str, set: bool) -> String {
    const SECTION: &str = "[Default Applications]";
    let mut out = Vec::new();
    let mut in_section = false;
    let mut seen_section = false;
    let mut done = !set;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            if in_section && !done {
                out.push(format!("{mime}={entry};"));
                done = true;
            }
            in_section = trimmed == SECTION;
            seen_section |= in_section;
        } else if in_section
            && let Some((key, value)) = trimmed.split_once('=')
            && key.trim() == mime
        {
            let ours = value.split(';').any(|v| v.trim() == entry);
            if set && !done {
                out.push(format!("{mime}={entry};"));
                done = true;
                continue;
            }
            if !set && ours {
                continue;
            }
        }
        out.push(line.to_owned());
    }
    if !done {
        if !seen_section {
            if out.last().is_some_and(|l| !l.trim().is_empty()) {
                out.push(String::new());
            }
            out.push(SECTION.to_owned());
        }
        out.push(format!("{mime}={entry};"));
    }
    if !set {
        drop_empty_section(&mut out, SECTION);
    }
    if out.iter().all(|l| l.trim().is_empty()) {
        return String::new();
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// Removes `section`'s header when nothing but blank lines follows it up to
/// the next section.
fn drop_empty_section(lines: &mut Vec<String>, section: &str) {
    let Some(at) = lines.iter().position(|l| l.trim() == section) else { return };
    let end = lines[at + 1..].iter().position(|l| l.trim().starts_with('[')).map_or(lines.len(), |i| at + 1 + i);
    if lines[at + 1..end].iter().all(|l| l.trim().is_empty()) {
        lines.drain(at..end);
    }
}

fn mimeapps_file() -> PathBuf {
    dirs::config_home().join("mimeapps.list")
}

fn set_default(set: bool) -> Result<Option<PathBuf>, LaunchError> {
    let file = mimeapps_file();
    let old = match fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !set {
                return Ok(None);
            }
            String::new()
        }
        Err(e) => return Err(LaunchError::io("cannot read", &file)(e)),
    };
    let new = edit_mimeapps(&old, MIME_TYPE, DESKTOP_FILE, set);
    if new == old {
        return Ok(None);
    }
    write(&file, new.as_bytes())?;
    Ok(Some(file))
}

/// Registers the launcher at `exe` as the handler of sealed packages for
/// this user.
pub fn install(exe: &Path) -> Result<Registered, LaunchError> {
    let mut files = Vec::new();
    let entry = applications_dir().join(DESKTOP_FILE);
    write(&entry, handler_entry(exe).as_bytes())?;
    files.push(entry);
    let xml = mime_dir().join("packages/sealrun.xml");
    write(&xml, MIME_XML.as_bytes())?;
    files.push(xml);
    for (path, bytes) in icon_files() {
        write(&path, bytes)?;
        files.push(path);
    }
    files.extend(set_default(true)?);
    let mut notes = Vec::new();
    refresh_databases(&mut notes);
    Ok(Registered { files, notes })
}

/// Undoes [`install`] and removes the menu entries of apps; returns what
/// was removed. Files of the system-wide package are not touched.
pub fn uninstall() -> Result<Registered, LaunchError> {
    let mut files = Vec::new();
    remove(&applications_dir().join(DESKTOP_FILE), &mut files)?;
    remove(&mime_dir().join("packages/sealrun.xml"), &mut files)?;
    for (path, _) in icon_files() {
        remove(&path, &mut files)?;
        // The size folders made for the icon go too, once empty.
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(dirs::data_home().join("icons"))) {
            if fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
    for entry in app_entries() {
        remove(&entry, &mut files)?;
    }
    let icons = app_icons_dir();
    if let Ok(dir) = fs::read_dir(&icons) {
        for icon in dir.flatten() {
            remove(&icon.path(), &mut files)?;
        }
        let _ = fs::remove_dir(&icons);
    }
    files.extend(set_default(false)?);
    let mut notes = Vec::new();
    refresh_databases(&mut notes);
    remove_derived_databases(&mut files)?;
    Ok(Registered { files, notes })
}

/// The databases the refresh tools derived, once nothing they were derived
/// from is left: then they only hold what the tools write for an empty
/// source.
fn remove_derived_databases(removed: &mut Vec<PathBuf>) -> Result<(), LaunchError> {
    let is_empty = |dir: &Path| fs::read_dir(dir).map_or(true, |mut d| d.next().is_none());
    let mime = mime_dir();
    if mime.is_dir() && is_empty(&mime.join("packages")) {
        let _ = fs::remove_dir(mime.join("packages"));
        fs::remove_dir_all(&mime).map_err(LaunchError::io("cannot remove", &mime))?;
        removed.push(mime);
    }
    let apps = applications_dir();
    let entries = fs::read_dir(&apps).into_iter().flatten().flatten();
    if !entries.map(|e| e.path()).any(|p| p.extension().is_some_and(|e| e == "desktop")) {
        remove(&apps.join("mimeinfo.cache"), removed)?;
    }
    let config = mimeapps_file();
    if fs::read(&config).is_ok_and(|b| b.is_empty()) {
        remove(&config, removed)?;
    }
    Ok(())
}

/// Menu entries made for apps.
pub fn app_entries() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(applications_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(APP_ENTRY_PREFIX) && n.ends_with(".desktop"))
        })
        .collect();
    out.sort();
    out
}

/// Where the icons apps carry in their manifests are kept.
fn app_icons_dir() -> PathBuf {
    dirs::data_dir().join("icons")
}

/// A value for a desktop entry's string keys (`Name`, `Comment`): one line,
/// with the spec's escapes.
fn entry_string(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n").replace('\t', "\\t").replace('\r', "\\r")
}

/// The name of the menu entry and icon of `vendor`'s `product`: the first
/// 8 bytes of the vendor key, then the product id. A product id is a name
/// any vendor can give a package; keyed by it alone, another vendor's
/// package replaced the entry (and icon) of an installed app.
pub fn app_entry_name(vendor: &sealrun_format::VendorPublicKey, product: &str) -> String {
    format!("{}-{product}", &vendor.to_string()[..16])
}

/// Makes (or replaces) the menu entry of the app in `package` (of
/// `vendor`), launched by the launcher at `exe`. `icon` is a PNG or SVG the
/// manifest carries; without one the entry shows Sealrun's icon. The
/// caller has verified the package's signature.
pub fn add_app_entry(
    exe: &Path,
    package: &Path,
    vendor: &sealrun_format::VendorPublicKey,
    product: &str,
    display_name: &str,
    icon: Option<&[u8]>,
) -> Result<PathBuf, LaunchError> {
    let name = app_entry_name(vendor, product);
    let package = fs::canonicalize(package).map_err(LaunchError::io("cannot read", package))?;
    let icon_value = match icon {
        Some(bytes) => {
            let ext = if bytes.starts_with(b"\x89PNG") { "png" } else { "svg" };
            let path = app_icons_dir().join(format!("{name}.{ext}"));
            write(&path, bytes)?;
            path.to_string_lossy().into_owned()
        }
        None => "sealrun".to_owned(),
    };
    let text = format!(
        "[Desktop Entry]\nType=Application\nName={}\nComment={}\nExec={} run --desktop {}\nIcon={}\nTerminal=false\nCategories=Utility;\nX-Sealrun-Product={}\n",
        entry_string(display_name),
        entry_string(&format!("{product}, a sealed app run by Sealrun")),
        exec_arg(&exe.to_string_lossy()),
        exec_arg(&package.to_string_lossy()),
        entry_string(&icon_value),
        entry_string(product),
    );
    let path = applications_dir().join(format!("{APP_ENTRY_PREFIX}{name}.desktop"));
    write(&path, text.as_bytes())?;
    let mut notes = Vec::new();
    refresh_databases(&mut notes);
    for n in notes {
        tracing::debug!("{n}");
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_args_are_quoted_only_when_needed() {
        assert_eq!(exec_arg("/usr/bin/sealrun"), "/usr/bin/sealrun");
        assert_eq!(exec_arg("/home/a b/sealrun"), "\"/home/a b/sealrun\"");
        assert_eq!(exec_arg("/x/100%"), "/x/100%%");
        assert_eq!(exec_arg("/x/$HOME\"`"), "\"/x/\\$HOME\\\"\\`\"");
        assert_eq!(exec_arg("a\\b"), "\"a\\\\\\\\b\"");
    }

    #[test]
    fn the_handler_entry_names_the_launcher_and_the_type() {
        let e = handler_entry(Path::new("/opt/my tools/sealrun"));
        assert!(e.contains("Exec=\"/opt/my tools/sealrun\" run --desktop %f\n"), "{e}");
        assert!(e.contains("MimeType=application/x-sealrun-package;"));
    }

    #[test]
    fn mimeapps_keeps_other_lines() {
        let old =
            "[Added Associations]\ntext/plain=gedit.desktop;\n\n[Default Applications]\ntext/html=firefox.desktop;\n";
        let set = edit_mimeapps(old, MIME_TYPE, DESKTOP_FILE, true);
        assert_eq!(
            set,
            "[Added Associations]\ntext/plain=gedit.desktop;\n\n[Default Applications]\ntext/html=firefox.desktop;\napplication/x-sealrun-package=sealrun.desktop;\n"
        );
        assert_eq!(edit_mimeapps(&set, MIME_TYPE, DESKTOP_FILE, true), set, "idempotent");
        assert_eq!(edit_mimeapps(&set, MIME_TYPE, DESKTOP_FILE, false), old);
    }

    #[test]
    fn mimeapps_from_nothing_and_replacing_another_default() {
        assert_eq!(
            edit_mimeapps("", MIME_TYPE, DESKTOP_FILE, true),
            "[Default Applications]\napplication/x-sealrun-package=sealrun.desktop;\n"
        );
        let other = "[Default Applications]\napplication/x-sealrun-package=other.desktop;\n[Other]\n";
        assert_eq!(
            edit_mimeapps(other, MIME_TYPE, DESKTOP_FILE, true),
            "[Default Applications]\napplication/x-sealrun-package=sealrun.desktop;\n[Other]\n"
        );
        // Someone else's default is theirs: uninstalling leaves it.
        assert_eq!(edit_mimeapps(other, MIME_TYPE, DESKTOP_FILE, false), other);
    }
}
