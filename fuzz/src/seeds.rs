//! Seed inputs, made from the packets and scenarios of the crate's own
//! tests, and the encoder that turns an engine [`Scenario`] into the bytes
//! `arbitrary` decodes back into it.
//!
//! `cargo test --manifest-path fuzz/Cargo.toml -- --ignored write_seeds`
//! rewrites `fuzz/seeds/`. The encoder mirrors `derive(Arbitrary)`: fields
//! in order, integers little-endian, `bool` as one octet, `Option` as a
//! `bool` then the value, an enum variant `i` of `n` as the `u32` `v` with
//! `(v * n) >> 32 == i`. Every seed is decoded again and compared, so a
//! change in `arbitrary`'s format fails loudly instead of writing junk.

use mfa_proxy::radius::{Code, PacketBuilder, attr, crypto};

use crate::engine::*;

/// Appends the bytes that decode to a value.
pub trait Encode {
    fn encode(&self, out: &mut Vec<u8>);
}

fn variant(out: &mut Vec<u8>, i: u64, n: u64) {
    let v = ((i << 32) + n - 1) / n;
    out.extend_from_slice(&(v as u32).to_le_bytes());
}

impl Encode for u8 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }
}

impl Encode for u16 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl Encode for u32 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.is_some().encode(out);
        if let Some(v) = self {
            v.encode(out);
        }
    }
}

impl<A: Encode, B: Encode> Encode for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
}

impl Encode for Blob {
    fn encode(&self, out: &mut Vec<u8>) {
        let n = self.0.len().min(255);
        out.push(n as u8);
        out.extend_from_slice(&self.0[..n]);
    }
}

/// Unit-only enums: the variant alone.
macro_rules! unit_enum {
    ($t:ident: $($v:ident),* $(,)?) => {
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                let all = [$($t::$v),*];
                let i = all.iter().position(|x| x == self).expect("listed") as u64;
                variant(out, i, all.len() as u64);
            }
        }
    };
}

unit_enum!(Setup: Upstream, LocalNumberMatching, PlainProxy);
unit_enum!(ReqKind: Access, Status, Accounting);
unit_enum!(User: Alice, Bob, AliceUpper, Carol, Empty, Missing, NonUtf8, Long);
unit_enum!(MethodWord: Push, Call, Sms, Totp, PushUpper);
unit_enum!(PinChoice: None, Right, Wrong, Fraud, Empty);
unit_enum!(MaChoice: Good, Missing, Bad);
unit_enum!(Sign: Good, BadResponseAuthenticator, BadMessageAuthenticator, NoMessageAuthenticator);
unit_enum!(PsEcho: Echo, Missing, Wrong, NotLast);
unit_enum!(TunnelPw: None, Good, BadSalt, BadLength);
unit_enum!(MethodChoice: Totp, Push, Call, Sms);
unit_enum!(PhoneChoice: None, Valid, Invalid, BadExtension);
unit_enum!(LangChoice: None, En, De, Unknown);
unit_enum!(VerdictChoice: Valid, Incorrect, Duplicate, Old);
unit_enum!(CallbackId: Delivery, Unknown, NotHex);
unit_enum!(CallbackResult: Approved, Denied, Fraud, NoResponse, HungUp, Voicemail, Unreachable, Failed, Bogus);
unit_enum!(NumberChoice: None, Shown, Wrong, Huge);
unit_enum!(SigChoice: Good, Bad, Missing);

impl Encode for Peer {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Peer::Nas { port } => (variant(out, 0, 4), port.encode(out)),
            Peer::OtherNas { port } => (variant(out, 1, 4), port.encode(out)),
            Peer::Unknown => (variant(out, 2, 4), ()),
            Peer::MappedV6 { port } => (variant(out, 3, 4), port.encode(out)),
        };
    }
}

