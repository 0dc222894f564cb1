//! The charset labels of HTTP notifications (PROTOCOL §10): `utf-8`, `gbk`, `gb2312` and
//! `gb18030`, in any letter case. Wider than [`Charset`], the pair the message channel
//! allows (PROTOCOL §2): the platform documents the notification's `charset` parameter as
//! "utf-8, gbk, gb2312, etc." and integrators receive `gb2312` and `GB18030`.
//!
//! The bytes that are signed are the sign content encoded as the Java SDK's
//! `AlipaySignature.rsaCheckV1/V2` encodes it: `content.getBytes(charset)`, `charset`
//! being the notification's own label, with `?` for a character the charset cannot
//! represent.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::charset::{encode_gbk, Charset};

/// The charset of an HTTP notification, from its `charset` parameter (PROTOCOL §10).
///
/// Parsed from the label case-insensitively: `UTF-8`/`UTF8`, `GBK`, `GB2312`, `GB18030`.
/// [`FormParams::charset_label`](super::FormParams::charset_label) keeps the label as
/// received.
///
/// ```
/// use alipay_msg_core::notify::NotifyCharset;
/// let gb2312: NotifyCharset = "gb2312".parse().unwrap();
/// assert_eq!(gb2312, NotifyCharset::Gb2312);
/// assert_eq!(gb2312.as_str(), "GB2312");
/// // Java's getBytes("GB2312"): 丂 is GBK-only (0x8140), so it becomes '?'.
/// assert_eq!(&*gb2312.encode("测丂"), b"\xb2\xe2?");
/// assert!("latin1".parse::<NotifyCharset>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum NotifyCharset {
    /// UTF-8, also the charset of a notification without a `charset` parameter.
    #[default]
    Utf8,
    /// GBK: Java's `GBK`, `?` for a character GBK lacks (as [`Charset::Gbk`]).
    Gbk,
    /// GB2312: Java's `EUC_CN` encoder, a subset of GBK. A character is encoded as its GBK
    /// bytes when both of them lie in 0xA1–0xFE; any other non-ASCII character (GBK-only
    /// characters included) becomes `?`. Decoded as GBK, its superset.
    Gb2312,
    /// GB18030: maps every code point (four bytes for what GBK lacks), with
    /// [`encoding_rs::GB18030`].
    Gb18030,
}

/// A notification `charset` label this crate does not know (PROTOCOL §10).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported notification charset {name:?}: accepted are UTF-8, GBK, GB2312 and GB18030")]
pub struct UnknownNotifyCharset {
    /// The label as given (truncated to 64 characters).
    pub name: String,
}

impl NotifyCharset {
    /// The canonical (Java) name: `UTF-8`, `GBK`, `GB2312` or `GB18030`.
    pub const fn as_str(self) -> &'static str {
        match self {
            NotifyCharset::Utf8 => "UTF-8",
            NotifyCharset::Gbk => "GBK",
            NotifyCharset::Gb2312 => "GB2312",
            NotifyCharset::Gb18030 => "GB18030",
        }
    }

    /// The message-channel [`Charset`] with the same encoding, for UTF-8 and GBK.
    pub const fn channel_charset(self) -> Option<Charset> {
        match self {
            NotifyCharset::Utf8 => Some(Charset::Utf8),
            NotifyCharset::Gbk => Some(Charset::Gbk),
            NotifyCharset::Gb2312 | NotifyCharset::Gb18030 => None,
        }
    }

    /// Encodes `text` as Java's `String.getBytes(label)` does (the signed bytes of a
    /// notification, `AlipaySignature.rsaCheckV1/V2`). ASCII text and UTF-8 are borrowed.
    pub fn encode(self, text: &str) -> Cow<'_, [u8]> {
        match self {
            NotifyCharset::Utf8 => Cow::Borrowed(text.as_bytes()),
            _ if text.is_ascii() => Cow::Borrowed(text.as_bytes()),
            NotifyCharset::Gbk => Cow::Owned(encode_gbk(text)),
            NotifyCharset::Gb2312 => Cow::Owned(encode_gb2312(text)),
            NotifyCharset::Gb18030 => Cow::Owned(encoding_rs::GB18030.encode(text).0.into_owned()),
        }
    }

    /// Decodes bytes of a form-decoded key or value. Malformed sequences become U+FFFD,
    /// as in Java's `new String(bytes, charset)`. GB2312 is decoded as GBK, its superset,
    /// so a GBK-only character in a `gb2312` body still reads as itself.
    pub fn decode(self, bytes: &[u8]) -> Cow<'_, str> {
        match self {
            NotifyCharset::Utf8 => String::from_utf8_lossy(bytes),
            NotifyCharset::Gbk | NotifyCharset::Gb2312 => {
                encoding_rs::GBK.decode_without_bom_handling(bytes).0
            }
            NotifyCharset::Gb18030 => encoding_rs::GB18030.decode_without_bom_handling(bytes).0,
        }
    }
}

