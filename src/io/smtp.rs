//! Mail out through an SMTP relay: the fraud reports of `[notify]` and the
//! enrollment invitations of `[enrollment]` both leave through here, so
//! both relays are reached the same way (`tls = "none"`, `"starttls"` or
//! `"tls"`, at most ten seconds a step).
//!
//! Errors keep their source and name the relay and which address was
//! wrong, never a message's text: an invitation's body carries its link.

use std::time::Duration;

use lettre::message::{Mailbox, MessageBuilder, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::SmtpTls;

/// How long connecting, and each SMTP step after it, may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a mail was not built or not handed to the relay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// An address of the configuration or of a user that lettre refuses.
    #[error("{what} \"{address}\" is not an email address: {source}")]
    Address {
        what: &'static str,
        address: String,
        #[source]
        source: lettre::address::AddressError,
    },
    /// `smtp` is not `host:port` (the configuration checks it; a value
    /// built otherwise can still be wrong).
    #[error("the relay \"{0}\" is not host:port")]
    RelayAddress(String),
    /// The message could not be put together (a header lettre refuses).
    #[error("cannot build the message: {0}")]
    Message(#[source] lettre::error::Error),
    /// The relay could not be reached, refused the message, or timed out.
    #[error("the relay {relay}: {source}")]
    Relay {
        relay: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

/// A relay to send through: `smtp` is `host:port`.
#[derive(Clone, Debug)]
pub struct Relay {
    smtp: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Relay {
    /// The transport for `smtp` (`host:port`) with `tls`. Nothing is
    /// connected yet: each [`Relay::send`] opens its own connection.
    pub fn new(smtp: &str, tls: SmtpTls) -> Result<Relay, MailError> {
        let relay_error = |source| MailError::Relay {
            relay: smtp.to_owned(),
            source,
        };
        let (host, port) = smtp
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| MailError::RelayAddress(smtp.to_owned()))?;
        // An IPv6 relay is written [::1]:25; the transport wants the bare address.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let builder = match tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(relay_error)?
            }
            SmtpTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(relay_error)?
            }
        };
        Ok(Relay {
            smtp: smtp.to_owned(),
            transport: builder.port(port).timeout(Some(TIMEOUT)).build(),
        })
    }

    /// Hands `message` to the relay.
    pub async fn send(&self, message: Message) -> Result<(), MailError> {
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|source| MailError::Relay {
                relay: self.smtp.clone(),
                source,
            })
    }
}

/// `address` as a mailbox; `what` names it in the error ("from", "to").
pub fn mailbox(address: &str, what: &'static str) -> Result<Mailbox, MailError> {
    address.parse().map_err(|source| MailError::Address {
        what,
        address: address.to_owned(),
        source,
    })
}

/// A plain-text UTF-8 message with a Message-ID of its own: lettre picks
/// the transfer encoding (7bit,
/// quoted-printable or base64) and encodes a non-ASCII subject.
pub fn plain_text(builder: MessageBuilder, body: String) -> Result<Message, MailError> {
    builder
        .header(ContentType::TEXT_PLAIN)
        .message_id(None)
        .body(body)
        .map_err(MailError::Message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_addresses_are_host_and_port() {
        for ok in ["127.0.0.1:25", "mail.example.org:587", "[::1]:2525"] {
            assert!(Relay::new(ok, SmtpTls::None).is_ok(), "{ok}");
        }
        for bad in ["mail.example.org", ":25", "mail:smtp", "mail:70000"] {
            let e = Relay::new(bad, SmtpTls::None).expect_err(bad);
            assert!(matches!(e, MailError::RelayAddress(_)), "{bad}: {e}");
        }
        let e = mailbox("not an address", "to").expect_err("bad");
        assert!(
            e.to_string()
                .starts_with("to \"not an address\" is not an email address"),
            "{e}"
        );
    }
}