impl Encode for CodeChoice {
    fn encode(&self, out: &mut Vec<u8>) {
        let n = 6;
        match self {
            CodeChoice::Six => variant(out, 0, n),
            CodeChoice::Zeros => variant(out, 1, n),
            CodeChoice::Eight => variant(out, 2, n),
            CodeChoice::Digits(d) => {
                variant(out, 3, n);
                d.encode(out);
            }
            CodeChoice::Short => variant(out, 4, n),
            CodeChoice::Padded => variant(out, 5, n),
        }
    }
}

impl Encode for Password {
    fn encode(&self, out: &mut Vec<u8>) {
        let n = 10;
        match self {
            Password::Missing => variant(out, 0, n),
            Password::Right => variant(out, 1, n),
            Password::Wrong => variant(out, 2, n),
            Password::Inline(c) => {
                variant(out, 3, n);
                c.encode(out);
            }
            Password::Code(c) => {
                variant(out, 4, n);
                c.encode(out);
            }
            Password::Word(w) => {
                variant(out, 5, n);
                w.encode(out);
            }
            Password::Sms { which, pin, wrong } => {
                variant(out, 6, n);
                which.encode(out);
                pin.encode(out);
                wrong.encode(out);
            }
            Password::Plain(b) => {
                variant(out, 7, n);
                b.encode(out);
            }
            Password::BadLength => variant(out, 8, n),
            Password::WrongSecret => variant(out, 9, n),
        }
    }
}

impl Encode for StateChoice {
    fn encode(&self, out: &mut Vec<u8>) {
        let n = 5;
        match self {
            StateChoice::None => variant(out, 0, n),
            StateChoice::Echo { which } => {
                variant(out, 1, n);
                which.encode(out);
            }
            StateChoice::OursUnknown { fill } => {
                variant(out, 2, n);
                fill.encode(out);
            }
            StateChoice::Truncated { which } => {
                variant(out, 3, n);
                which.encode(out);
            }
            StateChoice::Foreign(b) => {
                variant(out, 4, n);
                b.encode(out);
            }
        }
    }
}

impl Encode for NasRequest {
    fn encode(&self, out: &mut Vec<u8>) {
        self.from.encode(out);
        self.listener.encode(out);
        self.kind.encode(out);
        self.id.encode(out);
        self.auth.encode(out);
        self.user.encode(out);
        self.password.encode(out);
        self.state.encode(out);
        self.eap.encode(out);
        self.proxy_states.encode(out);
        self.ma.encode(out);
        self.calling_station.encode(out);
        self.chap.encode(out);
        self.extra.encode(out);
    }
}

impl Encode for UpCode {
    fn encode(&self, out: &mut Vec<u8>) {
        let n = 6;
        match self {
            UpCode::Fitting => variant(out, 0, n),
            UpCode::Accept => variant(out, 1, n),
            UpCode::Reject => variant(out, 2, n),
            UpCode::Challenge => variant(out, 3, n),
            UpCode::AccountingResponse => variant(out, 4, n),
            UpCode::Other(c) => {
                variant(out, 5, n);
                c.encode(out);
            }
        }
    }
}

impl Encode for UpstreamReply {
    fn encode(&self, out: &mut Vec<u8>) {
        self.which.encode(out);
        self.code.encode(out);
        self.sign.encode(out);
        self.proxy_state.encode(out);
        self.tunnel_password.encode(out);
        self.mppe.encode(out);
        self.reply_message.encode(out);
        self.eap.encode(out);
        self.state.encode(out);
        self.wrong_source.encode(out);
        self.keep.encode(out);
    }
}

impl Encode for ProfileChoice {
    fn encode(&self, out: &mut Vec<u8>) {
        self.method.encode(out);
        self.pin.encode(out);
        self.oath.encode(out);
        self.phone.encode(out);
        self.language.encode(out);
    }
}

impl Encode for PrecheckChoice {
    fn encode(&self, out: &mut Vec<u8>) {
        let n = 5;
        match self {
            PrecheckChoice::Bypass => variant(out, 0, n),
            PrecheckChoice::Blocked => variant(out, 1, n),
            PrecheckChoice::Locked => variant(out, 2, n),
            PrecheckChoice::Unenrolled => variant(out, 3, n),
            PrecheckChoice::Ready(p) => {
                variant(out, 4, n);
                p.encode(out);
            }
        }
    }
}

