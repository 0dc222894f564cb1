//! The serial number in decimal, as the cert SN rule needs it (PROTOCOL §9).
//!
//! The platform's SDK appends `X509Certificate.getSerialNumber()` — a Java
//! `BigInteger` — to the issuer name, so the decimal here is `BigInteger.toString()`
//! of the DER INTEGER: the two's-complement value of its content octets. For every
//! serial RFC 5280 allows (positive) that is the plain unsigned decimal; a
//! non-conforming serial with its top bit set prints with a leading `-`, as in Java.

/// Decimal of the DER INTEGER content octets `content` read as two's complement,
/// the way Java's `new BigInteger(content).toString()` prints it. Any length.
///
/// `content` must not be empty (the certificate parser rejects an empty serial).
pub(crate) fn serial_decimal(content: &[u8]) -> String {
    match content.first() {
        Some(first) if first & 0x80 != 0 => {
            // Negative: the magnitude is the two's complement of the content.
            let mut magnitude: Vec<u8> = content.iter().map(|b| !b).collect();
            for byte in magnitude.iter_mut().rev() {
                let (sum, carry) = byte.overflowing_add(1);
                *byte = sum;
                if !carry {
                    break;
                }
            }
            format!("-{}", unsigned_decimal(&magnitude))
        }
        _ => unsigned_decimal(content),
    }
}

/// Decimal of a big-endian unsigned integer of any length (`""` and all-zero give `"0"`).
pub(crate) fn unsigned_decimal(be_bytes: &[u8]) -> String {
    const BASE: u64 = 1_000_000_000;
    // Little-endian limbs in base 10^9.
    let mut limbs: Vec<u64> = Vec::new();
    for &byte in be_bytes {
        let mut carry = u64::from(byte);
        for limb in limbs.iter_mut() {
            // limb < 10^9, so limb * 256 + 255 < 2^64.
            let v = *limb * 256 + carry;
            *limb = v % BASE;
            carry = v / BASE;
        }
        while carry > 0 {
            limbs.push(carry % BASE);
            carry /= BASE;
        }
    }
    let mut out = String::new();
    match limbs.split_last() {
        None => out.push('0'),
        Some((most, rest)) => {
            out.push_str(&most.to_string());
            for limb in rest.iter().rev() {
                out.push_str(&format!("{limb:09}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{serial_decimal, unsigned_decimal};

    #[test]
    fn unsigned_values() {
        assert_eq!(unsigned_decimal(&[]), "0");
        assert_eq!(unsigned_decimal(&[0, 0]), "0");
        assert_eq!(unsigned_decimal(&[0x01, 0x00]), "256");
        assert_eq!(unsigned_decimal(&[0x3b, 0x9a, 0xca, 0x00]), "1000000000");
        assert_eq!(
            unsigned_decimal(&[0xff; 16]),
            "340282366920938463463374607431768211455"
        );
        // 0x0A1B2C3D4E5F60718293, the app certificate's serial.
        assert_eq!(
            unsigned_decimal(&[0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x60, 0x71, 0x82, 0x93]),
            "47724914708969405121171"
        );
    }

    #[test]
    fn long_serial_has_no_limit() {
        // 2^(8*40) = 256^40
        let mut bytes = vec![0u8; 41];
        bytes[0] = 1;
        assert_eq!(
            unsigned_decimal(&bytes),
            "2135987035920910082395021706169552114602704522356652769947041607822219725780640550022962086936576"
        );
    }

    #[test]
    fn java_biginteger_semantics() {
        // Leading zero octet that keeps a high-bit serial positive.
        assert_eq!(serial_decimal(&[0x00, 0x8f]), "143");
        assert_eq!(serial_decimal(&[0x7f]), "127");
        // Non-conforming negative serials print as Java's BigInteger does.
        assert_eq!(serial_decimal(&[0x80]), "-128");
        assert_eq!(serial_decimal(&[0xff]), "-1");
        assert_eq!(serial_decimal(&[0xff, 0x00]), "-256");
        assert_eq!(
            serial_decimal(&[0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
            "-9223372036854775808"
        );
    }
}
