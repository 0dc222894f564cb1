//! Entry points for the fuzz targets in `fuzz/` and for the corpus replay test
//! (`core/tests/fuzz_corpus.rs`). Not an API: hidden from the docs, may change at any
//! time.
//!
//! Each function takes arbitrary bytes, feeds them to one parser (or to a
//! [`ClientSession`]) and checks a few cheap invariants. Bad input must come back as an
//! error, never as a panic; a panic here is a bug, either in the parser or in the
//! invariant the function states.
//!
//! Keys come from the repository's test vectors (`testdata/` beside this crate), read
//! and parsed once; this module is compiled only with the `fuzzing` feature, off by
//! default, which works from a checkout of the repository only. No RSA signing happens per input except what a [`ClientSession`] does by
//! itself (register and upgrade parameters, PRODUCEs), which `client_session` bounds.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::cert::{root_cert_sn, Certificate};
use crate::charset::Charset;
use crate::client::{
    ClientConfig, ClientSession, ConnId, Credentials, Delivery, DeliveryId, Event,
    Input as ClientInput, Outcome, Output, Transmit,
};
use crate::consume::{AckStatus, ConsumeAck, ConsumeFrame};
use crate::frame::{Command, Frame, FrameLimits};
use crate::http::{parse_response, HttpError, HttpResponse};
use crate::key::{PrivateKey, PublicKey};
use crate::notify;
use crate::produce::ProduceFrame;
use crate::produce_ack::ProduceAck;
use crate::register::{parse_register_answer, parse_register_body};
use crate::sign_content::Rule;
use crate::signature::{SignType, Verifier};
use crate::ws::handshake::ServerHandshake;
use crate::ws::{Role, WsConnection, WsEvent, WsLimits};

/// A file of the repository's `testdata/` (beside this crate's directory), as text.
///
/// # Panics
/// When the file cannot be read: the `fuzzing` feature needs a checkout of the
/// repository, not the published crate alone.
fn testdata(path: &str) -> String {
    let full = format!("{}/../testdata/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| {
        panic!("the fuzzing hooks read {full}: {e} (a repository checkout is needed)")
    })
}

/// The app id of the test vectors.
const APP_ID: &str = "2021000000000001";
/// The wall clock (ms) the vectors' frames were made at.
const UNIX0: i64 = 1_795_430_400_000;
/// `x-msgId` and `x-timestamp` of the signed CONSUME vector (both outside the signature).
const VECTOR_MSG_ID: &str = "\"x-msgId\":\"2026112310000000000001\"";
const VECTOR_TIMESTAMP: &str = ",\"x-timestamp\":\"1795430400000\"";

/// What every input shares, built once.
struct Fixture {
    /// Verifies with the platform public key.
    platform: Verifier,
    /// Client configuration: the app key, the platform key, default tunables.
    config: ClientConfig,
    /// A complete `register.do` answer signed with the platform key.
    register_answer: Vec<u8>,
    /// The signed CONSUME vector.
    consume: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // The embedded vectors are known-good; failing here is a broken checkout.
        let platform_key = PublicKey::from_pem_or_base64(&testdata("vectors/keys/alipay_public.pem")).expect("vector key");
        let platform = Verifier::new(&platform_key).expect("vector key");
        let credentials = Credentials::public_key(&testdata("vectors/keys/app_private_pkcs1.pem"), &testdata("vectors/keys/alipay_public.pem")).expect("vector keys");
        let config = ClientConfig::new(APP_ID, credentials);
        let vectors: serde_json::Value = serde_json::from_str(&testdata("vectors/frame_vectors.json")).expect("vector JSON");
        let body = vectors["register_response"]["body"]
            .as_str()
            .expect("register_response.body");
        let register_answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=UTF-8\r\nSet-Cookie: zone=GZ00B; Path=/; HttpOnly\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        let consume = vectors["consume"]["frame"]
            .as_str()
            .expect("consume.frame")
            .to_owned();
        assert!(consume.contains(VECTOR_MSG_ID) && consume.contains(VECTOR_TIMESTAMP));
        Fixture {
            platform,
            config,
            register_answer,
            consume,
        }
    })
}

/// Reads fuzz input front to back; past the end every read gives zero / nothing.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.data.split_first()?;
        self.data = rest;
        Some(first)
    }

    fn byte_or_zero(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte_or_zero(), self.byte_or_zero()])
    }

    /// A length byte, then that many bytes.
    fn chunk(&mut self) -> &'a [u8] {
        let len = usize::from(self.byte_or_zero()).min(self.data.len());
        let (chunk, rest) = self.data.split_at(len);
        self.data = rest;
        chunk
    }
}

/// Small tight limits, to reach every limit check with short inputs.
const TIGHT: FrameLimits = FrameLimits {
    max_frame_bytes: 4096,
    max_header_lines: 3,
    max_header_line_bytes: 64,
    max_json_depth: 4,
};

/// A websocket frame (header lines, blank line, message JSON), as text.
///
/// Invariants: what parses under tight limits parses the same under the default ones;
/// a CONSUME's business content is a slice of its signed `data` text; a CONSUME_ACK and
/// a PRODUCE_ACK re-encode to text that parses back equal.
pub fn frame(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    frame_text(&text);
}

