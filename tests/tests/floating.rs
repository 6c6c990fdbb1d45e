//! Floating licenses (issue 6), with real `sealrun-floatd` and `sealrun`
//! processes on loopback: seat limits under a crowd, crashes, restarts,
//! network blips, revocation, a dongle-bound daemon, and hostile requests.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sealrun_tests::floatd::Floatd;
use sealrun_tests::{Device, World, plain_wasmtime, sample, stderr, stdout};

/// A world with a sealed sample and a daemon lending `seats` of it.
struct Site {
    world: World,
    floatd: Floatd,
    package: PathBuf,
}

fn site(sample_name: &str, seats: u32, ttl_secs: u64, extra: &[&str]) -> Site {
    site_of(&sample(sample_name), sample_name, seats, ttl_secs, extra)
}

/// [`site`] for the guest `wasm` (a module or a component) of sample
/// `sample_name`'s product.
fn site_of(wasm: &Path, sample_name: &str, seats: u32, ttl_secs: u64, extra: &[&str]) -> Site {
    let world = World::new();
    let product = format!("com.example.{sample_name}");
    let package = world.seal_module(wasm, &product, "1.0.0", &format!("{sample_name}.sealed"), &[]);
    let mut floatd = Floatd::new(&world.path().join("floatd"), ttl_secs);
    floatd.license_for(&world, &product, seats, extra);
    floatd.start();
    Site { world, floatd, package }
}

impl Site {
    /// `sealrun run` on `dev` against the daemon.
    fn sealrun(&self, dev: &Device, extra: &[&str]) -> Command {
        let mut c = dev.sealrun(self.world.path());
        c.arg("run").arg("--license-server").arg(&self.floatd.addr).args(extra).arg(&self.package);
        c
    }
}

/// A running launcher whose stdout and stderr lines are recorded with the
/// time they arrived.
struct Watched {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, bool, String)>>>,
}

impl Watched {
    fn spawn(cmd: &mut Command) -> Watched {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let lines: Arc<Mutex<Vec<(Instant, bool, String)>>> = Arc::default();
        for (is_err, pipe) in [
            (false, Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>),
            (true, Box::new(child.stderr.take().unwrap())),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push((Instant::now(), is_err, l));
                }
            });
        }
        Watched { child, lines }
    }

    fn wait_for(&self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.lines.lock().unwrap().iter().any(|(_, _, l)| l.contains(text)) {
            assert!(Instant::now() < deadline, "never saw {text:?}; got {:?}", self.text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().iter().map(|(_, e, l)| format!("{}{l}\n", if *e { "E: " } else { "" })).collect()
    }

    fn stdout(&self) -> String {
        self.lines.lock().unwrap().iter().filter(|(_, e, _)| !e).map(|(_, _, l)| format!("{l}\n")).collect()
    }

    fn finish(mut self) -> (Option<i32>, Watched) {
        let status = self.child.wait().unwrap();
        // Let the reader threads drain the pipes.
        std::thread::sleep(Duration::from_millis(100));
        (status.code(), self)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        // A launcher left running (paused, or ticking on) ends with its test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ticks(n: usize) -> String {
    let mut s: String = (0..n).map(|i| format!("tick {i}\n")).collect();
    s.push_str(&format!("done {n}\n"));
    s
}

/// The start and end (Unix nanoseconds) a `seat` guest recorded.
fn run_record(text: &str) -> Option<(u128, u128)> {
    let get = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.trim().parse::<u128>().ok());
    Some((get("start ")?, get("end ")?))
}

/// The most guests whose [start, end] intervals overlap at one instant.
fn max_overlap(files: &[PathBuf]) -> (usize, usize) {
    let mut events = Vec::new();
    let mut ran = 0;
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else { continue };
        let Some((start, end)) = run_record(&text) else { panic!("{}: incomplete run record {text:?}", f.display()) };
        assert!(end > start);
        // Ends sort before starts at the same instant.
        events.push((start, 1i32));
        events.push((end, -1i32));
        ran += 1;
    }
    events.sort_by_key(|&(t, d)| (t, d));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    (most as usize, ran)
}

#[test]
fn three_seats_and_twenty_launchers_at_once() {
    let s = site("seat", 3, 30, &[]);
    let records = s.world.path().join("records");
    std::fs::create_dir_all(&records).unwrap();
    let devices: Vec<Device> = (0..20).map(|i| s.world.device(&format!("ws{i}"))).collect();
    // Every device makes its key before the crowd starts.
    for d in &devices {
        d.code();
    }
    let children: Vec<(bool, Child)> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let wait = i % 2 == 0;
            let mut c = s.sealrun(d, if wait { &["--wait"] } else { &[] });
            c.arg("--dir").arg(format!("{}::/records", records.display()));
            c.args(["--", &format!("/records/{i}"), "1500"]);
            (wait, c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
        })
        .collect();
    let outputs: Vec<(bool, Output)> = children.into_iter().map(|(w, c)| (w, c.wait_with_output().unwrap())).collect();
    let mut refused = 0;
    for (i, (wait, out)) in outputs.iter().enumerate() {
        if *wait {
            assert_eq!(out.status.code(), Some(0), "waiter {i}: {}", stderr(out));
            assert!(stdout(out).contains("seat done"), "waiter {i}");
        } else if out.status.code() == Some(220) {
            refused += 1;
            let e = stderr(out);
            assert!(
                e.contains("all 3 seats of com.example.seat are in use (since ")
                    && e.contains("try again later or run with `--wait`"),
                "{e}"
            );
            assert!(!records.join(i.to_string()).exists(), "a refused launcher ran its guest");
        } else {
            assert_eq!(out.status.code(), Some(0), "launcher {i}: {}", stderr(out));
        }
    }
    let files: Vec<PathBuf> = (0..20).map(|i| records.join(i.to_string())).collect();
    let (most, ran) = max_overlap(&files);
    assert_eq!(most, 3, "at most 3 ran at once, and the seats were used");
    assert_eq!(ran, 20 - refused);
    assert!(refused > 0, "with 3 seats, some of the 10 impatient launchers were refused");
    assert_eq!(s.floatd.in_use(), 0, "every seat was given back");
    let log = s.floatd.usage_log();
    let count = |e: &str| log.iter().filter(|l| l["event"] == e).count();
    assert_eq!(count("checkout"), ran);
    assert_eq!(count("release"), ran);
    assert!(count("refusal") >= refused);
}

