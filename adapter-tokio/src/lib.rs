//! The `alipay-msg` client on tokio.
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
//! A driver task owns the state machine ([`alipay_msg_core::client::ClientSession`]),
//! which speaks raw stream bytes: `register.do`, the websocket upgrade and its frames
//! are all in the session. The client is a byte pump around it:
//!
//! - one task per connection the session asks for opens TCP (+TLS), reads into two
//!   32 KiB buffers in turn — only while the session wants bytes, so that backpressure
//!   reaches the socket — and writes what the driver queues, a burst in one write;
//! - when checking is spread over the runtime's workers
//!   ([`ClientConfig::check_parallelism`], by default one per worker thread, at most 4),
//!   a checking task per lane parses frames and verifies their signatures — nearly all
//!   of a message's cost — and hands them back in any order (the session restores read
//!   order); with one lane the session checks frames inline;
//! - [`Client::run`] runs each handler on a task of its own, at most `max_in_flight` at
//!   once.
//!
//! The protocol itself lives in [`alipay_msg_core`], re-exported as [`core`].

mod client;
pub use alipay_msg_network as network;
mod transport;

pub use alipay_msg_core as core;
pub use alipay_msg_core::client::{ClientConfig, Credentials};
pub use client::{
    Client, ClientError, ClientEvent, Connecting, Deliveries, Error, Incoming, Message,
};
pub use network::{Network, Proxy};
