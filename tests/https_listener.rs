//! The HTTP listener over TLS (`server.http_tls_cert` / `http_tls_key`):
//! a real rustls client trusting the test's certificate authority gets
//! `/healthz`, `/metrics` and the callback endpoint; plain HTTP gets nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

#[test]
fn callbacks_health_and_metrics_over_https_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("cert");
    let crt = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&crt, cert.cert.pem()).expect("write");
    std::fs::write(&key, cert.key_pair.serialize_pem()).expect("write");
    let port = free_port();
    let config = proxy_config(
        &[(
            "127.0.0.1:9".parse().expect("addr"),
            "127.0.0.1:9".parse().expect("addr"),
        )],
        &format!(
            "http_listen = \"127.0.0.1:{port}\"\npublic_url = \"https://127.0.0.1:{port}\"\n\
             http_tls_cert = \"{}\"\nhttp_tls_key = \"{}\"\n[mfa]\nenabled = false\n",
            crt.display(),
            key.display()
        ),
    );
    let proxy = start_proxy(&config);
    let addr = proxy.http_addr.expect("http");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).expect("pem"),
        )
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let base = format!("https://{addr}");
    let (health, metrics, callback) = rt.block_on(async {
        let health = client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .expect("healthz over TLS")
            .status();
        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let callback = client
            .post(format!(
                "{base}/v1/verifications/00112233445566778899aabbccddeeff"
            ))
            .header("x-mfa-signature", "sha256=00")
            .body(r#"{"result":"approved"}"#)
            .send()
            .await
            .expect("callback")
            .status();
        (health, metrics, callback)
    });
    assert_eq!(health, 200);
    assert!(
        metrics.contains("mfa_proxy_pending_verifications 0"),
        "{metrics}"
    );
    assert_eq!(callback, 404, "unknown verification");

    // A client that does not trust the certificate gets no answer.
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let refused = rt.block_on(async { untrusting.get(format!("{base}/healthz")).send().await });
    assert!(refused.is_err(), "{refused:?}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .expect("write");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(!got.starts_with(b"HTTP/1.1 200"), "{got:?}");
}
