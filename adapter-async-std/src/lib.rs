//! The `alipay-msg` client on async-std: the same API as `alipay-msg-tokio`'s client,
//! over `futures-io`.
//!
//! ```no_run
//! use alipay_msg_async_std::{Client, ClientConfig, Credentials};
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
//! # async-std, smol and other executors
//!
//! async-std is no longer maintained upstream (its authors recommend
//! [smol](https://docs.rs/smol), its successor, built from the same parts). This crate
//! depends on async-std only to spawn its tasks, on async-std's global executor, which
//! starts its own threads on first use. Everything else is runtime-neutral: TCP from
//! `async-net`, timers from `async-io` (the reactor async-std and smol share), TLS from
//! `futures-rustls` (rustls with the ring provider and webpki roots by default, or the
//! configuration of [`network::Network`]), all over `futures-io`. So the client also runs when driven
//! from smol (`smol::block_on`, a smol `Executor`) or any other executor: its futures
//! need no async-std context.
//!
//! The protocol itself — `register.do`, the websocket upgrade and framing, the message
//! layer — lives in [`alipay_msg_core`] (re-exported as [`core`]), whose
//! `ClientSession` speaks bytes. This crate is its byte pump: one driver task owns the
//! session, one task per connection reads and writes its socket (reading only while the
//! session wants bytes, so backpressure reaches the socket), and, with
//! `check_parallelism` above 1, checking tasks verify frames in parallel (the session
//! restores their read order).

mod client;
pub use alipay_msg_network as network;
mod runtime;
mod transport;

pub use alipay_msg_core as core;
pub use alipay_msg_core::client::{ClientConfig, Credentials};
pub use alipay_msg_core::produce_ack::ProduceAck;
pub use client::{
    Client, ClientError, ClientEvent, Connecting, Deliveries, Error, Events, Incoming, Message,
};
pub use network::{Network, Proxy};
