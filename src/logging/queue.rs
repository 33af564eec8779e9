//! A log writer that never blocks and never fails: each line goes through a bounded queue to
//! one thread that writes it out. Whoever logs (a request, a collection, the shutdown on
//! SIGTERM) only queues; when stderr is not read the queue fills and lines are dropped, and
//! when it is a broken pipe the writes fail and are ignored. Logging must never stop or kill
//! the server.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Lines held while the writer is behind: a burst at trace level, a few MB at most.
pub const CAPACITY: usize = 8192;

/// How long [`Flush`] waits at exit for the queued lines to be written.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

enum Msg {
    Line(Vec<u8>),
    /// Answered once every line queued before it has been written.
    Flush(SyncSender<()>),
}

/// Makes the log layer's writers: one [`Line`] per event, queued whole when it drops.
#[derive(Clone)]
pub struct LogQueue {
    tx: SyncSender<Msg>,
}

/// Waits for the queued lines to be written when dropped, [`FLUSH_TIMEOUT`] at most: the
/// last lines (`shutting down`) come out before the process exits, a stuck stderr does not
/// hold the exit.
pub struct Flush {
    tx: SyncSender<Msg>,
    timeout: Duration,
}

/// Starts the thread writing queued lines to `out`.
pub fn spawn<W: Write + Send + 'static>(out: W, capacity: usize) -> io::Result<(LogQueue, Flush)> {
    let (tx, rx) = mpsc::sync_channel(capacity);
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || drain(rx, out))?;
    let flush = Flush {
        tx: tx.clone(),
        timeout: FLUSH_TIMEOUT,
    };
    Ok((LogQueue { tx }, flush))
}

fn drain(rx: Receiver<Msg>, mut out: impl Write) {
    for msg in rx {
        match msg {
            // A failed write (a broken pipe, a full disk) loses this line, not the next.
            Msg::Line(line) => {
                let _ = out.write_all(&line);
            }
            Msg::Flush(done) => {
                let _ = out.flush();
                let _ = done.send(());
            }
        }
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        let deadline = Instant::now() + self.timeout;
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let mut msg = Msg::Flush(done_tx);
        // std's SyncSender has no send with a timeout: retry while the queue is full.
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return,
            }
        }
        let _ = done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

/// One event's text, queued when the layer drops it (or dropped if the queue is full).
pub struct Line<'a> {
    buf: Vec<u8>,
    tx: &'a SyncSender<Msg>,
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let _ = self.tx.try_send(Msg::Line(std::mem::take(&mut self.buf)));
        }
    }
}

impl<'a> MakeWriter<'a> for LogQueue {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            buf: Vec::new(),
            tx: &self.tx,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what it is given.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Fails every write, as stderr does once its reader has gone.
    struct BrokenPipe;

    impl Write for BrokenPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    /// Blocks every write until the test ends, as a pipe nobody reads does once full.
    struct Stuck(Mutex<Receiver<()>>);

    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            let _ = self.0.lock().unwrap().recv();
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn log(queue: &LogQueue, text: &str) -> io::Result<()> {
        let mut line = queue.make_writer();
        line.write_all(text.as_bytes())?;
        line.flush()
    }

    #[test]
    fn lines_come_out_whole_and_in_order_by_the_flush() {
        let sink = Sink::default();
        let (queue, flush) = spawn(sink.clone(), CAPACITY).unwrap();
        log(&queue, "one\n").unwrap();
        let mut line = queue.make_writer();
        line.write_all(b"two ").unwrap();
        line.write_all(b"halves\n").unwrap();
        drop(line);
        drop(flush);
        assert_eq!(&*sink.0.lock().unwrap(), b"one\ntwo halves\n");
    }

    #[test]
    fn a_broken_pipe_fails_no_write_and_no_flush() {
        let (queue, flush) = spawn(BrokenPipe, CAPACITY).unwrap();
        for _ in 0..3 {
            log(&queue, "lost\n").unwrap();
        }
        drop(flush);
        log(&queue, "still accepted\n").unwrap();
    }

    #[test]
    fn a_stuck_writer_blocks_neither_logging_nor_the_flush_past_its_timeout() {
        let (release, stuck) = mpsc::channel::<()>();
        let (done_tx, done) = mpsc::channel();
        // On a thread of its own, so that blocking fails the test instead of hanging it.
        std::thread::spawn(move || {
            let (queue, mut flush) = spawn(Stuck(Mutex::new(stuck)), 4).unwrap();
            flush.timeout = Duration::from_millis(20);
            // One line held by the writer, four queued, the rest dropped.
            for _ in 0..100 {
                log(&queue, "line\n").unwrap();
            }
            drop(flush);
            let _ = done_tx.send(());
        });
        let finished = done.recv_timeout(Duration::from_secs(10));
        drop(release);
        assert!(
            finished.is_ok(),
            "logging or the flush blocked on a stuck writer"
        );
    }
}
