//! The admin switch for redelivery on another connection
//! ([`alipay_msg_core::server::ServerConfig::redeliver_elsewhere`]), for scripts that run
//! several instances of a service against the simulator:
//!
//! - `POST /admin/redeliver-elsewhere` with a JSON body `{"on": true}` or
//!   `{"on": false}` → `200 {"redeliver_elsewhere": bool}`, or `400 {"error": "…"}`.
//!
//! In code: `SimulatorOptions::server.redeliver_elsewhere` at start, or
//! `ServerSession::set_redeliver_elsewhere` through `with_session` while running.

use serde_json::{json, Value};
use tokio::net::TcpStream;

use super::admin::call;
use super::http::{self, RequestHead};
use super::listener::{stopped, Shared};

/// Path of the switch.
pub(super) const REDELIVER_ELSEWHERE_PATH: &str = "/admin/redeliver-elsewhere";

/// Largest body: `{"on": false}` and some whitespace.
const MAX_BODY_BYTES: usize = 1024;

pub(super) async fn redeliver_elsewhere(mut stream: TcpStream, head: RequestHead, shared: &Shared) {
    let body = match http::read_body(&mut stream, &head, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(e) => {
            let answer = http::json_response(e.status(), &json!({ "error": e.to_string() }));
            http::answer(&mut stream, &answer).await;
            return;
        }
    };
    let on = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("on").and_then(Value::as_bool));
    let Some(on) = on else {
        let error = "expected {\"on\": true} or {\"on\": false}";
        let answer = http::json_response(400, &json!({ "error": error }));
        http::answer(&mut stream, &answer).await;
        return;
    };
    let set = call(shared, move |platform, _| {
        platform.session.set_redeliver_elsewhere(on);
        platform.session.redeliver_elsewhere()
    })
    .await;
    let answer = match set {
        Some(on) => http::json_response(200, &json!({ "redeliver_elsewhere": on })),
        None => stopped(),
    };
    http::answer(&mut stream, &answer).await;
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use crate::{Simulator, SimulatorOptions};

    fn post(addr: std::net::SocketAddr, body: &str) -> String {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "POST /admin/redeliver-elsewhere HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn the_switch_turns_on_and_off() {
        let sim = Simulator::start_on_thread(SimulatorOptions::with_test_keys()).unwrap();
        let on = |sim: &crate::SimulatorHandle| {
            sim.with_session(|s, _| s.redeliver_elsewhere()).unwrap()
        };
        assert!(!on(&sim));
        let answer = post(sim.local_addr(), r#"{"on": true}"#);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.ends_with(r#"{"redeliver_elsewhere":true}"#),
            "{answer}"
        );
        assert!(on(&sim));
        assert!(post(sim.local_addr(), r#"{"on": false}"#).starts_with("HTTP/1.1 200"));
        assert!(!on(&sim));
        let answer = post(sim.local_addr(), r#"{"on": "yes"}"#);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(!on(&sim));
        sim.shutdown();
    }
}
