//! The sign-content rule for parameter sets (PROTOCOL §2 and §10).
//!
//! From a set of `key=value` parameters: drop `sign` (and, under the [`Rule::V1`] rule,
//! `sign_type` too); drop parameters whose value is empty; sort by key in byte order;
//! join as `k=v` with `&`. Values are used as they are (already URL/form-decoded); the
//! result is then encoded in the charset and signed or verified.

/// Which parameters the signed content leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Rule {
    /// Leaves out `sign` and `sign_type` (the platform SDKs' `rsaCheckV1`, used for
    /// payment notifications).
    V1,
    /// Leaves out only `sign` (`rsaCheckV2`; register and websocket parameters).
    #[default]
    V2,
}

/// Builds the signed content of a parameter set.
///
/// Keys are compared as bytes, which is the same order as the platform's Java
/// `TreeMap<String, _>` for every key that is ASCII (all protocol keys are).
///
/// ```
/// use alipay_msg_core::sign_content::{sign_content, Rule};
/// let params = [("sign_type", "RSA2"), ("b", "2"), ("a", "1"), ("empty", ""), ("sign", "xx")];
/// assert_eq!(sign_content(params, Rule::V2), "a=1&b=2&sign_type=RSA2");
/// assert_eq!(sign_content(params, Rule::V1), "a=1&b=2");
/// ```
pub fn sign_content<'a, I>(params: I, rule: Rule) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut kept: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|&(k, v)| !v.is_empty() && k != "sign" && !(rule == Rule::V1 && k == "sign_type"))
        .collect();
    kept.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let len = kept.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = String::with_capacity(len);
    for (i, (k, v)) in kept.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_set() {
        assert_eq!(sign_content([], Rule::V2), "");
        assert_eq!(sign_content([("sign", "x")], Rule::V1), "");
    }

    #[test]
    fn byte_order_not_locale_order() {
        assert_eq!(
            sign_content(
                [("b", "1"), ("B", "2"), ("a_b", "3"), ("aB", "4")],
                Rule::V2
            ),
            "B=2&aB=4&a_b=3&b=1"
        );
    }
}
