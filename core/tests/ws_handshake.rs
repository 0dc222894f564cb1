//! The websocket opening handshake (`ws::handshake`), both sides, over bytes.

use alipay_msg_core::ws::frame::{encode_frame, OpCode};
use alipay_msg_core::ws::handshake::{
    accept_key, reject_answer, ClientHandshake, HandshakeError, RequestError, ServerHandshake,
    MAX_HEAD_BYTES,
};
use alipay_msg_core::ws::{Role, WsConnection, WsEvent, WsLimits};

const KEY: [u8; 16] = *b"the sample nonce";
const PATH: &str = "/websocket?app_id=2021000000000001&charset=GBK&sign=a%2Bb%3D";

fn start() -> (ClientHandshake, Vec<u8>) {
    ClientHandshake::start(
        "openchannel.alipay.com",
        PATH,
        &[
            ("cookie", "zone=GZ00B;"),
            (
                "Content-Type",
                "application/x-www-form-urlencoded;charset=GBK",
            ),
        ],
        KEY,
    )
    .unwrap()
}

fn answer_101(accept: &str) -> Vec<u8> {
    format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").into_bytes()
}

#[test]
fn request_bytes() {
    let (_, request) = start();
    assert_eq!(
        String::from_utf8(request).unwrap(),
        format!(
            "GET {PATH} HTTP/1.1\r\nHost: openchannel.alipay.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\ncookie: zone=GZ00B;\r\nContent-Type: application/x-www-form-urlencoded;charset=GBK\r\n\r\n"
        )
    );
}

#[test]
fn request_misuse_is_refused() {
    let start = |host: &str, path: &str, headers: &[(&str, &str)]| {
        ClientHandshake::start(host, path, headers, KEY).map(|_| ())
    };
    assert!(matches!(start("", "/", &[]), Err(RequestError::BadHost(_))));
    assert!(matches!(
        start("a b", "/", &[]),
        Err(RequestError::BadHost(_))
    ));
    assert_eq!(start("h", "ws", &[]), Err(RequestError::BadPath));
    assert_eq!(start("h", "/a b", &[]), Err(RequestError::BadPath));
    assert_eq!(start("h", "/\r\nX: y", &[]), Err(RequestError::BadPath));
    assert!(matches!(
        start("h", "/", &[("x", "a\r\nInjected: 1")]),
        Err(RequestError::BadHeader { .. })
    ));
    assert!(matches!(
        start("h", "/", &[("bad name", "v")]),
        Err(RequestError::BadHeader { .. })
    ));
    assert!(matches!(
        start("h", "/", &[("HOST", "v")]),
        Err(RequestError::OwnHeader { .. })
    ));
    assert_eq!(start("127.0.0.1:8080", "/", &[]), Ok(()));
}

#[test]
fn answer_split_at_every_byte_keeps_the_frames_after_it() {
    let (_, request) = start();
    let mut server = ServerHandshake::new();
    let upgrade = server.read(&request).unwrap().unwrap();
    let mut answer = upgrade.accept_answer();
    let head_len = answer.len();
    // The server's first frame arrives in the same read as the answer's head.
    let frame = encode_frame(true, OpCode::Text, b"hello", None);
    answer.extend_from_slice(&frame);
    for cut in 0..=answer.len() {
        let (mut client, _) = start();
        let (first, second) = answer.split_at(cut);
        let rest = match client.read(first).unwrap() {
            Some(done) => [&first[done.consumed..], second].concat(),
            None => {
                let done = client.read(second).unwrap().expect("complete answer");
                assert_eq!(done.consumed, head_len - cut, "cut {cut}");
                second[done.consumed..].to_vec()
            }
        };
        // Whatever followed the head is the frame.
        let mut ws = WsConnection::new(Role::Client, WsLimits::default());
        assert_eq!(
            ws.read(&rest).unwrap(),
            (frame.len(), Some(WsEvent::Text(b"hello".to_vec()))),
            "cut {cut}"
        );
    }
}

