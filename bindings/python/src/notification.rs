//! Notification verification over the raw request body (PROTOCOL §10), the native half
//! of `alipay_msg.verify_notification`: the core checks and classifies, this returns the
//! result as plain Python values, and `alipay_msg._notification` builds the typed
//! objects (Decimal amounts, the TradeStatus enum, biz_content as a dict).

use alipay_msg_core::notify::{self, Notification};
use alipay_msg_core::sign_content::Rule;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::notify_error;
use crate::keys::PublicKey;

/// verify(body: bytes, key: PublicKey, rule: str) -> dict[str, object]
///
/// Decodes `body` (the raw form body) once in its own charset, checks `sign` with `key`
/// under `rule` ("v1" or "v2"), and classifies it. Runs without the GIL. Returns a dict:
/// "kind" ("trade", "gateway_message" or "other"), "params" (list of (name, value) in
/// body order), "charset", "sign_type" and the typed fields of the kind, as str or None.
///
/// Raises SignatureError, MalformedError; ValueError for an unknown rule. Use
/// alipay_msg.verify_notification, which returns typed objects.
#[pyfunction]
pub fn verify<'py>(
    py: Python<'py>,
    body: &[u8],
    key: &Bound<'py, PublicKey>,
    rule: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let rule = rule_named(rule)?;
    let verifier = key.get().verifier();
    let notification = py
        .detach(|| notify::verify(body, verifier, rule))
        .map_err(notify_error)?;
    notification_dict(py, &notification)
}

/// The rule named `rule`: "v1" → [`Rule::V1`], "v2" → [`Rule::V2`].
///
/// Raises ValueError for any other name.
pub(crate) fn rule_named(rule: &str) -> PyResult<Rule> {
    match rule {
        "v1" => Ok(Rule::V1),
        "v2" => Ok(Rule::V2),
        other => Err(PyValueError::new_err(format!(
            "rule must be \"v1\" or \"v2\", not {other:?}"
        ))),
    }
}

/// A verified notification as the dict `verify` returns (see there), which
/// `alipay_msg._notification` turns into a typed Notification.
pub(crate) fn notification_dict<'py>(
    py: Python<'py>,
    notification: &Notification,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    let params = notification.params();
    out.set_item("charset", params.charset().as_str())?;
    out.set_item("sign_type", params.get("sign_type"))?;
    out.set_item("params", params.iter().collect::<Vec<(&str, &str)>>())?;
    match notification {
        Notification::Trade(t) => {
            out.set_item("kind", "trade")?;
            for (name, value) in [
                ("notify_id", &t.notify_id),
                ("notify_time", &t.notify_time),
                ("notify_type", &t.notify_type),
                ("app_id", &t.app_id),
                ("trade_no", &t.trade_no),
                ("out_trade_no", &t.out_trade_no),
            ] {
                out.set_item(name, value)?;
            }
            out.set_item("trade_status", t.trade_status.as_str())?;
            for (name, value) in [
                ("total_amount", &t.total_amount),
                ("receipt_amount", &t.receipt_amount),
                ("buyer_pay_amount", &t.buyer_pay_amount),
                ("invoice_amount", &t.invoice_amount),
                ("point_amount", &t.point_amount),
                ("refund_fee", &t.refund_fee),
                ("out_biz_no", &t.out_biz_no),
                ("buyer_id", &t.buyer_id),
                ("seller_id", &t.seller_id),
                ("subject", &t.subject),
                ("gmt_create", &t.gmt_create),
                ("gmt_payment", &t.gmt_payment),
                ("gmt_refund", &t.gmt_refund),
                ("gmt_close", &t.gmt_close),
            ] {
                out.set_item(name, value.as_deref())?;
            }
        }
        Notification::GatewayMessage(m) => {
            out.set_item("kind", "gateway_message")?;
            out.set_item("msg_method", &m.msg_method)?;
            out.set_item("notify_id", &m.notify_id)?;
            out.set_item("app_id", &m.app_id)?;
            out.set_item("utc_timestamp", m.utc_timestamp.as_deref())?;
            out.set_item("version", m.version.as_deref())?;
            // The exact verified text; Python's json module reads it (integers of any
            // size stay exact, which serde_json's Value would turn into floats).
            out.set_item("biz_content", params.get("biz_content"))?;
        }
        _ => {
            out.set_item("kind", "other")?;
            out.set_item("notify_id", notification.notify_id())?;
            out.set_item("app_id", notification.app_id())?;
            out.set_item("notify_type", params.get_non_empty("notify_type"))?;
        }
    }
    Ok(out)
}
