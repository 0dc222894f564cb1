//! Byte-level scans of message JSON that must follow the platform's own rules rather
//! than a JSON parser's: where the signed `data` span is (PROTOCOL §5), and how deep the
//! nesting goes (checked before parsing, so hostile input cannot exhaust the stack).

use std::sync::LazyLock;

use memchr::{memchr2, memmem};

/// Finds the signed span of a message: the first `"data"` followed by optional
/// whitespace, `:`, optional whitespace and `{`; the span runs from that `{` to its
/// matching `}` inclusive (PROTOCOL §5).
///
/// Braces are counted only outside JSON strings; a `"` toggles "in string" unless it is
/// preceded by an odd number of backslashes. Returns `None` when there is no such key or
/// the braces never balance.
///
/// The reference the parser's fast path ([`data_open`] + the parser's own object end)
/// is checked against, by the tests and the fuzz targets.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn data_span(json: &str) -> Option<std::ops::Range<usize>> {
    let open = data_open(json)?;
    matching_brace(json.as_bytes(), open).map(|end| open..end + 1)
}

/// Where the signed span starts: the `{` after the first `"data"` key that opens an
/// object (the first half of [`data_span`]).
///
/// When a JSON parser has already found a well-formed `data` object starting at this
/// very byte, the span's end needs no second scan: brace counting outside strings over
/// well-formed JSON ends exactly where the parser's object ends.
pub(crate) fn data_open(json: &str) -> Option<usize> {
    static DATA_KEY: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"\"data\""));
    let bytes = json.as_bytes();
    let mut from = 0;
    while let Some(found) = DATA_KEY.find(&bytes[from..]) {
        let mut i = from + found + 6;
        i = skip_ws(bytes, i);
        if bytes.get(i) == Some(&b':') {
            i = skip_ws(bytes, i + 1);
            if bytes.get(i) == Some(&b'{') {
                return Some(i);
            }
        }
        from += found + 1;
    }
    None
}

/// The `{` of the object whose first member is `"key":` followed by the value at
/// `value_start`: walks back over whitespace, `:`, whitespace, the key written plainly
/// and whitespace. `None` when anything else is in between (another member before it,
/// an escaped key).
pub(crate) fn object_start_before(bytes: &[u8], value_start: usize, key: &str) -> Option<usize> {
    let colon = skip_ws_back(bytes, value_start)?;
    if bytes[colon] != b':' {
        return None;
    }
    let quote = skip_ws_back(bytes, colon)?;
    let key_start = quote.checked_sub(key.len() + 1)?;
    if bytes[quote] != b'"'
        || bytes[key_start] != b'"'
        || &bytes[key_start + 1..quote] != key.as_bytes()
    {
        return None;
    }
    let open = skip_ws_back(bytes, key_start)?;
    (bytes[open] == b'{').then_some(open)
}

/// The `}` right after the value ending at `value_end` (past whitespace): the close of
/// the object when that value is its last member.
pub(crate) fn object_end_after(bytes: &[u8], value_end: usize) -> Option<usize> {
    let close = skip_ws(bytes, value_end);
    (bytes.get(close) == Some(&b'}')).then_some(close)
}

/// The last non-whitespace byte before `end`.
fn skip_ws_back(bytes: &[u8], end: usize) -> Option<usize> {
    bytes[..end]
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Where the header block of a frame ends: the first `\r\n\r\n` (PROTOCOL §4).
pub(crate) fn header_end(text: &str) -> Option<usize> {
    static BLANK_LINE: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"\r\n\r\n"));
    BLANK_LINE.find(text.as_bytes())
}

