//! Sans-IO core of a client for the payment open platform's message channel.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cert;
pub mod charset;
pub mod consume;
pub mod crypto;
pub mod endpoint;
pub mod frame;
pub mod http;
pub mod key;
pub mod notify;
pub mod produce;
pub mod produce_ack;
pub mod register;
pub mod sign_content;
pub mod signature;
pub mod stream_id;