fn frame_text(text: &str) {
    let limits = FrameLimits::default();
    let parsed = Frame::parse(text, &limits);
    if let Ok(tight) = Frame::parse(text, &TIGHT) {
        assert_eq!(
            parsed.as_ref().ok(),
            Some(&tight),
            "a frame within the tight limits must parse the same under the default ones"
        );
    }
    let Ok(frame) = parsed else { return };
    match frame.command {
        Command::Consume => {
            if let Ok(consume) = ConsumeFrame::from_frame(frame.clone()) {
                let data_text = frame.data.as_ref().map_or("", |d| d.text);
                assert_eq!(consume.signed_content(), data_text);
                let biz = consume.biz_content();
                assert!(biz == "{}" || data_text.contains(biz));
                let _ = consume.verify(&fixture().platform);
                let _ = consume.ack(AckStatus::Fail).encode();
            }
        }
        Command::ConsumeAck => {
            if let Ok(ack) = ConsumeAck::from_frame(frame) {
                let again = ConsumeAck::parse(&ack.encode(), &limits);
                assert_eq!(again.as_ref(), Ok(&ack), "CONSUME_ACK round trip");
            }
        }
        Command::ProduceAck => {
            if let Ok(ack) = ProduceAck::from_frame(frame) {
                let again = ProduceAck::parse(&ack.encode(), &limits);
                assert_eq!(again.as_ref(), Ok(&ack), "PRODUCE_ACK round trip");
                let _ = (ack.result().advice(), ack.is_success(), ack.is_retryable());
                let _ = ack.to_string();
            }
        }
        Command::Produce => {
            if let Ok(produce) = ProduceFrame::from_frame(frame) {
                let _ = produce.verify(&fixture().platform);
            }
        }
    }
}

/// The message JSON alone (the frame body after an empty header block), plus the
/// byte-level scans that must agree with the JSON parser: the signed `data` span and
/// the nesting check.
pub fn message_json(data: &[u8]) {
    let body = String::from_utf8_lossy(data);
    let _ = crate::frame::json_scan::data_span(&body);
    let deep = crate::frame::json_scan::nesting_exceeds(&body, 64);
    let text = format!("\r\n\r\n{body}");
    let parsed = Frame::parse(&text, &FrameLimits::default());
    assert_eq!(
        parsed,
        Frame::parse_two_pass(&text, &FrameLimits::default()),
        "one-pass and two-pass readings differ"
    );
    if let Ok(frame) = parsed {
        assert!(!deep, "a frame nesting past the limit parsed");
        if let Some(d) = &frame.data {
            let span = crate::frame::json_scan::data_span(&body).expect("data span");
            assert_eq!(
                &body[span], d.text,
                "signed span differs from the parsed data"
            );
        }
    }
    frame_text(&text);
}

/// A `register.do` answer: the body alone, and the body inside an HTTP response whose
/// status, charset and expected platform certificate SN come from the first byte.
pub fn register_answer(data: &[u8]) {
    let fixture = fixture();
    let mut input = Input { data };
    let flags = input.byte_or_zero();
    let body_bytes = input.data;
    let charset = if flags & 1 == 0 {
        Charset::Utf8
    } else {
        Charset::Gbk
    };
    let sign_type = if flags & 2 == 0 {
        SignType::Rsa2
    } else {
        SignType::Rsa
    };
    let expected_sn = (flags & 4 != 0).then_some("0123456789abcdef0123456789abcdef");
    let body = charset.decode(body_bytes);
    let direct = parse_register_body(&body, charset, &fixture.platform, sign_type, expected_sn);
    let status = [200, 200, 404, 500, 503, 301, 204, 429][usize::from(flags >> 5)];
    let response = HttpResponse {
        status,
        headers: vec![
            ("Set-Cookie".to_owned(), "zone=GZ00B; Path=/".to_owned()),
            ("set-cookie".to_owned(), "other=1".to_owned()),
        ],
        body: body_bytes.to_vec(),
    };
    let answer = parse_register_answer(
        &response,
        charset,
        &fixture.platform,
        sign_type,
        expected_sn,
    );
    if let Err(e) = &answer {
        let _ = (e.is_retryable(), e.to_string());
    }
    if status == 200 {
        assert_eq!(
            answer.map(|a| a.link_token),
            direct,
            "a 200 answer is its body's verdict"
        );
    }
}

/// An HTTP/1.1 response, as `register.do` bytes arrive. The first byte picks the size
/// limit.
///
/// Invariants: with `eof` the answer is never "need more"; an answer complete from a
/// prefix of the bytes is still complete, with the same status, headers and body, once
/// the rest arrives.
pub fn http_response(data: &[u8]) {
    let mut input = Input { data };
    let max = match input.byte_or_zero() % 4 {
        0 => crate::http::DEFAULT_MAX_RESPONSE_BYTES,
        1 => 256,
        2 => 64,
        _ => 16,
    };
    let buf = input.data;
    let full = parse_response(buf, false, max);
    let at_eof = parse_response(buf, true, max);
    assert!(
        !matches!(at_eof, Ok(None)),
        "at end of stream the answer is complete or an error"
    );
    if let Ok(Some(r)) = &at_eof {
        let _ = r.header_values("set-cookie").count();
    }
    if matches!(full, Err(HttpError::TooLarge { .. })) {
        return;
    }
    let len = buf.len();
    let cuts = (0..=16).map(|i| len * i / 16);
    for cut in cuts {
        let Ok(Some(early)) = parse_response(&buf[..cut], false, max) else {
            continue;
        };
        let Ok(Some(late)) = &full else {
            panic!("complete after {cut} of {len} bytes, but {full:?} with all of them");
        };
        assert_eq!((early.status, &early.headers), (late.status, &late.headers));
        // Found by this target: 204/304 answers used to take every later byte as
        // their body (regress-204-* in the corpus).
        assert_eq!(early.body, late.body, "body changed after it was complete");
    }
}

