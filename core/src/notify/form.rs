//! Decoding of an `application/x-www-form-urlencoded` notification body (PROTOCOL §10).
//! The rule is documented on [`FormParams`].

use std::collections::HashSet;
use std::fmt;

use crate::sign_content::{sign_content, Rule};

use super::charset::{NotifyCharset, UnknownNotifyCharset};
use super::NotifyError;

/// Size limits applied while decoding a notification body (PROTOCOL §10).
///
/// ```
/// use alipay_msg_core::notify::FormLimits;
/// let limits = FormLimits::default().with_max_body_len(256 * 1024);
/// assert_eq!(limits.max_body_len, 256 * 1024);
/// assert_eq!(limits.max_params, FormLimits::DEFAULT_MAX_PARAMS);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct FormLimits {
    /// Largest accepted body, in bytes.
    pub max_body_len: usize,
    /// Largest accepted number of (non-empty) parameters.
    pub max_params: usize,
}

impl FormLimits {
    /// Default [`max_body_len`](Self::max_body_len): 64 KiB. Real notifications are a few
    /// KiB at most.
    pub const DEFAULT_MAX_BODY_LEN: usize = 64 * 1024;
    /// Default [`max_params`](Self::max_params): 256. Real notifications carry about 30.
    pub const DEFAULT_MAX_PARAMS: usize = 256;
    /// The default limits.
    pub const DEFAULT: FormLimits = FormLimits {
        max_body_len: Self::DEFAULT_MAX_BODY_LEN,
        max_params: Self::DEFAULT_MAX_PARAMS,
    };

    /// Limits with the given maximum body size (bytes) and parameter count.
    pub const fn new(max_body_len: usize, max_params: usize) -> Self {
        FormLimits {
            max_body_len,
            max_params,
        }
    }

    /// These limits with another maximum body size, in bytes.
    pub const fn with_max_body_len(mut self, max_body_len: usize) -> Self {
        self.max_body_len = max_body_len;
        self
    }

    /// These limits with another maximum parameter count.
    pub const fn with_max_params(mut self, max_params: usize) -> Self {
        self.max_params = max_params;
        self
    }
}

impl Default for FormLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The decoded parameters of a notification body, in body order, with the charset
/// they were decoded in. Keys are unique.
///
/// The decoding rule (PROTOCOL §10), in order:
///
/// 1. The body must be at most [`FormLimits::max_body_len`] bytes
///    ([`NotifyError::BodyTooLarge`]).
/// 2. It is split on `&`; empty pieces (`a=1&&b=2`, a trailing `&`) are skipped. At most
///    [`FormLimits::max_params`] pieces may remain ([`NotifyError::TooManyParams`]).
/// 3. Each piece is split at its first `=`: the left side is the key, the rest the value
///    (a piece without `=` is a key with an empty value). A piece whose key is empty
///    (`=x`) is rejected ([`NotifyError::EmptyKey`]).
/// 4. In keys and values `+` means a space and `%XY` (two hex digits, either case) is
///    the byte `0xXY`. A `%` not followed by two hex digits (`%G1`, a trailing `%`) is
///    rejected ([`NotifyError::BadPercentEncoding`]), as Java's `URLDecoder` does,
///    instead of being passed through.
/// 5. The charset is the value of the body's own `charset` parameter, found among the
///    percent-decoded bytes before anything is read as text (ASCII, any letter case,
///    `UTF-8`, `GBK`, `GB2312` or `GB18030`: [`NotifyCharset`]); when the parameter is
///    absent or empty the body is read as UTF-8; another label is
///    [`NotifyError::UnknownCharset`]. Every key and value is then decoded from bytes in
///    that charset (GB2312 as GBK, its superset); a malformed byte sequence becomes
///    U+FFFD, as Java's `new String(bytes, charset)` does (the signature will then not
///    verify).
/// 6. A key that occurs twice is rejected ([`NotifyError::DuplicateParam`]): a notification with two values for one name
///    is ambiguous and may be an attempt to make the app read a value other than the
///    one that was signed.
///
/// Built by [`parse_form`](super::parse_form) or
/// [`parse_form_with`](super::parse_form_with).
#[derive(Clone, PartialEq, Eq)]
pub struct FormParams {
    charset: NotifyCharset,
    charset_declared: bool,
    pairs: Vec<(String, String)>,
}

