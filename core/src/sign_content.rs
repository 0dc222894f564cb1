//! The sign-content rule for parameter sets (PROTOCOL §2 and §10).
//!
//! From a set of `key=value` parameters: drop `sign` (and, under the [`Rule::V1`] rule,
//! `sign_type` too); drop parameters whose key or value is empty by [`is_java_empty`];
//! sort by key in Java's `String` order; join as `k=v` with `&`. Values are used as
//! they are (already URL/form-decoded, never trimmed); the result is then encoded in the
//! charset and signed or verified.
//!
//! The rule is the Java SDK's `AlipaySignature.getSignContent` and
//! `getSignCheckContentV1`/`V2`: `Collections.sort(keys)`, then
//! `if (StringUtils.areNotEmpty(key, value))` append `key=value`.

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

impl Rule {
    /// `V1` or `V2`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::V1 => "V1",
            Rule::V2 => "V2",
        }
    }

    /// The other rule.
    pub const fn other(self) -> Rule {
        match self {
            Rule::V1 => Rule::V2,
            Rule::V2 => Rule::V1,
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the Java SDK's `StringUtils.isEmpty` calls `text` empty: it has no
/// characters, or every character is whitespace by [`is_java_whitespace`]. Used for both
/// keys and values (PROTOCOL §2).
///
/// ```
/// use alipay_msg_core::sign_content::is_java_empty;
/// assert!(is_java_empty("") && is_java_empty(" \t") && is_java_empty("\u{3000}"));
/// assert!(!is_java_empty("\u{a0}") && !is_java_empty(" a "));
/// ```
pub fn is_java_empty(text: &str) -> bool {
    text.chars().all(is_java_whitespace)
}

/// Java's `Character.isWhitespace(char)`, which `StringUtils.isEmpty` applies to every
/// UTF-16 unit of a value.
///
/// True for U+0009–U+000D (tab, LF, VT, FF, CR), U+001C–U+001F (the information
/// separators) and the Unicode space, line and paragraph separators (categories Zs, Zl,
/// Zp) except the no-break spaces U+00A0, U+2007 and U+202F: U+0020, U+1680,
/// U+2000–U+2006, U+2008–U+200A, U+2028, U+2029, U+205F, U+3000. Every one of them is in
/// the BMP, so a surrogate (half of a supplementary character) is never whitespace, and
/// testing Rust `char`s gives the same answer as testing Java's UTF-16 units.
///
/// This is not [`char::is_whitespace`] (Unicode `White_Space`), which also counts
/// U+0085, U+00A0, U+2007 and U+202F and does not count U+001C–U+001F. (U+180E was Zs
/// before Unicode 6.3, so Java 8 alone counts it; this follows Java 9 and later.)
pub const fn is_java_whitespace(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{d}'
            | '\u{1c}'..='\u{20}'
            | '\u{1680}'
            | '\u{2000}'..='\u{2006}'
            | '\u{2008}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// Builds the signed content of a parameter set.
///
/// A parameter is kept when neither its key nor its value [`is_java_empty`]; a value
/// that only starts or ends with whitespace is kept as it is. Keys are sorted in Java's
/// `String.compareTo` order (UTF-16 code units), which is byte order for every ASCII key
/// (all protocol keys are).
///
/// ```
/// use alipay_msg_core::sign_content::{sign_content, Rule};
/// let params = [("sign_type", "RSA2"), ("b", "2"), ("a", "1"), ("empty", ""), ("blank", " "), ("sign", "xx")];
/// assert_eq!(sign_content(params, Rule::V2), "a=1&b=2&sign_type=RSA2");
/// assert_eq!(sign_content(params, Rule::V1), "a=1&b=2");
/// ```
pub fn sign_content<'a, I>(params: I, rule: Rule) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut kept: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|&(k, v)| {
            let left_out = k == "sign" || (rule == Rule::V1 && k == "sign_type");
            !left_out && !is_java_empty(k) && !is_java_empty(v)
        })
        .collect();
    kept.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
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

    #[test]
    fn java_whitespace_is_rust_white_space_with_javas_differences() {
        // Unicode White_Space (Rust's `is_whitespace`) is Zs + Zl + Zp + U+0009–U+000D +
        // U+0085. Java drops U+0085 and the three no-break spaces and adds U+001C–U+001F.
        for c in (0..=0x10_ffff).filter_map(char::from_u32) {
            let java = (c.is_whitespace()
                && !matches!(c, '\u{85}' | '\u{a0}' | '\u{2007}' | '\u{202f}'))
                || ('\u{1c}'..='\u{1f}').contains(&c);
            assert_eq!(is_java_whitespace(c), java, "U+{:04X}", c as u32);
        }
    }
}
