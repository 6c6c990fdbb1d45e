//! The front end of launches from a file manager (`sealrun run --desktop`),
//! where nobody sees stderr: console apps move into a terminal window, every
//! message the launcher prints is also shown in a dialog (zenity, kdialog,
//! or at least a notification) and always written to the log in
//! `$XDG_STATE_HOME/sealrun/launcher.log`. What is printed, and the exit
//! code, are the same as from a terminal.
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::platform::dirs;
use crate::ui::{COMPILE_NOTICE_AFTER, Ui, human_bytes, report_compile};

/// Set by the launcher on the copy of itself it starts in a terminal
/// window, so that copy neither opens another one nor closes the window
/// before the user has read it.
pub(crate) const IN_TERMINAL_ENV: &str = "SEALRUN_IN_TERMINAL";
/// Which dialog program to use: `zenity`, `kdialog`, `notify-send`, or
/// `none` (log only); any other program is run as a zenity-compatible one
/// (e.g. `yad`). Unset: the first of the three that is installed.
pub(crate) const DIALOG_ENV: &str = "SEALRUN_DIALOG";
/// The terminal emulator console apps open in (a program taking `-e
/// COMMAND…`), or `none` to run them without one. Unset: `$TERMINAL`, then
/// the usual emulators.
pub(crate) const TERMINAL_ENV: &str = "SEALRUN_TERMINAL";

/// The log is cut over to `launcher.log.1` past this size: a few thousand
/// launches, and a log that never grows without bound.
const MAX_LOG_LEN: u64 = 1024 * 1024;
/// How long a closed progress dialog may take to go away before it is
/// killed: it only has to read one line.
const PROGRESS_CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Dialog width in pixels: wide enough for a device code on one line.
const DIALOG_WIDTH: &str = "760";

/// A program on `$PATH`, if there is one.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    if path.is_absolute() {
        return path.is_file().then(|| path.to_owned());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.metadata().is_ok_and(|m| crate::platform::files::is_executable(&m)))
}

/// A dialog program's command. Its text is UTF-8 ("Activate…", names): a
/// session without a UTF-8 locale gets one for the dialog, or GTK refuses
/// the arguments.
fn dialog_command(program: &Path) -> Command {
    let mut c = Command::new(program);
    let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !locale.contains("utf-8") && !locale.contains("utf8") {
        c.env_remove("LC_ALL").env("LC_CTYPE", "C.UTF-8");
    }
    c
}

/// A zenity dialog titled `title`, at the dialog width, output discarded
/// unless the caller asks for it.
fn zenity_command(zenity: &Path, title: &str) -> Command {
    let mut c = dialog_command(zenity);
    c.arg(format!("--title={title}")).arg(format!("--width={DIALOG_WIDTH}"));
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// A kdialog command with `args`. kdialog shows text that looks like HTML
/// as HTML (Qt guesses rich text), so angle brackets become look-alikes
/// that cannot open a tag: a name or message cannot restyle the dialog.
fn kdialog_command(kdialog: &Path, args: &[&str]) -> Command {
    let mut c = dialog_command(kdialog);
    c.args(args.iter().map(|a| a.replace('<', "\u{2039}").replace('>', "\u{203a}")));
    c
}

/// A notification from Sealrun, with its icon.
fn notify_command(notify_send: &Path, title: &str, text: &str) -> Command {
    let mut c = dialog_command(notify_send);
    // `--`: a title or text starting with `-` is not an option.
    c.args(["--app-name=Sealrun", "--icon=sealrun", "--", title, text]);
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// How messages reach the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backend {
    /// GNOME's and most desktops' dialog tool.
    Zenity(PathBuf),
    /// KDE's.
    Kdialog(PathBuf),
    /// Only a notification (no way to answer).
    Notify(PathBuf),
    /// Nothing on screen: the log only.
    LogOnly,
}

impl Backend {
    /// The backend from [`DIALOG_ENV`], else the first one installed; none
    /// without a display.
    pub(crate) fn detect() -> Backend {
        let display = ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
        if !display {
            return Backend::LogOnly;
        }
        let wanted = std::env::var(DIALOG_ENV).ok().filter(|s| !s.is_empty());
        let candidates: Vec<&str> = match wanted.as_deref() {
            Some("none") => return Backend::LogOnly,
            Some(one) => vec![one],
            None => vec!["zenity", "kdialog", "notify-send"],
        };
        for name in candidates {
            if let Some(p) = which(name) {
                return match Path::new(name).file_name().and_then(|n| n.to_str()) {
                    Some("kdialog") => Backend::Kdialog(p),
                    Some("notify-send") => Backend::Notify(p),
                    _ => Backend::Zenity(p),
                };
            }
        }
        Backend::LogOnly
    }
}

/// The desktop front end of one launch.
#[derive(Debug)]
pub(crate) struct Desktop {
    backend: Backend,
    app: String,
    package: PathBuf,
}

/// What the user chose in the missing-license dialog.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LicenseChoice {
    /// Closed it.
    Close,
    /// Typed this activation code.
    Activate(String),
}

