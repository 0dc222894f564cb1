//! Distinguished names in RFC 2253 form exactly as Java prints them (PROTOCOL §9).
//!
//! The cert SN hashes `X509Certificate.getIssuerX500Principal().getName()`, i.e. the
//! JDK's `X500Name.getRFC2253Name()`. That output differs from other RFC 2253 / 4514
//! printers (OpenSSL, x509-parser's `Display`), so it is re-implemented here rule by
//! rule from the JDK's `sun.security.x509.X500Name`, `RDN` and `AVA`:
//!
//! * RDNs in reverse order of the encoding, joined with `,` (no spaces); an empty
//!   name prints as the empty string.
//! * The AVAs of a multi-valued RDN in encoding order, joined with `+`.
//! * Attribute type: the keyword when the JDK's table marks it RFC 2253-compliant —
//!   `CN C L ST O OU STREET DC UID` — otherwise the dotted OID (so `emailAddress` is
//!   `1.2.840.113549.1.9.1` and `serialNumber` is `2.5.4.5`).
//! * Value printed as `#` + lowercase hex of the value's complete DER encoding (tag,
//!   length, content) when the type is a dotted OID, or when the value is not one of
//!   PrintableString, T61String, IA5String, GeneralString, BMPString, UTF8String
//!   (NumericString, VisibleString, UniversalString, non-strings all go to hex).
//! * Otherwise the content octets are decoded **as UTF-8 whatever the string type**
//!   (a JDK quirk: a BMPString's UTF-16 octets come out with NUL characters), invalid
//!   UTF-8 becomes U+FFFD, and then:
//!   - each of `, = + < > # ; " \` — anywhere in the value, not only a leading `#` —
//!     gets a `\` in front;
//!   - a NUL character becomes `\00`;
//!   - every other character, non-ASCII and control characters included, is kept
//!     as is;
//!   - finally each leading and each trailing space or carriage return (of the
//!     escaped text) gets a `\` in front.
//!
//! Checked against `X500Principal.getName()` of OpenJDK 17 for every case in the
//! tests below. JDK 25 differs in one corner only: it decodes T61String as
//! ISO-8859-1 and BMPString as UTF-16, where JDK 8–17 (and the Java SDK's usual
//! runtimes) decode them as UTF-8; the older behaviour is kept. Names made of
//! PrintableString / UTF8String / IA5String values — what CAs issue — print the same
//! on all of them.

use x509_parser::der_parser::asn1_rs::{Any, Class};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use super::serial::unsigned_decimal;

/// The JDK's RFC 2253 keyword table (`AVAKeyword` entries marked RFC 2253-compliant).
const RFC2253_KEYWORDS: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// Universal tag numbers the JDK prints as strings in RFC 2253 output
/// (`AVA.isDerString(value, false)`).
const STRING_TAGS: &[u32] = &[
    12, // UTF8String
    19, // PrintableString
    20, // T61String
    22, // IA5String
    27, // GeneralString
    30, // BMPString
];

/// Characters the JDK escapes with a backslash anywhere in a value.
const ESCAPEES: &[char] = &[',', '=', '+', '<', '>', '#', ';', '"', '\\'];

/// Renders a name as Java's `X500Principal.getName()` does (PROTOCOL §9).
///
/// Fails only on an attribute type OID whose encoding is malformed.
pub(crate) fn rfc2253_name(name: &X509Name<'_>) -> Result<String, String> {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, ava) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            push_ava(&mut out, ava)?;
        }
    }
    Ok(out)
}

