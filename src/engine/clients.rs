//! NAS clients, matched by source address, most specific range first.

use std::net::IpAddr;

use crate::config;

#[derive(Debug)]
pub(crate) struct ClientTable {
    /// Sorted by prefix length, longest first.
    clients: Vec<config::Client>,
}

impl ClientTable {
    pub(crate) fn new(clients: &[config::Client]) -> ClientTable {
        let mut clients = clients.to_vec();
        clients.sort_by_key(|c| std::cmp::Reverse(c.network.prefix_len()));
        ClientTable { clients }
    }

    /// The client for a source address; IPv4-mapped IPv6 sources match IPv4
    /// entries.
    pub(crate) fn lookup(&self, ip: IpAddr) -> Option<(usize, &config::Client)> {
        let ip = ip.to_canonical();
        self.clients
            .iter()
            .enumerate()
            .find(|(_, c)| c.network.contains(&ip))
    }

    pub(crate) fn get(&self, index: usize) -> &config::Client {
        &self.clients[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Client, SharedSecret};

    fn client(name: &str, net: &str) -> Client {
        Client {
            name: name.into(),
            network: net.parse().expect("net"),
            secret: SharedSecret::new(name.as_bytes()),
            require_message_authenticator: true,
            fail_mode: crate::config::FailMode::Closed,
            number_matching: false,
            user_address_from: None,
        }
    }

    #[test]
    fn longest_prefix_wins_and_mapped_addresses_match() {
        let t = ClientTable::new(&[
            client("wide", "10.0.0.0/8"),
            client("one", "10.1.2.3/32"),
            client("v6", "2001:db8::/32"),
        ]);
        let name = |ip: &str| {
            t.lookup(ip.parse().expect("ip"))
                .map(|(_, c)| c.name.clone())
        };
        assert_eq!(name("10.1.2.3").as_deref(), Some("one"));
        assert_eq!(name("10.9.9.9").as_deref(), Some("wide"));
        assert_eq!(name("::ffff:10.1.2.3").as_deref(), Some("one"));
        assert_eq!(name("2001:db8::1").as_deref(), Some("v6"));
        assert_eq!(name("192.0.2.1"), None);
    }
}