/// Index of the `}` that closes the `{` at `open`.
#[cfg(any(test, feature = "fuzzing"))]
fn matching_brace(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    loop {
        i += memchr::memchr3(b'"', b'{', b'}', bytes.get(i..)?)?;
        match bytes[i] {
            b'"' => i = string_end(bytes, i + 1)?,
            b'{' => depth += 1,
            _ => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
}

/// Index of the `"` that closes a string whose content starts at `i`: a backslash
/// escapes the byte after it, which is the same as "a quote preceded by an odd number
/// of backslashes does not close".
fn string_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i += memchr2(b'"', b'\\', bytes.get(i..)?)?;
        if bytes[i] == b'"' {
            return Some(i);
        }
        i += 2;
    }
}

/// Deepest nesting of `{`/`[` outside strings. Stops counting once `limit` is passed.
pub(crate) fn nesting_exceeds(json: &str, limit: usize) -> bool {
    let bytes = json.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => match string_end(bytes, i + 1) {
                Some(end) => i = end,
                // An unterminated string: nothing after it nests.
                None => return false,
            },
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(json: &str) -> Option<&str> {
        data_span(json).map(|r| &json[r])
    }

    #[test]
    fn finds_the_data_object_with_whitespace() {
        assert_eq!(
            span(r#"{"protocol":{},"data" : {"a":{"b":1}} }"#),
            Some(r#"{"a":{"b":1}}"#)
        );
        assert_eq!(span("{\"data\"\n:\t{}}"), Some("{}"));
    }

    #[test]
    fn braces_and_quotes_inside_strings() {
        let json = r#"{"data":{"s":"a } { \" \\","t":"\\\"}"}}"#;
        assert_eq!(span(json), Some(r#"{"s":"a } { \" \\","t":"\\\"}"}"#));
    }

    #[test]
    fn data_key_must_open_an_object() {
        assert_eq!(span(r#"{"data":"x","data":{"k":1}}"#), Some(r#"{"k":1}"#));
        assert_eq!(span(r#"{"data":[1]}"#), None);
        assert_eq!(span(r#"{"data":{"unbalanced":{"x":1}"#), None);
        assert_eq!(span(""), None);
    }

    #[test]
    fn nesting() {
        assert!(!nesting_exceeds(r#"{"a":[{"b":"[[[["}]}"#, 3));
        assert!(nesting_exceeds(r#"{"a":[{"b":[]}]}"#, 3));
        assert!(!nesting_exceeds("]]]]}", 1));
        assert!(!nesting_exceeds(r#"{"a":"unterminated [[[[\"#, 2));
        assert!(nesting_exceeds(r#"[[["\\"]]]"#, 2));
        assert!(!nesting_exceeds(r#"[["\\\"[[["]]"#, 2));
    }

    #[test]
    fn walking_out_from_members() {
        let json = r#"{"data" : { "header" :{"a":1} , "content":{"b":2}  } }"#;
        let value = json.find("{\"a\"").unwrap();
        let open = object_start_before(json.as_bytes(), value, "header").unwrap();
        assert_eq!(Some(open), data_open(json));
        let end = json.find("{\"b\":2}").unwrap() + 7;
        let close = object_end_after(json.as_bytes(), end).unwrap();
        assert_eq!(data_span(json), Some(open..close + 1));
        // Another member first, a different key, an escaped key: no.
        for json in [
            r#"{"x":1,"header":{}}"#,
            r#"{"heade":{}}"#,
            r#"{"he\u0061der":{}}"#,
        ] {
            let value = json.rfind('{').unwrap();
            assert_eq!(
                object_start_before(json.as_bytes(), value, "header"),
                None,
                "{json}"
            );
        }
        assert_eq!(object_end_after(b"{} ,", 2), None);
    }

    #[test]
    fn data_open_is_the_start_of_the_span() {
        for json in [
            r#"{"protocol":{},"data" : {"a":{"b":1}} }"#,
            r#"{"data":"x","data":{"k":1}}"#,
            r#"{"x":"\"data\":{","data":{}}"#,
        ] {
            assert_eq!(data_open(json), data_span(json).map(|r| r.start), "{json}");
        }
        assert_eq!(data_open(r#"{"data":[1]}"#), None);
    }
}
