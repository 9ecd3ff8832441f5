//! Every frame kind of dhost's protocols, numbered in one place: the frames of datagrams
//! (`wire`) and those of the TCP port (`rpc::frame`) share one space of numbers (a frame
//! opens with its kind), so that no two can ever be told apart by their number alone. A
//! unit test checks that no two kinds share one. docs/wire.md is the reference.

/// Datagram: a run of calls to every node that serves a function.
pub const CALL: u64 = 0;
/// Datagram: a node's announcement of itself.
pub const ANNOUNCE: u64 = 1;
/// Datagram: a query ("announce yourselves now").
pub const QUERY: u64 = 2;
/// Datagram: a goodbye.
pub const GOODBYE: u64 = 3;
/// TCP: a request (a call, or a cast).
pub const REQUEST: u64 = 4;
/// TCP: a reply to a request.
pub const REPLY: u64 = 5;
/// Datagram: a sender's stream position.
pub const POSITION: u64 = 6;
/// Datagram: a receiver's status of a stream (to its sender alone).
pub const STATUS: u64 = 7;
/// TCP: the connecting node says who it is.
pub const HELLO: u64 = 8;
/// TCP handshake: the caller's challenge.
pub const CHALLENGE: u64 = 9;
/// TCP handshake: the node's answer.
pub const ANSWER: u64 = 10;
/// TCP handshake: the node refuses, saying why.
pub const REFUSAL: u64 = 11;
/// TCP handshake: the caller's proof.
pub const PROOF: u64 = 12;

/// Every kind, with its name.
pub const ALL: [(u64, &str); 13] = [
    (CALL, "call"),
    (ANNOUNCE, "announce"),
    (QUERY, "query"),
    (GOODBYE, "goodbye"),
    (REQUEST, "request"),
    (REPLY, "reply"),
    (POSITION, "position"),
    (STATUS, "status"),
    (HELLO, "hello"),
    (CHALLENGE, "challenge"),
    (ANSWER, "answer"),
    (REFUSAL, "refusal"),
    (PROOF, "proof"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_kinds_share_a_number() {
        let mut numbers: Vec<u64> = ALL.iter().map(|(n, _)| *n).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), ALL.len(), "{ALL:?}");
    }
}
