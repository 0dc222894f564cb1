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
//! The client is [`alipay_msg_async::Client`] on [`TokioRuntime`]: the one async driver
//! of `alipay-msg-async` (its tasks are described there), with tokio's tasks, timer and
//! TCP. Its tasks run on the tokio runtime [`Client::start`] (or
//! [`Client::connect`]) was called in; checking is spread over that runtime's worker
//! threads. The protocol itself lives in [`alipay_msg_core`], re-exported as [`core`].

mod runtime;

pub use alipay_msg_async::{
    core, network, ClientConfig, ClientError, ClientEvent, Credentials, Deliveries, Error, Events,
    Incoming, Message, Network, ProduceAck, Proxy,
};
pub use runtime::{TokioRuntime, TokioTcp};

/// The client on tokio: [`Client::connect`] (or [`Client::start`] to watch the first
/// connection), [`Client::run`], [`Client::deliveries`], [`Client::send`],
/// [`Client::events`], [`Client::shutdown`]. Must be started within a tokio runtime
/// (outside one, `start` and `connect` fail with [`Error::Io`]).
pub type Client = alipay_msg_async::Client<TokioRuntime>;

/// A tokio client on its way to the first connection ([`Client::start`]).
pub type Connecting = alipay_msg_async::Connecting<TokioRuntime>;
