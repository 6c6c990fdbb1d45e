//! Network grants for components, deny by default: a guest gets no socket,
//! no name lookup and no datagram unless the user granted it, and then only
//! the addresses granted. Enforced by wasmtime-wasi's socket address check
//! (every bind, listen, connect, accept and datagram asks it first), so a
//! guest that tries another address gets `access-denied` and never a
//! connection. The same grants gate outgoing `wasi:http` requests
//! ([`HttpGate`]; wasmtime-wasi-http's own sender asks no check). WASI
//! preview-1 modules have no sockets at all.
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi_http::WasiHttpHooks;

/// Most `--allow-connect` and `--allow-listen` grants one run takes: a
/// service talks to a handful of hosts; a list of thousands is a mistake,
/// and each is looked at on every connection.
pub const MAX_NET_GRANTS: usize = 64;

pub use sealrun_format::net::{Endpoint, Host};

/// Whether the guest connecting to `addr` is connecting to `endpoint`. A
/// name is looked up (by the launcher, with the system's resolver) at
/// every connection, so a name whose addresses change keeps working.
async fn matches(endpoint: &Endpoint, addr: SocketAddr) -> bool {
    if addr.port() != endpoint.port {
        return false;
    }
    match &endpoint.host {
        Host::Ip(ip) => same_ip(*ip, addr.ip()),
        Host::Name(name) => match tokio::net::lookup_host((name.as_str(), endpoint.port)).await {
            Ok(mut found) => found.any(|a| same_ip(a.ip(), addr.ip())),
            Err(_) => false,
        },
    }
}

/// IP equality that treats an IPv4-mapped IPv6 address as the IPv4 one.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// The hooks of `wasi:http`: outgoing requests go only where the network
/// grants allow, checked before anything is sent.
pub(crate) struct HttpGate {
    grants: Arc<NetGrants>,
}

impl HttpGate {
    pub(crate) fn new(grants: &NetGrants) -> HttpGate {
        HttpGate { grants: Arc::new(grants.clone()) }
    }
}

/// Whether `grants` let a request go to `host`:`port` (the request's
/// authority): a grant for that name and port, or, for an address, an
/// address grant.
fn request_allowed(grants: &NetGrants, host: &str, port: u16) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let ip = host.parse::<std::net::IpAddr>().ok();
    grants.connect.iter().any(|e| {
        e.port == port
            && match (&e.host, ip) {
                (Host::Name(name), None) => *name == host,
                (Host::Ip(granted), Some(ip)) => granted.to_canonical() == ip.to_canonical(),
                _ => false,
            }
    })
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<wasmtime_wasi_http::WasiBody>,
    Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
)>;

impl WasiHttpHooks for HttpGate {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<dyn std::future::Future<Output = SendResult> + Send> {
        let uri = request.uri();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let host = uri.host().unwrap_or("").to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if !request_allowed(&self.grants, &host, port) {
            tracing::debug!(%host, port, "outgoing HTTP request refused: not granted");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        wasmtime_wasi_http::default_hooks().send_request(request, options, fut)
    }
}

/// What the user let the guest do on the network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetGrants {
    /// `--allow-connect`: where TCP connections (and, with `udp`,
    /// datagrams) may go.
    pub connect: Vec<Endpoint>,
    /// `--allow-listen`: where the guest may listen (TCP) or bind (UDP).
    pub listen: Vec<SocketAddr>,
    /// `--allow-dns`: name lookups through `wasi:sockets/ip-name-lookup`.
    pub dns: bool,
    /// `--allow-udp`: UDP sockets, to and from the granted addresses.
    pub udp: bool,
}