impl Encode for Answer {
    fn encode(&self, out: &mut Vec<u8>) {
        let n = 7;
        match self {
            Answer::Fitting { ok, profile } => {
                variant(out, 0, n);
                ok.encode(out);
                profile.encode(out);
            }
            Answer::Precheck(p) => {
                variant(out, 1, n);
                p.encode(out);
            }
            Answer::Verify { verdict, locked } => {
                variant(out, 2, n);
                verdict.encode(out);
                locked.encode(out);
            }
            Answer::Password(b) => {
                variant(out, 3, n);
                b.encode(out);
            }
            Answer::Pin(p) => {
                variant(out, 4, n);
                p.encode(out);
            }
            Answer::Done => variant(out, 5, n),
            Answer::Failed => variant(out, 6, n),
        }
    }
}

impl Encode for Callback {
    fn encode(&self, out: &mut Vec<u8>) {
        self.which.encode(out);
        self.id.encode(out);
        self.result.encode(out);
        self.pin.encode(out);
        self.number.encode(out);
        self.sig.encode(out);
        self.body.encode(out);
    }
}

impl Encode for Action {
    fn encode(&self, out: &mut Vec<u8>) {
        let n = 11;
        match self {
            Action::Nas(r) => {
                variant(out, 0, n);
                r.encode(out);
            }
            Action::Retransmit { which } => {
                variant(out, 1, n);
                which.encode(out);
            }
            Action::RawNas {
                from,
                listener,
                data,
                pad,
            } => {
                variant(out, 2, n);
                from.encode(out);
                listener.encode(out);
                data.encode(out);
                pad.encode(out);
            }
            Action::Upstream(r) => {
                variant(out, 3, n);
                r.encode(out);
            }
            Action::RawUpstream { which, data } => {
                variant(out, 4, n);
                which.encode(out);
                data.encode(out);
            }
            Action::Advance { ms } => {
                variant(out, 5, n);
                ms.encode(out);
            }
            Action::AdvanceToNext => variant(out, 6, n),
            Action::Store { which, answer } => {
                variant(out, 7, n);
                which.encode(out);
                answer.encode(out);
            }
            Action::Callback(c) => {
                variant(out, 8, n);
                c.encode(out);
            }
            Action::Delivery {
                which,
                outcome,
                bogus_id,
            } => {
                variant(out, 9, n);
                which.encode(out);
                outcome.encode(out);
                bogus_id.encode(out);
            }
            Action::WallClock { unix } => {
                variant(out, 10, n);
                unix.encode(out);
            }
        }
    }
}

impl Scenario {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.setup.encode(&mut out);
        for a in &self.actions {
            a.encode(&mut out);
        }
        out
    }
}

// ---- engine scenarios, after src/engine/tests*.rs ---------------------------

fn nas(user: User, password: Password, state: StateChoice, id: u8) -> Action {
    Action::Nas(NasRequest {
        from: Peer::Nas { port: 0 },
        listener: 0,
        kind: ReqKind::Access,
        id,
        auth: id.wrapping_mul(7),
        user,
        password,
        state,
        eap: false,
        proxy_states: 1,
        ma: MaChoice::Good,
        calling_station: true,
        chap: false,
        extra: None,
    })
}

fn accept() -> Action {
    Action::Upstream(UpstreamReply {
        which: 0,
        code: UpCode::Fitting,
        sign: Sign::Good,
        proxy_state: PsEcho::Echo,
        tunnel_password: TunnelPw::Good,
        mppe: true,
        reply_message: false,
        eap: false,
        state: false,
        wrong_source: false,
        keep: false,
    })
}

fn ready(method: MethodChoice, pin: bool) -> Action {
    Action::Store {
        which: 0,
        answer: Answer::Precheck(PrecheckChoice::Ready(ProfileChoice {
            method,
            pin,
            oath: true,
            phone: PhoneChoice::Valid,
            language: LangChoice::None,
        })),
    }
}