/// An HTTP notification body (`application/x-www-form-urlencoded`): decoded, its sign
/// content built both ways, and verified with the platform key.
pub fn notify_body(data: &[u8]) {
    let platform = &fixture().platform;
    let parsed = notify::parse_form(data);
    if let Ok(form) = &parsed {
        let _ = (form.charset(), form.charset_declared(), form.len());
        let _ = form.sign_content(Rule::V1);
        let _ = form.sign_content(Rule::V2);
        for (k, _) in form.iter() {
            assert!(form.contains_key(k));
        }
    }
    for rule in [Rule::V1, Rule::V2] {
        match notify::verify(data, platform, rule) {
            Ok(n) => {
                assert!(parsed.is_ok(), "verified a body that does not decode");
                let _ = (n.notify_id(), n.app_id(), n.params().len());
            }
            Err(e) => {
                let _ = (e.is_signature_failure(), e.is_malformed(), e.to_string());
            }
        }
    }
}

/// The endpoint decision ([`notify::NotifyGate`]) on a raw request. The first byte
/// picks: bits 0-1 the content type (form, form with a charset parameter, absent,
/// `text/plain`), bit 2 the rule (V2 when set), bit 3 our app id (the gateway vector's
/// when set), bit 4 the handler's outcome, bit 5 a freshness window of one hour (wall
/// clock at the trade vectors' `notify_time`), bit 6 a 512-byte body limit. The rest
/// is the body.
///
/// Invariants: a body is handled only if it verifies under the gate's rule and limits
/// and is for our app; a refusal for a bad signature is one [`notify::verify_with`]
/// also calls a signature failure; after completion the same body is a duplicate
/// (handler succeeded) or handled again (handler failed), and a second decision while
/// the claim is held is refused as in progress.
pub fn notify_endpoint(data: &[u8]) {
    use crate::notify::{FormLimits, NotifyGate, RefuseReason, Verdict};
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let content_type = match flags & 3 {
        0 => Some(notify::FORM_CONTENT_TYPE),
        1 => Some("Application/x-www-form-urlencoded; charset=GBK"),
        2 => None,
        _ => Some("text/plain"),
    };
    let rule = if flags & 4 != 0 { Rule::V2 } else { Rule::V1 };
    let app_id = if flags & 8 != 0 {
        "2013121700999429"
    } else {
        APP_ID
    };
    let handled_ok = flags & 16 != 0;
    let limits = if flags & 64 != 0 {
        FormLimits::DEFAULT.with_max_body_len(512)
    } else {
        FormLimits::DEFAULT
    };
    // 2026-11-20 10:21:35 UTC+8, the trade vectors' notify_time.
    let unix_ms = 1_795_141_295_000;
    let platform = &fixture().platform;
    let mut gate = NotifyGate::new(platform_verifier(), app_id)
        .with_rule(rule)
        .with_limits(limits);
    if flags & 32 != 0 {
        gate = gate.with_freshness(Duration::from_secs(3600));
    }
    let now = Instant::now();
    match gate.decide(content_type, body, now, unix_ms) {
        Verdict::Handle {
            notification,
            claim,
        } => {
            let verified = notify::verify_with(body, platform, rule, &limits)
                .expect("handled a body that does not verify");
            assert_eq!(verified, notification);
            assert_eq!(notification.app_id(), Some(app_id));
            assert_eq!(notification.notify_id(), Some(claim.notify_id()));
            assert!(content_type.is_some_and(notify::is_form_content_type));
            match gate.decide(content_type, body, now, unix_ms) {
                Verdict::Refuse(RefuseReason::InProgress { .. }) => {}
                other => panic!("second decision while handling: {other:?}"),
            }
            let answer = gate.complete(claim, handled_ok, now);
            assert_eq!(answer.is_success(), handled_ok);
            match gate.decide(content_type, body, now, unix_ms) {
                Verdict::Duplicate { .. } => assert!(handled_ok),
                Verdict::Handle { .. } => assert!(!handled_ok),
                other => panic!("decision after completion: {other:?}"),
            }
        }
        Verdict::Duplicate { .. } => panic!("a fresh gate answered a duplicate"),
        Verdict::Refuse(reason) => {
            let _ = (reason.to_string(), reason.is_signature_failure());
            if reason.is_signature_failure() {
                let e = notify::verify_with(body, platform, rule, &limits)
                    .expect_err("refused for its signature a body that verifies");
                assert!(e.is_signature_failure(), "{e}");
            }
        }
    }
}

/// A new verifier for the platform key (a gate owns its verifier).
fn platform_verifier() -> Verifier {
    static KEY: OnceLock<PublicKey> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        PublicKey::from_pem_or_base64(&testdata("vectors/keys/alipay_public.pem"))
            .expect("vector key")
    });
    // The vector key loaded once already; a verifier for it cannot fail.
    Verifier::new(key).expect("vector key")
}

/// Key text and DER: every loader, private and public. A private key that loads has a
/// public half that loads again from its PKCS#1 DER.
pub fn keys(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(key) = PrivateKey::from_pem_or_base64(&text) {
        private_key_checks(&key);
    }
    if let Ok(key) = PrivateKey::from_der(data) {
        private_key_checks(&key);
    }
    for key in [
        PublicKey::from_pem_or_base64(&text),
        PublicKey::from_der(data),
    ]
    .into_iter()
    .flatten()
    {
        let _ = (key.modulus_bits(), key.warnings(), format!("{key:?}"));
        let again = PublicKey::from_pkcs1_der(key.pkcs1_der()).expect("own PKCS#1 DER");
        assert_eq!(again.pkcs1_der(), key.pkcs1_der());
    }
}

fn private_key_checks(key: &PrivateKey) {
    let _ = (key.modulus_bits(), key.warnings(), format!("{key:?}"));
    let public = key.public_key();
    let again = PublicKey::from_pkcs1_der(public.pkcs1_der()).expect("own PKCS#1 DER");
    assert_eq!(again.pkcs1_der(), public.pkcs1_der());
}

