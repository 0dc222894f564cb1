//! The JSON lines `listen` and `serve-notify` print on stdout, written before the
//! handler returns (and so before the message is acked SUCCESS, or the notification
//! answered `success`): a crash after the ack cannot lose a line.
//!
//! To a terminal, each line is one `write` of its own, as `println!` would, made by a
//! thread of its own (`alipay-msg-stdout`): a terminal paused with Ctrl-S blocks that
//! write, and no runtime thread may wait in it (the client's connection, heartbeats
//! included, runs on those; the handlers wait asynchronously for their lines). Otherwise
//! (a pipe, a file) the lines of concurrent handlers are group-committed: a handler
//! queues its line; the first one that finds no write in progress becomes the writer and
//! writes everything queued in one `write_all`; [`JsonLines::write_line`] returns only
//! once a write holding its line has completed. At a trickle that is one `write` per
//! line on the handler's own thread; under load, many lines per `write`. When more lines
//! queued during a write, the writer hands the role to the handlers of those lines (one
//! of them writes them all) rather than writing on, so no handler's return waits on
//! lines queued after its own.
//!
//! Bounded: at most `capacity` lines are queued or being written at once (a handler
//! beyond that waits for room); `listen` passes its `max_in_flight`, and each handler in
//! flight has at most one line here, so there it never waits. A failed write fails every
//! handler whose line it held, and every later one at once (the output may end in a part
//! of a line, so nothing more is written after it).

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};

/// Why a line was not written: the handler fails (FAIL ack, `fail` answer) and the
/// platform redelivers.
#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// The write holding the line, or an earlier one, failed (a closed pipe: `EPIPE`, a
    /// full disk: `ENOSPC`, …); every write after a failed one fails at once with it.
    #[error("cannot write to stdout: {0}")]
    Io(Arc<std::io::Error>),
    /// The writer of the line's batch panicked before reporting (a bug).
    #[error("the line's writer stopped before writing it")]
    Abandoned,
}

/// The lines of one group commit, as its waiters see it.
#[derive(Clone, Debug)]
enum Batch {
    /// Queued while another batch is being written.
    Queued,
    /// The write before it ended and no one writes it yet: a waiter takes the role.
    Unclaimed,
    /// Written (or failed).
    Written(Result<(), WriteError>),
}

/// What the handlers share, behind one lock held for no system call.
#[derive(Default)]
struct Queue {
    /// The lines queued, each ending in `\n`.
    bytes: Vec<u8>,
    /// How many lines `bytes` holds.
    lines: usize,
    /// A handler holds the writer role.
    writing: bool,
    /// The waiters' view of `bytes`; set by the first waiter.
    batch: Option<watch::Sender<Batch>>,
    /// Counts the batches taken for writing: a waiter knows its own by this.
    batch_id: u64,
    /// The first write error; sticky.
    failed: Option<WriteError>,
}

/// One line for the writer thread, its room (given back once it is written, whether
/// or not its caller still waits) and where its result goes.
type Line = (
    Vec<u8>,
    OwnedSemaphorePermit,
    oneshot::Sender<std::io::Result<()>>,
);

/// Where the lines go.
enum Output<W> {
    /// Group commit: written by whichever handler holds the writer role (one at a time).
    Batched(Mutex<W>),
    /// One `write` per line, on the writer thread (at most `capacity` lines queued).
    Alone(mpsc::Sender<Line>),
}

/// JSON lines to one output (`W`: stdout, or a test's recorder), shared by the handlers
/// (wrap it in an `Arc`).
pub(crate) struct JsonLines<W> {
    /// One permit per line queued or being written: `capacity` in all.
    room: Arc<Semaphore>,
    queue: Mutex<Queue>,
    out: Output<W>,
}

impl JsonLines<std::io::Stdout> {
    /// Lines on this process's stdout: one `write` each when it is a terminal
    /// (`std::io::IsTerminal`), group-committed otherwise; at most `capacity` lines (at
    /// least 1) queued or being written at once.
    ///
    /// # Errors
    ///
    /// The writer thread of a terminal could not be started.
    pub(crate) fn stdout(capacity: usize) -> std::io::Result<Self> {
        use std::io::IsTerminal;
        let out = std::io::stdout();
        let batched = !out.is_terminal();
        JsonLines::new(out, batched, capacity)
    }
}

