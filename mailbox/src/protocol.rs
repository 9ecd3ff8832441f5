//! The mailbox text protocol: one command a line, one reply a command, readable in a
//! `telnet` session. Lines end with `\n` (a `\r` before it is dropped); replies end with
//! `\r\n`.
//!
//! ```text
//! r N            -> OK LENGTH\r\n DATA \r\n          read mailbox N
//! w N            -> OK\r\n                           write mailbox N with the data that follows:
//!                                                    the next line, or, when no line end
//!                                                    comes, the bytes that arrive until the
//!                                                    connection is quiet for 100 ms
//! w N LENGTH     -> OK\r\n                           write exactly LENGTH bytes that follow
//!                                                    (binary-safe)
//! q              -> BYE\r\n                          close this connection
//! anything wrong -> ERR REASON\r\n                   the connection stays usable
//! ```
//!
//! So `telnet` (`w 3`, Enter, `hello`, Enter), the assignment's Python client (one `send`
//! of `"w 3\nhello"`, then `recv`) and binary clients (`w 3 5\nhello`) all work. Data is
//! received whole before the mailbox is locked: a client that disconnects in the middle of
//! a write leaves the mailbox as it was. `docs/mailboxes.md` is the reference.

use crate::{MailboxError, Mailboxes};
use std::time::Duration;
use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader,
};
use tokio_util::sync::CancellationToken;

/// The longest command line.
pub const MAX_COMMAND_LINE: usize = 256;

/// How long the connection must be quiet to end data that has no line end.
pub const QUIET: Duration = Duration::from_millis(100);

/// One command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `r N`.
    Read(u64),
    /// `w N` (the data is the next line) or `w N LENGTH`.
    Write {
        /// The mailbox.
        number: u64,
        /// How many bytes follow, if the client said.
        length: Option<u64>,
    },
    /// `w N` or `w N LENGTH` whose N is not a mailbox number: the data that follows is
    /// still read (and dropped) before the error reply, so that the connection stays in step.
    BadWrite {
        /// What is wrong.
        reason: String,
        /// How many bytes follow, if the client said.
        length: Option<u64>,
    },
    /// `q`.
    Quit,
    /// An empty line: ignored.
    Nothing,
}

/// Parses a command line (without its line end).
pub fn parse(line: &[u8]) -> Result<Command, String> {
    let Ok(line) = std::str::from_utf8(line) else {
        return Err("a command line must be text".to_string());
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    let number = |word: &str, what: &str| {
        word.parse::<u64>()
            .map_err(|_| format!("`{word}` is not a {what} (a whole number from 0)"))
    };
    match words.as_slice() {
        [] => Ok(Command::Nothing),
        ["r", n] => Ok(Command::Read(number(n, "mailbox number")?)),
        ["w", n] => Ok(match number(n, "mailbox number") {
            Ok(number) => Command::Write {
                number,
                length: None,
            },
            Err(reason) => Command::BadWrite {
                reason,
                length: None,
            },
        }),
        ["w", n, length] => {
            let length = number(length, "length")?;
            Ok(match number(n, "mailbox number") {
                Ok(number) => Command::Write {
                    number,
                    length: Some(length),
                },
                Err(reason) => Command::BadWrite {
                    reason,
                    length: Some(length),
                },
            })
        }
        ["q"] => Ok(Command::Quit),
        [command, ..] => {
            let mut shown: String = command.chars().take(32).collect();
            if shown.len() < command.len() {
                shown.push_str("...");
            }
            Err(format!(
                "unknown command `{shown}` (commands: r N, w N, w N LENGTH, q)"
            ))
        }
    }
}

/// What reading a line found.
enum Line {
    /// The line, without its line end.
    Text(Vec<u8>),
    /// A line longer than the limit (read to its end and dropped).
    TooLong,
    /// The end of the input.
    End,
}

/// Reads one line of at most `max` bytes; a longer one is read to its end and dropped.
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max: usize,
) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buffered = reader.fill_buf().await?;
        if buffered.is_empty() {
            return Ok(Line::End);
        }
        let (take, done) = match buffered.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (buffered.len(), false),
        };
        if !too_long {
            line.extend_from_slice(&buffered[..take]);
            if line.len() > max + 2 {
                too_long = true;
                line = Vec::new();
            }
        }
        reader.consume(take);
        if done {
            break;
        }
    }
    if too_long {
        return Ok(Line::TooLong);
    }
    trim_line_end(&mut line);
    if line.len() > max {
        return Ok(Line::TooLong);
    }
    Ok(Line::Text(line))
}

