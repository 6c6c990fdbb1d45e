//! SoftHSM2 tokens for the hardware-key tests: each [`SoftHsm`] is its own
//! token directory and config file, so tests never share a token, and a
//! token can be "pulled out" by moving its directory away.
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Device, World, stderr, stdout};

/// Where Debian and other systems install SoftHSM2's PKCS#11 module.
pub const MODULES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

/// Set by `scripts/test` (which installs SoftHSM2): without the module the
/// tests then fail instead of skipping.
pub const REQUIRE_ENV: &str = "SEALRUN_REQUIRE_SOFTHSM";

/// The user PIN every test token gets.
pub const PIN: &str = "123456";
/// The security officer PIN every test token gets.
pub const SO_PIN: &str = "12345678";

/// One SoftHSM2 setup: a config file and a token directory.
pub struct SoftHsm {
    /// The config file (`SOFTHSM2_CONF`).
    pub conf: PathBuf,
    /// The token directory.
    pub tokens: PathBuf,
    /// The PKCS#11 module.
    pub module: PathBuf,
}

/// The SoftHSM2 module, if installed. Without it (and without
/// [`REQUIRE_ENV`]) a test says it skipped and returns.
pub fn module() -> Option<PathBuf> {
    let found = MODULES.iter().map(PathBuf::from).find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os(REQUIRE_ENV).is_none(),
            "{REQUIRE_ENV} is set but SoftHSM2 is not installed (apt-get install softhsm2)"
        );
        eprintln!("NOTE: SoftHSM2 is not installed; skipping this hardware-key test (scripts/test installs it)");
    }
    found
}

impl SoftHsm {
    /// A new, empty SoftHSM2 setup under `dir`; `None` if SoftHSM2 is missing.
    pub fn new(dir: &Path) -> Option<SoftHsm> {
        let module = module()?;
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).expect("mkdir tokens");
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = true\n",
                tokens.display()
            ),
        )
        .expect("write softhsm2.conf");
        Some(SoftHsm { conf, tokens, module })
    }

    /// Initialises a token labelled `label` with [`PIN`] and [`SO_PIN`].
    pub fn init_token(&self, label: &str) {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &self.conf)
            .args(["--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SO_PIN])
            .output()
            .expect("run softhsm2-util");
        assert!(out.status.success(), "softhsm2-util --init-token: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Environment for a process that should see these tokens.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("SOFTHSM2_CONF".into(), self.conf.display().to_string()),
            ("SEALRUN_PKCS11_MODULE".into(), self.module.display().to_string()),
        ]
    }

    fn away(&self) -> PathBuf {
        self.tokens.with_extension("away")
    }

    /// "Pulls out" every token: the directory moves away, so a fresh load
    /// of the module finds none.
    pub fn unplug(&self) {
        std::fs::rename(&self.tokens, self.away()).expect("move tokens away");
        std::fs::create_dir_all(&self.tokens).expect("empty token dir");
    }

    /// Plugs the tokens back in.
    pub fn plug(&self) {
        std::fs::remove_dir(&self.tokens).expect("remove the empty token dir");
        std::fs::rename(self.away(), &self.tokens).expect("move tokens back");
    }
}

/// `sealsdk dongle provision` of slot 0 of `hsm` for `device`; the dongle id.
pub fn provision(world: &World, hsm: &SoftHsm, device: &Device) -> String {
    provision_slot(world, hsm, device, 0)
}

/// `sealsdk dongle provision` of slot `slot` (among slots with a token).
pub fn provision_slot(world: &World, hsm: &SoftHsm, device: &Device, slot: usize) -> String {
    provision_for(world, hsm, &device.code(), slot)
}

/// `sealsdk dongle provision` of slot `slot` for the device `code` (e.g. a
/// license server's host).
pub fn provision_for(world: &World, hsm: &SoftHsm, code: &str, slot: usize) -> String {
    let slot = slot.to_string();
    let module = hsm.module.display().to_string();
    let conf = hsm.conf.display().to_string();
    let out = world.sealsdk_with(
        &["dongle", "provision", "--module", &module, "--slot", &slot, "--device", code],
        &[("SOFTHSM2_CONF", &conf), ("SEALSDK_PIN", PIN)],
    );
    assert!(out.status.success(), "provision failed: {}", stderr(&out));
    let text = stdout(&out);
    let id = text.split_whitespace().nth(2).expect("provisioned dongle <id> …").to_owned();
    assert_eq!(id.len(), 32, "{text}");
    id
}

/// A license for sample `name` sealed to `dongle`, written to `<world>/<file>`.
pub fn dongle_license(world: &World, name: &str, dongle: &str, count: u32, file: &str) -> PathBuf {
    let out = world.path().join(file);
    let product = format!("com.example.{name}");
    let count = count.to_string();
    world.sealsdk_ok(&[
        "license",
        "issue",
        "--product",
        &product,
        "--dongle",
        dongle,
        "--count",
        &count,
        "--licensee",
        "Dongle User",
        "-o",
        out.to_str().unwrap(),
    ]);
    out
}
