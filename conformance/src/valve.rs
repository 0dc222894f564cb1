//! A platform that stops reading: [`ValveProxy`], a TCP proxy between the client and
//! the simulator whose valve, while closed, reads nothing the clients write (their
//! bytes stay in the kernel's buffers, as with a platform that has stopped reading or
//! reads late), and the scenarios of the async clients' socket handling that need it.
//!
//! A client crate's test expands [`valve_suite!`](crate::valve_suite) for a
//! [`ClientUnderTest`] whose sockets are pumped by tasks (the tokio and async-std
//! clients): one `#[test]` per scenario.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alipay_msg_core::client::{ClientEvent, DisconnectReason, Message, SendError};
use alipay_msg_core::endpoint::Endpoint;
use alipay_msg_core::server::{FaultPlan, MessageState, ServerEvent};
use alipay_msg_simulator::SimulatorEvent;
use serde_json::json;

use crate::{config, connect, count, simulator, wait_for, ClientUnderTest, LIMIT};

/// How often a closed valve is looked at again, and how long a read waits before the
/// valve is looked at again.
const POLL: Duration = Duration::from_millis(5);

/// Bytes a closed valve looks at (without reading them) to tell how much waits.
const PEEK_BYTES: usize = 16 * 1024;

/// Makes one `#[test]` per scenario of this module for a [`ClientUnderTest`].
#[macro_export]
macro_rules! valve_suite {
    ($client:ty) => {
        #[test]
        fn a_peer_that_stops_reading_is_given_up() {
            $crate::valve::a_peer_that_stops_reading_is_given_up::<$client>();
        }
        #[test]
        fn last_frames_reach_a_peer_that_reads_late() {
            $crate::valve::last_frames_reach_a_peer_that_reads_late::<$client>();
        }
    };
}

/// How a client ended its side of a proxied connection, as the proxy read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEnd {
    /// End of stream (a FIN): everything the client wrote was read.
    Eof,
    /// A read failed, e.g. [`ErrorKind::ConnectionReset`]: the client closed its socket
    /// with bytes unread, and what it wrote last and the proxy had not yet read is lost.
    Failed(ErrorKind),
}

/// A TCP proxy on 127.0.0.1 to one target, with a valve on what clients write.
pub struct ValveProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    target: SocketAddr,
    closed: AtomicBool,
    /// Forwarding threads inside a read of a client's socket.
    reading: AtomicUsize,
    /// The most bytes seen waiting unread behind the closed valve on one connection
    /// (at most [`PEEK_BYTES`]).
    waiting: AtomicUsize,
    stop: AtomicBool,
    /// Per connection that has ended: whether it carried a websocket upgrade request,
    /// and how the client ended it.
    ends: Mutex<Vec<(bool, ClientEnd)>>,
}