fn fitting(ok: bool) -> Action {
    Action::Store {
        which: 0,
        answer: Answer::Fitting {
            ok,
            profile: ProfileChoice {
                method: MethodChoice::Totp,
                pin: false,
                oath: true,
                phone: PhoneChoice::Valid,
                language: LangChoice::De,
            },
        },
    }
}

fn callback(result: CallbackResult, pin: PinChoice, number: NumberChoice) -> Action {
    Action::Callback(Callback {
        which: 0,
        id: CallbackId::Delivery,
        result,
        pin,
        number,
        sig: SigChoice::Good,
        body: None,
    })
}

fn delivered() -> Action {
    Action::Delivery {
        which: 0,
        outcome: 1,
        bogus_id: false,
    }
}

fn code(c: CodeChoice, id: u8) -> Action {
    nas(
        User::Alice,
        Password::Code(c),
        StateChoice::Echo { which: 0 },
        id,
    )
}

/// Scenarios that retrace the engine's own tests.
pub fn engine_scenarios() -> Vec<(&'static str, Scenario)> {
    use Setup::*;
    let s = |setup, actions| Scenario { setup, actions };
    let pw = || nas(User::Alice, Password::Right, StateChoice::None, 1);
    vec![
        (
            "challenge-then-code",
            s(
                Upstream,
                vec![
                    pw(),
                    accept(),
                    ready(MethodChoice::Totp, false),
                    code(CodeChoice::Six, 2),
                    fitting(true),
                ],
            ),
        ),
        (
            "wrong-codes-then-reject",
            s(
                Upstream,
                vec![
                    pw(),
                    accept(),
                    ready(MethodChoice::Totp, false),
                    code(CodeChoice::Zeros, 2),
                    fitting(false),
                    code(CodeChoice::Six, 3),
                    fitting(false),
                    code(CodeChoice::Eight, 4),
                    fitting(false),
                    Action::Advance { ms: 1500 },
                ],
            ),
        ),
        (
            "inline-code",
            s(
                Upstream,
                vec![
                    nas(
                        User::Alice,
                        Password::Inline(CodeChoice::Six),
                        StateChoice::None,
                        1,
                    ),
                    accept(),
                    fitting(true),
                    fitting(true),
                ],
            ),
        ),
        (
            "challenge-timeout",
            s(
                Upstream,
                vec![
                    pw(),
                    accept(),
                    ready(MethodChoice::Totp, false),
                    Action::Advance { ms: 121 },
                    code(CodeChoice::Six, 2),
                ],
            ),
        ),
        (
            "upstream-reject-and-retransmit",
            s(
                Upstream,
                vec![
                    nas(User::Bob, Password::Wrong, StateChoice::None, 1),
                    Action::Retransmit { which: 0 },
                    Action::Upstream(UpstreamReply {
                        code: UpCode::Reject,
                        ..reply()
                    }),
                    Action::Retransmit { which: 0 },
                ],
            ),
        ),
        (
            "failover-and-status-server",
            s(
                Upstream,
                vec![
                    pw(),
                    Action::Advance { ms: 1000 },
                    Action::Advance { ms: 1000 },
                    Action::AdvanceToNext,
                    accept(),
                    Action::AdvanceToNext,
                ],
            ),
        ),
        (
            "local-password-then-code",
            s(
                LocalNumberMatching,
                vec![
                    pw(),
                    fitting(true),
                    ready(MethodChoice::Totp, false),
                    code(CodeChoice::Six, 2),
                    fitting(true),
                ],
            ),
        ),
        (
            "local-wrong-password",
            s(
                LocalNumberMatching,
                vec![
                    nas(User::Alice, Password::Wrong, StateChoice::None, 1),
                    fitting(true),
                ],
            ),
        ),
        (
            "push-approved",
            s(
                Upstream,
                vec![
                    Action::WallClock {
                        unix: 1_900_000_000,
                    },
                    pw(),
                    accept(),
                    ready(MethodChoice::Push, false),
                    delivered(),
                    callback(
                        CallbackResult::Approved,
                        PinChoice::None,
                        NumberChoice::None,
                    ),
                    pw(),
                    accept(),
                    ready(MethodChoice::Push, false),
                ],
            ),
        ),
        (
            "push-denied-fallback",
            s(
                Upstream,
                vec![
                    pw(),
                    accept(),
                    ready(MethodChoice::Push, false),
                    delivered(),
                    callback(CallbackResult::Denied, PinChoice::None, NumberChoice::None),
                    code(CodeChoice::Six, 2),
                    fitting(true),
                ],
            ),
        ),
        (
            "push-busy",
            s(
                Upstream,
                vec![
                    pw(),
                    accept(),
                    ready(MethodChoice::Push, false),
                    nas(User::AliceUpper, Password::Right, StateChoice::None, 9),
                    accept(),
                    ready(MethodChoice::Push, false),
                ],
            ),
        ),
        (
            "call-pin",
            s(
                Upstream,
                vec![
                    pw(),
                    accept(),
                    ready(MethodChoice::Call, true),
                    delivered(),
                    callback(
                        CallbackResult::Approved,
                        PinChoice::Right,
                        NumberChoice::None,
                    ),
                    fitting(true),
                ],
            ),
        ),
        (
            "call-fraud",
            s(
                Upstream,
                vec![
                    pw(),
                    accept(),
                    ready(MethodChoice::Call, false),
                    delivered(),
                    callback(
                        CallbackResult::Approved,
                        PinChoice::Fraud,
                        NumberChoice::None,
                    ),
                ],
            ),
        ),
        (
            "sms-code-and-pin",
            s(
                Upstream,
                vec![
                    pw(),
                    accept(),
                    ready(MethodChoice::Sms, true),
                    delivered(),
                    nas(
                        User::Alice,
                        Password::Sms {
                            which: 0,
                            pin: PinChoice::Right,
                            wrong: false,
                        },
                        StateChoice::Echo { which: 0 },
                        2,
                    ),
                    fitting(true),
                ],
            ),
        ),
        (
            "sms-wrong-code",
            s(
                Upstream,
                vec![
                    pw(),
                    accept(),
                    ready(MethodChoice::Sms, false),
                    delivered(),
                    nas(
                        User::Alice,
                        Password::Sms {
                            which: 0,
                            pin: PinChoice::None,
                            wrong: true,
                        },
                        StateChoice::Echo { which: 0 },
                        2,
                    ),
                    nas(
                        User::Alice,
                        Password::Sms {
                            which: 0,
                            pin: PinChoice::None,
                            wrong: false,
                        },
                        StateChoice::Echo { which: 1 },
                        3,
                    ),
                ],
            ),
        ),
        (
            "prompt-word-push",
            s(
                Upstream,
                vec![
                    pw(),
                    accept(),
                    ready(MethodChoice::Totp, false),
                    nas(
                        User::Alice,
                        Password::Word(MethodWord::Push),
                        StateChoice::Echo { which: 0 },
                        2,
                    ),
                    delivered(),
                    callback(
                        CallbackResult::NoResponse,
                        PinChoice::None,
                        NumberChoice::None,
                    ),
                ],
            ),
        ),
        (
            "number-matching",
            s(
                LocalNumberMatching,
                vec![
                    pw(),
                    fitting(true),
                    ready(MethodChoice::Push, false),
                    delivered(),
                    callback(
                        CallbackResult::Approved,
                        PinChoice::None,
                        NumberChoice::Shown,
                    ),
                    code(CodeChoice::Six, 2),
                ],
            ),
        ),
        (
            "delivery-failed-fail-open",
            s(
                LocalNumberMatching,
                vec![
                    Action::Nas(NasRequest {
                        from: Peer::OtherNas { port: 1 },
                        ..request(User::Bob)
                    }),
                    fitting(true),
                    ready(MethodChoice::Sms, false),
                    Action::Delivery {
                        which: 0,
                        outcome: 0,
                        bogus_id: false,
                    },
                ],
            ),
        ),
        (
            "plain-proxy-accounting",
            s(
                PlainProxy,
                vec![
                    Action::Nas(NasRequest {
                        kind: ReqKind::Accounting,
                        listener: 1,
                        ..request(User::Alice)
                    }),
                    accept(),
                    Action::Nas(NasRequest {
                        kind: ReqKind::Status,
                        ..request(User::Alice)
                    }),
                    pw(),
                    Action::Upstream(UpstreamReply {
                        code: UpCode::Challenge,
                        ..reply()
                    }),
                ],
            ),
        ),
    ]
}

