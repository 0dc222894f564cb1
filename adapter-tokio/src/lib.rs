//! The `alipay-msg` client on tokio, and the `alipay-msg` command-line tool.
//!
//! ```no_run
//! use alipay_msg_tokio::{Client, ClientConfig, Credentials};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let credentials = Credentials::public_key(
//!     &std::fs::read_to_string("app_private_key.pem")?,
//!     &std::fs::read_to_string("alipay_public_key.pem")?,
//! )?;
//! let client = Client::connect(ClientConfig::new("2021000000000001", credentials)).await?;
//! client
//!     .run(|msg| async move {
//!         println!("{} {}", msg.msg_api(), msg.biz_content());
//!         Ok::<(), std::io::Error>(()) // Ok acks SUCCESS; Err or a panic acks FAIL
//!     })
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Tasks
//!
//! A driver task owns the state machine ([`alipay_msg_core::client::ClientSession`]).
//! Per connection, a reader task deals the frames it reads to one checking task per
//! worker thread (at most 4; with one worker it checks them itself), which parse them
//! and verify their signatures — nearly all of a message's cost — on every worker at
//! once; the driver takes them back in the order they were read. A writer task sends
//! what the driver queues, a burst at a time. [`Client::run`] runs each handler on a
//! task of its own, at most `max_in_flight` at once.
//!
//! The protocol itself lives in [`alipay_msg_core`], re-exported as [`core`].
#![forbid(unsafe_code)]

mod client;
pub mod config_file;
mod transport;

pub use alipay_msg_core as core;
pub use alipay_msg_core::client::AttemptFailure;
pub use alipay_msg_core::client::{ClientConfig, Credentials};
pub use client::{
    Client, ClientError, ClientEvent, Connecting, Deliveries, Error, Incoming, Message,
};
