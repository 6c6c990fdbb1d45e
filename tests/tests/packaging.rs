//! Issue 7, installers: the .deb packages build reproducibly, lintian finds
//! no error in them, and each installs on this machine and purges without
//! a trace (`sealrun --version`, the package type registered, the services'
//! users, state and configuration); the plain install script does the same
//! under a prefix. Installing needs root, so scripts/test runs this as
//! root with `SEALRUN_REQUIRE_PACKAGING=1`.
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sealrun_tests::{bin, repo_root, stderr, stdout};

/// Set by scripts/test: a missing tool or a non-root run is then a failure.
const REQUIRE_ENV: &str = "SEALRUN_REQUIRE_PACKAGING";
const PACKAGES: [&str; 4] = ["sealrun", "sealsdk", "sealrun-floatd", "sealrun-server"];

fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool} >/dev/null")]).status().is_ok_and(|s| s.success())
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("run {program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(out.status.success(), "{program} {args:?} failed ({}):\n{}{}", out.status, stdout(&out), stderr(&out));
    stdout(&out)
}

fn skip(why: &str) -> bool {
    assert!(std::env::var_os(REQUIRE_ENV).is_none(), "{REQUIRE_ENV} is set but {why}");
    eprintln!("SKIPPED: {why}; scripts/test runs this as root with the packaging tools installed");
    true
}

fn installed(pkg: &str) -> bool {
    run("dpkg-query", &["-W", "-f=${Status}", pkg]).stdout.starts_with(b"install ok installed")
}

fn build_debs(out: &Path, umask: &str) -> Vec<PathBuf> {
    let script = repo_root().join("packaging/build-debs");
    let bin_dir = bin("sealrun").parent().unwrap().to_owned();
    let cmd = format!("umask {umask}; exec \"$0\" --bin-dir \"$1\" --out \"$2\"");
    let printed = ok("sh", &["-c", &cmd, script.to_str().unwrap(), bin_dir.to_str().unwrap(), out.to_str().unwrap()]);
    let debs: Vec<PathBuf> = printed.lines().map(PathBuf::from).collect();
    assert_eq!(debs.len(), PACKAGES.len(), "{printed}");
    debs
}

/// Purges the packages however the test ends, so a failure leaves the
/// machine as it was.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").arg("--purge").args(PACKAGES).output();
    }
}

/// The type `xdg-mime` gives a file, for a user with no settings of their
/// own (so only the system's databases count).
fn filetype(home: &Path, file: &Path) -> String {
    let out = Command::new("xdg-mime")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", home)
        .env("XDG_CURRENT_DESKTOP", "GNOME")
        .args(["query", "filetype"])
        .arg(file)
        .output()
        .unwrap();
    stdout(&out).trim().to_owned()
}

fn default_handler(home: &Path) -> String {
    let out = Command::new("xdg-mime")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", home)
        .env("XDG_CURRENT_DESKTOP", "GNOME")
        .args(["query", "default", "application/x-sealrun-package"])
        .output()
        .unwrap();
    stdout(&out).trim().to_owned()
}

/// The files (not folders) a package owns, from dpkg's list.
fn owned_files(pkg: &str) -> Vec<PathBuf> {
    ok("dpkg", &["-L", pkg]).lines().map(PathBuf::from).filter(|p| p.is_file()).collect()
}

