//! A real `sealrun-server` process for end-to-end tests: initialised in its
//! own data directory, with one vendor, listening on a free loopback port.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::bin;

/// A server's data directory and database, and the running process if any.
pub struct Server {
    /// The data directory (master key, packages, SQLite file).
    pub data: PathBuf,
    /// The database: an SQLite path or a PostgreSQL URL.
    pub database: String,
    /// The admin token.
    pub admin: String,
    /// The base URL while running.
    pub url: String,
    child: Option<Child>,
}

impl Server {
    /// Initialises a server in `data` over `database` (None: SQLite in `data`).
    pub fn init(data: &Path, database: Option<&str>) -> Server {
        let database = database.map_or_else(|| data.join("server.db").display().to_string(), str::to_owned);
        let mut s = Server { data: data.to_owned(), database, admin: String::new(), url: String::new(), child: None };
        let out = s.cli(&["init"]);
        assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        s.admin = text
            .lines()
            .find_map(|l| l.split_once("admin token (shown once, store it now): "))
            .expect("admin token")
            .1
            .to_owned();
        s
    }

    /// A `sealrun-server` command for this server (config by environment).
    pub fn command(&self) -> Command {
        let mut c = Command::new(bin("sealrun-server"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SEALRUN_SERVER_DATA_DIR", &self.data)
            .env("SEALRUN_SERVER_DATABASE", &self.database)
            .env("SEALRUN_SERVER_LISTEN", "127.0.0.1:0")
            .env("SEALRUN_SERVER_LOG", "warn");
        c
    }

    /// Runs a CLI command.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run sealrun-server")
    }

    /// Creates a vendor; returns its token.
    pub fn vendor(&self, name: &str) -> String {
        let out = self.cli(&["vendor", "create", name]);
        assert!(out.status.success(), "vendor create: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().find_map(|l| l.split_once("(shown once, give it to the vendor): ")).expect("token").1.to_owned()
    }

    /// Starts `serve` with extra environment and waits until it listens.
    pub fn start_with(&mut self, env: &[(&str, &str)]) {
        let mut c = self.command();
        c.arg("serve").envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = c.spawn().expect("spawn sealrun-server");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        lines.read_line(&mut line).expect("read the listening line");
        self.url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        self.child = Some(child);
    }

    /// Starts `serve` with rate limits off (tests make many calls from one address).
    pub fn start(&mut self) {
        self.start_with(&[("SEALRUN_SERVER_RATE_PER_ADDRESS", "0"), ("SEALRUN_SERVER_RATE_PER_CODE", "0")]);
    }

    /// Kills the process with SIGKILL (a crash) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops with SIGTERM and returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        c.wait().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A fresh PostgreSQL database for one test, if the run provides a server
/// (scripts/test does, and then also requires it).
pub fn fresh_postgres() -> Option<String> {
    let Ok(base) = std::env::var("SEALRUN_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("SEALRUN_REQUIRE_POSTGRES").is_none(),
            "SEALRUN_REQUIRE_POSTGRES is set but SEALRUN_TEST_POSTGRES is not"
        );
        eprintln!("SKIPPED (PostgreSQL half): set SEALRUN_TEST_POSTGRES as scripts/test does");
        return None;
    };
    let name = format!("sealrun_e2e_{}_{}", std::process::id(), rand_suffix());
    let out = Command::new("psql")
        .args([base.as_str(), "-Atqc", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql (Debian package postgresql-client)");
    assert!(out.status.success(), "create database: {}", String::from_utf8_lossy(&out.stderr));
    let (head, _) = base.rsplit_once('/').expect("URL with a database");
    Some(format!("{head}/{name}"))
}

fn rand_suffix() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).expect("random");
    hex::encode(b)
}

/// Certifies the server's issuing key with `world`'s vendor key, then seals
/// sample `name` through the server (`seal --server`, the package uploaded)
/// as `product` 1.0.0 into `<world>/<name>.sealed`. `env` holds
/// `SEALSDK_SERVER`, `SEALSDK_TOKEN` and whatever else the calls need.
/// Returns the package and what `seal` printed.
pub fn certify_and_seal(
    world: &crate::World,
    env: &[(&str, &str)],
    name: &str,
    product: &str,
    extra: &[&str],
) -> (PathBuf, String) {
    let ok = |o: Output, what: &str| {
        assert!(o.status.success(), "{what} failed ({}):\n{}", o.status, String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let url = env.iter().find(|(k, _)| *k == "SEALSDK_SERVER").expect("SEALSDK_SERVER in env").1;
    let certified = ok(world.sealsdk_with(&["server", "certify"], env), "sealsdk server certify");
    assert!(certified.contains("certified the server's issuing key"), "{certified}");
    let module = crate::sample(name);
    let pkg = world.path().join(format!("{name}.sealed"));
    let mut args = vec!["seal", module.to_str().expect("utf-8"), "--product", product, "--release", "1.0.0"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--server", url, "-o", pkg.to_str().expect("utf-8")]);
    let sealed = ok(world.sealsdk_with(&args, env), "sealsdk seal --server");
    (pkg, sealed)
}
