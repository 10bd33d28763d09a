//! The log lines' way to stderr: formatted lines are appended to one shared buffer, and a
//! thread of its own writes what has gathered in one `write(2)`.
//!
//! The thread is woken only when a line lands in an empty buffer, and then waits
//! [`GATHER`] before it takes the buffer, so a busy server pays one wake-up and one write for
//! every few milliseconds of lines instead of one of each per line (the per-request access log
//! is a line per request: woken per line, the writer thread cost more than the line's
//! formatting). Nothing is dropped: a writer finding [`LIMIT`] bytes waiting blocks until the
//! thread has taken them. Dropping the [`Flush`] guard writes out what is left and stops the
//! thread; a line logged after that goes straight to the output.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer thread lets lines gather after the first one of a batch.
pub const GATHER: Duration = Duration::from_millis(2);

/// Bytes waiting beyond which a logging thread blocks until the writer thread took them.
pub const LIMIT: usize = 1 << 20;

/// Where formatted lines go: a `MakeWriter` for `tracing_subscriber`'s fmt layer.
#[derive(Clone)]
pub struct Lines {
    shared: Arc<Shared>,
}

/// Writes out what is waiting and stops the writer thread when dropped.
pub struct Flush {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a line lands in an empty buffer, and at close.
    filled: Condvar,
    /// Signalled when the writer thread took the buffer.
    drained: Condvar,
    output: Mutex<Box<dyn Write + Send>>,
}

struct State {
    waiting: Vec<u8>,
    closed: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only bytes behind: keep using them.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_out(&self, bytes: &[u8]) {
        let mut output = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        // Logging has nowhere to report its own failure: a closed stderr loses the lines.
        let _ = output.write_all(bytes).and_then(|()| output.flush());
    }

    fn append(&self, line: &[u8]) {
        let mut state = self.state();
        while state.waiting.len() >= LIMIT && !state.closed {
            state = self
                .drained
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.closed {
            drop(state);
            self.write_out(line);
            return;
        }
        let first = state.waiting.is_empty();
        state.waiting.extend_from_slice(line);
        drop(state);
        if first {
            self.filled.notify_one();
        }
    }

    /// The writer thread: waits for a first line, lets more gather, writes them all.
    fn run(&self) {
        let mut spare = Vec::new();
        loop {
            let mut state = self.state();
            while state.waiting.is_empty() && !state.closed {
                state = self
                    .filled
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if !state.closed {
                drop(state);
                std::thread::sleep(GATHER);
                state = self.state();
            }
            let closed = state.closed;
            let mut batch = std::mem::replace(&mut state.waiting, spare);
            drop(state);
            self.drained.notify_all();
            if !batch.is_empty() {
                self.write_out(&batch);
            }
            if closed {
                return;
            }
            batch.clear();
            spare = batch;
        }
    }
}

/// Lines written to `output` by a thread named `name`; the guard flushes and stops it.
pub fn spawn(output: Box<dyn Write + Send>, name: &str) -> io::Result<(Lines, Flush)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            waiting: Vec::new(),
            closed: false,
        }),
        filled: Condvar::new(),
        drained: Condvar::new(),
        output: Mutex::new(output),
    });
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || shared.run())?
    };
    Ok((
        Lines {
            shared: shared.clone(),
        },
        Flush {
            shared,
            thread: Some(thread),
        },
    ))
}

impl Drop for Flush {
    fn drop(&mut self) {
        self.shared.state().closed = true;
        self.shared.filled.notify_one();
        self.shared.drained.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One line's writer (the fmt layer writes each formatted line with one `write_all`).
pub struct Line<'a> {
    shared: &'a Shared,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.shared.append(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test reads back, counting the writes it got.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut inner = self.0.lock().expect("lock");
            inner.0.extend_from_slice(bytes);
            inner.1 += 1;
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_and_lines_logged_together_share_a_write() {
        let captured = Captured::default();
        let (lines, flush) = spawn(Box::new(captured.clone()), "test-log").expect("thread");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let lines = lines.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        let line = format!("thread {t} line {i}\n");
                        lines
                            .make_writer()
                            .write_all(line.as_bytes())
                            .expect("write");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("logging thread");
        }
        drop(flush);
        let (bytes, writes) = captured.0.lock().expect("lock").clone();
        let text = String::from_utf8(bytes).expect("utf-8");
        assert_eq!(text.lines().count(), 8_000);
        for t in 0..4 {
            let own: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("thread {t} line ")))
                .map(|i| i.parse().expect("index"))
                .collect();
            assert_eq!(own, (0..2_000).collect::<Vec<_>>(), "thread {t}'s lines");
        }
        assert!(writes < 8_000 / 4, "{writes} writes for 8,000 lines");
    }

    #[test]
    fn a_line_logged_after_the_flush_is_written_at_once() {
        let captured = Captured::default();
        let (lines, flush) = spawn(Box::new(captured.clone()), "test-log").expect("thread");
        lines.make_writer().write_all(b"before\n").expect("write");
        drop(flush);
        lines.make_writer().write_all(b"after\n").expect("write");
        assert_eq!(captured.0.lock().expect("lock").0, b"before\nafter\n");
    }

    #[test]
    fn a_full_buffer_holds_the_logging_thread_until_it_is_taken_and_loses_nothing() {
        let captured = Captured::default();
        let (lines, flush) = spawn(Box::new(captured.clone()), "test-log").expect("thread");
        let line = vec![b'x'; LIMIT / 4 - 1]
            .into_iter()
            .chain([b'\n'])
            .collect::<Vec<_>>();
        for _ in 0..20 {
            lines.make_writer().write_all(&line).expect("write");
        }
        drop(flush);
        assert_eq!(captured.0.lock().expect("lock").0.len(), 20 * line.len());
    }
}
