//! `net`: a command that uses the network through std::net (WASI 0.2
//! sockets in its wasm32-wasip2 build; the wasm32-wasip1 build has no
//! network and reports every attempt as failed).
//!
//! Behaviour (first argument):
//! - `connect ADDR MSG`: connects over TCP to ADDR (`host:port`, resolved
//!   through `wasi:sockets/ip-name-lookup` when it is a name), sends MSG and
//!   a newline, prints `reply: LINE` with the line the peer sends back;
//! - `resolve NAME`: prints `resolved NAME` and each address as `addr IP`;
//! - `listen ADDR`: listens on ADDR, prints `listening on ADDR`, accepts
//!   one client, echoes one line back to it and prints `echoed LINE`;
//! - `udp ADDR MSG`: sends MSG in a datagram to ADDR from an ephemeral
//!   port and prints `reply: TEXT` with the datagram that comes back.
//!
//! A failure prints `<mode> failed: <error kind>: <error>` and exits 3.
//!
//! Host tests check: with no grant every mode fails inside the guest; with
//! a grant for one address that address works and another still fails.
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let mode = arg(0);
    let result = match mode {
        "connect" => connect(arg(1), arg(2)),
        "resolve" => resolve(arg(1)),
        "listen" => listen(arg(1)),
        "udp" => udp(arg(1), arg(2)),
        _ => {
            eprintln!("usage: net connect ADDR MSG | resolve NAME | listen ADDR | udp ADDR MSG");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("{mode} failed: {:?}: {e}", e.kind());
            ExitCode::from(3)
        }
    }
}

fn connect(addr: &str, msg: &str) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(format!("{msg}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    println!("reply: {}", line.trim_end());
    Ok(())
}

fn resolve(name: &str) -> std::io::Result<()> {
    let addrs: Vec<_> = (name, 0).to_socket_addrs()?.collect();
    println!("resolved {name}");
    for a in addrs {
        println!("addr {}", a.ip());
    }
    Ok(())
}

fn listen(addr: &str) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let (stream, _) = listener.accept()?;
    // Through references: wasm32-wasip2's std cannot clone a socket.
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    (&stream).write_all(line.as_bytes())?;
    println!("echoed {}", line.trim_end());
    Ok(())
}

fn udp(addr: &str, msg: &str) -> std::io::Result<()> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.send_to(msg.as_bytes(), addr)?;
    let mut buf = [0u8; 1500];
    let (n, _) = socket.recv_from(&mut buf)?;
    println!("reply: {}", String::from_utf8_lossy(&buf[..n]));
    Ok(())
}