/// A certificate: DER (and PEM when the bytes look like PEM). A certificate that loads
/// has a 32-hex-digit SN, reloads equal from its own DER, and alone is a root bundle
/// whose SN is its own when RSA-signed.
pub fn cert_der(data: &[u8]) {
    if let Ok(cert) = Certificate::from_der(data) {
        cert_checks(&cert);
    }
    if data.windows(10).any(|w| w == b"-----BEGIN") {
        let text = String::from_utf8_lossy(data);
        if let Ok(certs) = Certificate::all_from_pem(&text) {
            certs.iter().for_each(cert_checks);
            let _ = root_cert_sn(&certs);
        }
    }
}

fn cert_checks(cert: &Certificate) {
    let sn = cert.sn();
    assert!(sn.len() == 32 && sn.bytes().all(|b| b.is_ascii_hexdigit()));
    let _ = (
        cert.issuer_name(),
        cert.subject_name(),
        cert.serial_decimal(),
    );
    let _ = (cert.not_before(), cert.not_after(), cert.check_validity(0));
    let _ = (cert.signature_algorithm_oid(), format!("{cert:?}"));
    let _ = cert.public_key();
    assert_eq!(Certificate::from_der(cert.der()).as_ref(), Ok(cert));
    let root = root_cert_sn(std::slice::from_ref(cert));
    if cert.is_rsa_signed() {
        assert_eq!(root, Ok(sn));
    } else {
        assert!(root.is_err());
    }
}

/// Most operations read from one input.
const MAX_OPS: usize = 64;
/// Most connection attempts per input (each signs register and upgrade parameters).
const MAX_ATTEMPTS: u32 = 4;
/// Most PRODUCEs per input (each is signed).
const MAX_SENDS: u32 = 4;
/// `poll_output` must reach `Timeout` or `Done` within this many outputs.
const MAX_OUTPUTS: usize = 10_000;

/// The driver of `client_session`: the session, simulated time, and the network and
/// platform side of its connections as an adapter and the platform would see them.
struct Driver {
    session: ClientSession,
    now: Instant,
    deadline: Option<Instant>,
    done: bool,
    /// The connection carrying `register.do`, once its request was written.
    registering: Option<ConnId>,
    /// The connection carrying the upgrade, and the `101` answer to its request.
    upgrading: Option<(ConnId, Vec<u8>)>,
    /// The open websocket, and the platform's end of it (reads the client's frames).
    open: Option<(ConnId, WsConnection)>,
    attempts: u32,
    sends: u32,
    /// Deliveries the "handler" holds, not yet completed.
    held: Vec<Delivery>,
    /// Message ids completed with `Success`.
    succeeded: HashSet<String>,
    /// Stream ids of PRODUCEs sent.
    streams: Vec<String>,
}

impl Driver {
    /// Polls until `Timeout` or `Done`, checking every output.
    fn drain(&mut self) {
        for _ in 0..MAX_OUTPUTS {
            match self.session.poll_output() {
                Output::Timeout(at) => {
                    self.deadline = Some(at);
                    return;
                }
                Output::Done => {
                    self.done = true;
                    return;
                }
                Output::Transmit(t) => self.on_transmit(t),
                Output::Event(e) => self.on_event(e),
                Output::Check(job) => {
                    let checked = self.session.frame_checker().run(job);
                    self.session
                        .handle_input(ClientInput::Checked(checked), self.now);
                }
                // Without `shared_window` the session never asks (the invariant).
                Output::Window(query) => panic!("a shared-window query without one: {query:?}"),
            }
        }
        panic!("poll_output gave {MAX_OUTPUTS} outputs without a Timeout");
    }

    fn on_transmit(&mut self, t: Transmit) {
        match t {
            Transmit::Connect { conn, .. } => {
                self.session
                    .handle_input(ClientInput::Connected(conn), self.now);
            }
            Transmit::Write { conn, bytes } => {
                if bytes.starts_with(b"GET /websocket/register.do?") {
                    self.registering = Some(conn);
                    self.attempts += 1;
                } else if bytes.starts_with(b"GET /websocket?") {
                    let mut server = ServerHandshake::new();
                    let upgrade = server
                        .read(&bytes)
                        .unwrap_or_else(|e| panic!("the client wrote a bad upgrade: {e}"))
                        .expect("the whole request in one write");
                    self.upgrading = Some((conn, upgrade.accept_answer()));
                } else if let Some((open, ws)) = &mut self.open {
                    assert_eq!(*open, conn, "frames go to the open websocket");
                    let mut rest = &bytes[..];
                    let mut texts = Vec::new();
                    while !rest.is_empty() {
                        let (used, event) = ws
                            .read(rest)
                            .unwrap_or_else(|e| panic!("the client wrote a bad frame: {e}"));
                        rest = &rest[used..];
                        if let Some(WsEvent::Text(payload)) = event {
                            texts.push(payload);
                        }
                    }
                    for payload in texts {
                        self.on_client_text(&payload);
                    }
                } else {
                    panic!("write on no known connection");
                }
            }
            Transmit::Close { conn } => {
                if self.registering == Some(conn) {
                    self.registering = None;
                }
                if self.upgrading.as_ref().is_some_and(|(c, _)| *c == conn) {
                    self.upgrading = None;
                }
                if self.open.as_ref().is_some_and(|(c, _)| *c == conn) {
                    self.open = None;
                }
            }
        }
    }

