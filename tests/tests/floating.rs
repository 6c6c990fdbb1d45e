//! Floating licenses (issue 6), with real `sealrun-floatd` and `sealrun`
//! processes on loopback: seat limits under a crowd, crashes, restarts,
//! network blips, revocation, a dongle-bound daemon, and hostile requests.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sealrun_tests::floatd::Floatd;
use sealrun_tests::{Device, World, sample, stderr, stdout, wasmtime_cli};

/// A world with a sealed sample and a daemon lending `seats` of it.
struct Site {
    world: World,
    floatd: Floatd,
    package: PathBuf,
    product: String,
}

fn site(sample_name: &str, seats: u32, ttl_secs: u64, extra: &[&str]) -> Site {
    let world = World::new();
    let package = world.seal(sample_name, "1.0.0");
    let product = format!("com.example.{sample_name}");
    let mut floatd = Floatd::new(&world.path().join("floatd"), ttl_secs);
    floatd.license_for(&world, &product, seats, extra);
    floatd.start();
    Site { world, floatd, package, product }
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

fn ticks(n: usize) -> String {
    let mut s: String = (0..n).map(|i| format!("tick {i}\n")).collect();
    s.push_str(&format!("done {n}\n"));
    s
}

/// The most guests whose [start, end] intervals overlap at one instant.
fn max_overlap(files: &[PathBuf]) -> (usize, usize) {
    let mut events = Vec::new();
    let mut ran = 0;
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else { continue };
        let get = |k: &str| {
            text.lines().find_map(|l| l.strip_prefix(k)).map(|v| v.trim().parse::<u128>().expect("nanos"))
        };
        let (start, end) = (get("start "), get("end "));
        let (Some(start), Some(end)) = (start, end) else { panic!("{}: incomplete run record {text:?}", f.display()) };
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
