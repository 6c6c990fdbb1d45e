//! Test kit for the end-to-end tests: builds the guest samples, finds the
//! project's binaries, and sets up isolated worlds (a vendor keystore and
//! any number of devices, each with its own home, XDG dirs and machine ID)
//! in which real `sealsdk` and `sealrun` processes run.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use tempfile::TempDir;

pub mod floatd;
pub mod floatload;
pub mod load;
pub mod server;
pub mod softhsm;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the repo").to_owned()
}

/// The directory with the built sample `.wasm` files (built once per test
/// binary by `scripts/build-samples`).
pub fn samples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/build-samples"))
            .output()
            .expect("cannot run scripts/build-samples");
        assert!(out.status.success(), "building samples failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).expect("utf-8 path");
        PathBuf::from(stdout.lines().last().expect("build-samples prints the output dir").trim())
    })
}

/// A sample module's path.
pub fn sample(name: &str) -> PathBuf {
    samples_dir().join(format!("{name}.wasm"))
}

/// A sample built as a WASI preview-2 command component (wasm32-wasip2;
/// `scripts/build-samples` builds both targets).
pub fn component(name: &str) -> PathBuf {
    let dir = samples_dir().parent().and_then(Path::parent).expect("target/samples/<target>/release");
    dir.join("wasm32-wasip2/release").join(format!("{name}.wasm"))
}

/// Runs `test` once for sample `name` as a core module and once as a
/// command component, each in a world of its own with the sample sealed
/// and licensed to device "a" (see [`World::licensed_wasm`]); `test` gets
/// the world, the device, the package and the guest it was sealed from.
pub fn for_each_kind(name: &str, test: impl Fn(&World, &Device, &Path, &Path)) {
    for wasm in [sample(name), component(name)] {
        let world = World::new();
        let (dev, package) = world.licensed_wasm(name, &wasm);
        test(&world, &dev, &package, &wasm);
    }
}

/// Path of one of the project's binaries (`sealsdk`, `sealrun`), built by
/// `cargo test --workspace` next to the test executables.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // Test executables live in target/<profile>/deps, binaries one level up.
    let mut dir = exe.parent().expect("an executable has a directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("deps has a parent");
    }
    let path = dir.join(name);
    assert!(path.is_file(), "{} is missing: run `cargo build --workspace` (the test command does)", path.display());
    path
}

/// The tests' reference runner: a WASI command run as `wasmtime run` runs
/// it, by the workspace's own wasmtime (`src/bin/plain-wasmtime.rs`;
/// `plain-wasmtime run [--env K=V] [--dir H::G] MODULE ARGS`, `plain-wasmtime
/// compile MODULE -o OUT`).
pub fn plain_wasmtime() -> PathBuf {
    bin("plain-wasmtime")
}

/// The wasmtime CLI, if installed: the benchmark's peer (`scripts/bench`
/// installs the launcher's version).
pub fn wasmtime_cli() -> Option<PathBuf> {
    let out = Command::new("wasmtime").arg("--version").output().ok()?;
    let v = String::from_utf8_lossy(&out.stdout);
    if v.contains("48.0.") { Some(PathBuf::from("wasmtime")) } else { None }
}

/// One simulated computer: its own home, XDG dirs, temp dir and machine ID.
pub struct Device {
    /// Root of this device's tree.
    pub root: PathBuf,
    /// Its machine ID.
    pub machine_id: String,
}

