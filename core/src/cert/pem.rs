//! The one PEM reader of the crate, for certificates (PROTOCOL §9) and keys
//! ([`crate::key`]).
//!
//! Key and certificate files are edited by hand or pasted from the platform's web
//! console, so the reader is lenient about layout: every line may have leading and
//! trailing whitespace (indentation of every line, of the body only, or of the END line
//! only), blank lines may appear anywhere, lines may end in CRLF, and the final newline
//! may be missing. Blocks are read in file order; blocks whose label the caller does not
//! ask for, and any text between blocks, are skipped. Errors name the block (1-based
//! among the blocks asked for) and the fault, never the base64 text.
//!
//! Why a reader of our own: `pem-rfc7468` is strict by design (no indentation, as RFC
//! 7468 prescribes) and the `pem` crate was not adopted — either would need a
//! normaliser in front of it for indented header lines, which is most of this reader
//! already. Keys used to go through `x509_parser::pem`, which refuses indented lines.

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

/// One decoded PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PemBlock {
    /// The label after `-----BEGIN `.
    pub(crate) label: String,
    /// The decoded body.
    pub(crate) der: Vec<u8>,
}

/// A block that cannot be read. `reason` names the fault without quoting the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PemError {
    /// 1-based position of the block among the blocks asked for.
    pub(crate) index: usize,
    /// What was wrong.
    pub(crate) reason: String,
}

/// Iterates over the blocks of `text` whose label `wanted` accepts, in order.
///
/// Stops after the first error (an unterminated block, a BEGIN inside a block, a
/// mismatched END, an empty body or bad base64).
pub(crate) fn pem_blocks(text: &str, wanted: fn(&str) -> bool) -> PemBlocks<'_> {
    PemBlocks {
        lines: text.lines(),
        wanted,
        index: 0,
        failed: false,
    }
}

/// Iterates over the DER of the CERTIFICATE blocks of `text`, in order.
pub(crate) fn certificate_blocks(
    text: &str,
) -> impl Iterator<Item = Result<Vec<u8>, CertError>> + '_ {
    pem_blocks(text, |label| CERT_LABELS.contains(&label)).map(|block| {
        block.map(|b| b.der).map_err(|e| CertError::Pem {
            index: e.index,
            reason: e.reason,
        })
    })
}

/// Iterator returned by [`pem_blocks`].
pub(crate) struct PemBlocks<'a> {
    lines: std::str::Lines<'a>,
    wanted: fn(&str) -> bool,
    /// Number of wanted blocks started so far.
    index: usize,
    failed: bool,
}

impl Iterator for PemBlocks<'_> {
    type Item = Result<PemBlock, PemError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let label = loop {
            let line = self.lines.next()?.trim();
            if let Some(label) = begin_label(line) {
                if (self.wanted)(label) {
                    break label;
                }
            }
        };
        self.index += 1;
        let result = self.read_body(label).map(|der| PemBlock {
            label: label.to_owned(),
            der,
        });
        self.failed = result.is_err();
        Some(result)
    }
}

impl PemBlocks<'_> {
    /// Reads base64 lines up to the matching END line and decodes them.
    fn read_body(&mut self, label: &str) -> Result<Vec<u8>, PemError> {
        let index = self.index;
        let fail = |reason: String| PemError { index, reason };
        let mut body = String::new();
        loop {
            let Some(line) = self.lines.next() else {
                return Err(fail(format!("no `-----END {label}-----` line")));
            };
            let line = line.trim();
            if let Some(end) = end_label(line) {
                if end != label {
                    return Err(fail(format!(
                        "`-----BEGIN {label}-----` closed by `-----END {end}-----`"
                    )));
                }
                break;
            }
            if begin_label(line).is_some() {
                return Err(fail(format!(
                    "no `-----END {label}-----` line before the next BEGIN line"
                )));
            }
            body.extend(line.chars().filter(|c| !c.is_ascii_whitespace()));
        }
        if body.is_empty() {
            return Err(fail("the block is empty".to_string()));
        }
        // The base64 error would quote the offending character: say only what is wrong.
        PEM_BASE64
            .decode(body.as_bytes())
            .map_err(|_| fail(format!("the body of the {label} block is not base64")))
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