/// Appends one `type=value` in the JDK's RFC 2253 form.
fn push_ava(out: &mut String, ava: &AttributeTypeAndValue<'_>) -> Result<(), String> {
    let oid = oid_dotted(ava.attr_type().as_bytes())
        .ok_or_else(|| "malformed attribute type OID in a name".to_string())?;
    let keyword = RFC2253_KEYWORDS
        .iter()
        .find(|(dotted, _)| *dotted == oid)
        .map(|(_, kw)| *kw);
    let value = ava.attr_value();
    match keyword {
        Some(kw) if is_printed_as_string(value) => {
            out.push_str(kw);
            out.push('=');
            out.push_str(&escape_value(&String::from_utf8_lossy(value.data)));
        }
        Some(kw) => {
            out.push_str(kw);
            out.push('=');
            push_der_hex(out, value);
        }
        None => {
            out.push_str(&oid);
            out.push('=');
            push_der_hex(out, value);
        }
    }
    Ok(())
}

/// Whether the JDK prints this value as a string (universal, primitive, one of
/// [`STRING_TAGS`]); anything else is printed as `#hex`.
fn is_printed_as_string(value: &Any<'_>) -> bool {
    value.header.class() == Class::Universal
        && value.header.is_primitive()
        && STRING_TAGS.contains(&value.header.tag().0)
}

/// Escapes a decoded value the way the JDK's `AVA.toRFC2253String` does.
pub(crate) fn escape_value(value: &str) -> String {
    let mut escaped: Vec<char> = Vec::with_capacity(value.len() + 8);
    for c in value.chars() {
        if ESCAPEES.contains(&c) {
            escaped.push('\\');
            escaped.push(c);
        } else if c == '\0' {
            escaped.extend(['\\', '0', '0']);
        } else {
            escaped.push(c);
        }
    }
    let is_ws = |c: &char| *c == ' ' || *c == '\r';
    let lead = escaped.iter().take_while(|c| is_ws(c)).count();
    let trail_start = escaped.len() - escaped.iter().rev().take_while(|c| is_ws(c)).count();
    let mut out = String::with_capacity(escaped.len() + 4);
    for (i, c) in escaped.iter().enumerate() {
        // An all-blank value has lead == len and trail_start == 0: every char escaped.
        if i < lead || i >= trail_start {
            out.push('\\');
        }
        out.push(*c);
    }
    out
}

/// Appends `#` and the lowercase hex of the value's DER encoding (tag as encoded,
/// minimal definite length, content), like the JDK's `DerValue.toByteArray()`.
fn push_der_hex(out: &mut String, value: &Any<'_>) {
    let mut der = Vec::with_capacity(value.data.len() + 8);
    match value.header.raw_tag() {
        Some(raw) => der.extend_from_slice(raw),
        None => push_tag(&mut der, value),
    }
    push_der_length(&mut der, value.data.len());
    der.extend_from_slice(value.data);
    out.push('#');
    for b in der {
        out.push_str(&format!("{b:02x}"));
    }
}

/// Identifier octets for a header that did not keep its raw tag bytes.
fn push_tag(der: &mut Vec<u8>, value: &Any<'_>) {
    let class_bits = (value.header.class() as u8) << 6;
    let constructed = if value.header.is_constructed() {
        0x20
    } else {
        0
    };
    let number = value.header.tag().0;
    if number < 31 {
        // number < 31 fits in the low five bits.
        der.push(class_bits | constructed | number as u8);
    } else {
        der.push(class_bits | constructed | 0x1f);
        let mut groups = Vec::new();
        let mut n = number;
        loop {
            groups.push((n & 0x7f) as u8);
            n >>= 7;
            if n == 0 {
                break;
            }
        }
        let last = groups.len() - 1; // groups holds at least one element
        for (i, g) in groups.iter().rev().enumerate() {
            der.push(if i < last { g | 0x80 } else { *g });
        }
    }
}

/// DER definite length octets (short form below 128, else minimal long form).
fn push_der_length(der: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        der.push(len as u8); // < 0x80, fits
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = &bytes[skip..];
        der.push(0x80 | significant.len() as u8); // at most 8 octets
        der.extend_from_slice(significant);
    }
}