#[test]
fn issue7_debs_build_reproducibly_pass_lintian_and_install_and_purge_cleanly() {
    let tools = ["dpkg-deb", "dpkg-shlibdeps", "lintian", "xdg-mime", "update-mime-database", "runuser"];
    if let Some(t) = tools.iter().find(|t| !have(t)) {
        skip(&format!("{t} is not installed"));
        return;
    }
    if !Command::new("id").arg("-u").output().is_ok_and(|o| stdout(&o).trim() == "0") {
        skip("installing a .deb needs root");
        return;
    }
    if let Some(p) = PACKAGES.iter().find(|p| installed(p)) {
        skip(&format!("{p} is installed on this machine already, and this test would remove it"));
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    // Two builds, the second with another umask and into another folder:
    // the same bytes.
    let first = build_debs(&dir.path().join("one"), "022");
    let second = build_debs(&dir.path().join("two"), "077");
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a.file_name(), b.file_name());
        assert!(fs::read(a).unwrap() == fs::read(b).unwrap(), "{} differs between two builds", a.display());
    }

    let mut lintian = vec!["--fail-on", "error", "--tag-display-limit", "0"];
    lintian.extend(first.iter().map(|p| p.to_str().unwrap()));
    let report = run("lintian", &lintian);
    assert!(report.status.success(), "lintian reports errors:\n{}{}", stdout(&report), stderr(&report));
    assert!(!stdout(&report).lines().any(|l| l.starts_with("E:")), "{}", stdout(&report));

    let _purge = Purge;
    let deb = |name: &str| {
        first
            .iter()
            .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&format!("{name}_")))
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let home = dir.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let package = dir.path().join("app.sealed");
    fs::write(&package, b"SEALPKG\x1a\x00\x01rest of a package").unwrap();
    assert_ne!(filetype(&home, &package), "application/x-sealrun-package");

    // The end users' package.
    ok("dpkg", &["-i", &deb("sealrun")]);
    let version = ok("/usr/bin/sealrun", &["--version"]);
    assert_eq!(version.trim(), format!("sealrun {}", env!("CARGO_PKG_VERSION")));
    assert_eq!(filetype(&home, &package), "application/x-sealrun-package");
    assert_eq!(default_handler(&home), "sealrun.desktop");
    let files = owned_files("sealrun");
    assert!(files.contains(&PathBuf::from("/usr/share/icons/hicolor/48x48/apps/sealrun.png")), "{files:?}");
    ok("dpkg", &["--purge", "sealrun"]);
    let left: Vec<_> = files.iter().filter(|f| f.exists()).collect();
    assert!(left.is_empty(), "left after purging: {left:?}");
    assert_ne!(filetype(&home, &package), "application/x-sealrun-package");
    assert_eq!(default_handler(&home), "");

    // The vendors' and the services' packages.
    ok("dpkg", &["-i", &deb("sealsdk"), &deb("sealrun-floatd"), &deb("sealrun-server")]);
    assert!(ok("/usr/bin/sealsdk", &["--version"]).starts_with("sealsdk "));
    for (user, conf) in [("sealrun-floatd", "floatd.toml"), ("sealrun-server", "server.toml")] {
        assert!(run("getent", &["passwd", user]).status.success(), "system user {user}");
        let etc = format!("/etc/{user}/{conf}");
        assert!(ok("stat", &["-c", "%a %U %G", &etc]).trim() == format!("640 root {user}"), "{etc}");
        assert!(Path::new(&format!("/lib/systemd/system/{user}.service")).is_file());
        assert!(ok("dpkg-query", &["-W", "-f=${Conffiles}", user]).contains(&etc), "{etc} is a conffile");
    }
    // A fresh configuration is enough to get the host's code for the vendor.
    let code = ok("runuser", &["-u", "sealrun-floatd", "--", "sealrun-floatd", "id"]);
    assert!(code.starts_with("SR1-"), "{code}");
    let init = ok(
        "runuser",
        &["-u", "sealrun-server", "--", "sealrun-server", "--config", "/etc/sealrun-server/server.toml", "init"],
    );
    assert!(init.contains("admin token"), "{init}");
    assert!(Path::new("/var/lib/sealrun-server/master.key").is_file());
    let mut files = BTreeSet::new();
    for p in ["sealsdk", "sealrun-floatd", "sealrun-server"] {
        files.extend(owned_files(p));
    }
    ok("dpkg", &["--purge", "sealsdk", "sealrun-floatd", "sealrun-server"]);
    let left: Vec<_> = files.iter().filter(|f| f.exists()).collect();
    assert!(left.is_empty(), "left after purging: {left:?}");
    for user in ["sealrun-floatd", "sealrun-server"] {
        assert!(!run("getent", &["passwd", user]).status.success(), "user {user} is gone");
        assert!(!run("getent", &["group", user]).status.success(), "group {user} is gone");
        for d in [format!("/var/lib/{user}"), format!("/etc/{user}")] {
            assert!(!Path::new(&d).exists(), "{d} is gone");
        }
        let unit_links = ok("sh", &["-c", &format!("find /etc/systemd -name '{user}*'")]);
        assert!(unit_links.trim().is_empty(), "systemd links left: {unit_links}");
    }
}

#[test]
fn issue7_the_plain_install_script_installs_and_uninstalls_under_a_prefix() {
    if !have("update-mime-database") {
        skip("update-mime-database is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("prefix");
    let script = repo_root().join("packaging/install.sh");
    let bin_dir = bin("sealrun").parent().unwrap().to_owned();
    let out =
        Command::new("sh").arg(&script).arg("--prefix").arg(&prefix).arg("--bin-dir").arg(&bin_dir).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(&format!("installed sealrun in {}", prefix.display())));
    let version = run(prefix.join("bin/sealrun").to_str().unwrap(), &["--version"]);
    assert!(stdout(&version).starts_with("sealrun "));
    let entry = fs::read_to_string(prefix.join("share/applications/sealrun.desktop")).unwrap();
    assert!(entry.contains(&format!("Exec={}/bin/sealrun run --desktop %f", prefix.display())), "{entry}");
    // The type is in the prefix's own MIME database.
    let globs = fs::read_to_string(prefix.join("share/mime/globs2")).unwrap();
    assert!(globs.contains("application/x-sealrun-package:*.sealed"), "{globs}");

    let bad = Command::new("sh").arg(&script).args(["--prefix", "relative"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("--prefix must be an absolute path"));

    let out = Command::new("sh").arg(&script).arg("--prefix").arg(&prefix).arg("--uninstall").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(!prefix.exists() || fs::read_dir(&prefix).unwrap().next().is_none(), "nothing is left under the prefix");
}
