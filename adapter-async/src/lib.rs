//! The `alipay-msg` client written once for every async runtime: [`Client`] over a
//! small [`Runtime`] trait (spawn a task, a timer, TCP connect), in the manner of
//! quinn's `runtime` module. The runtime crates bind it: `alipay-msg-tokio`
//! (`alipay_msg_tokio::Client` is `Client<TokioRuntime>`) and `alipay-msg-async-std`
//! (`Client<AsyncStdRuntime>`, which also runs under smol). Use one of those; this
//! crate is for them, and for another runtime: implement [`Runtime`] and use
//! `Client<YourRuntime>`.
//!
//! The protocol itself — `register.do`, the websocket upgrade and framing, the message
//! layer, every decision — lives in [`alipay_msg_core`] (re-exported as [`core`]),
//! whose [`ClientSession`](alipay_msg_core::client::ClientSession) speaks bytes. This
//! crate is its byte pump; its tasks:
//!
//! - **the driver** owns the session: it feeds it every input (bytes and connection
//!   ends, checked frames, sends, answers, the timer) and carries out every output, in
//!   rounds: what woke it is taken in batches, then the session's writes of the round
//!   go out together. It never waits for room in a queue;
//! - **one task per connection** the session asks for opens TCP (through an HTTP
//!   CONNECT proxy when the [`Network`] says so) and TLS (`futures-rustls` with the
//!   network's rustls configuration), reads into two 32 KiB buffers in turn — only
//!   while the session wants bytes, so that backpressure reaches the socket — and
//!   writes what the driver queued, a burst in one write. A peer that stops reading
//!   fills a bounded queue (8 MiB) and the connection is failed, the driver never
//!   blocked. On close it writes what is queued, ends its side and reads to the peer's
//!   end of stream (within a second) before dropping the socket, so that a reset does
//!   not destroy the last frames;
//! - **checking tasks**, when checking is spread over the runtime's workers
//!   (`ClientConfig::check_parallelism`: by default one per worker thread, at most 4),
//!   parse frames and verify their signatures — nearly all of a message's cost — and
//!   hand them back in any order (the session restores read order); with one lane the
//!   session checks frames inline;
//! - **handler tasks**: [`Client::run`] runs each handler on a task of its own, at most
//!   `max_in_flight` at once.
//!
//! Every message handed to the application is answered: [`Incoming`] and the handlers
//! of `run` answer FAIL when dropped unanswered (a cancelled `run`, a dropped
//! [`Deliveries`] with messages waiting), and the platform delivers it again.

mod client;
mod connection;
mod deliveries;
mod driver;
mod events;
pub mod runtime;
mod transport;

pub use alipay_msg_core as core;
pub use alipay_msg_core::client::{ClientConfig, ClientError, ClientEvent, Credentials, Message};
pub use alipay_msg_core::produce_ack::ProduceAck;
pub use alipay_msg_network as network;
pub use client::{Client, Connecting, Error};
pub use deliveries::{Deliveries, Incoming};
pub use events::Events;
pub use network::{Network, Proxy};
pub use runtime::Runtime;
