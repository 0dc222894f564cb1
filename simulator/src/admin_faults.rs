//! Admin endpoints that arm the platform's faults, for client tests in other processes
//! (the Python package's tests drive `alipay-msg simulate` through them):
//!
//! - `POST /admin/faults` with a JSON body naming the faults to arm (every field
//!   optional; the body replaces the whole plan, so `{}` disarms everything):
//!   `{"duplicate_consumes": n, "corrupt_consumes": n, "garbage_before_consumes": n,
//!   "withhold_produce_acks": n, "delay_produce_acks_ms": ms, "close_after_frames": n}`
//!   (counts of "the next n"; see [`FaultPlan`] for what each does) → `200` with the
//!   plan now armed, in the same shape, or `400 {"error": "…"}` (unknown field, wrong
//!   type);
//! - `POST /admin/produce-failure` with `{"msg_api": "…", "failure": F}`, F one of
//!   `"service_unavailable"` (`20000 msg.unknow-error`), `"consumer_not_exist"` (`40000
//!   msg.consumer-not-exist`), `"sys_abort"` (`40000 msg.sys-abort`) or `null` (answer
//!   normally again): every later PRODUCE of that message API that passes the
//!   platform's checks is answered with that code (PROTOCOL §7) → `200 {"msg_api": …,
//!   "failure": F}`, or `400` (unknown failure, empty `msg_api`, more than
//!   [`MAX_PRODUCE_FAILURES`] message APIs armed).

use std::time::Duration;

use alipay_msg_core::server::{CloseAfterFrames, FaultPlan, ProduceFailure};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpStream;

use super::admin::call;
use super::http::{self, RequestHead};
use super::listener::{stopped, Shared};

/// Path of the faults endpoint.
pub(super) const FAULTS_PATH: &str = "/admin/faults";
/// Path of the PRODUCE failure endpoint.
pub(super) const PRODUCE_FAILURE_PATH: &str = "/admin/produce-failure";

/// Largest body of either endpoint.
const MAX_BODY_BYTES: usize = 4 * 1024;

/// Most message APIs with an armed PRODUCE failure (the map is bounded like every other
/// table of the simulator).
pub(super) const MAX_PRODUCE_FAILURES: usize = 1024;

/// The JSON shape of a [`FaultPlan`]: counts of "the next n", and milliseconds.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FaultsJson {
    #[serde(default)]
    duplicate_consumes: u32,
    #[serde(default)]
    corrupt_consumes: u32,
    #[serde(default)]
    garbage_before_consumes: u32,
    #[serde(default)]
    withhold_produce_acks: u32,
    #[serde(default)]
    delay_produce_acks_ms: Option<u64>,
    /// Frames still to send, over all connections, before the platform closes the
    /// connection that sent the last one.
    #[serde(default)]
    close_after_frames: Option<u32>,
}

impl FaultsJson {
    fn plan(&self) -> FaultPlan {
        FaultPlan {
            close_after_frames: self
                .close_after_frames
                .map(|frames| CloseAfterFrames { conn: None, frames }),
            withhold_produce_acks: self.withhold_produce_acks,
            delay_produce_acks: self.delay_produce_acks_ms.map(Duration::from_millis),
            corrupt_consumes: self.corrupt_consumes,
            duplicate_consumes: self.duplicate_consumes,
            garbage_before_consumes: self.garbage_before_consumes,
        }
    }