impl Desktop {
    /// The front end for `package`, with the dialog program found.
    pub(crate) fn new(package: &Path) -> Desktop {
        let app = package
            .file_stem()
            .map(|s| sealrun_format::text::shown(&s.to_string_lossy()).into_owned())
            .unwrap_or_else(|| "The app".into());
        Desktop { backend: Backend::detect(), app, package: package.to_owned() }
    }

    /// Names the app in titles by its display name.
    pub(crate) fn set_app(&mut self, display_name: &str) {
        self.app = sealrun_format::text::shown(display_name).into_owned();
    }

    /// The app's name, as titles show it.
    pub(crate) fn app(&self) -> &str {
        &self.app
    }

    /// Appends `message` to the log; a log that cannot be written is not a
    /// reason to stop the app.
    pub(crate) fn log(&self, message: &str) {
        let dir = dirs::state_dir();
        let file = dir.join("launcher.log");
        let _ = std::fs::create_dir_all(&dir);
        if file.metadata().is_ok_and(|m| m.len() > MAX_LOG_LEN) {
            let _ = std::fs::rename(&file, dir.join("launcher.log.1"));
        }
        // 0600: the log names the user's packages and what went wrong.
        let Ok(mut f) = crate::platform::files::open_private_append(&file) else { return };
        let when = sealrun_host::time::rfc3339(crate::license::clock::now());
        // One entry per launch: its own line breaks are indented, and no
        // text inside it (a file name, a server's message) can start a line.
        let body = sealrun_format::text::shown_lines(message.trim_end()).replace('\n', "\n    ");
        let package = sealrun_format::text::shown(&self.package.display().to_string()).into_owned();
        let _ = writeln!(f, "{when} [{}] {package}: {body}", std::process::id());
    }

    fn zenity(&self, path: &Path, title: &str, args: &[&str]) -> Option<std::process::Output> {
        zenity_command(path, title)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .inspect_err(|e| self.log(&format!("cannot show a dialog with {}: {e}", path.display())))
            .ok()
            .inspect(|o| {
                // 0 and 1 are the buttons, 5 the timeout; anything else is
                // the dialog failing, which the log should say.
                if !matches!(o.status.code(), Some(0 | 1 | 5)) {
                    let why = String::from_utf8_lossy(&o.stderr);
                    self.log(&format!("the dialog failed ({}): {}", o.status, why.trim()));
                }
            })
    }

    fn notify(&self, path: &Path, title: &str, text: &str) {
        let _ = notify_command(path, title, text).arg("--urgency=critical").status();
    }

    /// Shows an error the launcher printed (and logs it).
    pub(crate) fn error(&self, text: &str) {
        let text = &*sealrun_format::text::shown_lines(text);
        self.log(text);
        let title = format!("{} cannot start", self.app);
        match &self.backend {
            Backend::Zenity(z) => {
                self.zenity(z, &title, &["--error", "--no-markup", &format!("--text={text}")]);
            }
            Backend::Kdialog(k) => {
                let _ = kdialog_command(k, &["--title", &title, "--error", text]).stdin(Stdio::null()).status();
            }
            Backend::Notify(n) => self.notify(n, &title, text),
            Backend::LogOnly => {}
        }
    }

    /// Shows something that went well (after an activation) without
    /// waiting for it to be read: the app starts meanwhile.
    pub(crate) fn info(&self, text: &str) {
        let text = &*sealrun_format::text::shown_lines(text);
        self.log(text);
        let shown = match &self.backend {
            Backend::Zenity(z) => zenity_command(z, &self.app)
                .args(["--info", "--no-markup", "--timeout=10", &format!("--text={text}")])
                .spawn(),
            Backend::Kdialog(k) => kdialog_command(k, &["--title", &self.app, "--passivepopup", text, "10"]).spawn(),
            Backend::Notify(n) => notify_command(n, &self.app, text).spawn(),
            Backend::LogOnly => return,
        };
        if let Err(e) = shown {
            self.log(&format!("cannot show a message: {e}"));
        }
    }

