//! Byte-level scans of message JSON that must follow the platform's own rules rather
//! than a JSON parser's: where the signed `data` span is (PROTOCOL §5), and how deep the
//! nesting goes (checked before parsing, so hostile input cannot exhaust the stack).

use std::ops::Range;

/// Finds the signed span of a message: the first `"data"` followed by optional
/// whitespace, `:`, optional whitespace and `{`; the span runs from that `{` to its
/// matching `}` inclusive (PROTOCOL §5).
///
/// Braces are counted only outside JSON strings; a `"` toggles "in string" unless it is
/// preceded by an odd number of backslashes. Returns `None` when there is no such key or
/// the braces never balance.
pub(crate) fn data_span(json: &str) -> Option<Range<usize>> {
    let bytes = json.as_bytes();
    let mut from = 0;
    while let Some(found) = find(&bytes[from..], b"\"data\"") {
        let mut i = from + found + 6;
        i = skip_ws(bytes, i);
        if bytes.get(i) == Some(&b':') {
            i = skip_ws(bytes, i + 1);
            if bytes.get(i) == Some(&b'{') {
                return matching_brace(bytes, i).map(|end| i..end + 1);
            }
        }
        from += found + 1;
    }
    None
}

/// Index of the `}` that closes the `{` at `open`.
fn matching_brace(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut backslashes = 0usize;
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        if in_string {
            match b {
                b'\\' => {
                    backslashes += 1;
                    continue;
                }
                b'"' if backslashes.is_multiple_of(2) => in_string = false,
                _ => {}
            }
            backslashes = 0;
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Deepest nesting of `{`/`[` outside strings. Stops counting once `limit` is passed.
pub(crate) fn nesting_exceeds(json: &str, limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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
    }
}
