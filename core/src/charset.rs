//! Character sets of signed content (PROTOCOL §2, §5, §10).
//!
//! Everything the platform signs is a string encoded in the charset named next to it
//! (`charset` parameter, `x-charset` field). Signatures are made and checked over those
//! bytes, so the encoder must produce exactly the bytes the platform's Java SDK produces:
//! `String.getBytes(charset)`, which replaces a character the charset cannot represent
//! with `?`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// A charset the protocol allows: `UTF-8` or `GBK` (PROTOCOL §2; §7 lists
/// `msg.invalid-charset (gbk, utf-8)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Charset {
    /// UTF-8, the default.
    #[default]
    Utf8,
    /// GBK (Chinese national standard, a superset of GB 2312).
    Gbk,
}

/// A charset name the protocol does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported charset {name:?}: the platform accepts UTF-8 and GBK")]
pub struct UnknownCharset {
    /// The name as given (truncated to 64 characters).
    pub name: String,
}

impl Charset {
    /// The name written on the wire (`UTF-8` or `GBK`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::Gbk => "GBK",
        }
    }

    /// Encodes `text` the way Java's `String.getBytes(charset)` does: characters GBK
    /// cannot represent become `?`. UTF-8 is borrowed without a copy.
    pub fn encode(self, text: &str) -> Cow<'_, [u8]> {
        match self {
            Charset::Utf8 => Cow::Borrowed(text.as_bytes()),
            Charset::Gbk if text.is_ascii() => Cow::Borrowed(text.as_bytes()),
            Charset::Gbk => Cow::Owned(encode_gbk(text)),
        }
    }

    /// Decodes `bytes` in this charset. Malformed sequences become U+FFFD, as in Java's
    /// `new String(bytes, charset)`.
    pub fn decode(self, bytes: &[u8]) -> Cow<'_, str> {
        match self {
            Charset::Utf8 => String::from_utf8_lossy(bytes),
            Charset::Gbk => encoding_rs::GBK.decode_without_bom_handling(bytes).0,
        }
    }
}

/// Bytes that are not valid text in the charset they were read in (PROTOCOL §4: the
/// platform's client closes with 1007 on a text frame that does not decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bytes are not valid {charset}: malformed sequence at byte {offset}")]
pub struct MalformedText {
    /// The charset the bytes were decoded in.
    pub charset: Charset,
    /// Where the first malformed sequence starts, in bytes from the start.
    pub offset: usize,
}

impl Charset {
    /// Decodes `bytes` in this charset, refusing malformed sequences instead of replacing
    /// them (unlike [`Charset::decode`]): for text whose bytes are signed, where a
    /// replacement would change what is verified. UTF-8 is borrowed without a copy.
    pub fn decode_strict(self, bytes: &[u8]) -> Result<Cow<'_, str>, MalformedText> {
        match self {
            Charset::Utf8 => {
                std::str::from_utf8(bytes)
                    .map(Cow::Borrowed)
                    .map_err(|e| MalformedText {
                        charset: self,
                        offset: e.valid_up_to(),
                    })
            }
            Charset::Gbk => {
                use encoding_rs::DecoderResult;
                let mut decoder = encoding_rs::GBK.new_decoder_without_bom_handling();
                let capacity = decoder
                    .max_utf8_buffer_length_without_replacement(bytes.len())
                    .unwrap_or(usize::MAX);
                let mut text = String::with_capacity(capacity.min(bytes.len() * 3 + 16));
                let (result, read) =
                    decoder.decode_to_string_without_replacement(bytes, &mut text, true);
                match result {
                    DecoderResult::InputEmpty => Ok(Cow::Owned(text)),
                    DecoderResult::Malformed(bad, extra) => Err(MalformedText {
                        charset: self,
                        offset: read.saturating_sub(usize::from(bad) + usize::from(extra)),
                    }),
                    // The capacity is the decoder's own bound for the whole input.
                    DecoderResult::OutputFull => Err(MalformedText {
                        charset: self,
                        offset: read,
                    }),
                }
            }
        }
    }
}

