//! Payment notifications: `notify_type=trade_status_sync` (PROTOCOL §10).

use std::fmt;

use super::form::FormParams;
use super::NotifyError;

/// The `trade_status` of a payment notification (PROTOCOL §10).
///
/// A value other than the four the protocol lists is kept as [`TradeStatus::Other`]
/// rather than rejected: the notification is authentic (its signature verified), and
/// rejecting it would only make the platform re-send it for about 25 hours. Code that
/// credits a payment matches [`Success`](Self::Success) and
/// [`Finished`](Self::Finished) explicitly (or uses [`is_paid`](Self::is_paid)), so
/// an unknown status never counts as paid.
///
/// ```
/// use alipay_msg_core::notify::TradeStatus;
/// assert_eq!(TradeStatus::from("TRADE_SUCCESS"), TradeStatus::Success);
/// assert!(TradeStatus::Success.is_paid());
/// assert_eq!(TradeStatus::from("NEW_STATE"), TradeStatus::Other("NEW_STATE".into()));
/// assert!(!TradeStatus::from("NEW_STATE").is_paid());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TradeStatus {
    /// `WAIT_BUYER_PAY`: the trade is created and waits for the buyer to pay.
    WaitBuyerPay,
    /// `TRADE_SUCCESS`: paid; a refund is still possible.
    Success,
    /// `TRADE_FINISHED`: paid and closed for refunds.
    Finished,
    /// `TRADE_CLOSED`: closed unpaid, or fully refunded.
    Closed,
    /// Any other value, as received.
    Other(String),
}

impl TradeStatus {
    /// The value on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            TradeStatus::WaitBuyerPay => "WAIT_BUYER_PAY",
            TradeStatus::Success => "TRADE_SUCCESS",
            TradeStatus::Finished => "TRADE_FINISHED",
            TradeStatus::Closed => "TRADE_CLOSED",
            TradeStatus::Other(s) => s,
        }
    }

    /// Whether the buyer has paid: `TRADE_SUCCESS` or `TRADE_FINISHED`.
    pub fn is_paid(&self) -> bool {
        matches!(self, TradeStatus::Success | TradeStatus::Finished)
    }
}