/// The status's lease ids of the first product.
fn leases(f: &Floatd) -> Vec<String> {
    f.status()["products"][0]["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["lease"].as_str().unwrap().into())
        .collect()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < limit, "{what} did not happen within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

#[test]
fn a_killed_launchers_seat_returns_within_one_ttl() {
    let ttl = 3;
    let s = site("ticker", 1, ttl, &[]);
    let (a, b) = (s.world.device("a"), s.world.device("b"));
    let mut holder = Watched::spawn(s.sealrun(&a, &[]).args(["--", "1000", "100"]));
    holder.wait_for("tick 1", Duration::from_secs(30));
    let refused = s.sealrun(&b, &[]).args(["--", "1", "1"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(220), "{}", stderr(&refused));
    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    let killed = Instant::now();
    wait_until("the seat's return", Duration::from_secs(ttl + 5), || s.floatd.in_use() == 0);
    let back = killed.elapsed();
    // The lease lapses one TTL after its last renewal; the sweep runs twice a second.
    assert!(back <= Duration::from_millis(ttl * 1000 + 700), "took {back:?}");
    let out = s.sealrun(&b, &[]).args(["--", "2", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), ticks(2));
    assert!(s.floatd.usage_log().iter().any(|l| l["event"] == "expiry"), "the lapse is in the usage log");
}

#[test]
fn a_restarted_daemon_honours_held_seats_and_still_refuses_a_fourth() {
    let mut s = site("ticker", 3, 5, &[]);
    let holders: Vec<Watched> = (0..3)
        .map(|i| {
            let d = s.world.device(&format!("h{i}"));
            let w = Watched::spawn(s.sealrun(&d, &[]).args(["--", "60", "100"]));
            w.wait_for("tick 0", Duration::from_secs(30));
            w
        })
        .collect();
    let before = leases(&s.floatd);
    assert_eq!(before.len(), 3);
    s.floatd.stop();
    s.floatd.start();
    let mut after = leases(&s.floatd);
    let mut before_sorted = before.clone();
    before_sorted.sort();
    after.sort();
    assert_eq!(after, before_sorted, "the same leases after the restart");
    let fourth = s.world.device("fourth");
    let out = s.sealrun(&fourth, &[]).args(["--", "1", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(220), "{}", stderr(&out));
    for h in holders {
        let (code, h) = h.finish();
        assert_eq!(code, Some(0), "{}", h.text());
        assert_eq!(h.stdout(), ticks(60));
        assert!(!h.text().contains("paused"), "a restart within the TTL is not noticed: {}", h.text());
    }
    assert_eq!(s.floatd.in_use(), 0);
}

#[test]
fn a_short_blip_keeps_the_seat_and_never_lends_a_second() {
    let mut s = site("ticker", 1, 6, &[]);
    let (a, b) = (s.world.device("a"), s.world.device("b"));
    let holder = Watched::spawn(s.sealrun(&a, &[]).args(["--", "50", "100"]));
    holder.wait_for("tick 0", Duration::from_secs(30));
    s.floatd.crash();
    std::thread::sleep(Duration::from_millis(1500));
    s.floatd.start();
    assert_eq!(s.floatd.in_use(), 1, "the held seat survived a crash of the daemon");
    let out = s.sealrun(&b, &[]).args(["--", "1", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(220), "the seat count never exceeds N: {}", stderr(&out));
    let (code, holder) = holder.finish();
    assert_eq!(code, Some(0), "{}", holder.text());
    assert_eq!(holder.stdout(), ticks(50));
    assert!(!holder.text().contains("paused"), "{}", holder.text());
}

#[test]
fn a_long_blip_pauses_the_app_and_it_resumes_with_its_output_intact() {
    long_blip(&sample("ticker"));
}

/// The same for the ticker built as a command component: its thread is
/// held and let go as a module's is.
#[test]
fn a_long_blip_pauses_a_component_and_it_resumes_with_its_output_intact() {
    long_blip(&sealrun_tests::component("ticker"));
}

fn long_blip(wasm: &Path) {
    let ttl = 3;
    let mut s = site_of(wasm, "ticker", 1, ttl, &[]);
    let a = s.world.device("a");
    let holder = Watched::spawn(s.sealrun(&a, &[]).args(["--", "40", "100"]));
    holder.wait_for("tick 2", Duration::from_secs(30));
    s.floatd.stop();
    holder.wait_for("the app is paused", Duration::from_secs(ttl + 3));
    // Paused: no tick for a while.
    let seen = holder.stdout().lines().count();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(holder.stdout().lines().count(), seen, "the app made progress without a seat");
    s.floatd.start();
    holder.wait_for("the app resumes", Duration::from_secs(10));
    let (code, holder) = holder.finish();
    assert_eq!(code, Some(0), "{}", holder.text());
    assert_eq!(holder.stdout(), ticks(40), "complete and in order");
    // No tick arrived between the pause and the resumption (stdout and
    // stderr are read by two threads: their clocks may differ by a little).
    let lines = holder.lines.lock().unwrap().clone();
    let at = |t: &str| lines.iter().find(|(_, _, l)| l.contains(t)).unwrap().0;
    let slack = Duration::from_millis(100);
    let (paused, resumed) = (at("the app is paused") + slack, at("the app resumes") - slack);
    assert!(
        !lines.iter().any(|(when, err, l)| !err && l.starts_with("tick") && *when > paused && *when < resumed),
        "ticks while paused: {}",
        holder.text()
    );
}

#[test]
fn on_seat_loss_stop_stops_cleanly() {
    let ttl = 2;
    let mut s = site("ticker", 1, ttl, &[]);
    let a = s.world.device("a");
    let holder = Watched::spawn(s.sealrun(&a, &["--on-seat-loss", "stop"]).args(["--", "1000", "100"]));
    holder.wait_for("tick 1", Duration::from_secs(30));
    s.floatd.stop();
    let (code, holder) = holder.finish();
    assert_eq!(code, Some(223), "{}", holder.text());
    assert!(
        holder.text().contains("the app was stopped: its seat of com.example.ticker was lost"),
        "{}",
        holder.text()
    );
}

#[test]
fn a_revoked_seat_stops_its_holder_and_returns_when_the_lease_lapses() {
    let ttl = 3;
    let s = site("ticker", 1, ttl, &[]);
    let (a, b) = (s.world.device("a"), s.world.device("b"));
    let holder = Watched::spawn(s.sealrun(&a, &[]).args(["--", "1000", "100"]));
    holder.wait_for("tick 0", Duration::from_secs(30));
    let lease = leases(&s.floatd).remove(0);
    let out = s.floatd.command().args(["revoke", &lease, "--config"]).arg(&s.floatd.config).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("revoked lease {lease}")), "{}", stdout(&out));
    let status = s.floatd.status();
    assert_eq!(status["products"][0]["leases"][0]["revoked"], true);
    let (code, holder) = holder.finish();
    assert_eq!(code, Some(223), "{}", holder.text());
    assert!(holder.text().contains("was revoked by the site administrator"), "{}", holder.text());
    wait_until("the revoked seat's return", Duration::from_secs(ttl + 3), || s.floatd.in_use() == 0);
    let out = s.sealrun(&b, &[]).args(["--", "1", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Without the admin token, nobody revokes.
    let r = ureq::post(&format!("{}/v1/admin/revoke", s.floatd.url()))
        .config()
        .http_status_as_error(false)
        .build()
        .header("Authorization", "Bearer 00")
        .send_json(serde_json::json!({"lease": lease}))
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[test]
fn status_json_html_metrics_and_usage_log() {
    let s = site("ticker", 2, 30, &[]);
    let a = s.world.device("a");
    let holder = Watched::spawn(s.sealrun(&a, &[]).args(["--", "1000", "50"]));
    holder.wait_for("tick 0", Duration::from_secs(30));
    let st = s.floatd.status();
    let p = &st["products"][0];
    assert_eq!(
        (p["product"].as_str(), p["seats"].as_u64(), p["in_use"].as_u64()),
        (Some("com.example.ticker"), Some(2), Some(1))
    );
    assert_eq!(p["unit"], "computer");
    assert_eq!(p["leases"][0]["device"], a.code());
    let cli = s.floatd.command().args(["status", "--config"]).arg(&s.floatd.config).output().unwrap();
    assert!(cli.status.success(), "{}", stderr(&cli));
    let text = stdout(&cli);
    assert!(text.contains("com.example.ticker: 1 of 2 seats in use (one per computer), 0 waiting"), "{text}");
    assert!(text.contains(p["leases"][0]["lease"].as_str().unwrap()), "{text}");
    let html = ureq::get(&s.floatd.url()).call().unwrap().body_mut().read_to_string().unwrap();
    assert!(html.contains("<h2>com.example.ticker</h2>") && html.contains("1 of 2 seats in use"), "{html}");
    let metrics =
        ureq::get(&format!("{}/metrics", s.floatd.url())).call().unwrap().body_mut().read_to_string().unwrap();
    assert!(metrics.contains("sealrun_floatd_seats_in_use{product=\"com.example.ticker\"} 1"), "{metrics}");
    assert!(metrics.contains("sealrun_floatd_checkouts_total 1"), "{metrics}");
    drop(holder);
    let log = s.floatd.usage_log();
    let checkout = log.iter().find(|l| l["event"] == "checkout").expect("a checkout line");
    for field in ["ts", "product", "lease", "device", "host", "user", "pid", "seats_in_use"] {
        assert!(!checkout[field].is_null(), "{field} missing in {checkout}");
    }
}

#[test]
fn seats_per_computer_or_per_process() {
    for (per_process, second_runs) in [(false, true), (true, false)] {
        let extra: &[&str] = if per_process { &["--per-process"] } else { &[] };
        let s = site("ticker", 1, 30, extra);
        let a = s.world.device("a");
        let first = Watched::spawn(s.sealrun(&a, &[]).args(["--", "1000", "50"]));
        first.wait_for("tick 0", Duration::from_secs(30));
        let second = s.sealrun(&a, &[]).args(["--", "1", "1"]).output().unwrap();
        let code = if second_runs { Some(0) } else { Some(220) };
        assert_eq!(second.status.code(), code, "per_process={per_process}: {}", stderr(&second));
        assert_eq!(s.floatd.in_use(), 1);
    }
}

#[test]
fn a_dongle_bound_floatd_lends_seats_while_its_dongle_is_attached() {
    use sealrun_tests::softhsm::{PIN, SoftHsm, provision_for};
    let world = World::new();
    let Some(hsm) = SoftHsm::new(&world.path().join("hsm")) else { return };
    hsm.init_token("site-dongle");
    let package = world.seal("hello", "1.0.0");
    let mut floatd = Floatd::new(&world.path().join("floatd"), 30);
    let dongle = provision_for(&world, &hsm, &floatd.host_code(), 0);
    let license = floatd.dir.join("floating.license");
    world.sealsdk_ok(&[
        "license",
        "issue",
        "--product",
        "com.example.hello",
        "--dongle",
        &dongle,
        "--floating",
        "2",
        "--licensee",
        "Test Site",
        "-o",
        license.to_str().unwrap(),
    ]);
    std::fs::write(floatd.dir.join("pin"), format!("{PIN}\n")).unwrap();
    floatd.write_config(30, &format!("pkcs11_module = \"{}\"\npin_file = \"pin\"\n", hsm.module.display()));
    floatd.env(&hsm.env());
    floatd.start();
    let a = world.device("a");
    let run =
        || a.sealrun(world.path()).arg("run").arg("--license-server").arg(&floatd.addr).arg(&package).output().unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("hello from a sealed app"));
    // Pulled from the license server: no seat is lent until it is back.
    hsm.unplug();
    wait_until("a refusal without the dongle", Duration::from_secs(15), || {
        let out = run();
        out.status.code() == Some(222) && stderr(&out).contains("dongle is not attached")
    });
    hsm.plug();
    wait_until("seats again with the dongle back", Duration::from_secs(15), || run().status.code() == Some(0));
}

/// Raw requests to the daemon, as a hostile or broken client would send.
fn raw(url: &str, path: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let mut r = ureq::post(&format!("{url}{path}"))
        .config()
        .http_status_as_error(false)
        .build()
        .header("Content-Type", "application/json")
        .send(body)
        .unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

#[test]
fn bad_requests_are_refused_and_corrupt_nothing() {
    let s = site("ticker", 2, 30, &[]);
    let a = s.world.device("a");
    let holder = Watched::spawn(s.sealrun(&a, &[]).args(["--", "1000", "50"]));
    holder.wait_for("tick 0", Duration::from_secs(30));
    let url = s.floatd.url();
    let lease = leases(&s.floatd).remove(0);
    let key_id = "00".repeat(32);
    let checkout = |product: &str, device: &str| {
        serde_json::json!({"product": product, "key_id": key_id, "device": device, "host": "h", "user": "u", "pid": 1})
            .to_string()
    };
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("/v1/checkout", b"{not json".to_vec(), 400, "bad_request"),
        ("/v1/checkout", b"[]".to_vec(), 400, "bad_request"),
        ("/v1/checkout", checkout("com.example.other", &a.code()).into_bytes(), 404, "unknown_product"),
        ("/v1/checkout", checkout("com.example.ticker", "SR1-NOT-A-CODE").into_bytes(), 404, "not_covered"),
        (
            "/v1/checkout",
            checkout("com.example.ticker", &a.code()).replace("\"pid\":1", "\"pid\":1,\"extra\":true").into_bytes(),
            400,
            "bad_request",
        ),
        ("/v1/checkout", vec![b' '; 64 * 1024], 413, "too_large"),
        ("/v1/heartbeat", format!(r#"{{"lease":"{lease}","secret":"00"}}"#).into_bytes(), 400, "bad_request"),
        (
            "/v1/heartbeat",
            format!(r#"{{"lease":"{lease}","nonce":"00","proof":"{}"}}"#, "cd".repeat(32)).into_bytes(),
            400,
            "bad_request",
        ),
        (
            "/v1/heartbeat",
            format!(r#"{{"lease":"{}","nonce":"{}","proof":"{}"}}"#, "ab".repeat(16), "01".repeat(16), "cd".repeat(32))
                .into_bytes(),
            404,
            "unknown_lease",
        ),
        (
            "/v1/heartbeat",
            format!(r#"{{"lease":"{lease}","nonce":"{}","proof":"{}"}}"#, "01".repeat(16), "cd".repeat(32))
                .into_bytes(),
            404,
            "unknown_lease",
        ),
        (
            "/v1/release",
            format!(r#"{{"lease":"{lease}","nonce":"{}","proof":"{}"}}"#, "01".repeat(16), "ee".repeat(32))
                .into_bytes(),
            404,
            "unknown_lease",
        ),
        (
            "/v1/release",
            format!(
                r#"{{"lease":"{}","nonce":"{}","proof":"{}"}}"#,
                lease.to_uppercase(),
                "01".repeat(16),
                "ee".repeat(32)
            )
            .into_bytes(),
            400,
            "bad_request",
        ),
        ("/v1/nowhere", b"{}".to_vec(), 404, "not_found"),
    ];
    for (path, body, status, error) in cases {
        let (got, v) = raw(&url, path, &body);
        assert_eq!(
            (got, v["error"].as_str()),
            (status, Some(error)),
            "{path} {:?}: {v}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
    // Not HTTP at all.
    use std::io::{Read, Write};
    let mut sock = std::net::TcpStream::connect(&s.floatd.addr).unwrap();
    sock.write_all(b"\x16\x03\x01garbage\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = sock.read_to_end(&mut buf);
    // The held seat is intact, still renewed, and the daemon still lends.
    assert_eq!(leases(&s.floatd), vec![lease.clone()]);
    assert_eq!(s.floatd.in_use(), 1);
    let b = s.world.device("b");
    let out = s.sealrun(&b, &[]).args(["--", "2", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    drop(holder);
}

#[test]
fn floating_files_unreachable_servers_and_floating_licenses_used_directly() {
    let s = site("hello", 1, 30, &[]);
    let a = s.world.device("a");
    // A floating file merely next to the package is not used (issue 24,
    // finding 2: a downloaded folder could bring its own license server),
    // nor is a product-less one in the folder.
    let file = s.world.path().join("hello.floating");
    std::fs::write(&file, format!("server = \"{}\"\nproduct = \"com.example.hello\"\n", s.floatd.addr)).unwrap();
    std::fs::write(s.world.path().join("any.floating"), format!("server = \"{}\"\n", s.floatd.addr)).unwrap();
    let out = a.sealrun(s.world.path()).arg(&s.package).output().unwrap();
    assert_eq!(out.status.code(), Some(200), "no license, no seat: {}", stderr(&out));
    assert_eq!(s.floatd.usage_log().iter().filter(|l| l["event"] == "checkout").count(), 0, "the daemon was not asked");
    // Named on the command line, it is used.
    let out = a.sealrun(s.world.path()).arg("run").arg("--license").arg(&file).arg(&s.package).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A CA file that is not a regular file is refused, not read forever.
    let bad_ca = s.world.path().join("bad-ca.floating");
    std::fs::write(&bad_ca, format!("server = \"https://{}\"\nca = \"/dev/zero\"\n", s.floatd.addr)).unwrap();
    let out = a.sealrun(s.world.path()).arg("run").arg("--license").arg(&bad_ca).arg(&s.package).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("/dev/zero") && stderr(&out).contains("not a regular file"), "{}", stderr(&out));
    std::fs::remove_file(&bad_ca).unwrap();
    std::fs::remove_file(s.world.path().join("any.floating")).unwrap();
    // Installed, it works from anywhere.
    let add = a.sealrun(s.world.path()).args(["license", "add"]).arg(&file).output().unwrap();
    assert!(add.status.success(), "{}", stderr(&add));
    assert!(stdout(&add).contains("installed the floating license server"), "{}", stdout(&add));
    std::fs::remove_file(&file).unwrap();
    let out = a.sealrun(s.world.path()).arg(&s.package).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doctor = a.sealrun(s.world.path()).arg("doctor").output().unwrap();
    assert!(
        stdout(&doctor).contains(&format!("license server: {} for com.example.hello", s.floatd.addr)),
        "{}",
        stdout(&doctor)
    );
    // A local license wins over the floating file when both work.
    s.world.license("hello", &a, "hello.license", &[]);
    let out = a.sealrun(s.world.path()).env("SEALRUN_LOG", "sealrun=debug").arg(&s.package).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s.floatd.usage_log().iter().filter(|l| l["event"] == "checkout").count(), 2, "no seat was taken");
    // Nothing listens: 221 with the next step.
    let out =
        a.sealrun(s.world.path()).args(["run", "--license-server", "127.0.0.1:1"]).arg(&s.package).output().unwrap();
    assert_eq!(out.status.code(), Some(221), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot reach the license server http://127.0.0.1:1"), "{}", stderr(&out));
    // The daemon's own license is not a license for a workstation.
    let out = a
        .sealrun(s.world.path())
        .arg("run")
        .arg("--license")
        .arg(s.floatd.dir.join("floating.license"))
        .arg(&s.package)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(201), "{}", stderr(&out));
    assert!(stderr(&out).contains("is a floating license"), "{}", stderr(&out));
}

/// The `seat` guest, plain under `plain-wasmtime` and sealed under
/// `sealrun`: it records a start and an end at least MS apart.
#[test]
fn seat_guest_records_its_run() {
    let world = World::new();
    let (dev, package) = world.licensed_sample("seat");
    let dir = world.path().join("records");
    std::fs::create_dir_all(&dir).unwrap();
    let check = |file: &Path| {
        let text = std::fs::read_to_string(file).unwrap();
        let (start, end) = run_record(&text).expect("a complete run record");
        assert!(end - start >= 200_000_000, "{text}");
    };
    let out = dev
        .sealrun(world.path())
        .arg("run")
        .arg("--dir")
        .arg(format!("{}::/r", dir.display()))
        .arg(&package)
        .args(["--", "/r/sealed", "200"])
        .output()
        .unwrap();
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), "seat done\n"), "{}", stderr(&out));
    check(&dir.join("sealed"));
    let wasmtime = plain_wasmtime();
    let out = Command::new(wasmtime)
        .args(["run", "--dir"])
        .arg(format!("{}::/r", dir.display()))
        .arg(sample("seat"))
        .args(["/r/plain", "200"])
        .output()
        .unwrap();
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), "seat done\n"), "{}", stderr(&out));
    check(&dir.join("plain"));
}

#[test]
fn ctrl_c_sigterm_and_sighup_give_the_seat_back_at_once() {
    // A long lease: only an explicit release frees the seat in time.
    let s = site("ticker", 1, 300, &[]);
    let a = s.world.device("a");
    // SIGHUP: the terminal window was closed (issue 24, finding 8).
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let holder = Watched::spawn(s.sealrun(&a, &[]).args(["--", "1000", "50"]));
        holder.wait_for("tick 1", Duration::from_secs(30));
        assert_eq!(s.floatd.in_use(), 1);
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(holder.child.id() as i32, signal)
        };
        let (code, holder) = holder.finish();
        assert_eq!(code, Some(128 + signal), "{}", holder.text());
        assert_eq!(s.floatd.in_use(), 0, "the seat was given back before the launcher exited");
    }
}

#[test]
fn over_tls_with_a_private_ca() {
    let world = World::new();
    let package = world.seal("hello", "1.0.0");
    let mut floatd = Floatd::new(&world.path().join("floatd"), 30);
    floatd.license_for(&world, "com.example.hello", 1, &[]);
    let (cert, key, ca) = sealrun_tests::private_ca(&world.path().join("tls"));
    floatd.write_config(30, &format!("tls_cert = \"{}\"\ntls_key = \"{}\"\n", cert.display(), key.display()));
    floatd.start();
    let url = format!("https://{}", floatd.addr);
    let a = world.device("a");
    let run = |ca: Option<&Path>| {
        let mut c = a.sealrun(world.path());
        if let Some(ca) = ca {
            c.env("SEALRUN_LICENSE_SERVER_CA", ca);
        }
        c.arg("run").arg("--license-server").arg(&url).arg(&package).output().unwrap()
    };
    let out = run(None);
    assert_eq!(out.status.code(), Some(221), "an unknown certificate is refused: {}", stderr(&out));
    let out = run(Some(&ca));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("hello from a sealed app"));
    let status = floatd.command().args(["status", "--server", &url, "--ca"]).arg(&ca).output().unwrap();
    assert!(stdout(&status).contains("com.example.hello: 0 of 1 seats in use"), "{}", stderr(&status));
}

/// A blip longer than the lease while the daemon keeps running (frozen, as
/// a network that swallows requests looks): the lease lapses, and the
/// client gets its own seat back with a new checkout, never a second one.
#[test]
fn after_its_lease_lapsed_a_client_gets_its_own_seat_back() {
    let ttl = 2;
    let s = site("ticker", 1, ttl, &[]);
    let (a, b) = (s.world.device("a"), s.world.device("b"));
    let holder = Watched::spawn(s.sealrun(&a, &[]).args(["--", "60", "100"]));
    holder.wait_for("tick 2", Duration::from_secs(30));
    s.floatd.signal(libc::SIGSTOP);
    holder.wait_for("the app is paused", Duration::from_secs(ttl + 5));
    std::thread::sleep(Duration::from_secs(ttl + 1));
    s.floatd.signal(libc::SIGCONT);
    holder.wait_for("the app resumes", Duration::from_secs(10));
    assert_eq!(s.floatd.in_use(), 1);
    let out = s.sealrun(&b, &[]).args(["--", "1", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(220), "one seat, held again by a: {}", stderr(&out));
    let (code, holder) = holder.finish();
    assert_eq!(code, Some(0), "{}", holder.text());
    assert_eq!(holder.stdout(), ticks(60));
    // The seat comes back by the client's release at exit or, when that
    // release did not get an answer in time (it waits about a heartbeat, and
    // the full suite loads both cores), by the lease lapsing. The line is
    // written as floatd acts; the client may have exited before it.
    let deadline = std::time::Instant::now() + Duration::from_secs(ttl + 10);
    let events = || -> Vec<(String, String)> {
        s.floatd
            .usage_log()
            .iter()
            .filter(|l| ["checkout", "expiry", "release"].contains(&l["event"].as_str().unwrap()))
            .map(|l| (l["event"].as_str().unwrap().to_owned(), l["device"].as_str().unwrap().to_owned()))
            .collect()
    };
    let mut seen = events();
    while seen.len() < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        seen = events();
    }
    let code_a = a.code();
    let seen: Vec<(&str, &str)> = seen.iter().map(|(e, d)| (e.as_str(), d.as_str())).collect();
    assert_eq!(
        seen[..3],
        [("checkout", code_a.as_str()), ("expiry", &code_a), ("checkout", &code_a)],
        "the lapsed lease, then the same device's new one"
    );
    assert!(
        seen[3..] == [("release", code_a.as_str())] || seen[3..] == [("expiry", code_a.as_str())],
        "the new lease released or lapsed, nothing else: {seen:?}"
    );
}

/// How a test server answers a request: (path, body) to (status, body).
type Answer<'a> = &'a dyn Fn(&str, &[u8]) -> (u16, String);

/// Serves one HTTP/1.1 request on `stream` with `answer(path, body)`.
fn serve_one(mut stream: std::net::TcpStream, answer: Answer<'_>) {
    use std::io::{Read, Write};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let (status, body) = answer(&path, &buf[head_end..]);
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A rogue "license server" in the middle, on plain HTTP: it passes
/// checkouts on to the real daemon, then tries to give the seat back at
/// once and answers heartbeats itself, so one seat would serve any number
/// of users. Neither works: it cannot prove a release (the lease secret
/// reached the workstation wrapped to its device key), and its renewals do
/// not prove they came from the daemon, so the app pauses.
#[test]
fn a_proxy_in_the_middle_can_neither_free_the_seat_nor_fake_renewals() {
    let ttl = 3;
    let s = site("ticker", 1, ttl, &[]);
    let real = s.floatd.url();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = listener.local_addr().unwrap().to_string();
    let release_statuses: Arc<Mutex<Vec<u16>>> = Arc::default();
    {
        let statuses = release_statuses.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (real, statuses) = (real.clone(), statuses.clone());
                std::thread::spawn(move || {
                    serve_one(stream, &|path, body| {
                        if path == "/v1/heartbeat" {
                            return (200, format!(r#"{{"ttl_ms":3600000,"proof":"{}"}}"#, "00".repeat(32)));
                        }
                        let (status, v) = raw(&real, path, body);
                        if path == "/v1/checkout" && status == 200 {
                            let forged = format!(
                                r#"{{"lease":"{}","nonce":"{}","proof":"{}"}}"#,
                                v["lease"].as_str().unwrap(),
                                "00".repeat(16),
                                "00".repeat(32)
                            );
                            statuses.lock().unwrap().push(raw(&real, "/v1/release", forged.as_bytes()).0);
                        }
                        (status, v.to_string())
                    });
                });
            }
        });
    }
    let a = s.world.device("a");
    let mut cmd = a.sealrun(s.world.path());
    cmd.args(["run", "--license-server", &proxy]).arg(&s.package).args(["--", "1000", "100"]);
    let holder = Watched::spawn(&mut cmd);
    holder.wait_for("tick 0", Duration::from_secs(30));
    assert_eq!(*release_statuses.lock().unwrap(), vec![404], "the daemon refused the proxy's release");
    assert_eq!(s.floatd.in_use(), 1, "the seat stays taken");
    holder.wait_for("the app is paused", Duration::from_secs(ttl + 5));
    assert!(holder.text().contains("does not prove it came from the license server"), "{}", holder.text());
    drop(holder);
}

/// What a proxy does with one request: (path, body) to (status, body).
type Handler = dyn Fn(&str, &[u8]) -> (u16, String) + Send + Sync;

/// Starts a proxy on loopback that answers every request with `handler`;
/// returns its address for `--license-server`.
fn proxy(handler: Arc<Handler>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let handler = handler.clone();
            std::thread::spawn(move || serve_one(stream, &*handler));
        }
    });
    addr
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn field_bytes<const N: usize>(v: &serde_json::Value, name: &str) -> [u8; N] {
    <[u8; N]>::try_from(hex::decode(v[name].as_str().unwrap()).unwrap()).unwrap()
}

/// The strongest proxy a user can put between the workstations and the
/// daemon without the content key. It passes each checkout on, then swaps
/// the lease secret for one of its own, validly wrapped to the device code
/// (which is public, so HPKE base mode opens it), raises the lease time to
/// a day, and proves the grant's terms under the key it would derive if
/// it had a content key (it can only guess one). It would then answer
/// every heartbeat with proofs under that key and swallow every release,
/// so that the daemon's lease lapses while the app runs on. Before
/// protocol 2 three workstations ran at once this way on a one-seat
/// license while the daemon counted none in use. Now each launcher refuses
/// the grant (222) before the app starts, and the daemon's count is true:
/// the seat it lent returns when that lease lapses.
#[test]
fn a_proxy_that_wraps_its_own_lease_secret_gets_no_app_running() {
    use base64::Engine as _;
    use sealrun_format::ContentKey;
    use sealrun_format::device::DeviceCode;
    use sealrun_format::lease::{LeaseId, LeaseRoot, LeaseSecret, Proof, ProofKey, lend_secret, prove};
    use sealrun_format::license::License;
    use std::collections::HashMap;

    let ttl = 2;
    let s = site("ticker", 1, ttl, &[]);
    let real = s.floatd.url();
    let keys: Arc<Mutex<HashMap<LeaseId, ProofKey>>> = Arc::default();
    let forged = Arc::new(Mutex::new(0u32));
    let handler: Arc<Handler> = {
        let (keys, forged) = (keys.clone(), forged.clone());
        Arc::new(move |path: &str, body: &[u8]| {
            let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
            let req: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            match path {
                "/v1/checkout" => {
                    let (status, mut v) = raw(&real, path, body);
                    if status != 200 {
                        return (status, v.to_string());
                    }
                    let device: DeviceCode = req["device"].as_str().unwrap().parse().unwrap();
                    let nonce: [u8; 16] = field_bytes(&req, "nonce");
                    let license = License::parse(&b64().decode(v["license"].as_str().unwrap()).unwrap()).unwrap();
                    let lease: LeaseId = v["lease"].as_str().unwrap().parse().unwrap();
                    let own = LeaseSecret::generate(&mut rng);
                    let wrapped = lend_secret(&own, &license, &lease, &device, &mut rng).unwrap();
                    let guessed = LeaseRoot::derive(&ContentKey::generate(&mut rng), &license).proof_key(&lease, &own);
                    let (ttl_ms, renew_ms) = (86_400_000u64, 1_000u64);
                    let proof = prove(&guessed, Proof::Granted { ttl_ms, renew_ms }, &lease, &nonce);
                    v["secret"] = b64().encode(wrapped.to_bytes()).into();
                    v["ttl_ms"] = ttl_ms.into();
                    v["renew_ms"] = renew_ms.into();
                    v["proof"] = hex::encode(proof).into();
                    keys.lock().unwrap().insert(lease, guessed);
                    *forged.lock().unwrap() += 1;
                    (200, v.to_string())
                }
                "/v1/heartbeat" => {
                    let lease: LeaseId = req["lease"].as_str().unwrap_or_default().parse().unwrap_or(LeaseId([0; 16]));
                    let nonce: [u8; 16] = field_bytes(&req, "nonce");
                    let keys = keys.lock().unwrap();
                    let Some(key) = keys.get(&lease) else {
                        return (404, r#"{"error":"unknown_lease","message":"-"}"#.into());
                    };
                    let proof = prove(key, Proof::Renewed { ttl_ms: 86_400_000 }, &lease, &nonce);
                    (200, format!(r#"{{"ttl_ms":86400000,"proof":"{}"}}"#, hex::encode(proof)))
                }
                "/v1/release" => (200, r#"{"released":"-"}"#.into()),
                _ => {
                    let (status, v) = raw(&real, path, body);
                    (status, v.to_string())
                }
            }
        })
    };
    let addr = proxy(handler);
    for name in ["a", "b", "c"] {
        // One workstation after another, each once the seat the last one
        // was lent has lapsed at the daemon.
        wait_until("the seat to return", Duration::from_secs(ttl + 5), || s.floatd.in_use() == 0);
        let dev = s.world.device(name);
        let mut cmd = dev.sealrun(s.world.path());
        cmd.args(["run", "--license-server", &addr]).arg(&s.package).args(["--", "1000", "100"]);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(222), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains("the grant's terms are not proven by the license server"), "{}", stderr(&out));
        assert_eq!(stdout(&out), "", "{name}: the app never started");
        assert!(s.floatd.in_use() <= 1);
    }
    assert_eq!(*forged.lock().unwrap(), 3, "the proxy forged every grant");
    wait_until("the last lent seat to lapse", Duration::from_secs(ttl + 5), || s.floatd.in_use() == 0);
}

/// A proxy that only raises the lease time, first in the grant (the
/// launcher refuses it: 222), then, with the grant left alone, in each
/// renewal it passes on: the raised renewal does not prove itself, so the
/// app pauses within one lease time rather than running for a day on a
/// seat the daemon has freed; with `--on-seat-loss stop` it stops (223).
#[test]
fn a_proxy_that_raises_the_lease_time_is_caught() {
    let ttl = 3;
    let s = site("ticker", 1, ttl, &[]);
    let inflate = |in_grant: bool| -> Arc<Handler> {
        let real = s.floatd.url();
        Arc::new(move |path: &str, body: &[u8]| {
            let (status, mut v) = raw(&real, path, body);
            let raise = if in_grant { path == "/v1/checkout" } else { path == "/v1/heartbeat" };
            if status == 200 && raise {
                v["ttl_ms"] = 86_400_000u64.into();
            }
            (status, v.to_string())
        })
    };
    let a = s.world.device("a");
    let addr = proxy(inflate(true));
    let mut cmd = a.sealrun(s.world.path());
    let out =
        cmd.args(["run", "--license-server", &addr]).arg(&s.package).args(["--", "1000", "100"]).output().unwrap();
    assert_eq!(out.status.code(), Some(222), "{}", stderr(&out));
    assert!(stderr(&out).contains("not proven by the license server"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");

    wait_until("the refused grant's seat to lapse", Duration::from_secs(ttl + 5), || s.floatd.in_use() == 0);
    let addr = proxy(inflate(false));
    for on_loss in ["pause", "stop"] {
        let mut cmd = a.sealrun(s.world.path());
        cmd.args(["run", "--license-server", &addr, "--on-seat-loss", on_loss]).arg(&s.package);
        let holder = Watched::spawn(cmd.args(["--", "1000", "100"]));
        holder.wait_for("tick 0", Duration::from_secs(30));
        let started = Instant::now();
        if on_loss == "pause" {
            holder.wait_for("the app is paused", Duration::from_secs(ttl + 2));
            assert!(holder.text().contains("does not prove it came from the license server"), "{}", holder.text());
            let ticks = holder.stdout().lines().count();
            std::thread::sleep(Duration::from_secs(2));
            assert_eq!(holder.stdout().lines().count(), ticks, "a paused app prints nothing");
        } else {
            let (code, holder) = holder.finish();
            assert_eq!(code, Some(223), "{}", holder.text());
            assert!(started.elapsed() < Duration::from_secs(ttl + 3), "stopped after {:?}", started.elapsed());
        }
    }
}

/// A proxy that records the daemon's renewals and, after three, stops
/// passing heartbeats on and answers each with the last real renewal
/// (valid proof, old nonce). It also sends every heartbeat it passes on a
/// second time, to keep the lease alive at the daemon on its own later:
/// the daemon refuses each replay (409), and the launcher refuses each
/// replayed renewal, so the app pauses within one lease time of the last
/// real one, and the daemon's count drops to 0 when the lease lapses.
#[test]
fn a_proxy_that_replays_renewals_and_heartbeats_gets_nowhere() {
    let ttl = 3;
    let s = site("ticker", 1, ttl, &[]);
    let real = s.floatd.url();
    let replays: Arc<Mutex<Vec<u16>>> = Arc::default();
    let recorded: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let handler: Arc<Handler> = {
        let (replays, recorded) = (replays.clone(), recorded.clone());
        Arc::new(move |path: &str, body: &[u8]| {
            if path == "/v1/heartbeat" {
                let mut recorded = recorded.lock().unwrap();
                if recorded.len() >= 3 {
                    return (200, recorded.last().unwrap().1.clone());
                }
                let (status, v) = raw(&real, path, body);
                replays.lock().unwrap().push(raw(&real, path, body).0);
                if status == 200 {
                    recorded.push((Instant::now(), v.to_string()));
                }
                return (status, v.to_string());
            }
            let (status, v) = raw(&real, path, body);
            (status, v.to_string())
        })
    };
    let addr = proxy(handler);
    let a = s.world.device("a");
    let mut cmd = a.sealrun(s.world.path());
    cmd.args(["run", "--license-server", &addr]).arg(&s.package).args(["--", "1000", "100"]);
    let holder = Watched::spawn(&mut cmd);
    holder.wait_for("the app is paused", Duration::from_secs(30));
    let paused_at = Instant::now();
    let last_real = recorded.lock().unwrap().last().unwrap().0;
    assert!(
        paused_at - last_real <= Duration::from_secs(ttl) + Duration::from_millis(1500),
        "paused {:?} after the last real renewal",
        paused_at - last_real
    );
    assert!(holder.text().contains("does not prove it came from the license server"), "{}", holder.text());
    let statuses = replays.lock().unwrap().clone();
    assert_eq!(statuses, vec![409; statuses.len()], "every replayed heartbeat was refused");
    assert!(statuses.len() >= 3);
    wait_until("the lease to lapse at the daemon", Duration::from_secs(ttl + 3), || s.floatd.in_use() == 0);
    let ticks = holder.stdout().lines().count();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(holder.stdout().lines().count(), ticks, "the app stays paused while the daemon counts no seat");
    assert!(
        s.floatd.usage_log().iter().any(|l| l["event"] == "refusal" && l["error"] == "replayed"),
        "the usage log records the replays"
    );
}

/// Anyone on the network can read a workstation's device code from the
/// daemon's anonymous status page and check out lease after lease under
/// it. Before, 64 such leases locked that workstation out (`too_many`).
/// Now leases that no heartbeat confirmed (only the device can: it needs
/// the lent key) are capped per device and replaced oldest first, so the
/// squatter never holds more than a few, the seat count does not move, and
/// the workstation starts another copy as before.
#[test]
fn leases_squatted_under_a_listed_device_code_do_not_lock_that_computer_out() {
    let s = site("ticker", 1, 30, &[]);
    let a = s.world.device("a");
    let holder = Watched::spawn(s.sealrun(&a, &[]).args(["--", "1000", "50"]));
    holder.wait_for("tick 0", Duration::from_secs(30));
    let listed = s.floatd.status()["products"][0]["leases"][0]["device"].as_str().unwrap().to_owned();
    assert_eq!(listed, a.code(), "the status page shows the holder's device code");
    let key_id = hex::encode(sealrun::runtime::read_header(&s.package).unwrap().manifest.key_id.0);
    let url = s.floatd.url();
    let mut granted = 0;
    for i in 0..100 {
        let body = serde_json::json!({"product": "com.example.ticker", "key_id": key_id, "device": listed,
            "host": "squatter", "user": "x", "pid": i, "nonce": hex::encode([i as u8; 16])});
        let (status, v) = raw(&url, "/v1/checkout", body.to_string().as_bytes());
        assert!(status == 200, "checkout {i}: {status} {v}");
        granted += 1;
    }
    assert_eq!(granted, 100);
    let status = s.floatd.status();
    let leases = status["products"][0]["leases"].as_array().unwrap();
    let squatted = leases.iter().filter(|l| l["host"] == "squatter").count();
    assert!(squatted <= 16, "{squatted} squatted leases kept");
    assert_eq!(s.floatd.in_use(), 1, "the squatted leases ride on a's seat");
    // a starts another copy: it gets a lease (and confirms it).
    let out = s.sealrun(&a, &[]).args(["--", "2", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(s.floatd.usage_log().iter().any(|l| l["event"] == "replaced"), "the log says which leases were replaced");
    drop(holder);
}

/// The daemon holds content keys and lease proof keys: not dumpable, no
/// core dumps (checked on a daemon run as another user, since root sees
/// through the flag), and its lease database readable by it alone.
#[test]
fn floatd_is_hardened_and_its_lease_database_is_private() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let world = World::new();
    let package = world.seal("ticker", "1.0.0");
    let mut floatd = Floatd::new(&world.path().join("floatd"), 30);
    floatd.license_for(&world, "com.example.ticker", 1, &[]);
    let nobody = 65534;
    // The daemon's user must reach its directory inside the test's.
    std::fs::set_permissions(world.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    floatd.run_as(nobody);
    floatd.start();
    let proc = format!("/proc/{}", floatd.pid());
    let limits = std::fs::read_to_string(format!("{proc}/limits")).unwrap();
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).unwrap();
    assert!(core.split_whitespace().skip(4).take(2).all(|v| v == "0"), "core dumps are on: {core}");
    let owner = std::fs::metadata(format!("{proc}/mem")).unwrap().uid();
    assert_eq!(owner, 0, "a dumpable daemon's /proc entries belong to its user ({nobody})");
    // A lease is stored (with its proof key): the files are 0600.
    let a = world.device("a");
    let out = a
        .sealrun(world.path())
        .args(["run", "--license-server", &floatd.addr])
        .arg(&package)
        .args(["--", "1", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for name in ["leases.sqlite", "leases.sqlite-wal", "leases.sqlite-shm"] {
        let path = floatd.dir.join("state").join(name);
        let Ok(meta) = std::fs::metadata(&path) else {
            assert_ne!(name, "leases.sqlite", "the lease database exists");
            continue;
        };
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{}", path.display());
    }
}