impl<W: Write + Send + 'static> JsonLines<W> {
    /// Lines on `out`, group-committed when `batched`, else one `write` per line on a
    /// thread of its own; at most `capacity` lines (at least 1) queued or being written
    /// at once. A line that ends in `\n` goes through `std::io::Stdout`'s line buffer as
    /// one `write`.
    ///
    /// # Errors
    ///
    /// Not `batched`: the writer thread could not be started.
    pub(crate) fn new(out: W, batched: bool, capacity: usize) -> std::io::Result<Self> {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        let out = if batched {
            Output::Batched(Mutex::new(out))
        } else {
            let (lines, mut queued) = mpsc::channel::<Line>(capacity);
            let mut out = out;
            std::thread::Builder::new()
                .name("alipay-msg-stdout".into())
                .spawn(move || {
                    // After a failed write nothing more is written (the output may end
                    // in a part of a line): each later line gets the first error.
                    let mut failed: Option<(std::io::ErrorKind, String)> = None;
                    // Ends when the last sender (the `JsonLines`) is gone.
                    while let Some((bytes, room, written)) = queued.blocking_recv() {
                        let result = match &failed {
                            Some((kind, message)) => {
                                Err(std::io::Error::new(*kind, message.clone()))
                            }
                            None => out.write_all(&bytes).and_then(|()| out.flush()),
                        };
                        if let (Err(e), None) = (&result, &failed) {
                            failed = Some((e.kind(), e.to_string()));
                        }
                        drop(room);
                        let _ = written.send(result);
                    }
                })?;
            Output::Alone(lines)
        };
        Ok(JsonLines {
            room: Arc::new(Semaphore::new(capacity)),
            queue: Mutex::new(Queue::default()),
            out,
        })
    }

    /// Writes `line` (one JSON value, without a newline: `\n` is added) and returns once
    /// a write holding it has completed.
    ///
    /// # Errors
    ///
    /// [`WriteError::Io`] when that write, or an earlier one, failed;
    /// [`WriteError::Abandoned`] when its writer panicked.
    ///
    /// A caller dropped while it waits may still have its line written (it was queued).
    pub(crate) async fn write_line(&self, line: &str) -> Result<(), WriteError> {
        // The semaphore is never closed. The permit is given back when the line has been
        // written, whoever writes it, so lines queued by callers dropped meanwhile count
        // too.
        let out = match &self.out {
            Output::Batched(out) => out,
            Output::Alone(writer) => {
                let room = self.room.clone().acquire_owned().await;
                let room = room.map_err(|_| WriteError::Abandoned)?;
                return self.write_alone(writer, line, room).await;
            }
        };
        self.room
            .acquire()
            .await
            .map_err(|_| WriteError::Abandoned)?
            .forget();
        let (id, mut batch) = {
            let mut queue = self.lock_queue();
            if let Some(e) = &queue.failed {
                let e = e.clone();
                drop(queue);
                self.room.add_permits(1);
                return Err(e);
            }
            if !queue.writing {
                queue.writing = true;
                // Lines queued before (their waiters were dropped) go with this one.
                let (mut bytes, lines, earlier) = take(&mut queue);
                drop(queue);
                bytes.extend_from_slice(line.as_bytes());
                bytes.push(b'\n');
                return self.write_batch(out, bytes, lines + 1, earlier);
            }
            queue.bytes.extend_from_slice(line.as_bytes());
            queue.bytes.push(b'\n');
            queue.lines += 1;
            let batch = queue
                .batch
                .get_or_insert_with(|| watch::channel(Batch::Queued).0)
                .subscribe();
            (queue.batch_id, batch)
        };
        loop {
            let state = batch.borrow_and_update().clone();
            match state {
                Batch::Written(result) => return result,
                Batch::Unclaimed => {
                    let mut queue = self.lock_queue();
                    if !queue.writing && queue.batch_id == id {
                        queue.writing = true;
                        let (bytes, lines, this) = take(&mut queue);
                        drop(queue);
                        return self.write_batch(out, bytes, lines, this);
                    }
                }
                Batch::Queued => {}
            }
            if batch.changed().await.is_err() {
                return Err(WriteError::Abandoned);
            }
        }
    }

    /// One line, one write, on the writer thread (not batched), which gives `room`
    /// back once the line is written; the first failure sticks.
    async fn write_alone(
        &self,
        writer: &mpsc::Sender<Line>,
        line: &str,
        room: OwnedSemaphorePermit,
    ) -> Result<(), WriteError> {
        if let Some(e) = &self.lock_queue().failed {
            return Err(e.clone());
        }
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        let (written, result) = oneshot::channel();
        // The thread ends only when this sender is dropped, or when it panicked.
        if writer.send((bytes, room, written)).await.is_err() {
            return Err(WriteError::Abandoned);
        }
        match result.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self
                .lock_queue()
                .failed
                .get_or_insert(WriteError::Io(Arc::new(e)))
                .clone()),
            Err(_) => Err(WriteError::Abandoned),
        }
    }

    /// The writer role: writes `bytes` (`lines` lines) in one `write_all`, tells the
    /// waiters of `batch`, gives back the permits, and passes the role on to the lines
    /// queued meanwhile (or fails them at once after an error). A queued batch nobody
    /// waits for any more (its callers were dropped, e.g. a notification whose request
    /// the platform abandoned) is written here at once: passed on, no one would take it
    /// until a later line came. Returns the result of the first write, the caller's own.
    fn write_batch(
        &self,
        out: &Mutex<W>,
        mut bytes: Vec<u8>,
        mut lines: usize,
        mut batch: Option<watch::Sender<Batch>>,
    ) -> Result<(), WriteError> {
        let mut own = None;
        loop {
            let written = {
                let mut out = out.lock().unwrap_or_else(PoisonError::into_inner);
                out.write_all(&bytes).and_then(|()| out.flush())
            };
            let mut queue = self.lock_queue();
            let result = match written {
                Ok(()) => Ok(()),
                Err(e) => Err(queue
                    .failed
                    .get_or_insert(WriteError::Io(Arc::new(e)))
                    .clone()),
            };
            let own_result = own.get_or_insert_with(|| result.clone()).clone();
            if queue.bytes.capacity() == 0 {
                // Keep the allocation for the next batch.
                let mut spare = std::mem::take(&mut bytes);
                spare.clear();
                queue.bytes = spare;
            }
            let mut given_back = lines;
            let mut next_batch = None;
            if let Some(e) = &queue.failed {
                let e = e.clone();
                let (_, failed_lines, failed) = take(&mut queue);
                given_back += failed_lines;
                if let Some(failed) = failed {
                    failed.send_replace(Batch::Written(Err(e)));
                }
            } else if let Some(next) = &queue.batch {
                if next.receiver_count() == 0 {
                    next_batch = Some(take(&mut queue));
                } else {
                    next.send_replace(Batch::Unclaimed);
                }
            }
            if next_batch.is_none() {
                queue.writing = false;
            }
            drop(queue);
            self.room.add_permits(given_back);
            if let Some(batch) = batch.take() {
                batch.send_replace(Batch::Written(result));
            }
            match next_batch {
                Some((next_bytes, next_lines, next)) => {
                    (bytes, lines, batch) = (next_bytes, next_lines, next);
                }
                None => return own_result,
            }
        }
    }

    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding it; a poisoned queue is still consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lines queued now (tests).
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.lock_queue().lines
    }
}

