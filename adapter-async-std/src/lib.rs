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
//! The client is [`alipay_msg_async::Client`] on [`AsyncStdRuntime`]: the one async
//! driver of `alipay-msg-async` (its tasks are described there).
//!
//! # async-std, smol and other executors
//!
//! async-std is no longer maintained upstream (its authors recommend
//! [smol](https://docs.rs/smol), its successor, built from the same parts). This crate
//! depends on async-std only to spawn its tasks, on async-std's global executor, which
//! starts its own threads on first use. Everything else is runtime-neutral: TCP from
//! `async-net`, timers from `async-io` (the reactor async-std and smol share), TLS from
//! `futures-rustls` (rustls with the ring provider and webpki roots by default, or the
//! configuration of [`network::Network`]), all over `futures-io`. So the client also
//! runs when driven from smol (`smol::block_on`, a smol `Executor`) or any other
//! executor: its futures need no async-std context.
//!
//! The protocol itself lives in [`alipay_msg_core`], re-exported as [`core`].

mod runtime;

pub use alipay_msg_async::{
    core, network, ClientConfig, ClientError, ClientEvent, Credentials, Deliveries, Error, Events,
    Incoming, Message, Network, ProduceAck, Proxy,
};
pub use runtime::AsyncStdRuntime;

/// The client on async-std (also under smol): [`Client::connect`] (or
/// [`Client::start`] to watch the first connection), [`Client::run`],
/// [`Client::deliveries`], [`Client::send`], [`Client::events`], [`Client::shutdown`].
pub type Client = alipay_msg_async::Client<AsyncStdRuntime>;

/// An async-std client on its way to the first connection ([`Client::start`]).
pub type Connecting = alipay_msg_async::Connecting<AsyncStdRuntime>;
