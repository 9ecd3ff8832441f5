//! Where a group's datagrams travel on a Zenoh network: its key expressions, and the
//! address a node reached through Zenoh goes by.
//!
//! A group is named by its multicast address (`239.0.0.1:4723`), as its keys are bound to
//! it: nodes that give the same `--group` form one group on the LAN and over Zenoh. Under
//! `dhost/<group>`:
//!
//! ```text
//! c/<sender>           node <sender>'s control datagrams: announcements, queries,
//!                      positions, goodbyes                     (every node subscribes to c/*)
//! s/<sender>/<F>/<G>   a datagram of its stream, with calls to the functions F, G
//!                      (bare names, sorted)                    (a node serving F: s/*/**/F/**)
//! x/<sender>/<F>/<G>   the same datagram's stand-in: its header alone, for the nodes that
//!                      serve none of F, G (so that their stream of <sender> has no gap)
//! x/<sender>           a stream datagram for every node (one with calls to too many functions)
//!                                                              (every node subscribes to x/*/**)
//! u/<sender>           what is sent to node <sender> alone: statuses of its stream
//! q/<sender>           node <sender>'s queryable: calls with replies, casts to it alone,
//!                      and what its TCP port serves (modules, describe, mailboxes, say)
//! ```
//!
//! `<sender>` is the 16 hexadecimal digits of the node's sender id (chosen at random at
//! every start); a function goes by its bare name (the part after `#`), which is how C
//! plugins name it too, made one chunk by [`chunk`]. The payload is the sealed datagram,
//! exactly as multicast carries it: the key routes it, and only its tag says who sent it.
//! A router thus delivers the calls to a function only to the nodes that serve a function
//! of that name.
//!
//! A node reached through Zenoh goes by an address of its sender id
//! ([`crate::transport::peer_addr`], re-exported here): what is sent to that address goes
//! to its `u/<sender>` key.

pub use crate::transport::{peer_addr, peer_of, show};
use std::net::SocketAddrV4;

/// The most functions a stream datagram's key names; a datagram with calls to more goes
/// to every node.
pub const MAX_KEY_FUNCTIONS: usize = 16;

/// The key expressions of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupKeys {
    /// `dhost/<group>`.
    root: String,
}

impl GroupKeys {
    /// The keys of the group at `group`.
    pub fn new(group: SocketAddrV4) -> Self {
        GroupKeys {
            root: format!("dhost/{}", chunk(&group.to_string())),
        }
    }

    /// Where node `sender` sends its control datagrams.
    pub fn control(&self, sender: u64) -> String {
        format!("{}/c/{sender:016x}", self.root)
    }

    /// Every node's control datagrams.
    pub fn all_control(&self) -> String {
        format!("{}/c/*", self.root)
    }

    /// Where node `sender` sends a stream datagram with calls to the functions `path`
    /// names ([`function_path`]).
    pub fn stream(&self, sender: u64, path: &str) -> String {
        format!("{}/s/{sender:016x}/{path}", self.root)
    }

    /// Every stream datagram with a call to the function `function_chunk` (a [`chunk`] of
    /// a bare name).
    pub fn serving(&self, function_chunk: &str) -> String {
        format!("{}/s/*/**/{function_chunk}/**", self.root)
    }

    /// Where node `sender` sends the stand-in of a stream datagram with calls to the
    /// functions `path` names; with an empty `path`, a stream datagram for every node.
    pub fn stand_in(&self, sender: u64, path: &str) -> String {
        match path {
            "" => format!("{}/x/{sender:016x}", self.root),
            path => format!("{}/x/{sender:016x}/{path}", self.root),
        }
    }

    /// Every stand-in, and every stream datagram for every node.
    pub fn all_stand_ins(&self) -> String {
        format!("{}/x/*/**", self.root)
    }

    /// Every stream datagram, whatever its functions (what a bridge relays to its LAN).
    pub fn all_streams(&self) -> String {
        format!("{}/s/*/**", self.root)
    }

    /// Every stream datagram sent to every node (not the stand-ins).
    pub fn everyone(&self) -> String {
        format!("{}/x/*", self.root)
    }

    /// What is sent to any node alone (what a bridge relays to its LAN's members).
    pub fn all_nodes(&self) -> String {
        format!("{}/u/*", self.root)
    }

    /// Where what is sent to node `sender` alone goes.
    pub fn to_node(&self, sender: u64) -> String {
        format!("{}/u/{sender:016x}", self.root)
    }

    /// Where node `sender` answers calls.
    pub fn query(&self, sender: u64) -> String {
        format!("{}/q/{sender:016x}", self.root)
    }

    /// The sender whose key `key` is (any key of this group's but the subscriptions').
    pub fn sender_of(&self, key: &str) -> Option<u64> {
        let (sender, _) = self.split(key)?;
        Some(sender)
    }

    /// The function chunks a stream datagram's or stand-in's key names, after its sender.
    pub fn functions_of<'k>(&self, key: &'k str) -> impl Iterator<Item = &'k str> + use<'k> {
        let rest = self.split(key).map_or("", |(_, rest)| rest);
        rest.split('/').filter(|c| !c.is_empty())
    }

    /// The sender a key of this group names, and what follows it.
    fn split<'k>(&self, key: &'k str) -> Option<(u64, &'k str)> {
        let rest = key.strip_prefix(&self.root)?.strip_prefix('/')?;
        let (kind, rest) = rest.split_once('/')?;
        if !matches!(kind, "c" | "s" | "x" | "u" | "q") {
            return None;
        }
        let (hex, rest) = rest.split_once('/').unwrap_or((rest, ""));
        if hex.len() != 16 {
            return None;
        }
        Some((u64::from_str_radix(hex, 16).ok()?, rest))
    }
}

