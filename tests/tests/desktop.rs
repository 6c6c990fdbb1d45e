//! Issue 7, desktop integration, in a real X session (Xvfb) with the real
//! desktop tools: `sealrun desktop install` registers the package type
//! (`xdg-mime`), `gio open` on a licensed package runs it the way a
//! file manager's double-click does, and an unlicensed package shows a
//! zenity dialog, found with xdotool, with the same message and exit code
//! as in a terminal. A screenshot of the dialog is kept in
//! `target/test-artifacts/`.
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sealrun_tests::{Device, World, repo_root, stderr, stdout};

/// Set by scripts/test, which installs the tools: missing ones are then a
/// failure, not a skip.
const REQUIRE_ENV: &str = "SEALRUN_REQUIRE_DESKTOP";
/// The tools these tests drive.
const TOOLS: [&str; 8] =
    ["Xvfb", "xdotool", "zenity", "xdg-mime", "gio", "import", "update-mime-database", "desktop-file-validate"];
/// Ample for a window to appear or a debug-build launcher to compile a
/// sample under load; the tests poll and stop as soon as it is there.
const WAIT: Duration = Duration::from_secs(90);

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn tools_present() -> bool {
    let missing: Vec<&str> = TOOLS.into_iter().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{} not installed", missing.join(", "));
    assert!(std::env::var_os(REQUIRE_ENV).is_none(), "{REQUIRE_ENV} is set but {why}");
    eprintln!(
        "SKIPPED: {why}; scripts/test installs them (xvfb, xdotool, zenity, xdg-utils, libglib2.0-bin, imagemagick, desktop-file-utils)"
    );
    false
}

/// A private X server, stopped on drop.
struct Display {
    server: Child,
    name: String,
}

