//! `say`: the one function a node answers by itself for an operator, printing a line of
//! text on its terminal. `dhost console`'s `say NODE TEXT` sends it ([`SAY_FUNCTION`]) and the
//! node's TCP port answers it ([`crate::tcp_port`]) with [`print_said`].

use ciborium::Value;
use dhost_protocol::outcome::{CallFailure, FailureKind, Outcome};
use dhost_protocol::printable::printable;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The function a node answers itself by printing the text on its terminal.
pub const SAY_FUNCTION: &str = "dhost:node/console#say";

/// The longest text `say` carries.
pub(crate) const MAX_SAY: usize = 4096;

/// The longest name of who says it.
const MAX_SAYER: usize = 256;

/// The most `say`s a node prints a second; more are refused (`unavailable`).
const MAX_SAYS_PER_SECOND: u32 = 20;

/// What a node does with `say` from `caller` on the TCP port: prints the text on its
/// terminal (stdout) as `[from at ADDR] text`, with control characters shown escaped,
/// from a thread of the blocking pool (a stdout that blocks, or is closed, holds up
/// nothing), and answers `null`; at most [`MAX_SAYS_PER_SECOND`].
pub(crate) fn print_said(args: &[Value], caller: std::net::SocketAddr) -> Outcome {
    let bad = |why: &str| CallFailure::new(FailureKind::BadArguments, why);
    let [Value::Text(from), Value::Text(text)] = args else {
        return Err(bad("say takes two texts: who says it, and what"));
    };
    if from.len() > MAX_SAYER || text.len() > MAX_SAY {
        return Err(bad(&format!(
            "say carries at most {MAX_SAY} bytes of text from a name of at most {MAX_SAYER}"
        )));
    }
    static SAID: Mutex<Option<(std::time::Instant, u32)>> = Mutex::new(None);
    {
        let mut said = SAID.lock().unwrap_or_else(PoisonError::into_inner);
        let now = std::time::Instant::now();
        let (since, count) = said.get_or_insert((now, 0));
        if now.duration_since(*since) >= Duration::from_secs(1) {
            (*since, *count) = (now, 0);
        }
        if *count >= MAX_SAYS_PER_SECOND {
            return Err(CallFailure::new(
                FailureKind::Unavailable,
                format!("this node prints at most {MAX_SAYS_PER_SECOND} says a second"),
            ));
        }
        *count += 1;
    }
    let line = format!("[{} at {caller}] {}\n", printable(from), printable(text));
    let print = move || {
        use std::io::Write as _;
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(print)),
        Err(_) => print(),
    }
    Ok(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn said_text_cannot_drive_the_terminal_and_is_bounded() {
        assert_eq!(
            printable("hi \u{1b}[2J there\n").to_string(),
            "hi \\u{1b}[2J there\\n"
        );
        let long = Value::Text("x".repeat(MAX_SAY + 1));
        let from = Value::Text("me".into());
        let caller = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        assert!(print_said(&[from.clone(), long], caller).is_err());
        assert!(print_said(&[from], caller).is_err());
        assert_eq!(
            print_said(
                &[Value::Text("me".into()), Value::Text("ok".into())],
                caller
            ),
            Ok(Value::Null)
        );
    }
}