impl ValveProxy {
    /// Starts listening; each connection is forwarded to `target` (both ways at once,
    /// each way on a thread of its own; the threads end with their connection).
    pub fn start(target: SocketAddr) -> io::Result<ValveProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target,
            closed: AtomicBool::new(false),
            reading: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            ends: Mutex::new(Vec::new()),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let shared = accepting.clone();
                std::thread::spawn(move || {
                    let _ = forward(client, &shared);
                });
            }
        });
        Ok(ValveProxy { addr, shared })
    }

    /// Where clients connect.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::plain(self.addr.ip().to_string(), self.addr.port())
    }

    /// Reads nothing more from any client until [`ValveProxy::open`]; returns once no
    /// read is under way (within one read, 5 ms). What the target sends still goes
    /// through.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        while self.shared.reading.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Reads from the clients again.
    pub fn open(&self) {
        self.shared.closed.store(false, Ordering::SeqCst);
        self.shared.waiting.store(0, Ordering::SeqCst);
    }

    /// The most bytes seen waiting behind the closed valve on one connection since it
    /// closed, at most 16 KiB.
    pub fn waiting(&self) -> usize {
        self.shared.waiting.load(Ordering::SeqCst)
    }

    /// How each websocket connection (one whose client asked for the upgrade) that
    /// has ended its client's side ended it, in order.
    pub fn websocket_ends(&self) -> Vec<ClientEnd> {
        let ends = self.shared.ends.lock().expect("lock");
        ends.iter()
            .filter(|(websocket, _)| *websocket)
            .map(|(_, end)| *end)
            .collect()
    }

    /// Stops accepting (after the next connection attempt, which is refused).
    pub fn stop(self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Forwards one connection: the target's bytes to the client on a thread, the client's
/// to the target here, while the valve is open. Each end of stream is passed on as a
/// half close; a failed read on the client's side is recorded and cuts both.
fn forward(client: TcpStream, shared: &Shared) -> io::Result<()> {
    let server = TcpStream::connect(shared.target)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut server_read, mut client_write) = (server.try_clone()?, client.try_clone()?);
    std::thread::spawn(move || {
        let _ = io::copy(&mut server_read, &mut client_write);
        let _ = client_write.shutdown(Shutdown::Write);
    });
    let (mut client, mut server) = (client, server);
    client.set_read_timeout(Some(POLL))?;
    let mut buffer = vec![0u8; PEEK_BYTES];
    let mut websocket = None;
    let ended = |websocket: Option<bool>, end| {
        let websocket = websocket.unwrap_or(false);
        shared.ends.lock().expect("lock").push((websocket, end));
    };
    loop {
        // Counted before the valve is looked at: `close` sees either the count or a
        // thread that has seen the valve closed.
        shared.reading.fetch_add(1, Ordering::SeqCst);
        if shared.closed.load(Ordering::SeqCst) {
            shared.reading.fetch_sub(1, Ordering::SeqCst);
            // Looks without reading (waits at most the read timeout).
            if let Ok(n) = client.peek(&mut buffer[..PEEK_BYTES]) {
                shared.waiting.fetch_max(n, Ordering::SeqCst);
            }
            std::thread::sleep(POLL);
            continue;
        }
        let read = client.read(&mut buffer);
        shared.reading.fetch_sub(1, Ordering::SeqCst);
        match read {
            Ok(0) => {
                ended(websocket, ClientEnd::Eof);
                return server.shutdown(Shutdown::Write);
            }
            Ok(n) => {
                let head = String::from_utf8_lossy(&buffer[..n]).to_ascii_lowercase();
                websocket.get_or_insert(head.contains("upgrade: websocket"));
                server.write_all(&buffer[..n])?;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => {
                ended(websocket, ClientEnd::Failed(e.kind()));
                let _ = server.shutdown(Shutdown::Both);
                return Err(e);
            }
        }
    }
}

/// A platform that stops reading while the client has much to write (PRODUCEs of
/// 900 KB, far more than the sockets' buffers hold) does not stall the client: the
/// connection's write queue is bounded, and once it is full the client gives the
/// connection up (`Disconnected` with `Network(WouldBlock)`), answers the sends on it
/// `ConnectionLost` and connects again once the platform reads — long before a
/// dead-connection check could notice (`dead_after` is set beyond the test's limit).
pub fn a_peer_that_stops_reading_is_given_up<C: ClientUnderTest>() {
    let sim = simulator();
    let proxy = ValveProxy::start(sim.local_addr()).expect("the proxy starts");
    let mut config = config(&sim);
    config.endpoint = proxy.endpoint();
    config.dead_after = 4 * LIMIT;
    config.send_timeout = 4 * LIMIT;
    let client: Arc<C> = Arc::new(connect(config));
    proxy.close();
    let filler = Arc::new("x".repeat(900 * 1024));
    // Threads of their own, not scoped: a client that stalls must fail the test below,
    // not hang it.
    let sends: Vec<_> = (0..24)
        .map(|n| {
            let (client, filler) = (client.clone(), filler.clone());
            std::thread::spawn(move || {
                let biz = json!({ "n": n, "filler": *filler });
                client.send("alipay.open.app.openbizmock.message.send", &biz)
            })
        })
        .collect();
    wait_for(|| {
        count(&*client, |e| {
            matches!(
                e,
                ClientEvent::Disconnected {
                    reason: DisconnectReason::Network(ErrorKind::WouldBlock),
                    ..
                }
            )
        }) == 1
    });
    let answers: Vec<String> = sends
        .into_iter()
        .map(|send| match send.join().expect("no panic") {
            Ok(ack) => format!("answered {ack}"),
            Err(e) => e.to_string(),
        })
        .collect();
    let lost = SendError::ConnectionLost.to_string();
    assert!(
        answers.iter().any(|answer| answer.contains(&lost)),
        "{answers:?}"
    );
    proxy.open();
    wait_for(|| count(&*client, |e| matches!(e, ClientEvent::Connected)) == 2);
    let ack = client
        .send("alipay.open.app.openbizmock.message.send", &json!({"n": 1}))
        .expect("send");
    assert!(ack.is_success(), "{ack}");
    client.shutdown();
    proxy.stop();
    sim.shutdown();
}

/// The last frames a client writes before it closes — here the SUCCESS ack of the
/// message whose handler shutdown waited for, and the websocket close — reach a
/// platform that reads them only after the client has closed its socket.
///
/// When the client closes, bytes it has not read are still in its socket (pushes it had
/// stopped reading, `max_in_flight` being 1), and what it wrote last is still in its
/// socket's send queue behind a PRODUCE of 900 KB that the platform has not read.
/// Closing a socket with unread bytes resets the connection on Linux: the send queue,
/// with the ack, the close frame and the end of stream, is thrown away, and so is what
/// the peer had received and not yet read. The client shuts its side down instead and
/// reads what is left (bounded) before it lets the socket go, so the platform reads the
/// ack and an end of stream, however late.
pub fn last_frames_reach_a_peer_that_reads_late<C: ClientUnderTest>() {
    let sim = simulator();
    // The PRODUCE is never answered: nothing comes back while the valve is open again.
    sim.set_faults(FaultPlan {
        withhold_produce_acks: 1,
        ..FaultPlan::default()
    })
    .expect("simulator runs");
    let proxy = ValveProxy::start(sim.local_addr()).expect("the proxy starts");
    let mut config = config(&sim);
    config.endpoint = proxy.endpoint();
    config.max_in_flight = 1;
    let client: Arc<C> = Arc::new(connect(config));
    let (started, release) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (s, r) = (started.clone(), release.clone());
    client.start(Arc::new(move |_msg: &Message| {
        s.store(true, Ordering::SeqCst);
        while !r.load(Ordering::SeqCst) {
            std::thread::sleep(POLL);
        }
        Ok(())
    }));
    let mut events = sim.events();
    let first = sim
        .push("alipay.open.mini.version.audit.passed", r#"{"n":0}"#)
        .expect("push");
    wait_for(|| started.load(Ordering::SeqCst));
    // 200 KB the paused client does not read (it holds at most 64 KiB beyond a frame).
    let filler = "x".repeat(4000);
    for n in 1..=50 {
        let biz = json!({ "n": n, "filler": filler }).to_string();
        sim.push("alipay.open.mini.version.audit.passed", &biz)
            .expect("push");
    }
    // The first message's delivery, then the 50 others'.
    let mut sent = 0;
    while sent < 51 {
        match events.blocking_recv() {
            Ok(SimulatorEvent::Server(ServerEvent::Delivered { .. })) => sent += 1,
            Ok(_) => {}
            Err(e) => panic!("simulator events: {e}"),
        }
    }
    proxy.close();
    let produce = {
        let client = client.clone();
        std::thread::spawn(move || {
            let biz = json!({ "filler": "x".repeat(900 * 1024) });
            client.send("alipay.open.app.openbizmock.message.send", &biz)
        })
    };
    // The PRODUCE is on its way: it has filled what the proxy's socket takes.
    wait_for(|| proxy.waiting() >= PEEK_BYTES);
    let stopping = {
        let client = client.clone();
        std::thread::spawn(move || client.shutdown())
    };
    release.store(true, Ordering::SeqCst);
    stopping.join().expect("no panic");
    let error = produce
        .join()
        .expect("no panic")
        .expect_err("never answered");
    assert_eq!(error.to_string(), SendError::ConnectionLost.to_string());
    // The client's socket is closed; only now does the platform read what it wrote.
    proxy.open();
    wait_for(|| !proxy.websocket_ends().is_empty());
    assert_eq!(proxy.websocket_ends(), [ClientEnd::Eof], "the client's end");
    wait_for(|| {
        matches!(
            sim.message_state(&first).expect("simulator runs"),
            Some(MessageState::Acked { .. })
        )
    });
    proxy.stop();
    sim.shutdown();
}