impl FormParams {
    /// The value of `key`, if present (an empty value is returned as `Some("")`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` when it is present and not empty.
    pub fn get_non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The parameters as `(key, value)`, in body order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            inner: self.pairs.iter(),
        }
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there is no parameter.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The charset the body was decoded in and its signature is checked in: the body's
    /// `charset` parameter, or UTF-8 when that is absent or empty.
    pub fn charset(&self) -> NotifyCharset {
        self.charset
    }

    /// The charset label as received: the body's `charset` parameter (`gb2312`,
    /// `GB18030`, `utf-8` …, letter case kept) when it is not empty, else the canonical
    /// name of the default, `UTF-8` ([`charset_declared`](Self::charset_declared) tells
    /// the two apart).
    pub fn charset_label(&self) -> &str {
        self.get_non_empty("charset")
            .unwrap_or(NotifyCharset::Utf8.as_str())
    }

    /// Whether the body named its charset (a non-empty `charset` parameter).
    pub fn charset_declared(&self) -> bool {
        self.charset_declared
    }

    /// The signed content of these parameters under `rule` (PROTOCOL §10): every
    /// parameter but `sign` (and `sign_type` under [`Rule::V1`]), empty values skipped,
    /// sorted by key, joined as `k=v` with `&`.
    pub fn sign_content(&self, rule: Rule) -> String {
        sign_content(self.iter(), rule)
    }

    /// The parameters as owned `(key, value)` pairs, in body order.
    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.pairs
    }
}

impl fmt::Debug for FormParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FormParams")
            .field("charset", &self.charset)
            .field("params", &DebugPairs(&self.pairs))
            .finish()
    }
}

struct DebugPairs<'a>(&'a [(String, String)]);

impl fmt::Debug for DebugPairs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

/// Iterator over the parameters of a [`FormParams`], in body order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    inner: std::slice::Iter<'a, (String, String)>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a FormParams {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Longest key quoted in an error.
const QUOTE_MAX: usize = 64;

/// Decodes a notification body; see the module documentation for the rule.
pub(super) fn parse(body: &[u8], limits: &FormLimits) -> Result<FormParams, NotifyError> {
    if body.len() > limits.max_body_len {
        return Err(NotifyError::BodyTooLarge {
            len: body.len(),
            limit: limits.max_body_len,
        });
    }

    // Pass 1: split and percent-decode to bytes. The charset is not known yet.
    let mut raw: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut offset = 0usize;
    for piece in body.split(|&b| b == b'&') {
        let start = offset;
        offset += piece.len() + 1;
        if piece.is_empty() {
            continue;
        }
        if raw.len() == limits.max_params {
            return Err(NotifyError::TooManyParams {
                limit: limits.max_params,
            });
        }
        let (key, value, value_start) = match piece.iter().position(|&b| b == b'=') {
            Some(eq) => (&piece[..eq], &piece[eq + 1..], start + eq + 1),
            None => (piece, &[][..], start + piece.len()),
        };
        if key.is_empty() {
            return Err(NotifyError::EmptyKey { offset: start });
        }
        let key = percent_decode(key, start)?;
        let value = percent_decode(value, value_start)?;
        raw.push((key, value));
    }

    // The charset, from the body's own `charset` parameter.
    let mut charset_value: Option<&[u8]> = None;
    for (k, v) in &raw {
        if k.as_slice() == b"charset" {
            if charset_value.is_some() {
                return Err(NotifyError::DuplicateParam {
                    key: "charset".to_owned(),
                });
            }
            charset_value = Some(v);
        }
    }
    let (charset, charset_declared) = match charset_value {
        None | Some(b"") => (NotifyCharset::Utf8, false),
        Some(name) => match std::str::from_utf8(name) {
            Ok(name) if name.is_ascii() => (name.parse::<NotifyCharset>()?, true),
            _ => {
                return Err(NotifyError::UnknownCharset(UnknownNotifyCharset {
                    name: String::from_utf8_lossy(name)
                        .chars()
                        .take(QUOTE_MAX)
                        .collect(),
                }))
            }
        },
    };

    // Pass 2: bytes to text, and uniqueness of keys (on the decoded text, which is what
    // the signed content and the app see).
    let mut pairs = Vec::with_capacity(raw.len());
    let mut seen: HashSet<String> = HashSet::with_capacity(raw.len());
    for (k, v) in &raw {
        let key = charset.decode(k).into_owned();
        let value = charset.decode(v).into_owned();
        if !seen.insert(key.clone()) {
            return Err(NotifyError::DuplicateParam {
                key: key.chars().take(QUOTE_MAX).collect(),
            });
        }
        pairs.push((key, value));
    }

    Ok(FormParams {
        charset,
        charset_declared,
        pairs,
    })
}

