//! A real `sealrun-floatd` process for end-to-end tests: its own state
//! directory and machine ID, a floating license issued to its host device
//! by the test world's vendor, listening on a free loopback port that stays
//! the same across restarts.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::{World, bin};

/// The machine ID of the simulated license-server host.
pub const HOST_MACHINE_ID: &str = "machine-id-of-the-floatd-host-0123456789";

/// A license manager's files, and its process while it runs.
pub struct Floatd {
    /// Its directory (config, state, licenses).
    pub dir: PathBuf,
    /// The configuration file.
    pub config: PathBuf,
    /// `host:port` while running (the port is kept for restarts).
    pub addr: String,
    /// Everything it printed on stderr, across restarts.
    pub log: Arc<Mutex<String>>,
    child: Option<Child>,
    extra_env: Vec<(String, String)>,
    uid: Option<u32>,
}

impl Floatd {
    /// A daemon in `dir` with lease time `ttl_secs` (not started; its
    /// license is added with [`Floatd::license_for`] or by hand).
    pub fn new(dir: &Path, ttl_secs: u64) -> Floatd {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("floatd.toml");
        let f = Floatd {
            dir: dir.to_owned(),
            config,
            addr: "127.0.0.1:0".into(),
            log: Arc::default(),
            child: None,
            extra_env: Vec::new(),
            uid: None,
        };
        f.write_config(ttl_secs, "");
        f
    }

    /// Writes the configuration: `floating.license` in its directory, the
    /// state in `state/`, the current listen address, and `extra` lines.
    pub fn write_config(&self, ttl_secs: u64, extra: &str) {
        let text = format!(
            "listen = \"{}\"\nlicenses = [\"floating.license\"]\nstate_dir = \"state\"\nlease_ttl_secs = {ttl_secs}\n{extra}",
            self.addr
        );
        std::fs::write(&self.config, text).unwrap();
    }

    /// Extra environment for the daemon (e.g. SoftHSM2's configuration).
    pub fn env(&mut self, vars: &[(String, String)]) {
        self.extra_env.extend(vars.iter().cloned());
    }

    /// Runs every later command as `uid` (and group `uid`), owning the
    /// daemon's directory: a test run as root sees through the
    /// not-dumpable flag only for a process of another user.
    pub fn run_as(&mut self, uid: u32) {
        fn chown_all(path: &Path, uid: u32) {
            std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
            if path.is_dir() && !path.is_symlink() {
                for e in std::fs::read_dir(path).unwrap().flatten() {
                    chown_all(&e.path(), uid);
                }
            }
        }
        chown_all(&self.dir, uid);
        self.uid = Some(uid);
    }

    /// The running daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// A `sealrun-floatd` command with this daemon's host identity.
    pub fn command(&self) -> Command {
        let mut c = Command::new(bin("sealrun-floatd"));
        if let Some(uid) = self.uid {
            use std::os::unix::process::CommandExt;
            c.uid(uid).gid(uid);
        }
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.join("home"))
            .env("SEALRUN_MACHINE_ID", HOST_MACHINE_ID)
            .env("SEALRUN_FLOATD_LOG", "info")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir);
        c
    }

    /// The host's device code (`sealrun-floatd id`).
    pub fn host_code(&self) -> String {
        let out = self.command().args(["id", "--config"]).arg(&self.config).output().unwrap();
        assert!(out.status.success(), "floatd id: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Has `world`'s vendor issue a floating license for `product` with
    /// `seats` to this host, with extra `sealsdk license issue` flags.
    pub fn license_for(&self, world: &World, product: &str, seats: u32, extra: &[&str]) {
        let code = self.host_code();
        let out = self.dir.join("floating.license");
        let seats = seats.to_string();
        let mut args = vec!["license", "issue", "--product", product, "--device", &code, "--licensee", "Test Site"];
        args.extend_from_slice(&["--floating", &seats]);
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-o", out.to_str().unwrap()]);
        world.sealsdk_ok(&args);
    }

    /// Starts the daemon and waits until it listens; the port is written
    /// back into the configuration so a restart listens on it again.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut child = self
            .command()
            .args(["serve", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sealrun-floatd");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if let Some(a) =
                        line.split_once("listening on http://").or(line.split_once("listening on https://"))
                    {
                        break a.1.trim().to_owned();
                    }
                }
                _ => panic!("sealrun-floatd did not start:\n{seen}"),
            }
        };
        self.log.lock().unwrap().push_str(&seen);
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        if self.addr != addr {
            let text = std::fs::read_to_string(&self.config).unwrap();
            std::fs::write(
                &self.config,
                text.replacen(&format!("listen = \"{}\"", self.addr), &format!("listen = \"{addr}\""), 1),
            )
            .unwrap();
            self.addr = addr;
        }
        self.child = Some(child);
    }

    /// Stops it with SIGTERM (a clean shutdown) and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            #[allow(unsafe_code)]
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM)
            };
            let status = c.wait().unwrap();
            assert!(status.success(), "sealrun-floatd exited with {status}:\n{}", self.log.lock().unwrap());
        }
    }

    /// Sends `signal` to the running daemon (SIGSTOP freezes it: its
    /// clients see a network that swallows every request).
    pub fn signal(&self, signal: i32) {
        let c = self.child.as_ref().expect("running");
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(c.id() as i32, signal)
        };
    }

    /// Kills it with SIGKILL (a crash).
    pub fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `GET /v1/status` as JSON.
    pub fn status(&self) -> serde_json::Value {
        let mut r = ureq::get(&format!("{}/v1/status", self.url())).call().expect("status");
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    }

    /// Seats in use of the first product, from the status.
    pub fn in_use(&self) -> u64 {
        self.status()["products"][0]["in_use"].as_u64().unwrap()
    }

    /// The usage log's lines.
    pub fn usage_log(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("state/usage.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("usage log lines are JSON"))
            .collect()
    }
}

impl Drop for Floatd {
    fn drop(&mut self) {
        self.crash();
    }
}