/// Java's GB2312 (`EUC_CN`) encoder, from GBK: keep a two-byte GBK sequence whose bytes
/// both lie in 0xA1–0xFE, write `?` for any other non-ASCII character.
///
/// GBK output (encoding_rs, with `?` already for what GBK lacks) is ASCII bytes, the
/// one-byte 0x80 (€) and two-byte sequences led by 0x81–0xFE, so it splits unambiguously.
fn encode_gb2312(text: &str) -> Vec<u8> {
    let gbk = encode_gbk(text);
    let mut out = Vec::with_capacity(gbk.len());
    let mut i = 0;
    while i < gbk.len() {
        let lead = gbk[i];
        if lead < 0x80 {
            out.push(lead);
            i += 1;
        } else if lead == 0x80 {
            out.push(b'?');
            i += 1;
        } else {
            // A lead byte is always followed by its trail byte in encoder output; a
            // missing one would be a bug, and is written as '?' rather than a panic.
            match gbk.get(i + 1) {
                Some(&trail) if is_euc_cn_byte(lead) && is_euc_cn_byte(trail) => {
                    out.extend_from_slice(&[lead, trail]);
                }
                _ => out.push(b'?'),
            }
            i += 2;
        }
    }
    out
}

/// A byte of a two-byte EUC-CN (GB2312) character: 0xA1–0xFE.
fn is_euc_cn_byte(b: u8) -> bool {
    (0xA1..=0xFE).contains(&b)
}

impl FromStr for NotifyCharset {
    type Err = UnknownNotifyCharset;

    /// Accepts `UTF-8`/`UTF8`, `GBK`, `GB2312` and `GB18030`, in any letter case (Java's
    /// charset names are case-insensitive).
    fn from_str(label: &str) -> Result<Self, Self::Err> {
        let is = |name: &str| label.eq_ignore_ascii_case(name);
        if is("utf-8") || is("utf8") {
            Ok(NotifyCharset::Utf8)
        } else if is("gbk") {
            Ok(NotifyCharset::Gbk)
        } else if is("gb2312") {
            Ok(NotifyCharset::Gb2312)
        } else if is("gb18030") {
            Ok(NotifyCharset::Gb18030)
        } else {
            Err(UnknownNotifyCharset {
                name: label.chars().take(64).collect(),
            })
        }
    }
}

impl From<Charset> for NotifyCharset {
    fn from(charset: Charset) -> Self {
        match charset {
            Charset::Utf8 => NotifyCharset::Utf8,
            Charset::Gbk => NotifyCharset::Gbk,
        }
    }
}

impl fmt::Display for NotifyCharset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_any_case() {
        for (label, charset) in [
            ("utf-8", NotifyCharset::Utf8),
            ("UTF8", NotifyCharset::Utf8),
            ("GBK", NotifyCharset::Gbk),
            ("gb2312", NotifyCharset::Gb2312),
            ("Gb2312", NotifyCharset::Gb2312),
            ("GB18030", NotifyCharset::Gb18030),
            ("gb18030", NotifyCharset::Gb18030),
        ] {
            assert_eq!(label.parse(), Ok(charset), "{label}");
        }
        for label in ["latin1", "gb-2312", "euc-cn", "gb18030-2022", ""] {
            let e = label.parse::<NotifyCharset>().unwrap_err();
            assert_eq!(e.name, label);
        }
        assert_eq!(NotifyCharset::Gb18030.to_string(), "GB18030");
        assert_eq!(NotifyCharset::from(Charset::Gbk), NotifyCharset::Gbk);
        assert_eq!(NotifyCharset::Gb2312.channel_charset(), None);
    }

    #[test]
    fn gb2312_keeps_gbk_bytes_in_the_euc_cn_range() {
        // 测试 is B2E2 CAD4 in GB2312 and GBK alike; full-width ： is A3BA.
        assert_eq!(
            &*NotifyCharset::Gb2312.encode("测试：a"),
            b"\xb2\xe2\xca\xd4\xa3\xbaa"
        );
        // The last GB2312 row (齄 F7FE) and a symbol (· A1A4).
        assert_eq!(&*NotifyCharset::Gb2312.encode("齄·"), b"\xf7\xfe\xa1\xa4");
    }

    #[test]
    fn gb2312_replaces_gbk_only_and_unmappable_characters() {
        // 丂 GBK 8140 (lead < A1), 狜 GBK AA40 (trail < A1), € GBK 80 (one byte),
        // 😀 no GBK mapping: each one '?', ASCII around them kept.
        assert_eq!(&*NotifyCharset::Gb2312.encode("a丂b狜c€d😀e"), b"a?b?c?d?e");
        assert_eq!(&*NotifyCharset::Gbk.encode("丂狜"), b"\x81\x40\xaa\x40");
        // ASCII is one byte and borrowed.
        assert!(matches!(
            NotifyCharset::Gb2312.encode("a=1&b=2"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn gb2312_long_input_crosses_chunks() {
        let text = "订丂".repeat(1500);
        let bytes = NotifyCharset::Gb2312.encode(&text);
        assert_eq!(bytes.len(), 4500);
        assert_eq!(&bytes[..3], b"\xb6\xa9?");
    }

    #[test]
    fn gb18030_maps_everything_and_round_trips() {
        let text = "测试 😀 \u{20000} 丂 €";
        let bytes = NotifyCharset::Gb18030.encode(text);
        assert!(!bytes.contains(&b'?'));
        assert_eq!(NotifyCharset::Gb18030.decode(&bytes), text);
        assert_eq!(&*NotifyCharset::Gb18030.encode("😀"), b"\x94\x39\xfc\x36");
    }

    #[test]
    fn gb2312_decodes_as_gbk() {
        assert_eq!(NotifyCharset::Gb2312.decode(b"\x81\x40\xb2\xe2"), "丂测");
        assert!(NotifyCharset::Utf8.decode(b"\xb2\xe2").contains('\u{FFFD}'));
    }
}