    fn on_client_text(&mut self, payload: &[u8]) {
        let text = std::str::from_utf8(payload).expect("a UTF-8 app writes UTF-8");
        let frame = Frame::parse(text, &FrameLimits::default())
            .unwrap_or_else(|e| panic!("the client wrote a frame it cannot read: {e}"));
        if frame.command == Command::ConsumeAck {
            let ack = ConsumeAck::from_frame(frame).expect("a well-formed CONSUME_ACK");
            if ack.status == AckStatus::Success {
                assert!(
                    self.succeeded.contains(&ack.msg_id),
                    "SUCCESS ack for {:?} before its handler succeeded",
                    ack.msg_id
                );
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Message(delivery) => {
                assert!(
                    self.held.iter().all(|d| d.msg_id() != delivery.msg_id()),
                    "message {:?} delivered while a delivery of it is in flight",
                    delivery.msg_id()
                );
                self.held.push(delivery);
            }
            Event::Duplicate {
                msg_id,
                in_flight: false,
            } => {
                assert!(
                    self.succeeded.contains(&msg_id),
                    "duplicate of {msg_id:?}, which never succeeded"
                );
            }
            _ => {}
        }
    }

    /// Answers `register.do` and the upgrade, when an attempt is under way.
    fn answer_attempt(&mut self, answer: &[u8], split: usize) {
        if let Some(conn) = self.registering {
            let (a, b) = answer.split_at(split.min(answer.len()));
            self.bytes(conn, a);
            self.bytes(conn, b);
            self.session
                .handle_input(ClientInput::Closed { conn, error: None }, self.now);
            self.drain();
        }
        if let Some((conn, answer)) = self.upgrading.take() {
            self.open = Some((conn, WsConnection::new(Role::Server, WsLimits::default())));
            self.bytes(conn, &answer);
        }
    }

    /// Bytes arriving on `conn`.
    fn bytes(&mut self, conn: ConnId, bytes: &[u8]) {
        self.session
            .handle_input(ClientInput::Bytes { conn, bytes }, self.now);
        self.drain();
    }

    /// A server frame on the open websocket (none: nothing happens).
    fn server_frame(&mut self, frame: impl FnOnce(&mut WsConnection) -> Option<Vec<u8>>) {
        if let Some((conn, ws)) = &mut self.open {
            let conn = *conn;
            if let Some(bytes) = frame(ws) {
                self.bytes(conn, &bytes);
            }
        }
    }

    fn consume_text(&self, consume: &str, input: &mut Input<'_>) -> String {
        let id = input.byte_or_zero();
        let ts = input.byte_or_zero();
        let msg_id = format!("\"x-msgId\":\"m{}\"", id % 16);
        let timestamp = match ts % 4 {
            0 => VECTOR_TIMESTAMP.to_owned(),
            1 => String::new(),
            2 => ",\"x-timestamp\":\"1695430400000\"".to_owned(),
            _ => ",\"x-timestamp\":\"1895430400000\"".to_owned(),
        };
        let text =
            consume
                .replacen(VECTOR_MSG_ID, &msg_id, 1)
                .replacen(VECTOR_TIMESTAMP, &timestamp, 1);
        if ts & 4 != 0 {
            // Different header lines: the ack must carry them back.
            text.replacen("stream-id:s0Zx9Q2k0001", &format!("stream-id:x{id}"), 1)
        } else {
            text
        }
    }
}

/// A [`ClientSession`] brought to the open state over bytes (register answer signed
/// with the platform key, websocket upgrade answered), then driven by the bytes: a seed
/// and a check-offload setting, then operations — signed or fuzzed text frames from the
/// server, raw websocket bytes, PRODUCE_ACKs, completions, sends, pongs, end of
/// stream, time passing, shutdown, and new attempts answered or fed arbitrary bytes.
///
/// Invariants: `poll_output` always reaches `Timeout` or `Done`; every frame the client
/// writes is a valid masked websocket frame whose text parses; no SUCCESS ack for a
/// message before its handler succeeded; no message delivered twice at once; a held
/// delivery can always be completed, an unknown one never.
pub fn client_session(data: &[u8]) {
    let fixture = fixture();
    let mut input = Input { data };
    let mut seed = [0x9e; 32];
    seed[0] = input.byte_or_zero();
    let offload = usize::from(input.byte_or_zero() % 4);
    let t0 = Instant::now();
    let mut session = match ClientSession::new(fixture.config.clone(), seed, t0, UNIX0) {
        Ok(session) => session,
        Err(e) => panic!("the vector configuration is valid: {e}"),
    };
    session.set_check_offload(offload);
    let mut d = Driver {
        session,
        now: t0,
        deadline: None,
        done: false,
        registering: None,
        upgrading: None,
        open: None,
        attempts: 0,
        sends: 0,
        held: Vec::new(),
        succeeded: HashSet::new(),
        streams: Vec::new(),
    };
    d.drain();
    d.answer_attempt(&fixture.register_answer, fixture.register_answer.len() / 2);
    assert!(
        d.session.is_connected(),
        "the vector register answer connects"
    );

    for _ in 0..MAX_OPS {
        if d.done || d.attempts > MAX_ATTEMPTS {
            break;
        }
        let Some(op) = input.byte() else { break };
        match op % 13 {
            0 => {
                let text = d.consume_text(&fixture.consume, &mut input);
                d.server_frame(|ws| ws.encode_text(text.as_bytes(), [0; 4]).ok());
            }
            1 => {
                let payload = input.chunk();
                d.server_frame(|ws| ws.encode_text(payload, [0; 4]).ok());
            }
            2 => {
                let pick = input.byte_or_zero();
                let stream_id = match d.streams.get(usize::from(pick) % (d.streams.len() + 1)) {
                    Some(s) => s.clone(),
                    None => format!("unknown{pick}"),
                };
                let (status, code) = [
                    ("SUCCESS", "10000"),
                    ("FAIL", "20000"),
                    ("FAIL", "30000"),
                    ("SUCCESS", ""),
                ][usize::from(pick >> 6)];
                let text = format!(
                    "stream-id:{stream_id}\r\n\r\n{{\"protocol\":{{\"x-type\":\"message\",\"x-cmd\":\"PRODUCE_ACK\",\"x-msgId\":\"p{pick}\",\"x-status\":\"{status}\",\"x-code\":\"{code}\"}}}}"
                );
                d.server_frame(|ws| ws.encode_text(text.as_bytes(), [0; 4]).ok());
            }
            3 => {
                let pick = input.byte_or_zero();
                if !d.held.is_empty() {
                    let delivery = d.held.remove(usize::from(pick) % d.held.len());
                    let outcome = if pick & 1 == 0 {
                        d.succeeded.insert(delivery.msg_id().to_owned());
                        Outcome::Success
                    } else {
                        Outcome::Failure("handler failed".to_owned())
                    };
                    d.session
                        .complete(delivery.id, outcome, d.now)
                        .expect("a held delivery is known");
                }
            }
            4 => {
                let id = DeliveryId(1_000_000 + u64::from(input.byte_or_zero()));
                assert!(d.session.complete(id, Outcome::Success, d.now).is_err());
            }
            5 => {
                let chunk = input.chunk();
                if d.sends < MAX_SENDS && d.session.is_connected() {
                    d.sends += 1;
                    let biz = if chunk.first().is_some_and(|b| b & 1 == 0) {
                        format!("{{\"k\":{}}}", chunk.len())
                    } else {
                        String::from_utf8_lossy(chunk).into_owned()
                    };
                    if let Ok(stream_id) = d.session.send("alipay.fuzz.message.send", &biz, d.now) {
                        d.streams.push(stream_id);
                    }
                } else {
                    let _ = d.session.send("alipay.fuzz.message.send", "{}", d.now);
                }
            }
            6 => {
                d.now += Duration::from_millis(u64::from(input.u16()) * 10);
                d.session.handle_timeout(d.now);
            }
            7 => {
                if let Some(at) = d.deadline {
                    d.now = d.now.max(at);
                }
                d.session.handle_timeout(d.now);
            }
            8 => {
                let payload = input.chunk();
                d.server_frame(|ws| {
                    // A pong from the server: a ping from the client answered.
                    let mut client = WsConnection::new(Role::Client, WsLimits::default());
                    let ping = client
                        .ping(&payload[..payload.len().min(125)], [1; 4])
                        .ok()?;
                    ws.read(&ping).ok()?;
                    ws.poll_transmit([0; 4])
                });
            }
            9 => {
                let error =
                    (input.byte_or_zero() & 1 == 1).then_some(std::io::ErrorKind::ConnectionReset);
                if let Some((conn, _)) = d.open.take() {
                    d.session
                        .handle_input(ClientInput::Closed { conn, error }, d.now);
                }
            }
            10 => d.session.shutdown(d.now),
            11 => {
                // Raw bytes on the open websocket: frames of any shape.
                let raw = input.chunk();
                if let Some((conn, _)) = &d.open {
                    let conn = *conn;
                    d.bytes(conn, raw);
                }
            }
            _ => {
                let how = input.byte_or_zero();
                match how % 4 {
                    0 | 1 => d.answer_attempt(&fixture.register_answer, usize::from(how)),
                    2 => {
                        let chunk = input.chunk();
                        let target = d.registering.or(d.upgrading.as_ref().map(|(c, _)| *c));
                        if let Some(conn) = target {
                            d.bytes(conn, chunk);
                            if how & 4 != 0 {
                                d.session
                                    .handle_input(ClientInput::Closed { conn, error: None }, d.now);
                            }
                        }
                    }
                    _ => {
                        for conn in [d.registering, d.upgrading.as_ref().map(|(c, _)| *c)]
                            .into_iter()
                            .flatten()
                        {
                            let error = std::io::ErrorKind::ConnectionRefused;
                            d.session.handle_input(
                                ClientInput::ConnectFailed {
                                    conn,
                                    error: error.into(),
                                },
                                d.now,
                            );
                        }
                    }
                }
            }
        }
        d.drain();
        assert_eq!(d.session.in_flight(), d.held.len(), "in-flight count");
    }
}

/// Websocket bytes as a client reads them (server frames), after the upgrade. See
/// `ws_read`.
pub fn ws_client_frames(data: &[u8]) {
    ws_read(crate::ws::Role::Client, data);
}

/// Websocket bytes as a server reads them (masked client frames), after the upgrade.
/// See `ws_read`.
pub fn ws_server_frames(data: &[u8]) {
    ws_read(crate::ws::Role::Server, data);
}

/// What one read of `ws_read` saw: the events, then the error that ended it, if any.
type WsTrace = (
    Vec<crate::ws::WsEvent>,
    Option<crate::ws::ProtocolViolation>,
);

/// Feeds everything after the first byte to a [`crate::ws::WsConnection`] of `role`;
/// the first byte picks the message limit (16, 125, 4096 or 1 MiB bytes) and a chunk
/// size (1 to 64 bytes).
///
/// Invariants: reading in chunks gives the same events and the same error as reading
/// at once; no message exceeds the limit and no pong 125 bytes; a read without an event
/// consumes all its input; an error is sticky; every frame the connection writes by
/// itself (pong, close) reads cleanly on the other side.
fn ws_read(role: crate::ws::Role, data: &[u8]) {
    use crate::ws::{Role, WsConnection, WsEvent, WsLimits};

    let mut input = Input { data };
    let how = input.byte_or_zero();
    let limits = WsLimits {
        max_message_bytes: [16, 125, 4096, 1 << 20][usize::from(how & 3)],
    };
    let chunk = 1 + usize::from(how >> 2);
    let bytes = input.data;

    let run = |pieces: &mut dyn Iterator<Item = &[u8]>| -> (WsTrace, WsConnection) {
        let mut ws = WsConnection::new(role, limits);
        let mut events = Vec::new();
        for mut piece in pieces {
            loop {
                match ws.read(piece) {
                    Ok((used, event)) => {
                        assert!(used <= piece.len());
                        piece = &piece[used..];
                        match event {
                            Some(event) => events.push(event),
                            None => {
                                assert!(piece.is_empty(), "no event, yet input left");
                                break;
                            }
                        }
                    }
                    Err(e) => {
                        assert_eq!(ws.read(b"x"), Err(e.clone()), "errors are sticky");
                        return ((events, Some(e)), ws);
                    }
                }
            }
        }
        ((events, None), ws)
    };
    let (whole, mut ws) = run(&mut std::iter::once(bytes));
    let (chunked, _) = run(&mut bytes.chunks(chunk));
    assert_eq!(whole, chunked, "chunked reading changed the outcome");

    for event in &whole.0 {
        match event {
            WsEvent::Text(b) | WsEvent::Binary(b) => assert!(b.len() <= limits.max_message_bytes),
            WsEvent::Pong(b) => assert!(b.len() <= 125),
            _ => {}
        }
    }
    let peer_role = match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    let mut peer = WsConnection::new(peer_role, WsLimits::default());
    while let Some(frame) = ws.poll_transmit([how, 1, 2, 3]) {
        let (used, event) = peer.read(&frame).expect("our own frame reads cleanly");
        assert_eq!(used, frame.len());
        assert!(matches!(
            event,
            Some(WsEvent::Pong(_) | WsEvent::Closed { .. })
        ));
    }
}

/// A server's answer to the websocket upgrade, read by a
/// [`crate::ws::handshake::ClientHandshake`] keyed with the RFC 6455 sample nonce (so a
/// `101` with `Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=` succeeds). The first
/// byte picks where the rest is split in two reads.
///
/// Invariants: the split does not change the outcome; a completed handshake consumed no
/// more than the read it completed in, and the same bytes of the whole input either way.
pub fn ws_upgrade_answer(data: &[u8]) {
    use crate::ws::handshake::ClientHandshake;

    let mut input = Input { data };
    let cut = usize::from(input.byte_or_zero());
    let bytes = input.data;
    let cut = cut.min(bytes.len());
    let start = || {
        ClientHandshake::start(
            "h:1",
            "/websocket?a=b",
            &[("cookie", "zone=Z;")],
            *b"the sample nonce",
        )
        .map(|(handshake, _)| handshake)
        .expect("a valid request")
    };
    // The outcome and the number of bytes of the whole input the head took.
    let whole = start()
        .read(bytes)
        .map(|done| done.map(|u| (u.consumed, u.headers)));
    let mut split = start();
    let (first, second) = bytes.split_at(cut);
    let in_two = match split.read(first) {
        Ok(None) => split.read(second).map(|done| {
            done.map(|u| {
                assert!(u.consumed <= second.len());
                (cut + u.consumed, u.headers)
            })
        }),
        Ok(Some(u)) => {
            assert!(u.consumed <= first.len());
            Ok(Some((u.consumed, u.headers)))
        }
        Err(e) => Err(e),
    };
    if let (Ok(None), Ok(None)) = (&whole, &in_two) {
        return;
    }
    assert_eq!(whole, in_two, "the split changed the outcome");
    if whole.is_err() {
        // Sticky.
        assert_eq!(split.read(b"\r\n\r\n").err(), whole.err());
    }
}

/// What `server_session` starts from, built once: the platform and app keys, and the
/// requests that open a websocket on a fresh session (its link token is deterministic:
/// the session's random source has a fixed seed).
struct ServerFixture {
    platform_key: PrivateKey,
    app_key: PublicKey,
    /// A signed `register.do` request of the app, at [`UNIX0`].
    register: Vec<u8>,
    /// The signed upgrade request with the token the first register answer carries.
    upgrade: Vec<u8>,
}

/// The seed of the session's link tokens.
const SERVER_SEED: u64 = 7;

fn new_server(fixture: &ServerFixture, t0: Instant) -> crate::server::ServerSession {
    use crate::server::{AppRegistration, ServerConfig, ServerSession};
    use rand_core::SeedableRng;

    // The embedded vectors are known-good; failing here is a broken checkout.
    let mut config = ServerConfig::from_platform_key(&fixture.platform_key)
        .expect("vector key")
        .with_app(
            APP_ID,
            AppRegistration::new(Verifier::new(&fixture.app_key).expect("vector key")),
        );
    config.limits = TIGHT;
    config.max_links = 4;
    let rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(SERVER_SEED);
    ServerSession::new(config, Box::new(rng), t0, UNIX0)
}

fn server_fixture() -> &'static ServerFixture {
    use crate::register::{RegisterParams, UpgradeParams};
    use crate::server::{ServerInput, ServerOutput, REGISTER_PATH, WEBSOCKET_PATH};
    use crate::signature::Signer;

