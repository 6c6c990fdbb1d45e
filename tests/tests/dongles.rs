//! Hardware keys (issue 5), with real SoftHSM2 tokens and real `sealsdk` and
//! `sealrun` processes: provisioning, dongle-bound runs, every refusal, and
//! pulling the dongle out while the app runs.
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use sealrun_tests::softhsm::{PIN, SoftHsm, dongle_license, provision, provision_slot};
use sealrun_tests::{Device, World, stderr, stdout};

/// A vendor world, one SoftHSM2 token and a device.
struct Setup {
    world: World,
    hsm: SoftHsm,
    dev: Device,
}

fn setup(token: &str) -> Option<Setup> {
    let world = World::new();
    let hsm = SoftHsm::new(&world.path().join("hsm"))?;
    hsm.init_token(token);
    let dev = world.device("a");
    Some(Setup { world, hsm, dev })
}

/// `sealrun` on `dev`, seeing the tokens of `hsm`, with the PIN given.
fn sealrun(dev: &Device, hsm: &SoftHsm, cwd: &Path) -> Command {
    let mut c = dev.sealrun(cwd);
    c.envs(hsm.env()).env("SEALRUN_PIN", PIN);
    c
}

fn run_with(dev: &Device, hsm: &SoftHsm, cwd: &Path, package: &Path, license: &Path, args: &[&str]) -> Output {
    sealrun(dev, hsm, cwd).arg("run").arg("--license").arg(license).arg(package).arg("--").args(args).output().unwrap()
}

/// A logged-in session on the first token of `hsm`, from this process.
fn with_session<T>(hsm: &SoftHsm, f: impl FnOnce(&cryptoki::session::Session) -> T) -> T {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // SoftHSM2 takes its token directory from this variable at initialisation.
    unsafe_set_conf(&hsm.conf);
    let ctx = Pkcs11::new(&hsm.module).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).unwrap();
    let slot = ctx.get_slots_with_token().unwrap()[0];
    let session = ctx.open_rw_session(slot).unwrap();
    session.login(UserType::User, Some(&AuthPin::new(PIN.into()))).unwrap();
    let result = f(&session);
    drop(session);
    ctx.finalize().unwrap();
    result
}

static ENV_LOCK: Mutex<()> = Mutex::new(());

#[allow(unsafe_code)]
fn unsafe_set_conf(conf: &Path) {
    // SAFETY: only called with ENV_LOCK held, and no other thread of this
    // test binary reads the environment while it is held (the other tests
    // pass environments to child processes explicitly).
    unsafe { std::env::set_var("SOFTHSM2_CONF", conf) };
}

