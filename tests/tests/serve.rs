//! `sealrun serve` (issue 17): a sealed `wasi:http/proxy` component served
//! as a licensed web service by a real `sealrun` process, driven over
//! loopback by an HTTP client: its answers equal those of the plain runner
//! serving the same component; concurrent requests are served at once; a
//! request over its time limit gets 504 and the others go on; SIGTERM
//! finishes the open requests; the access log has a line per request; and
//! a command is refused.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sealrun_tests::{Device, World, component, plain_wasmtime, stderr, stdout};

/// The sample, sealed and licensed for device "a" of `world`.
fn sealed_service(world: &World) -> (Device, PathBuf) {
    let dev = world.device("a");
    let package = world.seal_module(&component("http_service"), "com.example.web", "1.0.0", "web.sealed", &[]);
    world.license_product("com.example.web", &dev, "web.license", &[]);
    (dev, package)
}

/// A free port on loopback (bound and let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts connections on `port`.
fn wait_for(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the server ended before it listened: {status}");
        }
        assert!(Instant::now() < deadline, "nothing listened on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `sealrun serve` of `package` on a free port, with extra flags.
fn start_sealed(world: &World, dev: &Device, package: &Path, extra: &[&str]) -> (Child, u16) {
    start_serving(dev.sealrun(world.path()), package, extra)
}

/// `sealrun serve` of `package` on a free port through `sealrun` (a
/// device's command, with its environment).
fn start_serving(mut sealrun: Command, package: &Path, extra: &[&str]) -> (Child, u16) {
    let port = free_port();
    let mut child = sealrun
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .arg(package)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(port, &mut child);
    (child, port)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// (status, content type, x-echo-length, body) of a request.
fn call(agent: &ureq::Agent, port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String, String, String) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let response = match method {
        "POST" => agent.post(&url).send(body),
        _ => agent.get(&url).call(),
    };
    let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (ctype, echo) = (header("content-type"), header("x-echo-length"));
    let status = response.status().as_u16();
    (status, ctype, echo, response.body_mut().read_to_string().unwrap())
}

fn stop(mut child: Child) -> (std::process::ExitStatus, String) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status, stderr(&out))
}

const CASES: &[(&str, &str, &[u8])] = &[
    ("GET", "/hello", b""),
    ("GET", "/hello?name=sealrun", b""),
    ("POST", "/echo", b"a body of some length, \xc3\xbcber"),
    ("POST", "/echo", b""),
    ("GET", "/nowhere", b""),
    ("GET", "/sleep?ms=10", b""),
    ("GET", "/alloc?mib=8", b""),
];

#[test]
fn a_sealed_service_answers_as_the_plain_runner_does() {
    let world = World::new();
    let (dev, package) = sealed_service(&world);
    let (sealed, sealed_port) = start_sealed(&world, &dev, &package, &[]);
    let plain_port = free_port();
    let mut plain = Command::new(plain_wasmtime())
        .args(["serve", "--addr", &format!("127.0.0.1:{plain_port}")])
        .arg(component("http_service"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(plain_port, &mut plain);
    let agent = agent();
    for (method, path, body) in CASES {
        let ours = call(&agent, sealed_port, method, path, body);
        let theirs = call(&agent, plain_port, method, path, body);
        assert_eq!(ours, theirs, "{method} {path}");
    }
    assert_eq!(call(&agent, sealed_port, "GET", "/hello?name=x", b"").3, "hello x\n");
    let _ = plain.kill();
    let (status, err) = stop(sealed);
    assert_eq!(status.code(), Some(0), "{err}");
    // The access log: a line per request, with its status.
    assert_eq!(err.lines().filter(|l| l.contains("\"GET /hello?name=x HTTP/1.1\" 200")).count(), 1, "{err}");
    assert_eq!(err.lines().filter(|l| l.contains("\"GET /nowhere HTTP/1.1\" 404")).count(), 1, "{err}");
    assert!(err.contains("sealrun: stopping (SIGTERM)") && err.contains("stopped serving"), "{err}");
}

#[test]
fn slow_requests_run_at_once_and_one_over_its_limit_gets_504_alone() {
    let world = World::new();
    let (dev, package) = sealed_service(&world);
    let log = world.path().join("access.log");
    let (server, port) = start_sealed(
        &world,
        &dev,
        &package,
        &["--request-timeout", "2", "--access-log", log.to_str().unwrap(), "--max-memory", "64"],
    );
    let agent = agent();
    // Eight requests that each wait 500 ms, at once: served together, the
    // lot takes far less than eight times that.
    let started = Instant::now();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let agent = agent.clone();
            std::thread::spawn(move || call(&agent, port, "GET", "/sleep?ms=500", b""))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().3, "slept 500 ms\n");
    }
    assert!(started.elapsed() < Duration::from_millis(3000), "took {:?}", started.elapsed());

    // A request that never ends (a busy loop) gets 504 at its limit, while
    // requests sent meanwhile are answered.
    let spin = {
        let agent = agent.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            (call(&agent, port, "GET", "/spin", b""), t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..20 {
        assert_eq!(call(&agent, port, "GET", "/hello", b"").0, 200);
    }
    let ((status, _, _, body), took) = spin.join().unwrap();
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("time limit of 2 s"), "{body}");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(10), "{took:?}");
    // A request over its memory limit fails alone, with 500.
    let (status, _, _, body) = call(&agent, port, "GET", "/alloc?mib=128", b"");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("ran out of memory"), "{body}");
    assert_eq!(call(&agent, port, "GET", "/alloc?mib=8", b"").3, "alloc ok\n");

    // SIGTERM while a request is open: it is finished, then the server ends.
    let open = {
        let agent = agent.clone();
        std::thread::spawn(move || call(&agent, port, "GET", "/sleep?ms=1000", b""))
    };
    std::thread::sleep(Duration::from_millis(300));
    let (status, err) = stop(server);
    assert_eq!(open.join().unwrap().3, "slept 1000 ms\n", "the open request was cut: {err}");
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("finishing 1 open request"), "{err}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "still listening");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("\"GET /spin HTTP/1.1\" 504"), "{log}");
    assert_eq!(log.lines().filter(|l| l.contains("/sleep?ms=500")).count(), 8, "{log}");
}

