//! Network grants for components (issue 17), deny by default, through real
//! `sealrun` processes running the `net` sample against peers on loopback
//! that count every connection and datagram they get: with no grant,
//! connect, listen, name lookups and UDP each fail inside the guest and
//! the peers see nothing; a grant for one address opens that address and
//! no other; requests in the manifest are told to the user and grant
//! nothing; grants in config.toml work as the flags do.
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sealrun_tests::{Device, World, component, stderr, stdout};

/// The guest's exit code when a network call failed: the sample exits
/// with 3, which a component's exit reports as failure, 1 (WASI 0.2).
const NET_FAILED: i32 = 1;

/// A TCP peer on loopback that answers each line with `echo: LINE` and
/// counts the connections it accepted.
struct EchoServer {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl EchoServer {
    fn start() -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_ok() {
                        let _ = (&stream).write_all(format!("echo: {line}").as_bytes());
                    }
                });
            }
        });
        EchoServer { port, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A UDP peer on loopback that answers each datagram with `echo: TEXT` and
/// counts the datagrams it got.
struct UdpEcho {
    port: u16,
    received: Arc<AtomicUsize>,
}

impl UdpEcho {
    fn start() -> UdpEcho {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let received = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&received);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                count.fetch_add(1, Ordering::SeqCst);
                let reply = format!("echo: {}", String::from_utf8_lossy(&buf[..n]));
                let _ = socket.send_to(reply.as_bytes(), from);
            }
        });
        UdpEcho { port, received }
    }
}

fn setup() -> (World, Device, std::path::PathBuf) {
    let world = World::new();
    let (dev, package) = world.licensed_wasm("net", &component("net"));
    (world, dev, package)
}

/// The guest run with `grants` and `args`, stopped after 60 s at most.
fn run(world: &World, dev: &Device, package: &Path, grants: &[&str], args: &[&str]) -> Output {
    let out = dev
        .sealrun(world.path())
        .args(["run", "--timeout", "60"])
        .args(grants)
        .arg(package)
        .arg("--")
        .args(args)
        .output()
        .unwrap();
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    out
}

fn failed(out: &Output, mode: &str) -> bool {
    out.status.code() == Some(NET_FAILED) && stdout(out).starts_with(&format!("{mode} failed: "))
}

/// A free port on loopback (bound and let go).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn with_no_grant_every_use_of_the_network_fails_inside_the_guest() {
    let (world, dev, package) = setup();
    let echo = EchoServer::start();
    let udp = UdpEcho::start();
    let to = format!("127.0.0.1:{}", echo.port);
    let out = run(&world, &dev, &package, &[], &["connect", &to, "hello"]);
    assert!(failed(&out, "connect"), "{}{}", stdout(&out), stderr(&out));
    let out = run(&world, &dev, &package, &[], &["resolve", "localhost"]);
    assert!(failed(&out, "resolve"), "{}{}", stdout(&out), stderr(&out));
    let on = format!("127.0.0.1:{}", free_port());
    let out = run(&world, &dev, &package, &[], &["listen", &on]);
    assert!(failed(&out, "listen"), "{}{}", stdout(&out), stderr(&out));
    let out = run(&world, &dev, &package, &[], &["udp", &format!("127.0.0.1:{}", udp.port), "ping"]);
    assert!(failed(&out, "udp"), "{}{}", stdout(&out), stderr(&out));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(echo.accepted(), 0, "a connection reached the peer");
    assert_eq!(udp.received.load(Ordering::SeqCst), 0, "a datagram reached the peer");
}