#[test]
fn provisioned_key_is_sensitive_and_cannot_be_read() {
    let Some(s) = setup("vendor-dongle") else { return };
    provision(&s.world, &s.hsm, &s.dev);
    with_session(&s.hsm, |session| {
        let keys = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(sealrun::license::dongle::KEY_LABEL.as_bytes().to_vec()),
            ])
            .unwrap();
        assert_eq!(keys.len(), 1, "exactly one dongle key");
        let attrs = session
            .get_attributes(keys[0], &[AttributeType::Sensitive, AttributeType::Extractable, AttributeType::Encrypt])
            .unwrap();
        assert!(attrs.contains(&Attribute::Sensitive(true)), "{attrs:?}");
        assert!(attrs.contains(&Attribute::Extractable(false)), "{attrs:?}");
        assert!(attrs.contains(&Attribute::Encrypt(false)), "{attrs:?}");
        // Not copyable (issue 24, finding 8): a copy could carry other
        // attributes, and the token refuses to make one.
        let copyable = session.get_attributes(keys[0], &[AttributeType::Copyable]).unwrap();
        assert_eq!(copyable, vec![Attribute::Copyable(false)]);
        assert!(session.copy_object(keys[0], &[Attribute::Token(false)]).is_err(), "the token copied the dongle key");
        // Asking for the key's value gets nothing: the token refuses to reveal it.
        let value = session.get_attributes(keys[0], &[AttributeType::Value]).unwrap();
        assert!(
            !value.iter().any(|a| matches!(a, Attribute::Value(_))),
            "CKA_VALUE of the dongle key was readable: {value:?}"
        );
        // Only AES-GCM may use it: ECB or CBC "decryption" of chosen blocks
        // would be an encryption oracle for anyone with the PIN.
        let allowed = session.get_attributes(keys[0], &[AttributeType::AllowedMechanisms]).unwrap();
        assert!(
            allowed.contains(&Attribute::AllowedMechanisms(vec![cryptoki::mechanism::MechanismType::AES_GCM])),
            "{allowed:?}"
        );
        use cryptoki::mechanism::Mechanism;
        assert!(session.decrypt(&Mechanism::AesEcb, keys[0], &[0u8; 16]).is_err(), "ECB decrypt was allowed");
        assert!(session.decrypt(&Mechanism::AesCbc([0; 16]), keys[0], &[0u8; 16]).is_err(), "CBC decrypt was allowed");
        // Making it extractable afterwards is refused too.
        assert!(session.update_attributes(keys[0], &[Attribute::Extractable(true)]).is_err());
        // The record is there, readable, and names this dongle.
        let records = session
            .find_objects(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Label(sealrun::license::dongle::RECORD_LABEL.as_bytes().to_vec()),
            ])
            .unwrap();
        assert_eq!(records.len(), 1);
    });
    // Provisioning the same token again is refused without --replace.
    let code = s.dev.code();
    let out = s.world.sealsdk_with(
        &["dongle", "provision", "--module", s.hsm.module.to_str().unwrap(), "--device", &code],
        &[("SOFTHSM2_CONF", s.hsm.conf.to_str().unwrap()), ("SEALSDK_PIN", PIN)],
    );
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("already holds a Sealrun dongle"), "{}", stderr(&out));
    // The next step is sealsdk's own (issue 26: it was the launcher's).
    assert!(stderr(&out).contains("Pass --replace"), "{}", stderr(&out));
}

#[test]
fn dongle_bound_run_matches_the_plain_run_and_lists() {
    let Some(s) = setup("run-dongle") else { return };
    let dongle = provision(&s.world, &s.hsm, &s.dev);
    let package = s.world.seal("hello", "1.0.0");
    let lic = dongle_license(&s.world, "hello", &dongle, 1, "hello-dongle.license");
    // The vendor can read them with the keystore's copy of the dongle key.
    let inspect = s.world.sealsdk_ok(&["inspect", lic.to_str().unwrap()]);
    let text = stdout(&inspect);
    assert!(text.contains(&format!("sealed to dongle {dongle}")) && text.contains("com.example.hello"), "{text}");
    assert!(text.contains(&format!("dongle {dongle} (1 at once)")), "{text}");
    // The terms are not readable in the file.
    let bytes = std::fs::read(&lic).unwrap();
    assert!(!bytes.windows(17).any(|w| w == b"com.example.hello"), "the product is in the clear");
    assert!(!bytes.windows(11).any(|w| w == b"Dongle User"), "the licensee is in the clear");

    let device_lic = s.world.license("hello", &s.dev, "hello-device.license", &[]);
    let plain = s
        .dev
        .sealrun(s.world.path())
        .arg("run")
        .arg("--license")
        .arg(&device_lic)
        .arg(&package)
        .args(["--", "x"])
        .output()
        .unwrap();
    assert_eq!(plain.status.code(), Some(0), "{}", stderr(&plain));
    let sealed = run_with(&s.dev, &s.hsm, s.world.path(), &package, &lic, &["x"]);
    assert_eq!(sealed.status.code(), Some(0), "{}", stderr(&sealed));
    assert_eq!(stdout(&sealed), stdout(&plain));

    // Installed into the store, it is found without --license, and listed.
    let add = sealrun(&s.dev, &s.hsm, s.world.path()).args(["license", "add"]).arg(&lic).output().unwrap();
    assert!(add.status.success(), "{}", stderr(&add));
    assert!(stdout(&add).contains(&format!("sealed to dongle {dongle}")), "{}", stdout(&add));
    let found = sealrun(&s.dev, &s.hsm, s.world.path()).arg(&package).output().unwrap();
    assert_eq!(found.status.code(), Some(0), "{}", stderr(&found));
    let list = sealrun(&s.dev, &s.hsm, s.world.path()).args(["dongle", "list", "--terms"]).output().unwrap();
    assert!(list.status.success(), "{}", stderr(&list));
    let text = stdout(&list);
    assert!(text.contains("token \"run-dongle\""), "{text}");
    assert!(text.contains(&format!("dongle {dongle}")) && text.contains("permitted on this device"), "{text}");
    assert!(text.contains("_dongles"), "the sealed license is listed: {text}");
    // `sealrun doctor` shows the dongle too, without a PIN.
    let doctor = s.dev.sealrun(s.world.path()).envs(s.hsm.env()).arg("doctor").output().unwrap();
    let report = stdout(&doctor);
    assert!(report.contains("dongles:       1 token(s) via"), "{report}");
    assert!(
        report.contains("\"run-dongle\" (serial")
            && report.contains(&format!("dongle {dongle}, permitted on this device")),
        "{report}"
    );
    assert!(
        text.contains("com.example.hello 1.0.0 for Dongle User") && text.contains("(1 at once)"),
        "with the PIN given, its terms are shown: {text}"
    );
    let no_pin = s.dev.sealrun(s.world.path()).envs(s.hsm.env()).args(["dongle", "list"]).output().unwrap();
    assert!(no_pin.status.success(), "{}", stderr(&no_pin));
    assert!(stdout(&no_pin).contains("dongle list --terms` shows its terms"), "{}", stdout(&no_pin));
    assert!(!stdout(&no_pin).contains("com.example.hello"), "{}", stdout(&no_pin));
}