impl Device {
    /// Environment the launcher runs with on this device: nothing from the
    /// host but PATH, so no host variable can leak into a test.
    pub fn env(&self) -> Vec<(String, String)> {
        let r = |p: &str| self.root.join(p).display().to_string();
        vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".into(), r("home")),
            ("XDG_DATA_HOME".into(), r("home/.local/share")),
            ("XDG_CACHE_HOME".into(), r("home/.cache")),
            ("XDG_CONFIG_HOME".into(), r("home/.config")),
            ("XDG_STATE_HOME".into(), r("home/.local/state")),
            ("TMPDIR".into(), r("tmp")),
            ("SEALRUN_MACHINE_ID".into(), self.machine_id.clone()),
        ]
    }

    /// A `sealrun` command on this device, run in `cwd`.
    pub fn sealrun(&self, cwd: &Path) -> Command {
        let mut c = Command::new(bin("sealrun"));
        c.env_clear().envs(self.env()).current_dir(cwd);
        c
    }

    /// `sealrun id` on this device.
    pub fn code(&self) -> String {
        let out = self.sealrun(&self.root).arg("id").output().expect("run sealrun id");
        assert!(out.status.success(), "sealrun id failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
    }

    /// The device key file.
    pub fn key_file(&self) -> PathBuf {
        self.root.join("home/.local/share/sealrun/device.key")
    }
}

/// A vendor and any number of devices in one temporary tree.
pub struct World {
    /// The temporary tree (removed on drop).
    pub dir: TempDir,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// A fresh world with a vendor key.
    pub fn new() -> World {
        let w = World { dir: tempfile::tempdir().expect("tempdir") };
        w.sealsdk_ok(&["keygen"]);
        w
    }

    /// The world's root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A `sealsdk` command with this world's keystore.
    pub fn sealsdk(&self, args: &[&str]) -> Output {
        self.sealsdk_with(args, &[])
    }

    /// A `sealsdk` command with this world's keystore and extra environment.
    pub fn sealsdk_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(bin("sealsdk"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path().join("vendor-home"))
            .env("SEALSDK_KEYSTORE", self.path().join("keystore"))
            .envs(env.iter().copied())
            .args(args)
            .current_dir(self.path())
            .output()
            .expect("run sealsdk")
    }

