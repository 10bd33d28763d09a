//! Several processes over one database: this test binary re-executes itself as child
//! processes (`cross_process child ...`) that open their own store, and talks to them over
//! their stdin and stdout, one line per step.
//!
//! - Appenders in different processes racing at one expected version: exactly one wins, the
//!   others get `WrongExpectedVersion` and write nothing.
//! - A subscriber in this process receives every event another process appends, in order and
//!   exactly once, across a forced reconnect of its notification connection (its backend
//!   terminated with `pg_terminate_backend` mid-stream; the safety poll is off, so only the
//!   notifications and the re-read after reconnecting can deliver).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use futures::StreamExt;
use managed_agents_core::storage::{read_all, Append, Error, Expected, Store, StreamId, Version};
use managed_agents_storage_postgres::{Options, PostgresStore};

/// How long a step may take before the test calls it stuck.
const PATIENCE: Duration = Duration::from_secs(30);
const RACERS: usize = 3;
const ROUNDS: usize = 25;
const FIRST_HALF: Version = 300;
const SECOND_HALF: Version = 300;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        child(&args[1..]);
        return;
    }
    let filter = args.iter().find(|arg| !arg.starts_with('-'));
    let cases: [(&str, fn()); 2] = [
        (
            "appenders_in_different_processes_at_one_version_exactly_one_wins",
            appenders_in_different_processes_at_one_version_exactly_one_wins,
        ),
        (
            "subscriber_receives_another_process_events_across_a_listener_reconnect",
            subscriber_receives_another_process_events_across_a_listener_reconnect,
        ),
    ];
    for (name, case) in cases {
        if filter.is_some_and(|filter| !name.contains(filter.as_str())) {
            continue;
        }
        println!("test {name} ...");
        case();
        println!("test {name} ... ok");
    }
}

fn append_one(
    store: &PostgresStore,
    stream: &StreamId,
    expected: Expected,
    text: String,
) -> Result<Version, Error> {
    block_on(store.append(Append {
        stream: stream.clone(),
        expected,
        events: vec![text.into()],
        catalog: None,
    }))
    .map(|appended| appended.last)
}

/// The child side: `child race URL` answers each `go STREAM` with `won` or `lost ACTUAL`;
/// `child append URL STREAM` appends the first half one event at a time, says `half`, waits
/// for a line, appends the second half as one batch and says `done`.
fn child(args: &[String]) {
    let [role, url, rest @ ..] = args else {
        panic!("child needs a role and a URL: {args:?}");
    };
    let store = support::open(url, Options::new);
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let say = |line: &str| {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}").expect("stdout");
        stdout.flush().expect("stdout");
    };
    match role.as_str() {
        "race" => {
            say("ready");
            while let Some(Ok(line)) = lines.next() {
                let stream = StreamId::new(line.trim_start_matches("go ").to_owned());
                let pid = std::process::id();
                match append_one(&store, &stream, Expected::Exactly(1), format!("{pid}")) {
                    Ok(_) => say("won"),
                    Err(Error::WrongExpectedVersion { actual, .. }) => {
                        say(&format!("lost {actual}"))
                    }
                    Err(other) => panic!("unexpected append failure: {other}"),
                }
            }
        }
        "append" => {
            let stream = StreamId::new(rest.first().expect("a stream").to_owned());
            for version in 1..=FIRST_HALF {
                let expected = Expected::Exactly(version - 1);
                append_one(&store, &stream, expected, format!("e{version}")).expect("append");
            }
            say("half");
            lines.next().expect("a line").expect("stdin");
            // One batch: committed within milliseconds, before the listener can reconnect.
            let events = (FIRST_HALF + 1..=FIRST_HALF + SECOND_HALF)
                .map(|version| format!("e{version}").into())
                .collect();
            block_on(store.append(Append {
                stream,
                expected: Expected::Exactly(FIRST_HALF),
                events,
                catalog: None,
            }))
            .expect("append the second half");
            say("done");
            let _ = lines.next();
        }
        other => panic!("unknown child role {other}"),
    }
}

