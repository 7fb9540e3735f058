//! Client addresses: sets of trusted addresses (CIDRs), the client behind a trusted reverse
//! proxy, and the key per-address limits count by.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv6Addr};

/// The header trusted proxies name the client in (`server.proxy_header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyHeader {
    XForwardedFor,
    Forwarded,
}

/// A set of addresses and networks (`10.0.0.0/8`, `::1`, `192.0.2.7`).
#[derive(Debug, Clone, Default)]
pub struct Cidrs(Vec<IpNet>);

impl Cidrs {
    pub fn parse(items: &[String]) -> Result<Cidrs, String> {
        items
            .iter()
            .map(|s| {
                let s = s.trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("'{s}' is not an address or a CIDR"))
            })
            .collect::<Result<_, _>>()
            .map(Cidrs)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The key per-address limits count by: IPv4 as is, IPv6 by its /64 (one host usually owns
/// a whole /64, so a per-address limit would be free to dodge).
pub fn addr_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        v4 => v4,
    }
}

/// Who the client is: the TCP peer, unless the peer is a trusted proxy; then the rightmost
/// address in the proxy header that is not itself a trusted proxy (every hop left of it
/// was written by someone we do not trust). A hop that does not parse before an untrusted
/// one is found makes the client unknown: it must never fall back to a trusted address.
/// A trusted peer that sends no header at all is itself the client (a media server on the
/// proxy's host calling its hooks directly).
pub struct ClientAddr {
    proxies: Cidrs,
    header: ProxyHeader,
}

impl ClientAddr {
    pub fn new(proxies: Cidrs, header: ProxyHeader) -> Self {
        ClientAddr { proxies, header }
    }

    /// `values`: every instance of the configured header, in the order received; `None`
    /// stands for one that is not readable text.
    pub fn resolve<'a>(
        &self,
        peer: IpAddr,
        values: impl Iterator<Item = Option<&'a str>>,
    ) -> Option<IpAddr> {
        if !self.proxies.contains(peer) {
            return Some(peer);
        }
        let values: Vec<Option<&str>> = values.collect();
        if values.is_empty() {
            return Some(peer);
        }
        let mut client = None;
        for value in values.iter().rev() {
            for hop in (*value)?.rsplit(',') {
                let ip = match self.header {
                    ProxyHeader::XForwardedFor => parse_node(hop.trim()),
                    ProxyHeader::Forwarded => forwarded_for(hop),
                }?;
                client = Some(ip);
                if !self.proxies.contains(ip) {
                    return client;
                }
            }
        }
        // Every hop is a trusted proxy: the leftmost is the client.
        client
    }

    pub fn header_name(&self) -> &'static str {
        match self.header {
            ProxyHeader::XForwardedFor => "x-forwarded-for",
            ProxyHeader::Forwarded => "forwarded",
        }
    }

    pub fn enabled(&self) -> bool {
        !self.proxies.is_empty()
    }
}

/// The `for=` node of one RFC 7239 element (`for=192.0.2.60;proto=http`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_node(v.trim().trim_matches('"')))?
    })
}

/// An address, optionally with a port: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`,
/// `[2001:db8::1]:80`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn resolver(header: ProxyHeader) -> ClientAddr {
        ClientAddr::new(
            Cidrs::parse(&["127.0.0.1".into(), "10.0.0.0/8".into()]).unwrap(),
            header,
        )
    }

    #[test]
    fn only_trusted_peers_are_believed_and_the_rightmost_untrusted_hop_wins() {
        let r = resolver(ProxyHeader::XForwardedFor);
        let res = |peer: IpAddr, values: &[&str]| r.resolve(peer, values.iter().map(|v| Some(*v)));
        // An untrusted peer's header is ignored.
        assert_eq!(res(ip("1.2.3.4"), &["9.9.9.9"]), Some(ip("1.2.3.4")));
        // The client wrote the left part; the proxies appended the rest.
        let peer = ip("127.0.0.1");
        assert_eq!(
            res(peer, &["6.6.6.6, 8.8.8.8, 10.1.2.3"]),
            Some(ip("8.8.8.8"))
        );
        assert_eq!(res(peer, &["6.6.6.6", "8.8.8.8"]), Some(ip("8.8.8.8")));
        assert_eq!(res(peer, &["[2001:db8::1]:443"]), Some(ip("2001:db8::1")));
        assert_eq!(res(peer, &["203.0.113.9:5000"]), Some(ip("203.0.113.9")));
        // No header: the trusted peer itself.
        assert_eq!(res(peer, &[]), Some(peer));
        // Garbage, or an unreadable value, before any untrusted hop: unknown, never the
        // proxy (which may be trusted for more than naming clients).
        assert_eq!(res(peer, &["1.1.1.1, garbage"]), None);
        assert_eq!(res(peer, &["1.1.1.1, unknown, 10.0.0.9"]), None);
        assert_eq!(res(peer, &["garbage, 1.1.1.1"]), Some(ip("1.1.1.1")));
        assert_eq!(r.resolve(peer, [Some("1.1.1.1"), None].into_iter()), None);
        assert_eq!(res(peer, &[""]), None);
        // Every hop trusted: the leftmost.
        assert_eq!(res(peer, &["10.0.0.1, 10.0.0.2"]), Some(ip("10.0.0.1")));
    }

    #[test]
    fn forwarded_elements() {
        let r = resolver(ProxyHeader::Forwarded);
        let res = |values: &[&str]| r.resolve(ip("127.0.0.1"), values.iter().map(|v| Some(*v)));
        assert_eq!(
            res(&[r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https"#]),
            Some(ip("2001:db8:cafe::17"))
        );
        assert_eq!(
            res(&["proto=http;For=192.0.2.60;by=10.0.0.1"]),
            Some(ip("192.0.2.60"))
        );
        assert_eq!(res(&["for=_hidden"]), None);
    }

    #[test]
    fn cidrs_and_keys() {
        let c = Cidrs::parse(&["::1".into(), "192.168.0.0/16".into()]).unwrap();
        assert!(c.contains(ip("192.168.4.4")) && c.contains(ip("::1")));
        assert!(
            c.contains(ip("::ffff:192.168.1.1")),
            "v4-mapped addresses match"
        );
        assert!(!c.contains(ip("192.169.0.1")));
        assert!(Cidrs::parse(&["nope".into()]).is_err());
        assert_eq!(addr_key(ip("2001:db8::1:2")), ip("2001:db8::"));
        assert_eq!(addr_key(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
    }
}
