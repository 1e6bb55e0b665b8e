//! The address a portal request comes from: the one place that decides it,
//! for the sign-in rate limits, the audit trail and what providers are
//! told.
//!
//! Without `[portal] trusted_proxies` it is the TCP peer's. Behind a
//! reverse proxy every request comes from the proxy, so the per-address
//! limit would lock every user out at once and the audit trail would name
//! the proxy: when the peer is one of the trusted proxies, the address is
//! taken from `X-Forwarded-For` instead. From any other peer the header is
//! ignored, so a client cannot choose its own address.
//!
//! Each proxy appends the address it received the request from to the
//! list, so only the right end of it is believed: walking from the right,
//! addresses of trusted proxies are skipped, and the first other address is
//! the client's (whatever a client wrote in the header itself sits further
//! left and is never reached). When every address is a trusted proxy's,
//! the leftmost is the client's. Several `X-Forwarded-For` headers are one
//! list, in order.
//!
//! An element may carry a port (`192.0.2.1:1234`, `[2001:db8::1]:80`, as
//! some load balancers write them): the port is dropped. IPv4-mapped IPv6
//! addresses are the IPv4 addresses they are. A header that is missing or
//! empty, or an element reached that is not an address (`unknown`, a host
//! name, an empty element), leaves the peer's address in force and is
//! counted (`mfa_portal_forwarded_invalid_total`): the proxy in front is
//! not configured as it should be, and no guess is made.
//!
//! The RFC 7239 `Forwarded` header is not read: a proxy that sets only
//! `X-Forwarded-For` passes a `Forwarded` header written by the client
//! through untouched, so believing it would let the client choose. Nor is
//! `X-Forwarded-Proto`: whether cookies are `Secure` follows the portal's
//! own configuration (HTTPS, or an https `public_url`).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use ipnet::IpNet;

use super::{Peer, Portal};

/// The header reverse proxies append the client's address to.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Where a request comes from, as the portal's rate limits and audit
/// records see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    pub ip: IpAddr,
    pub how: How,
}

/// How the client's address was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// The TCP peer, which is not a trusted proxy (or none is trusted).
    Peer,
    /// From `X-Forwarded-For`, sent by a trusted proxy.
    Forwarded,
    /// The peer is a trusted proxy, but its `X-Forwarded-For` is missing
    /// or not usable: the peer's address.
    Invalid,
}

/// The client of a request from `peer` with `headers`, `trusted` being the
/// networks of the proxies in front.
pub fn resolve(peer: IpAddr, trusted: &[IpNet], headers: &HeaderMap) -> Client {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Client {
            ip: peer,
            how: How::Peer,
        };
    }
    match forwarded(headers.get_all(X_FORWARDED_FOR).iter(), is_trusted) {
        Some(ip) => Client {
            ip,
            how: How::Forwarded,
        },
        None => Client {
            ip: peer,
            how: How::Invalid,
        },
    }
}

/// The client in the `X-Forwarded-For` list made of `values`: the
/// rightmost address that `trusted` does not hold, else the leftmost;
/// `None` if there is none, or an element reached is not an address.
fn forwarded<'a>(
    values: impl DoubleEndedIterator<Item = &'a HeaderValue>,
    trusted: impl Fn(&IpAddr) -> bool,
) -> Option<IpAddr> {
    let mut leftmost = None;
    for value in values.rev() {
        // Split as bytes: what a client wrote left of the addresses the
        // proxies appended need not even be text.
        for element in value.as_bytes().rsplit(|b| *b == b',') {
            let ip = address(std::str::from_utf8(element).ok()?.trim())?;
            if !trusted(&ip) {
                return Some(ip);
            }
            leftmost = Some(ip);
        }
    }
    leftmost
}

/// One element of the list: an address, or an address with a port (the
/// port dropped), or a bracketed IPv6 address.
fn address(s: &str) -> Option<IpAddr> {
    let ip = match s.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => match s.parse::<SocketAddr>() {
            Ok(sa) => sa.ip(),
            Err(_) => IpAddr::V6(
                s.strip_prefix('[')?
                    .strip_suffix(']')?
                    .parse::<Ipv6Addr>()
                    .ok()?,
            ),
        },
    };
    Some(ip.to_canonical())
}

/// Handlers take the client as an argument; the HTTP server attaches the
/// TCP peer ([`Peer`]) to every request, so its absence is the server's
/// fault (500), never the client's.
impl FromRequestParts<Arc<Portal>> for Client {
    type Rejection = StatusCode;