/// A child process and its pipes.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("this test binary"))
            .arg("child")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning a child process");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("writing to a child");
        self.stdin.flush().expect("writing to a child");
    }

    fn expect_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("reading a child");
        assert!(!line.is_empty(), "a child exited early");
        line.trim().to_owned()
    }

    fn finish(mut self) {
        drop(self.stdin);
        let status = self.child.wait().expect("waiting for a child");
        assert!(status.success(), "a child failed: {status}");
    }
}

fn appenders_in_different_processes_at_one_version_exactly_one_wins() {
    let url = support::fresh_database();
    let store = support::open(&url, Options::new);
    let mut racers: Vec<Peer> = (0..RACERS).map(|_| Peer::spawn(&["race", &url])).collect();
    for racer in &mut racers {
        assert_eq!(racer.expect_line(), "ready");
    }
    for round in 0..ROUNDS {
        let stream = StreamId::new(format!("sesn_race{round}"));
        append_one(&store, &stream, Expected::Exactly(0), "first".into()).expect("first event");
        for racer in &mut racers {
            racer.send(&format!("go {stream}"));
        }
        let answers: Vec<String> = racers.iter_mut().map(Peer::expect_line).collect();
        let winners: Vec<usize> = (0..RACERS).filter(|&i| answers[i] == "won").collect();
        assert_eq!(winners.len(), 1, "round {round}: answers {answers:?}");
        for (i, answer) in answers.iter().enumerate() {
            if i != winners[0] {
                assert_eq!(answer, "lost 2", "round {round}");
            }
        }
        let records = block_on(read_all(&store, &stream)).expect("read");
        let versions: Vec<Version> = records.iter().map(|r| r.version).collect();
        assert_eq!(versions, [1, 2], "round {round}: the losers wrote nothing");
        let winner_pid = racers[winners[0]].child.id().to_string();
        assert_eq!(records[1].payload, winner_pid.as_bytes());
    }
    for racer in racers {
        racer.finish();
    }
}

fn subscriber_receives_another_process_events_across_a_listener_reconnect() {
    let url = support::fresh_database();
    let store = support::open(&url, |url| {
        let mut options = Options::new(url);
        options.safety_poll = Duration::from_secs(24 * 3600);
        options
    });
    let stream = StreamId::new("sesn_followed");
    let (tx, received) = mpsc::channel();
    let mut subscription = store.subscribe(&stream, 0);
    let consumer = thread::spawn(move || {
        block_on(async {
            while let Some(item) = subscription.next().await {
                let last = matches!(&item, Ok(r) if r.version == FIRST_HALF + SECOND_HALF);
                if tx.send(item).is_err() || last {
                    return;
                }
            }
        })
    });
    let mut next: Version = 1;
    let mut take_until = |last: Version| {
        while next <= last {
            let record = received
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|_| panic!("the subscriber stalled before version {next}"))
                .expect("a record");
            assert_eq!(record.version, next, "a gap or a duplicate");
            assert_eq!(record.payload, format!("e{next}").as_bytes());
            next += 1;
        }
    };

    let mut appender = Peer::spawn(&["append", &url, stream.as_str()]);
    assert_eq!(appender.expect_line(), "half");
    take_until(FIRST_HALF);

    let old_pid = store.listener_pid().expect("the store listens");
    let terminated = support::admin(&url, async |client| {
        let row = client
            .query_one("SELECT pg_terminate_backend($1)", &[&old_pid])
            .await?;
        Ok(row.get::<_, bool>(0))
    });
    assert!(terminated, "the listening backend was terminated");
    // The second half is committed while the listener is down (it waits before reconnecting):
    // its notification is lost, and only the re-read after reconnecting delivers it.
    appender.send("go");
    assert_eq!(appender.expect_line(), "done");
    take_until(FIRST_HALF + SECOND_HALF);
    consumer.join().expect("consumer");
    appender.finish();

    let deadline = Instant::now() + PATIENCE;
    loop {
        match store.listener_pid() {
            Some(pid) if pid != old_pid => break,
            _ => {
                assert!(Instant::now() < deadline, "the listener never reconnected");
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