fn trim_line_end(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

/// Reads the data of `w N`: the next line, or the bytes that come until the connection is
/// quiet for [`QUIET`]. `None`: the client went away first. Data longer than `max` is read
/// to its end and reported by its length, not kept.
async fn read_data<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max: usize,
    idle: Duration,
) -> std::io::Result<Result<Vec<u8>, usize>> {
    let mut data = Vec::new();
    let mut seen = 0usize;
    let mut tail = [0u8; 2];
    // The first byte may take as long as a person takes to type it.
    let mut wait = idle;
    loop {
        let buffered = match tokio::time::timeout(wait, reader.fill_buf()).await {
            Ok(buffered) => buffered?,
            Err(_) if seen > 0 => break, // quiet: the data has ended
            Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
        };
        if buffered.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let (take, done) = match buffered.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (buffered.len(), false),
        };
        seen += take;
        for &b in &buffered[..take] {
            tail = [tail[1], b];
        }
        if data.len() <= max + 2 {
            data.extend_from_slice(&buffered[..take]);
        }
        reader.consume(take);
        if done {
            break;
        }
        wait = QUIET;
    }
    trim_line_end(&mut data);
    let line_end = match tail {
        [b'\r', b'\n'] => 2,
        [_, b'\n'] => 1,
        _ => 0,
    };
    let len = seen - line_end;
    if len > max {
        return Ok(Err(len));
    }
    Ok(Ok(data))
}

/// Serves one client until it quits, goes away, stays idle for `idle`, or `stop` is
/// cancelled (then the command in progress is finished first). The error says why the
/// connection ended, for the log.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    boxes: &Mailboxes,
    idle: Duration,
    stop: &CancellationToken,
) -> Result<(), String> {
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::new(reader);
    let io = |e: std::io::Error| e.to_string();
    loop {
        let line = tokio::select! {
            line = tokio::time::timeout(idle, read_line(&mut reader, MAX_COMMAND_LINE)) => line,
            () = stop.cancelled() => return Ok(()),
        };
        let line = match line {
            Err(_) => return Err(format!("idle for {}", humantime::format_duration(idle))),
            Ok(line) => line.map_err(io)?,
        };
        let command = match line {
            Line::End => return Ok(()),
            Line::TooLong => Err(format!(
                "a command line is at most {MAX_COMMAND_LINE} bytes"
            )),
            Line::Text(text) => parse(&text),
        };
        let reply = match command {
            Err(why) => error(&why),
            Ok(Command::Nothing) => continue,
            Ok(Command::Quit) => {
                send_reply(&mut writer, b"BYE\r\n", idle, stop).await?;
                return Ok(());
            }
            Ok(Command::BadWrite { reason, length }) => {
                // Read past the data the client sends anyway, so that it stays in step.
                let _dropped = match length {
                    Some(length) => read_exact_or_skip(&mut reader, length, 0, idle).await,
                    None => read_data(&mut reader, 0, idle).await,
                }
                .map_err(|e| format!("the data of a bad `w` did not arrive: {e}"))?;
                error(&reason)
            }
            Ok(Command::Read(number)) => match boxes.read(number).await {
                Ok((data, _)) => {
                    let mut reply = format!("OK {}\r\n", data.len()).into_bytes();
                    reply.extend_from_slice(&data);
                    reply.extend_from_slice(b"\r\n");
                    reply
                }
                Err(e) => error(&e.to_string()),
            },
            Ok(Command::Write { number, length }) => {
                let max = boxes.max_write();
                let data = match length {
                    Some(length) => read_exact_or_skip(&mut reader, length, max, idle).await,
                    None => read_data(&mut reader, max, idle).await,
                }
                .map_err(|e| format!("the data of `w {number}` did not arrive: {e}"))?;
                match data {
                    Err(len) => error(&MailboxError::TooLarge { len, max }.to_string()),
                    Ok(data) => match boxes.write(number, &data).await {
                        Ok(_) => b"OK\r\n".to_vec(),
                        Err(e) => error(&e.to_string()),
                    },
                }
            }
        };
        send_reply(&mut writer, &reply, idle, stop).await?;
    }
}

