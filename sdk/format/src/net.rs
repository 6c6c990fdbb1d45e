//! Network endpoints as packages and the launcher write them: `HOST:PORT`
//! for a connection (a DNS name or an IP address) and `ADDR:PORT` for a
//! listener (an IP address), each with one spelling.
use std::net::{IpAddr, SocketAddr};

/// Longest DNS name (RFC 1035: 253 characters written out).
pub const MAX_HOST_NAME_LEN: usize = 253;
/// Longest label of a DNS name (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

/// A host to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP address.
    Ip(IpAddr),
    /// A DNS name, in lowercase.
    Name(String),
}

/// `HOST:PORT`: where a guest may connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The host.
    pub host: Host,
    /// The port, never 0.
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            Host::Ip(ip) => write!(f, "{}", SocketAddr::new(*ip, self.port)),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

/// Why text is not an endpoint.
const NOT_AN_ENDPOINT: &str = "expected HOST:PORT, e.g. api.example.com:443, 10.0.0.5:5432 or [::1]:8080";

impl Endpoint {
    /// Parses `HOST:PORT`: a DNS name (letters, digits and '-' in labels
    /// of at most 63, 253 in all; any case, kept in lowercase) or an IP
    /// address (IPv6 in brackets), and a port from 1 to 65535.
    pub fn parse(s: &str) -> Result<Endpoint, &'static str> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            if addr.port() == 0 {
                return Err(NOT_AN_ENDPOINT);
            }
            return Ok(Endpoint { host: Host::Ip(addr.ip()), port: addr.port() });
        }
        let (host, port) = s.rsplit_once(':').ok_or(NOT_AN_ENDPOINT)?;
        let port: u16 = port.parse().map_err(|_| NOT_AN_ENDPOINT)?;
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        // A name that is all digits and dots is a malformed IPv4 address.
        let numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if host.len() > MAX_HOST_NAME_LEN || !host.split('.').all(label_ok) || numeric || port == 0 {
            return Err(NOT_AN_ENDPOINT);
        }
        Ok(Endpoint { host: Host::Name(host.to_ascii_lowercase()), port })
    }

    /// Why `s` is not an endpoint in its one spelling (lowercase, IPv6 in
    /// brackets, as [`Display`](std::fmt::Display) writes it), if it is not.
    pub fn canonical_problem(s: &str) -> Option<&'static str> {
        match Endpoint::parse(s) {
            Ok(e) if e.to_string() == s => None,
            Ok(_) => Some("network endpoints are written in lowercase, e.g. api.example.com:443"),
            Err(e) => Some(e),
        }
    }
}

/// Parses `ADDR:PORT` for a listener: an IP address (IPv6 in brackets)
/// and a port from 1 to 65535.
pub fn parse_listen(s: &str) -> Result<SocketAddr, &'static str> {
    match s.parse::<SocketAddr>() {
        Ok(addr) if addr.port() != 0 => Ok(addr),
        _ => Err("expected ADDR:PORT with an IP address and a port, e.g. 127.0.0.1:8080 or [::1]:8080"),
    }
}

/// Why `s` is not a listen address in its one spelling, if it is not.
pub fn listen_problem(s: &str) -> Option<&'static str> {
    match parse_listen(s) {
        Ok(addr) if addr.to_string() == s => None,
        Ok(_) => Some("listen addresses are written as 127.0.0.1:8080 or [::1]:8080"),
        Err(e) => Some(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_have_one_spelling() {
        assert_eq!(Endpoint::parse("API.Example.com:443").unwrap().to_string(), "api.example.com:443");
        assert_eq!(Endpoint::canonical_problem("api.example.com:443"), None);
        assert!(Endpoint::canonical_problem("API.example.com:443").is_some());
        assert_eq!(Endpoint::parse("[::1]:8080").unwrap().host, Host::Ip("::1".parse().unwrap()));
        assert_eq!(Endpoint::canonical_problem("[0:0::1]:8080").map(|_| ()), Some(()));
        for bad in ["example.com", "example.com:0", ":443", "exa mple.com:1", "-x.com:1", "a..b:1", "x:99999", "::1:80"]
        {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        assert!(Endpoint::parse("10.0.0.300:80").is_err(), "a bad IPv4 address is not a name");
        assert!(Endpoint::parse(&format!("{}.com:1", "a".repeat(64))).is_err());
        assert!(parse_listen("localhost:80").is_err() && parse_listen("127.0.0.1:0").is_err());
        assert_eq!(listen_problem("127.0.0.1:8080"), None);
        assert!(listen_problem("[::0001]:8080").is_some());
    }
}