#[test]
fn a_grant_opens_its_address_and_no_other() {
    let (world, dev, package) = setup();
    let granted = EchoServer::start();
    let other = EchoServer::start();
    let to = format!("127.0.0.1:{}", granted.port);
    let grant = ["--allow-connect", to.as_str()];
    let out = run(&world, &dev, &package, &grant, &["connect", &to, "hello"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), "reply: echo: hello\n");
    assert_eq!(granted.accepted(), 1);

    // Another port on the same host, and the same port on another address.
    for elsewhere in [format!("127.0.0.1:{}", other.port), format!("127.0.0.2:{}", granted.port)] {
        let out = run(&world, &dev, &package, &grant, &["connect", &elsewhere, "hello"]);
        assert!(failed(&out, "connect"), "{elsewhere}: {}{}", stdout(&out), stderr(&out));
        assert!(stdout(&out).contains("PermissionDenied"), "{}", stdout(&out));
    }
    assert_eq!(other.accepted(), 0, "the ungranted peer got a connection");
    assert_eq!(granted.accepted(), 1, "the refused attempt reached the granted peer");

    // A name needs --allow-dns to be looked up, and then connects where
    // the grant for that name allows.
    let by_name = format!("localhost:{}", granted.port);
    let out = run(&world, &dev, &package, &["--allow-connect", &by_name], &["connect", &by_name, "named"]);
    assert!(failed(&out, "connect"), "without --allow-dns: {}{}", stdout(&out), stderr(&out));
    let grants = ["--allow-connect", by_name.as_str(), "--allow-dns"];
    let out = run(&world, &dev, &package, &grants, &["connect", &format!("127.0.0.1:{}", granted.port), "named"]);
    assert_eq!(stdout(&out), "reply: echo: named\n", "{}", stderr(&out));
    let out = run(&world, &dev, &package, &grants, &["resolve", "localhost"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("addr 127.0.0.1"), "{}", stdout(&out));
    let out = run(&world, &dev, &package, &grants, &["connect", &format!("127.0.0.1:{}", other.port), "x"]);
    assert!(failed(&out, "connect"), "{}", stdout(&out));
    assert_eq!(other.accepted(), 0);
}

#[test]
fn a_listen_grant_opens_that_address_only() {
    let (world, dev, package) = setup();
    let on = format!("127.0.0.1:{}", free_port());
    let child = dev
        .sealrun(world.path())
        .args(["run", "--timeout", "60", "--allow-listen", &on])
        .arg(&package)
        .args(["--", "listen", &on])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The guest's listener is up once a connection gets through.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut client = loop {
        match TcpStream::connect(&on) {
            Ok(c) => break c,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "the guest never listened on {on}: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    client.write_all(b"over the wire\n").unwrap();
    let mut line = String::new();
    BufReader::new(&client).read_line(&mut line).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(line, "over the wire\n", "{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("listening on {on}\nechoed over the wire\n"));

    let elsewhere = format!("127.0.0.1:{}", free_port());
    let out = run(&world, &dev, &package, &["--allow-listen", &on], &["listen", &elsewhere]);
    assert!(failed(&out, "listen"), "{}{}", stdout(&out), stderr(&out));
    let out = run(&world, &dev, &package, &["--allow-listen", &on], &["listen", "0.0.0.0:0"]);
    assert!(failed(&out, "listen"), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn udp_needs_its_own_grant_and_an_address() {
    let (world, dev, package) = setup();
    let udp = UdpEcho::start();
    let to = format!("127.0.0.1:{}", udp.port);
    let out = run(&world, &dev, &package, &["--allow-connect", &to], &["udp", &to, "ping"]);
    assert!(failed(&out, "udp"), "without --allow-udp: {}{}", stdout(&out), stderr(&out));
    let out = run(&world, &dev, &package, &["--allow-connect", &to, "--allow-udp"], &["udp", &to, "ping"]);
    assert_eq!(stdout(&out), "reply: echo: ping\n", "{}", stderr(&out));
    let other = UdpEcho::start();
    let elsewhere = format!("127.0.0.1:{}", other.port);
    let out = run(&world, &dev, &package, &["--allow-connect", &to, "--allow-udp"], &["udp", &elsewhere, "ping"]);
    assert!(failed(&out, "udp"), "{}{}", stdout(&out), stderr(&out));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(other.received.load(Ordering::SeqCst), 0, "a datagram reached the ungranted peer");
}

#[test]
fn requests_in_the_package_are_told_and_grant_nothing_and_config_grants_work() {
    let world = World::new();
    let dev = world.device("a");
    let echo = EchoServer::start();
    let to = format!("127.0.0.1:{}", echo.port);
    let package = world.seal_module(
        &component("net"),
        "com.example.net",
        "1.0.0",
        "net.sealed",
        &["--request-connect", &to, "--request-dns", "--request-udp", "--request-listen", "127.0.0.1:8080"],
    );
    world.license("net", &dev, "net.license", &[]);
    let inspect = stdout(&world.sealsdk_ok(&["inspect", package.to_str().unwrap()]));
    assert!(inspect.contains(&format!("network: connect to {to}")) && inspect.contains("network: UDP"), "{inspect}");
    let out = run(&world, &dev, &package, &[], &["connect", &to, "hello"]);
    assert!(failed(&out, "connect"), "{}{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    for hint in [
        format!("this app asks to connect to {to}; allow it with --allow-connect {to}"),
        "this app asks to listen on 127.0.0.1:8080; allow it with --allow-listen 127.0.0.1:8080".to_owned(),
        "allow it with --allow-dns".to_owned(),
        "allow it with --allow-udp".to_owned(),
    ] {
        assert!(err.contains(&hint), "{hint}: {err}");
    }
    assert_eq!(echo.accepted(), 0);

    // The same grant in config.toml, for this product.
    let config = dev.root.join("home/.config/sealrun/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, format!("[apps.\"com.example.net\"]\nconnect = [\"{to}\"]\n")).unwrap();
    let out = run(&world, &dev, &package, &[], &["connect", &to, "configured"]);
    assert_eq!(stdout(&out), "reply: echo: configured\n", "{}", stderr(&out));
    assert!(!stderr(&out).contains("asks to connect"), "{}", stderr(&out));

    // A module cannot ask for the network, and is told grants do nothing.
    let module = sealrun_tests::sample("net");
    let out = world.sealsdk(&[
        "seal",
        module.to_str().unwrap(),
        "--product",
        "com.example.net",
        "--release",
        "1.0.1",
        "--request-dns",
        "-o",
        world.path().join("module.sealed").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("--request-dns: a WASI preview-1 module has no network access"), "{}", stderr(&out));
    let module_package = world.seal_module(&module, "com.example.net", "1.0.1", "module.sealed", &[]);
    world.license("net", &dev, "module.license", &[]);
    let out = run(&world, &dev, &module_package, &["--allow-dns"], &["resolve", "localhost"]);
    assert!(stderr(&out).contains("has no network access: the --allow-* grants do nothing for it"), "{}", stderr(&out));
    // Bad grants are refused before anything runs.
    let out = run(&world, &dev, &package, &["--allow-connect", "nowhere"], &["resolve", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--allow-connect \"nowhere\": expected HOST:PORT"), "{}", stderr(&out));
}