impl From<&str> for TradeStatus {
    /// Exact, case-sensitive match of the four known names; anything else is `Other`.
    fn from(value: &str) -> Self {
        match value {
            "WAIT_BUYER_PAY" => TradeStatus::WaitBuyerPay,
            "TRADE_SUCCESS" => TradeStatus::Success,
            "TRADE_FINISHED" => TradeStatus::Finished,
            "TRADE_CLOSED" => TradeStatus::Closed,
            other => TradeStatus::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for TradeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified payment notification (`notify_type=trade_status_sync`, PROTOCOL §10).
///
/// Amounts are decimal strings exactly as sent (`"88.88"`), never floats: compare them
/// with the amount the app stored for `out_trade_no`, or parse them with a decimal type.
/// An optional field is `None` when the parameter is absent or empty. Every parameter,
/// named here or not, is in [`params`](Self::params).
///
/// Before acting on it the app should check that `app_id` is its own, that
/// `out_trade_no` is one of its orders and that `total_amount` is that order's amount,
/// and handle a repeated `notify_id` idempotently: the platform re-sends until it gets
/// `success`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TradeNotification {
    /// `notify_id`: identifies this notification (repeated on re-sends).
    pub notify_id: String,
    /// `notify_time`: when it was sent, `yyyy-MM-dd HH:mm:ss` (platform time, UTC+8).
    pub notify_time: String,
    /// `notify_type`: always `trade_status_sync` here.
    pub notify_type: String,
    /// `app_id`: the app the trade belongs to.
    pub app_id: String,
    /// `trade_no`: the platform's trade number.
    pub trade_no: String,
    /// `out_trade_no`: the app's order number.
    pub out_trade_no: String,
    /// `trade_status`.
    pub trade_status: TradeStatus,
    /// `total_amount`: order amount, yuan, decimal string.
    pub total_amount: Option<String>,
    /// `receipt_amount`: amount the merchant actually receives.
    pub receipt_amount: Option<String>,
    /// `buyer_pay_amount`: amount the buyer paid.
    pub buyer_pay_amount: Option<String>,
    /// `invoice_amount`: amount that can be invoiced.
    pub invoice_amount: Option<String>,
    /// `point_amount`: amount paid with points.
    pub point_amount: Option<String>,
    /// `refund_fee`: total refunded amount (refund notifications).
    pub refund_fee: Option<String>,
    /// `out_biz_no`: the app's refund request number (refund notifications).
    pub out_biz_no: Option<String>,
    /// `buyer_id`: the buyer's platform user id.
    pub buyer_id: Option<String>,
    /// `seller_id`: the seller's platform user id.
    pub seller_id: Option<String>,
    /// `subject`: the order title.
    pub subject: Option<String>,
    /// `gmt_create`: trade creation time.
    pub gmt_create: Option<String>,
    /// `gmt_payment`: payment time.
    pub gmt_payment: Option<String>,
    /// `gmt_refund`: refund time.
    pub gmt_refund: Option<String>,
    /// `gmt_close`: close time.
    pub gmt_close: Option<String>,
    /// Every parameter of the notification, including the ones above and `sign`.
    pub params: FormParams,
}

impl TradeNotification {
    /// Reads the typed fields from verified parameters. `notify_id`, `notify_time`,
    /// `notify_type`, `app_id`, `trade_no`, `out_trade_no` and `trade_status` are
    /// required (present and not empty).
    pub(super) fn from_params(params: FormParams) -> Result<Self, NotifyError> {
        let req = |name: &'static str| -> Result<String, NotifyError> {
            params
                .get_non_empty(name)
                .map(str::to_owned)
                .ok_or(NotifyError::MissingParam { name })
        };
        let opt = |name: &str| params.get_non_empty(name).map(str::to_owned);
        Ok(TradeNotification {
            notify_id: req("notify_id")?,
            notify_time: req("notify_time")?,
            notify_type: req("notify_type")?,
            app_id: req("app_id")?,
            trade_no: req("trade_no")?,
            out_trade_no: req("out_trade_no")?,
            trade_status: TradeStatus::from(req("trade_status")?.as_str()),
            total_amount: opt("total_amount"),
            receipt_amount: opt("receipt_amount"),
            buyer_pay_amount: opt("buyer_pay_amount"),
            invoice_amount: opt("invoice_amount"),
            point_amount: opt("point_amount"),
            refund_fee: opt("refund_fee"),
            out_biz_no: opt("out_biz_no"),
            buyer_id: opt("buyer_id"),
            seller_id: opt("seller_id"),
            subject: opt("subject"),
            gmt_create: opt("gmt_create"),
            gmt_payment: opt("gmt_payment"),
            gmt_refund: opt("gmt_refund"),
            gmt_close: opt("gmt_close"),
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::FormLimits;

    fn form(body: &str) -> FormParams {
        super::super::form::parse(body.as_bytes(), &FormLimits::default()).unwrap()
    }

    const BASE: &str = "notify_type=trade_status_sync&notify_id=n&notify_time=t&app_id=a\
                        &trade_no=tn&out_trade_no=otn";

    #[test]
    fn statuses() {
        for s in [
            "WAIT_BUYER_PAY",
            "TRADE_SUCCESS",
            "TRADE_FINISHED",
            "TRADE_CLOSED",
            "trade_success",
        ] {
            assert_eq!(TradeStatus::from(s).as_str(), s);
            assert_eq!(TradeStatus::from(s).to_string(), s);
        }
        assert_eq!(
            TradeStatus::from("trade_success"),
            TradeStatus::Other("trade_success".into())
        );
        assert!(TradeStatus::Finished.is_paid());
        assert!(!TradeStatus::Closed.is_paid());
        assert!(!TradeStatus::WaitBuyerPay.is_paid());
    }

    #[test]
    fn fields() {
        let t = TradeNotification::from_params(form(&format!(
            "{BASE}&trade_status=TRADE_CLOSED&total_amount=1.00&refund_fee=1.00&gmt_close="
        )))
        .unwrap();
        assert_eq!(t.trade_status, TradeStatus::Closed);
        assert_eq!(t.total_amount.as_deref(), Some("1.00"));
        assert_eq!(t.refund_fee.as_deref(), Some("1.00"));
        assert_eq!(t.gmt_close, None);
        assert_eq!(t.buyer_id, None);
        assert_eq!(t.params.get("gmt_close"), Some(""));
    }

    #[test]
    fn required_fields() {
        assert_eq!(
            TradeNotification::from_params(form(BASE)).unwrap_err(),
            NotifyError::MissingParam {
                name: "trade_status"
            }
        );
        assert_eq!(
            TradeNotification::from_params(form(&format!(
                "{}&trade_status=TRADE_SUCCESS&out_trade_no=",
                BASE.replace("&out_trade_no=otn", "")
            )))
            .unwrap_err(),
            NotifyError::MissingParam {
                name: "out_trade_no"
            }
        );
    }
}
