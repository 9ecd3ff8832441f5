//! The body of the `mailbox_text` fuzz target, shared with `tests/fuzz_corpora.rs`: what a
//! text client (telnet, a script) sends to the mailbox port, as hostile input: every line
//! through the command parser (`dhost::mailbox::protocol::parse`), and the whole input as
//! one session of `dhost::mailbox::protocol::serve` on small in-memory mailboxes, whose
//! replies must stay framed (`OK`, `OK N` and N bytes, `ERR ...`, `BYE` last), so that a
//! client stays in step whatever it sent.

use dhost::mailbox::protocol::{self, Command};
use dhost::mailbox::{MailboxConfig, Mailboxes};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

/// Runs one input; panics if the parser or the session panics, a parsed command does not
/// parse again from its canonical form, or the replies are not framed.
pub(crate) fn run(data: &[u8]) {
    for line in data.split(|&b| b == b'\n') {
        check_line(line.strip_suffix(b"\r").unwrap_or(line));
    }
    let replies = session(data);
    check_replies(&replies, data);
}

/// Parses one command line; a command parses again from the way a client writes it.
fn check_line(line: &[u8]) {
    let canonical = match protocol::parse(line) {
        Ok(Command::Read(n)) => format!("r {n}"),
        Ok(Command::Write {
            number,
            length: None,
        }) => format!("w {number}"),
        Ok(Command::Write {
            number,
            length: Some(length),
        }) => format!("w {number} {length}"),
        Ok(Command::Quit) => "q".to_string(),
        Ok(Command::Nothing | Command::BadWrite { .. }) | Err(_) => return,
    };
    assert_eq!(
        protocol::parse(canonical.as_bytes()),
        protocol::parse(line),
        "{canonical}"
    );
}

thread_local! {
    /// A runtime for the sessions, made once per thread.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread tokio runtime");
}

/// Serves `input` as one client's session (the client then closes its side) on four
/// mailboxes of 1 KiB, and returns what the client received.
fn session(input: &[u8]) -> Vec<u8> {
    let boxes = Mailboxes::new(MailboxConfig::new(4, 1, 1).expect("a mailbox configuration"));
    RUNTIME.with(|runtime| {
        runtime.block_on(async {
            let (client, server) = tokio::io::duplex(4096);
            let (mut from_server, mut to_server) = tokio::io::split(client);
            let stop = CancellationToken::new();
            let send = async {
                // (The server may hang up first: the rest is not read.)
                if to_server.write_all(input).await.is_ok() {
                    let _ = to_server.shutdown().await;
                }
                drop(to_server);
            };
            let receive = async {
                let mut replies = Vec::new();
                let _ = from_server.read_to_end(&mut replies).await;
                replies
            };
            let serve = async {
                // The whole input is there at once and then the end: nothing waits for the
                // idle timeout.
                let _ = protocol::serve(server, &boxes, Duration::from_secs(60), &stop).await;
            };
            let ((), replies, ()) = tokio::join!(send, receive, serve);
            replies
        })
    })
}

/// The replies are a sequence of whole replies, `BYE` only last.
fn check_replies(mut replies: &[u8], input: &[u8]) {
    let bad = |why: &str, at: &[u8]| -> ! {
        panic!(
            "{why} at {:?} (input {:?})",
            String::from_utf8_lossy(at),
            String::from_utf8_lossy(input)
        )
    };
    while !replies.is_empty() {
        let Some(end) = replies.windows(2).position(|w| w == b"\r\n") else {
            bad("a reply without its line end", replies)
        };
        let (line, rest) = (&replies[..end], &replies[end + 2..]);
        replies = rest;
        if line == b"OK" || line.starts_with(b"ERR ") {
            continue;
        }
        if line == b"BYE" {
            if !replies.is_empty() {
                bad("replies after BYE", replies);
            }
            break;
        }
        let Some(length) = line
            .strip_prefix(b"OK ")
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.parse::<usize>().ok())
        else {
            bad("not a reply", line)
        };
        if length > 1024 || replies.len() < length + 2 || &replies[length..length + 2] != b"\r\n" {
            bad("a read's data is not LENGTH bytes and a line end", line);
        }
        replies = &replies[length + 2..];
    }
}