/// Form-decodes one key or value to bytes: `+` is a space, `%XY` a byte. `base` is the
/// offset of `input` in the body, for error reporting.
fn percent_decode(input: &[u8], base: usize) -> Result<Vec<u8>, NotifyError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = input.get(i + 1).copied().and_then(hex_value);
                let lo = input.get(i + 2).copied().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi << 4) | lo);
                        i += 3;
                    }
                    _ => {
                        return Err(NotifyError::BadPercentEncoding { offset: base + i });
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_default(body: &[u8]) -> Result<FormParams, NotifyError> {
        parse(body, &FormLimits::default())
    }

    fn pairs(body: &[u8]) -> Vec<(String, String)> {
        parse_default(body).unwrap().into_pairs()
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn plus_is_space_and_encoded_plus_is_plus() {
        assert_eq!(
            pairs(b"a=x+y&b=x%2By&c=x%2by&d=%20"),
            [p("a", "x y"), p("b", "x+y"), p("c", "x+y"), p("d", " ")]
        );
    }

    #[test]
    fn keys_are_decoded_too() {
        assert_eq!(pairs(b"a%5Fb=1&c+d=2"), [p("a_b", "1"), p("c d", "2")]);
    }

    #[test]
    fn first_equals_splits_the_rest_is_value() {
        assert_eq!(
            pairs(b"sign=ab==&k==&n"),
            [p("sign", "ab=="), p("k", "="), p("n", "")]
        );
    }

    #[test]
    fn empty_pieces_are_skipped() {
        assert_eq!(pairs(b"&a=1&&b=2&"), [p("a", "1"), p("b", "2")]);
        assert!(parse_default(b"").unwrap().is_empty());
        assert!(parse_default(b"&&&").unwrap().is_empty());
    }

    #[test]
    fn bad_percent_escapes_are_errors() {
        for (body, at) in [
            (&b"a=%G1"[..], 2),
            (b"a=1&b=%", 6),
            (b"a=%4", 2),
            (b"a=%4g", 2),
            (b"abc=1&x%zz=1", 7),
            (b"a=%%31", 2),
        ] {
            match parse_default(body) {
                Err(NotifyError::BadPercentEncoding { offset }) => {
                    assert_eq!(offset, at, "{body:?}")
                }
                other => panic!("{body:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn empty_key_is_an_error() {
        assert!(matches!(
            parse_default(b"a=1&=x"),
            Err(NotifyError::EmptyKey { offset: 4 })
        ));
        assert!(matches!(
            parse_default(b"="),
            Err(NotifyError::EmptyKey { offset: 0 })
        ));
    }

    #[test]
    fn gbk_body() {
        let form = parse_default(b"subject=%B2%E2%CA%D4&charset=GBK").unwrap();
        assert_eq!(form.charset(), NotifyCharset::Gbk);
        assert!(form.charset_declared());
        assert_eq!(form.get("subject"), Some("测试"));
        // The charset name is case-insensitive, and may come after the values.
        let form = parse_default(b"charset=gbk&subject=%B2%E2%CA%D4").unwrap();
        assert_eq!(form.get("subject"), Some("测试"));
    }

    #[test]
    fn gb2312_and_gb18030_bodies() {
        // GB2312 bodies are read as GBK: 测 (B2E2) and the GBK-only 丂 (8140).
        let form = parse_default(b"subject=%B2%E2%81%40&charset=Gb2312").unwrap();
        assert_eq!(form.charset(), NotifyCharset::Gb2312);
        assert_eq!(form.charset_label(), "Gb2312");
        assert_eq!(form.get("subject"), Some("测丂"));
        // GB18030's four-byte sequences: U+1F600.
        let form = parse_default(b"charset=GB18030&subject=%94%39%FC%36%B2%E2").unwrap();
        assert_eq!(form.charset(), NotifyCharset::Gb18030);
        assert_eq!(form.charset_label(), "GB18030");
        assert_eq!(form.get("subject"), Some("😀测"));
    }

    #[test]
    fn utf8_is_the_default() {
        let form = parse_default("subject=%E6%B5%8B%E8%AF%95".as_bytes()).unwrap();
        assert_eq!(form.charset(), NotifyCharset::Utf8);
        assert!(!form.charset_declared());
        assert_eq!(form.charset_label(), "UTF-8");
        assert_eq!(form.get("subject"), Some("测试"));
        let form = parse_default(b"charset=&a=1").unwrap();
        assert_eq!(form.charset(), NotifyCharset::Utf8);
        assert!(!form.charset_declared());
    }

    #[test]
    fn gbk_bytes_read_as_utf8_are_replaced_not_fatal() {
        let form = parse_default(b"subject=%B2%E2&charset=utf-8").unwrap();
        assert!(form.get("subject").unwrap().contains('\u{FFFD}'));
    }

    #[test]
    fn unknown_charset() {
        match parse_default(b"charset=latin1&a=1") {
            Err(NotifyError::UnknownCharset(e)) => assert_eq!(e.name, "latin1"),
            other => panic!("{other:?}"),
        }
        // Not ASCII.
        assert!(matches!(
            parse_default(b"charset=%FF%FE"),
            Err(NotifyError::UnknownCharset(_))
        ));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        match parse_default(b"a=1&b=2&a=1") {
            Err(NotifyError::DuplicateParam { key }) => assert_eq!(key, "a"),
            other => panic!("{other:?}"),
        }
        // Same key written differently.
        assert!(matches!(
            parse_default(b"total_amount=1&total%5Famount=2"),
            Err(NotifyError::DuplicateParam { .. })
        ));
        assert!(matches!(
            parse_default(b"charset=utf-8&charset=gbk"),
            Err(NotifyError::DuplicateParam { .. })
        ));
    }

    #[test]
    fn body_size_limit() {
        let limits = FormLimits::new(8, 10);
        assert!(parse(b"a=1234567", &limits).is_err());
        assert!(parse(b"a=123456", &limits).is_ok());
        match parse(b"a=1234567", &limits) {
            Err(NotifyError::BodyTooLarge { len: 9, limit: 8 }) => {}
            other => panic!("{other:?}"),
        }
        let big = vec![b'a'; FormLimits::DEFAULT_MAX_BODY_LEN + 1];
        assert!(matches!(
            parse_default(&big),
            Err(NotifyError::BodyTooLarge { .. })
        ));
    }

    #[test]
    fn param_count_limit() {
        let limits = FormLimits::default().with_max_params(3);
        assert_eq!(parse(b"a&b&c&&", &limits).unwrap().len(), 3);
        assert!(matches!(
            parse(b"a&b&c&d", &limits),
            Err(NotifyError::TooManyParams { limit: 3 })
        ));
        let body = (0..=FormLimits::DEFAULT_MAX_PARAMS)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join("&");
        assert!(matches!(
            parse_default(body.as_bytes()),
            Err(NotifyError::TooManyParams { limit: 256 })
        ));
    }

    #[test]
    fn accessors_and_order() {
        let form = parse_default(b"b=2&a=&c=3").unwrap();
        assert_eq!(
            form.iter().collect::<Vec<_>>(),
            [("b", "2"), ("a", ""), ("c", "3")]
        );
        assert_eq!(form.get("a"), Some(""));
        assert_eq!(form.get_non_empty("a"), None);
        assert!(form.contains_key("c"));
        assert!(!form.contains_key("d"));
        assert_eq!(form.sign_content(Rule::V1), "b=2&c=3");
        assert_eq!(form.iter().len(), 3);
    }

    #[test]
    fn arbitrary_bytes_do_not_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let alphabet = b"a=&%+0F9gG\xb2\xe2\xff c";
        for len in 0..200 {
            let body: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            let _ = parse_default(&body);
        }
    }
}