impl NetGrants {
    /// Reads the `--allow-*` flags; the message names the problem.
    pub fn parse(connect: &[String], listen: &[String], dns: bool, udp: bool) -> Result<NetGrants, String> {
        if connect.len() + listen.len() > MAX_NET_GRANTS {
            return Err(format!(
                "{} network grants given; at most {MAX_NET_GRANTS} --allow-connect and --allow-listen in all",
                connect.len() + listen.len()
            ));
        }
        let connect = connect
            .iter()
            .map(|c| Endpoint::parse(c).map_err(|why| format!("--allow-connect {c:?}: {why}")))
            .collect::<Result<Vec<_>, _>>()?;
        let listen = listen
            .iter()
            .map(|l| sealrun_format::net::parse_listen(l).map_err(|why| format!("--allow-listen {l:?}: {why}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NetGrants { connect, listen, dns, udp })
    }

    /// Whether anything was granted.
    pub fn any(&self) -> bool {
        !self.connect.is_empty() || !self.listen.is_empty() || self.dns || self.udp
    }

    /// Whether the guest may use `addr` for `what` (see the module docs).
    pub async fn allows(&self, addr: SocketAddr, what: SocketAddrUse) -> bool {
        let listening_on =
            |addr: SocketAddr| self.listen.iter().any(|l| l.port() == addr.port() && same_ip(l.ip(), addr.ip()));
        // The wildcard address with port 0: the implicit bind before a
        // connection or a datagram, which picks an ephemeral port.
        let ephemeral = addr.ip().is_unspecified() && addr.port() == 0;
        match what {
            SocketAddrUse::TcpBind => listening_on(addr) || (ephemeral && !self.connect.is_empty()),
            SocketAddrUse::TcpListen => listening_on(addr),
            // A client of a granted listener, from wherever it comes.
            SocketAddrUse::TcpAccept => !self.listen.is_empty(),
            SocketAddrUse::TcpConnect => self.connects_to(addr).await,
            SocketAddrUse::UdpBind => self.udp && (listening_on(addr) || ephemeral),
            SocketAddrUse::UdpSend => self.udp && self.connects_to(addr).await,
            // Replies from a granted peer; anyone's datagrams for a socket
            // on a granted listen address.
            SocketAddrUse::UdpReceive => self.udp && (!self.listen.is_empty() || self.connects_to(addr).await),
        }
    }

    async fn connects_to(&self, addr: SocketAddr) -> bool {
        for endpoint in &self.connect {
            if matches(endpoint, addr).await {
                return true;
            }
        }
        false
    }

    /// Applies the grants to a WASI context: TCP only with a connect or
    /// listen grant, UDP only with `--allow-udp`, lookups only with
    /// `--allow-dns`, and every address through [`NetGrants::allows`].
    pub(crate) fn apply(&self, b: &mut WasiCtxBuilder) {
        b.allow_tcp(!self.connect.is_empty() || !self.listen.is_empty());
        b.allow_udp(self.udp);
        b.allow_ip_name_lookup(self.dns);
        let grants = Arc::new(self.clone());
        b.socket_addr_check(move |addr, what| {
            let grants = Arc::clone(&grants);
            Box::pin(async move { grants.allows(addr, what).await })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    #[test]
    fn grants_are_bounded_and_their_errors_name_the_flag() {
        let e = NetGrants::parse(&["example.com".into()], &[], false, false).unwrap_err();
        assert!(e.starts_with("--allow-connect \"example.com\": expected HOST:PORT"), "{e}");
        let e = NetGrants::parse(&[], &["localhost:80".into()], false, false).unwrap_err();
        assert!(e.starts_with("--allow-listen \"localhost:80\": expected ADDR:PORT"), "{e}");
        let many: Vec<String> = (0..=MAX_NET_GRANTS).map(|i| format!("10.0.0.1:{}", i + 1)).collect();
        assert!(NetGrants::parse(&many, &[], false, false).unwrap_err().contains("at most 64"));
    }

    #[test]
    fn outgoing_requests_go_only_where_granted() {
        let grants =
            NetGrants::parse(&["api.example.com:443".into(), "10.0.0.5:8080".into()], &[], false, false).unwrap();
        assert!(request_allowed(&grants, "api.example.com", 443));
        assert!(request_allowed(&grants, "API.example.com", 443));
        assert!(!request_allowed(&grants, "api.example.com", 80));
        assert!(!request_allowed(&grants, "evil.example.com", 443));
        assert!(request_allowed(&grants, "10.0.0.5", 8080));
        assert!(!request_allowed(&grants, "10.0.0.6", 8080));
        assert!(!request_allowed(&NetGrants::default(), "api.example.com", 443));
    }

    #[test]
    fn only_granted_addresses_are_allowed() {
        let none = NetGrants::default();
        let some = NetGrants::parse(
            &["127.0.0.1:7000".into(), "localhost:7001".into()],
            &["127.0.0.1:8080".into()],
            false,
            true,
        )
        .unwrap();
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        use SocketAddrUse::*;
        for (grants, a, what, want) in [
            (&none, "127.0.0.1:7000", TcpConnect, false),
            (&none, "0.0.0.0:0", TcpBind, false),
            (&none, "0.0.0.0:0", UdpBind, false),
            (&some, "127.0.0.1:7000", TcpConnect, true),
            (&some, "[::ffff:127.0.0.1]:7000", TcpConnect, true),
            (&some, "127.0.0.1:7002", TcpConnect, false),
            (&some, "127.0.0.2:7000", TcpConnect, false),
            (&some, "127.0.0.1:7001", TcpConnect, true), // localhost, looked up
            (&some, "0.0.0.0:0", TcpBind, true),
            (&some, "0.0.0.0:8080", TcpBind, false),
            (&some, "127.0.0.1:8080", TcpBind, true),
            (&some, "127.0.0.1:8080", TcpListen, true),
            (&some, "0.0.0.0:0", TcpListen, false),
            (&some, "127.0.0.1:9", UdpSend, false),
            (&some, "127.0.0.1:7000", UdpSend, true),
            (&none, "127.0.0.1:7000", TcpAccept, false),
        ] {
            assert_eq!(block(grants.allows(addr(a), what)), want, "{a} {what:?}");
        }
    }
}