#[test]
fn answer_checks() {
    let good = accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(good, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    let read = |answer: &[u8]| start().0.read(answer);
    assert!(read(&answer_101(&good)).unwrap().is_some());
    // Token lists and letter case.
    let relaxed = format!("HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\nsec-websocket-accept: {good}\r\n\r\n");
    assert!(read(relaxed.as_bytes()).unwrap().is_some());
    assert_eq!(read(&answer_101("AAAA")), Err(HandshakeError::BadAccept));
    let forbidden = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno!";
    assert_eq!(
        read(forbidden),
        Err(HandshakeError::Status {
            status: 403,
            reason: "Forbidden".into()
        })
    );
    let no_upgrade =
        format!("HTTP/1.1 101 OK\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {good}\r\n\r\n");
    assert_eq!(
        read(no_upgrade.as_bytes()),
        Err(HandshakeError::NoUpgradeHeader)
    );
    let no_connection =
        format!("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {good}\r\n\r\n");
    assert_eq!(
        read(no_connection.as_bytes()),
        Err(HandshakeError::NoConnectionUpgrade)
    );
    let mut deflate = answer_101(&good);
    deflate.truncate(deflate.len() - 2);
    deflate.extend_from_slice(b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n");
    assert_eq!(
        read(&deflate),
        Err(HandshakeError::NotOffered {
            header: "Sec-WebSocket-Extensions"
        })
    );
    assert!(matches!(
        read(b"SSH-2.0-OpenSSH\r\n\r\n"),
        Err(HandshakeError::Malformed { .. })
    ));
    let many: String = (0..40).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("HTTP/1.1 101 OK\r\n{many}\r\n");
    assert_eq!(
        read(many.as_bytes()),
        Err(HandshakeError::TooManyHeaders { limit: 32 })
    );
}

#[test]
fn head_size_is_bounded_and_errors_are_sticky() {
    let (mut client, _) = start();
    let mut endless = b"HTTP/1.1 101 OK\r\n".to_vec();
    endless.extend_from_slice(b"X-Padding: ");
    endless.resize(MAX_HEAD_BYTES + 100, b'a');
    // Fed in small pieces: no error until the limit, then HeadTooLarge, sticky.
    let mut result = Ok(None);
    for piece in endless.chunks(100) {
        result = client.read(piece);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(
        result,
        Err(HandshakeError::HeadTooLarge {
            limit: MAX_HEAD_BYTES
        })
    );
    assert_eq!(
        client.read(b"\r\n\r\n"),
        Err(HandshakeError::HeadTooLarge {
            limit: MAX_HEAD_BYTES
        })
    );
    // A completed handshake refuses further reads as misuse.
    let (mut client, _) = start();
    client
        .read(&answer_101(&accept_key(b"dGhlIHNhbXBsZSBub25jZQ==")))
        .unwrap()
        .unwrap();
    assert_eq!(client.read(b"x"), Err(HandshakeError::AlreadyComplete));
}

#[test]
fn server_reads_the_platform_request() {
    let (mut client, mut request) = start();
    // A masked frame from the client right behind the request.
    let frame = encode_frame(true, OpCode::Text, b"hi", Some([1, 2, 3, 4]));
    let head_len = request.len();
    request.extend_from_slice(&frame);
    for cut in 0..=request.len() {
        let mut server = ServerHandshake::new();
        let (first, second) = request.split_at(cut);
        let (upgrade, rest) = match server.read(first).unwrap() {
            Some(u) => {
                let rest = [&first[u.consumed..], second].concat();
                (u, rest)
            }
            None => {
                let u = server.read(second).unwrap().unwrap();
                let rest = second[u.consumed..].to_vec();
                (u, rest)
            }
        };
        assert_eq!(upgrade.path_and_query, PATH);
        assert_eq!(rest, frame, "cut {cut} (head {head_len})");
        assert_eq!(upgrade.cookie("zone"), Some("GZ00B"));
        assert_eq!(
            upgrade.header("content-type"),
            Some(&b"application/x-www-form-urlencoded;charset=GBK"[..])
        );
        assert_eq!(upgrade.header("HOST"), Some(&b"openchannel.alipay.com"[..]));
        assert_eq!(upgrade.key, "dGhlIHNhbXBsZSBub25jZQ==");
    }
    // The client accepts the server's answer.
    let upgrade = ServerHandshake::new().read(&request).unwrap().unwrap();
    assert!(client.read(&upgrade.accept_answer()).unwrap().is_some());
}

#[test]
fn server_refusals_and_answers() {
    let read = |text: &str| ServerHandshake::new().read(text.as_bytes());
    let ok = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    assert!(read(ok).unwrap().is_some());
    let post = ok.replacen("GET", "POST", 1);
    let err = read(&post).unwrap_err();
    assert_eq!(
        err,
        HandshakeError::NotGet {
            method: "POST".into()
        }
    );
    assert!(err.server_answer().starts_with(b"HTTP/1.1 405 "));
    assert_eq!(
        read(&ok.replacen("HTTP/1.1", "HTTP/1.0", 1)),
        Err(HandshakeError::NotHttp11)
    );
    let v8 = ok.replacen("Version: 13", "Version: 8", 1);
    let err = read(&v8).unwrap_err();
    assert_eq!(err, HandshakeError::UnsupportedVersion);
    let answer = String::from_utf8(err.server_answer()).unwrap();
    assert!(answer.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    assert!(answer.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    let short_key = ok.replacen("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=", 1);
    let err = read(&short_key).unwrap_err();
    assert_eq!(err, HandshakeError::BadKey);
    assert!(err
        .server_answer()
        .starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    assert_eq!(
        read(&ok.replacen("Upgrade: websocket\r\n", "", 1)),
        Err(HandshakeError::NoUpgradeHeader)
    );
    assert_eq!(
        reject_answer(403, "Forbidden", &[]),
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}
