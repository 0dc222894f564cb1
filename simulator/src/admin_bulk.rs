//! `POST /admin/push-bulk`: many copies of one message, signed once, for throughput
//! measurements from other processes (the Python package's `bench/throughput.py`).
//!
//! Body `{"msg_api": "…", "biz_content": {…}, "count": n}` (optional `"app_id"`) →
//! `200 {"count": n, "first_msg_id": "…", "last_msg_id": "…"}`, or `400 {"error": "…"}`
//! (bad JSON, `count` outside 1..=[`MAX_COUNT`], an unknown app, a queue too full for
//! all of them: then none is queued).
//!
//! Each copy has its own `x-msgId` and the same signed `data`, as the in-process
//! `alipay-msg bench` queues them ([`ServerSession::presign`]): signing a CONSUME costs
//! the platform an RSA signature (about 0.7 ms), 25 times what a client spends verifying
//! it, so a measurement that signed each message would measure the simulator. Unlike
//! `/admin/push` the copies are not announced one by one as `pushed` events (their
//! deliveries and acks are).

use alipay_msg_core::server::ServerSession;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::net::TcpStream;

use super::admin::call;
use super::http::{self, RequestHead};
use super::listener::{stopped, Shared};

/// Path of the endpoint.
pub(super) const PUSH_BULK_PATH: &str = "/admin/push-bulk";

/// Most copies in one request.
pub(super) const MAX_COUNT: usize = 1_000_000;

/// Largest body.
const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkJson<'a> {
    msg_api: String,
    #[serde(borrow)]
    biz_content: &'a RawValue,
    #[serde(default)]
    app_id: Option<String>,
    count: usize,
}

/// Queues `count` copies of one message signed once; all or none.
fn push_copies(
    session: &mut ServerSession,
    app_id: &str,
    msg_api: &str,
    biz_content: &str,
    count: usize,
    now: std::time::Instant,
) -> Result<(String, String), String> {
    let counts = session.counts();
    let unsettled = counts.queued + counts.waiting_retry + counts.in_flight;
    let room = session.config().max_queued.saturating_sub(unsettled);
    if count > room {
        return Err(format!(
            "room for {room} more messages in the platform's queue, not {count}"
        ));
    }
    let signed = session
        .presign(app_id, msg_api, biz_content)
        .map_err(|e| e.to_string())?;
    let mut first = None;
    let mut last = String::new();
    for _ in 0..count {
        let id = session
            .push_presigned(&signed, now)
            .map_err(|e| e.to_string())?;
        last = id.as_str().to_owned();
        first.get_or_insert_with(|| last.clone());
    }
    Ok((first.unwrap_or_default(), last))
}

/// `POST /admin/push-bulk`.
pub(super) async fn push_bulk(mut stream: TcpStream, head: RequestHead, shared: &Shared) {
    let body = match http::read_body(&mut stream, &head, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(e) => {
            let answer = http::json_response(e.status(), &json!({ "error": e.to_string() }));
            return http::answer(&mut stream, &answer).await;
        }
    };
    let request = match serde_json::from_slice::<BulkJson<'_>>(&body) {
        Ok(request) if (1..=MAX_COUNT).contains(&request.count) => request,
        Ok(request) => {
            let error = format!("count must be 1 to {MAX_COUNT}, not {}", request.count);
            let answer = http::json_response(400, &json!({ "error": error }));
            return http::answer(&mut stream, &answer).await;
        }
        Err(e) => {
            let error = format!(
                "expected {{\"msg_api\": \"…\", \"biz_content\": {{…}}, \"count\": n}}: {e}"
            );
            let answer = http::json_response(400, &json!({ "error": error }));
            return http::answer(&mut stream, &answer).await;
        }
    };
    let (msg_api, biz_content, count) = (
        request.msg_api,
        request.biz_content.get().to_owned(),
        request.count,
    );
    let app_id = request.app_id;
    let pushed = call(shared, move |platform, now| {
        let app_id = app_id.unwrap_or_else(|| platform.app_id.clone());
        push_copies(
            &mut platform.session,
            &app_id,
            &msg_api,
            &biz_content,
            count,
            now,
        )
    })
    .await;
    let answer = match pushed {
        Some(Ok((first, last))) => http::json_response(
            200,
            &json!({ "count": count, "first_msg_id": first, "last_msg_id": last }),
        ),
        Some(Err(error)) => http::json_response(400, &json!({ "error": error })),
        None => stopped(),
    };
    http::answer(&mut stream, &answer).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimulatorOptions;
    use alipay_msg_core::server::MessageState;
    use std::time::Instant;

    fn session(max_queued: usize) -> ServerSession {
        let mut options = SimulatorOptions::with_test_keys();
        options.server.max_queued = max_queued;
        let rng = Box::new(
            <rand_xoshiro::Xoshiro256PlusPlus as rand_core::SeedableRng>::seed_from_u64(7),
        );
        ServerSession::new(options.server, rng, Instant::now(), 1_795_430_400_000)
    }

    #[test]
    fn copies_get_their_own_ids_and_all_or_none_is_queued() {
        let mut s = session(5);
        let app = crate::test_keys::APP_ID;
        let now = Instant::now();
        let (first, last) = push_copies(&mut s, app, "a.b", r#"{"k":1}"#, 3, now).unwrap();
        assert_ne!(first, last);
        assert_eq!(
            s.message_state(&first),
            Some(MessageState::Queued { attempts: 0 })
        );
        assert_eq!(s.counts().queued, 3);
        let refused = push_copies(&mut s, app, "a.b", r#"{"k":1}"#, 3, now).unwrap_err();
        assert!(refused.contains("room for 2"), "{refused}");
        assert_eq!(s.counts().queued, 3);
        assert!(push_copies(&mut s, app, "a.b", "[1]", 1, now).is_err());
        assert!(push_copies(&mut s, "2021000000000009", "a.b", "{}", 1, now).is_err());
    }
}
