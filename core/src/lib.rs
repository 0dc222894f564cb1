//! Sans-IO core of a client for the payment open platform's message channel.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cert;
pub mod charset;
pub mod crypto;
pub mod key;
pub mod sign_content;
pub mod signature;
