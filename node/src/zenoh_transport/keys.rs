//! Where a group's datagrams travel on a Zenoh network: its key expressions, and the
//! address a node reached through Zenoh goes by.
//!
//! A group is named by its multicast address (`239.0.0.1:4723`), as its keys are bound to
//! it: nodes that give the same `--group` form one group on the LAN and over Zenoh. Under
//! `dhost/<group>`:
//!
//! ```text
//! dhost/<group>/d/<sender>    what node <sender> sends to the group (every node subscribes to d/*)
//! dhost/<group>/u/<sender>    what is sent to node <sender> alone: statuses of its stream
//! dhost/<group>/q/<sender>    node <sender>'s queryable: calls with replies, casts to it alone,
//!                             and what its TCP port serves (modules, describe, mailboxes, say)
//! ```
//!
//! `<sender>` is the 16 hexadecimal digits of the node's sender id (chosen at random at
//! every start). The payload is the sealed datagram, exactly as multicast carries it: the
//! key routes it, and only its tag says who sent it.
//!
//! The core and the sending side know their peers by a socket address. A node reached
//! through Zenoh has none, so it goes by one of the discard-only IPv6 prefix `100::/64`
//! (RFC 6666), which no host has, with its sender id in the low 64 bits ([`peer_addr`]):
//! what is sent to that address goes to its `u/<sender>` key.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// The first 64 bits of a Zenoh peer's address: the discard-only prefix `100::/64`.
const PEER_PREFIX: u128 = 0x0100_0000_0000_0000_0000_0000_0000_0000;

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

    /// Where node `sender` sends to the group.
    pub fn to_group(&self, sender: u64) -> String {
        format!("{}/d/{sender:016x}", self.root)
    }

    /// What every node of the group subscribes to: every node's datagrams to the group.
    pub fn group(&self) -> String {
        format!("{}/d/*", self.root)
    }

    /// Where what is sent to node `sender` alone goes.
    pub fn to_node(&self, sender: u64) -> String {
        format!("{}/u/{sender:016x}", self.root)
    }

    /// Where node `sender` answers calls.
    pub fn query(&self, sender: u64) -> String {
        format!("{}/q/{sender:016x}", self.root)
    }

    /// The sender whose key `key` is (`…/d/<sender>`, `…/u/<sender>` or `…/q/<sender>` of
    /// this group).
    pub fn sender_of(&self, key: &str) -> Option<u64> {
        let rest = key.strip_prefix(&self.root)?;
        let hex = ["/d/", "/u/", "/q/"]
            .iter()
            .find_map(|kind| rest.strip_prefix(kind))?;
        if hex.len() != 16 {
            return None;
        }
        u64::from_str_radix(hex, 16).ok()
    }
}

/// The address node `sender`, reached through Zenoh, goes by (see the module's
/// documentation).
pub fn peer_addr(sender: u64) -> SocketAddr {
    let ip = Ipv6Addr::from(PEER_PREFIX | u128::from(sender));
    SocketAddr::V6(SocketAddrV6::new(ip, 0, 0, 0))
}

/// The sender id of a node reached through Zenoh, if `addr` is the address of one.
pub fn peer_of(addr: SocketAddr) -> Option<u64> {
    let SocketAddr::V6(v6) = addr else {
        return None;
    };
    let bits = u128::from(*v6.ip());
    (bits >> 64 == PEER_PREFIX >> 64 && v6.port() == 0).then_some(bits as u64)
}

/// How `addr` is shown to users: `zenoh/<sender>` for a node reached through Zenoh, else
/// the address itself.
pub fn show(addr: SocketAddr) -> String {
    match peer_of(addr) {
        Some(sender) => format!("zenoh/{sender:016x}"),
        None => addr.to_string(),
    }
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
    fn keys_name_the_group_and_the_sender_and_give_the_sender_back() {
        let keys = GroupKeys::new("239.0.0.1:4723".parse().unwrap());
        assert_eq!(keys.group(), "dhost/239.0.0.1:4723/d/*");
        let to_group = keys.to_group(0xab);
        assert_eq!(to_group, "dhost/239.0.0.1:4723/d/00000000000000ab");
        assert_eq!(keys.sender_of(&to_group), Some(0xab));
        assert_eq!(keys.sender_of(&keys.to_node(u64::MAX)), Some(u64::MAX));
        assert_eq!(keys.sender_of(&keys.query(9)), Some(9));
        let other = GroupKeys::new("239.0.0.2:4723".parse().unwrap());
        for wrong in [
            other.to_group(1),
            "dhost/239.0.0.1:4723/d/ab".into(),
            "dhost/239.0.0.1:4723/x/00000000000000ab".into(),
            "dhost/239.0.0.1:4723/d/00000000000000zz".into(),
        ] {
            assert_eq!(keys.sender_of(&wrong), None, "{wrong}");
        }
        for key in [keys.group(), to_group, keys.to_node(7), keys.query(7)] {
            assert!(
                zenoh::key_expr::KeyExpr::try_from(key.as_str()).is_ok(),
                "{key}"
            );
        }
    }

    #[test]
    fn a_zenoh_peer_goes_by_an_address_no_host_has() {
        for sender in [0, 1, 0xdead_beef_0000_0001, u64::MAX] {
            let addr = peer_addr(sender);
            assert_eq!(peer_of(addr), Some(sender));
            assert!(!addr.ip().is_loopback());
        }
        for other in ["127.0.0.1:1", "[::1]:0", "[100::1]:5", "[200::1]:0"] {
            assert_eq!(peer_of(other.parse().unwrap()), None, "{other}");
            assert_eq!(show(other.parse().unwrap()), other);
        }
        assert_eq!(show(peer_addr(0xab)), "zenoh/00000000000000ab");
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