/// How long a reply may take to go out once the server is stopping.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Writes a reply within the idle timeout (a client that does not read its replies is
/// disconnected), or, once the server is stopping, within a short grace.
async fn send_reply<W: AsyncWrite + Unpin>(
    writer: &mut W,
    reply: &[u8],
    idle: Duration,
    stop: &CancellationToken,
) -> Result<(), String> {
    let write = writer.write_all(reply);
    tokio::pin!(write);
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(idle, &mut write) => outcome,
        () = stop.cancelled() => tokio::time::timeout(STOP_GRACE, &mut write).await,
    };
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("it does not read its replies".to_string()),
    }
}

/// Reads the `length` bytes of `w N LENGTH`; more than `max` are read and dropped.
async fn read_exact_or_skip<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    length: u64,
    max: usize,
    idle: Duration,
) -> std::io::Result<Result<Vec<u8>, usize>> {
    let timed =
        |e: tokio::time::error::Elapsed| std::io::Error::new(std::io::ErrorKind::TimedOut, e);
    if length > max as u64 {
        let mut left = length;
        let mut sink = [0u8; 8192];
        while left > 0 {
            let want = left.min(sink.len() as u64) as usize;
            let n = tokio::time::timeout(idle, reader.read(&mut sink[..want]))
                .await
                .map_err(timed)??;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            left -= n as u64;
        }
        return Ok(Err(usize::try_from(length).unwrap_or(usize::MAX)));
    }
    let mut data = vec![0u8; length as usize];
    tokio::time::timeout(idle, reader.read_exact(&mut data))
        .await
        .map_err(timed)??;
    Ok(Ok(data))
}