/// Takes the queued lines and their batch for writing: (bytes, lines, batch).
fn take(queue: &mut Queue) -> (Vec<u8>, usize, Option<watch::Sender<Batch>>) {
    let bytes = std::mem::take(&mut queue.bytes);
    let lines = std::mem::take(&mut queue.lines);
    let batch = queue.batch.take();
    queue.batch_id = queue.batch_id.wrapping_add(1);
    (bytes, lines, batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// What a [`Recorder`] saw: each `write` call's bytes.
    #[derive(Default)]
    struct Seen {
        writes: Vec<Vec<u8>>,
    }

    /// An output that records each `write`, and, when gated, waits for a go (`Ok`) or
    /// a failure (`Err`) from the test before each one.
    struct Recorder {
        seen: Arc<Mutex<Seen>>,
        gate: Option<mpsc::Receiver<Result<(), std::io::ErrorKind>>>,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Some(gate) = &self.gate {
                gate.recv_timeout(Duration::from_secs(20))
                    .expect("the test opens the gate")
                    .map_err(std::io::Error::from)?;
            }
            self.seen.lock().unwrap().writes.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    type Gate = mpsc::Sender<Result<(), std::io::ErrorKind>>;

    fn recorder(gated: bool) -> (Recorder, Arc<Mutex<Seen>>, Option<Gate>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (go, gate) = mpsc::channel();
        let recorder = Recorder {
            seen: seen.clone(),
            gate: gated.then_some(gate),
        };
        (recorder, seen, gated.then_some(go))
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap()
    }

    /// Every write holds whole lines; the lines written, in order.
    fn lines_written(seen: &Mutex<Seen>) -> Vec<String> {
        let seen = seen.lock().unwrap();
        let mut lines = Vec::new();
        for write in &seen.writes {
            let text = std::str::from_utf8(write).unwrap();
            assert!(text.ends_with('\n'), "a write of whole lines: {text:?}");
            lines.extend(text.lines().map(str::to_owned));
        }
        lines
    }

    /// Writes line `i` on a task of its own.
    fn spawn_line(
        lines: &Arc<JsonLines<Recorder>>,
        i: usize,
    ) -> tokio::task::JoinHandle<Result<(), WriteError>> {
        let lines = lines.clone();
        tokio::spawn(async move { lines.write_line(&line(i)).await })
    }

    fn line(i: usize) -> String {
        format!(
            "{{\"msg_id\":\"{i}\",\"biz_content\":{{\"pad\":\"{}\"}}}}",
            "x".repeat(i % 97)
        )
    }

    /// Polls `done` until true, failing the test after 20 s.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[test]
    fn concurrent_lines_are_written_once_whole_and_before_their_handler_returns() {
        for batched in [true, false] {
            let (out, seen, _) = recorder(false);
            let lines = Arc::new(JsonLines::new(out, batched, 16).unwrap());
            let handlers: Vec<_> = (0..2000)
                .map(|i| {
                    let (lines, seen) = (lines.clone(), seen.clone());
                    async move {
                        lines.write_line(&line(i)).await.unwrap();
                        // Written before the handler resumes.
                        let own = format!("{}\n", line(i));
                        let seen = seen.lock().unwrap();
                        assert!(seen.writes.iter().any(|w| w
                            .split_inclusive(|&b| b == b'\n')
                            .any(|l| l == own.as_bytes())));
                    }
                })
                .collect();
            runtime().block_on(async {
                let tasks: Vec<_> = handlers.into_iter().map(tokio::spawn).collect();
                for task in tasks {
                    task.await.unwrap();
                }
            });
            let mut counts = HashMap::new();
            for l in lines_written(&seen) {
                *counts.entry(l).or_insert(0) += 1;
            }
            assert_eq!(counts.len(), 2000);
            for i in 0..2000 {
                assert_eq!(counts.get(&line(i)), Some(&1), "line {i}");
            }
            if !batched {
                assert_eq!(
                    seen.lock().unwrap().writes.len(),
                    2000,
                    "one write per line"
                );
            }
            assert_eq!(
                lines.room.available_permits(),
                16,
                "every permit given back"
            );
        }
    }

    #[test]
    fn lines_queued_during_a_write_go_out_in_one_and_wait_for_it() {
        let (out, seen, go) = recorder(true);
        let go = go.unwrap();
        let lines = Arc::new(JsonLines::new(out, true, 64).unwrap());
        let returned = Arc::new(AtomicUsize::new(0));
        runtime().block_on(async {
            let spawn = |i: usize| {
                let (lines, returned) = (lines.clone(), returned.clone());
                tokio::spawn(async move {
                    let result = lines.write_line(&line(i)).await;
                    returned.fetch_add(1, Ordering::SeqCst);
                    result
                })
            };
            // The first becomes the writer and blocks in its write.
            let first = spawn(0);
            until("the first write starts", || lines.lock_queue().writing).await;
            let rest: Vec<_> = (1..=10).map(spawn).collect();
            until("ten lines queue", || lines.queued() == 10).await;
            assert_eq!(returned.load(Ordering::SeqCst), 0, "nothing written yet");
            assert_eq!(lines.room.available_permits(), 64 - 11);
            // The first write ends: its writer returns, one of the ten writes the rest.
            go.send(Ok(())).unwrap();
            first.await.unwrap().unwrap();
            assert_eq!(seen.lock().unwrap().writes.len(), 1);
            go.send(Ok(())).unwrap();
            for task in rest {
                task.await.unwrap().unwrap();
            }
        });
        let seen_writes = seen.lock().unwrap().writes.len();
        assert_eq!(seen_writes, 2, "the ten queued lines in one write");
        let written = lines_written(&seen);
        assert_eq!(written[0], line(0));
        let mut rest = written[1..].to_vec();
        rest.sort();
        let mut expected: Vec<_> = (1..=10).map(line).collect();
        expected.sort();
        assert_eq!(rest, expected);
        assert_eq!(lines.room.available_permits(), 64);
    }

    /// Lines queued by callers that were dropped while a write was in progress (a
    /// notification request the platform abandoned) are written by that writer right
    /// after its own: passed on, nobody would take them, and they (and their room) were
    /// held until some later line came.
    #[test]
    fn lines_of_dropped_callers_are_written_and_give_their_room_back() {
        let (out, seen, go) = recorder(true);
        let go = go.unwrap();
        let lines = Arc::new(JsonLines::new(out, true, 3).unwrap());
        runtime().block_on(async {
            let first = {
                let lines = lines.clone();
                tokio::spawn(async move { lines.write_line(&line(0)).await })
            };
            until("the first write starts", || lines.lock_queue().writing).await;
            // Two callers queue their lines, then go away.
            let dropped: Vec<_> = (1..=2)
                .map(|i| {
                    let lines = lines.clone();
                    tokio::spawn(async move { lines.write_line(&line(i)).await })
                })
                .collect();
            until("two lines queue", || lines.queued() == 2).await;
            for task in dropped {
                task.abort();
                let _ = task.await;
            }
            assert_eq!(lines.room.available_permits(), 0);
            go.send(Ok(())).unwrap();
            go.send(Ok(())).unwrap();
            first.await.unwrap().unwrap();
            go.send(Ok(())).unwrap();
            until("the dropped callers' lines written", || {
                seen.lock().unwrap().writes.len() == 2
            })
            .await;
            go.send(Ok(())).unwrap();
            lines.write_line(&line(3)).await.unwrap();
        });
        assert_eq!(seen.lock().unwrap().writes.len(), 3);
        let written = lines_written(&seen);
        assert_eq!(
            written,
            [line(0), line(1), line(2), line(3)].map(|l| l.to_string())
        );
        assert_eq!(lines.room.available_permits(), 3);
    }

    #[test]
    fn a_failed_write_fails_its_lines_the_waiting_ones_and_later_ones() {
        let (out, seen, go) = recorder(true);
        let go = go.unwrap();
        let lines = Arc::new(JsonLines::new(out, true, 8).unwrap());
        runtime().block_on(async {
            let spawn = |i: usize| spawn_line(&lines, i);
            let first = spawn(0);
            until("the first write starts", || lines.lock_queue().writing).await;
            let rest: Vec<_> = (1..=5).map(spawn).collect();
            until("five lines queue", || lines.queued() == 5).await;
            go.send(Err(std::io::ErrorKind::BrokenPipe)).unwrap();
            for task in std::iter::once(first).chain(rest) {
                match task.await.unwrap() {
                    Err(WriteError::Io(e)) => {
                        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe)
                    }
                    other => panic!("expected the write's error, got {other:?}"),
                }
            }
            // Sticky: nothing more is written.
            assert!(matches!(
                lines.write_line(&line(6)).await,
                Err(WriteError::Io(_))
            ));
        });
        assert!(seen.lock().unwrap().writes.is_empty());
        assert_eq!(lines.room.available_permits(), 8);
    }

    #[test]
    fn a_failed_write_fails_later_lines_when_not_batched() {
        let (out, seen, go) = recorder(true);
        let go = go.unwrap();
        let lines = JsonLines::new(out, false, 8).unwrap();
        go.send(Ok(())).unwrap();
        go.send(Err(std::io::ErrorKind::StorageFull)).unwrap();
        runtime().block_on(async {
            lines.write_line(&line(0)).await.unwrap();
            assert!(lines.write_line(&line(1)).await.is_err());
            assert!(lines.write_line(&line(2)).await.is_err());
        });
        assert_eq!(lines_written(&seen), vec![line(0)]);
    }

    /// A terminal paused with Ctrl-S blocks the write of a line; on a runtime with one
    /// thread, everything else (here a timer; in `listen`, the client's connection) goes
    /// on meanwhile, and the line is written once the terminal is resumed.
    #[test]
    fn a_blocked_terminal_write_holds_up_no_runtime_thread() {
        let (out, seen, go) = recorder(true);
        let go = go.unwrap();
        let lines = Arc::new(JsonLines::new(out, false, 8).unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let writing = spawn_line(&lines, 0);
            // The write is under way and blocked (the gate is shut) …
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert!(!writing.is_finished());
            // … and resumed.
            go.send(Ok(())).unwrap();
            writing.await.unwrap().unwrap();
        });
        assert_eq!(lines_written(&seen), vec![line(0)]);
    }

    /// Lines to a terminal whose callers were dropped while the terminal was paused are
    /// still written, and give their room back: later lines are not held up for ever.
    #[test]
    fn dropped_callers_of_terminal_lines_give_their_room_back() {
        let (out, seen, go) = recorder(true);
        let go = go.unwrap();
        let lines = Arc::new(JsonLines::new(out, false, 2).unwrap());
        runtime().block_on(async {
            let spawn = |i: usize| spawn_line(&lines, i);
            let (a, b) = (spawn(0), spawn(1));
            until("both lines are out", || lines.room.available_permits() == 0).await;
            a.abort();
            b.abort();
            let _ = (a.await, b.await);
            for _ in 0..3 {
                go.send(Ok(())).unwrap();
            }
            let third = line(2);
            let written = tokio::time::timeout(Duration::from_secs(10), lines.write_line(&third));
            written.await.expect("room came back").unwrap();
        });
        assert_eq!(lines_written(&seen), vec![line(0), line(1), line(2)]);
    }

    #[test]
    fn at_most_capacity_lines_queued_or_being_written() {
        let (out, seen, go) = recorder(true);
        let go = go.unwrap();
        let lines = Arc::new(JsonLines::new(out, true, 3).unwrap());
        runtime().block_on(async {
            let spawn = |i: usize| spawn_line(&lines, i);
            let first = spawn(0);
            until("the first write starts", || lines.lock_queue().writing).await;
            let rest: Vec<_> = (1..=6).map(spawn).collect();
            until("two lines queue", || lines.queued() == 2).await;
            // The other four wait for room: the queue holds two, the write one.
            for _ in 0..50 {
                tokio::task::yield_now().await;
                assert!(lines.queued() <= 2);
            }
            for _ in 0..7 {
                go.send(Ok(())).unwrap();
            }
            first.await.unwrap().unwrap();
            for task in rest {
                task.await.unwrap().unwrap();
            }
        });
        let mut written = lines_written(&seen);
        written.sort();
        let mut expected: Vec<_> = (0..=6).map(line).collect();
        expected.sort();
        assert_eq!(written, expected);
    }
}