    static FIXTURE: OnceLock<ServerFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // The embedded vectors are known-good; failing here is a broken checkout.
        let platform_key =
            PrivateKey::from_pem_or_base64(&testdata("vectors/keys/alipay_private_pkcs1.pem"))
                .expect("vector key");
        let app_key = PublicKey::from_pem_or_base64(&testdata("vectors/keys/app_public.pem"))
            .expect("vector key");
        let app = PrivateKey::from_pem_or_base64(&testdata("vectors/keys/app_private_pkcs1.pem"))
            .expect("vector key");
        let signer = Signer::new(&app, SignType::Rsa2).expect("vector key");
        let params = RegisterParams {
            app_id: APP_ID,
            charset: Charset::Utf8,
            timestamp_ms: UNIX0,
            nonce: "0f8e3d1c2b4a59687766554433221100",
            cert_sns: None,
        }
        .sign(&signer)
        .expect("signing with the vector key");
        let register = format!(
            "GET {REGISTER_PATH}?{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
            params.query(Charset::Utf8)
        )
        .into_bytes();
        let mut server_fixture = ServerFixture {
            platform_key,
            app_key,
            register,
            upgrade: Vec::new(),
        };
        // The token a fresh session gives: the same for every input.
        let t0 = Instant::now();
        let mut server = new_server(&server_fixture, t0);
        let conn = server.accept(t0).expect("a fresh session accepts");
        let bytes = &server_fixture.register;
        server.handle_input(ServerInput::Bytes { conn, bytes }, t0);
        let mut answer = Vec::new();
        while let Some(out) = server.poll_output() {
            if let ServerOutput::Write { bytes, .. } = out {
                answer.extend_from_slice(&bytes);
            }
        }
        let response = parse_response(&answer, true, 1 << 16)
            .expect("the session's answer")
            .expect("complete");
        let token = parse_register_answer(
            &response,
            Charset::Utf8,
            &fixture().platform,
            SignType::Rsa2,
            None,
        )
        .expect("a link token")
        .link_token;
        let params = UpgradeParams {
            app_id: APP_ID,
            charset: Charset::Utf8,
            link_token: &token,
            timestamp_ms: UNIX0,
            cert_sns: None,
        }
        .sign(&signer)
        .expect("signing with the vector key");
        let target = format!("{WEBSOCKET_PATH}?{}", params.query(Charset::Utf8));
        let (_, upgrade) = crate::ws::handshake::ClientHandshake::start(
            "localhost",
            &target,
            &[("cookie", "zone=SIM01;")],
            [3; 16],
        )
        .expect("a valid request");
        server_fixture.upgrade = upgrade;
        server_fixture
    })
}