fn request(user: User) -> NasRequest {
    let Action::Nas(r) = nas(user, Password::Right, StateChoice::None, 1) else {
        unreachable!()
    };
    r
}

fn reply() -> UpstreamReply {
    let Action::Upstream(r) = accept() else {
        unreachable!()
    };
    r
}

// ---- packets, after src/radius tests and tests/codec_props.rs ----------------

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The test vectors of `src/radius/{packet,builder,crypto}.rs` (RFC 2865
/// §7.1, RFC 5997) and packets built the way the engine tests build them,
/// signed with the packet target's secret.
pub fn packets() -> Vec<(&'static str, Vec<u8>)> {
    let secret = crate::packet::SECRET;
    let auth = [0x2a; 16];
    let mut v = vec![
        (
            "rfc2865-access-request",
            hex(
                "010000380f403f9473978057bd83d5cb98f4227a01066e656d6f02120dbe708d93d413ce3196e43f782a0aee0406c0a80110050600000003",
            ),
        ),
        (
            "rfc2865-access-accept",
            hex("0200002686fe220e7624ba2a1005f6bf9b55e0b20606000000010f06000000000e06c0a80103"),
        ),
        (
            "rfc5997-status-server",
            hex("0cda00268a54f4686fb394c52866e302185d062350125a665e2e1e8411f3e243822097c84fa3"),
        ),
        (
            "rfc5997-accept",
            hex("02da0014ef0d552a4bf2d693ec2b6fe8b5411d66"),
        ),
        (
            "rfc5997-acct-status-server",
            hex("0cb30026925f6b66dd5fed571fcb1db7ad3882605012e8d6eabda910875cd91fdade26367858"),
        ),
        (
            "rfc5997-acct-response",
            hex("05b300140f6f92145f107e2f504e860a4860669c"),
        ),
    ];
    // PAP with Proxy-State and Message-Authenticator (tests.rs `pap`).
    let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, 42, &auth);
    b.push_message_authenticator().expect("fits");
    b.push(attr::USER_NAME, b"alice").expect("fits");
    let h = crypto::hide_password(b"correct horse", secret, &auth).expect("hide");
    b.push(attr::USER_PASSWORD, &h).expect("fits");
    b.push(attr::PROXY_STATE, b"nas-ps").expect("fits");
    v.push(("pap-proxy-state", b.finish_request(secret)));
    // A challenge answer with a State, and EAP.
    let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, 2, &auth);
    b.push_message_authenticator().expect("fits");
    b.push(attr::USER_NAME, b"alice").expect("fits");
    let h = crypto::hide_password(b"123456", secret, &auth).expect("hide");
    b.push(attr::USER_PASSWORD, &h).expect("fits");
    b.push(attr::STATE, &[0xab; 20]).expect("fits");
    b.push(
        attr::EAP_MESSAGE,
        &[2, 1, 0, 10, 1, b'a', b'l', b'i', b'c', b'e'],
    )
    .expect("fits");
    v.push(("challenge-answer-eap", b.finish_request(secret)));
    // An accept with Tunnel-Password and MS-MPPE keys (tests.rs).
    let mut b = PacketBuilder::new(Code::ACCESS_ACCEPT, 42, &[0; 16]);
    b.push_message_authenticator().expect("fits");
    let mut tp = vec![1];
    tp.extend(crypto::salt_encrypt(b"vlan-pass", secret, &auth, [0x85, 1]).expect("enc"));
    b.push(attr::TUNNEL_PASSWORD, &tp).expect("fits");
    for t in [attr::MS_MPPE_SEND_KEY, attr::MS_MPPE_RECV_KEY] {
        let k = crypto::salt_encrypt(&[7; 32], secret, &auth, [0x81, t]).expect("enc");
        b.push_vsa(attr::VENDOR_MICROSOFT, t, &k).expect("fits");
    }
    v.push(("accept-tunnel-mppe", b.finish_response(secret, &auth)));
    // Accounting-Request (builder tests).
    let mut b = PacketBuilder::new(Code::ACCOUNTING_REQUEST, 7, &[0; 16]);
    b.push_message_authenticator().expect("fits");
    b.push(attr::USER_NAME, b"nemo").expect("fits");
    b.push(40, &1u32.to_be_bytes()).expect("fits");
    v.push(("accounting-request", b.finish_accounting_request(secret)));
    // A challenge as the engine sends it.
    let mut b = PacketBuilder::new(Code::ACCESS_CHALLENGE, 1, &[0; 16]);
    b.push_message_authenticator().expect("fits");
    b.push(attr::STATE, &[0x11; 20]).expect("fits");
    b.push(
        attr::REPLY_MESSAGE,
        b"Enter the code from your authenticator app",
    )
    .expect("fits");
    b.push(attr::PROXY_STATE, &[1]).expect("fits");
    v.push(("access-challenge", b.finish_response(secret, &auth)));
    v
}

