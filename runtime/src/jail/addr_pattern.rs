//! The network allow-list of a jail: `address:port` patterns, checked by wasmtime-wasi on
//! every connect, bind and listen a guest makes.
//!
//! A pattern is `HOST:PORT` (IPv6 hosts in brackets: `[::1]:80`), where HOST is an IP
//! address, a network in CIDR form (`10.0.0.0/8`) or `*`, and PORT is a number, a range
//! (`8000-8099`) or `*`.

use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// One `HOST:PORT` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrPattern {
    host: Option<IpNet>,
    ports: (u16, u16),
    text: String,
}

impl AddrPattern {
    /// Whether `addr` matches the pattern.
    pub fn matches(&self, addr: &SocketAddr) -> bool {
        let ip = match addr.ip() {
            // An IPv4 peer seen through an IPv6 socket is still that IPv4 peer.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        self.host.is_none_or(|net| net.contains(&ip))
            && (self.ports.0..=self.ports.1).contains(&addr.port())
    }
}

impl fmt::Display for AddrPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for AddrPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "`{s}` is not an address pattern such as 127.0.0.1:8080, 10.0.0.0/8:*, *:443: {why}"
            )
        };
        let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("no `:PORT`"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = match host {
            "*" => None,
            h if h.contains('/') => Some(h.parse::<IpNet>().map_err(|e| bad(&e.to_string()))?),
            h => Some(IpNet::from(h.parse::<IpAddr>().map_err(|_| {
                bad("the host is not an IP address, a CIDR network or *")
            })?)),
        };
        let parse_port = |p: &str| p.parse::<u16>().map_err(|_| bad("the port is not 0-65535"));
        let ports = match port {
            "*" => (0, u16::MAX),
            p => match p.split_once('-') {
                Some((lo, hi)) => (parse_port(lo)?, parse_port(hi)?),
                None => {
                    let p = parse_port(p)?;
                    (p, p)
                }
            },
        };
        if ports.0 > ports.1 {
            return Err(bad("the port range is empty"));
        }
        Ok(AddrPattern {
            host,
            ports,
            text: s.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn patterns_match_hosts_networks_and_port_ranges() {
        let p: AddrPattern = "127.0.0.1:8080".parse().unwrap();
        assert!(p.matches(&addr("127.0.0.1:8080")));
        assert!(!p.matches(&addr("127.0.0.1:8081")));
        assert!(!p.matches(&addr("127.0.0.2:8080")));
        assert!(p.matches(&addr("[::ffff:127.0.0.1]:8080")));

        let p: AddrPattern = "10.0.0.0/8:8000-8099".parse().unwrap();
        assert!(p.matches(&addr("10.1.2.3:8050")));
        assert!(!p.matches(&addr("10.1.2.3:8100")));
        assert!(!p.matches(&addr("11.0.0.1:8050")));

        let p: AddrPattern = "*:443".parse().unwrap();
        assert!(p.matches(&addr("1.2.3.4:443")));
        assert!(p.matches(&addr("[2001:db8::1]:443")));
        assert!(!p.matches(&addr("1.2.3.4:80")));

        let p: AddrPattern = "[::1]:*".parse().unwrap();
        assert!(p.matches(&addr("[::1]:1")));
        assert_eq!(p.to_string(), "[::1]:*");
    }

    #[test]
    fn bad_patterns_say_why() {
        for (s, why) in [
            ("localhost", "no `:PORT`"),
            ("example.com:80", "the host is not an IP address"),
            ("1.2.3.4:http", "the port is not 0-65535"),
            ("1.2.3.4:70000", "the port is not 0-65535"),
            ("1.2.3.4:90-80", "the port range is empty"),
            ("1.2.3.0/33:80", "invalid"),
        ] {
            let err = s.parse::<AddrPattern>().unwrap_err();
            assert!(err.contains(why), "{s}: {err}");
        }
    }
}
