//! Text from the network or from a guest, made safe to print: every character that could
//! drive a terminal or forge a line of a log is shown escaped, as Rust writes it in a
//! string (`\u{1b}`, `\r`, `\n`), and every other character as it is.
//!
//! Escaped: the control characters (C0, DEL and C1: ESC opens the terminal's escape
//! sequences, CR and LF start lines a reader takes for the program's own), the Unicode
//! bidirectional controls (which reorder what a line shows: U+061C, U+200E, U+200F,
//! U+202A to U+202E, U+2066 to U+2069) and the line and paragraph separators (U+2028,
//! U+2029). [`Printable`] shows one line (everything escaped); [`Lines`] keeps line feeds
//! and tabs, for text whose lines are the point (a guest's output, WIT); [`bytes()`] shows
//! bytes that need not be UTF-8 (a byte that is not is shown as `\x{ff}`).
//!
//! Names that travel (node names, publishers, function ids) are refused where they are
//! decoded when they hold such a character ([`is_printable`]); everything else goes through
//! these wrappers on its way to a terminal, and the node's log escapes every field it
//! writes (the mailbox crate's `cli::init_logging_at`, which sets up the log for `dipc` and
//! the node alike); the node re-exports it as `dhost::printable`.

use std::fmt::{self, Write as _};

/// Whether `c` is one of the characters shown escaped.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// Whether `text` holds none of the characters shown escaped: a name fit to travel.
pub fn is_printable(text: &str) -> bool {
    // (ASCII first: names almost always are, and this is checked on every call run.)
    text.bytes().all(|b| (b' '..=b'~').contains(&b)) || !text.chars().any(is_unsafe)
}

/// `T` shown on one line: every character [`is_unsafe`] says escaped.
#[derive(Debug, Clone, Copy)]
pub struct Printable<T>(pub T);

/// `T` shown with its line feeds and tabs as they are, every other character
/// [`is_unsafe`] says escaped (carriage returns included).
#[derive(Debug, Clone, Copy)]
pub struct Lines<T>(pub T);

/// `text` shown on one line, escaped.
pub fn printable<T: fmt::Display>(text: T) -> Printable<T> {
    Printable(text)
}

/// `text` shown with its lines, escaped.
pub fn lines<T: fmt::Display>(text: T) -> Lines<T> {
    Lines(text)
}

impl<T: fmt::Display> fmt::Display for Printable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        show(f, &self.0, false)
    }
}

impl<T: fmt::Display> fmt::Display for Lines<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        show(f, &self.0, true)
    }
}

/// Writes `text` escaped into `f`, padded as `f` asks (`{:<20}`).
fn show(f: &mut fmt::Formatter<'_>, text: &dyn fmt::Display, keep_lines: bool) -> fmt::Result {
    if f.width().is_some() || f.precision().is_some() {
        let mut escaped = String::new();
        write!(Escaper::new(&mut escaped, keep_lines), "{text}")?;
        return f.pad(&escaped);
    }
    write!(Escaper::new(f, keep_lines), "{text}")
}

/// A [`fmt::Write`] that escapes what is written through it into `out`.
pub struct Escaper<W> {
    out: W,
    keep_lines: bool,
}

impl<W: fmt::Write> Escaper<W> {
    /// Escapes into `out`; keeps line feeds and tabs if `keep_lines`.
    pub fn new(out: W, keep_lines: bool) -> Self {
        Escaper { out, keep_lines }
    }
}

impl<W: fmt::Write> fmt::Write for Escaper<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(|c| self.escapes(c)) {
            self.out.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(self.out, "{}", c.escape_default())?;
            rest = &rest[at + c.len_utf8()..];
        }
        self.out.write_str(rest)
    }
}

impl<W> Escaper<W> {
    fn escapes(&self, c: char) -> bool {
        is_unsafe(c) && !(self.keep_lines && matches!(c, '\n' | '\t'))
    }
}

/// JSON text (a call's result, as serde_json writes it, which escapes C0 only) with every
/// other character [`is_unsafe`] says escaped as JSON does (`\u202e`): the same JSON
/// value, safe to print. (Such characters can only be inside strings.)
pub fn json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_unsafe(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `bytes` (a guest's output: any bytes) shown with their lines, escaped: valid UTF-8 as
/// [`Lines`] shows it, every byte that is not as `\x{hh}`.
pub fn bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        let _ = write!(Escaper::new(&mut out, true), "{}", chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{{{b:02x}}}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_drives_a_terminal_or_forges_a_line_is_escaped() {
        let hostile = "ann\u{1b}[2J\r\nINFO forged\u{7f}\u{9b}31m\u{202e}evil\u{2028}";
        let shown = printable(hostile).to_string();
        assert_eq!(
            shown,
            "ann\\u{1b}[2J\\r\\nINFO forged\\u{7f}\\u{9b}31m\\u{202e}evil\\u{2028}"
        );
        assert!(is_printable(&shown));
        assert!(!is_printable(hostile));
        // Lines keep their line feeds and tabs, and nothing else.
        assert_eq!(lines("a\tb\r\nc\u{1b}").to_string(), "a\tb\\r\nc\\u{1b}");
        // Ordinary text, accents and all, is as it was.
        for fine in ["", "kv", "dhost:kv/store#get", "Zoë 東京 🙂", "a\\u{1b}"] {
            assert_eq!(printable(fine).to_string(), fine);
            assert!(is_printable(fine), "{fine}");
        }
        // Escaping twice changes nothing more.
        assert_eq!(printable(&shown).to_string(), shown);
    }

    #[test]
    fn padding_counts_what_is_shown() {
        assert_eq!(format!("[{:<6}]", printable("a\u{1b}")), "[a\\u{1b}]");
        assert_eq!(format!("[{:<4}]", printable("ab")), "[ab  ]");
        assert_eq!(format!("[{:>4}]", lines("ab")), "[  ab]");
    }

    #[test]
    fn json_keeps_its_value_and_loses_what_drives_a_terminal() {
        assert_eq!(json(r#"["a",1]"#), r#"["a",1]"#);
        assert_eq!(
            json("[\"\u{9b}31m\u{7f}\u{202e}é\"]"),
            r#"["\u009b31m\u007f\u202eé"]"#
        );
    }

    #[test]
    fn bytes_that_are_not_text_are_shown_as_bytes() {
        assert_eq!(bytes(b"ok\n"), "ok\n");
        assert_eq!(bytes(b"a\xffb\x1b[0m\n"), "a\\x{ff}b\\u{1b}[0m\n");
        assert_eq!(bytes("é".as_bytes()), "é");
        assert_eq!(bytes(&"é".as_bytes()[..1]), "\\x{c3}");
    }
}