/// Dotted-decimal form of an OID's content octets, any arc size. `None` when the
/// encoding is malformed (empty, truncated, or a sub-identifier padded with 0x80).
pub(crate) fn oid_dotted(content: &[u8]) -> Option<String> {
    let mut arcs: Vec<String> = Vec::new();
    let mut groups: Vec<u8> = Vec::new();
    for &b in content {
        if groups.is_empty() && b == 0x80 {
            return None; // non-minimal sub-identifier
        }
        groups.push(b & 0x7f);
        if b & 0x80 == 0 {
            let first = arcs.is_empty();
            if first {
                let (a, b) = first_arcs(&groups);
                arcs.push(a.to_string());
                arcs.push(b);
            } else {
                arcs.push(unsigned_decimal(&pack_base128(&groups)));
            }
            groups.clear();
        }
    }
    if !groups.is_empty() || arcs.is_empty() {
        return None;
    }
    Some(arcs.join("."))
}

/// Splits the first sub-identifier into the first two arcs (X.690 8.19.4).
fn first_arcs(groups: &[u8]) -> (u8, String) {
    let packed = pack_base128(groups);
    let significant: Vec<u8> = packed.iter().copied().skip_while(|b| *b == 0).collect();
    match significant.as_slice() {
        [] => (0, "0".to_string()),
        [v] if *v < 40 => (0, v.to_string()),
        [v] if *v < 80 => (1, (v - 40).to_string()),
        _ => {
            let mut big = significant;
            sub_be(&mut big, 80);
            (2, unsigned_decimal(&big))
        }
    }
}

