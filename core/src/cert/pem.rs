//! CERTIFICATE blocks in PEM text (PROTOCOL §9).
//!
//! Certificate files from the platform are PEM: one block (app / platform public-key
//! certificate), a leaf followed by intermediates (platform certificate with its
//! chain), or several roots (root bundle). Blocks labelled `CERTIFICATE` (or the old
//! `X509 CERTIFICATE`) are read in file order; other blocks and any text between
//! blocks are skipped. Lines may end in CRLF and may be indented.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

use super::CertError;

/// Standard base64 alphabet, padding optional.
const PEM_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Labels accepted as a certificate.
const CERT_LABELS: &[&str] = &["CERTIFICATE", "X509 CERTIFICATE"];

/// Iterates over the DER of the CERTIFICATE blocks of `text`, in order.
///
/// Stops after the first error (an unterminated block or bad base64).
pub(crate) fn certificate_blocks(text: &str) -> CertificateBlocks<'_> {
    CertificateBlocks {
        lines: text.lines(),
        index: 0,
        failed: false,
    }
}

/// Iterator returned by [`certificate_blocks`].
pub(crate) struct CertificateBlocks<'a> {
    lines: std::str::Lines<'a>,
    /// Number of CERTIFICATE blocks started so far.
    index: usize,
    failed: bool,
}

impl Iterator for CertificateBlocks<'_> {
    type Item = Result<Vec<u8>, CertError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let label = loop {
            let line = self.lines.next()?.trim();
            if let Some(label) = begin_label(line) {
                if CERT_LABELS.contains(&label) {
                    break label;
                }
            }
        };
        self.index += 1;
        let result = self.read_body(label);
        self.failed = result.is_err();
        Some(result)
    }
}

impl CertificateBlocks<'_> {
    /// Reads base64 lines up to the matching END line and decodes them.
    fn read_body(&mut self, label: &str) -> Result<Vec<u8>, CertError> {
        let index = self.index;
        let mut body = String::new();
        loop {
            let Some(line) = self.lines.next() else {
                return Err(CertError::Pem {
                    index,
                    reason: format!("no `-----END {label}-----` line"),
                });
            };
            let line = line.trim();
            if let Some(end) = end_label(line) {
                if end != label {
                    return Err(CertError::Pem {
                        index,
                        reason: format!(
                            "`-----BEGIN {label}-----` closed by `-----END {end}-----`"
                        ),
                    });
                }
                break;
            }
            if begin_label(line).is_some() {
                return Err(CertError::Pem {
                    index,
                    reason: format!("no `-----END {label}-----` line before the next BEGIN line"),
                });
            }
            body.extend(line.chars().filter(|c| !c.is_ascii_whitespace()));
        }
        if body.is_empty() {
            return Err(CertError::Pem {
                index,
                reason: "the block is empty".to_string(),
            });
        }
        PEM_BASE64
            .decode(body.as_bytes())
            .map_err(|e| CertError::Pem {
                index,
                reason: format!("invalid base64: {e}"),
            })
    }
}

/// `Some(label)` for a `-----BEGIN label-----` line.
fn begin_label(line: &str) -> Option<&str> {
    line.strip_prefix("-----BEGIN ")?.strip_suffix("-----")
}

/// `Some(label)` for an `-----END label-----` line.
fn end_label(line: &str) -> Option<&str> {
    line.strip_prefix("-----END ")?.strip_suffix("-----")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(text: &str) -> Vec<Result<Vec<u8>, CertError>> {
        certificate_blocks(text).collect()
    }

    #[test]
    fn reads_blocks_in_order_skipping_other_blocks_and_text() {
        let text = "junk before\r\n\
            -----BEGIN PRIVATE KEY-----\r\nAAAA\r\n-----END PRIVATE KEY-----\r\n\
            Subject: something\r\n\
              -----BEGIN CERTIFICATE-----\r\n  AQID\r\n  BA==\r\n  -----END CERTIFICATE-----\r\n\
            -----BEGIN X509 CERTIFICATE-----\nBQY\n-----END X509 CERTIFICATE-----\n";
        let got = blocks(text);
        assert_eq!(got, vec![Ok(vec![1, 2, 3, 4]), Ok(vec![5, 6])]);
    }

    #[test]
    fn no_block_yields_nothing() {
        assert!(blocks("").is_empty());
        assert!(blocks("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_empty());
    }

    #[test]
    fn malformed_blocks_are_errors_and_stop_iteration() {
        let unterminated = blocks("-----BEGIN CERTIFICATE-----\nAQID\n");
        assert!(matches!(
            unterminated.as_slice(),
            [Err(CertError::Pem { index: 1, .. })]
        ));
        let bad_b64 = blocks(
            "-----BEGIN CERTIFICATE-----\nAQ*D\n-----END CERTIFICATE-----\n\
             -----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n",
        );
        assert_eq!(bad_b64.len(), 1);
        assert!(bad_b64[0].is_err());
        let second_bad = blocks(
            "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n\
             -----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        );
        assert!(matches!(
            second_bad.as_slice(),
            [Ok(_), Err(CertError::Pem { index: 2, .. })]
        ));
        let nested = blocks("-----BEGIN CERTIFICATE-----\nAQID\n-----BEGIN CERTIFICATE-----\n");
        assert!(nested[0].is_err());
        let wrong_end = blocks("-----BEGIN CERTIFICATE-----\nAQID\n-----END PUBLIC KEY-----\n");
        assert!(wrong_end[0].is_err());
    }
}
