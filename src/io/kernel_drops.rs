//! Datagrams the kernel dropped before the proxy could read them: a UDP
//! socket's receive buffer is capped by `net.core.rmem_max`, and a burst
//! larger than it is lost in the kernel, unseen by the engine's counters.
//! Linux counts those drops per socket in `/proc/net/udp` (and `udp6`),
//! found here by the sockets' inode numbers. Read off the packet path: by
//! `/metrics`, and every ten seconds to warn when the count grows.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the counts are checked for a warning.
const CHECK_EVERY: Duration = Duration::from_secs(10);

/// The proxy's UDP sockets, by what they are and their inode. Clones
/// share the list, which a reload replaces ([`UdpSockets::set`]).
#[derive(Clone, Debug, Default)]
pub(super) struct UdpSockets {
    sockets: Arc<Mutex<Vec<(Side, String, u64)>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Nas,
    Upstream,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Nas => "nas",
            Side::Upstream => "upstream",
        }
    }
}

impl UdpSockets {
    /// The sockets' inodes (a socket whose inode cannot be read is left out).
    pub(super) fn new(
        listeners: &[std::net::UdpSocket],
        upstream: &[std::net::UdpSocket],
    ) -> UdpSockets {
        let named = |s: &std::net::UdpSocket| (name_of(s.local_addr()), s.as_raw_fd());
        let me = UdpSockets::default();
        me.set(
            listeners.iter().map(named),
            upstream.iter().map(AsRawFd::as_raw_fd),
        );
        me
    }

    /// Replaces the list: listeners by (address, descriptor), upstream
    /// sockets by descriptor, named by their index.
    pub(super) fn set(
        &self,
        listeners: impl Iterator<Item = (String, RawFd)>,
        upstream: impl Iterator<Item = RawFd>,
    ) {
        let inode = |fd: RawFd| {
            std::fs::metadata(format!("/proc/self/fd/{fd}"))
                .map(|m| m.ino())
                .ok()
        };
        let mut sockets = Vec::new();
        for (name, fd) in listeners {
            sockets.extend(inode(fd).map(|i| (Side::Nas, name, i)));
        }
        for (n, fd) in upstream.enumerate() {
            sockets.extend(inode(fd).map(|i| (Side::Upstream, n.to_string(), i)));
        }
        *self.sockets.lock().unwrap_or_else(|e| e.into_inner()) = sockets;
    }

    fn list(&self) -> Vec<(Side, String, u64)> {
        self.sockets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Each socket with its inode and drops; zero for a socket the
    /// kernel's tables do not list (or on another system).
    fn drops(&self) -> Vec<((Side, String, u64), u64)> {
        let mut by_inode = HashMap::new();
        for table in ["/proc/net/udp", "/proc/net/udp6"] {
            if let Ok(text) = std::fs::read_to_string(table) {
                parse_table(&text, &mut by_inode);
            }
        }
        self.list()
            .into_iter()
            .map(|s| {
                let n = by_inode.get(&s.2).copied().unwrap_or(0);
                (s, n)
            })
            .collect()
    }

    /// The Prometheus lines for `/metrics`.
    pub(super) fn render(&self, o: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(
            o,
            "# HELP mfa_proxy_udp_kernel_drops_total Datagrams the kernel dropped on the proxy's sockets (receive buffer full): raise net.core.rmem_max."
        );
        let _ = writeln!(o, "# TYPE mfa_proxy_udp_kernel_drops_total counter");
        for ((side, name, _), n) in self.drops() {
            let _ = writeln!(
                o,
                "mfa_proxy_udp_kernel_drops_total{{side=\"{}\",socket=\"{name}\"}} {n}",
                side.name()
            );
        }
    }

    /// Warns, at most every [`CHECK_EVERY`], when the kernel dropped
    /// datagrams since the last check. Runs until the runtime stops.
    pub(super) async fn watch(self) {
        // Read off the loop thread: the tables list every socket of the host.
        let read = |me: &UdpSockets| {
            let me = me.clone();
            async move {
                tokio::task::spawn_blocking(move || me.drops())
                    .await
                    .unwrap_or_default()
            }
        };
        // By inode: a reload may have opened or closed sockets since.
        let by_inode = |v: Vec<((Side, String, u64), u64)>| -> HashMap<u64, u64> {
            v.into_iter().map(|((_, _, i), n)| (i, n)).collect()
        };
        let mut last = by_inode(read(&self).await);
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let now = by_inode(read(&self).await);
            let new: u64 = now
                .iter()
                .map(|(i, n)| n.saturating_sub(last.get(i).copied().unwrap_or(0)))
                .sum();
            if new > 0 {
                tracing::warn!(
                    dropped = new,
                    "the kernel dropped datagrams on the proxy's sockets (receive buffers full): raise net.core.rmem_max (sysctl -w net.core.rmem_max=4194304, the 4 MiB the proxy asks for) and restart"
                );
            }
            last = now;
        }
    }
}

/// A listener's name in the list: its address.
pub(super) fn name_of(addr: std::io::Result<std::net::SocketAddr>) -> String {
    addr.map_or_else(|_| "?".into(), |a| a.to_string())
}

/// Adds `inode -> drops` for each socket line of a `/proc/net/udp` table.
fn parse_table(text: &str, into: &mut HashMap<u64, u64>) {
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let (Some(inode), Some(drops)) = (
            f.get(9).and_then(|s| s.parse::<u64>().ok()),
            f.get(12).and_then(|s| s.parse::<u64>().ok()),
        ) {
            *into.entry(inode).or_insert(0) += drops;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_drops_by_inode_and_skips_what_does_not_parse() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
             1024: 0100007F:0714 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41234 2 0000000000000000 17\n\
             1025: 0100007F:0715 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41235 2 0000000000000000 0\n\
             garbage\n";
        let mut m = HashMap::new();
        parse_table(table, &mut m);
        assert_eq!(m.get(&41234), Some(&17));
        assert_eq!(m.get(&41235), Some(&0));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn finds_its_own_socket() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let socks = UdpSockets::new(std::slice::from_ref(&s), &[]);
        assert_eq!(socks.list().len(), 1, "the inode of a real socket");
        let mut o = String::new();
        socks.render(&mut o);
        assert!(o.contains("side=\"nas\""), "{o}");
        assert!(o.contains("} 0"), "no drops on an idle socket: {o}");
    }
}