#[test]
fn refusals_name_the_problem() {
    let Some(s) = setup("refusals") else { return };
    let dongle = provision(&s.world, &s.hsm, &s.dev);
    let package = s.world.seal("hello", "1.0.0");
    let lic = dongle_license(&s.world, "hello", &dongle, 1, "hello-dongle.license");
    let cwd = s.world.path();

    // Wrong device: the dongle is permitted on A; B has it plugged in.
    let b = s.world.device("b");
    let out = run_with(&b, &s.hsm, cwd, &package, &lic, &[]);
    assert_eq!(out.status.code(), Some(201), "{}", stderr(&out));
    assert!(stderr(&out).contains("is permitted on another device"), "{}", stderr(&out));
    assert!(stderr(&out).contains(&s.dev.code()) && stderr(&out).contains(&b.code()), "{}", stderr(&out));

    // Wrong dongle: the license is for X; only Y (another token) is attached.
    let other = SoftHsm::new(&cwd.join("hsm-other")).unwrap();
    other.init_token("other");
    let other_id = provision(&s.world, &other, &s.dev);
    let out = run_with(&s.dev, &other, cwd, &package, &lic, &[]);
    assert_eq!(out.status.code(), Some(216), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("needs dongle {dongle}")) && err.contains(&format!("attached: dongle {other_id}")),
        "{err}"
    );

    // No dongle at all.
    s.hsm.unplug();
    let out = run_with(&s.dev, &s.hsm, cwd, &package, &lic, &[]);
    s.hsm.plug();
    assert_eq!(out.status.code(), Some(216), "{}", stderr(&out));
    assert!(stderr(&out).contains("No Sealrun dongle is attached"), "{}", stderr(&out));

    // A wrong PIN is refused, and the token is asked once: never a retry,
    // even with the license both next to the package and installed.
    std::fs::copy(&lic, package.with_extension("license")).unwrap();
    let add = sealrun(&s.dev, &s.hsm, cwd).args(["license", "add"]).arg(&lic).output().unwrap();
    assert!(add.status.success(), "{}", stderr(&add));
    let spy = Path::new("/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so");
    let log = cwd.join("spy.log");
    let mut cmd = sealrun(&s.dev, &s.hsm, cwd);
    cmd.env("SEALRUN_PIN", "999999");
    if spy.is_file() {
        cmd.env("SEALRUN_PKCS11_MODULE", spy).env("PKCS11SPY", &s.hsm.module).env("PKCS11SPY_OUTPUT", &log);
    }
    let out = cmd.arg(&package).output().unwrap();
    assert_eq!(out.status.code(), Some(217), "{}", stderr(&out));
    assert!(stderr(&out).contains("rejected the PIN"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("999999"), "the PIN is never shown");
    if spy.is_file() {
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(calls.matches("C_Login").count(), 1, "one login attempt only:\n{calls}");
    } else {
        eprintln!("NOTE: OpenSC's pkcs11-spy is not installed; the one-login count was not checked");
    }

    // A tampered license: one byte of the sealed contents flipped.
    let mut bytes = std::fs::read(&lic).unwrap();
    let last = bytes.len() - 5;
    bytes[last] ^= 0x40;
    let bad = cwd.join("tampered.license");
    std::fs::write(&bad, &bytes).unwrap();
    let out = run_with(&s.dev, &s.hsm, cwd, &package, &bad, &[]);
    assert_eq!(out.status.code(), Some(204), "{}", stderr(&out));
    assert!(stderr(&out).contains("damaged or tampered with"), "{}", stderr(&out));

    // A tampered attach record: the data object on the token is replaced by
    // one with a byte changed (the record is not modifiable in place).
    with_session(&s.hsm, |session| {
        let template = [
            Attribute::Class(ObjectClass::DATA),
            Attribute::Label(sealrun::license::dongle::RECORD_LABEL.as_bytes().to_vec()),
        ];
        let rec = session.find_objects(&template).unwrap()[0];
        let Some(Attribute::Value(mut value)) = session.get_attributes(rec, &[AttributeType::Value]).unwrap().pop()
        else {
            panic!("the record has a value")
        };
        assert!(session.update_attributes(rec, &[Attribute::Value(vec![0])]).is_err(), "the record is read-only");
        // Flip a byte of the issue time (inside the signed body).
        let at = value.len() - 64 - 2;
        value[at] ^= 1;
        session.destroy_object(rec).unwrap();
        let mut t = template.to_vec();
        t.extend([Attribute::Token(true), Attribute::Private(false), Attribute::Value(value)]);
        session.create_object(&t).unwrap();
    });
    let out = run_with(&s.dev, &s.hsm, cwd, &package, &lic, &[]);
    assert_eq!(out.status.code(), Some(204), "{}", stderr(&out));
    assert!(stderr(&out).contains("attach record on dongle \"refusals\" does not check out"), "{}", stderr(&out));
}

