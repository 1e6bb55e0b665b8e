//! Property and differential tests of the wire codec: our encoder and
//! decoder against each other and against the `radius` crate.

use proptest::prelude::*;

use mfa_proxy::radius::{Code, Packet, PacketBuilder, attr, crypto};

fn attrs() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    // Attribute types the proxy treats specially are excluded; their rules
    // are tested on their own.
    let typ = (1u8..=255).prop_filter("plain", |t| {
        ![attr::MESSAGE_AUTHENTICATOR, attr::VENDOR_SPECIFIC].contains(t)
    });
    proptest::collection::vec((typ, proptest::collection::vec(any::<u8>(), 0..60)), 0..30)
}

proptest! {
    /// Build, parse, and get back exactly what went in.
    #[test]
    fn build_parse_round_trip(id in any::<u8>(), auth in any::<[u8; 16]>(), list in attrs(), secret in "[a-z]{1,40}") {
        let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, id, &auth);
        b.push_message_authenticator().expect("fits");
        for (t, v) in &list {
            b.push(*t, v).expect("fits");
        }
        let bytes = b.finish_request(secret.as_bytes());
        let p = Packet::parse(&bytes).expect("our own packets parse");
        prop_assert_eq!(p.identifier(), id);
        prop_assert_eq!(p.authenticator(), &auth);
        let back: Vec<(u8, Vec<u8>)> = p.attributes().skip(1).map(|a| (a.typ, a.value.to_vec())).collect();
        prop_assert_eq!(back, list);
        let off = p.message_authenticator_offset().expect("MA");
        prop_assert!(crypto::verify_message_authenticator(&bytes, off, &auth, secret.as_bytes()));
        // Re-encoding the parsed attributes gives the same bytes.
        let mut again = PacketBuilder::new(Code::ACCESS_REQUEST, id, &auth);
        again.push_message_authenticator().expect("fits");
        for a in p.attributes().skip(1) {
            again.push_raw(a.raw(&p)).expect("fits");
        }
        prop_assert_eq!(again.finish_request(secret.as_bytes()), bytes);
    }

    /// Arbitrary bytes either parse into a view whose attributes exactly fill
    /// the packet, or fail with an error; never a panic.
    #[test]
    fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(p) = Packet::parse(&data) {
            let total: usize = 20 + p.attributes().map(|a| 2 + a.value.len()).sum::<usize>();
            prop_assert_eq!(total, p.len());
        }
    }

    /// The `radius` crate decodes what we encode (same attributes, and our
    /// User-Password decrypts to the same plaintext), and we decode what it
    /// encodes.
    #[test]
    fn differential_against_radius_crate(id in any::<u8>(), user in "[a-z]{1,20}", pass in "[ -~]{1,100}", secret in "[a-z0-9]{4,30}") {
        use radius::core::code::Code as RCode;
        use radius::core::packet::Packet as RPacket;
        use radius::core::rfc2865;

        // Ours → theirs.
        let auth = [id; 16];
        let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, id, &auth);
        b.push(attr::USER_NAME, user.as_bytes()).expect("fits");
        b.push(attr::USER_PASSWORD, &crypto::hide_password(pass.as_bytes(), secret.as_bytes(), &auth).expect("hide")).expect("fits");
        b.push(attr::NAS_IP_ADDRESS, &[10, 0, 0, 1]).expect("fits");
        let ours = b.finish_request(secret.as_bytes());
        let theirs = RPacket::decode(&ours, secret.as_bytes()).expect("radius crate decodes our packet");
        prop_assert_eq!(theirs.get_identifier(), id);
        prop_assert_eq!(rfc2865::lookup_user_name(&theirs).map(|r| r.ok()), Some(Some(user.clone())));
        let pw = rfc2865::lookup_user_password(&theirs).expect("present").expect("decrypts");
        prop_assert_eq!(pw, pass.as_bytes().to_vec());

        // Theirs → ours.
        let mut rp = RPacket::new(RCode::AccessRequest, secret.as_bytes());
        rfc2865::add_user_name(&mut rp, &user);
        rfc2865::add_user_password(&mut rp, pass.as_bytes()).expect("encrypts");
        let bytes = rp.encode().expect("encodes");
        let p = Packet::parse(&bytes).expect("we decode the radius crate's packet");
        prop_assert_eq!(p.find(attr::USER_NAME).map(|a| a.value.to_vec()), Some(user.into_bytes()));
        let hidden = p.find(attr::USER_PASSWORD).expect("present").value;
        let plain = crypto::unhide_password(hidden, secret.as_bytes(), p.authenticator()).expect("unhide");
        prop_assert_eq!(&plain[..], pass.as_bytes());

        // Responses: theirs signs, we verify.
        let resp = theirs.make_response_packet(RCode::AccessAccept).encode().expect("encodes");
        prop_assert!(crypto::verify_packet_authenticator(&resp, &auth, secret.as_bytes()));
    }
}