/// GBK encoding with Java's replacement rule (`?` for an unmappable character).
pub(crate) fn encode_gbk(text: &str) -> Vec<u8> {
    use encoding_rs::EncoderResult;
    let mut encoder = encoding_rs::GBK.new_encoder();
    // GBK needs at most two bytes per character; UTF-8 at least one byte per character.
    let mut out = Vec::with_capacity(text.len() * 2 + 16);
    let mut rest = text;
    loop {
        let mut chunk = [0u8; 1024];
        let (result, read, written) =
            encoder.encode_from_utf8_without_replacement(rest, &mut chunk, true);
        out.extend_from_slice(&chunk[..written]);
        rest = &rest[read..];
        match result {
            EncoderResult::InputEmpty => return out,
            EncoderResult::OutputFull => {}
            EncoderResult::Unmappable(_) => out.push(b'?'),
        }
    }
}

impl FromStr for Charset {
    type Err = UnknownCharset;

    /// Accepts `UTF-8`/`UTF8` and `GBK`, in any letter case (the names are case-insensitive
    /// in the platform's Java SDK too).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        if name.eq_ignore_ascii_case("utf-8") || name.eq_ignore_ascii_case("utf8") {
            Ok(Charset::Utf8)
        } else if name.eq_ignore_ascii_case("gbk") {
            Ok(Charset::Gbk)
        } else {
            Err(UnknownCharset {
                name: name.chars().take(64).collect(),
            })
        }
    }
}

impl fmt::Display for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!("utf-8".parse(), Ok(Charset::Utf8));
        assert_eq!("UTF8".parse(), Ok(Charset::Utf8));
        assert_eq!("gbk".parse(), Ok(Charset::Gbk));
        assert!("latin1".parse::<Charset>().is_err());
        assert_eq!(Charset::Gbk.to_string(), "GBK");
    }

    #[test]
    fn gbk_round_trip_and_java_replacement() {
        let text = "测试订单 Test Order";
        let bytes = Charset::Gbk.encode(text);
        assert_eq!(&bytes[..4], &[0xb2, 0xe2, 0xca, 0xd4]);
        assert_eq!(Charset::Gbk.decode(&bytes), text);
        // U+1F600 has no GBK mapping: Java writes '?'.
        assert_eq!(&*Charset::Gbk.encode("a😀b"), b"a?b");
    }

    #[test]
    fn strict_decode_refuses_what_lossy_decode_replaces() {
        let gbk = Charset::Gbk.encode("订单ab");
        assert_eq!(Charset::Gbk.decode_strict(&gbk).unwrap(), "订单ab");
        assert_eq!(
            Charset::Utf8.decode_strict("订单".as_bytes()).unwrap(),
            "订单"
        );
        // GBK bytes are not UTF-8: refused at the first byte.
        let err = Charset::Utf8.decode_strict(&gbk).unwrap_err();
        assert_eq!((err.charset, err.offset), (Charset::Utf8, 0));
        // A lone lead byte after "ab" in GBK, and 0xFF, which GBK never uses.
        let err = Charset::Gbk.decode_strict(b"ab\x81").unwrap_err();
        assert_eq!((err.charset, err.offset), (Charset::Gbk, 2));
        let err = Charset::Gbk.decode_strict(b"abc\xff").unwrap_err();
        assert_eq!(err.offset, 3);
        assert!(Charset::Gbk.decode(b"abc\xff").contains('\u{fffd}'));
    }

    #[test]
    fn gbk_long_input_crosses_chunks() {
        let text = "订".repeat(3000);
        let bytes = Charset::Gbk.encode(&text);
        assert_eq!(bytes.len(), 6000);
        assert_eq!(Charset::Gbk.decode(&bytes), text);
    }
}