impl Display {
    fn start() -> Display {
        // -displayfd: Xvfb picks a free display and prints its number once
        // it accepts connections.
        let mut server = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let mut line = String::new();
        BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).expect("Xvfb's display number");
        let n: u32 = line.trim().parse().expect("a display number");
        Display { server, name: format!(":{n}") }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// The device's environment as a desktop session gives it.
fn session_env(dev: &Device, display: Option<&Display>) -> Vec<(String, String)> {
    let mut env = dev.env();
    // xdg-mime asks GIO (shared-mime-info) on GNOME, as on most desktops.
    env.push(("XDG_CURRENT_DESKTOP".into(), "GNOME".into()));
    if let Some(d) = display {
        env.push(("DISPLAY".into(), d.name.clone()));
    }
    env
}

fn tool(dev: &Device, display: Option<&Display>, program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .env_clear()
        .envs(session_env(dev, display))
        .args(args)
        .current_dir(&dev.root)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

fn tool_out(dev: &Device, display: Option<&Display>, program: &str, args: &[&str]) -> String {
    stdout(&tool(dev, display, program, args)).trim().to_owned()
}

fn desktop(dev: &Device, what: &str) -> Output {
    let out = dev.sealrun(&dev.root).envs(session_env(dev, None)).args(["desktop", what]).output().unwrap();
    assert!(out.status.success(), "sealrun desktop {what}: {}", stderr(&out));
    out
}

fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `sealrun run --desktop PACKAGE` as the file manager starts it (no
/// terminal on stdin), with the dialogs on their own: no terminal window.
fn launch_from_desktop(dev: &Device, x: &Display, package: &Path, env: &[(&str, &str)]) -> Child {
    dev.sealrun(&dev.root)
        .envs(session_env(dev, Some(x)))
        .env("SEALRUN_TERMINAL", "none")
        .envs(env.iter().copied())
        .args(["run", "--desktop"])
        .arg(package)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The first window named like `name`, while `launch` runs; a launcher
/// that ends first fails the test with its log.
fn window_of(dev: &Device, x: &Display, launch: &mut Child, name: &str) -> String {
    wait_for(name, || {
        if let Some(status) = launch.try_wait().unwrap() {
            let log = fs::read_to_string(dev.root.join("home/.local/state/sealrun/launcher.log")).unwrap_or_default();
            panic!("the launcher ended ({status}) before a window named {name:?}; its log:\n{log}");
        }
        // Only a mapped window takes keys: GTK names a window before it
        // shows it, and keys sent in between are lost.
        let ids = tool_out(dev, Some(x), "xdotool", &["search", "--onlyvisible", "--name", name]);
        ids.lines().next().map(str::to_owned)
    })
}

/// `desktop-file-validate` finds nothing to say about the entry.
fn assert_valid_entry(dev: &Device, entry: &Path) {
    let v = tool(dev, None, "desktop-file-validate", &[entry.to_str().unwrap()]);
    assert!(v.status.success() && stdout(&v).trim().is_empty(), "desktop-file-validate: {}{}", stdout(&v), stderr(&v));
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn issue7_desktop_install_registers_the_package_type_and_uninstall_removes_it() {
    if !tools_present() {
        return;
    }
    let w = World::new();
    let dev = w.device("a");
    let package = w.seal("hello", "1.0.0");
    let named = dev.root.join("app.sealed");
    let unnamed = dev.root.join("app.bin");
    fs::copy(&package, &named).unwrap();
    fs::copy(&package, &unnamed).unwrap();
    let home = dev.root.join("home");
    let before = files_under(&home);

    assert_ne!(tool_out(&dev, None, "xdg-mime", &["query", "filetype", "app.sealed"]), "application/x-sealrun-package");
    desktop(&dev, "install");
    assert_eq!(tool_out(&dev, None, "xdg-mime", &["query", "filetype", "app.sealed"]), "application/x-sealrun-package");
    // By the magic bytes alone, whatever the name.
    assert_eq!(tool_out(&dev, None, "xdg-mime", &["query", "filetype", "app.bin"]), "application/x-sealrun-package");
    assert_eq!(
        tool_out(&dev, None, "xdg-mime", &["query", "default", "application/x-sealrun-package"]),
        "sealrun.desktop"
    );
    let entry = fs::read_to_string(home.join(".local/share/applications/sealrun.desktop")).unwrap();
    let exe = sealrun_tests::bin("sealrun");
    assert!(entry.contains(&format!("Exec={} run --desktop %f\n", exe.display())), "{entry}");
    assert_valid_entry(&dev, &home.join(".local/share/applications/sealrun.desktop"));
    let doctor = dev.sealrun(&dev.root).arg("doctor").output().unwrap();
    assert!(stdout(&doctor).contains("desktop:       registered for this user ("), "{}", stdout(&doctor));
    // Installing twice changes nothing.
    desktop(&dev, "install");
    assert_eq!(fs::read_to_string(home.join(".config/mimeapps.list")).unwrap().matches("x-sealrun-package").count(), 1);

    desktop(&dev, "uninstall");
    assert_ne!(tool_out(&dev, None, "xdg-mime", &["query", "filetype", "app.sealed"]), "application/x-sealrun-package");
    assert_eq!(tool_out(&dev, None, "xdg-mime", &["query", "default", "application/x-sealrun-package"]), "");
    // Nothing is left but what sealrun keeps anyway (the device key).
    let after: Vec<PathBuf> =
        files_under(&home).into_iter().filter(|p| !p.starts_with(".local/share/sealrun")).collect();
    assert_eq!(after, before, "files left after uninstalling");
}

#[test]
fn issue7_a_menu_entry_comes_with_the_license() {
    if !tools_present() {
        return;
    }
    let w = World::new();
    let dev = w.device("a");
    // The vendor's icon, carried unencrypted in the manifest.
    let icon = repo_root().join("packaging/icons/sealrun-48.png");
    // One that cannot go into a manifest is refused with what to do.
    let big = repo_root().join("packaging/icons/sealrun-256.png");
    let refused = w.sealsdk(&[
        "seal",
        sealrun_tests::sample("hello").to_str().unwrap(),
        "--product",
        "com.example.hello",
        "--release",
        "1.0.0",
        "--icon",
        big.to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("is empty or above 7 KiB: give a PNG or SVG of at most 7 KiB"),
        "{}",
        stderr(&refused)
    );
    let package = w.seal_module(
        &sealrun_tests::sample("hello"),
        "com.example.hello",
        "1.0.0",
        "hello.sealed",
        &["--name", "Hello, World", "--icon", icon.to_str().unwrap()],
    );
    let license = w.license("hello", &dev, "hello.license", &[]);
    let out =
        dev.sealrun(&dev.root).args(["license", "add"]).arg(&license).arg("--menu").arg(&package).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Named for the vendor key and the product (issue 24, finding 2).
    let vendor = sealrun::runtime::read_header(&package).unwrap().manifest.vendor_key;
    let name = sealrun::ui::desktop::app_entry_name(&vendor, "com.example.hello");
    let path = dev.root.join(format!("home/.local/share/applications/sealrun-app-{name}.desktop"));
    assert!(stdout(&out).contains(&format!("added Hello, World to the menu ({})", path.display())), "{}", stdout(&out));
    let entry = fs::read_to_string(&path).unwrap();
    assert!(entry.contains("\nName=Hello, World\n"), "{entry}");
    let icon_file = entry.lines().find_map(|l| l.strip_prefix("Icon=")).expect("an Icon line");
    assert_eq!(fs::read(icon_file).unwrap(), fs::read(&icon).unwrap(), "the manifest's icon");
    let inspect = w.sealsdk_ok(&["inspect", package.to_str().unwrap()]);
    assert!(
        stdout(&inspect).contains("icon:          PNG, 2128 bytes (for menus, not encrypted)"),
        "{}",
        stdout(&inspect)
    );
    assert!(entry.contains(&format!(" run --desktop {}\n", package.display())), "{entry}");
    assert_valid_entry(&dev, &path);
    // A package that is not one stores no license and makes no entry.
    let bad = dev.root.join("bad.sealed");
    fs::write(&bad, b"not a package").unwrap();
    let out = dev.sealrun(&dev.root).args(["license", "add"]).arg(&license).arg("--menu").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(207), "{}", stderr(&out));
    desktop(&dev, "uninstall");
    assert!(!path.exists(), "uninstall removes the apps' menu entries");
}

#[test]
fn issue7_opening_a_licensed_package_from_the_desktop_runs_it() {
    if !tools_present() {
        return;
    }
    let w = World::new();
    let (dev, package) = w.licensed_sample("hello");
    let out_dir = dev.root.join("work/out");
    fs::create_dir_all(&out_dir).unwrap();
    // A double-click has no command line: the grant and the arguments come
    // from the user's settings for the app.
    let config = dev.root.join("home/.config/sealrun/config.toml");
    fs::create_dir_all(config.parent().unwrap()).unwrap();
    fs::write(
        &config,
        format!(
            "[apps.\"com.example.hello\"]\ndirs = [\"{}::/out\"]\nargs = [\"--write\", \"/out/proof.txt\"]\n",
            out_dir.display()
        ),
    )
    .unwrap();
    desktop(&dev, "install");
    let x = Display::start();
    // gio's output goes nowhere: the app it starts would hold a pipe open.
    let open = Command::new("gio")
        .env_clear()
        .envs(session_env(&dev, Some(&x)))
        .args(["open", package.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(open.success(), "gio open failed: {open}");
    let proof = out_dir.join("proof.txt");
    let text = wait_for("the app to write its proof", || fs::read_to_string(&proof).ok().filter(|t| !t.is_empty()));
    assert_eq!(text, "written by hello\n");
    let log =
        wait_for("the launch log", || fs::read_to_string(dev.root.join("home/.local/state/sealrun/launcher.log")).ok());
    assert!(log.contains(&package.display().to_string()), "{log}");
    if have("xterm") || have("x-terminal-emulator") {
        // hello is a console app: it opened in a terminal window.
        assert!(log.contains("opening in a terminal window"), "{log}");
        let window = wait_for("the terminal window", || {
            let ids = tool_out(&dev, Some(&x), "xdotool", &["search", "--class", "xterm"]);
            ids.lines().next().map(str::to_owned)
        });
        assert!(!window.is_empty());
    }
}

#[test]
fn issue7_an_unlicensed_package_opened_from_the_desktop_shows_what_to_do() {
    if !tools_present() {
        return;
    }
    let w = World::new();
    let dev = w.device("a");
    let package = w.seal_module(
        &sealrun_tests::sample("hello"),
        "com.example.hello",
        "1.0.0",
        "hello.sealed",
        &["--name", "Hello"],
    );
    let code = dev.code();
    // From a terminal first: the message and exit code to compare with.
    let term = dev.sealrun(&dev.root).arg("run").arg(&package).output().unwrap();
    assert_eq!(term.status.code(), Some(200), "{}", stderr(&term));

    let x = Display::start();
    // With a terminal emulator at hand, as on a desktop: the license is
    // checked before a window is opened for the console app, so the dialog
    // comes alone.
    let terminal = if have("xterm") { "xterm" } else { "none" };
    let mut launch = launch_from_desktop(&dev, &x, &package, &[("SEALRUN_TERMINAL", terminal)]);
    let window = window_of(&dev, &x, &mut launch, "needs a license");
    let terminals = tool_out(&dev, Some(&x), "xdotool", &["search", "--class", "xterm"]);
    assert!(terminals.is_empty(), "no terminal window for an app that cannot start");
    assert_eq!(tool_out(&dev, Some(&x), "xdotool", &["getwindowname", &window]), "Hello needs a license");
    // The dialog's text, as zenity was given it.
    let pid = tool_out(&dev, Some(&x), "xdotool", &["getwindowpid", &window]);
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let text = args.iter().find_map(|a| a.strip_prefix("--text=")).expect("the dialog's text");
    assert!(text.starts_with("no license for Hello (com.example.hello) was found on this device."), "{text}");
    assert!(text.contains("Ctrl+C to copy"), "{text}");
    assert!(
        text.ends_with("Then install it with `sealrun license add FILE`, or keep it next to the package."),
        "{text}"
    );
    assert!(args.contains(&format!("--entry-text={code}")), "the device code, ready to copy: {args:?}");
    // No licensing server is known here, so there is no Activate… button.
    assert!(args.iter().any(|a| a == "--ok-label=Done"), "{args:?}");

    let artifacts = repo_root().join("target/test-artifacts");
    fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("desktop-unlicensed-dialog.png");
    let s = tool(&dev, Some(&x), "import", &["-window", "root", shot.to_str().unwrap()]);
    assert!(s.status.success() && shot.metadata().unwrap().len() > 1000, "screenshot: {}", stderr(&s));
    eprintln!("screenshot of the dialog: {}", shot.display());

    // Closing the dialog (there is no window manager to click through)
    // ends the launch as in a terminal.
    assert!(Command::new("kill").arg(&pid).status().unwrap().success());
    let deadline = Instant::now() + WAIT;
    while launch.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the launcher did not end after the dialog closed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = launch.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(200), "same exit code as from a terminal");
    assert_eq!(stderr(&out), stderr(&term), "same message as from a terminal");
    let log = fs::read_to_string(dev.root.join("home/.local/state/sealrun/launcher.log")).unwrap();
    assert!(log.contains("no license for Hello (com.example.hello) was found on this device."), "{log}");
    assert!(log.contains(&code), "the log keeps the device code: {log}");
}

/// Types into whatever window is under the pointer: with no window manager,
/// X gives the keyboard to the window the pointer is in.
fn type_into(dev: &Device, x: &Display, window: &str, keys: &[&str]) {
    let moved = tool(dev, Some(x), "xdotool", &["mousemove", "--window", window, "40", "40"]);
    assert!(moved.status.success(), "xdotool mousemove: {}", stderr(&moved));
    for k in keys {
        let args: Vec<&str> = match k.strip_prefix("text:") {
            Some(t) => vec!["type", "--delay", "20", t],
            None => vec!["key", k],
        };
        let out = tool(dev, Some(x), "xdotool", &args);
        assert!(out.status.success(), "xdotool {args:?}: {}", stderr(&out));
    }
}

#[test]
fn issue7_activate_from_the_missing_license_dialog() {
    use sealrun_tests::server::{Server, certify_and_seal};
    if !tools_present() {
        return;
    }
    let w = World::new();
    let mut srv = Server::init(&w.path().join("server"), None);
    let token = srv.vendor("acme");
    srv.start();
    let env = [("SEALSDK_SERVER", srv.url.as_str()), ("SEALSDK_TOKEN", token.as_str())];
    let (package, _) = certify_and_seal(&w, &env, "hello", "com.acme.hello", &[]);
    let out = w.sealsdk_with(&["server", "code", "create", "--product", "com.acme.hello"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let code = stdout(&out).trim().to_owned();

    let dev = w.device("a");
    let x = Display::start();
    let mut launch = launch_from_desktop(&dev, &x, &package, &[("SEALRUN_SERVER", &srv.url)]);
    let dialog = window_of(&dev, &x, &mut launch, "needs a license");
    let pid = tool_out(&dev, Some(&x), "xdotool", &["getwindowpid", &dialog]);
    let args = String::from_utf8(fs::read(format!("/proc/{pid}/cmdline")).unwrap()).unwrap();
    assert!(args.contains("--ok-label=Activate…"), "{args}");
    assert!(args.contains(&format!("choose Activate… ({})", srv.url)), "{args}");
    // Activate… is the default button. A mapped dialog may still be
    // settling its focus on a loaded machine, so Return is sent again for
    // as long as the dialog stays open (once it is gone, none is sent).
    let mut presses = 0;
    wait_for("the dialog to take Return", || {
        let open = tool_out(&dev, Some(&x), "xdotool", &["search", "--onlyvisible", "--name", "needs a license"]);
        if !open.lines().any(|id| id == dialog) {
            return Some(());
        }
        if presses % 10 == 0 {
            type_into(&dev, &x, &dialog, &["Return"]);
        }
        presses += 1;
        None
    });
    let ask = window_of(&dev, &x, &mut launch, "Activate ");
    // The entry takes keys once its window has had a moment to focus it.
    std::thread::sleep(Duration::from_millis(500));
    type_into(&dev, &x, &ask, &[&format!("text:{code}"), "Return"]);

    let out = launch.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("activated: license "), "{}", stdout(&out));
    assert!(stdout(&out).contains("hello from a sealed app"), "the app ran after activating: {}", stdout(&out));
    // The license stays: the next launch needs no dialog.
    let again = dev.sealrun(&dev.root).arg(&package).output().unwrap();
    assert!(again.status.success(), "{}", stderr(&again));

    // `sealrun install --menu` on another device: the app, its license and
    // its menu entry in one step.
    let out = w.sealsdk_with(&["server", "code", "create", "--product", "com.acme.hello"], &env);
    let code = stdout(&out).trim().to_owned();
    let b = w.device("b");
    let apps = b.root.join("apps");
    let url = format!("{}/products/com.acme.hello", srv.url);
    let out = b
        .sealrun(&b.root)
        .args(["install", &url, "--code", &code, "--menu", "--dir", apps.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let vendor = sealrun::runtime::read_header(&apps.join("com.acme.hello.sealed")).unwrap().manifest.vendor_key;
    let name = sealrun::ui::desktop::app_entry_name(&vendor, "com.acme.hello");
    let entry_path = b.root.join(format!("home/.local/share/applications/sealrun-app-{name}.desktop"));
    assert!(stdout(&out).contains(&format!("to the menu ({})", entry_path.display())), "{}", stdout(&out));
    let entry = fs::read_to_string(&entry_path).unwrap();
    let installed = apps.join("com.acme.hello.sealed");
    assert!(entry.contains(&format!(" run --desktop {}\n", installed.display())), "{entry}");
}

#[test]
fn issue7_a_long_first_compile_shows_progress_from_the_desktop() {
    if !tools_present() {
        return;
    }
    let w = World::new();
    let dev = w.device("a");
    // About 14 MB of code: seconds to compile on the test machine, so the
    // progress dialog (shown after one second) is up for a while.
    let module = w.path().join("big.wasm");
    sealrun_tests::write_code_module(&module, 2000, 1000);
    let package = w.seal_module(&module, "com.example.big", "1.0.0", "big.sealed", &["--name", "Big App"]);
    w.license_product("com.example.big", &dev, "big.license", &[]);
    let x = Display::start();
    let mut launch = launch_from_desktop(&dev, &x, &package, &[]);
    let dialog = window_of(&dev, &x, &mut launch, "Preparing Big App");
    let pid = tool_out(&dev, Some(&x), "xdotool", &["getwindowpid", &dialog]);
    let args = String::from_utf8(fs::read(format!("/proc/{pid}/cmdline")).unwrap()).unwrap();
    assert!(args.contains("--progress"), "{args}");
    assert!(args.contains("for this computer (13.4 MiB). This happens once"), "{args}");
    let out = launch.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The same lines as from a terminal, and the dialog is gone.
    assert!(stderr(&out).contains("sealrun: compiled Big App in "), "{}", stderr(&out));
    let left = tool_out(&dev, Some(&x), "xdotool", &["search", "--name", "Preparing Big App"]);
    assert!(left.is_empty(), "the progress dialog closed");
    // A second launch starts from the cache: no dialog, no compile.
    let again = dev
        .sealrun(&dev.root)
        .envs(session_env(&dev, Some(&x)))
        .env("SEALRUN_TERMINAL", "none")
        .args(["run", "--desktop"])
        .arg(&package)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(!stderr(&again).contains("compil"), "{}", stderr(&again));
}
