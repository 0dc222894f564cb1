//! The admin endpoints on the simulator's port, for scripts and other processes:
//!
//! - `POST /admin/push` with a JSON body `{"msg_api": "…", "biz_content": {…}}`
//!   (optional `"app_id"`, and `"forged": true` for a forgery the client must refuse)
//!   → `200 {"msg_id": "…"}`, or `400 {"error": "…"}`;
//! - `GET /admin/status` → `200 {"connections": n, "settled": bool, "queued": n, …}`.

use alipay_msg_core::server::MessageCounts;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::http::{self, RequestHead};
use super::listener::{stopped, Shared};
use super::platform::{Platform, Request};
use super::push_file::PlatformMessage;

/// Path of the push endpoint.
pub(super) const PUSH_PATH: &str = "/admin/push";
/// Path of the status endpoint.
pub(super) const STATUS_PATH: &str = "/admin/status";

/// Largest push body.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Runs `job` on the platform task; `None` when it has stopped.
pub(super) async fn call<T: Send + 'static>(
    shared: &Shared,
    job: impl FnOnce(&mut Platform, std::time::Instant) -> T + Send + 'static,
) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    let request = Request::Run(Box::new(move |platform, now| {
        let _ = reply.send(job(platform, now));
    }));
    shared.requests.send(request).await.ok()?;
    answer.await.ok()
}

pub(super) async fn push(mut stream: TcpStream, head: RequestHead, shared: &Shared) {
    let body = match http::read_body(&mut stream, &head, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(e) => {
            let answer = http::json_response(e.status(), &json!({ "error": e.to_string() }));
            http::answer(&mut stream, &answer).await;
            return;
        }
    };
    let message = match std::str::from_utf8(&body)
        .map_err(|e| e.to_string())
        .and_then(|text| PlatformMessage::from_json(text).map_err(|e| e.to_string()))
    {
        Ok(message) => message,
        Err(e) => {
            let error = format!("expected {{\"msg_api\": \"…\", \"biz_content\": {{…}}}}: {e}");
            http::answer(
                &mut stream,
                &http::json_response(400, &json!({ "error": error })),
            )
            .await;
            return;
        }
    };
    let pushed = call(shared, move |platform, now| {
        let forged = message.forged.then_some(None);
        platform
            .push(
                message.app_id.as_deref(),
                &message.msg_api,
                &message.biz_content,
                forged,
                now,
            )
            .map_err(|e| e.to_string())
    })
    .await;
    let answer = match pushed {
        Some(Ok(msg_id)) => http::json_response(200, &json!({ "msg_id": msg_id.as_str() })),
        Some(Err(error)) => http::json_response(400, &json!({ "error": error })),
        None => stopped(),
    };
    http::answer(&mut stream, &answer).await;
}

pub(super) async fn status(mut stream: TcpStream, shared: &Shared) {
    let status = call(shared, |platform, _| {
        (
            platform.connection_count(),
            platform.session.is_settled(),
            platform.session.counts(),
        )
    })
    .await;
    let answer = match status {
        Some((connections, settled, counts)) => {
            let MessageCounts {
                queued,
                waiting_retry,
                in_flight,
                acked,
                abandoned,
                forged_discarded,
                forged_accepted,
            } = counts;
            http::json_response(
                200,
                &json!({
                    "connections": connections,
                    "settled": settled,
                    "queued": queued,
                    "waiting_retry": waiting_retry,
                    "in_flight": in_flight,
                    "acked": acked,
                    "abandoned": abandoned,
                    "forged_discarded": forged_discarded,
                    "forged_accepted": forged_accepted,
                }),
            )
        }
        None => stopped(),
    };
    http::answer(&mut stream, &answer).await;
}
