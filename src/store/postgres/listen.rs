//! Waking the node that holds a NAS request when another node kept a
//! phone's answer for it: a connection of its own, outside the pool, that
//! `LISTEN`s on the answers channel ([`put_answer`] notifies on commit).
//!
//! Notifications sent while the connection was down are lost, so after
//! every (re)connection, and after every quiet [`QUIET`], the node is told
//! to look for itself; that is the only polling, and it finds nothing
//! unless a notification went missing.
//!
//! [`put_answer`]: super::verifications::put_answer

use std::time::Duration;

use postgres::NoTls;
use postgres::fallible_iterator::FallibleIterator;

use crate::store::{StoreError, Wake};

/// The channel; its payload is `node:id` (the verification id in hex).
pub(super) const CHANNEL: &str = "mfa_answers";
/// Time without a notification after which the node looks anyway.
const QUIET: Duration = Duration::from_secs(30);
/// Longest wait between two attempts to connect.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Starts the listening thread for node `node`.
pub(super) fn spawn(config: postgres::Config, node: String, wake: Wake) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("mfa-pg-listen".into())
        .spawn(move || run(&config, &node, wake))
        .map(drop)
        .map_err(|source| StoreError::Io {
            what: "the thread listening for answers".into(),
            source,
        })
}

/// The verification id a payload names for `node`, if it is for `node`.
fn for_node(payload: &str, node: &str) -> Option<Vec<u8>> {
    let (to, id) = payload.rsplit_once(':')?;
    (to == node).then(|| crate::hex::hex_decode(id))?
}

fn run(config: &postgres::Config, node: &str, mut wake: Wake) {
    let mut backoff = Duration::from_millis(250);
    let mut lost = false;
    loop {
        let mut client = match config.connect(NoTls) {
            Ok(c) => c,
            Err(e) => {
                if !lost {
                    tracing::warn!(error = %StoreError::from(e),
                        "cannot listen for answers from other nodes: retrying");
                    lost = true;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")) {
            if !lost {
                tracing::warn!(error = %StoreError::from(e),
                    "LISTEN failed (a read-only standby, or a pooler in transaction mode?): retrying");
                lost = true;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        }
        if std::mem::take(&mut lost) {
            tracing::info!("listening for answers from other nodes again");
        }
        backoff = Duration::from_millis(250);
        // Whatever was notified while nobody listened.
        if !wake(None) {
            return;
        }
        loop {
            let next = client.notifications().timeout_iter(QUIET).next();
            let go_on = match next {
                Ok(Some(n)) => match for_node(n.payload(), node) {
                    Some(id) => wake(Some(id)),
                    None => true,
                },
                Ok(None) => wake(None),
                Err(e) => {
                    tracing::warn!(error = %StoreError::from(e),
                        "the connection listening for answers was lost: reconnecting");
                    lost = true;
                    break;
                }
            };
            if !go_on {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::for_node;

    #[test]
    fn payloads_name_a_node_and_a_verification() {
        assert_eq!(for_node("node-a:0aff", "node-a"), Some(vec![0x0a, 0xff]));
        assert_eq!(for_node("node-a:0aff", "node-b"), None);
        assert_eq!(for_node("a:b:0aff", "a:b"), Some(vec![0x0a, 0xff]));
        assert_eq!(for_node("node-a:zz", "node-a"), None);
        assert_eq!(for_node("node-a", "node-a"), None);
    }
}