/// A child process whose stdout and stderr are collected as they come.
struct Live {
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

impl Live {
    fn spawn(cmd: &mut Command) -> Live {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let collect = |mut r: Box<dyn Read + Send>| {
            let buf = Arc::new(Mutex::new(String::new()));
            let b = buf.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 512];
                while let Ok(n) = r.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    b.lock().unwrap().push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            });
            buf
        };
        let out = collect(Box::new(child.stdout.take().unwrap()));
        let err = collect(Box::new(child.stderr.take().unwrap()));
        Live { child, out, err }
    }

    fn wait_for(&self, which: &Arc<Mutex<String>>, marker: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !which.lock().unwrap().contains(marker) {
            assert!(
                Instant::now() < deadline,
                "never saw {marker:?}; stdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stdout(&self) -> String {
        self.out.lock().unwrap().clone()
    }
    fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }
}

#[test]
fn pulled_dongle_pauses_the_app_and_plugging_it_back_resumes_it() {
    pulled_dongle_pauses(&sealrun_tests::sample("ticker"), "detach");
}

/// The same with the ticker built as a `wasi:cli/command` component: its
/// host calls go through the preview-2 host and are held the same way.
#[test]
fn pulled_dongle_pauses_a_component_and_plugging_it_back_resumes_it() {
    pulled_dongle_pauses(&sealrun_tests::component("ticker"), "detach-c");
}

