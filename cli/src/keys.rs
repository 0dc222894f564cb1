//! Loading the platform key for the offline commands.

use alipay_msg_core::cert::{platform_cert, Certificate};
use alipay_msg_core::key::PublicKey;
use alipay_msg_core::signature::Verifier;

use crate::{read_file, Failure, PlatformKeyArgs};

impl PlatformKeyArgs {
    /// The verifier for the platform key, from the key file or the certificate's key.
    pub(crate) fn verifier(&self) -> Result<Verifier, Failure> {
        let key = match (&self.alipay_public_key, &self.alipay_cert) {
            (Some(path), _) => PublicKey::from_pem_or_base64(&read_file(path)?).map_err(|e| {
                Failure::malformed(format!("platform public key {}: {e}", path.display()))
            })?,
            (None, Some(path)) => {
                let chain = Certificate::all_from_pem(&read_file(path)?)
                    .map_err(|e| Failure::malformed(format!("{}: {e}", path.display())))?;
                platform_cert(&chain)
                    .and_then(Certificate::public_key)
                    .map_err(|e| Failure::malformed(format!("{}: {e}", path.display())))?
            }
            // clap's argument group requires exactly one of the two.
            (None, None) => unreachable!("clap requires --alipay-public-key or --alipay-cert"),
        };
        for warning in key.warnings() {
            eprintln!("alipay-msg: warning: platform key: {warning}");
        }
        Verifier::new(&key).map_err(|e| Failure::malformed(format!("platform key: {e}")))
    }
}