    async fn from_request_parts(
        parts: &mut Parts,
        portal: &Arc<Portal>,
    ) -> Result<Client, StatusCode> {
        let Peer(peer) = parts
            .extensions
            .get::<Peer>()
            .copied()
            .ok_or(StatusCode::INTERNAL_SERVER_ERROR)?;
        Ok(portal.client(peer.ip(), &parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().expect("net")).collect()
    }

    /// The client of a request from `peer` with these `X-Forwarded-For`
    /// headers (raw bytes), behind `trusted`.
    fn from(peer: &str, trusted: &[&str], headers: &[&[u8]]) -> Client {
        let mut h = HeaderMap::new();
        for v in headers {
            h.append(
                X_FORWARDED_FOR,
                HeaderValue::from_bytes(v).expect("header value"),
            );
        }
        resolve(ip(peer), &nets(trusted), &h)
    }

    fn forwarded_as(ip_: &str) -> Client {
        Client {
            ip: ip(ip_),
            how: How::Forwarded,
        }
    }

    fn invalid(peer: &str) -> Client {
        Client {
            ip: ip(peer),
            how: How::Invalid,
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let direct = Client {
            ip: ip("203.0.113.9"),
            how: How::Peer,
        };
        assert_eq!(
            from("203.0.113.9", &[], &[b"192.0.2.1"]),
            direct,
            "no proxy trusted"
        );
        assert_eq!(
            from("203.0.113.9", &["10.0.0.0/8"], &[b"192.0.2.1"]),
            direct,
            "another peer"
        );
        assert_eq!(
            from("203.0.113.9", &["10.0.0.0/8"], &[b"\xff, garbage"]),
            direct,
            "garbage from an untrusted peer is not even read"
        );
        assert_eq!(from("203.0.113.9", &["10.0.0.0/8"], &[]), direct);
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        assert_eq!(
            from("10.0.0.5", &["10.0.0.5/32"], &[b"192.0.2.1"]),
            forwarded_as("192.0.2.1")
        );
        // What the client wrote itself is left of what the proxy appended.
        assert_eq!(
            from("10.0.0.5", &["10.0.0.5/32"], &[b"198.51.100.1, 192.0.2.1"]),
            forwarded_as("192.0.2.1"),
            "the client's own claim is not believed"
        );
        assert_eq!(
            from(
                "10.0.0.5",
                &["10.0.0.5/32"],
                &[b"not an address, \xff\xfe, 192.0.2.1"]
            ),
            forwarded_as("192.0.2.1"),
            "garbage the client wrote is never reached"
        );
    }

    #[test]
    fn chains_of_trusted_proxies_are_walked_from_the_right() {
        let trusted = ["10.0.0.0/24", "192.0.2.0/24"];
        assert_eq!(
            from(
                "10.0.0.5",
                &trusted,
                &[b"198.51.100.7, 203.0.113.4, 192.0.2.10, 10.0.0.9"]
            ),
            forwarded_as("203.0.113.4"),
            "two trusted hops skipped"
        );
        // Several headers are one list, in order.
        assert_eq!(
            from(
                "10.0.0.5",
                &trusted,
                &[b"198.51.100.7", b"203.0.113.4", b"192.0.2.10, 10.0.0.9"]
            ),
            forwarded_as("203.0.113.4")
        );
        assert_eq!(
            from(
                "10.0.0.5",
                &trusted,
                &[b"203.0.113.4, 192.0.2.10", b"10.0.0.9"]
            ),
            forwarded_as("203.0.113.4")
        );
        // Every hop a trusted proxy (an internal client): the leftmost.
        assert_eq!(
            from(
                "10.0.0.5",
                &trusted,
                &[b"10.0.0.77, 192.0.2.10", b"10.0.0.9"]
            ),
            forwarded_as("10.0.0.77")
        );
    }

    #[test]
    fn a_missing_empty_or_garbled_header_leaves_the_peer() {
        let trusted = ["10.0.0.0/24"];
        let cases: &[&[&[u8]]] = &[
            &[],
            &[b""],
            &[b"   "],
            &[b"192.0.2.1, "],
            &[b"192.0.2.1,,10.0.0.9"],
            &[b"unknown"],
            &[b"proxy.example.org"],
            &[b"192.0.2.1", b""],
            &[b"192.0.2.300"],
            &[b"192.0.2.1:99999"],
            &[b"2001:db8::1]"],
            &[b"[192.0.2.1]:80"],
            &[b"\xc3\xa9"],
            &[b"192.0.2.1 10.0.0.9"],
            // Every hop trusted, then one that is not an address.
            &[b"garbage, 10.0.0.9"],
        ];
        for headers in cases {
            assert_eq!(
                from("10.0.0.5", &trusted, headers),
                invalid("10.0.0.5"),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn ipv6_and_ports() {
        let trusted = ["::1/128", "2001:db8:ffff::/48", "10.0.0.5/32"];
        assert_eq!(
            from("::1", &trusted, &[b"2001:db8::1"]),
            forwarded_as("2001:db8::1")
        );
        assert_eq!(
            from("::1", &trusted, &[b"2001:db8::1, 2001:db8:ffff::3"]),
            forwarded_as("2001:db8::1"),
            "a trusted IPv6 hop"
        );
        // Ports are dropped, on either family, and brackets taken off.
        assert_eq!(
            from("::1", &trusted, &[b"[2001:db8::1]:80"]),
            forwarded_as("2001:db8::1")
        );
        assert_eq!(
            from("::1", &trusted, &[b"[2001:db8::1]"]),
            forwarded_as("2001:db8::1")
        );
        assert_eq!(
            from("::1", &trusted, &[b"192.0.2.1:1234"]),
            forwarded_as("192.0.2.1")
        );
        assert_eq!(
            from("10.0.0.5", &trusted, &[b"198.51.100.7, [::1]:4000"]),
            forwarded_as("198.51.100.7"),
            "a trusted hop with a port"
        );
        // IPv4-mapped addresses, of the peer or in the list, are IPv4.
        assert_eq!(
            from("::ffff:10.0.0.5", &trusted, &[b"::ffff:192.0.2.1"]),
            forwarded_as("192.0.2.1")
        );
        assert_eq!(
            from("10.0.0.5", &trusted, &[b"192.0.2.1, ::ffff:10.0.0.5"]),
            forwarded_as("192.0.2.1")
        );
    }
}
