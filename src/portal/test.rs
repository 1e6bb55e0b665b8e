//! What the portal sends through a provider, with the same signed webhook
//! body a login's verification has: a test push or call (a message saying
//! it is a test), and the code of a sign-in by text message. Both go out
//! for a verification id that no login waits for (the provider's callback,
//! if it sends one, is answered 404 like any unknown verification).

use super::Client;
use crate::config::{Config, ProviderKind};
use crate::engine::Delivery;
use crate::mfa::Method;
use crate::mfa::webhook::{DeliveryBody, sign};

/// How long the provider may try (the expiry it is given).
const TEST_SECONDS: i64 = 60;

/// What goes out.
#[derive(Clone, Copy, Debug)]
pub(super) enum Outbound<'a> {
    /// A test of the method.
    Test,
    /// A sign-in code by text message.
    Code(&'a str),
}

/// The delivery of `what` by `method` to `user`, or `None` when no
/// provider delivers that method, or a call or text has no phone number.
pub(super) fn delivery(
    config: &Config,
    user: &str,
    method: Method,
    phone: Option<&str>,
    lang: &str,
    client: Client,
    what: Outbound<'_>,
) -> Option<Delivery> {
    if matches!(method, Method::Call | Method::Sms) && phone.is_none() {
        return None;
    }
    let provider = config
        .providers
        .iter()
        .find(|p| p.methods.contains(&method))?;
    let id = crate::hex::hex_encode(&rand::random::<[u8; 16]>());
    let (message, code) = match (what, lang.split('-').next()) {
        (Outbound::Test, Some("de")) => (
            "Test aus dem Anmeldeportal: Sie müssen nichts tun.".to_owned(),
            None,
        ),
        (Outbound::Test, _) => (
            "Test from the sign-in portal: there is nothing to do.".to_owned(),
            None,
        ),
        (Outbound::Code(c), _) => (
            config
                .mfa
                .texts(Some(lang))
                .sms_message
                .replace("{code}", c),
            Some(c),
        ),
    };
    let callback_url = format!(
        "{}/v1/verifications/{id}",
        config
            .server
            .public_url
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/')
    );
    let ip = client.ip.to_string();
    let body = serde_json::to_vec(&DeliveryBody {
        id: &id,
        method: method.as_str(),
        user,
        phone,
        message: &message,
        code,
        number: None,
        language: lang,
        pin_mode: false,
        client: "portal",
        client_ip: Some(&ip),
        callback_url: &callback_url,
        expires_at: super::now() + TEST_SECONDS,
    })
    .ok()?;
    let signature = provider.key.as_ref().map(|k| sign(k.expose(), &body));
    let console = match &provider.kind {
        ProviderKind::Console => format!(
            "{} for {user} ({}): {message} [portal test {id}]",
            method.as_str(),
            phone.unwrap_or("no phone")
        ),
        ProviderKind::Webhook { .. } => String::new(),
    };
    Some(Delivery {
        id,
        provider: std::sync::Arc::new(provider.clone()),
        method,
        body,
        signature,
        console,
    })
}