    /// The missing-license dialog: the message, the device code in a field
    /// ready to copy, and, when a licensing server is known, an
    /// "Activate…" button that asks for an activation code.
    pub(crate) fn no_license(&self, text: &str, device_code: &str, server: Option<&str>) -> LicenseChoice {
        let text = &*sealrun_format::text::shown_lines(text);
        self.log(text);
        let title = format!("{} needs a license", self.app);
        let mut prompt = dialog_text(text, "The device code is in the field below, selected: press Ctrl+C to copy it.");
        if let Some(s) = server {
            prompt.push_str(&format!("\n\nIf the vendor gave you an activation code, choose Activate… ({s})."));
        }
        let activate = match &self.backend {
            Backend::Zenity(z) => {
                // An entry dialog's text is a mnemonic label: "_" would
                // mark an access key and vanish; "__" shows as one.
                let mut args = vec![
                    "--entry".to_owned(),
                    format!("--text={}", prompt.replace('_', "__")),
                    format!("--entry-text={device_code}"),
                    "--cancel-label=Close".to_owned(),
                ];
                args.push(if server.is_some() { "--ok-label=Activate…" } else { "--ok-label=Done" }.to_owned());
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let chose = self.zenity(z, &title, &args).is_some_and(|o| o.status.success());
                server.is_some() && chose
            }
            Backend::Kdialog(k) => {
                let status = kdialog_command(k, &["--title", &title, "--inputbox", &prompt, device_code])
                    .stdout(Stdio::null())
                    .status();
                let chose = status.is_ok_and(|s| s.success());
                server.is_some() && chose
            }
            Backend::Notify(n) => {
                self.notify(n, &title, text);
                false
            }
            Backend::LogOnly => false,
        };
        if !activate {
            return LicenseChoice::Close;
        }
        let title = format!("Activate {}", self.app);
        let ask = "The activation code from the vendor:";
        let answer = match &self.backend {
            Backend::Zenity(z) => self
                .zenity(z, &title, &["--entry", &format!("--text={ask}"), "--ok-label=Activate"])
                .filter(|o| o.status.success())
                .map(|o| o.stdout),
            Backend::Kdialog(k) => kdialog_command(k, &["--title", &title, "--inputbox", ask])
                .stdin(Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| o.stdout),
            _ => None,
        };
        match answer.map(|a| String::from_utf8_lossy(&a).trim().to_owned()) {
            Some(code) if !code.is_empty() => LicenseChoice::Activate(code),
            _ => LicenseChoice::Close,
        }
    }

    /// Starts the progress dialog for a long first compile.
    fn start_progress(&self, text: &str) -> Option<Child> {
        let title = format!("Preparing {}", self.app);
        match &self.backend {
            Backend::Zenity(z) => zenity_command(z, &title)
                .args([
                    "--progress",
                    "--pulsate",
                    "--auto-close",
                    "--no-cancel",
                    "--no-markup",
                    &format!("--text={text}"),
                ])
                .stdin(Stdio::piped())
                .spawn()
                .ok(),
            Backend::Kdialog(k) => {
                let _ = kdialog_command(k, &["--title", &title, "--passivepopup", text, "30"]).spawn();
                None
            }
            Backend::Notify(n) => {
                let _ = notify_command(n, &title, text).status();
                None
            }
            Backend::LogOnly => None,
        }
    }
}

/// A launcher message for a dialog: the indented block (the device code,
/// which the dialog shows in a field of its own) becomes `hint`, and the
/// list of places searched is left to the log.
fn dialog_text(text: &str, hint: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for paragraph in text.split("\n\n") {
        if paragraph.starts_with("    ") {
            out.push(hint.to_owned());
            continue;
        }
        let kept: Vec<&str> = paragraph.lines().filter(|l| !l.starts_with("Looked in: ")).collect();
        if !kept.is_empty() {
            out.push(kept.join("\n"));
        }
    }
    out.join("\n\n")
}