fn pulled_dongle_pauses(wasm: &Path, token: &str) {
    let Some(s) = setup(token) else { return };
    let dongle = provision(&s.world, &s.hsm, &s.dev);
    let package = s.world.seal_module(wasm, "com.example.ticker", "1.0.0", "ticker.sealed", &[]);
    let lic = dongle_license(&s.world, "ticker", &dongle, 1, "ticker.license");
    let cwd = s.world.path();
    let mut cmd = sealrun(&s.dev, &s.hsm, cwd);
    cmd.env("SEALRUN_DONGLE_CHECK_SECS", "0.3").env("SEALRUN_DONGLE_GRACE_SECS", "60");
    cmd.arg("run").arg("--license").arg(&lic).arg(&package).args(["--", "40", "100"]);
    let mut live = Live::spawn(&mut cmd);
    live.wait_for(&live.out, "tick 3");

    // A second copy: the license's count is 1.
    let second = run_with(&s.dev, &s.hsm, cwd, &package, &lic, &["1", "1"]);
    assert_eq!(second.status.code(), Some(219), "{}", stderr(&second));
    assert!(stderr(&second).contains("1 copy of com.example.ticker may run at once"), "{}", stderr(&second));
    // Deleting whatever the launcher keeps in the data folder frees no run
    // (issue 24, finding 4: the run was a lock file, and `rm` freed it).
    let data = s.dev.root.join("home/.local/share/sealrun");
    for entry in std::fs::read_dir(&data).unwrap().flatten() {
        let keep = ["device.key", "licenses"].iter().any(|k| entry.file_name() == *k);
        if !keep {
            let p = entry.path();
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
    let after_rm = run_with(&s.dev, &s.hsm, cwd, &package, &lic, &["1", "1"]);
    assert_eq!(after_rm.status.code(), Some(219), "a second copy after rm: {}", stderr(&after_rm));

    s.hsm.unplug();
    live.wait_for(&live.err, "was removed: the app is paused");
    let ticks_at_pause = live.stdout().lines().count();
    std::thread::sleep(Duration::from_millis(1500));
    let ticks_later = live.stdout().lines().count();
    assert!(ticks_later <= ticks_at_pause + 1, "the app kept running while paused: {ticks_at_pause} -> {ticks_later}");
    assert!(!live.stdout().contains("done"), "{}", live.stdout());

    // While it is away and the first run waits, no other run starts.
    let during = run_with(&s.dev, &s.hsm, cwd, &package, &lic, &["1", "1"]);
    assert_eq!(during.status.code(), Some(216), "{}", stderr(&during));

    s.hsm.plug();
    live.wait_for(&live.err, "is back: the app continues");
    // Plugged back in, it does not hand out a second run either.
    let after = run_with(&s.dev, &s.hsm, cwd, &package, &lic, &["1", "1"]);
    assert_eq!(after.status.code(), Some(219), "{}", stderr(&after));

    let status = live.child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(status.code(), Some(0), "{}", live.stderr());
    let expected: String = (0..40).map(|i| format!("tick {i}\n")).chain(["done 40\n".to_owned()]).collect();
    assert_eq!(live.stdout(), expected, "the output is complete and in order");

    // Its run is free again once it ended.
    let again = run_with(&s.dev, &s.hsm, cwd, &package, &lic, &["1", "1"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
}

#[test]
fn dongle_away_past_the_grace_period_stops_the_app() {
    let Some(s) = setup("grace") else { return };
    let dongle = provision(&s.world, &s.hsm, &s.dev);
    let package = s.world.seal("ticker", "1.0.0");
    let lic = dongle_license(&s.world, "ticker", &dongle, 1, "ticker.license");
    let mut cmd = sealrun(&s.dev, &s.hsm, s.world.path());
    cmd.env("SEALRUN_DONGLE_CHECK_SECS", "0.3").env("SEALRUN_DONGLE_GRACE_SECS", "1");
    cmd.arg("run").arg("--license").arg(&lic).arg(&package).args(["--", "1000", "50"]);
    let mut live = Live::spawn(&mut cmd);
    live.wait_for(&live.out, "tick 2");
    s.hsm.unplug();
    let status = live.child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(status.code(), Some(218), "{}", live.stderr());
    let err = live.stderr();
    assert!(
        err.contains("the app was stopped: dongle \"grace\" was removed and did not come back within 1 s"),
        "{err}"
    );
    assert!(!live.stdout().contains("done"));
}

/// Issue 24, finding 8: a check interval of a day (which let one dongle
/// serve a second computer while the first waited) or a long grace is
/// refused before the app starts, with the limit named.
#[test]
fn day_long_dongle_checks_are_refused() {
    let Some(s) = setup("bounded") else { return };
    let dongle = provision(&s.world, &s.hsm, &s.dev);
    let package = s.world.seal("ticker", "1.0.0");
    let lic = dongle_license(&s.world, "ticker", &dongle, 1, "ticker.license");
    for (var, value, most) in
        [("SEALRUN_DONGLE_CHECK_SECS", "86400", "at most 60"), ("SEALRUN_DONGLE_GRACE_SECS", "3600", "at most 600")]
    {
        let mut cmd = sealrun(&s.dev, &s.hsm, s.world.path());
        cmd.env(var, value).arg("run").arg("--license").arg(&lic).arg(&package).args(["--", "1", "1"]);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {}", stderr(&out));
        assert!(stderr(&out).contains(var) && stderr(&out).contains(most), "{}", stderr(&out));
        assert!(!stdout(&out).contains("tick"), "the app did not start");
    }
}

/// The same flow through the licensing server: the server makes the dongle
/// and keeps its key; `sealsdk server dongle provision` writes it onto the
/// token; the server issues the sealed license; the end user runs it. A
/// second vendor can neither see nor license the first vendor's dongle.
#[test]
fn dongle_through_the_licensing_server() {
    use sealrun_tests::server::{Server, certify_and_seal};
    let Some(s) = setup("server-dongle") else { return };
    let mut srv = Server::init(&s.world.path().join("server"), None);
    let token = srv.vendor("acme");
    let other_token = srv.vendor("rival");
    srv.start();
    let env = [("SEALSDK_SERVER", srv.url.as_str()), ("SEALSDK_TOKEN", token.as_str())];
    let (package, _) = certify_and_seal(&s.world, &env, "hello", "com.acme.hello", &[]);
    let code = s.dev.code();
    let conf = s.hsm.conf.display().to_string();
    let module = s.hsm.module.display().to_string();
    let mut with_token = env.to_vec();
    with_token.extend([("SOFTHSM2_CONF", conf.as_str()), ("SEALSDK_PIN", PIN)]);
    let out =
        s.world.sealsdk_with(&["server", "dongle", "provision", "--module", &module, "--device", &code], &with_token);
    assert!(out.status.success(), "{}", stderr(&out));
    let dongle = stdout(&out).split_whitespace().nth(2).unwrap().to_owned();
    assert!(stdout(&out).contains("signed by the server's issuing key"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("\"key\""), "the key is not printed");

    let lic = s.world.path().join("server-dongle.license");
    let out = s.world.sealsdk_with(
        &[
            "server",
            "license",
            "issue",
            "--product",
            "com.acme.hello",
            "--dongle",
            &dongle,
            "--count",
            "2",
            "--licensee",
            "Acme",
            "-o",
            lic.to_str().unwrap(),
        ],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("sealed to dongle {dongle} (2 at once)")), "{}", stdout(&out));
    let license_id = stdout(&out).split_whitespace().nth(2).unwrap().to_owned();

    let run = run_with(&s.dev, &s.hsm, s.world.path(), &package, &lic, &["x"]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert!(stdout(&run).contains("hello from a sealed app\narg[1]=x\n"), "{}", stdout(&run));

    // The dongle is listed for its vendor only, and only its vendor may license it.
    let list = s.world.sealsdk_with(&["server", "dongle", "list"], &env);
    assert!(stdout(&list).contains(&dongle), "{}", stdout(&list));
    let rival = [("SEALSDK_SERVER", srv.url.as_str()), ("SEALSDK_TOKEN", other_token.as_str())];
    let list = s.world.sealsdk_with(&["server", "dongle", "list"], &rival);
    assert!(list.status.success() && !stdout(&list).contains(&dongle), "{}", stdout(&list));
    let out = s.world.sealsdk_with(
        &[
            "server",
            "license",
            "issue",
            "--product",
            "com.acme.hello",
            "--dongle",
            &dongle,
            "--licensee",
            "Rival",
            "-o",
            "/dev/null",
        ],
        &rival,
    );
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(!stderr(&out).contains("dongle-key"), "no internals in the answer: {}", stderr(&out));

    // A dongle license is revoked like any other (and stays valid offline).
    let out = s.world.sealsdk_with(&["server", "license", "revoke", &license_id], &env);
    assert!(out.status.success(), "{}", stderr(&out));

    // The API answer carries the key once, uncacheable; the database holds
    // it only sealed: its bytes are in no file of the server's data dir.
    let mut resp = ureq::post(format!("{}/v1/dongles", srv.url))
        .header("authorization", &format!("Bearer {token}"))
        .send_json(serde_json::json!({ "device": code }))
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(resp.headers().get("cache-control").unwrap(), "no-store");
    let made: serde_json::Value = resp.body_mut().read_json().unwrap();
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.decode(made["key"].as_str().unwrap()).unwrap();
    assert_eq!(key.len(), 32);
    srv.stop();
    let mut scanned = 0;
    for e in std::fs::read_dir(&srv.data).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            let bytes = std::fs::read(e.path()).unwrap();
            assert!(!bytes.windows(32).any(|w| w == key.as_slice()), "{} holds the dongle key", e.path().display());
            scanned += 1;
        }
    }
    assert!(scanned >= 2, "the database files were scanned");
}

/// CPU seconds (user + system) a process has used so far, from /proc.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses): utime is the
    // 12th, stime the 13th of them.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    #[allow(unsafe_code)]
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

/// A guest that computes without pause (no host calls) is held too: while
/// the dongle is away the process uses no CPU, and it computes again once
/// the dongle is back.
#[test]
fn a_busy_guest_is_held_while_the_dongle_is_away() {
    busy_guest_is_held(&sealrun_tests::sample("hello"), "busy");
}

/// A busy component is held by the same epoch interruption.
#[test]
fn a_busy_component_is_held_while_the_dongle_is_away() {
    busy_guest_is_held(&sealrun_tests::component("hello"), "busy-c");
}

fn busy_guest_is_held(wasm: &Path, token: &str) {
    let Some(s) = setup(token) else { return };
    let dongle = provision(&s.world, &s.hsm, &s.dev);
    let package = s.world.seal_module(wasm, "com.example.hello", "1.0.0", "hello.sealed", &[]);
    let lic = dongle_license(&s.world, "hello", &dongle, 1, "hello.license");
    let mut cmd = sealrun(&s.dev, &s.hsm, s.world.path());
    cmd.env("SEALRUN_DONGLE_CHECK_SECS", "0.3").env("SEALRUN_DONGLE_GRACE_SECS", "60");
    cmd.arg("run").arg("--license").arg(&lic).arg(&package).args(["--", "--spin"]);
    let mut live = Live::spawn(&mut cmd);
    live.wait_for(&live.out, "spinning");
    let pid = live.child.id();
    s.hsm.unplug();
    live.wait_for(&live.err, "the app is paused");
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_secs(pid);
    std::thread::sleep(Duration::from_millis(1500));
    let held = cpu_secs(pid) - before;
    assert!(held < 0.3, "the guest kept computing while held: {held:.2} CPU s in 1.5 s");
    s.hsm.plug();
    live.wait_for(&live.err, "is back: the app continues");
    let before = cpu_secs(pid);
    std::thread::sleep(Duration::from_millis(1500));
    let running = cpu_secs(pid) - before;
    assert!(running > 0.7, "the guest did not compute again: {running:.2} CPU s in 1.5 s");
    live.child.kill().unwrap();
    let _ = live.child.wait();
}

/// Without SEALRUN_PIN or a PIN file the launcher asks on the terminal
/// (a real pseudo-terminal from `script`), with echo off, and the run goes on.
#[test]
fn pin_typed_at_the_terminal_prompt() {
    use std::io::Write;
    let Some(s) = setup("prompt") else { return };
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("NOTE: util-linux `script` is missing; the terminal prompt was not tested");
        return;
    }
    let dongle = provision(&s.world, &s.hsm, &s.dev);
    let package = s.world.seal("hello", "1.0.0");
    let lic = dongle_license(&s.world, "hello", &dongle, 1, "hello.license");
    let line = format!(
        "{} run --license {} {} -- typed",
        sealrun_tests::bin("sealrun").display(),
        lic.display(),
        package.display()
    );
    let mut cmd = Command::new("script");
    cmd.env_clear().envs(s.dev.env()).envs(s.hsm.env()).current_dir(s.world.path());
    cmd.args(["-qec", &line, "/dev/null"]).stdin(Stdio::piped());
    let mut live = Live::spawn(&mut cmd);
    live.wait_for(&live.out, "PIN for dongle \"prompt\": ");
    let mut stdin = live.child.stdin.take().unwrap();
    stdin.write_all(format!("{PIN}\n").as_bytes()).unwrap();
    live.wait_for(&live.out, "hello from a sealed app");
    let status = live.child.wait().unwrap();
    drop(stdin);
    assert!(status.success(), "{}\n{}", live.stdout(), live.stderr());
    assert!(live.stdout().contains("arg[1]=typed"), "{}", live.stdout());
    // Echo was off while the PIN was typed: it is not in the terminal's output.
    let after_prompt = live.stdout().split("PIN for dongle").nth(1).unwrap_or_default().to_owned();
    assert!(!after_prompt.contains(PIN), "the PIN was echoed: {after_prompt:?}");
}

/// Two dongles attached at once (two tokens behind one module): the
/// license's dongle id picks the token, whichever slot it is in.
#[test]
fn with_two_dongles_attached_the_license_picks_its_own() {
    let Some(s) = setup("first") else { return };
    s.hsm.init_token("second");
    let first = provision_slot(&s.world, &s.hsm, &s.dev, 0);
    let second = provision_slot(&s.world, &s.hsm, &s.dev, 1);
    assert_ne!(first, second);
    let package = s.world.seal("hello", "1.0.0");
    for (dongle, file) in [(&first, "first.license"), (&second, "second.license")] {
        let lic = dongle_license(&s.world, "hello", dongle, 1, file);
        let out = run_with(&s.dev, &s.hsm, s.world.path(), &package, &lic, &["x"]);
        assert_eq!(out.status.code(), Some(0), "license for {dongle}: {}", stderr(&out));
    }
    let list = sealrun(&s.dev, &s.hsm, s.world.path()).args(["dongle", "list"]).output().unwrap();
    let text = stdout(&list);
    assert!(text.contains(&format!("dongle {first}")) && text.contains(&format!("dongle {second}")), "{text}");
}

/// Issue 24, finding 6: a token's label is anyone's text. One that holds
/// escape sequences (retitle the terminal, clear the screen) is shown
/// escaped by `sealrun dongle list`, in the PIN prompt and in messages.
#[test]
fn token_labels_reach_the_terminal_escaped() {
    let Some(s) = setup("\u{1b}]0;owned\u{7}\u{1b}[2J") else { return };
    let out = sealrun(&s.dev, &s.hsm, s.world.path()).args(["dongle", "list"]).output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("token \"\\u{1b}]0;owned\\u{7}\\u{1b}[2J\""), "{text:?}");
    assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "{text:?}");
    assert!(!stderr(&out).contains('\u{1b}'), "{:?}", stderr(&out));
}
