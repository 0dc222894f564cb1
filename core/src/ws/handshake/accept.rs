//! The `Sec-WebSocket-Key` and `Sec-WebSocket-Accept` values (RFC 6455 §4.1, §4.2.2).
//!
//! The accept value is base64(SHA-1(key + GUID)). It is computed here on the SHA-1 the
//! crypto backend already has (`ring`'s legacy SHA-1, or the `sha1` crate of the
//! `rust-crypto` backend) rather than with `tungstenite::handshake::derive_accept_key`,
//! which would need tungstenite's `handshake` feature and its `http`, `sha1` and
//! `data-encoding` dependencies; a test checks both agree when that feature is on.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// The GUID appended to the key (RFC 6455 §1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Key` for 16 random bytes the caller drew (RFC 6455 §4.1: a
/// nonce, randomly selected for each connection): their base64, 24 characters.
pub fn key_from_random(random: [u8; 16]) -> String {
    STANDARD.encode(random)
}

/// The `Sec-WebSocket-Accept` value for `key` (the header value as sent, RFC 6455
/// §4.2.2 step 5.4).
pub fn accept_key(key: &[u8]) -> String {
    STANDARD.encode(sha1(&[key, GUID]))
}

#[cfg(feature = "ring")]
fn sha1(parts: &[&[u8]]) -> Vec<u8> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    for part in parts {
        context.update(part);
    }
    context.finish().as_ref().to_vec()
}

#[cfg(all(feature = "rust-crypto", not(feature = "ring")))]
fn sha1(parts: &[&[u8]]) -> Vec<u8> {
    use sha1::Digest;
    let mut hasher = sha1::Sha1::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6455_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            key_from_random(*b"the sample nonce"),
            "dGhlIHNhbXBsZSBub25jZQ=="
        );
    }
}