fn close_progress(mut child: Child) {
    if let Some(mut stdin) = child.stdin.take() {
        let _ = writeln!(stdin, "100");
    }
    let until = std::time::Instant::now() + PROGRESS_CLOSE_WAIT;
    while std::time::Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Ui for Desktop {
    fn warn(&self, message: &str) {
        eprintln!("sealrun: warning: {message}");
        self.log(&format!("warning: {message}"));
    }

    /// Prints as from a terminal, and, when nobody sees stderr, shows a
    /// progress dialog once the compile has taken [`COMPILE_NOTICE_AFTER`].
    fn compiling(&self, what: &str, module_len: u64, cached: bool, compile: &mut dyn FnMut()) {
        let tty = std::io::stderr().is_terminal();
        let text = format!(
            "Compiling {what} for this computer ({}).{}",
            human_bytes(module_len),
            if cached { " This happens once: later launches start at once." } else { "" }
        );
        let (done, wait) = mpsc::channel::<()>();
        std::thread::scope(|s| {
            if !tty {
                s.spawn(move || {
                    if wait.recv_timeout(COMPILE_NOTICE_AFTER) == Err(mpsc::RecvTimeoutError::Timeout) {
                        self.log(&text);
                        let dialog = self.start_progress(&text);
                        let _ = wait.recv();
                        if let Some(d) = dialog {
                            close_progress(d);
                        }
                    }
                });
            }
            report_compile(&mut std::io::stderr(), tty, what, module_len, cached, compile);
            drop(done);
        });
    }
}

/// Whether this launcher is the copy started in a terminal window.
pub(crate) fn in_terminal() -> bool {
    std::env::var_os(IN_TERMINAL_ENV).is_some()
}

/// A terminal emulator and how it takes a command.
#[derive(Debug)]
pub(crate) struct Terminal {
    program: PathBuf,
    /// Arguments between the program and the command.
    before_command: Vec<&'static str>,
}

/// The emulators tried when none is configured, and how each takes a
/// command (Debian's `x-terminal-emulator` alternative takes `-e`).
const TERMINALS: [(&str, &[&str]); 8] = [
    ("x-terminal-emulator", &["-e"]),
    ("gnome-terminal", &["--wait", "--"]),
    ("konsole", &["-e"]),
    ("xfce4-terminal", &["-x"]),
    ("kitty", &[]),
    ("alacritty", &["-e"]),
    ("foot", &[]),
    ("xterm", &["-e"]),
];

impl Terminal {
    /// The terminal from [`TERMINAL_ENV`], `$TERMINAL`, or the first known
    /// one installed; `None` when told `none` or nothing is there.
    pub(crate) fn find() -> Option<Terminal> {
        for var in [TERMINAL_ENV, "TERMINAL"] {
            match std::env::var(var).ok().filter(|s| !s.is_empty()).as_deref() {
                Some("none") => return None,
                Some(t) => {
                    let program = which(t)?;
                    let name = program.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
                    let before_command =
                        TERMINALS.iter().find(|(n, _)| *n == name).map_or_else(|| vec!["-e"], |(_, a)| a.to_vec());
                    return Some(Terminal { program, before_command });
                }
                None => {}
            }
        }
        TERMINALS
            .iter()
            .find_map(|(name, args)| which(name).map(|program| Terminal { program, before_command: args.to_vec() }))
    }

    /// The emulator's path.
    pub(crate) fn program(&self) -> &Path {
        &self.program
    }

    /// Runs `exe args…` in a new window of this terminal, marked with
    /// [`IN_TERMINAL_ENV`], and waits for the window to close.
    pub(crate) fn run(&self, exe: &Path, args: &[std::ffi::OsString]) -> std::io::Result<ExitStatus> {
        Command::new(&self.program)
            .args(&self.before_command)
            .arg(exe)
            .args(args)
            .env(IN_TERMINAL_ENV, "1")
            .stdin(Stdio::null())
            .status()
    }
}

/// In the terminal window: keeps it open until the user has read how the
/// app ended.
pub(crate) fn hold(app: &str, code: u8) {
    if !in_terminal() || !std::io::stdin().is_terminal() {
        return;
    }
    let how = if code == 0 { "ended".to_owned() } else { format!("ended with exit code {code}") };
    eprint!("\n[{app} {how}; press Enter to close this window]");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dialog_gets_the_problem_and_the_next_step() {
        let text = "no license for Hello was found on this device.\nSend this device code to the vendor to get a license:\n\n    abcd\n\nThen install it.\nLooked in: a, b";
        assert_eq!(
            dialog_text(text, "HINT"),
            "no license for Hello was found on this device.\nSend this device code to the vendor to get a license:\n\nHINT\n\nThen install it."
        );
    }

    #[test]
    fn which_finds_executables_only() {
        assert!(which("sh").is_some());
        assert!(which("/bin/sh").is_some());
        assert!(which("no-such-program-sealrun").is_none());
    }
}