    /// Runs `sealsdk` and asserts success.
    pub fn sealsdk_ok(&self, args: &[&str]) -> Output {
        let out = self.sealsdk(args);
        assert!(
            out.status.success(),
            "sealsdk {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// A new device named `name`.
    pub fn device(&self, name: &str) -> Device {
        let root = self.path().join(format!("device-{name}"));
        for d in ["home", "tmp", "work"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        Device { root, machine_id: format!("machine-id-of-{name}-0123456789abcdef") }
    }

    /// Seals sample `name` as product `com.example.<name>` release `release`
    /// into `<world>/<name>.sealed`.
    pub fn seal(&self, name: &str, release: &str) -> PathBuf {
        let product = format!("com.example.{name}");
        self.seal_module(&sample(name), &product, release, &format!("{name}.sealed"), &[])
    }

    /// Seals any `module` as `product` `release` with extra `sealsdk seal`
    /// flags into `<world>/<file>`.
    pub fn seal_module(&self, module: &Path, product: &str, release: &str, file: &str, extra: &[&str]) -> PathBuf {
        let out = self.path().join(file);
        let mut args = vec!["seal", module.to_str().expect("utf-8"), "--product", product, "--release", release];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-o", out.to_str().expect("utf-8")]);
        self.sealsdk_ok(&args);
        out
    }

    /// Device "a" with sample `name` sealed as release 1.0.0 and licensed to
    /// it, the license kept next to the package (`<name>.license`).
    pub fn licensed_sample(&self, name: &str) -> (Device, PathBuf) {
        let dev = self.device("a");
        let package = self.seal(name, "1.0.0");
        self.license(name, &dev, &format!("{name}.license"), &[]);
        (dev, package)
    }

    /// Device "a" with sample `name` sealed as release 1.0.0 of
    /// `com.example.<name>` from `wasm` (a module or a component) and
    /// licensed to it, the license next to the package.
    pub fn licensed_wasm(&self, name: &str, wasm: &Path) -> (Device, PathBuf) {
        let dev = self.device("a");
        let package = self.seal_module(wasm, &format!("com.example.{name}"), "1.0.0", &format!("{name}.sealed"), &[]);
        self.license(name, &dev, &format!("{name}.license"), &[]);
        (dev, package)
    }

    /// Device "a" with sample `name` sealed twice as release 1.0.0 of
    /// `com.example.<name>`: as a core module (`<name>.sealed`) and as a
    /// command component (`<name>-component.sealed`), and licensed to it, the
    /// license next to each package. For tests that every kind of guest
    /// must pass.
    pub fn licensed_module_and_component(&self, name: &str) -> (Device, [PathBuf; 2]) {
        let (dev, module) = self.licensed_sample(name);
        let product = format!("com.example.{name}");
        let component = self.seal_module(&component(name), &product, "1.0.0", &format!("{name}-component.sealed"), &[]);
        let license = self.path().join(format!("{name}.license"));
        std::fs::copy(&license, self.path().join(format!("{name}-component.license"))).expect("copy the license");
        (dev, [module, component])
    }

    /// Issues a license for sample `name` to `device` with extra flags,
    /// into `<world>/<file>`.
    pub fn license(&self, name: &str, device: &Device, file: &str, extra: &[&str]) -> PathBuf {
        self.license_product(&format!("com.example.{name}"), device, file, extra)
    }

    /// Issues a license for `product` to `device` with extra flags, into
    /// `<world>/<file>`.
    pub fn license_product(&self, product: &str, device: &Device, file: &str, extra: &[&str]) -> PathBuf {
        let out = self.path().join(file);
        let code = device.code();
        let mut args = vec!["license", "issue", "--product", product, "--device", &code, "--licensee", "Test User"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-o", out.to_str().expect("utf-8")]);
        self.sealsdk_ok(&args);
        out
    }
}

/// stdout of an output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr of an output as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Appends `v` as unsigned LEB128, as wasm encodes lengths.
fn leb(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends a wasm section: its id, its length, its body.
fn section(id: u8, body: &[u8], out: &mut Vec<u8>) {
    out.push(id);
    leb(body.len() as u64, out);
    out.extend_from_slice(body);
}

/// Writes a valid WASI command whose bulk is code: `functions` functions of
/// `ops` small arithmetic steps each (the first is `_start`), for tests
/// that need a first compile that takes a while.
pub fn write_code_module(path: &Path, functions: u32, ops: u32) {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 0, 0], &mut m); // type: () -> ()
    let mut funcs = Vec::new();
    leb(u64::from(functions), &mut funcs);
    funcs.extend(std::iter::repeat_n(0u8, functions as usize));
    section(3, &funcs, &mut m);
    section(7, &[1, 6, b'_', b's', b't', b'a', b'r', b't', 0, 0], &mut m); // export _start
    // One i32 local; `local.get 0; i32.const 7; i32.add; local.set 0` per op.
    let mut body = vec![1, 1, 0x7f];
    for _ in 0..ops {
        body.extend_from_slice(&[0x20, 0, 0x41, 7, 0x6a, 0x21, 0]);
    }
    body.push(0x0b);
    let mut code = Vec::new();
    leb(u64::from(functions), &mut code);
    for _ in 0..functions {
        leb(body.len() as u64, &mut code);
        code.extend_from_slice(&body);
    }
    section(10, &code, &mut m);
    std::fs::write(path, m).unwrap();
}

/// Writes a valid WASI command (its `_start` does nothing) that declares
/// `tables` function-reference tables of `elements` elements each and one
/// page of memory: what the host allocates for it is nearly all tables.
pub fn write_table_module(path: &Path, tables: u32, elements: u32) {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 0, 0], &mut m); // type: () -> ()
    section(3, &[1, 0], &mut m); // one function of type 0
    let mut t = Vec::new();
    leb(u64::from(tables), &mut t);
    for _ in 0..tables {
        t.extend_from_slice(&[0x70, 0]); // funcref, min only
        leb(u64::from(elements), &mut t);
    }
    section(4, &t, &mut m);
    section(5, &[1, 0, 1], &mut m); // memory, min 1 page
    section(7, &[1, 6, b'_', b's', b't', b'a', b'r', b't', 0, 0], &mut m); // export _start
    section(10, &[1, 2, 0, 0x0b], &mut m); // body: no locals, end
    std::fs::write(path, m).unwrap();
}

/// Writes a valid WASI command (its `_start` does nothing) whose bulk is one
/// passive data segment of `data_len` bytes (a multiple of 1 MiB),
/// streaming, so this process never holds it: a forked child inherits its
/// parent's peak RSS on Linux, which would spoil memory measurements.
pub fn write_data_module(path: &Path, data_len: usize) {
    use std::io::Write;
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 0, 0], &mut m); // type: () -> ()
    section(3, &[1, 0], &mut m); // one function of type 0
    section(5, &[1, 0, 1], &mut m); // memory, min 1 page
    section(7, &[1, 6, b'_', b's', b't', b'a', b'r', b't', 0, 0], &mut m); // export _start
    section(12, &[1], &mut m); // data count: 1
    section(10, &[1, 2, 0, 0x0b], &mut m); // body: no locals, end
    let mut head = vec![1u8, 1]; // one passive segment
    leb(data_len as u64, &mut head);
    m.push(11);
    leb((head.len() + data_len) as u64, &mut m);
    m.extend_from_slice(&head);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&m).unwrap();
    let block = vec![0xA5u8; 1 << 20];
    for _ in 0..data_len >> 20 {
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
}