fn error(why: &str) -> Vec<u8> {
    format!("ERR {why}\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MailboxConfig;
    use std::sync::Arc;

    #[test]
    fn commands_parse_and_mistakes_are_named() {
        assert_eq!(parse(b"r 3"), Ok(Command::Read(3)));
        assert_eq!(
            parse(b"  w  7 "),
            Ok(Command::Write {
                number: 7,
                length: None
            })
        );
        assert_eq!(
            parse(b"w 7 12"),
            Ok(Command::Write {
                number: 7,
                length: Some(12)
            })
        );
        assert_eq!(parse(b"q"), Ok(Command::Quit));
        assert_eq!(parse(b""), Ok(Command::Nothing));
        assert!(parse(b"r").unwrap_err().contains("unknown command `r`"));
        assert!(
            parse(b"r -1")
                .unwrap_err()
                .contains("`-1` is not a mailbox number")
        );
        assert!(parse(b"w 1 x").unwrap_err().contains("`x` is not a length"));
        assert!(parse(b"x").unwrap_err().contains("unknown command `x`"));
        assert!(parse(&[0xff, 0xfe]).unwrap_err().contains("must be text"));
    }

    fn mailboxes() -> Arc<Mailboxes> {
        Arc::new(Mailboxes::new(MailboxConfig::new(4, 1, 1).unwrap()))
    }

    /// Runs a session on fresh mailboxes: what a client sends, in chunks with pauses, and
    /// what it gets.
    async fn session(chunks: &[&[u8]]) -> String {
        session_on(&mailboxes(), chunks).await
    }

    async fn session_on(boxes: &Arc<Mailboxes>, chunks: &[&[u8]]) -> String {
        let (client, server) = tokio::io::duplex(1 << 16);
        let stop = CancellationToken::new();
        let boxes = boxes.clone();
        let served =
            tokio::spawn(async move { serve(server, &boxes, Duration::from_secs(5), &stop).await });
        let (mut read, mut write) = tokio::io::split(client);
        for chunk in chunks {
            write.write_all(chunk).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        write.shutdown().await.unwrap();
        let mut out = Vec::new();
        read.read_to_end(&mut out).await.unwrap();
        let _ = served.await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn telnet_python_and_binary_clients_are_understood() {
        // telnet: the command, then the data on a line of its own.
        let out = session(&[b"w 1\r\n", b"hello\r\n", b"r 1\r\n", b"q\r\n"]).await;
        assert_eq!(out, "OK\r\nOK 5\r\nhello\r\nBYE\r\n");
        // The assignment's Python client: the command and the data in one send, no line end.
        let out = session(&[b"w 3\nhello", b"r 3\n"]).await;
        assert_eq!(out, "OK\r\nOK 5\r\nhello\r\n");
        // A binary client: a length, and bytes that include line ends.
        let out = session(&[b"w 0 5\na\nb\r\x00r 0\n"]).await;
        assert_eq!(out, "OK\r\nOK 5\r\na\nb\r\x00\r\n");
    }

    #[tokio::test]
    async fn mistakes_get_an_error_and_the_connection_stays_usable() {
        let big = vec![b'x'; 2000];
        let mut big_line = b"w 0\n".to_vec();
        big_line.extend_from_slice(&big);
        big_line.push(b'\n');
        let out = session(&[
            b"x\n",
            b"r 9\n",
            &big_line,
            b"w 0 5000\n",
            &[b'y'; 5000],
            &[b'z'; 300],
            b"\nw 99999999999999999999 4\nabcdr 0\n",
            b"w x\nignored data\nr 0\n",
        ])
        .await;
        let lines: Vec<&str> = out.split("\r\n").collect();
        assert!(lines[0].starts_with("ERR unknown command `x`"), "{out}");
        assert_eq!(lines[1], "ERR no mailbox 9: mailboxes are numbered 0 to 3");
        assert_eq!(
            lines[2],
            "ERR 2000 bytes is more than a write may carry (1024 bytes)"
        );
        assert_eq!(
            lines[3],
            "ERR 5000 bytes is more than a write may carry (1024 bytes)"
        );
        assert_eq!(lines[4], "ERR a command line is at most 256 bytes");
        assert_eq!(
            lines[5],
            "ERR `99999999999999999999` is not a mailbox number (a whole number from 0)"
        );
        assert_eq!(
            lines[6], "OK 0",
            "mailbox 0 kept its (empty) content: {out}"
        );
        assert_eq!(
            lines[8],
            "ERR `x` is not a mailbox number (a whole number from 0)"
        );
        assert_eq!(
            lines[9], "OK 0",
            "the data of the bad write was skipped: {out}"
        );
    }

    #[tokio::test]
    async fn a_write_cut_short_leaves_the_mailbox_as_it_was() {
        let boxes = mailboxes();
        assert_eq!(session_on(&boxes, &[b"w 2 3\nold"]).await, "OK\r\n");
        assert_eq!(session_on(&boxes, &[b"w 2 10\nabc"]).await, "");
        assert_eq!(session_on(&boxes, &[b"w 2\n"]).await, "");
        assert_eq!(session_on(&boxes, &[b"r 2\n"]).await, "OK 3\r\nold\r\n");
    }
}