#[test]
fn a_command_is_not_served_and_a_service_is_not_run() {
    let world = World::new();
    let (dev, service) = sealed_service(&world);
    let out = dev.sealrun(world.path()).arg("run").arg(&service).output().unwrap();
    assert_eq!(out.status.code(), Some(212), "{}", stderr(&out));
    assert!(stderr(&out).contains("start it with `sealrun serve`"), "{}", stderr(&out));
    let (_, command) = world.licensed_wasm("hello", &component("hello"));
    let out = dev.sealrun(world.path()).args(["serve", "--listen", "127.0.0.1:1"]).arg(&command).output().unwrap();
    assert_eq!(out.status.code(), Some(212), "{}", stderr(&out));
    assert!(stderr(&out).contains("it is a command, not an HTTP service"), "{}", stderr(&out));
    // Bad options are refused before anything is read.
    for (flag, value, text) in [
        ("--listen", "localhost:80", "--listen \"localhost:80\": expected ADDR:PORT"),
        ("--request-timeout", "0", "--request-timeout 0: give a positive number"),
        ("--max-concurrent", "0", "--max-concurrent 0: give a number of requests from 1"),
    ] {
        let out = dev.sealrun(world.path()).args(["serve", flag, value]).arg(&service).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag}: {}", stderr(&out));
        assert!(stderr(&out).contains(text), "{}", stderr(&out));
    }
}

/// The service holds one floating seat for the whole process; while the
/// seat is lost (the license server is down past its lease) every request
/// gets 503 and the service waits, and once the seat is back it answers
/// again; stopping it gives the seat back.
#[test]
fn the_service_answers_503_while_its_floating_seat_is_lost() {
    use sealrun_tests::floatd::Floatd;
    let world = World::new();
    let package = world.seal_module(&component("http_service"), "com.example.web", "1.0.0", "web.sealed", &[]);
    let ttl = 3;
    let mut floatd = Floatd::new(&world.path().join("floatd"), ttl);
    floatd.license_for(&world, "com.example.web", 1, &[]);
    floatd.start();
    let dev = world.device("a");
    let log = world.path().join("access.log");
    let (server, port) = start_sealed(
        &world,
        &dev,
        &package,
        &["--license-server", &floatd.addr, "--access-log", log.to_str().unwrap()],
    );
    let agent = agent();
    for _ in 0..5 {
        assert_eq!(call(&agent, port, "GET", "/hello", b"").0, 200);
    }
    assert_eq!(floatd.in_use(), 1, "one seat for the process, not one per request");
    let until = |want: u16, limit: Duration| {
        let deadline = Instant::now() + limit;
        loop {
            let (status, _, _, body) = call(&agent, port, "GET", "/hello", b"");
            if status == want {
                return body;
            }
            assert!(Instant::now() < deadline, "never got {want}; last {status} {body}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    floatd.stop();
    let body = until(503, Duration::from_secs(ttl + 10));
    assert!(body.contains("license is away"), "{body}");
    floatd.start();
    assert_eq!(until(200, Duration::from_secs(20)), "hello world\n");
    let (status, err) = stop(server);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("(the service answers 503 meanwhile)"), "{err}");
    assert_eq!(floatd.in_use(), 0, "the seat was not given back");
}

/// A plain HTTP server on loopback that answers `upstream N` (its own
/// number) and counts the connections it got.
fn upstream(n: u32) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&count);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let body = format!("upstream {n}\n");
            let _ =
                write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    (port, count)
}