/// The bare name of `function`: the part after `#` (`message` of
/// `dhost:chat/chat#message`), or all of it when it has none (a C plugin's).
pub fn bare(function: &str) -> &str {
    function.rsplit_once('#').map_or(function, |(_, name)| name)
}

/// The key path of the functions `functions` (a datagram's calls'): their bare names'
/// chunks, sorted and each once; `None` when there are none or more than
/// [`MAX_KEY_FUNCTIONS`].
pub fn function_path<'f>(functions: impl IntoIterator<Item = &'f str>) -> Option<String> {
    let mut chunks: Vec<String> = functions.into_iter().map(|f| chunk(bare(f))).collect();
    chunks.sort_unstable();
    chunks.dedup();
    (!chunks.is_empty() && chunks.len() <= MAX_KEY_FUNCTIONS).then(|| chunks.join("/"))
}

/// One key-expression chunk for `s`: letters, digits and `.`, `_`, `~`, `:`, `-` as they
/// are, every other byte as `%XX`, the empty string as a lone `%`. It never holds a
/// separator, a wildcard or a verbatim chunk's `@`, and different strings give different
/// chunks.
pub fn chunk(s: &str) -> String {
    if s.is_empty() {
        return "%".into();
    }
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b':' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_group_the_sender_and_the_functions_and_give_them_back() {
        let keys = GroupKeys::new("239.0.0.1:4723".parse().unwrap());
        let path = function_path(["dhost:kv/store#put", "message", "dhost:chat/chat#message"])
            .expect("a path");
        assert_eq!(path, "message/put");
        let stream = keys.stream(0xab, &path);
        assert_eq!(
            stream,
            "dhost/239.0.0.1:4723/s/00000000000000ab/message/put"
        );
        assert_eq!(keys.sender_of(&stream), Some(0xab));
        assert_eq!(
            keys.functions_of(&stream).collect::<Vec<_>>(),
            ["message", "put"]
        );
        let stand_in = keys.stand_in(0xab, &path);
        assert_eq!(
            keys.functions_of(&stand_in).collect::<Vec<_>>(),
            ["message", "put"]
        );
        let everyone = keys.stand_in(0xab, "");
        assert_eq!(keys.sender_of(&everyone), Some(0xab));
        assert_eq!(keys.functions_of(&everyone).count(), 0);
        assert_eq!(keys.sender_of(&keys.control(u64::MAX)), Some(u64::MAX));
        assert_eq!(keys.sender_of(&keys.to_node(7)), Some(7));
        assert_eq!(keys.sender_of(&keys.query(9)), Some(9));
        let other = GroupKeys::new("239.0.0.2:4723".parse().unwrap());
        for wrong in [
            other.control(1),
            "dhost/239.0.0.1:4723/c/ab".into(),
            "dhost/239.0.0.1:4723/z/00000000000000ab".into(),
            "dhost/239.0.0.1:4723/c/00000000000000zz".into(),
            "dhost/239.0.0.1:4723".into(),
        ] {
            assert_eq!(keys.sender_of(&wrong), None, "{wrong}");
        }
        assert_eq!(function_path([]), None);
        let many: Vec<String> = (0..=MAX_KEY_FUNCTIONS).map(|n| format!("f{n}")).collect();
        assert_eq!(function_path(many.iter().map(String::as_str)), None);
        for key in [
            keys.all_control(),
            keys.control(1),
            stream,
            keys.serving("message"),
            stand_in,
            everyone,
            keys.all_stand_ins(),
            keys.all_streams(),
            keys.everyone(),
            keys.all_nodes(),
            keys.to_node(7),
            keys.query(7),
        ] {
            assert!(
                zenoh::key_expr::KeyExpr::try_from(key.as_str()).is_ok(),
                "{key}"
            );
        }
        // What each subscription takes.
        let matches = |subscription: String, key: String| {
            let subscription = zenoh::key_expr::KeyExpr::try_from(subscription).unwrap();
            subscription.intersects(&zenoh::key_expr::KeyExpr::try_from(key).unwrap())
        };
        assert!(matches(keys.serving("put"), keys.stream(1, "message/put")));
        assert!(matches(
            keys.serving("message"),
            keys.stream(1, "message/put")
        ));
        assert!(!matches(keys.serving("get"), keys.stream(1, "message/put")));
        assert!(matches(
            keys.all_stand_ins(),
            keys.stand_in(1, "message/put")
        ));
        assert!(matches(keys.all_stand_ins(), keys.stand_in(1, "")));
        assert!(!matches(keys.all_stand_ins(), keys.stream(1, "put")));
        assert!(matches(keys.all_streams(), keys.stream(1, "message/put")));
        assert!(matches(keys.everyone(), keys.stand_in(1, "")));
        assert!(!matches(keys.everyone(), keys.stand_in(1, "put")));
    }

    #[test]
    fn chunks_escape_what_a_key_expression_reserves() {
        assert_eq!(
            chunk("dhost:chat/chat#message"),
            "dhost:chat%2Fchat%23message"
        );
        assert_eq!(chunk(""), "%");
        assert_eq!(chunk("a*b$c?d@e %"), "a%2Ab%24c%3Fd%40e%20%25");
        assert_eq!(chunk("é"), "%C3%A9");
    }
}