/// Spawns `cmd` with piped output and waits until its stdout contains
/// `marker` (the guest has started), for tests that signal or inspect a
/// running launcher. The caller owns the child.
pub fn spawn_until(cmd: &mut Command, marker: &str) -> std::process::Child {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut out = child.stdout.take().expect("piped stdout");
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !String::from_utf8_lossy(&seen).contains(marker) {
        let mut buf = [0u8; 256];
        let n = out.read(&mut buf).expect("read stdout");
        assert!(n > 0 && std::time::Instant::now() < deadline, "never saw {marker:?} on stdout");
        seen.extend_from_slice(&buf[..n]);
    }
    child
}

/// A private CA and a server certificate it signed for 127.0.0.1, made with
/// the `openssl` CLI in `dir`: (certificate, key, CA certificate).
pub fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let ext = dir.join("leaf.ext");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        .unwrap();
    let p = |f: &str| dir.join(f).display().to_string();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let ca: Vec<&str> = [&["req", "-x509"][..], &ec, &["-days", "2", "-subj", "/CN=Test CA"]].concat();
    let leaf: Vec<&str> = [&["req"][..], &ec, &["-subj", "/CN=127.0.0.1"]].concat();
    let (ca_key, ca_pem, key, csr, cert) = (p("ca.key"), p("ca.pem"), p("key.pem"), p("leaf.csr"), p("cert.pem"));
    let ext = p("leaf.ext");
    for args in [
        [&ca[..], &["-keyout", &ca_key, "-out", &ca_pem]].concat(),
        [&leaf[..], &["-keyout", &key, "-out", &csr]].concat(),
        vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    ] {
        let made = Command::new("openssl").args(&args).output().expect("openssl (Debian package openssl)");
        assert!(made.status.success(), "openssl {args:?}: {}", stderr(&made));
    }
    (dir.join("cert.pem"), dir.join("key.pem"), dir.join("ca.pem"))
}

/// The spec `sealsdk seal` would make for `module` as release 1.0.0 of
/// `product` (named after it, no capabilities, default chunks), of `kind`:
/// for tests that seal by hand what sealsdk would refuse or cannot make.
pub fn plain_spec(
    product: &str,
    kind: sealrun_format::package::AppKind,
    module: &[u8],
) -> sealrun_format::package::PackageSpec {
    sealrun_format::package::PackageSpec {
        product: product.into(),
        release: sealrun_format::Release::new(1, 0, 0),
        display_name: product.rsplit('.').next().unwrap_or(product).into(),
        kind,
        capabilities: vec![],
        chunk_size_log2: sealrun_format::limits::DEFAULT_CHUNK_SIZE_LOG2,
        plaintext_len: module.len() as u64,
        icon: None,
    }
}
