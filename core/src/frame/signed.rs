//! Checking the signature on a frame's `data` object (PROTOCOL §5).

use crate::charset::Charset;
use crate::frame::clip;
use crate::signature::{SignType, SignatureError, Verifier};

/// The result of checking a frame's `x-sign`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum SignatureStatus {
    /// The signature verifies over the exact `data` text.
    Valid,
    /// There is a signature and it does not verify, or it cannot be checked.
    Invalid(InvalidSignature),
    /// The frame carries no `x-sign`.
    Absent,
}

impl SignatureStatus {
    /// `valid`, `invalid` or `absent`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SignatureStatus::Valid => "valid",
            SignatureStatus::Invalid(_) => "invalid",
            SignatureStatus::Absent => "absent",
        }
    }

    /// Only [`SignatureStatus::Valid`] lets a message through.
    pub fn is_valid(&self) -> bool {
        matches!(self, SignatureStatus::Valid)
    }
}

/// Why a present signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidSignature {
    /// `x-signType` missing.
    #[error("x-signType is missing")]
    MissingSignType,
    /// `x-signType` not RSA2/RSA.
    #[error("unsupported x-signType {0:?}")]
    UnknownSignType(String),
    /// `x-charset` missing.
    #[error("x-charset is missing")]
    MissingCharset,
    /// `x-charset` not UTF-8/GBK.
    #[error("unsupported x-charset {0:?}")]
    UnknownCharset(String),
    /// The frame has a signature but no `data` object to check it over.
    #[error("no data object to verify")]
    NoData,
    /// The signature itself failed.
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// The signature fields of a frame and the exact `data` text they cover.
pub(crate) struct SignedData<'a> {
    pub(crate) sign: Option<&'a str>,
    pub(crate) sign_type: Option<&'a str>,
    pub(crate) charset: Option<&'a str>,
    pub(crate) data: &'a str,
}

impl SignedData<'_> {
    /// Verifies `sign` over `data` encoded in `charset` with `sign_type`; all three
    /// fields are required once a signature is present.
    pub(crate) fn verify(&self, verifier: &Verifier) -> SignatureStatus {
        match self.check(verifier) {
            Ok(None) => SignatureStatus::Absent,
            Ok(Some(())) => SignatureStatus::Valid,
            Err(reason) => SignatureStatus::Invalid(reason),
        }
    }

    fn check(&self, verifier: &Verifier) -> Result<Option<()>, InvalidSignature> {
        let Some(sign) = self.sign.filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let sign_type: SignType = match self.sign_type.filter(|s| !s.is_empty()) {
            None => return Err(InvalidSignature::MissingSignType),
            Some(s) => s
                .parse()
                .map_err(|_| InvalidSignature::UnknownSignType(clip(s)))?,
        };
        let charset: Charset = match self.charset.filter(|s| !s.is_empty()) {
            None => return Err(InvalidSignature::MissingCharset),
            Some(s) => s
                .parse()
                .map_err(|_| InvalidSignature::UnknownCharset(clip(s)))?,
        };
        if self.data.is_empty() {
            return Err(InvalidSignature::NoData);
        }
        verifier.verify_text(sign_type, charset, self.data, sign)?;
        Ok(Some(()))
    }
}