/// Outgoing `wasi:http` requests go only where `--allow-connect` says:
/// another port or no grant at all is refused inside the service before
/// anything is sent (the ungranted upstream sees no connection).
#[test]
fn outgoing_http_goes_only_to_granted_hosts() {
    let world = World::new();
    let (dev, package) = sealed_service(&world);
    let (granted, granted_seen) = upstream(1);
    let (other, other_seen) = upstream(2);
    let grant = format!("127.0.0.1:{granted}");
    let (server, port) = start_sealed(&world, &dev, &package, &["--allow-connect", &grant]);
    let agent = agent();
    let fetch = |to: &str| call(&agent, port, "GET", &format!("/fetch?to={to}"), b"");
    assert_eq!(fetch(&grant), (200, "text/plain".into(), String::new(), "fetched 200: upstream 1\n".into()));
    let (status, _, _, body) = fetch(&format!("127.0.0.1:{other}"));
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
    let (status, _, _, body) = fetch(&format!("localhost:{granted}"));
    assert_eq!((status, body.contains("HttpRequestDenied")), (502, true), "a name the grant does not name: {body}");
    let (_, err) = stop(server);
    // With no grant, the granted host of before is refused too.
    let (server, port) = start_sealed(&world, &dev, &package, &[]);
    let (status, _, _, body) = call(&agent, port, "GET", &format!("/fetch?to={grant}"), b"");
    assert_eq!((status, body.contains("HttpRequestDenied")), (502, true), "{body}");
    stop(server);
    let seen = |c: &std::sync::atomic::AtomicUsize| c.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(seen(&granted_seen), 1, "{err}");
    assert_eq!(seen(&other_seen), 0, "a request reached the ungranted upstream");
}

/// Code compiled ahead by `sealrun prepare` is what `serve` runs, both
/// from its instance pool (the default `--max-concurrent`) and with
/// instances allocated one by one (a `--max-concurrent` above the pooled
/// maximum): the pool changes how instances are allocated, not the code,
/// so no second cache entry appears and the answers are the same.
#[test]
fn prepared_code_serves_with_and_without_the_instance_pool() {
    let world = World::new();
    let (dev, package) = sealed_service(&world);
    let out = dev.sealrun(world.path()).arg("prepare").arg(&package).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let agent = agent();
    let mut answers = Vec::new();
    for extra in [&[][..], &["--max-concurrent", "200"][..]] {
        let mut sealrun = dev.sealrun(world.path());
        sealrun.env("SEALRUN_LOG", "sealrun=debug");
        let (child, port) = start_serving(sealrun, &package, extra);
        // Requests at once, each with memory of its own.
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let agent = agent.clone();
                std::thread::spawn(move || call(&agent, port, "GET", &format!("/alloc?mib={}", 1 + i % 4), b""))
            })
            .collect();
        let mut these: Vec<_> = calls.into_iter().map(|c| c.join().unwrap()).collect();
        these.push(call(&agent, port, "GET", "/hello?name=pool", b""));
        these.push(call(&agent, port, "POST", "/echo", b"pooled"));
        // Past the memory limit (256 MiB by default) with or without a pool.
        these.push(call(&agent, port, "GET", "/alloc?mib=300", b""));
        let (status, err) = stop(child);
        assert_eq!(status.code(), Some(0), "{err}");
        assert!(err.contains("source=Cache"), "{extra:?}: not from the prepared entry: {err}");
        answers.push(these);
    }
    assert_eq!(answers[0], answers[1]);
    assert!(answers[0].iter().take(8).all(|a| a.0 == 200 && a.3 == "alloc ok\n"), "{:?}", answers[0]);
    let over = answers[0].last().unwrap();
    assert_eq!((over.0, over.3.as_str()), (500, "the service ran out of memory (its limit is 256 MiB per request)\n"));
    let list = dev.sealrun(world.path()).args(["cache", "list"]).output().unwrap();
    assert_eq!(stdout(&list).lines().count(), 1, "one entry for both: {}", stdout(&list));
}