// ---- dictionaries, besides the shipped files ---------------------------------

/// Small dictionaries for what the shipped files do not show: every flag,
/// old-style vendor fields, hexadecimal numbers, `$INCLUDE-` of a missing
/// file, and several files (parts split by `%%` lines) including each other.
pub fn dictionaries() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "flags-and-vendors",
            "# every keyword\nVENDOR Acme 0x1234\nATTRIBUTE Acme-Key 1 octets Acme\n\
             BEGIN-VENDOR Acme\nATTRIBUTE Acme-Secret 2 string encrypt=2,has_tag\n\
             ATTRIBUTE Acme-Pass 3 string encrypt=1\nATTRIBUTE Acme-Old 4 string encrypt=3\n\
             ATTRIBUTE Acme-Flags 5 integer array,concat,virtual,secret,long,internal\n\
             VALUE Acme-Flags On 1\nVALUE Acme-Flags Big 0xffffffffff\nEND-VENDOR Acme\n\
             $INCLUDE- dictionary.nonexistent\nATTRIBUTE Plain 0x10 ipv6prefix\n",
        ),
        (
            "includes-builtin",
            "$INCLUDE dictionary.rfc2865\n$INCLUDE dictionary.microsoft\nVALUE Service-Type Fuzz 99\n",
        ),
        (
            "multi-file",
            "ATTRIBUTE Top 200 string\n$INCLUDE dictionary.1\n%%\nVENDOR V 9\nBEGIN-VENDOR V\n\
             $INCLUDE- dictionary.2\nEND-VENDOR V\n%%\nATTRIBUTE Inner 1 date\nVALUE Top X 1\n",
        ),
        (
            "unclosed-vendor",
            "VENDOR V 9\nBEGIN-VENDOR V\nATTRIBUTE A 1 string\n",
        ),
    ]
}

// ---- inputs that found bugs -------------------------------------------------

/// Hand-minimised inputs of what the campaigns found, for
/// `fuzz/regressions/<target>/`.
pub fn engine_regressions() -> Vec<(&'static str, Scenario)> {
    vec![(
        // The NAS "other-nas" is challenged; the NAS "nas" presents that
        // State. The reject goes to "nas" signed with other-nas's secret.
        "cross-client-state-reject-signed-with-other-secret",
        Scenario {
            setup: Setup::Upstream,
            actions: vec![
                Action::Nas(NasRequest {
                    from: Peer::OtherNas { port: 0 },
                    ..request(User::Alice)
                }),
                accept(),
                ready(MethodChoice::Totp, false),
                code(CodeChoice::Six, 2),
                Action::Advance { ms: 2000 },
            ],
        },
    )]
}