/// Packs base-128 digits (most significant first) into big-endian octets.
fn pack_base128(groups: &[u8]) -> Vec<u8> {
    let mut le = Vec::with_capacity(groups.len());
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &g in groups.iter().rev() {
        acc |= u32::from(g & 0x7f) << bits;
        bits += 7;
        while bits >= 8 {
            le.push((acc & 0xff) as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        le.push(acc as u8); // acc < 2^bits <= 2^7
    }
    le.reverse();
    le
}

/// Subtracts a small value from a big-endian number known to be >= it.
fn sub_be(be: &mut [u8], v: u8) {
    let mut borrow = u16::from(v);
    for byte in be.iter_mut().rev() {
        if borrow == 0 {
            break;
        }
        let cur = u16::from(*byte);
        if cur >= borrow {
            *byte = (cur - borrow) as u8; // in 0..=255
            borrow = 0;
        } else {
            *byte = (cur + 256 - borrow) as u8; // in 0..=255
            borrow = 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer;

    // OID content octets.
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const C: &[u8] = &[0x55, 0x04, 0x06];
    const L: &[u8] = &[0x55, 0x04, 0x07];
    const ST: &[u8] = &[0x55, 0x04, 0x08];
    const STREET: &[u8] = &[0x55, 0x04, 0x09];
    const O: &[u8] = &[0x55, 0x04, 0x0a];
    const OU: &[u8] = &[0x55, 0x04, 0x0b];
    const SERIAL_NUMBER: &[u8] = &[0x55, 0x04, 0x05];
    const EMAIL: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];
    const DC: &[u8] = &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19];
    const UID: &[u8] = &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01];

    const UTF8: u8 = 0x0c;
    const PRINTABLE: u8 = 0x13;
    const IA5: u8 = 0x16;
    const BMP: u8 = 0x1e;

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        push_der_length(&mut out, content.len());
        out.extend_from_slice(content);
        out
    }

    fn ava(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        let mut inner = tlv(0x06, oid);
        inner.extend(tlv(tag, value));
        tlv(0x30, &inner)
    }

    fn rdn(avas: &[Vec<u8>]) -> Vec<u8> {
        tlv(0x31, &avas.concat())
    }

    /// Renders a Name built from RDNs given in encoding order.
    fn render(rdns: &[Vec<u8>]) -> String {
        let der = tlv(0x30, &rdns.concat());
        let (rest, name) = X509Name::from_der(&der).expect("test name parses");
        assert!(rest.is_empty());
        rfc2253_name(&name).expect("test name renders")
    }

    fn one(oid: &[u8], tag: u8, value: &str) -> String {
        render(&[rdn(&[ava(oid, tag, value.as_bytes())])])
    }

    #[test]
    fn rdns_are_reversed_and_comma_joined() {
        let name = render(&[
            rdn(&[ava(C, PRINTABLE, b"CN")]),
            rdn(&[ava(ST, UTF8, b"Zhejiang")]),
            rdn(&[ava(L, UTF8, b"Hangzhou")]),
            rdn(&[ava(STREET, UTF8, b"1 Road")]),
            rdn(&[ava(O, UTF8, b"Test Open Platform")]),
            rdn(&[ava(OU, UTF8, b"Certification Authority")]),
            rdn(&[ava(CN, UTF8, b"Test Open Platform Root CA R1")]),
        ]);
        assert_eq!(
            name,
            "CN=Test Open Platform Root CA R1,OU=Certification Authority,O=Test Open Platform,\
             STREET=1 Road,L=Hangzhou,ST=Zhejiang,C=CN"
        );
    }

    #[test]
    fn empty_name_is_empty_string() {
        assert_eq!(render(&[]), "");
    }

    #[test]
    fn special_characters_are_backslash_escaped_anywhere() {
        assert_eq!(
            one(CN, UTF8, r#"a,b+c"d\e<f>g;h"#),
            r#"CN=a\,b\+c\"d\\e\<f\>g\;h"#
        );
        // '=' and '#' are escaped everywhere, not only a leading '#'.
        assert_eq!(one(CN, UTF8, "#a=b#"), r"CN=\#a\=b\#");
    }

    #[test]
    fn leading_and_trailing_blanks_are_escaped_inner_kept() {
        assert_eq!(one(O, UTF8, "  x  y  "), r"O=\ \ x  y\ \ ");
        assert_eq!(one(O, UTF8, "   "), r"O=\ \ \ ");
        assert_eq!(one(O, UTF8, "\rx\r"), "O=\\\rx\\\r");
        // Other whitespace (tab, newline) is kept as is, even at the ends.
        assert_eq!(one(O, UTF8, "\tx\n"), "O=\tx\n");
        // Trailing-blank detection runs on the escaped text.
        assert_eq!(one(O, UTF8, "a, "), r"O=a\,\ ");
    }

    #[test]
    fn nul_becomes_backslash_00_and_empty_value_is_empty() {
        assert_eq!(one(CN, UTF8, "a\0b"), r"CN=a\00b");
        assert_eq!(one(CN, UTF8, ""), "CN=");
    }

    #[test]
    fn non_ascii_and_non_printable_ascii_are_kept() {
        assert_eq!(
            one(O, UTF8, "支付宝(中国)网络技术有限公司"),
            "O=支付宝(中国)网络技术有限公司"
        );
        assert_eq!(one(CN, UTF8, "a_b@c*d!e&f"), "CN=a_b@c*d!e&f");
        assert_eq!(one(CN, UTF8, "😀"), "CN=😀");
    }

    #[test]
    fn multi_valued_rdn_keeps_encoding_order() {
        let sorted = render(&[
            rdn(&[ava(C, PRINTABLE, b"CN")]),
            rdn(&[ava(CN, UTF8, b"a"), ava(OU, UTF8, b"b+c")]),
        ]);
        assert_eq!(sorted, r"CN=a+OU=b\+c,C=CN");
        let unsorted = render(&[rdn(&[ava(OU, UTF8, b"b"), ava(CN, UTF8, b"a")])]);
        assert_eq!(unsorted, "OU=b+CN=a");
    }

    #[test]
    fn attributes_without_rfc2253_keyword_print_oid_and_der_hex() {
        assert_eq!(one(SERIAL_NUMBER, PRINTABLE, "123"), "2.5.4.5=#1303313233");
        assert_eq!(
            one(EMAIL, IA5, "a@b.c"),
            "1.2.840.113549.1.9.1=#16056140622e63"
        );
        // Even text that would need escaping is just hex.
        assert_eq!(one(SERIAL_NUMBER, UTF8, "a,b"), "2.5.4.5=#0c03612c62");
    }

    #[test]
    fn dc_and_uid_have_keywords() {
        let name = render(&[
            rdn(&[ava(DC, IA5, b"com")]),
            rdn(&[ava(DC, IA5, b"example")]),
            rdn(&[ava(UID, UTF8, b"u1")]),
        ]);
        assert_eq!(name, "UID=u1,DC=example,DC=com");
    }

    #[test]
    fn non_string_values_of_known_types_print_as_hex() {
        // VisibleString, NumericString and OCTET STRING are not strings to the JDK.
        assert_eq!(one(CN, 0x1a, "abc"), "CN=#1a03616263");
        assert_eq!(one(CN, 0x12, "123"), "CN=#1203313233");
        assert_eq!(one(CN, 0x04, "ab"), "CN=#04026162");
        // Long value: the hex uses the minimal long-form length.
        let long = "x".repeat(200);
        assert_eq!(
            render(&[rdn(&[ava(CN, 0x1a, long.as_bytes())])]),
            format!("CN=#1a81c8{}", "78".repeat(200))
        );
    }

    #[test]
    fn every_string_type_is_decoded_as_utf8() {
        // T61String / IA5String / GeneralString with UTF-8 bytes print as text.
        assert_eq!(one(CN, 0x14, "é"), "CN=é");
        assert_eq!(one(CN, 0x1b, "ab"), "CN=ab");
        // BMPString "AB" = 00 41 00 42 decodes (as UTF-8) to NUL A NUL B.
        assert_eq!(
            render(&[rdn(&[ava(CN, BMP, &[0x00, 0x41, 0x00, 0x42])])]),
            r"CN=\00A\00B"
        );
        // Invalid UTF-8 becomes U+FFFD.
        assert_eq!(
            render(&[rdn(&[ava(CN, UTF8, &[0x61, 0xff, 0x62])])]),
            "CN=a\u{fffd}b"
        );
    }

    #[test]
    fn oid_rendering() {
        assert_eq!(oid_dotted(&[0x55, 0x04, 0x03]).as_deref(), Some("2.5.4.3"));
        assert_eq!(oid_dotted(&[0x00]).as_deref(), Some("0.0"));
        assert_eq!(oid_dotted(&[0x27]).as_deref(), Some("0.39"));
        assert_eq!(oid_dotted(&[0x28]).as_deref(), Some("1.0"));
        assert_eq!(oid_dotted(&[0x88, 0x37, 0x01]).as_deref(), Some("2.999.1"));
        assert_eq!(
            oid_dotted(DC).as_deref(),
            Some("0.9.2342.19200300.100.1.25")
        );
        // An arc above 2^64 (2^70 = 0x81 0x80 ... 0x00 with ten 0x80 octets).
        let mut big = vec![0x2a, 0x81];
        big.extend([0x80; 9]);
        big.push(0x00);
        assert_eq!(
            oid_dotted(&big).as_deref(),
            Some("1.2.1180591620717411303424")
        );
        // A huge first sub-identifier: 2.(2^70 - 80).
        let mut first = vec![0x81];
        first.extend([0x80; 9]);
        first.push(0x00);
        assert_eq!(
            oid_dotted(&first).as_deref(),
            Some("2.1180591620717411303344")
        );
        assert_eq!(oid_dotted(&[]), None);
        assert_eq!(oid_dotted(&[0x55, 0x84]), None);
        assert_eq!(oid_dotted(&[0x55, 0x80, 0x01]), None);
    }

    #[test]
    fn unknown_oid_attribute() {
        // 1.3.6.1.4.1.99999.1 with a UTF8String value.
        let oid = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x86, 0x8d, 0x1f, 0x01];
        assert_eq!(one(&oid, UTF8, "v"), "1.3.6.1.4.1.99999.1=#0c0176");
    }
}