/// A [`crate::server::ServerSession`] fed arbitrary client bytes. The first byte picks
/// the chunk size (bits 0–5, plus one) and where the bytes go (bit 6): from the first
/// byte of a fresh connection (HTTP request heads, routes, the upgrade handshake), or
/// to an open websocket, after a register and an upgrade that succeed and a pushed
/// message (frames, unmasking, charsets, acks, PRODUCEs, close handshakes). Bit 7 ends
/// the connection after the bytes.
///
/// Invariants: the session's connections stay within `max_links`; nothing is written
/// on a connection after its close, nor on one never accepted; a connection is closed
/// at most once; [`crate::server::ServerOutput::Foreign`] only for a connection still
/// reading its head; a session with nothing left reports no timeout in the past after
/// its timers ran.
pub fn server_session(data: &[u8]) {
    use crate::server::ServerInput;

    let fixture = server_fixture();
    let mut input = Input { data };
    let how = input.byte_or_zero();
    let chunk = 1 + usize::from(how & 0x3f);
    let to_websocket = how & 0x40 != 0;
    let t0 = Instant::now();
    let mut server = new_server(fixture, t0);
    let mut seen = ServerWatch::default();
    let conn = if to_websocket {
        let register = seen.accept(&mut server, t0);
        let bytes = &fixture.register;
        server.handle_input(
            ServerInput::Bytes {
                conn: register,
                bytes,
            },
            t0,
        );
        let conn = seen.accept(&mut server, t0);
        let bytes = &fixture.upgrade;
        server.handle_input(ServerInput::Bytes { conn, bytes }, t0);
        assert_eq!(
            server.connection_count(),
            1,
            "the fixture opens a websocket"
        );
        let _ = server.push(APP_ID, "alipay.x.y", r#"{"k":"v"}"#, t0);
        conn
    } else {
        seen.accept(&mut server, t0)
    };
    seen.drain(&mut server);
    let mut now = t0;
    for piece in input.data.chunks(chunk) {
        server.handle_input(ServerInput::Bytes { conn, bytes: piece }, now);
        seen.drain(&mut server);
        now += Duration::from_millis(100);
        server.handle_timeout(now);
        seen.drain(&mut server);
        assert!(server.connection_count() <= 4);
    }
    if how & 0x80 != 0 {
        server.handle_input(ServerInput::Closed { conn, error: None }, now);
        seen.drain(&mut server);
        assert_eq!(server.connection_count(), 0);
    }
    let later = now + Duration::from_secs(3600);
    server.handle_timeout(later);
    seen.drain(&mut server);
    assert!(server.poll_timeout().is_none_or(|at| at > later));
}

/// The connections `server_session` accepted and saw closed.
#[derive(Default)]
struct ServerWatch {
    accepted: HashSet<crate::server::ConnectionId>,
    closed: HashSet<crate::server::ConnectionId>,
}

impl ServerWatch {
    fn accept(
        &mut self,
        server: &mut crate::server::ServerSession,
        now: Instant,
    ) -> crate::server::ConnectionId {
        let conn = server.accept(now).expect("below max_links");
        self.accepted.insert(conn);
        conn
    }

    /// Polls every output, checking the invariants of `server_session`.
    fn drain(&mut self, server: &mut crate::server::ServerSession) {
        use crate::server::ServerOutput;

        while let Some(out) = server.poll_output() {
            match out {
                ServerOutput::Write { conn, .. } => {
                    assert!(
                        self.accepted.contains(&conn),
                        "write on {conn}, never accepted"
                    );
                    assert!(
                        !self.closed.contains(&conn),
                        "write on {conn} after its close"
                    );
                }
                ServerOutput::Close { conn } | ServerOutput::Foreign { conn, .. } => {
                    assert!(
                        self.accepted.contains(&conn),
                        "close of {conn}, never accepted"
                    );
                    assert!(self.closed.insert(conn), "{conn} closed twice");
                }
                _ => {}
            }
        }
    }
}
