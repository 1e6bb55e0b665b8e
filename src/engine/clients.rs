//! NAS clients, matched by source address, most specific range first.
//!
//! The table holds each client behind an `Arc`: a request or login in
//! flight keeps the entry it was authenticated with, so a reload that
//! changes or removes the client never makes it answer with another
//! client's secret (see `reload.rs`).

use std::net::IpAddr;
use std::sync::Arc;

use crate::config;

/// A client as the engine holds it: its configuration, and an id that
/// stays the same across reloads as long as the configuration does (warning
/// throttles are keyed by it).
#[derive(Debug)]
pub(crate) struct ClientEntry {
    pub(crate) id: u32,
    cfg: config::Client,
}

impl std::ops::Deref for ClientEntry {
    type Target = config::Client;

    fn deref(&self) -> &config::Client {
        &self.cfg
    }
}

/// A client, as requests and logins in flight hold it.
pub(crate) type ClientRef = Arc<ClientEntry>;

#[derive(Debug)]
pub(crate) struct ClientTable {
    /// Sorted by prefix length, longest first.
    clients: Vec<ClientRef>,
    next_id: u32,
}

impl ClientTable {
    pub(crate) fn new(clients: &[config::Client]) -> ClientTable {
        let mut t = ClientTable {
            clients: Vec::new(),
            next_id: 0,
        };
        t.replace(clients);
        t
    }

    /// The clients of a reload. A client whose configuration is unchanged
    /// keeps its entry (and id); any other gets a new one, and the entries
    /// it replaces live on as long as something in flight holds them.
    pub(crate) fn replace(&mut self, clients: &[config::Client]) {
        let mut next: Vec<ClientRef> = clients
            .iter()
            .map(|c| {
                let same = self
                    .clients
                    .iter()
                    .find(|o| o.name == c.name && config::diff::client_keys(&o.cfg, c).is_empty());
                match same {
                    Some(o) => o.clone(),
                    None => {
                        self.next_id += 1;
                        Arc::new(ClientEntry {
                            id: self.next_id,
                            cfg: c.clone(),
                        })
                    }
                }
            })
            .collect();
        next.sort_by_key(|c| std::cmp::Reverse(c.network.prefix_len()));
        self.clients = next;
    }

    /// The client for a source address; IPv4-mapped IPv6 sources match IPv4
    /// entries.
    pub(crate) fn lookup(&self, ip: IpAddr) -> Option<&ClientRef> {
        let ip = ip.to_canonical();
        self.clients.iter().find(|c| c.network.contains(&ip))
    }

    /// Whether `id` is the id of a client in the table.
    pub(crate) fn has_id(&self, id: u32) -> bool {
        self.clients.iter().any(|c| c.id == id)
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
        let name = |ip: &str| t.lookup(ip.parse().expect("ip")).map(|c| c.name.clone());
        assert_eq!(name("10.1.2.3").as_deref(), Some("one"));
        assert_eq!(name("10.9.9.9").as_deref(), Some("wide"));
        assert_eq!(name("::ffff:10.1.2.3").as_deref(), Some("one"));
        assert_eq!(name("2001:db8::1").as_deref(), Some("v6"));
        assert_eq!(name("192.0.2.1"), None);
    }

    #[test]
    fn a_replaced_table_keeps_unchanged_entries_and_renews_changed_ones() {
        let mut t = ClientTable::new(&[client("a", "10.0.0.0/8"), client("b", "10.1.0.0/16")]);
        let a = t
            .lookup("10.9.9.9".parse().expect("ip"))
            .expect("a")
            .clone();
        let b = t
            .lookup("10.1.9.9".parse().expect("ip"))
            .expect("b")
            .clone();
        let mut b2 = client("b", "10.1.0.0/16");
        b2.secret = SharedSecret::new(b"b-new");
        t.replace(&[b2, client("a", "10.0.0.0/8")]);
        let a_now = t.lookup("10.9.9.9".parse().expect("ip")).expect("a");
        assert!(Arc::ptr_eq(&a, a_now), "unchanged: the same entry");
        let b_now = t.lookup("10.1.9.9".parse().expect("ip")).expect("b");
        assert!(
            !Arc::ptr_eq(&b, b_now) && b_now.id != b.id,
            "changed: a new entry"
        );
        assert_eq!(b.secret.expose(), b"b", "the old entry keeps its secret");
        assert!(t.has_id(a.id) && !t.has_id(b.id));
    }
}
