//! Sans-IO core of a client for the payment open platform's message channel.
//!
//! Everything that decides something lives here — framing, signing and verification,
//! certificate-mode SNs, `register.do` and the websocket upgrade, HTTP notifications —
//! with no sockets, clocks, threads or runtime: inputs are plain values (text received,
//! the current time as a number), outputs are values to send. Adapters own the I/O.
//!
//! Each module is one protocol concept and cites the section of the protocol notes it
//! implements: [`frame`] (§4), [`consume`] and [`produce`] (§5–7), [`produce_ack`] (§7),
//! [`register`] (§2–3), [`cert`] (§9), [`notify`] (§10), [`sign_content`],
//! [`signature`] and [`key`] (§2), and [`ws`], the websocket protocol (RFC 6455) over
//! bytes: opening handshake, frames, messages (§1, §4).
//!
//! # Example: one CONSUME, verified and acknowledged
//!
//! ```
//! use alipay_msg_core::consume::{AckStatus, ConsumeFrame};
//! use alipay_msg_core::frame::{FrameLimits, SignatureStatus};
//! use alipay_msg_core::key::PublicKey;
//! use alipay_msg_core::signature::Verifier;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let testdata = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");
//! // Once, at start-up: the platform public key (PEM or bare base64).
//! let key = PublicKey::from_pem_or_base64(&std::fs::read_to_string(format!(
//!     "{testdata}/vectors/keys/alipay_public.pem"
//! ))?)?;
//! let platform = Verifier::new(&key)?;
//!
//! // Per websocket text message:
//! let text = std::fs::read_to_string(format!("{testdata}/frames/consume.txt"))?;
//! let consume = ConsumeFrame::parse(&text, &FrameLimits::default())?;
//! let ack = match consume.verify(&platform) {
//!     SignatureStatus::Valid => {
//!         // Hand `consume.biz_content()` (exactly the verified text) to the handler and
//!         // acknowledge SUCCESS only once it succeeded.
//!         assert_eq!(consume.msg_api(), Some("alipay.open.mini.version.audit.rejected"));
//!         consume.ack(AckStatus::Success)
//!     }
//!     // Unsigned or forged: the handler never sees it.
//!     SignatureStatus::Invalid(_) | SignatureStatus::Absent => consume.ack(AckStatus::Fail),
//! };
//! assert!(ack.encode().contains("\"x-status\":\"SUCCESS\""));
//! # Ok(())
//! # }
//! ```

pub mod cert;
pub mod charset;
pub mod client;
pub mod clock;
pub mod consume;
pub mod crypto;
pub mod endpoint;
pub mod frame;
// For the fuzz targets in fuzz/ and the corpus replay test (tests/fuzz_corpus.rs); not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod key;
pub mod notify;
pub mod produce;
pub mod produce_ack;
pub mod proxy;
pub mod register;
#[cfg(feature = "serde")]
mod serde_impls;
pub mod server;
pub mod sign_content;
pub mod signature;
pub mod stream_id;
pub mod window;
pub mod ws;