    fn of(plan: &FaultPlan) -> Self {
        FaultsJson {
            duplicate_consumes: plan.duplicate_consumes,
            corrupt_consumes: plan.corrupt_consumes,
            garbage_before_consumes: plan.garbage_before_consumes,
            withhold_produce_acks: plan.withhold_produce_acks,
            delay_produce_acks_ms: plan
                .delay_produce_acks
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            close_after_frames: plan.close_after_frames.map(|c| c.frames),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceFailureJson {
    msg_api: String,
    failure: Option<FailureName>,
}

/// A [`ProduceFailure`] by its JSON name.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
enum FailureName {
    ServiceUnavailable,
    ConsumerNotExist,
    SysAbort,
}

impl From<FailureName> for ProduceFailure {
    fn from(name: FailureName) -> Self {
        match name {
            FailureName::ServiceUnavailable => ProduceFailure::ServiceUnavailable,
            FailureName::ConsumerNotExist => ProduceFailure::ConsumerNotExist,
            FailureName::SysAbort => ProduceFailure::SysAbort,
        }
    }
}

/// Reads a JSON body of type `T`, or answers `400`/`411`/`413` and returns `None`.
async fn read_json<T: for<'de> Deserialize<'de>>(
    stream: &mut TcpStream,
    head: &RequestHead,
) -> Option<T> {
    let error = match http::read_body(stream, head, MAX_BODY_BYTES).await {
        Ok(body) => match serde_json::from_slice(&body) {
            Ok(value) => return Some(value),
            Err(e) => (400, e.to_string()),
        },
        Err(e) => (e.status(), e.to_string()),
    };
    let answer = http::json_response(error.0, &json!({ "error": error.1 }));
    http::answer(stream, &answer).await;
    None
}

/// `POST /admin/faults`.
pub(super) async fn faults(mut stream: TcpStream, head: RequestHead, shared: &Shared) {
    let Some(wanted) = read_json::<FaultsJson>(&mut stream, &head).await else {
        return;
    };
    let plan = wanted.plan();
    let armed = call(shared, move |platform, _| {
        platform.session.set_faults(plan);
        FaultsJson::of(platform.session.faults())
    })
    .await;
    let answer = match armed {
        Some(armed) => http::json_response(200, &json!(armed)),
        None => stopped(),
    };
    http::answer(&mut stream, &answer).await;
}

/// `POST /admin/produce-failure`.
pub(super) async fn produce_failure(mut stream: TcpStream, head: RequestHead, shared: &Shared) {
    let Some(wanted) = read_json::<ProduceFailureJson>(&mut stream, &head).await else {
        return;
    };
    if wanted.msg_api.is_empty() {
        let answer = http::json_response(400, &json!({ "error": "msg_api is empty" }));
        return http::answer(&mut stream, &answer).await;
    }
    let (msg_api, failure) = (wanted.msg_api.clone(), wanted.failure);
    let set = call(shared, move |platform, _| {
        let armed = &platform.session.config().produce_failures;
        if failure.is_some() && !armed.contains_key(&msg_api) && armed.len() >= MAX_PRODUCE_FAILURES
        {
            return false;
        }
        platform
            .session
            .set_produce_failure(&msg_api, failure.map(ProduceFailure::from));
        true
    })
    .await;
    let answer = match set {
        Some(true) => http::json_response(
            200,
            &json!({ "msg_api": wanted.msg_api, "failure": wanted.failure }),
        ),
        Some(false) => http::json_response(
            400,
            &json!({ "error": format!("at most {MAX_PRODUCE_FAILURES} message APIs can have a PRODUCE failure armed") }),
        ),
        None => stopped(),
    };
    http::answer(&mut stream, &answer).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_shape_round_trips_a_plan() {
        let json: FaultsJson = serde_json::from_str(
            r#"{"duplicate_consumes":2,"delay_produce_acks_ms":150,"close_after_frames":3}"#,
        )
        .unwrap();
        let plan = json.plan();
        assert_eq!(plan.duplicate_consumes, 2);
        assert_eq!(plan.corrupt_consumes, 0);
        assert_eq!(plan.delay_produce_acks, Some(Duration::from_millis(150)));
        assert_eq!(
            plan.close_after_frames.map(|c| (c.conn, c.frames)),
            Some((None, 3))
        );
        assert_eq!(
            serde_json::to_value(FaultsJson::of(&plan)).unwrap(),
            json!({
                "duplicate_consumes": 2, "corrupt_consumes": 0, "garbage_before_consumes": 0,
                "withhold_produce_acks": 0, "delay_produce_acks_ms": 150, "close_after_frames": 3,
            })
        );
        assert_eq!(FaultsJson::default().plan(), FaultPlan::default());
        assert!(serde_json::from_str::<FaultsJson>(r#"{"duplicate":1}"#).is_err());
    }

    #[test]
    fn failure_names() {
        let json: ProduceFailureJson =
            serde_json::from_str(r#"{"msg_api":"a.b","failure":"consumer_not_exist"}"#).unwrap();
        assert_eq!(
            json.failure.map(ProduceFailure::from),
            Some(ProduceFailure::ConsumerNotExist)
        );
        let json: ProduceFailureJson =
            serde_json::from_str(r#"{"msg_api":"a.b","failure":null}"#).unwrap();
        assert!(json.failure.is_none());
        assert!(serde_json::from_str::<ProduceFailureJson>(
            r#"{"msg_api":"a.b","failure":"later"}"#
        )
        .is_err());
    }
}
